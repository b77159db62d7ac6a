//! The server the API, page and security tests run against: the real app
//! on loopback with the bundled connectors, a SQLite directory and a sandbox.

use std::sync::Arc;

use hrsync::accounts::Accounts;
use hrsync::audit::Audit;
use hrsync::directory::DirectoryStore;
use hrsync::directory::postgres::PgStore;
use hrsync::directory::sqlite::SqliteStore;
use hrsync::runtime::{Limits, Runtime};
use hrsync::sandbox::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Running, Sandbox, SandboxConfig};
use hrsync::secrets::SecretBox;
use hrsync::sync::SyncEngine;
use hrsync::web::AppState;
use serde_json::{Value, json};

use crate::common::{Reply, request};

pub const PASSWORD: &str = "correct horse battery staple";

pub struct Server {
    pub base: String,
    pub sandbox: Sandbox,
    pub sandbox_url: String,
    pub accounts: Arc<Accounts>,
    /// The default tenant's directory.
    pub store: Arc<dyn DirectoryStore>,
    /// The database, when the server runs on PostgreSQL.
    pub postgres: Option<PgStore>,
    /// Every tenant's handles, as the server has them.
    pub tenancy: Arc<hrsync::tenancy::Tenancy>,
    _running: Running,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// How the server under test is set up.
#[derive(Default, Clone)]
pub struct Options {
    /// Whether the server is told a courier delivers the outbox.
    pub smtp: bool,
    /// Reached over HTTPS (an https `public_url`).
    pub https: bool,
    /// Proxies whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// A PostgreSQL database URL: serve its tenants instead of a SQLite file's one.
    pub postgres: Option<String>,
}

pub async fn server() -> Server {
    server_with(Options::default()).await
}

pub async fn server_with(options: Options) -> Server {
    let dir = std::env::temp_dir().join(format!("hrsync-api-{}-{}", std::process::id(), rand_suffix()));
    let db = dir.join("hrsync.db");
    let secrets = SecretBox::from_key(&[4; 32]);
    let postgres = options.postgres.as_deref().map(|url| PgStore::connect(url, secrets.clone()).unwrap());
    let (store, accounts, audit): (Arc<dyn DirectoryStore>, _, _) = match &postgres {
        Some(pg) => (
            Arc::new(pg.clone()),
            Arc::new(Accounts::new(Box::new(pg.clone()))),
            Arc::new(Audit::new(Box::new(pg.clone()))),
        ),
        None => (
            Arc::new(SqliteStore::open(&db, secrets).unwrap()),
            Arc::new(Accounts::open(&db).unwrap()),
            Arc::new(Audit::open(&db).unwrap()),
        ),
    };
    accounts.ensure_admin(Some(PASSWORD)).unwrap();
    let runtime =
        Arc::new(Runtime::new(Limits::default(), Some(std::env::temp_dir().join("hrsync-api-cache"))).unwrap());
    let connector = runtime.load("bundled:personio", hrsync::connectors::BUNDLED_PERSONIO).await.unwrap();
    let csv = runtime.load("bundled:csv", hrsync::connectors::BUNDLED_CSV).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut engine = SyncEngine::new(runtime, store.clone(), vec![connector, csv]);
    // Links in emails, and the address sources push changes to.
    engine.invite.public_url = base.clone();
    let engine = Arc::new(engine);
    let sandbox = Sandbox::new(SandboxConfig::new(60, 3));
    let running = sandbox.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let webhooks = Arc::new(hrsync::webhooks::Webhooks::new(engine.clone(), &base));
    let default = hrsync::tenancy::Scope {
        tenant: hrsync::model::TenantId::DEFAULT,
        engine,
        accounts: accounts.clone(),
        audit,
        webhooks,
    };
    let tenancy = match &postgres {
        Some(pg) => hrsync::tenancy::Tenancy::postgres(pg.clone(), default),
        None => hrsync::tenancy::Tenancy::single(default),
    };
    let tenancy = Arc::new(tenancy);
    let mut state = AppState::for_tenancy(tenancy.clone());
    state.smtp = options.smtp;
    state.https = options.https;
    state.trusted_proxies = options.trusted_proxies;
    tokio::spawn(hrsync::web::serve(listener, state, async {
        let _ = stopped.await;
    }));
    Server {
        base,
        sandbox,
        sandbox_url: running.url.clone(),
        accounts,
        store,
        postgres,
        tenancy,
        _running: running,
        _stop: stop,
    }
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A signed-in browser: cookie and CSRF token.
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn sign_in(&self) -> Browser {
        self.sign_in_as("admin", PASSWORD).await
    }

    pub async fn sign_in_as(&self, username: &str, password: &str) -> Browser {
        let r = request(
            "POST",
            &self.url("/api/v1/session"),
            &[("Content-Type", "application/json")],
            &json!({"username": username, "password": password}).to_string(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let set_cookie = r.header("set-cookie").expect("a session cookie").to_string();
        assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"), "{set_cookie}");
        let cookie = set_cookie.split(';').next().unwrap().to_string();
        Browser { cookie, csrf: r.json()["csrf_token"].as_str().unwrap().to_string() }
    }

    /// A request as the signed-in browser, with its CSRF token.
    pub async fn call(&self, b: &Browser, method: &str, path: &str, body: Option<Value>) -> Reply {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        request(
            method,
            &self.url(path),
            &[("Cookie", &b.cookie), ("X-CSRF-Token", &b.csrf), ("Content-Type", "application/json")],
            &body,
        )
        .await
    }

    /// Polls a run (`/api/v1/runs/{id}`) until it has ended; returns it.
    pub async fn finished(&self, b: &Browser, status_url: &str) -> Value {
        loop {
            let run = self.call(b, "GET", status_url, None).await.json();
            if run["run"]["state"] != "running" {
                return run;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub async fn integration(&self, b: &Browser) -> i64 {
        let r = self
            .call(b, "POST", "/api/v1/integrations", Some(json!({
                "connector_id": "personio", "name": "Acme",
                "settings": {"api-base-url": self.sandbox_url, "client-id": DEMO_CLIENT_ID, "client-secret": DEMO_CLIENT_SECRET, "api-version": "v1",
                    "import-statuses": "active,onboarding,leave,inactive"},
                "grants": [self.sandbox_url]
            })))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["id"].as_i64().unwrap()
    }
}
