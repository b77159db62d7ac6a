//! Randomised faulted runs, each compared with an oracle.
//!
//! Per run: mutate the company (hires, edits, removals, supervisor moves,
//! leavers), pick a complete or an incremental import, queue one or two
//! faults on random pages, copy the database, run the import with the
//! faults, then run the same import without them on the copy. A run that
//! succeeded must leave the directory exactly as the oracle's; a run that
//! failed must leave it exactly as before. Anything else is a wrong result
//! (or, for a failed run that changed something, a partial import).

use hrsync::directory::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hrsync::directory::sqlite::SqliteStore;
use hrsync::directory::{IntegrationConfig, UserQuery};
use hrsync::runtime::{Connector, Limits, Runtime};
use hrsync::sandbox::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Edit, Fault, Hire, Sandbox, SandboxConfig, Status};
use hrsync::secrets::SecretBox;
use hrsync::sync::engine::RunRequest;
use hrsync::sync::{RetryPolicy, SyncEngine, SyncError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A run that takes longer than this is a hang.
const HANG: Duration = Duration::from_secs(120);
const KEY: [u8; 32] = [5; 32];

/// What the directory holds, keyed by source id (or email for unmanaged
/// users), with managers by the same key: comparable across databases.
type Snapshot = BTreeMap<String, String>;

fn snapshot(store: &dyn DirectoryStore) -> Snapshot {
    let (users, _) = store.users(&UserQuery { limit: u64::MAX >> 1, ..UserQuery::default() }).expect("read users");
    let key_of: HashMap<_, String> = users
        .iter()
        .map(|u| (u.id, u.managed_by.as_ref().map_or_else(|| u.profile.email.key(), |m| m.1.clone())))
        .collect();
    users
        .iter()
        .map(|u| {
            let manager = u.manager_id.and_then(|m| key_of.get(&m)).cloned().unwrap_or_default();
            let state = format!("{:?} manager={manager} missing={}", u.profile.fields(), u.missing_runs);
            (key_of[&u.id].clone(), state)
        })
        .collect()
}

/// Where two snapshots differ, briefly.
fn difference(a: &Snapshot, b: &Snapshot) -> String {
    let mut lines = Vec::new();
    for key in a.keys().chain(b.keys()).collect::<std::collections::BTreeSet<_>>() {
        if a.get(key) != b.get(key) {
            lines.push(format!("  {key}:\n    got    {:?}\n    wanted {:?}", a.get(key), b.get(key)));
        }
    }
    let more = lines.len().saturating_sub(5);
    lines.truncate(5);
    format!("{}{}", lines.join("\n"), if more > 0 { format!("\n  … and {more} more") } else { String::new() })
}

struct Directory {
    store: Arc<SqliteStore>,
    engine: SyncEngine,
}

fn open(path: &Path, runtime: &Arc<Runtime>, connector: &Connector) -> Directory {
    let store = Arc::new(SqliteStore::open(path, SecretBox::from_key(&KEY)).expect("open the directory"));
    let mut engine = SyncEngine::new(runtime.clone(), store.clone(), vec![connector.clone()]);
    // Waits shortened so hundreds of runs fit in minutes; the bounds stay.
    engine.retry =
        RetryPolicy { attempts: 6, max_wait: Duration::from_millis(300), total_wait: Duration::from_secs(10) };
    Directory { store, engine }
}

/// A consistent copy of the database (SQLite's `VACUUM INTO`).
fn copy(from: &Path, to: &Path) {
    let _ = std::fs::remove_file(to);
    let conn = rusqlite::Connection::open(from).expect("open for copying");
    conn.execute("VACUUM INTO ?1", [to.to_str().expect("a UTF-8 path")]).expect("copy the database");
}

#[derive(Default)]
struct Tally {
    runs: u32,
    complete: u32,
    incremental: u32,
    faults: BTreeMap<&'static str, u32>,
    outcomes: BTreeMap<String, u32>,
    wrong: u32,
    partial: u32,
    hangs: u32,
}

/// Changes the company as HR would between two syncs.
fn mutate(sandbox: &Sandbox, rng: &mut StdRng, n: usize) {
    let employees = sandbox.employees();
    for _ in 0..n {
        let someone = &employees[rng.random_range(0..employees.len())];
        match rng.random_range(0..6) {
            0 => {
                let i: u32 = rng.random();
                sandbox.hire(Hire {
                    first_name: "Soak".into(),
                    last_name: format!("Hire{i}"),
                    email: Some(format!("soak.hire{i}@acme.example")),
                    supervisor_id: Some(someone.id),
                    position: Some("Engineer".into()),
                    ..Hire::default()
                });
            }
            1 => {
                let title = format!("Title {}", rng.random_range(0..50));
                let _ = sandbox.apply(someone.id, Edit { position: Some(title), ..Edit::default() });
            }
            2 => {
                let boss = &employees[rng.random_range(0..employees.len())];
                let _ = sandbox.apply(someone.id, Edit { supervisor_id: Some(Some(boss.id)), ..Edit::default() });
            }
            3 => {
                let status = if someone.status == Status::Inactive { Status::Active } else { Status::Inactive };
                let _ = sandbox.apply(someone.id, Edit { status: Some(status), ..Edit::default() });
            }
            4 => {
                sandbox.remove(someone.id);
            }
            _ => {
                let _ = sandbox
                    .apply(someone.id, Edit { last_name: Some(format!("{}-X", someone.last_name)), ..Edit::default() });
            }
        }
    }
}

/// Runs the fault soak; `Ok(false)` on any wrong result.
pub async fn soak(runs: u32, seed: u64, people: usize) -> anyhow::Result<bool> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    // Two runs a round and their re-logins would pass Personio's 60 logins
    // a minute; the soak runs far faster than any real schedule.
    let sandbox = Sandbox::new(SandboxConfig { auth_per_minute: u32::MAX, ..SandboxConfig::new(people, seed) });
    sandbox.set_rate_limit(None);
    let running = sandbox.serve("127.0.0.1:0".parse()?).await?;
    let dir: PathBuf = std::env::temp_dir().join(format!("hrsync-soak-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let runtime = Arc::new(Runtime::new(Limits::default(), Some(dir.join("cache")))?);
    let connector = runtime.load("bundled:personio", hrsync::connectors::BUNDLED_PERSONIO).await?;

    let (main_db, oracle_db) = (dir.join("hrsync.db"), dir.join("oracle.db"));
    let store = SqliteStore::open(&main_db, SecretBox::from_key(&KEY))?;
    let mut config = IntegrationConfig::new("personio", "Soak");
    for (k, v) in [
        ("api-base-url", running.url.as_str()),
        ("client-id", DEMO_CLIENT_ID),
        ("client-secret", DEMO_CLIENT_SECRET),
        // The injected faults are v1's (offsets, repeated and shrinking pages).
        ("api-version", "v1"),
        ("import-statuses", "active,onboarding,leave"),
    ] {
        config.settings.insert(k.into(), v.into());
    }
    config.secret_keys.insert("client-secret".into());
    config.grants = vec![running.url.clone()];
    let integration = store.create_integration(&config)?;
    drop(store);
    let main = open(&main_db, &runtime, &connector);
    let first = main.engine.import(&RunRequest::manual(integration)).await?;
    let mut last_success: DateTime<Utc> = first.run.started_at;
    println!(
        "soak: seed {seed}, {} people, first import created {} in {:.1} s",
        sandbox.len(),
        first.run.counts.created,
        started.elapsed().as_secs_f64()
    );

    let kinds = Fault::kinds();
    let mut tally = Tally::default();
    for i in 1..=runs {
        let changes = rng.random_range(1..=6);
        mutate(&sandbox, &mut rng, changes);
        let incremental = rng.random_bool(0.5);
        let since = incremental.then(|| last_success - chrono::Duration::minutes(2));
        let pages = if incremental { 1 } else { sandbox.len().div_ceil(100) };
        // A shrinking total is a change between pages: on the only page of a
        // run it is indistinguishable from a smaller company, to any client.
        let kinds: Vec<&Fault> = kinds.iter().filter(|f| pages > 1 || !matches!(f, Fault::Shrink { .. })).collect();
        let mut faults = Vec::new();
        for _ in 0..rng.random_range(1..=2) {
            faults.push(kinds[rng.random_range(0..kinds.len())].clone());
        }
        // Harmless slow answers first, so the faults land on a random page
        // (a shrink after the first).
        let first = usize::from(faults.iter().any(|f| matches!(f, Fault::Shrink { .. })));
        let skip = rng.random_range(first..pages.max(first + 1));
        sandbox.inject(std::iter::repeat_n(Fault::Slow { millis: 0 }, skip).chain(faults.iter().cloned()));
        for f in &faults {
            *tally.faults.entry(f.kind()).or_default() += 1;
        }

        let before = snapshot(main.store.as_ref());
        copy(&main_db, &oracle_db);
        let request = RunRequest { updated_since: since, ..RunRequest::manual(integration) };
        let outcome = tokio::time::timeout(HANG, main.engine.import(&request)).await;
        sandbox.clear_faults();
        tally.runs += 1;
        if incremental {
            tally.incremental += 1
        } else {
            tally.complete += 1
        }
        let result = match outcome {
            Ok(r) => r,
            Err(_) => {
                tally.hangs += 1;
                println!("run {i}: HANG with {faults:?}");
                continue;
            }
        };
        let after = snapshot(main.store.as_ref());
        let label = match &result {
            Ok(_) => "succeeded".to_string(),
            Err(SyncError::Blocked { .. }) => "blocked".into(),
            Err(e) => format!("failed ({})", e.run_error().map_or("sync", |r| r.kind())),
        };
        *tally.outcomes.entry(label).or_default() += 1;
        match result {
            Ok(report) => {
                last_success = report.run.started_at;
                let oracle = open(&oracle_db, &runtime, &connector);
                if let Err(e) = oracle.engine.import(&request).await {
                    anyhow::bail!("run {i}: the oracle's import (no faults) failed, so nothing can be compared: {e}");
                }
                let want = snapshot(oracle.store.as_ref());
                if after != want {
                    tally.wrong += 1;
                    println!(
                        "run {i}: WRONG result with {faults:?} ({}):\n{}",
                        if incremental { "incremental" } else { "complete" },
                        difference(&after, &want)
                    );
                }
            }
            Err(e) => {
                if after != before {
                    tally.partial += 1;
                    println!("run {i}: PARTIAL import with {faults:?}: {e}\n{}", difference(&after, &before));
                }
            }
        }
        if i % 50 == 0 {
            println!("  … {i} runs, {:.0} s", started.elapsed().as_secs_f64());
        }
    }
    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "soak: {} runs ({} complete, {} incremental) in {:.0} s",
        tally.runs,
        tally.complete,
        tally.incremental,
        started.elapsed().as_secs_f64()
    );
    let faults: Vec<String> = tally.faults.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!("  faults injected: {}", faults.join(", "));
    let outcomes: Vec<String> = tally.outcomes.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!("  outcomes: {}", outcomes.join(", "));
    println!("  wrong results: {}, partial imports: {}, hangs: {}", tally.wrong, tally.partial, tally.hangs);
    Ok(tally.wrong == 0 && tally.partial == 0 && tally.hangs == 0)
}
