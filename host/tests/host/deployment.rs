//! A multi-tenant deployment on this machine, for the replica tests and the
//! scale benchmark (`#[path]`-included there): a throwaway PostgreSQL
//! cluster, a Personio sandbox without rate limits, a real SMTP server, and
//! real `hrsync serve` processes as replicas.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use hrsync::directory::postgres::PgStore;
use hrsync::directory::prelude::*;
use hrsync::directory::{IntegrationConfig, IntegrationId, Run, Schedule};
use hrsync::mail::MailState;
use hrsync::model::TenantId;
use hrsync::sandbox::{CompanySpec, Credential, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Running, Sandbox, SandboxConfig};
use hrsync::secrets::SecretBox;
use hrsync_pg_cluster::Cluster;

pub const KEY: [u8; 32] = [7; 32];

/// A deployment under test: the database, a sandbox, an SMTP server and a
/// data directory the replicas share (their compiled-component cache).
pub struct Deployment {
    _cluster: Cluster,
    pub url: String,
    pub db: PgStore,
    pub sandbox: Sandbox,
    running: Running,
    smtp: Smtp,
    data: PathBuf,
    /// Whether new tenants' integrations send invitations.
    pub send_emails: bool,
    /// Tenants' company sizes, smallest to largest: each new tenant reads
    /// a company of its own, of a size spread evenly over the range; `None`
    /// = every tenant reads the sandbox's own company.
    pub company_sizes: Option<(usize, usize)>,
}

impl Deployment {
    pub async fn start(people: usize) -> Deployment {
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
        Deployment { _cluster: cluster, url, db, sandbox, running, smtp, data, send_emails: true, company_sizes: None }
    }

    /// A tenant with one Personio integration, automatic imports and
    /// invitations on, its first run due at `due`.
    pub fn tenant(&self, n: usize, due: chrono::DateTime<Utc>, max_minutes: u32) -> (TenantId, IntegrationId) {
        let tenant = self.db.create_tenant(&format!("t{n:03}"), &format!("Tenant {n}")).unwrap();
        let store = self.db.tenant(tenant);
        let (client_id, client_secret) = self.credential(n);
        let mut config = IntegrationConfig::new("personio", "Personio");
        for (k, v) in [
            ("api-base-url", self.running.url.as_str()),
            ("client-id", &client_id),
            ("client-secret", &client_secret),
            ("api-version", "v1"),
        ] {
            config.settings.insert(k.into(), v.into());
        }
        config.secret_keys.insert("client-secret".into());
        config.grants = vec![self.running.url.clone()];
        config.secrets_for = config.grants.clone();
        config.auto_import = true;
        config.send_emails = self.send_emails;
        config.interval_minutes = 60;
        config.limits.max_minutes = max_minutes;
        let id = store.create_integration(&config).unwrap();
        store.set_company_name(&format!("Tenant {n}")).unwrap();
        store.save_schedule(&Schedule::first(id, due)).unwrap();
        (tenant, id)
    }

    /// The sandbox credential tenant `n` reads with: its own company's when
    /// the deployment has company sizes.
    fn credential(&self, n: usize) -> (String, String) {
        let Some((smallest, largest)) = self.company_sizes else {
            return (DEMO_CLIENT_ID.into(), DEMO_CLIENT_SECRET.into());
        };
        // A stride coprime to most spans scatters the sizes over the tenants.
        let people = smallest + (n * 7919) % (largest - smallest + 1);
        let (id, secret) = (format!("company-{n}"), format!("company-{n}-secret"));
        let company = CompanySpec {
            people,
            seed: n as u64,
            today: Utc::now().date_naive(),
            domain: format!("company-{n}.example"),
        };
        self.sandbox.add_credential(Credential::with_company(&id, &secret, company));
        (id, secret)
    }

    /// `hrsync serve` on this deployment, once it says it is serving.
    pub fn replica(&self) -> Replica {
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
    pub fn runs(&self, tenant: TenantId) -> Vec<Run> {
        self.db.tenant(tenant).runs(None, 0, 100).unwrap()
    }

    /// Waits until `done` holds, polling; panics with `what` after `limit`.
    pub async fn wait_for(&self, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(started.elapsed() < limit, "gave up waiting for {what} after {limit:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Every queued mail of these tenants was sent, and the SMTP server got
    /// each once: as many messages as mails, no Message-ID twice.
    pub async fn mail_sent_once(&self, tenants: &[TenantId]) {
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
pub struct Replica(Child);

impl Replica {
    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    /// Ctrl-C, as an orchestrator stops it; waits until it has ended.
    pub fn stop(mut self) {
        // SAFETY: sends a signal to a child process this test started.
        unsafe { libc::kill(self.pid(), libc::SIGINT) };
        let _ = self.0.wait();
    }

    /// SIGKILL: the replica dies mid-whatever, nothing of it runs after.
    pub fn kill(mut self) {
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
