//! The CSV export connector, end to end: the real compiled component pulls
//! a CSV from an HTTP server on loopback (basic auth), through preview,
//! import and history like Personio; bad rows are reported per row and
//! never abort the import; a malformed file fails clearly and changes
//! nothing; and the connector passes every conformance rule.

use hrsync::directory::prelude::*;
use std::sync::Arc;

use hrsync::conformance::{self, Target};
use hrsync::connectors::BUNDLED_CSV;
use hrsync::directory::sqlite::SqliteStore;
use hrsync::directory::{IntegrationConfig, IntegrationId, User, UserQuery, UserStatus};
use hrsync::secrets::SecretBox;
use hrsync::sync::engine::RunRequest;
use hrsync::sync::{SyncEngine, SyncError};
use hrsync_e2e::personio;

use crate::served::ServedFile;

/// `Authorization` for hr / export-secret.
const BASIC: &str = "Basic aHI6ZXhwb3J0LXNlY3JldA==";
/// `Authorization` for the token export-token.
const BEARER: &str = "Bearer export-token";

const EXPORT: &str = "\
id,first_name,last_name,email,status,manager_id,start_date,job_title,department
1,Ada,Lovelace,ada@acme.example,active,,2019-04-01,CEO,Management
2,Grace,Hopper,grace@acme.example,active,1,2020-02-01,CTO,Engineering
3,Alan,Turing,alan@acme.example,active,2,01.06.2021,Engineer,Engineering
4,Short,Row
2,Dupe,Licate,dupe@acme.example,active,1,,,
5,Katherine,Johnson,katherine@acme.example,leave,2,2022-13-01,Analyst,Engineering
6,Edsger,Dijkstra,edsger@acme.example,retired,2,,Engineer,Engineering
";

/// The export at /people.csv behind basic or bearer auth.
type Export = ServedFile;

async fn export(body: &str) -> Export {
    let kind = |body: &str| if body.starts_with('<') { "text/html" } else { "text/csv" };
    ServedFile::serve("/people.csv", &[BASIC, BEARER], kind, body).await
}

fn settings(export: &Export, password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("url", export.url.clone()),
        ("auth", "basic".into()),
        ("username", "hr".into()),
        ("password", password.into()),
    ]
}

struct Csv {
    store: Arc<SqliteStore>,
    engine: SyncEngine,
    integration: IntegrationId,
}

async fn csv(export: &Export) -> Csv {
    let dir = std::env::temp_dir().join(format!("hrsync-csv-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.join("hrsync.db"), SecretBox::from_key(&[5; 32])).unwrap());
    let (runtime, _) = personio().await;
    let connector = runtime.load("bundled:csv", BUNDLED_CSV).await.expect("the CSV connector loads");
    assert_eq!(connector.info.id, "csv-export");
    let mut config = IntegrationConfig::new("csv-export", "HR export");
    for (k, v) in settings(export, "export-secret") {
        config.settings.insert(k.into(), v);
    }
    config.secret_keys.insert("password".into());
    config.grants = vec![export.origin()];
    let integration = store.create_integration(&config).unwrap();
    let engine = SyncEngine::new(runtime.clone(), store.clone(), vec![connector]);
    Csv { store, engine, integration }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

impl Csv {
    fn users(&self) -> Vec<User> {
        let (mut users, _) = self.store.users(&UserQuery { limit: 1000, ..UserQuery::default() }).unwrap();
        users.sort_by_key(|u| u.id);
        users
    }

    fn by_email(&self, email: &str) -> User {
        self.users().into_iter().find(|u| u.profile.email.as_str() == email).unwrap_or_else(|| panic!("{email}"))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_goes_through_preview_import_and_history_and_bad_rows_are_reported_per_row() {
    let export = export(EXPORT).await;
    let c = csv(&export).await;

    let preview = c.engine.preview(&RunRequest::manual(c.integration)).await.unwrap();
    assert_eq!(preview.run.counts.created, 4, "{:?}", preview.run.counts);
    let messages: Vec<String> = preview.issues.iter().map(|i| i.message.clone()).collect();
    for expected in ["row 5 has 3 fields", "row 6 uses the id `2` of row 3", "2022-13-01", "status `retired`"] {
        assert!(messages.iter().any(|m| m.contains(expected)), "no issue with `{expected}`: {messages:?}");
    }

    let request = RunRequest { from_preview: Some(preview.run.id), ..RunRequest::manual(c.integration) };
    let import = c.engine.import(&request).await.unwrap();
    assert_eq!(import.run.counts.created, 4);
    let (ada, grace, alan) =
        (c.by_email("ada@acme.example"), c.by_email("grace@acme.example"), c.by_email("alan@acme.example"));
    assert_eq!(grace.manager_id, Some(ada.id));
    assert_eq!(alan.manager_id, Some(grace.id));
    assert_eq!(alan.profile.start_date, chrono::NaiveDate::from_ymd_opt(2021, 6, 1));
    assert_eq!(grace.profile.job_title.as_deref(), Some("CTO"));
    let katherine = c.by_email("katherine@acme.example");
    assert_eq!((katherine.profile.status, katherine.profile.start_date), (UserStatus::Active, None));

    // The export changes: a promotion, a leaver, a new manager.
    export.set(
        &EXPORT
            .replace(
                "3,Alan,Turing,alan@acme.example,active,2,01.06.2021,Engineer",
                "3,Alan,Turing,alan@acme.example,active,1,01.06.2021,Principal Engineer",
            )
            .replace(
                "5,Katherine,Johnson,katherine@acme.example,leave",
                "5,Katherine,Johnson,katherine@acme.example,inactive",
            ),
    );
    let again = c.engine.import(&RunRequest::manual(c.integration)).await.unwrap();
    assert_eq!((again.run.counts.updated, again.run.counts.deactivated), (1, 1), "{:?}", again.run.counts);
    let alan = c.by_email("alan@acme.example");
    assert_eq!((alan.manager_id, alan.profile.job_title.as_deref()), (Some(ada.id), Some("Principal Engineer")));
    assert_eq!(c.by_email("katherine@acme.example").profile.status, UserStatus::Inactive);
    let history = c.store.run_changes(again.run.id, Some(alan.id)).unwrap();
    assert!(
        history[0]
            .fields
            .iter()
            .any(|f| f.field == hrsync::model::Field::JobTitle && f.after.as_deref() == Some("Principal Engineer"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_export_fails_with_what_is_wrong_and_changes_nothing() {
    let export = export(EXPORT).await;
    let c = csv(&export).await;
    c.engine.import(&RunRequest::manual(c.integration)).await.unwrap();
    let before = c.users();

    for (body, says) in [
        ("<!doctype html><title>Sign in</title>", "HTML, not CSV"),
        ("name;mail\nAda;ada@acme.example\n", "no `id` column"),
    ] {
        export.set(body);
        let err = c.engine.import(&RunRequest::manual(c.integration)).await.unwrap_err();
        assert!(matches!(err, SyncError::Fetch { .. }), "{err:?}");
        assert!(err.to_string().contains(says), "{err}");
        assert_eq!(c.users(), before, "nothing changed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn test_connection_lists_the_columns_and_rejects_a_wrong_password() {
    let export = export(EXPORT).await;
    let c = csv(&export).await;
    let report = c.engine.check(c.integration).await.unwrap();
    let columns: Vec<&str> = report.readable.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(
        columns,
        ["id", "first_name", "last_name", "email", "status", "manager_id", "start_date", "job_title", "department"]
    );
    let missing: Vec<(&str, bool)> = report.missing.iter().map(|m| (m.key.as_str(), m.required)).collect();
    assert_eq!(missing, [("termination_date", false), ("employee_id", false)]);
    assert!(report.warnings.iter().any(|w| w.contains("2 rows cannot be imported")), "{:?}", report.warnings);

    let mut config = c.store.integration(c.integration).unwrap().config;
    config.settings.insert("password".into(), "wrong".into());
    c.store.update_integration(c.integration, &config).unwrap();
    let err = c.engine.check(c.integration).await.unwrap_err();
    assert!(err.to_string().contains("refused the credentials"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bearer_token_is_sent_and_a_wrong_one_is_refused() {
    let export = export(EXPORT).await;
    let c = csv(&export).await;
    let mut config = c.store.integration(c.integration).unwrap().config;
    config.settings.insert("auth".into(), "bearer".into());
    config.settings.insert("token".into(), "export-token".into());
    config.secret_keys.insert("token".into());
    c.store.update_integration(c.integration, &config).unwrap();
    let report = c.engine.import(&RunRequest::manual(c.integration)).await.unwrap();
    assert_eq!(report.run.counts.created, 4, "{:?}", report.run.counts);

    config.settings.insert("token".into(), "stolen-token".into());
    c.store.update_integration(c.integration, &config).unwrap();
    let err = c.engine.check(c.integration).await.unwrap_err();
    assert!(err.to_string().contains("refused the credentials"), "{err}");
    assert!(!err.to_string().contains("stolen-token"), "the token never reaches messages: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_csv_connector_passes_every_conformance_rule() {
    let export = export(EXPORT).await;
    let (runtime, _) = personio().await;
    let target = Target {
        settings: settings(&export, "export-secret")
            .into_iter()
            .map(|(k, v)| hrsync::model::Entry { key: k.into(), value: v })
            .collect(),
        grants: vec![export.origin()],
    };
    let report = conformance::run(runtime, "csv.wasm", BUNDLED_CSV, &target).await;
    assert!(report.passed(), "{}", report.render());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_connector_reports_progress_through_what_contract_0_2_0_added() {
    let export = export(EXPORT).await;
    let (runtime, _) = personio().await;
    let connector = runtime.load("bundled:csv", BUNDLED_CSV).await.unwrap();
    let grants = hrsync::runtime::egress::Grants::parse(&[export.origin()]).unwrap();
    let mut session = runtime.session(&connector, grants).await.unwrap();
    assert_eq!(session.reported_progress(), None);
    let settings: Vec<_> = settings(&export, "export-secret")
        .into_iter()
        .map(|(k, v)| hrsync::model::Entry { key: k.into(), value: v })
        .collect();
    let page = session
        .fetch_page(&settings, &hrsync::model::FetchRequest { cursor: None, updated_since: None })
        .await
        .unwrap();
    let rows = page.records.len() as u64;
    assert_eq!(rows, 7, "5 people and 2 unusable rows");
    assert_eq!(session.reported_progress(), Some((rows, Some(rows))));
}
