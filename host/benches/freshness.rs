//! Benchmark (not a test): how fresh the directory stays with webhooks,
//! next to polling every 5 minutes.
//!
//! An in-process sandbox company (no rate limits) and the real app on
//! loopback: the Personio connector on API v2 with webhooks on. Bursts of
//! 1, 10 and 1,000 changes (a job title each, distinct people) are made in
//! the sandbox; for each change, the time from the edit to the end of the
//! run that applied it (from the history), the source requests per change,
//! and the runs the burst took. Polling is measured as the incremental run
//! that would follow the burst; its latency is that run's time plus the
//! wait for the next tick, changes arriving uniformly over the 5 minutes.
//!
//! Run: `cargo bench -p hrsync --bench freshness` (or `-- PEOPLE`, default 2,000).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hrsync::directory::prelude::*;
use hrsync::directory::sqlite::SqliteStore;
use hrsync::directory::{IntegrationConfig, Run, RunKind, Trigger, UserQuery};
use hrsync::runtime::{Limits, Runtime};
use hrsync::sandbox::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Edit, Sandbox, SandboxConfig, Stats, Status};
use hrsync::secrets::SecretBox;
use hrsync::sync::SyncEngine;
use hrsync::sync::engine::RunRequest;

const BURSTS: [usize; 3] = [1, 10, 1000];
const POLL_EVERY: Duration = Duration::from_secs(300);

fn requests(s: &Stats) -> u64 {
    s.auth
        + s.revoked
        + s.person_requests
        + s.employment_requests
        + s.org_unit_requests
        + s.employee_requests
        + s.attribute_requests
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn main() -> anyhow::Result<()> {
    let people: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(2000);
    let dir = std::env::temp_dir().join(format!("hrsync-bench-freshness-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(people, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(people: usize, dir: &std::path::Path) -> anyhow::Result<()> {
    let sandbox = Sandbox::new(SandboxConfig::new(people, 42));
    sandbox.set_rate_limit(None);
    let running = sandbox.serve("127.0.0.1:0".parse()?).await?;
    let runtime = Arc::new(Runtime::new(Limits::default(), Some(dir.join("cache")))?);
    let connector = runtime.load("bundled:personio", hrsync::connectors::BUNDLED_PERSONIO).await?;
    let db = dir.join("hrsync.db");
    let store = Arc::new(SqliteStore::open(&db, SecretBox::from_key(&[1; 32]))?);
    let mut config = IntegrationConfig::new("personio", "bench");
    for (k, v) in [
        ("api-base-url", running.url.as_str()),
        ("client-id", DEMO_CLIENT_ID),
        ("client-secret", DEMO_CLIENT_SECRET),
        ("api-version", "v2"),
    ] {
        config.settings.insert(k.into(), v.into());
    }
    config.secret_keys.insert("client-secret".into());
    config.grants = vec![running.url.clone()];
    config.auto_import = true;
    let id = store.create_integration(&config)?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mut engine = SyncEngine::new(runtime, store.clone(), vec![connector]);
    engine.invite.public_url = format!("http://{}", listener.local_addr()?);
    let engine = Arc::new(engine);
    let accounts = Arc::new(hrsync::accounts::Accounts::open(&db)?);
    let audit = Arc::new(hrsync::audit::Audit::open(&db)?);
    let state = hrsync::web::AppState::new(engine.clone(), accounts, audit);
    let webhooks = state.webhooks.clone();
    tokio::spawn(state.tenancy.clone().process_deliveries_forever(std::future::pending()));
    tokio::spawn(hrsync::web::serve(listener, state, std::future::pending()));

    let started = Instant::now();
    let first = engine.import(&RunRequest::manual(id)).await?;
    println!(
        "{people} people; the first (complete, v2) import created {} in {:.1} s",
        first.run.counts.created,
        started.elapsed().as_secs_f64()
    );
    webhooks.subscribe(id).await?;

    // People in the directory, by sandbox id, to edit in the bursts.
    let source_of = |store: &SqliteStore| -> HashMap<String, (i64, Option<String>)> {
        let (users, _) = store.users(&UserQuery { limit: u64::MAX >> 1, ..UserQuery::default() }).unwrap();
        users.into_iter().filter_map(|u| Some((u.managed_by?.1, (u.id.0, u.profile.job_title)))).collect()
    };
    let editable: Vec<u64> = sandbox
        .employees()
        .iter()
        .filter(|e| e.status == Status::Active && source_of(&store).contains_key(&e.id.to_string()))
        .map(|e| e.id)
        .collect();
    println!("\nwebhooks (API v2, event runs), changes arriving in one burst:");
    println!("{:>7} {:>9} {:>9} {:>9} {:>14} {:>6}", "changes", "p50", "p95", "max", "requests/chg", "runs");
    let mut round = 0;
    for burst in BURSTS {
        round += 1;
        let chosen: Vec<u64> = editable.iter().copied().take(burst).collect();
        let runs_before = event_runs(&store, id);
        let stats_before = sandbox.stats();
        let delivered_before = sandbox.deliveries().len();
        let mut edited: HashMap<String, (DateTime<Utc>, String)> = HashMap::new();
        for (i, person) in chosen.iter().enumerate() {
            let title = format!("Title {round}-{i}");
            edited.insert(person.to_string(), (Utc::now(), title.clone()));
            sandbox.apply(*person, Edit { position: Some(title), ..Edit::default() }).map_err(anyhow::Error::msg)?;
        }
        settle(&store, &sandbox, delivered_before + burst).await?;
        // When each change reached the directory: the end of the run that
        // applied it, from the history (watching the directory itself
        // would compete with the runs for the database).
        let mut latencies = Vec::with_capacity(burst);
        for run in event_runs_since(&store, id, runs_before) {
            let Some(end) = run.finished_at else { continue };
            for change in store.run_changes(run.id, None)? {
                let Some((at, title)) = change.source_id.as_ref().and_then(|s| edited.get(s)) else { continue };
                if change.fields.iter().any(|f| f.field.name() == "job-title" && f.after.as_deref() == Some(title)) {
                    latencies.push((end - *at).to_std().unwrap_or_default());
                }
            }
        }
        anyhow::ensure!(latencies.len() == burst, "{} of {burst} changes reached the directory", latencies.len());
        latencies.sort();
        let used = requests(&sandbox.stats()) - requests(&stats_before);
        println!(
            "{:>7} {:>9} {:>9} {:>9} {:>14.2} {:>6}",
            burst,
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.95)),
            ms(*latencies.last().unwrap()),
            used as f64 / burst as f64,
            event_runs(&store, id) - runs_before
        );
    }

    // Polling: the next scheduled run reads everyone (v2 persons carry no
    // employment changes in `updated_at`), so it is measured as one.
    webhooks.unsubscribe(id).await?;
    println!("\npolling every 5 minutes (the run that follows a burst, measured):");
    println!("{:>7} {:>9} {:>9} {:>9} {:>14} {:>6}", "changes", "p50", "p95", "max", "requests/chg", "runs");
    for burst in BURSTS {
        round += 1;
        for (i, person) in editable.iter().take(burst).enumerate() {
            let edit = Edit { position: Some(format!("Title {round}-{i}")), ..Edit::default() };
            sandbox.apply(*person, edit).map_err(anyhow::Error::msg)?;
        }
        let before = sandbox.stats();
        let started = Instant::now();
        let report = engine.import(&RunRequest { automatic: true, ..RunRequest::manual(id) }).await?;
        let took = started.elapsed();
        anyhow::ensure!(report.run.counts.updated as usize >= burst, "the run updated {:?}", report.run.counts);
        let used = requests(&sandbox.stats()) - requests(&before);
        // A change waits for the next tick (uniform over the interval), then the run.
        let wait = |p: f64| POLL_EVERY.mul_f64(p) + took;
        println!(
            "{:>7} {:>9} {:>9} {:>9} {:>14.2} {:>6}",
            burst,
            format!("{:.0} s", wait(0.5).as_secs_f64()),
            format!("{:.0} s", wait(0.95).as_secs_f64()),
            format!("{:.0} s", wait(1.0).as_secs_f64()),
            used as f64 / burst as f64,
            1
        );
    }
    let counters = webhooks.counters();
    println!(
        "\nwebhook deliveries: {:?}; event lag (arrival → run end): mean {:.0} ms, max {:.0} ms over {} deliveries",
        counters.deliveries,
        counters.lag_sum / counters.lag_count.max(1) as f64 * 1e3,
        counters.lag_max * 1e3,
        counters.lag_count
    );
    Ok(())
}

fn event_runs(store: &SqliteStore, id: hrsync::directory::IntegrationId) -> usize {
    event_runs_since(store, id, 0).len()
}

/// Event-driven imports after the first `skip`, oldest first.
fn event_runs_since(store: &SqliteStore, id: hrsync::directory::IntegrationId, skip: usize) -> Vec<Run> {
    let mut runs = store.runs(Some(id), 0, 100_000).unwrap();
    runs.retain(|r| r.trigger == Trigger::Event && r.kind == RunKind::Import);
    runs.reverse();
    runs.into_iter().skip(skip).collect()
}

/// Waits (at most 2 minutes) until the sandbox made `deliveries` in all and
/// every delivery was processed, by runs that have ended; cheap checks only.
async fn settle(store: &SqliteStore, sandbox: &Sandbox, deliveries: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let delivered = sandbox.deliveries().len() >= deliveries;
        // Far ahead: deliveries claimed by a run in progress count as waiting.
        let processed = store.pending_integrations(Utc::now() + chrono::Duration::days(1))?.is_empty();
        let ended = store.runs(None, 0, 1)?.first().is_none_or(|r| r.finished_at.is_some());
        if delivered && processed && ended {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "the burst was not processed within 2 minutes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
