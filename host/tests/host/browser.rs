//! The admin pages in a real headless Chromium, driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`), against the real Personio
//! component and the sandbox: sign in, configure, test connection, save →
//! preview, confirm the import dialog, history, drill into a person, revert;
//! the directory search and a person page. A screenshot of every tab is
//! saved under `target/screenshots/`.
//!
//! Chromium missing is a failure, never a skip: install `chromium` and
//! `chromium-driver` (`.ci/run` does), or point `CHROMIUM` and
//! `CHROMEDRIVER` at them.

use hrsync::directory::prelude::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hrsync::accounts::Accounts;
use hrsync::directory::sqlite::SqliteStore;
use hrsync::runtime::{Limits, Runtime};
use hrsync::sandbox::company::{Email, Status};
use hrsync::sandbox::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Hire, Running, Sandbox, SandboxConfig};
use hrsync::secrets::SecretBox;
use hrsync::sync::SyncEngine;
use hrsync::web::AppState;

const PASSWORD: &str = "browser test password";
const HOSTILE: &str = "<script>window.pwned=1</script>";
const WAIT: Duration = Duration::from_secs(60);

fn tool(env: &str, default: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.exists(),
        "{} not found: the browser tests need Chromium. Install Debian's `chromium` and `chromium-driver` \
         (apt-get install {package}), or set {env} to its path.",
        path.display()
    );
    path
}

/// chromedriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn driver() -> Driver {
    let chromedriver = tool("CHROMEDRIVER", "/usr/bin/chromedriver", "chromium-driver");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let driver = Driver { child, port };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on port {port} within 10 s");
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let chromium = tool("CHROMIUM", "/usr/bin/chromium", "chromium");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,900", format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session through chromedriver")
}

struct App {
    base: String,
    store: Arc<SqliteStore>,
    engine: Arc<SyncEngine>,
    sandbox: Sandbox,
    sandbox_url: String,
    _running: Running,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn app(dir: &Path) -> App {
    let db = dir.join("hrsync.db");
    let store = Arc::new(SqliteStore::open(&db, SecretBox::from_key(&[9; 32])).unwrap());
    let accounts = Arc::new(Accounts::open(&db).unwrap());
    accounts.ensure_admin(Some(PASSWORD)).unwrap();
    let runtime = Arc::new(Runtime::new(Limits::default(), Some(dir.join("cache"))).unwrap());
    let connector = runtime.load("bundled:personio", hrsync::connectors::BUNDLED_PERSONIO).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut engine = SyncEngine::new(runtime, store.clone(), vec![connector]);
    engine.invite =
        hrsync::mail::Invite { company: Some("Acme".into()), public_url: base.clone(), ..Default::default() };
    let engine = Arc::new(engine);
    let sandbox = Sandbox::new(SandboxConfig::new(80, 11));
    let web_engine = engine.clone();
    let running = sandbox.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(hrsync::web::serve(
        listener,
        AppState::new(web_engine, accounts, Arc::new(hrsync::audit::Audit::open(&db).unwrap())),
        async {
            let _ = stopped.await;
        },
    ));
    App { base, store, engine, sandbox, sandbox_url: running.url.clone(), _running: running, _stop: stop }
}

impl App {
    /// A Personio integration against the sandbox, configured without the pages.
    fn integration(&self, name: &str) -> hrsync::directory::IntegrationId {
        let mut config = hrsync::directory::IntegrationConfig::new("personio", name);
        config.settings = [
            ("api-base-url", self.sandbox_url.as_str()),
            ("client-id", DEMO_CLIENT_ID),
            ("client-secret", DEMO_CLIENT_SECRET),
            // These walks are about the pages; v2 has its own tests.
            ("api-version", "v1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        config.secret_keys = ["client-secret".to_string()].into();
        config.grants = vec![self.sandbox_url.clone()];
        config.secrets_for = config.grants.clone();
        self.store.create_integration(&config).unwrap()
    }
}

/// The browser, the app and where screenshots go.
struct Session {
    c: Client,
    base: String,
    shots: PathBuf,
}

impl Session {
    async fn goto(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    async fn find(&self, css: &str) -> Element {
        self.c
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
    }

    /// The element's text; found again if a reload replaced it meanwhile.
    async fn text(&self, css: &str) -> String {
        for _ in 0..50 {
            if let Ok(text) = self.find(css).await.text().await {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("`{css}` kept going stale")
    }

    async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    async fn path(&self) -> String {
        let url = self.c.current_url().await.unwrap();
        format!("{}{}", url.path(), url.query().map(|q| format!("?{q}")).unwrap_or_default())
    }

    async fn html(&self) -> String {
        self.c.source().await.unwrap()
    }

    async fn shot(&self, name: &str) {
        let png = self.c.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// Waits for a background run shown on this page to end (app.js
    /// reloads the page then) and returns the run's state badge.
    async fn finished_run(&self) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut settled = 0;
        loop {
            let loaded = self.js("return document.readyState").await == "complete";
            let polling = self.c.find(Locator::Css("[data-poll-run]")).await.is_ok();
            settled = if loaded && !polling { settled + 1 } else { 0 };
            if settled == 3 {
                return self.html().await;
            }
            assert!(tokio::time::Instant::now() < deadline, "the run did not finish within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Clicks and waits until the browser has left the current page.
    async fn click_away(&self, css: &str) {
        let before = self.path().await;
        self.click(css).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.path().await == before {
            assert!(tokio::time::Instant::now() < deadline, "clicking `{css}` did not leave {before}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Unfolds the first person of a change list.
    async fn open_first_change(&self) {
        self.find("ul.changes > li details").await;
        self.js("document.querySelector('ul.changes > li details').open = true").await;
    }

    async fn js(&self, script: &str) -> serde_json::Value {
        self.c.execute(script, vec![]).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_configures_previews_imports_reviews_and_reverts_in_the_browser() {
    let dir = std::env::temp_dir().join(format!("hrsync-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    let app = app(&dir).await;
    // Someone in Personio with a hostile name: it must render as text.
    app.sandbox.hire(Hire {
        first_name: HOSTILE.into(),
        last_name: "Mallory".into(),
        email: Some("mallory@example.com".into()),
        supervisor_id: None,
        position: Some("<img src=x onerror=window.pwned=2>".into()),
        department: None,
        status: None,
        hire_date: None,
    });
    let driver = driver().await;
    let c = browser(&driver, &dir.join("chromium-profile")).await;
    let s = Session { c, base: app.base.clone(), shots: shots.clone() };

    // Sign in: the pages send strangers to the sign-in form and back.
    s.goto("/integrations").await;
    s.find("#sign-in").await;
    assert!(s.path().await.starts_with("/login?next=%2Fintegrations"), "{}", s.path().await);
    s.fill("#username", "admin").await;
    s.fill("#password", "wrong password").await;
    s.click_away("#sign-in").await;
    assert!(s.text("#login-error").await.contains("Wrong username or password"));
    s.fill("#username", "admin").await;
    s.fill("#password", PASSWORD).await;
    s.click_away("#sign-in").await;
    s.find("[data-connector=personio]").await;
    assert_eq!(s.path().await, "/integrations");
    s.shot("1-integrations").await;

    // Configure Personio against the sandbox and test the connection.
    s.click_away("[data-connector=personio] a.button").await;
    s.fill("#name", "Personio (browser test)").await;
    s.fill("#setting-client-id", DEMO_CLIENT_ID).await;
    s.fill("#setting-client-secret", "a mistyped secret").await;
    s.fill("#setting-api-base-url", &app.sandbox_url).await;
    // API v1 reads a hundred people a request: the walk stays quick (v2 has its own tests).
    s.js("document.querySelector('#setting-api-version').value = 'v1'").await;
    s.fill("#grants", &app.sandbox_url).await;
    // A wrong secret is tested, reported and not saved.
    s.click_away("#test-connection").await;
    let result = s.find("#check-result").await;
    assert_eq!(result.attr("data-ok").await.unwrap().as_deref(), Some("false"));
    assert!(result.text().await.unwrap().contains("credentials"), "{}", result.text().await.unwrap());
    assert!(s.text("#form-error").await.starts_with("Nothing was saved"));
    assert!(app.store.integrations().unwrap().is_empty(), "a failed test saves nothing");
    assert!(!s.html().await.contains("a mistyped secret"), "secrets are never sent back");
    assert_eq!(s.find("#name").await.prop("value").await.unwrap().as_deref(), Some("Personio (browser test)"));
    // With the right one, the test passes and the integration is saved.
    s.fill("#setting-client-secret", DEMO_CLIENT_SECRET).await;
    s.click_away("#test-connection").await;
    let result = s.find("#check-result").await;
    assert_eq!(result.attr("data-ok").await.unwrap().as_deref(), Some("true"), "{}", result.text().await.unwrap());
    assert!(result.text().await.unwrap().starts_with("Connected"));
    let config = s.html().await;
    assert!(s.path().await.ends_with("/configuration?saved=1"), "{}", s.path().await);
    assert_eq!(s.text("#saved").await, "Saved.");
    // The report sits right under the button that asked for it.
    s.find("form.config .actions + #check #check-result").await;
    // The address typed is offered, ticked, as one the connector may reach.
    let granted = s
        .js(&format!("return document.querySelector('input[name=grant][value=\"{}\"]').checked", app.sandbox_url))
        .await;
    assert_eq!(granted, serde_json::json!(true));
    assert!(!config.contains(DEMO_CLIENT_SECRET), "the stored secret must never be sent back");
    assert_eq!(s.find("#setting-client-secret").await.prop("value").await.unwrap().as_deref(), Some(""));
    s.find("[data-stored=client-secret]").await;
    // The field-mapping picker offers what the connector can read.
    let options = s.js("return document.querySelectorAll('#setting-department-attribute-options option').length").await;
    assert!(options.as_u64().unwrap() > 5, "{options}");
    s.shot("2-configuration").await;

    // Save → preview, which runs in the background.
    s.click_away("#save").await;
    s.find("nav.tabs a[aria-current][href$='/preview']").await;
    s.finished_run().await;
    let created: u64 = s.text("[data-count=created] dd").await.parse().unwrap();
    assert!(created > 50, "{created} new people in the preview");
    assert!(s.c.find_all(Locator::Css("ul.changes > li")).await.unwrap().len() <= 50, "one page at a time");
    assert!(s.text("nav.pager").await.contains("Page 1 of"));
    // Per person, field by field.
    s.open_first_change().await;
    assert!(s.text("ul.changes > li table.fields").await.contains("Email"));
    // The hostile name is text, and nothing of it ran.
    s.fill("#filter-q", "Mallory").await;
    s.click_away("#filter-apply").await;
    s.find("ul.changes > li[data-kind=create]").await;
    assert!(s.text("ul.changes").await.contains(HOSTILE));
    assert_eq!(s.js("return window.pwned === undefined").await, serde_json::json!(true));
    s.shot("3-preview").await;

    // Import now: the dialog says what will happen; confirming runs it.
    s.click("#import-now").await;
    let dialog = s.text("#import-dialog").await;
    assert!(dialog.contains(&format!("{created} new people")) && dialog.contains("Nobody is emailed"), "{dialog}");
    s.shot("4-import-dialog").await;
    s.click_away("#import-dialog-confirm").await;
    s.find("h1 .badge").await;
    assert!(s.path().await.starts_with("/runs/"));
    s.finished_run().await;
    assert_eq!(s.text("h1 .badge").await, "succeeded");
    assert!(s.text("#run-summary").await.contains(&format!("{created} new")));
    s.shot("5-import-run").await;
    let import_path = s.path().await;

    // Informing staff from the directory: a password email for one person,
    // queued in the outbox (no SMTP here) and readable on the Emails page.
    let people = app.sandbox.employees();
    let active = |id: u64| people.iter().any(|e| e.id == id && e.status == Status::Active);
    let someone = people
        .iter()
        .find(|e| {
            e.status == Status::Active && e.supervisor.is_some_and(active) && matches!(e.email, Email::Address(_))
        })
        .expect("someone with a supervisor");
    let full_name = format!("{} {}", someone.first_name, someone.last_name);
    let Email::Address(address) = &someone.email else { unreachable!() };
    // "Pick everyone on this page" ticks each row, and the bar counts them.
    s.goto("/directory").await;
    let rows = s.c.find_all(Locator::Css("#users tbody tr")).await.unwrap().len();
    s.click("#pick-all").await;
    assert_eq!(s.text("#picked-count").await, format!("{rows} people picked"));
    s.click("#pick-all").await;
    assert_eq!(s.text("#picked-count").await, "Tick people to email them.");
    s.goto(&format!("/directory?q={}", full_name.replace(' ', "+"))).await;
    s.click("#users tbody tr:first-child input[type=checkbox]").await;
    assert_eq!(s.text("#picked-count").await, "1 person picked");
    s.click_away("#send-invitations").await;
    // A confirmation first, stating the count.
    assert!(s.text("#invite-count").await.contains("Send a password email to 1 person?"));
    s.click_away("#invite-confirm-send").await;
    assert!(
        s.text("#invite-result").await.starts_with("Queued 1 password email"),
        "{}",
        s.text("#invite-result").await
    );
    s.click_away("#invite-result a").await;
    assert!(s.text("#emails li:first-child summary").await.contains(address.as_str()));
    s.js("document.querySelector('#emails li details').open = true").await;
    let mail = s.text("#emails li:first-child pre.mail-text").await;
    s.shot("5b-emails").await;
    let link = mail.split_whitespace().find(|w| w.contains("/set-password/")).expect("a set-password link").to_string();
    // The person follows the link and chooses a password; the link then expires.
    s.c.goto(&link).await.unwrap();
    s.fill("#new-password", "a brand new password").await;
    s.fill("#repeat-password", "a brand new password").await;
    s.click("#set-password").await;
    s.find("#password-set").await;
    s.c.goto(&link).await.unwrap();
    s.find("#link-error").await;
    s.goto(&import_path).await;

    // History lists what changed the directory: the import. Previews are
    // one tick away. Drill into the import.
    s.click_away("p.breadcrumb a[href$='/history']").await;
    let rows = s.c.find_all(Locator::Css("#runs tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 1, "the import; the preview is filtered out");
    assert!(s.text("#runs tbody tr:first-child").await.contains("Import"));
    s.click("#show-previews").await;
    s.click_away("#history-filter-apply").await;
    let rows = s.c.find_all(Locator::Css("#runs tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 2, "a preview and an import");
    assert!(s.text("#runs tbody tr:last-child").await.contains("Preview"));
    s.shot("6-history").await;
    s.click_away("#runs tbody tr:first-child a").await;
    assert_eq!(s.path().await, import_path);

    // One person: their page, then revert just them.
    s.fill("#filter-q", "Mallory").await;
    s.click_away("#filter-apply").await;
    let filtered = s.path().await;
    s.open_first_change().await;
    s.click_away("ul.changes > li a[href^='/directory/']").await;
    assert!(s.text("#person-name").await.contains(HOSTILE));
    assert!(s.text("#person-history").await.to_lowercase().contains("new"), "the creation is in their history");
    assert_eq!(s.js("return window.pwned === undefined").await, serde_json::json!(true));
    s.shot("7-person").await;
    s.goto(&filtered).await;
    s.open_first_change().await;
    s.click("ul.changes > li button[data-dialog=revert-person-dialog]").await;
    assert!(s.text("#revert-person-dialog").await.contains(HOSTILE));
    s.click_away("#revert-person-dialog-confirm").await;
    s.find("h1 .badge").await;
    assert!(s.text("h1").await.starts_with("Revert"), "{}", s.text("h1").await);
    assert_eq!(s.text("h1 .badge").await, "succeeded");
    s.open_first_change().await;
    assert!(s.text("ul.changes table.fields").await.contains("inactive"), "undoing a creation deactivates");

    // The whole run.
    s.goto(&import_path).await;
    s.click("#revert-run").await;
    s.click_away("#revert-run-dialog-confirm").await;
    s.find("h1 .badge").await;
    assert_eq!(s.text("h1 .badge").await, "succeeded");
    assert!(
        // Undoing the creations deactivates those people: counted as such.
        s.text("#run-summary").await.contains(&format!("{} deactivated", created - 1)),
        "{}",
        s.text("#run-summary").await
    );
    s.shot("8-revert").await;

    // The directory: search, then a person with a reporting line.
    s.goto("/directory").await;
    assert!(s.text("nav.pager").await.contains(&format!("{created} in all")));
    s.fill("#directory-search", &full_name).await;
    s.click_away("#directory-search-go").await;
    s.find("#users tbody tr[data-user]").await;
    assert_eq!(s.c.find_all(Locator::Css("#users tbody tr")).await.unwrap().len(), 1, "{full_name}");
    s.shot("9-directory").await;
    s.click_away("#users tbody tr a").await;
    s.find("#person-name").await;
    assert!(!s.c.find_all(Locator::Css("#reporting-line li")).await.unwrap().is_empty());
    s.shot("10-person-reporting-line").await;

    // Usable on a phone: the same page at 390 px wide.
    s.c.set_window_size(390, 844).await.unwrap();
    s.goto(&import_path).await;
    s.find("h1 .badge").await;
    let overflow = s.js("return document.documentElement.scrollWidth - window.innerWidth").await;
    assert!(overflow.as_i64().unwrap() <= 0, "the page scrolls sideways on a phone: {overflow}");
    s.shot("11-run-on-a-phone").await;
    s.c.set_window_size(1280, 900).await.unwrap();

    // Sign out ends the session.
    s.click_away("form.signout button").await;
    s.find("#sign-in").await;
    s.goto("/directory").await;
    s.find("#sign-in").await;

    s.c.close().await.unwrap();
    drop(driver);
    let _ = std::fs::remove_dir_all(&dir);
    println!("screenshots in {}", shots.canonicalize().unwrap().display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_character_unbroken_name_keeps_every_page_within_the_window() {
    let dir = std::env::temp_dir().join(format!("hrsync-browser-long-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let app = app(&dir).await;
    let long = "W".repeat(300);
    app.sandbox.hire(Hire {
        first_name: long.clone(),
        last_name: "L".repeat(300),
        email: Some(format!("{}@example.com", "w".repeat(60))),
        supervisor_id: None,
        position: Some("J".repeat(300)),
        department: Some("D".repeat(300)),
        status: None,
        hire_date: None,
    });
    let integration = app.integration(&"I".repeat(300));
    let request = hrsync::sync::engine::RunRequest::manual(integration);
    let import = app.engine.import(&request).await.unwrap().run.id;
    let preview = app.engine.preview(&request).await.unwrap().run.id;
    let (users, _) = app
        .store
        .users(&hrsync::directory::UserQuery { search: Some(long.clone()), limit: 10, ..Default::default() })
        .unwrap();
    let person = users.first().expect("the long-named person was imported").id;

    let driver = driver().await;
    let c = browser(&driver, &dir.join("chromium-profile")).await;
    let s = Session { c, base: app.base.clone(), shots: shots.clone() };
    s.goto("/login").await;
    s.fill("#username", "admin").await;
    s.fill("#password", PASSWORD).await;
    s.click_away("#sign-in").await;

    let pages = [
        "/integrations".to_string(),
        format!("/integrations/{integration}"),
        format!("/integrations/{integration}/configuration"),
        format!("/integrations/{integration}/preview"),
        format!("/integrations/{integration}/history"),
        format!("/runs/{import}?q={long}"),
        format!("/runs/{preview}"),
        format!("/directory?q={long}"),
        format!("/directory/{person}"),
        "/emails".to_string(),
        "/account".to_string(),
        "/accounts".to_string(),
        "/audit".to_string(),
    ];
    for (width, height) in [(1366, 900), (390, 844)] {
        s.c.set_window_size(width, height).await.unwrap();
        for page in &pages {
            s.goto(page).await;
            s.find("main").await;
            // Change lists start folded; open them so their tables count too.
            s.js("document.querySelectorAll('details').forEach(d => d.open = true)").await;
            let overflow = s.js("return document.documentElement.scrollWidth - window.innerWidth").await;
            assert!(overflow.as_i64().unwrap() <= 0, "{page} at {width} px is {overflow} px too wide");
        }
        s.goto(&format!("/directory/{person}")).await;
        s.find("#person-name").await;
        assert!(s.text("#person-name").await.contains(&long), "the whole name is there, wrapped");
        s.shot(&format!("12-long-name-person-{width}")).await;
    }
    s.c.close().await.unwrap();
    drop(driver);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A screenshot at desktop and at phone width.
async fn both_widths(s: &Session, name: &str) {
    for (width, height) in [(1366, 900), (390, 844)] {
        s.c.set_window_size(width, height).await.unwrap();
        s.shot(&format!("{name}-{width}")).await;
    }
    s.c.set_window_size(1366, 900).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_adopts_a_directory_and_keeps_a_value_until_they_let_the_source_win() {
    let dir = std::env::temp_dir().join(format!("hrsync-browser-adopt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let app = app(&dir).await;
    let integration = app.integration("Personio");

    // The app's existing directory: three people Personio has, with the
    // titles the app knew them by, and one it does not.
    let people = app.sandbox.employees();
    let known: Vec<_> =
        people.iter().filter(|e| e.status == Status::Active && matches!(e.email, Email::Address(_))).take(3).collect();
    let mut csv = String::from("Email,First name,Last name,Job title\n");
    for e in &known {
        let Email::Address(a) = &e.email else { unreachable!() };
        csv.push_str(&format!("{a},{},{},Local title\n", e.first_name, e.last_name));
    }
    csv.push_str("contractor@example.com,Casey,Contractor,Consultant\n");
    let ann = &known[0];
    let ann_name = format!("{} {}", ann.first_name, ann.last_name);

    let driver = driver().await;
    let c = browser(&driver, &dir.join("chromium-profile")).await;
    let s = Session { c, base: app.base.clone(), shots: shots.clone() };
    s.c.set_window_size(1366, 900).await.unwrap();
    s.goto("/login").await;
    s.fill("#username", "admin").await;
    s.fill("#password", PASSWORD).await;
    s.click_away("#sign-in").await;

    // 1. Upload the existing directory: checked first, then written.
    s.goto("/directory").await;
    s.click_away("#upload-directory").await;
    s.js(&format!("document.querySelector('#upload-csv').value = {}", serde_json::json!(csv))).await;
    // The check answers on the same address, with the result below the form.
    s.click("#upload-check").await;
    s.find("#upload-result").await;
    assert!(s.text("#upload-summary").await.starts_with("4 new, 0 updated"), "{}", s.text("#upload-summary").await);
    both_widths(&s, "13-adopt-1-upload-checked").await;
    assert!(app.store.users(&Default::default()).unwrap().0.is_empty(), "checking writes nothing");
    s.click_away("#upload-apply").await;
    assert!(s.text("#upload-done").await.contains("4 people"), "{}", s.text("#upload-done").await);

    // 2. The preview says who it will match by email.
    s.goto(&format!("/integrations/{integration}/preview")).await;
    s.click_away("#run-preview").await;
    s.finished_run().await;
    assert_eq!(s.text("[data-count=linked] dd").await, "3");
    s.goto(&format!("/integrations/{integration}/preview?kind=link")).await;
    assert_eq!(s.c.find_all(Locator::Css("ul.changes > li[data-kind=link]")).await.unwrap().len(), 3);
    assert!(s.text("ul.changes").await.to_lowercase().contains("matched by email"));
    both_widths(&s, "13-adopt-2-preview-matches").await;

    // 3. Import it.
    s.click("#import-now").await;
    s.click_away("#import-dialog-confirm").await;
    s.finished_run().await;
    assert_eq!(s.text("h1 .badge").await, "succeeded");
    let import_path = s.path().await;
    both_widths(&s, "13-adopt-3-imported").await;
    let ann_user = app
        .store
        .users(&hrsync::directory::UserQuery { search: Some(ann_name.clone()), limit: 5, ..Default::default() })
        .unwrap()
        .0
        .remove(0);
    assert_eq!(ann_user.profile.job_title.as_deref(), Some(ann.position.as_str()), "the source's title");

    // 4. Put Ann's old title back and keep it.
    s.goto(&format!("{import_path}?q={}", ann_name.replace(' ', "+"))).await;
    s.open_first_change().await;
    s.click("ul.changes > li button[data-field=job-title]").await;
    assert!(s.text("#revert-field-dialog").await.contains("Job title"));
    assert_eq!(s.find("#revert-field-keep").await.prop("checked").await.unwrap().as_deref(), Some("true"));
    both_widths(&s, "13-adopt-4-revert-and-keep").await;
    s.click_away("#revert-field-dialog-confirm").await;
    assert_eq!(s.text("h1 .badge").await, "succeeded");
    let kept = app.store.user(ann_user.id).unwrap();
    assert_eq!(kept.profile.job_title.as_deref(), Some("Local title"));
    assert!(kept.managed_by.is_some(), "putting one value back does not unlink");

    // 5. The next automatic import leaves it, and says so.
    let automatic =
        hrsync::sync::engine::RunRequest { automatic: true, ..hrsync::sync::engine::RunRequest::manual(integration) };
    let next = app.engine.import(&automatic).await.unwrap();
    assert_eq!(app.store.user(ann_user.id).unwrap().profile.job_title.as_deref(), Some("Local title"));
    s.goto(&format!("/runs/{}", next.run.id)).await;
    let kept_text = s.text("#kept").await;
    assert!(
        kept_text.contains(&format!("Personio says {}", ann.position)) && kept_text.contains("kept by admin"),
        "{kept_text}"
    );
    both_widths(&s, "13-adopt-5-automatic-import-keeps").await;

    // 6. The kept values list shows the drift; stop keeping it.
    s.goto("/directory/overrides").await;
    let row = format!("#overrides tr[data-user='{}'][data-field=job-title]", ann_user.id);
    assert_eq!(s.find(&row).await.attr("data-drift").await.unwrap().as_deref(), Some("true"));
    assert!(s.text(&format!("{row} td.source")).await.contains(&ann.position));
    both_widths(&s, "13-adopt-6-kept-values-drift").await;
    s.click(&format!("{row} button[data-remove-override]")).await;
    s.find("#no-overrides").await;
    both_widths(&s, "13-adopt-7-stopped-keeping").await;

    // 7. The next import applies the source.
    app.engine.import(&automatic).await.unwrap();
    s.goto(&format!("/directory/{}", ann_user.id)).await;
    assert_eq!(s.text("dd[data-field=job-title]").await.trim_end_matches("Keep this value").trim(), ann.position);
    both_widths(&s, "13-adopt-8-source-applies").await;

    s.c.close().await.unwrap();
    drop(driver);
    let _ = std::fs::remove_dir_all(&dir);
}
