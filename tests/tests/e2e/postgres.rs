//! The real Personio component syncing a sandbox company into PostgreSQL:
//! the same directory as SQLite gives, run by run, with the same engine.

use std::sync::Arc;

use hrsync::directory::postgres::PgStore;
use hrsync::directory::sqlite::SqliteStore;
use hrsync::directory::{DirectoryStore, IntegrationConfig, IntegrationId, User, UserQuery};
use hrsync::sandbox::Edit;
use hrsync::secrets::SecretBox;
use hrsync::sync::SyncEngine;
use hrsync::sync::engine::{RevertRequest, RunRequest};
use hrsync_e2e::{personio, personio_settings, sandbox};

/// Every user as the source knows them: source id, profile, and the
/// manager's source id — ids differ between databases, people must not.
fn directory(store: &dyn DirectoryStore) -> Vec<(Option<String>, String, Option<String>)> {
    let (users, _) = store.users(&UserQuery { limit: 1_000_000, ..UserQuery::default() }).unwrap();
    let source = |u: &User| u.managed_by.as_ref().map(|m| m.1.clone());
    let by_id = |id| users.iter().find(|u| u.id == id).and_then(source);
    let mut people: Vec<_> =
        users.iter().map(|u| (source(u), format!("{:?}", u.profile), u.manager_id.and_then(by_id))).collect();
    people.sort();
    people
}

async fn engine(store: Arc<dyn DirectoryStore>, url: &str) -> (SyncEngine, IntegrationId) {
    let (runtime, connector) = personio().await;
    let mut config = IntegrationConfig::new("personio", "Acme");
    for e in personio_settings(url, &[("import-statuses", "active,onboarding,leave,inactive")]) {
        config.settings.insert(e.key, e.value);
    }
    config.secret_keys.insert("client-secret".into());
    config.grants = vec![url.to_string()];
    let integration = store.create_integration(&config).unwrap();
    (SyncEngine::new(runtime.clone(), store, vec![connector.clone()]), integration)
}

#[tokio::test(flavor = "multi_thread")]
async fn imports_into_postgres_give_the_directory_sqlite_gives() {
    let (company, running) = sandbox(150).await;
    company.set_rate_limit(None);
    let cluster = hrsync_pg_cluster::Cluster::start().unwrap();
    let url = cluster.create_database("e2e").unwrap();
    let postgres: Arc<dyn DirectoryStore> = Arc::new(PgStore::connect(&url, SecretBox::from_key(&[4; 32])).unwrap());
    let sqlite: Arc<dyn DirectoryStore> = Arc::new(SqliteStore::in_memory(SecretBox::from_key(&[4; 32])).unwrap());
    let (on_postgres, pg_integration) = engine(postgres.clone(), &running.url).await;
    let (on_sqlite, sqlite_integration) = engine(sqlite.clone(), &running.url).await;

    let both = |pg: &hrsync::sync::RunReport, lite: &hrsync::sync::RunReport| {
        assert_eq!(pg.run.counts, lite.run.counts, "the same counts");
        assert_eq!(pg.changes.len(), lite.changes.len(), "the same history");
    };
    let first = (
        on_postgres.import(&RunRequest::manual(pg_integration)).await.unwrap(),
        on_sqlite.import(&RunRequest::manual(sqlite_integration)).await.unwrap(),
    );
    both(&first.0, &first.1);
    assert!(first.0.run.counts.created > 100, "{:?}", first.0.run.counts);
    assert_eq!(directory(&*postgres), directory(&*sqlite));

    // A move, a title change and a leaver, imported by both.
    let people = company.employees();
    let (mover, boss, leaver) = (people[20].id, people[3].id, people[40].id);
    company
        .apply(mover, Edit { supervisor_id: Some(Some(boss)), position: Some("Lead".into()), ..Edit::default() })
        .unwrap();
    company.apply(leaver, Edit { status: Some(hrsync::sandbox::Status::Inactive), ..Edit::default() }).unwrap();
    let second = (
        on_postgres.import(&RunRequest::manual(pg_integration)).await.unwrap(),
        on_sqlite.import(&RunRequest::manual(sqlite_integration)).await.unwrap(),
    );
    both(&second.0, &second.1);
    let counts = second.0.run.counts;
    assert!(counts.updated >= 1 && counts.manager_changes >= 1 && counts.deactivated >= 1, "{counts:?}");
    assert_eq!(directory(&*postgres), directory(&*sqlite));
    let history = postgres.history(Some(pg_integration), Default::default(), 0, 10).unwrap();
    assert_eq!(history.len(), 2, "both imports in PostgreSQL's history");

    // A revert restores what the second import changed, on both.
    let reverts = (
        on_postgres.revert(RevertRequest::new(second.0.run.id, Some("admin".into()))).await.unwrap().1,
        on_sqlite.revert(RevertRequest::new(second.1.run.id, Some("admin".into()))).await.unwrap().1,
    );
    both(&reverts.0, &reverts.1);
    assert!(!reverts.0.changes.is_empty(), "the revert changed something");
    assert_eq!(directory(&*postgres), directory(&*sqlite));
}
