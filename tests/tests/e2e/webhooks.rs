//! Webhooks end to end: the real Personio component subscribes the host's
//! endpoint with the sandbox, the sandbox delivers every change over real
//! HTTP, and the host imports just the people named — with no poll.
//! Duplicated, out-of-order and delayed deliveries end in the right state;
//! a lost one is repaired by the next complete run; a deletion deactivates
//! only whom the source confirms gone.

use std::sync::Arc;
use std::time::Duration;

use hrsync::directory::prelude::*;
use hrsync::directory::{IntegrationId, RunKind, Trigger, User, UserStatus};
use hrsync::sandbox::{DeliveryFault, Edit, Hire, Status};
use hrsync::sync::SyncEngine;
use hrsync::sync::engine::RunRequest;
use hrsync::webhooks::Webhooks;
use hrsync_e2e::{World, personio};

/// A World whose Personio integration reads v2 with automatic imports on,
/// served by the real web app (its webhook endpoint) at a loopback address.
struct Pushed {
    w: World,
    engine: Arc<SyncEngine>,
    webhooks: Arc<Webhooks>,
    base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn pushed(people: usize) -> Pushed {
    let w = World::new(people, "active,onboarding,leave,inactive").await;
    w.sandbox.set_rate_limit(None);
    w.sandbox.set_delivery_backoff(Duration::from_millis(100));
    let mut integration = w.store.integration(w.integration).unwrap();
    integration.config.settings.insert("api-version".into(), "v2".into());
    integration.config.auto_import = true;
    w.store.update_integration(w.integration, &integration.config).unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (runtime, connector) = personio().await;
    let mut engine = SyncEngine::new(runtime.clone(), w.store.clone(), vec![connector.clone()]);
    engine.invite.public_url = base.clone();
    let engine = Arc::new(engine);
    let accounts = Arc::new(hrsync::accounts::Accounts::open(&w.db).unwrap());
    let audit = Arc::new(hrsync::audit::Audit::open(&w.db).unwrap());
    let state = hrsync::web::AppState::new(engine.clone(), accounts, audit);
    let webhooks = state.webhooks.clone();
    let tenancy = state.tenancy.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (stop_worker, worker_stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        hrsync::web::serve(listener, state, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
        let _ = stop_worker.send(true);
    });
    let mut worker_stopped = worker_stopped;
    tokio::spawn(tenancy.process_deliveries_forever(async move {
        let _ = worker_stopped.changed().await;
    }));
    Pushed { w, engine, webhooks, base, _stop: stop }
}

impl Pushed {
    /// Waits (at most 15 s) until the user of sandbox employee `id` satisfies `ok`.
    async fn until(&self, id: u64, what: &str, ok: impl Fn(Option<&User>) -> bool) {
        for _ in 0..300 {
            if ok(self.w.user_of(id).as_ref()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what} did not reach the directory: {:?}", self.w.user_of(id));
    }

    /// Waits (at most 15 s) until more than `before` event runs finished;
    /// the last one.
    async fn runs_after(&self, before: usize) -> hrsync::directory::Run {
        for _ in 0..300 {
            let finished = self.finished_event_runs();
            if finished.len() > before {
                return finished.into_iter().max_by_key(|r| r.id).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no event run after {before}");
    }

    fn finished_event_runs(&self) -> Vec<hrsync::directory::Run> {
        let runs = self.w.store.runs(Some(self.w.integration), 0, 1000).unwrap();
        runs.into_iter()
            .filter(|r| r.trigger == Trigger::Event && r.kind == RunKind::Import && r.finished_at.is_some())
            .collect()
    }

    fn event_runs(&self) -> usize {
        let runs = self.w.store.runs(Some(self.w.integration), 0, 1000).unwrap();
        runs.iter().filter(|r| r.trigger == Trigger::Event && r.kind == RunKind::Import).count()
    }
}

fn integration(p: &Pushed) -> IntegrationId {
    p.w.integration
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hire_an_edit_a_move_a_leaver_and_a_removal_reach_the_directory_with_no_poll() {
    let p = pushed(40).await;
    p.engine.import(&RunRequest::manual(integration(&p))).await.unwrap();
    let subscription = p.webhooks.subscribe(integration(&p)).await.unwrap();
    assert_eq!(p.w.sandbox.webhooks().len(), 1, "registered with Personio");
    assert!(p.w.sandbox.webhooks()[0].url.starts_with(&format!("{}/hooks/", p.base)));
    assert_eq!(
        p.w.store.integration(integration(&p)).unwrap().config.interval_minutes,
        24 * 60,
        "a daily complete run"
    );
    assert!(subscription.description.contains("Personio webhook"));

    let people = p.w.sandbox.employees();
    let boss = people.iter().find(|e| e.status == Status::Active && p.w.user_of(e.id).is_some()).unwrap().id;
    let hired = p.w.sandbox.hire(Hire {
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        email: Some("ada.lovelace@acme.example".into()),
        supervisor_id: Some(boss),
        position: Some("Analyst".into()),
        ..Hire::default()
    });
    p.until(hired, "the hire", |u| u.is_some_and(|u| u.profile.job_title.as_deref() == Some("Analyst"))).await;
    let boss_user = p.w.user_of(boss).unwrap().id;
    assert_eq!(p.w.user_of(hired).unwrap().manager_id, Some(boss_user), "with their manager");

    p.w.sandbox.apply(hired, Edit { position: Some("Senior Analyst".into()), ..Edit::default() }).unwrap();
    p.until(hired, "the edit", |u| u.is_some_and(|u| u.profile.job_title.as_deref() == Some("Senior Analyst"))).await;

    let other = people.iter().find(|e| e.id != boss && e.status == Status::Active && p.w.user_of(e.id).is_some());
    let other = other.unwrap().id;
    p.w.sandbox.apply(hired, Edit { supervisor_id: Some(Some(other)), ..Edit::default() }).unwrap();
    let other_user = p.w.user_of(other).unwrap().id;
    p.until(hired, "the move", |u| u.is_some_and(|u| u.manager_id == Some(other_user))).await;

    // A leaver: Personio says inactive, the event deactivates.
    p.w.sandbox.apply(hired, Edit { status: Some(Status::Inactive), ..Edit::default() }).unwrap();
    p.until(hired, "the leaver", |u| u.is_some_and(|u| u.profile.status == UserStatus::Inactive)).await;
    assert!(p.event_runs() >= 4, "each change came as an event run: {}", p.event_runs());

    // A removal: the event run fetches the person, finds them gone, and
    // deactivates them.
    let active = |e: &&hrsync::sandbox::Employee| {
        e.status == Status::Active && e.id != boss && e.id != other && p.w.user_of(e.id).is_some()
    };
    let removed = people.iter().find(active).unwrap().id;
    assert!(p.w.sandbox.remove(removed));
    p.until(removed, "the removal", |u| u.is_some_and(|u| u.profile.status == UserStatus::Inactive)).await;

    // A deletion announced for someone the source still has (stale, or sent
    // by whoever holds the token) deactivates nobody: the run finds them.
    let still = people.iter().filter(active).find(|e| e.id != removed).unwrap().id;
    let hook = p.w.sandbox.webhooks().remove(0);
    let runs_before = p.finished_event_runs().len();
    let body = format!(
        r#"{{"company_id":1,"event_name":"person.deleted","occurred_at":"2026-01-01T00:00:00Z","payload":{{"id":"{still}"}}}}"#
    );
    assert_eq!(post_raw(&hook.url, hook.token.as_deref(), &body).await, 202);
    let run = p.runs_after(runs_before).await;
    assert_eq!(run.counts.deactivated, 0, "{run:?}");
    assert_eq!(p.w.user_of(still).unwrap().profile.status, UserStatus::Active, "still in the source, still active");

    // Deliveries with a wrong token or to an unknown endpoint are refused and counted.
    let hook = p.w.store.subscription(integration(&p)).unwrap().unwrap().hook;
    let client = post_raw(&format!("{}/hooks/{hook}", p.base), Some("forged"), "{}").await;
    assert_eq!(client, 401);
    assert_eq!(post_raw(&format!("{}/hooks/nope", p.base), None, "{}").await, 404);
    let counters = p.webhooks.counters();
    assert_eq!((counters.deliveries.get("wrong-token"), counters.deliveries.get("unknown-hook")), (Some(&1), Some(&1)));
    assert!(counters.deliveries["accepted"] >= 5 && counters.lag_count >= 4, "{counters:?}");

    assert!(p.webhooks.unsubscribe(integration(&p)).await.unwrap());
    assert!(p.w.sandbox.webhooks().is_empty(), "removed from Personio too");
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicated_late_and_out_of_order_deliveries_end_right_and_a_lost_one_is_repaired_by_the_complete_run() {
    let p = pushed(30).await;
    p.engine.import(&RunRequest::manual(integration(&p))).await.unwrap();
    p.webhooks.subscribe(integration(&p)).await.unwrap();
    let someone = p.w.sandbox.employees().into_iter().find(|e| p.w.user_of(e.id).is_some()).unwrap().id;
    let title = |t: &'static str| move |u: Option<&User>| u.is_some_and(|u| u.profile.job_title.as_deref() == Some(t));
    let edit = |t: &str| p.w.sandbox.apply(someone, Edit { position: Some(t.into()), ..Edit::default() }).unwrap();

    p.w.sandbox.inject_delivery_faults([DeliveryFault::Duplicate]);
    edit("Twice");
    p.until(someone, "a duplicated delivery", title("Twice")).await;

    p.w.sandbox.inject_delivery_faults([DeliveryFault::OutOfOrder]);
    edit("First");
    edit("Second");
    p.until(someone, "out-of-order deliveries", title("Second")).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        p.w.user_of(someone).unwrap().profile.job_title.as_deref(),
        Some("Second"),
        "the late one changes nothing"
    );

    p.w.sandbox.inject_delivery_faults([DeliveryFault::Delay { millis: 700 }]);
    edit("Late");
    p.until(someone, "a delayed delivery", title("Late")).await;

    p.w.sandbox.inject_delivery_faults([DeliveryFault::Lost]);
    edit("Lost");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        p.w.user_of(someone).unwrap().profile.job_title.as_deref(),
        Some("Late"),
        "the lost change did not arrive"
    );
    let repair = RunRequest { automatic: true, ..RunRequest::manual(integration(&p)) };
    p.engine.import(&repair).await.unwrap();
    assert_eq!(
        p.w.user_of(someone).unwrap().profile.job_title.as_deref(),
        Some("Lost"),
        "the complete run repaired it"
    );
}

/// A POST with an optional `Authorization`, over a raw connection; the status.
async fn post_raw(url: &str, token: Option<&str>, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let auth = token.map(|t| format!("Authorization: {t}\r\n")).unwrap_or_default();
    let request = format!(
        "POST /{path} HTTP/1.1\r\nHost: {authority}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    reply.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap()
}
