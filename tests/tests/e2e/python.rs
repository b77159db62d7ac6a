//! The Python connector of the authors' guide (`plugin/python/app.py`),
//! built here with componentize-py against `wit/0.3.0`'s
//! `hr-connector-http` world: it passes every conformance rule and imports
//! a company end to end, its diff the host's canonical one. The guide's
//! Python code is the file itself.
//!
//! componentize-py comes from PyPI (the README names the version); the test
//! takes it from `COMPONENTIZE_PY` or the `PATH`, and fails saying how to
//! install it when neither has it.

use hrsync::directory::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use hrsync::conformance::{self, Target};
use hrsync::directory::sqlite::SqliteStore;
use hrsync::directory::{IntegrationConfig, User, UserQuery, UserStatus};
use hrsync::runtime::{Limits, Runtime};
use hrsync::secrets::SecretBox;
use hrsync::sync::SyncEngine;
use hrsync::sync::engine::RunRequest;
use tokio::sync::OnceCell;

use crate::served::ServedFile;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const TOKEN: &str = "Bearer people-token";

const PEOPLE: &str = r#"{"people": [
  {"id": 1, "first_name": "Ada", "last_name": "Lovelace", "email": "ada@acme.example", "title": "CEO", "start_date": "2019-04-01"},
  {"id": 2, "first_name": "Grace", "last_name": "Hopper", "email": "grace@acme.example", "manager_id": 1, "department": "Engineering"},
  {"id": 3, "first_name": "Alan", "last_name": "Turing", "email": "alan@acme.example", "manager_id": 2, "status": "leave"},
  {"id": 4, "first_name": "Kurt", "last_name": "Gödel", "email": "kurt@acme.example", "manager_id": 2, "start_date": "2021-02-30"},
  {"id": 5, "first_name": "Emmy", "last_name": "Noether", "email": "emmy@acme.example", "status": "inactive"}
]}"#;

/// Builds `app.py` into a component once per test binary, and compiles it
/// into the runtime's cache before any test uses it: compiling a Python
/// interpreter takes hundreds of MiB for a moment, which the conformance
/// runner's measure of the host's memory would otherwise count against the
/// connector.
async fn component() -> &'static [u8] {
    static BUILT: OnceCell<Vec<u8>> = OnceCell::const_new();
    BUILT
        .get_or_init(|| async {
            let bytes = tokio::task::spawn_blocking(build).await.expect("the build ran");
            runtime().await.load("people-json.wasm", &bytes).await.expect("the component loads");
            bytes
        })
        .await
}

fn build() -> Vec<u8> {
    let tool = std::env::var_os("COMPONENTIZE_PY").unwrap_or_else(|| "componentize-py".into());
    let out = std::env::temp_dir().join(format!("hrsync-people-json-{}.wasm", std::process::id()));
    let app = Path::new(ROOT).join("plugin/python");
    let status = Command::new(&tool)
        .current_dir(&app)
        .args(["-d", "../../wit/0.3.0", "-w", "hr-connector-http", "componentize", "app", "-o"])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): install it with `pip install componentize-py==0.25.1` (the README's test prerequisites), or point COMPONENTIZE_PY at it",
                PathBuf::from(&tool).display()
            )
        });
    assert!(status.success(), "componentize-py could not build plugin/python/app.py");
    let bytes = std::fs::read(&out).expect("the built component");
    let _ = std::fs::remove_file(&out);
    bytes
}

/// Python's runtime needs more than the hostile tests' small limits: the
/// defaults admins get.
async fn runtime() -> &'static Arc<Runtime> {
    static SHARED: OnceCell<Arc<Runtime>> = OnceCell::const_new();
    SHARED
        .get_or_init(|| async {
            let cache = std::env::temp_dir().join("hrsync-e2e-component-cache");
            Arc::new(Runtime::new(Limits::default(), Some(cache)).expect("runtime"))
        })
        .await
}

/// The people JSON on loopback, behind a bearer token.
async fn source(body: &str) -> ServedFile {
    ServedFile::serve("/people.json", &[TOKEN], |_| "application/json", body).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_connector_passes_every_conformance_rule() {
    let source = source(PEOPLE).await;
    let target = Target {
        settings: hrsync_e2e::entries(&[("url", &source.url), ("token", "people-token")]),
        grants: vec![source.origin()],
    };
    let report = conformance::run(runtime().await, "people-json.wasm", component().await, &target).await;
    assert!(report.passed(), "{}", report.render());
    assert_eq!(report.wit_version.as_deref(), Some("0.3.0"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_connector_imports_a_company_end_to_end() {
    let source = source(PEOPLE).await;
    let runtime = runtime().await;
    let connector = runtime.load("people-json.wasm", component().await).await.expect("the Python connector loads");
    assert_eq!(connector.info.id, "people-json");

    let dir = std::env::temp_dir().join(format!("hrsync-python-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.join("hrsync.db"), SecretBox::from_key(&[6; 32])).unwrap());
    let mut config = IntegrationConfig::new("people-json", "People JSON");
    config.settings.insert("url".into(), source.url.clone());
    config.settings.insert("token".into(), "people-token".into());
    config.secret_keys.insert("token".into());
    config.grants = vec![source.origin()];
    config.secrets_for = config.grants.clone();
    let integration = store.create_integration(&config).unwrap();
    let engine = SyncEngine::new(runtime.clone(), store.clone(), vec![connector]);
    let users = || -> Vec<User> { store.users(&UserQuery { limit: 100, ..UserQuery::default() }).unwrap().0 };
    let by_email = |email: &str| users().into_iter().find(|u| u.profile.email.as_str() == email);

    let report = engine.import(&RunRequest::manual(integration)).await.unwrap();
    // Ada, Grace, Alan (on leave); Kurt's impossible date is his issue; Emmy has left.
    assert_eq!(report.run.counts.created, 3, "{:?}", report.run.counts);
    assert!(report.issues.iter().any(|i| i.message.contains("2021-02-30")), "{:?}", report.issues);
    let (ada, grace, alan) = (
        by_email("ada@acme.example").unwrap(),
        by_email("grace@acme.example").unwrap(),
        by_email("alan@acme.example").unwrap(),
    );
    assert_eq!(grace.manager_id, Some(ada.id));
    assert_eq!(alan.manager_id, Some(grace.id));
    assert_eq!(ada.profile.start_date, chrono::NaiveDate::from_ymd_opt(2019, 4, 1));
    assert_eq!(alan.profile.status, UserStatus::Active, "on leave is employed");
    assert!(by_email("emmy@acme.example").is_none());

    let again = engine.import(&RunRequest::manual(integration)).await.unwrap();
    assert_eq!((again.run.counts.created, again.run.counts.updated), (0, 0), "{:?}", again.run.counts);

    // Alan leaves; Grace is promoted.
    source.set(
        &PEOPLE.replace(r#""manager_id": 2, "status": "leave""#, r#""manager_id": 2, "status": "inactive""#).replace(
            r#""manager_id": 1, "department": "Engineering""#,
            r#""manager_id": 1, "department": "Engineering", "title": "CTO""#,
        ),
    );
    let changed = engine.import(&RunRequest::manual(integration)).await.unwrap();
    assert_eq!((changed.run.counts.deactivated, changed.run.counts.updated), (1, 1), "{:?}", changed.run.counts);
    assert_eq!(by_email("alan@acme.example").unwrap().profile.status, UserStatus::Inactive);
    assert_eq!(by_email("grace@acme.example").unwrap().profile.job_title.as_deref(), Some("CTO"));
}

#[test]
fn the_guide_walks_through_app_py_verbatim() {
    let guide = std::fs::read_to_string(Path::new(ROOT).join("wit/README.md")).unwrap();
    let app = std::fs::read_to_string(Path::new(ROOT).join("plugin/python/app.py")).unwrap();
    let section =
        guide.split("## Writing one in Python").nth(1).expect("the guide has a `## Writing one in Python` section");
    let block = section.split("```python\n").nth(1).expect("the walk-through has a ```python block");
    assert_eq!(
        block.split("```").next().unwrap(),
        app,
        "wit/README.md's Python walk-through differs from plugin/python/app.py: copy the file into the guide"
    );
}
