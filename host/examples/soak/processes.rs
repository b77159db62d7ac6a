//! Several processes racing on one data directory: `hrsync import` and
//! `hrsync preview` processes, a `hrsync serve` taking imports over its API,
//! and a scheduler (in this process, on a clock that runs ahead), while the
//! company changes underneath them.
//!
//! Afterwards: no two runs of the integration overlapped in time (none
//! doubled); every run ended, and every accepted attempt's run is recorded
//! as ended (none lost); every refused attempt was refused as busy — exit 7,
//! HTTP 409, or the scheduler's "busy" — and nothing else went wrong. A run
//! may fail (a fetch of a company that changed while it was read fails
//! rather than apply what it half-saw); it is then recorded as failed, with
//! nothing applied, and counts as a run that ended.

use hrsync::directory::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hrsync::directory::sqlite::SqliteStore;
use hrsync::directory::{IntegrationConfig, IntegrationId, RunId, RunState};
use hrsync::runtime::{Limits, Runtime};
use hrsync::sandbox::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Edit, Sandbox, SandboxConfig};
use hrsync::schedule::{Clock, Outcome, Scheduler};
use hrsync::secrets::SecretBox;
use hrsync::sync::SyncEngine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSWORD: &str = "soak password, long enough";

/// The hrsync binary built beside this example (`target/<profile>/hrsync`).
pub fn sibling_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().and_then(Path::parent).map(|d| d.join("hrsync")).unwrap_or_default();
    anyhow::ensure!(
        path.exists(),
        "no hrsync binary at {}; build it first (`cargo build --release -p hrsync`) or pass --hrsync PATH",
        path.display()
    );
    Ok(path)
}

/// What one attempt to start a run came to.
#[derive(Debug, Clone, PartialEq)]
enum Attempt {
    /// Accepted; the run it started, when the caller learns it.
    Ran(Option<RunId>),
    /// Refused as busy: exit 7, 409, or the scheduler's `Busy`.
    Refused,
    /// Anything else: a wrong answer.
    Other(String),
}

type Log = Arc<Mutex<Vec<(&'static str, Attempt)>>>;

/// A clock that jumps six minutes at every look, so a 5-minute schedule is
/// always due.
struct Ahead(Mutex<DateTime<Utc>>);

impl Clock for Ahead {
    fn now(&self) -> DateTime<Utc> {
        let mut t = self.0.lock().expect("clock");
        *t += chrono::Duration::minutes(6);
        *t
    }
}

/// Runs the multi-process soak; `Ok(false)` on any doubled or lost run.
pub async fn soak(hrsync: &Path, seconds: u64, seed: u64) -> anyhow::Result<bool> {
    // Racing processes log in far more often than Personio's 60 a minute allow.
    let sandbox = Sandbox::new(SandboxConfig { auth_per_minute: u32::MAX, ..SandboxConfig::new(300, seed) });
    sandbox.set_rate_limit(None);
    let running = sandbox.serve("127.0.0.1:0".parse()?).await?;
    let data = std::env::temp_dir().join(format!("hrsync-soak-processes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data)?;
    let secrets = SecretBox::open(&data)?;
    let store = Arc::new(SqliteStore::open(&data.join("hrsync.db"), secrets)?);
    let mut config = IntegrationConfig::new("personio", "Soak");
    // API v1: a run reads a hundred people a request, so many runs fit in
    // the soak (a v2 run of 300 people at Personio's pace takes over a minute).
    for (k, v) in [
        ("api-base-url", running.url.as_str()),
        ("client-id", DEMO_CLIENT_ID),
        ("client-secret", DEMO_CLIENT_SECRET),
        ("api-version", "v1"),
    ] {
        config.settings.insert(k.into(), v.into());
    }
    config.secret_keys.insert("client-secret".into());
    config.grants = vec![running.url.clone()];
    config.auto_import = true;
    config.interval_minutes = 5;
    let integration = store.create_integration(&config)?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut server = Command::new(hrsync)
        .args(["--data-dir", data.to_str().expect("UTF-8"), "serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("HRSYNC_ADMIN_PASSWORD", PASSWORD)
        .env("HRSYNC_LOG", "error")
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let base = format!("127.0.0.1:{port}");
    let until = Instant::now() + Duration::from_secs(seconds);
    let log: Log = Arc::default();
    let outcome = async {
        wait_for(&base).await?;
        let cli = {
            let (log, data, hrsync) = (log.clone(), data.clone(), hrsync.to_path_buf());
            std::thread::spawn(move || cli_racer(&hrsync, &data, until, &log))
        };
        let api = tokio::spawn(api_racer(base.clone(), integration, until, log.clone()));
        let scheduler = tokio::spawn(scheduler_racer(store.clone(), integration, until, log.clone()));
        let mut rng = StdRng::seed_from_u64(seed);
        while Instant::now() < until {
            let employees = sandbox.employees();
            let e = &employees[rng.random_range(0..employees.len())];
            let _ = sandbox
                .apply(e.id, Edit { position: Some(format!("Role {}", rng.random_range(0..99))), ..Edit::default() });
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        cli.join().map_err(|_| anyhow::anyhow!("the CLI racer panicked"))?;
        api.await??;
        scheduler.await??;
        anyhow::Ok(())
    }
    .await;
    // Ctrl-C, as an operator stops it: the server ends what it runs.
    let _ = Command::new("kill").args(["-INT", &server.id().to_string()]).status();
    let _ = server.wait();
    running.stop().await;
    outcome?;
    let ok = verify(store.as_ref(), integration, &log.lock().expect("log"));
    let _ = std::fs::remove_dir_all(&data);
    Ok(ok)
}

/// Checks the runs and the attempts; prints the figures.
fn verify(store: &dyn DirectoryStore, integration: IntegrationId, attempts: &[(&'static str, Attempt)]) -> bool {
    let mut runs = store.runs(Some(integration), 0, 1_000_000).expect("read runs");
    runs.sort_by_key(|r| r.started_at);
    let mut by_state: BTreeMap<String, u32> = BTreeMap::new();
    for r in &runs {
        *by_state.entry(format!("{:?}", r.state).to_lowercase()).or_default() += 1;
    }
    let mut doubled = 0;
    for pair in runs.windows(2) {
        let ended = pair[0].finished_at.unwrap_or(DateTime::<Utc>::MAX_UTC);
        if pair[1].started_at < ended {
            doubled += 1;
            println!("DOUBLED: run {} started before run {} ended", pair[1].id, pair[0].id);
        }
    }
    for r in runs.iter().filter(|r| r.state == RunState::Failed) {
        println!("  (run {} failed, nothing applied: {})", r.id, r.error.as_deref().unwrap_or("?"));
    }
    let mut lost = runs.iter().filter(|r| r.state.is_live() || r.state == RunState::Interrupted).count();
    for r in runs.iter().filter(|r| r.state.is_live() || r.state == RunState::Interrupted) {
        println!("LOST: run {} is {:?}", r.id, r.state);
    }
    let mut tally: BTreeMap<String, u32> = BTreeMap::new();
    let mut wrong = 0;
    for (who, attempt) in attempts {
        let label = match attempt {
            Attempt::Ran(Some(id)) => match runs.iter().find(|r| r.id == *id) {
                Some(r) if !r.state.is_live() && r.state != RunState::Interrupted => "ran",
                _ => {
                    lost += 1;
                    println!("LOST: {who}'s run {id} is not recorded as ended");
                    "lost"
                }
            },
            Attempt::Ran(None) => "ran",
            Attempt::Refused => "refused as busy",
            Attempt::Other(e) => {
                wrong += 1;
                println!("UNEXPECTED from {who}: {e}");
                "unexpected"
            }
        };
        *tally.entry(format!("{who} {label}")).or_default() += 1;
    }
    println!("processes soak: {} attempts, {} runs", attempts.len(), runs.len());
    println!("  attempts: {}", tally.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", "));
    println!("  runs: {}", by_state.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", "));
    println!("  doubled runs: {doubled}, lost runs: {lost}, unexpected answers: {wrong}");
    doubled == 0 && lost == 0 && wrong == 0 && runs.len() > 3
}

/// `hrsync import --yes` and `hrsync preview` processes, one after another.
fn cli_racer(hrsync: &Path, data: &Path, until: Instant, log: &Log) {
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let command: &[&str] = if n % 3 == 0 { &["preview", "--json"] } else { &["import", "--yes", "--json"] };
        let out = Command::new(hrsync)
            .args(["--data-dir", data.to_str().expect("UTF-8")])
            .args(command)
            .env("HRSYNC_LOG", "error")
            .stdin(std::process::Stdio::null())
            .output();
        let attempt = match out {
            Ok(o) if o.status.success() => {
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
                Attempt::Ran(v["run"]["id"].as_i64().map(RunId))
            }
            Ok(o) if o.status.code() == Some(7) => Attempt::Refused,
            // The run started and failed (the source changed while read):
            // its id is in the message, and it must be recorded as ended.
            Ok(o) if o.status.code() == Some(3) => {
                let text = String::from_utf8_lossy(&o.stderr).into_owned();
                match text.split("run ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()) {
                    Some(id) => Attempt::Ran(Some(RunId(id))),
                    None => Attempt::Other(format!("exit 3 without a run: {text}")),
                }
            }
            Ok(o) => Attempt::Other(format!("exit {:?}: {}", o.status.code(), String::from_utf8_lossy(&o.stderr))),
            Err(e) => Attempt::Other(e.to_string()),
        };
        log.lock().expect("log").push(("cli", attempt));
    }
}

/// Imports over the server's API, each followed to its end.
async fn api_racer(base: String, integration: IntegrationId, until: Instant, log: Log) -> anyhow::Result<()> {
    let login =
        http(&base, "POST", "/api/v1/session", "", &format!(r#"{{"username":"admin","password":"{PASSWORD}"}}"#))
            .await?;
    anyhow::ensure!(login.0 == 200, "sign-in failed: {}", login.1);
    let session: serde_json::Value = serde_json::from_str(&login.1)?;
    let auth =
        format!("Cookie: {}\r\nX-CSRF-Token: {}\r\n", login.2, session["csrf_token"].as_str().unwrap_or_default());
    while Instant::now() < until {
        let (status, body, _) =
            http(&base, "POST", &format!("/api/v1/integrations/{integration}/imports"), &auth, "").await?;
        let attempt = match status {
            202 => {
                let run: serde_json::Value = serde_json::from_str(&body)?;
                let id = run["run_id"].as_i64().map(RunId);
                if let Some(id) = id {
                    loop {
                        let (_, body, _) = http(&base, "GET", &format!("/api/v1/runs/{id}"), &auth, "").await?;
                        let v: serde_json::Value = serde_json::from_str(&body)?;
                        if v["run"]["state"] != "running" {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                Attempt::Ran(id)
            }
            409 => Attempt::Refused,
            other => Attempt::Other(format!("HTTP {other}: {body}")),
        };
        log.lock().expect("log").push(("api", attempt));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The scheduler, in this process, on a clock that makes every tick due.
async fn scheduler_racer(
    store: Arc<SqliteStore>,
    integration: IntegrationId,
    until: Instant,
    log: Log,
) -> anyhow::Result<()> {
    let runtime = Arc::new(Runtime::new(Limits::default(), None)?);
    let connector = runtime.load("bundled:personio", hrsync::connectors::BUNDLED_PERSONIO).await?;
    let engine = Arc::new(SyncEngine::new(runtime, store, vec![connector]));
    let scheduler = Scheduler::new(engine, Arc::new(Ahead(Mutex::new(Utc::now()))), 7);
    while Instant::now() < until {
        for (id, outcome) in scheduler.tick().await? {
            if id != integration {
                continue;
            }
            let attempt = match outcome {
                // A failed run is recorded by the engine; `verify` checks it ended.
                Outcome::Ran { .. } | Outcome::Failed { .. } => Attempt::Ran(None),
                Outcome::Busy => Attempt::Refused,
                Outcome::Scheduled { .. } => continue,
                other => Attempt::Other(format!("{other:?}")),
            };
            log.lock().expect("log").push(("scheduler", attempt));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    Ok(())
}

async fn wait_for(base: &str) -> anyhow::Result<()> {
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(base).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("hrsync serve did not start on {base}")
}

/// One HTTP/1.1 request: status, body, and the session cookie if one was set.
async fn http(
    base: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> anyhow::Result<(u16, String, String)> {
    let mut stream = tokio::net::TcpStream::connect(base).await?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {base}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await?;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
        .and_then(|c| c.split(';').next())
        .unwrap_or_default()
        .to_string();
    Ok((status, body.to_string(), cookie))
}
