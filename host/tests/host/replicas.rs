//! Several `hrsync serve` processes on one PostgreSQL database, as a
//! multi-tenant deployment runs them: every due run of every tenant is run
//! once, a replica killed mid-import has its run completed by another, a
//! rolling restart misses no schedule, and each invitation is sent once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use hrsync::directory::postgres::PgStore;
use hrsync::directory::prelude::*;
use hrsync::directory::{IntegrationConfig, IntegrationId, Run, RunKind, RunState, Schedule, Trigger, UserQuery};
use hrsync::mail::MailState;
use hrsync::model::TenantId;
use hrsync::sandbox::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Fault, Running, Sandbox, SandboxConfig};
use hrsync::secrets::SecretBox;
use hrsync_pg_cluster::Cluster;

const KEY: [u8; 32] = [7; 32];

/// A deployment under test: the database, a sandbox, an SMTP server and a
/// data directory the replicas share (their compiled-component cache).
struct Deployment {
    _cluster: Cluster,
    url: String,
    db: PgStore,
    sandbox: Sandbox,
    running: Running,
    smtp: Smtp,
    data: PathBuf,
}

impl Deployment {
    async fn start(people: usize) -> Deployment {
        let cluster = Cluster::start().expect("a PostgreSQL cluster (apt-get install postgresql)");
        let url = cluster.create_database("replicas").unwrap();
        let db = PgStore::connect(&url, SecretBox::from_key(&KEY)).unwrap();
        let mut config = SandboxConfig::new(people, 11);
        config.rate_limit = None;
        config.auth_per_minute = u32::MAX;
        let sandbox = Sandbox::new(config);
        let running = sandbox.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let data =
            std::env::temp_dir().join(format!("hrsync-replicas-{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&data).unwrap();
        let smtp = Smtp::start(&data);
        std::fs::write(
            data.join("hrsync.toml"),
            format!(
                "[smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nfrom = \"hrsync <people@acme.example>\"\n",
                smtp.port
            ),
        )
        .unwrap();
        Deployment { _cluster: cluster, url, db, sandbox, running, smtp, data }
    }

    /// A tenant with one Personio integration, automatic imports and
    /// invitations on, its first run due at `due`.
    fn tenant(&self, n: usize, due: chrono::DateTime<Utc>, max_minutes: u32) -> (TenantId, IntegrationId) {
        let tenant = self.db.create_tenant(&format!("t{n:03}"), &format!("Tenant {n}")).unwrap();
        let store = self.db.tenant(tenant);
        let mut config = IntegrationConfig::new("personio", "Personio");
        for (k, v) in [
            ("api-base-url", self.running.url.as_str()),
            ("client-id", DEMO_CLIENT_ID),
            ("client-secret", DEMO_CLIENT_SECRET),
            ("api-version", "v1"),
        ] {
            config.settings.insert(k.into(), v.into());
        }
        config.secret_keys.insert("client-secret".into());
        config.grants = vec![self.running.url.clone()];
        config.secrets_for = config.grants.clone();
        config.auto_import = true;
        config.send_emails = true;
        config.interval_minutes = 60;
        config.limits.max_minutes = max_minutes;
        let id = store.create_integration(&config).unwrap();
        store.set_company_name(&format!("Tenant {n}")).unwrap();
        store
            .save_schedule(&Schedule {
                integration_id: id,
                next_run_at: due,
                last_success_at: None,
                last_full_at: None,
                failures: 0,
                alerted: false,
                last_error: None,
            })
            .unwrap();
        (tenant, id)
    }

    /// `hrsync serve` on this deployment, once it says it is serving.
    fn replica(&self) -> Replica {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hrsync"))
            .args(["--config".as_ref(), self.data.join("hrsync.toml").as_os_str()])
            .args(["--data-dir".as_ref(), self.data.as_os_str()])
            .args(["--database-url", &self.url, "serve", "--bind", "127.0.0.1:0"])
            .env("HRSYNC_SECRET_KEY", base64_key())
            .env("HRSYNC_ADMIN_PASSWORD", "replica admin password")
            .env_remove("HRSYNC_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start hrsync serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("hrsync is serving") => break,
                Some(Ok(_)) => {}
                _ => panic!("hrsync serve ended before serving: {:?}", child.wait()),
            }
        }
        // Keep reading, so the replica never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Replica(child)
    }

    /// Every run of the tenant's integration.
    fn runs(&self, tenant: TenantId) -> Vec<Run> {
        self.db.tenant(tenant).runs(None, 0, 100).unwrap()
    }

    /// Waits until `done` holds, polling; panics with `what` after `limit`.
    async fn wait_for(&self, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(started.elapsed() < limit, "gave up waiting for {what} after {limit:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Every queued mail of these tenants was sent, and the SMTP server got
    /// each once: as many messages as mails, no Message-ID twice.
    async fn mail_sent_once(&self, tenants: &[TenantId]) {
        let mails = || -> Vec<hrsync::mail::MailRecord> {
            tenants.iter().flat_map(|t| self.db.tenant(*t).mails(0, 10_000).unwrap().0).collect()
        };
        self.wait_for("every mail sent", Duration::from_secs(120), || {
            mails().iter().all(|m| m.state == MailState::Sent)
        })
        .await;
        let sent = mails();
        assert!(!sent.is_empty());
        self.wait_for("the SMTP server to store them", Duration::from_secs(30), || {
            self.smtp.message_ids().len() >= sent.len()
        })
        .await;
        let received = self.smtp.message_ids();
        let unique: BTreeSet<&String> = received.iter().collect();
        assert_eq!(unique.len(), received.len(), "a message was delivered twice");
        assert_eq!(received.len(), sent.len(), "one delivery per queued mail");
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn base64_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(KEY)
}

/// A running `hrsync serve`; killed when dropped.
struct Replica(Child);

impl Replica {
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    /// Ctrl-C, as an orchestrator stops it; waits until it has ended.
    fn stop(mut self) {
        // SAFETY: sends a signal to a child process this test started.
        unsafe { libc::kill(self.pid(), libc::SIGINT) };
        let _ = self.0.wait();
    }

    /// SIGKILL: the replica dies mid-whatever, nothing of it runs after.
    fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real SMTP server (Debian's python3-aiosmtpd) storing into a Maildir.
struct Smtp {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Smtp {
    fn start(dir: &Path) -> Smtp {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let maildir = dir.join("maildir");
        let mut child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd (apt-get install python3-aiosmtpd)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Smtp { child, port, maildir };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("aiosmtpd did not listen on port {port}");
    }

    /// The Message-ID of every message received.
    fn message_ids(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(self.maildir.join("new")) else { return Vec::new() };
        dir.filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
            .filter_map(|text| {
                text.lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
                    .map(|l| l[11..].trim().to_string())
            })
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each tenant's runs, checked: exactly one automatic import, succeeded.
fn ran_once(runs: &[Run]) -> bool {
    runs.len() == 1
        && runs[0].kind == RunKind::Import
        && runs[0].trigger == Trigger::Automatic
        && runs[0].state == RunState::Succeeded
}

/// The process (`host:pid:nonce` without the nonce) that held a run.
fn process(run: &Run) -> String {
    let owner = run.owner.clone().unwrap_or_default();
    owner.rsplit_once(':').map_or(owner.clone(), |(process, _)| process.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_run_every_due_run_of_a_hundred_tenants_once() {
    let d = Deployment::start(8).await;
    // Due a little after the replicas are up, so they race for every run.
    let due = Utc::now() + chrono::Duration::seconds(20);
    let tenants: Vec<(TenantId, IntegrationId)> = (0..100).map(|n| d.tenant(n, due, 60)).collect();
    let replicas: Vec<Replica> = (0..3).map(|_| d.replica()).collect();
    assert!(Utc::now() < due, "the replicas took too long to start for the race to be real");

    d.wait_for("a succeeded run of every tenant", Duration::from_secs(240), || {
        tenants.iter().all(|(t, _)| d.runs(*t).iter().any(|r| r.state == RunState::Succeeded))
    })
    .await;
    // Give a doubled run the time to show, then check every tenant ran once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut by_process: BTreeMap<String, usize> = BTreeMap::new();
    for (tenant, integration) in &tenants {
        let runs = d.runs(*tenant);
        assert!(ran_once(&runs), "tenant {tenant:?}: {runs:#?}");
        *by_process.entry(process(&runs[0])).or_default() += 1;
        let next = d.db.tenant(*tenant).schedule(*integration).unwrap().unwrap().next_run_at;
        assert!(next > Utc::now() + chrono::Duration::minutes(50), "the next run is an interval away: {next}");
        let (people, _) = d.db.tenant(*tenant).users(&UserQuery::default()).unwrap();
        assert!(!people.is_empty());
    }
    eprintln!("runs per replica: {by_process:?}");
    assert!(by_process.len() <= 3);
    let ids: Vec<TenantId> = tenants.iter().map(|(t, _)| *t).collect();
    d.mail_sent_once(&ids).await;
    drop(replicas);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_of_a_replica_killed_mid_import_is_completed_by_another() {
    let d = Deployment::start(30).await;
    // The first employee page takes 8 s: long enough to kill the replica in it.
    d.sandbox.inject([Fault::Slow { millis: 8_000 }]);
    // max_run_minutes 1: the claim lapses 2 minutes after it was taken.
    let (tenant, _) = d.tenant(1, Utc::now(), 1);
    let first = d.replica();
    d.wait_for("the first replica's run", Duration::from_secs(60), || {
        d.runs(tenant).iter().any(|r| r.state == RunState::Running)
    })
    .await;
    first.kill();
    let second = d.replica();
    d.wait_for("the run completed by the second replica", Duration::from_secs(240), || {
        d.runs(tenant).iter().any(|r| r.state == RunState::Succeeded)
    })
    .await;
    let runs = d.runs(tenant);
    let states: Vec<RunState> = runs.iter().rev().map(|r| r.state).collect();
    assert_eq!(states, [RunState::Interrupted, RunState::Succeeded], "{runs:#?}");
    assert_ne!(process(&runs[0]), process(&runs[1]), "another replica completed it");
    d.mail_sent_once(&[tenant]).await;
    drop(second);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_restart_misses_no_schedule() {
    let d = Deployment::start(6).await;
    // Each run's first request takes 1.5 s, so the stops land mid-run: a
    // stopping replica finishes its runs before it ends.
    d.sandbox.inject((0..40).map(|_| Fault::Slow { millis: 1_500 }));
    let start = Utc::now();
    // Twenty tenants due one after another over the restart.
    let tenants: Vec<(TenantId, IntegrationId)> =
        (0..20).map(|n| d.tenant(n, start + chrono::Duration::seconds(10 + n as i64), 60)).collect();
    let (a, b) = (d.replica(), d.replica());
    // Replace each replica in turn, as an upgrade does, while runs come due.
    tokio::time::sleep(Duration::from_secs(12)).await;
    a.stop();
    let a2 = d.replica();
    tokio::time::sleep(Duration::from_secs(6)).await;
    b.stop();
    let b2 = d.replica();
    d.wait_for("every tenant's run", Duration::from_secs(180), || {
        tenants.iter().all(|(t, _)| d.runs(*t).iter().any(|r| r.state == RunState::Succeeded))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (tenant, _) in &tenants {
        let runs = d.runs(*tenant);
        assert!(ran_once(&runs), "tenant {tenant:?}: {runs:#?}");
    }
    drop((a2, b2));
}
