//! Helpers shared by the end-to-end tests: the real compiled components, a
//! sandbox on loopback, settings.

use hrsync::directory::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hrsync::directory::sqlite::SqliteStore;
use hrsync::directory::{IntegrationConfig, IntegrationId, User, UserQuery};
use hrsync::secrets::SecretBox;
use hrsync::sync::SyncEngine;

use hrsync::model::Entry;
use hrsync::runtime::egress::Grants;
use hrsync::runtime::{Connector, Limits, Runtime};
use hrsync::sandbox::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Running, Sandbox, SandboxConfig};
use tokio::sync::OnceCell;

/// The hostile test connector, built by this crate's build script against
/// contract 0.1.0.
pub static HOSTILE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hostile.wasm"));

/// The same connector built against contract 0.2.0.
pub static HOSTILE_0_2: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hostile-0.2.wasm"));

/// Builds of the hostile connector whose `describe` panics, loops forever or
/// exhausts its memory: (name, component).
pub const UNLOADABLE: [(&str, &[u8]); 3] = [
    ("describe-panic", include_bytes!(concat!(env!("OUT_DIR"), "/hostile-describe-panic.wasm"))),
    ("describe-loop", include_bytes!(concat!(env!("OUT_DIR"), "/hostile-describe-loop.wasm"))),
    ("describe-memory", include_bytes!(concat!(env!("OUT_DIR"), "/hostile-describe-memory.wasm"))),
];

/// Key/value settings.
pub fn entries(pairs: &[(&str, &str)]) -> Vec<Entry> {
    pairs.iter().map(|(k, v)| Entry::new(*k, *v)).collect()
}

/// Where compiled components are cached, so each is compiled once per machine.
fn cache_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("hrsync-e2e-component-cache")
}

/// Limits small enough for hostile components to hit quickly.
pub fn test_limits() -> Limits {
    Limits {
        memory_bytes: 64 << 20,
        cpu_per_call: Duration::from_secs(2),
        wall_per_call: Duration::from_secs(20),
        ..Limits::default()
    }
}

/// A runtime with test limits and the bundled Personio connector, loaded once per test binary.
pub async fn personio() -> &'static (Arc<Runtime>, Connector) {
    static SHARED: OnceCell<(Arc<Runtime>, Connector)> = OnceCell::const_new();
    SHARED
        .get_or_init(|| async {
            let runtime = Arc::new(Runtime::new(test_limits(), Some(cache_dir())).expect("runtime"));
            let connector = runtime
                .load("bundled:personio", hrsync::connectors::BUNDLED_PERSONIO)
                .await
                .expect("the bundled Personio connector loads");
            (runtime, connector)
        })
        .await
}

/// The hostile connector on a runtime with test limits, loaded once per test binary.
pub async fn hostile() -> &'static (Arc<Runtime>, Connector) {
    static SHARED: OnceCell<(Arc<Runtime>, Connector)> = OnceCell::const_new();
    SHARED
        .get_or_init(|| async {
            let runtime = Arc::new(Runtime::new(test_limits(), Some(cache_dir())).expect("runtime"));
            let connector = runtime.load("hostile.wasm", HOSTILE).await.expect("the hostile connector loads");
            (runtime, connector)
        })
        .await
}

/// A sandbox of `people` (seed 7) served on loopback.
pub async fn sandbox(people: usize) -> (Sandbox, Running) {
    let sandbox = Sandbox::new(SandboxConfig::new(people, 7));
    let running = sandbox.serve("127.0.0.1:0".parse().unwrap()).await.expect("serve the sandbox");
    (sandbox, running)
}

/// Personio settings pointing at a sandbox, with the demo credential, on
/// API v1 (the v2 tests say `("api-version", "v2")` in `extra`: the last
/// value of a key wins).
pub fn personio_settings(url: &str, extra: &[(&str, &str)]) -> Vec<Entry> {
    let mut pairs = vec![
        ("api-base-url", url),
        ("client-id", DEMO_CLIENT_ID),
        ("client-secret", DEMO_CLIENT_SECRET),
        ("api-version", "v1"),
    ];
    pairs.extend_from_slice(extra);
    entries(&pairs)
}

/// A grant for exactly the sandbox's origin.
pub fn grant(url: &str) -> Grants {
    Grants::parse(&[url]).expect("a loopback origin")
}

/// A directory database, a sandbox company and a Personio integration pointing at it.
pub struct World {
    pub sandbox: Sandbox,
    pub running: Running,
    pub store: Arc<SqliteStore>,
    pub engine: SyncEngine,
    pub integration: IntegrationId,
    pub db: PathBuf,
}

impl World {
    /// `people` sandbox employees; `statuses` is the `import-statuses` setting.
    pub async fn new(people: usize, statuses: &str) -> World {
        let (sandbox, running) = sandbox(people).await;
        let dir = std::env::temp_dir().join(format!("hrsync-world-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("hrsync.db");
        let store = Arc::new(SqliteStore::open(&db, SecretBox::from_key(&[9; 32])).expect("open the directory"));
        let (runtime, connector) = personio().await;
        let mut config = IntegrationConfig::new("personio", "Acme");
        for e in personio_settings(&running.url, &[("import-statuses", statuses), ("company-subdomain", "acme")]) {
            config.settings.insert(e.key, e.value);
        }
        config.secret_keys.insert("client-secret".into());
        config.grants = vec![running.url.clone()];
        let integration = store.create_integration(&config).unwrap();
        let engine = SyncEngine::new(runtime.clone(), store.clone(), vec![connector.clone()]);
        World { sandbox, running, store, engine, integration, db }
    }

    /// Every user, in a stable order.
    pub fn users(&self) -> Vec<User> {
        let (mut users, _) = self.store.users(&UserQuery { limit: 1_000_000, ..UserQuery::default() }).unwrap();
        users.sort_by_key(|u| u.id);
        users
    }

    /// The user managed for a sandbox employee id.
    pub fn user_of(&self, employee: u64) -> Option<User> {
        let sid = employee.to_string();
        self.users().into_iter().find(|u| u.managed_by.as_ref().is_some_and(|(_, s)| *s == sid))
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
