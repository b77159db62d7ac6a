//! Automatic imports and mail, end to end: the real Personio component
//! against the sandbox, the scheduler on a controllable clock, and the
//! outbox delivered to a real SMTP server on loopback (Debian's
//! `python3-aiosmtpd`, started here; missing is a failure, never a skip).

use hrsync::directory::prelude::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use hrsync::directory::sqlite::SqliteStore;
use hrsync::directory::{Email, UserStatus};
use hrsync::mail::{Courier, Invite, MailKind, MailState, Security, SmtpSettings};
use hrsync::sandbox::company::Status;
use hrsync::sandbox::{Edit, Fault, Hire};
use hrsync::schedule::{Clock, Outcome, Scheduler};
use hrsync::secrets::SecretBox;
use hrsync::sync::SyncEngine;
use hrsync::sync::engine::RunRequest;
use hrsync_e2e::{World, personio};

/// A clock the test moves by hand.
struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    fn new() -> Arc<Self> {
        Arc::new(TestClock(Mutex::new(Utc::now())))
    }
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
    fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().unwrap() = to;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// An SMTP server on a free loopback port: `python3 -m aiosmtpd` storing
/// into a Maildir, or a few lines of Python where its command line falls
/// short (AUTH, a relay that goes silent).
struct SmtpServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

impl SmtpServer {
    async fn start() -> SmtpServer {
        Self::spawn(&[]).await
    }

    /// A server that requires STARTTLS with this certificate.
    async fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> SmtpServer {
        Self::spawn(&["--tlscert".as_ref(), cert.as_os_str(), "--tlskey".as_ref(), key.as_os_str()]).await
    }

    /// A relay that requires STARTTLS with this certificate, then SMTP AUTH
    /// as `user` with `password` (aiosmtpd's command line has no AUTH, so a
    /// few lines of its API).
    async fn start_auth(cert: &std::path::Path, key: &std::path::Path, user: &str, password: &str) -> SmtpServer {
        const RELAY: &str = "\
import ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword
port, maildir, cert, key, user, password = sys.argv[1:7]
def check(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (user.encode(), password.encode())
    return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535
tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(cert, key)
Controller(Mailbox(maildir), hostname='127.0.0.1', port=int(port), tls_context=tls, require_starttls=True,
           authenticator=check, auth_required=True).start()
while True:
    time.sleep(3600)
";
        Self::python(RELAY, &[cert.as_os_str(), key.as_os_str(), user.as_ref(), password.as_ref()]).await
    }

    /// A relay that speaks TLS from the first byte (SMTPS, usually port 465).
    async fn start_implicit_tls(cert: &std::path::Path, key: &std::path::Path) -> SmtpServer {
        const SMTPS: &str = "\
import ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
port, maildir, cert, key = sys.argv[1:5]
tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(cert, key)
Controller(Mailbox(maildir), hostname='127.0.0.1', port=int(port), ssl_context=tls).start()
while True:
    time.sleep(3600)
";
        Self::python(SMTPS, &[cert.as_os_str(), key.as_os_str()]).await
    }

    /// A relay that greets, answers EHLO, then never answers again.
    async fn start_silent() -> SmtpServer {
        const SILENT: &str = "\
import socket, sys, threading
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(('127.0.0.1', int(sys.argv[1])))
listener.listen()
def serve(client):
    client.sendall(b'220 silent\\r\\n')
    for line in client.makefile('rb'):
        if line[:4].upper() == b'EHLO':
            client.sendall(b'250 silent\\r\\n')
while True:
    threading.Thread(target=serve, args=(listener.accept()[0],), daemon=True).start()
";
        Self::python(SILENT, &[]).await
    }

    /// Runs `script` as `python3 -c script PORT MAILDIR ARGS...`.
    async fn python(script: &str, args: &[&std::ffi::OsStr]) -> SmtpServer {
        Self::launch(|port, maildir| {
            let mut all: Vec<std::ffi::OsString> = vec!["-c".into(), script.into(), port.to_string().into()];
            all.extend(std::iter::once(maildir.as_os_str()).chain(args.iter().copied()).map(Into::into));
            all
        })
        .await
    }

    async fn spawn(extra: &[&std::ffi::OsStr]) -> SmtpServer {
        Self::launch(|port, maildir| {
            let mut args: Vec<std::ffi::OsString> =
                ["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")].map(Into::into).into();
            args.extend(extra.iter().map(Into::into));
            args.extend(["-c".into(), "aiosmtpd.handlers.Mailbox".into(), maildir.as_os_str().to_owned()]);
            args
        })
        .await
    }

    /// Runs Python with the arguments `args` gives for a free port and a
    /// fresh Maildir, and waits until it listens.
    async fn launch(args: impl FnOnce(u16, &std::path::Path) -> Vec<std::ffi::OsString>) -> SmtpServer {
        let python = std::env::var("HRSYNC_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
        let probe = Command::new(&python).args(["-c", "import aiosmtpd"]).output();
        assert!(
            probe.as_ref().is_ok_and(|o| o.status.success()),
            "{python} cannot import aiosmtpd: the mail tests need a real SMTP server. \
             Install Debian's python3-aiosmtpd (apt-get install python3-aiosmtpd), or set HRSYNC_TEST_PYTHON."
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let maildir = std::env::temp_dir().join(format!("hrsync-smtp-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&maildir);
        let child = Command::new(&python)
            .args(args(port, &maildir))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting aiosmtpd");
        let server = SmtpServer { child, port, maildir };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return server;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("aiosmtpd did not listen on port {port}");
    }

    fn settings(&self) -> SmtpSettings {
        smtp_at(self.port)
    }

    /// Every message received, as raw text.
    fn messages(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(self.maildir.join("new")) else { return Vec::new() };
        let mut texts: Vec<String> = dir.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect();
        texts.sort();
        texts
    }
}

fn smtp_at(port: u16) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port: Some(port),
        security: Security::None,
        username: None,
        password: None,
        from: "hrsync <people@acme.example>".into(),
        ca_file: None,
    }
}

/// A world whose integration runs automatic imports that send emails, an
/// engine that can be shared, and the scheduler on a test clock.
struct Auto {
    w: World,
    engine: Arc<SyncEngine>,
    clock: Arc<TestClock>,
    scheduler: Scheduler,
}

async fn auto(people: usize, interval_minutes: u32) -> Auto {
    let w = World::new(people, "active,onboarding,leave").await;
    let mut integration = w.store.integration(w.integration).unwrap();
    integration.config.auto_import = true;
    integration.config.send_emails = true;
    integration.config.interval_minutes = interval_minutes;
    w.store.update_integration(w.integration, &integration.config).unwrap();
    let (runtime, connector) = personio().await;
    let mut engine = SyncEngine::new(runtime.clone(), w.store.clone(), vec![connector.clone()]);
    engine.invite =
        Invite { company: Some("Acme".into()), public_url: "https://people.acme.example".into(), ..Invite::default() };
    let engine = Arc::new(engine);
    let clock = TestClock::new();
    let mut scheduler = Scheduler::new(engine.clone(), clock.clone(), 7);
    scheduler.alert_to = vec![Email::parse("it@acme.example").unwrap()];
    Auto { w, engine, clock, scheduler }
}

impl Auto {
    /// Ticks at the scheduled time of the next run and returns its outcome.
    async fn run_due(&self) -> Outcome {
        let next = self.w.store.schedule(self.w.integration).unwrap().expect("a schedule").next_run_at;
        self.clock.set(next);
        let mut outcomes = self.scheduler.tick().await.unwrap();
        assert_eq!(outcomes.len(), 1, "{outcomes:?}");
        outcomes.remove(0).1
    }

    fn mails(&self) -> Vec<hrsync::mail::MailRecord> {
        self.w.store.mails(0, 1000).unwrap().0
    }
}

fn hire(first: &str, email: &str, supervisor: Option<u64>) -> Hire {
    Hire {
        first_name: first.into(),
        last_name: "Newhire".into(),
        email: Some(email.into()),
        supervisor_id: supervisor,
        ..Hire::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduler_runs_at_the_interval_with_bounded_jitter_incrementally_with_a_daily_full_run() {
    let a = auto(40, 60).await;
    let start = a.clock.now();
    let Outcome::Scheduled { at } = a.scheduler.tick().await.unwrap().remove(0).1 else {
        panic!("first sight schedules")
    };
    assert!(at >= start && at < start + Duration::minutes(10), "the first run comes soon: {at} vs {start}");
    assert!(a.scheduler.tick().await.unwrap().is_empty(), "nothing is due before then");

    let Outcome::Ran { incremental: false, next } = a.run_due().await else { panic!("the first run is complete") };
    let ran_at = a.clock.now();
    assert!(next >= ran_at + Duration::minutes(54) && next < ran_at + Duration::minutes(66), "60 min ± 10 %: {next}");
    let created = a.w.users().len();
    assert!(created > 20, "{created}");

    // A restart (a new scheduler over the same directory) neither runs
    // early nor forgets the schedule.
    let restarted = Scheduler::new(a.engine.clone(), a.clock.clone(), 99);
    assert!(restarted.tick().await.unwrap().is_empty(), "not due yet after a restart");
    a.clock.set(next - Duration::seconds(1));
    assert!(restarted.tick().await.unwrap().is_empty());

    let Outcome::Ran { incremental: true, .. } = a.run_due().await else { panic!("then incremental runs") };
    let runs = a.w.store.runs(Some(a.w.integration), 0, 10).unwrap();
    assert!(runs[0].since.is_some() && runs[1].since.is_none(), "history says which run was incremental");
    assert_eq!(runs[0].counts.created, 0);

    // Jitter stays within ±10 % over many draws.
    for _ in 0..200 {
        let n = a.scheduler.next_after(start, 120);
        assert!(n >= start + Duration::minutes(108) && n < start + Duration::minutes(132), "{n}");
    }

    // A shorter interval takes effect at once, not after the old wait.
    let mut config = a.w.store.integration(a.w.integration).unwrap().config;
    config.interval_minutes = 5;
    a.w.store.update_integration(a.w.integration, &config).unwrap();
    assert!(a.scheduler.tick().await.unwrap().is_empty());
    let pulled_in = a.w.store.schedule(a.w.integration).unwrap().unwrap().next_run_at;
    assert!(pulled_in <= a.clock.now() + Duration::seconds(330), "{pulled_in}");

    // A day after the last complete run, the next one is complete again.
    a.clock.advance(Duration::hours(25));
    let mut s = a.w.store.schedule(a.w.integration).unwrap().unwrap();
    s.next_run_at = a.clock.now();
    a.w.store.save_schedule(&s).unwrap();
    let Outcome::Ran { incremental: false, .. } = a.run_due().await else { panic!("a daily complete run") };
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_back_off_and_alert_the_admins_once() {
    let a = auto(20, 120).await;
    a.scheduler.tick().await.unwrap();
    let Outcome::Ran { .. } = a.run_due().await else { panic!("the first run works") };

    let mut config = a.w.store.integration(a.w.integration).unwrap().config;
    config.settings.insert("client-secret".into(), "wrong".into());
    a.w.store.update_integration(a.w.integration, &config).unwrap();
    let mut waits = Vec::new();
    let mut alerts = Vec::new();
    for _ in 0..5 {
        let Outcome::Failed { failures, next, alerted } = a.run_due().await else { panic!("wrong credentials fail") };
        waits.push((next - a.clock.now()).num_minutes());
        alerts.push((failures, alerted));
    }
    assert_eq!(waits, [1, 2, 4, 8, 16], "back-off doubles");
    assert_eq!(alerts, [(1, false), (2, false), (3, true), (4, false), (5, false)], "one alert per streak");
    let sent: Vec<_> = a.mails().into_iter().filter(|m| m.kind == MailKind::Alert).collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].recipient, "it@acme.example");
    assert!(sent[0].text.contains("credentials rejected"), "{}", sent[0].text);

    // Working again ends the streak.
    config.settings.insert("client-secret".into(), hrsync::sandbox::DEMO_CLIENT_SECRET.into());
    a.w.store.update_integration(a.w.integration, &config).unwrap();
    let Outcome::Ran { .. } = a.run_due().await else { panic!("fixed") };
    let s = a.w.store.schedule(a.w.integration).unwrap().unwrap();
    assert_eq!((s.failures, s.alerted), (0, false));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_automatic_run_is_never_applied_and_alerts_once() {
    let a = auto(60, 120).await;
    a.scheduler.tick().await.unwrap();
    let Outcome::Ran { .. } = a.run_due().await else { panic!("the first run works") };
    let active_before = a.w.users().iter().filter(|u| u.profile.status == UserStatus::Active).count();
    // Half of the company turns inactive at once: beyond the 20 % safeguard.
    for e in a.w.sandbox.employees().iter().filter(|e| e.status == Status::Active).take(active_before / 2) {
        a.w.sandbox.apply(e.id, Edit { status: Some(Status::Inactive), ..Edit::default() }).unwrap();
    }
    let Outcome::Blocked { alerted: true, .. } = a.run_due().await else { panic!("blocked") };
    let Outcome::Blocked { alerted: false, .. } = a.run_due().await else { panic!("still blocked, no second alert") };
    let active_after = a.w.users().iter().filter(|u| u.profile.status == UserStatus::Active).count();
    assert_eq!(active_after, active_before, "nothing of a blocked run is applied");
    assert_eq!(a.mails().iter().filter(|m| m.kind == MailKind::Alert).count(), 1);
    let runs = a.w.store.runs(Some(a.w.integration), 0, 2).unwrap();
    assert!(runs.iter().all(|r| r.state == hrsync::directory::RunState::Blocked));
}

#[tokio::test(flavor = "multi_thread")]
async fn integrations_due_together_run_side_by_side() {
    let a = auto(30, 60).await;
    // A second integration of the same company that imports the leavers,
    // so the two never contend for the same people.
    let mut leavers = a.w.store.integration(a.w.integration).unwrap().config;
    leavers.name = "Acme leavers".into();
    leavers.settings.insert("import-statuses".into(), "inactive".into());
    let second = a.w.store.create_integration(&leavers).unwrap();
    assert_eq!(a.scheduler.tick().await.unwrap().len(), 2, "both are scheduled");
    for id in [a.w.integration, second] {
        let mut s = a.w.store.schedule(id).unwrap().unwrap();
        s.next_run_at = a.clock.now();
        a.w.store.save_schedule(&s).unwrap();
    }
    // Every request answers slowly, so each run takes a while.
    a.w.sandbox.inject(std::iter::repeat_n(Fault::Slow { millis: 300 }, 20));
    let outcomes = a.scheduler.tick().await.unwrap();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(outcomes.iter().all(|(_, o)| matches!(o, Outcome::Ran { .. })), "{outcomes:?}");
    let runs = a.w.store.runs(None, 0, 2).unwrap();
    let (first, then) = (&runs[1], &runs[0]);
    assert!(then.started_at < first.finished_at.unwrap(), "the second run started before the first ended: {runs:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pending_starter_is_activated_and_invited_on_the_start_date_not_at_the_next_daily_run() {
    let a = auto(20, 60).await;
    // Noon of a fixed day, so every run below falls where the test says.
    let day = (Utc::now() + Duration::days(1)).date_naive();
    a.clock.set(day.and_hms_opt(12, 0, 0).unwrap().and_utc());
    a.engine.import(&RunRequest::manual(a.w.integration)).await.unwrap();
    a.scheduler.tick().await.unwrap();
    let Outcome::Ran { incremental: false, .. } = a.run_due().await else { panic!("the first run is complete") };

    let start = day + Duration::days(1);
    let ada = a.w.sandbox.hire(Hire { hire_date: Some(start), ..hire("Ada", "ada.starter@acme.example", None) });
    let invitations_to_ada = || {
        a.mails().iter().filter(|m| m.kind == MailKind::Invitation && m.recipient == "ada.starter@acme.example").count()
    };
    let Outcome::Ran { incremental: true, .. } = a.run_due().await else { panic!("the hire comes incrementally") };
    assert_eq!(a.w.user_of(ada).unwrap().profile.status, UserStatus::PendingStart);
    assert_eq!(invitations_to_ada(), 0, "no invitation before the start date");

    // Five past midnight on the start date: only 12 hours since the last
    // complete run, but nothing about Ada changed in Personio, so an
    // incremental run would not see her start. The run is complete.
    let mut s = a.w.store.schedule(a.w.integration).unwrap().unwrap();
    s.next_run_at = start.and_hms_opt(0, 5, 0).unwrap().and_utc();
    a.w.store.save_schedule(&s).unwrap();
    let Outcome::Ran { incremental: false, .. } = a.run_due().await else { panic!("complete on a start date") };
    assert_eq!(a.w.user_of(ada).unwrap().profile.status, UserStatus::Active);
    assert_eq!(invitations_to_ada(), 1, "invited on the start date");

    // One complete run a day is enough: the rest of the day is incremental.
    let Outcome::Ran { incremental: true, .. } = a.run_due().await else { panic!("incremental again") };
    assert_eq!(invitations_to_ada(), 1, "never twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn automatic_imports_bring_changes_within_one_interval_and_invite_the_new_hire_by_smtp() {
    let smtp = SmtpServer::start().await;
    let a = auto(50, 5).await;
    // The people already there came in by a manual import: nobody is emailed.
    a.engine.import(&RunRequest::manual(a.w.integration)).await.unwrap();
    assert!(a.mails().is_empty(), "manual imports never email anyone");
    a.scheduler.tick().await.unwrap();
    let Outcome::Ran { incremental: false, .. } = a.run_due().await else { panic!("first automatic run") };
    assert!(a.mails().is_empty(), "nobody new, nobody emailed");

    // In Personio: a hire, a manager change and a termination.
    let people = a.w.sandbox.employees();
    let boss = people.iter().find(|e| e.status == Status::Active && e.supervisor.is_none()).unwrap().id;
    let mover = people.iter().find(|e| e.status == Status::Active && e.supervisor.is_some_and(|s| s != boss)).unwrap();
    let leaver = people.iter().find(|e| e.status == Status::Active && e.id != mover.id && e.id != boss).unwrap().id;
    let hired = a.w.sandbox.hire(hire("Grace", "grace.newhire@acme.example", Some(boss)));
    let pending = a.w.sandbox.hire(Hire {
        hire_date: Some((Utc::now() + Duration::days(30)).date_naive()),
        ..hire("Future", "future.newhire@acme.example", Some(boss))
    });
    a.w.sandbox.apply(mover.id, Edit { supervisor_id: Some(Some(boss)), ..Edit::default() }).unwrap();
    a.w.sandbox
        .apply(
            leaver,
            Edit { status: Some(Status::Inactive), termination_date: Some(Utc::now().date_naive()), ..Edit::default() },
        )
        .unwrap();

    // One interval later, an incremental run has applied all of it.
    let requests_before = a.w.sandbox.stats().employee_requests;
    let Outcome::Ran { incremental: true, .. } = a.run_due().await else { panic!("incremental") };
    assert!(a.w.sandbox.stats().employee_requests - requests_before <= 2, "one page of changes");
    let grace = a.w.user_of(hired).expect("the hire is in the directory");
    assert_eq!(grace.manager_id, Some(a.w.user_of(boss).unwrap().id));
    assert_eq!(a.w.user_of(mover.id).unwrap().manager_id, Some(a.w.user_of(boss).unwrap().id));
    assert_eq!(a.w.user_of(leaver).unwrap().profile.status, UserStatus::Inactive);
    assert_eq!(a.w.user_of(pending).unwrap().profile.status, UserStatus::PendingStart);

    // Exactly one invitation: the new, active hire (not the pending start,
    // not the leaver), queued in the import's transaction…
    let queued = a.mails();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!((queued[0].kind, queued[0].recipient.as_str()), (MailKind::Invitation, "grace.newhire@acme.example"));
    assert!(a.w.user_of(hired).unwrap().informed_at.is_some());
    // …and delivered over SMTP, plain text and HTML, with a working link.
    let courier = Courier::new(a.w.store.clone(), &smtp.settings()).unwrap();
    assert_eq!(courier.deliver_due(Utc::now()).await.unwrap().sent, 1);
    let received = smtp.messages();
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    assert!(mail.contains("X-RcptTo: grace.newhire@acme.example"), "{mail}");
    assert!(mail.contains("multipart/alternative") && mail.contains("text/html") && mail.contains("text/plain"));
    assert!(mail.contains(&queued[0].message_id), "the stored Message-ID is the one sent");
    // Bodies are quoted-printable: undo its soft line breaks first.
    let decoded = mail.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
    let token = decoded
        .split("https://people.acme.example/set-password/")
        .nth(1)
        .map(|rest| rest.chars().take_while(char::is_ascii_hexdigit).collect::<String>())
        .expect("a set-password link");
    assert_eq!(token.len(), 64);
    let who = a.w.store.invitation_user(&token, Utc::now()).unwrap().expect("the link works");
    assert_eq!(who.id, grace.id);
    assert_eq!(a.w.store.redeem_invitation(&token, "$argon2id$stub", Utc::now()).unwrap(), Some(grace.id));
    assert_eq!(a.w.store.redeem_invitation(&token, "$argon2id$again", Utc::now()).unwrap(), None, "single use");
    assert!(a.w.store.invitation_user(&token, Utc::now() + Duration::days(8)).unwrap().is_none());

    // Nobody is emailed twice: the next runs find Grace informed.
    a.w.sandbox.apply(hired, Edit { position: Some("Lead".into()), ..Edit::default() }).unwrap();
    let Outcome::Ran { .. } = a.run_due().await else { panic!("next run") };
    assert_eq!(a.mails().len(), 1);
    assert_eq!(courier.deliver_due(Utc::now()).await.unwrap().sent, 0);
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_dies_between_queued_and_sent_does_not_lose_or_double_the_mail() {
    let smtp = SmtpServer::start().await;
    let w = World::new(10, "active").await;
    w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    let someone = w.users()[0].id;
    let invited = w.store.invite(&[someone], &Invite::default(), Utc::now()).unwrap();
    assert_eq!(invited, [someone]);

    // A worker claims the mail and dies before sending.
    let now = Utc::now();
    assert_eq!(w.store.claim_mail(now, Duration::minutes(5), 50).unwrap().len(), 1);
    // The restarted worker (a fresh store over the same file) leaves it to
    // the first until its lease runs out, then sends it exactly once.
    let reopened: Arc<dyn DirectoryStore> = Arc::new(SqliteStore::open(&w.db, SecretBox::from_key(&[9; 32])).unwrap());
    let courier = Courier::new(reopened.clone(), &smtp.settings()).unwrap();
    assert_eq!(courier.deliver_due(now).await.unwrap().sent, 0, "still leased");
    assert_eq!(courier.deliver_due(now + Duration::minutes(6)).await.unwrap().sent, 1);
    assert_eq!(courier.deliver_due(now + Duration::minutes(60)).await.unwrap().sent, 0);
    assert_eq!(smtp.messages().len(), 1);
    let (mails, _) = reopened.mails(0, 10).unwrap();
    assert_eq!((mails[0].state, mails[0].attempts), (MailState::Sent, 1));
}

/// Ten active people imported by hand, the first `invited` of them with an
/// invitation queued for a courier to deliver.
async fn invitations_queued(invited: usize) -> World {
    let w = World::new(10, "active").await;
    w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    let ids: Vec<_> = w.users().iter().take(invited).map(|u| u.id).collect();
    assert_eq!(w.store.invite(&ids, &Invite::default(), Utc::now()).unwrap(), ids);
    w
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_smtp_server_is_retried_with_back_off() {
    let w = invitations_queued(1).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let now = Utc::now();
    let down = Courier::new(w.store.clone(), &smtp_at(closed)).unwrap();
    assert_eq!(down.deliver_due(now).await.unwrap().retrying, 1);
    let (mails, _) = w.store.mails(0, 10).unwrap();
    assert_eq!((mails[0].state, mails[0].attempts), (MailState::Queued, 1));
    assert!(mails[0].last_error.is_some());
    assert_eq!(down.deliver_due(now + Duration::seconds(10)).await.unwrap(), Default::default(), "not due yet");

    let smtp = SmtpServer::start().await;
    let up = Courier::new(w.store.clone(), &smtp.settings()).unwrap();
    assert_eq!(up.deliver_due(now + Duration::seconds(31)).await.unwrap().sent, 1);
    assert_eq!(smtp.messages().len(), 1);
}

/// A private CA and a server certificate for 127.0.0.1 it issued (Debian's
/// openssl), in a folder removed when the test ends.
struct Certificates {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn certificates(name: &str) -> Certificates {
    let dir = std::env::temp_dir().join(format!("hrsync-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, cert, key) = issue_certificates(&dir);
    Certificates { dir, ca, cert, key }
}

/// (CA certificate, server certificate, server key), made in `dir`.
fn issue_certificates(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let days = ["-days", "1"];
    openssl(
        &[
            &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=hrsync test CA"][..],
            &days,
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
    );
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &[
            &["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"][..],
            &days,
            &["-extfile", "ext.cnf", "-out", "cert.pem"],
        ]
        .concat(),
    );
    (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"))
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_goes_out_over_implicit_tls() {
    let Certificates { ca, cert, key, .. } = &certificates("smtps");
    let smtp = SmtpServer::start_implicit_tls(cert, key).await;
    let w = invitations_queued(1).await;
    let now = Utc::now();

    // Without trusting the private CA the handshake fails: retried later.
    let untrusted = SmtpSettings { security: Security::Tls, ..smtp.settings() };
    let courier = Courier::new(w.store.clone(), &untrusted).unwrap();
    assert_eq!(courier.deliver_due(now).await.unwrap().retrying, 1);
    assert!(smtp.messages().is_empty());
    let trusted = SmtpSettings { ca_file: Some(ca.clone()), ..untrusted };
    let courier = Courier::new(w.store.clone(), &trusted).unwrap();
    let delivery = courier.deliver_due(now + Duration::minutes(1)).await.unwrap();
    assert_eq!(delivery.sent, 1, "{delivery:?}: {:?}", w.store.mails(0, 10).unwrap().0[0].last_error);
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_that_stops_answering_does_not_hold_the_courier() {
    let relay = SmtpServer::start_silent().await;
    let w = invitations_queued(2).await;
    let courier =
        Courier::new(w.store.clone(), &relay.settings()).unwrap().with_send_timeout(std::time::Duration::from_secs(1));
    let delivery = tokio::time::timeout(std::time::Duration::from_secs(60), courier.deliver_due(Utc::now()))
        .await
        .expect("the courier gives up on a silent relay")
        .unwrap();
    assert_eq!((delivery.sent, delivery.retrying), (0, 2), "{delivery:?}");
    let (mails, _) = w.store.mails(0, 10).unwrap();
    assert!(mails.iter().all(|m| m.state == MailState::Queued), "both wait for their next attempt: {mails:?}");
    let error = mails[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("did not finish within 1 s"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_goes_out_through_a_relay_that_requires_smtp_auth_and_a_wrong_password_is_retried() {
    let Certificates { ca, cert, key, .. } = &certificates("smtp-auth");
    let smtp = SmtpServer::start_auth(cert, key, "hrsync", "relay-secret").await;
    let w = invitations_queued(1).await;
    let now = Utc::now();
    let over_tls = SmtpSettings { security: Security::Starttls, ca_file: Some(ca.clone()), ..smtp.settings() };

    // Without credentials, then with a wrong password: refused, retried later.
    let anonymous = Courier::new(w.store.clone(), &over_tls).unwrap();
    assert_eq!(anonymous.deliver_due(now).await.unwrap().retrying, 1);
    let wrong =
        SmtpSettings { username: Some("hrsync".into()), password: Some("wrong-secret".into()), ..over_tls.clone() };
    let courier = Courier::new(w.store.clone(), &wrong).unwrap();
    assert_eq!(courier.deliver_due(now + Duration::minutes(1)).await.unwrap().retrying, 1);
    let error = w.store.mails(0, 10).unwrap().0[0].last_error.clone().unwrap_or_default();
    assert!(
        error.contains("535") && !error.contains("wrong-secret"),
        "the relay's reason, never the password: {error}"
    );
    assert!(smtp.messages().is_empty());

    // The right password: delivered.
    let right = SmtpSettings { password: Some("relay-secret".into()), ..wrong };
    let courier = Courier::new(w.store.clone(), &right).unwrap();
    let delivery = courier.deliver_due(now + Duration::minutes(10)).await.unwrap();
    assert_eq!(delivery.sent, 1, "{delivery:?}: {:?}", w.store.mails(0, 10).unwrap().0[0].last_error);
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_goes_out_over_starttls_to_a_relay_with_a_private_certificate() {
    let Certificates { ca, cert, key, .. } = &certificates("smtp-tls");
    let smtp = SmtpServer::start_tls(cert, key).await;
    let w = invitations_queued(1).await;
    let now = Utc::now();

    // The relay insists on STARTTLS: plain SMTP is refused and retried later.
    let plain = Courier::new(w.store.clone(), &smtp.settings()).unwrap();
    assert_eq!(plain.deliver_due(now).await.unwrap().retrying, 1);
    // STARTTLS without trusting the private CA: the certificate is refused.
    let untrusted = SmtpSettings { security: Security::Starttls, ..smtp.settings() };
    let courier = Courier::new(w.store.clone(), &untrusted).unwrap();
    assert_eq!(courier.deliver_due(now + Duration::minutes(1)).await.unwrap().retrying, 1);
    let (mails, _) = w.store.mails(0, 10).unwrap();
    assert!(mails[0].last_error.as_deref().unwrap_or_default().to_lowercase().contains("certificate"), "{mails:?}");
    assert!(smtp.messages().is_empty());

    // Trusting it: delivered, encrypted.
    let trusted = SmtpSettings { security: Security::Starttls, ca_file: Some(ca.clone()), ..smtp.settings() };
    let courier = Courier::new(w.store.clone(), &trusted).unwrap();
    let delivery = courier.deliver_due(now + Duration::minutes(10)).await.unwrap();
    assert_eq!(delivery.sent, 1, "{delivery:?}: {:?}", w.store.mails(0, 10).unwrap().0[0].last_error);
    assert_eq!(smtp.messages().len(), 1);
}
