//! One run per integration, across processes, and runs that can be
//! stopped: two store handles on one database file stand for two hrsync
//! processes (each handle owns its runs, as each process does).

use hrsync::directory::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hrsync::directory::sqlite::SqliteStore;
use hrsync::directory::{RunId, RunState, StoreError};
use hrsync::sandbox::{Edit, Fault, Status};
use hrsync::secrets::SecretBox;
use hrsync::sync::engine::RunRequest;
use hrsync::sync::{SyncEngine, SyncError};
use hrsync_e2e::{World, personio};

/// A second process on the world's data: its own store handle and engine.
async fn second_process(w: &World) -> Arc<SyncEngine> {
    let store = Arc::new(SqliteStore::open(&w.db, SecretBox::from_key(&[9; 32])).unwrap());
    let (runtime, connector) = personio().await;
    Arc::new(SyncEngine::new(runtime.clone(), store, vec![connector.clone()]))
}

/// Slow pages: a run that takes a few seconds.
fn slow(w: &World, pages: usize) {
    w.sandbox.inject(std::iter::repeat_n(Fault::Slow { millis: 400 }, pages));
}

async fn ended(store: &dyn DirectoryStore, run: RunId, within: Duration) -> RunState {
    let deadline = Instant::now() + within;
    loop {
        let state = store.run(run).unwrap().state;
        if !state.is_live() || Instant::now() > deadline {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn users(store: &dyn DirectoryStore) -> u64 {
    store.users(&hrsync::directory::UserQuery::default()).unwrap().1
}

fn busy_with(e: &SyncError, run: RunId) -> bool {
    matches!(e, SyncError::Store(StoreError::AlreadyRunning(h)) if h.run == run)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preview_holds_the_integration_against_a_second_preview_and_an_import() {
    let w = World::new(300, "active").await;
    slow(&w, 3);
    let engine = Arc::new(w.engine);
    let preview = engine.start_preview(RunRequest::manual(w.integration)).unwrap();
    let again = engine.start_preview(RunRequest::manual(w.integration)).unwrap_err();
    assert!(busy_with(&again, preview), "{again}");
    let import = engine.start_import(RunRequest::manual(w.integration)).unwrap_err();
    assert!(busy_with(&import, preview), "{import}");
    assert!(import.to_string().contains(&format!("run {preview} (manual preview")), "{import}");
    assert_eq!(ended(w.store.as_ref(), preview, Duration::from_secs(60)).await, RunState::Succeeded);
    engine.import(&RunRequest::manual(w.integration)).await.expect("free once the preview ended");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_process_is_refused_while_a_run_holds_the_integration_and_reading_changes_nothing() {
    let w = World::new(300, "active").await;
    let other = second_process(&w).await;
    slow(&w, 4);
    let engine = Arc::new(w.engine);
    let run = engine.start_import(RunRequest::manual(w.integration)).unwrap();

    // The other process reads history: the run is running, and stays so.
    assert_eq!(other.store().run(run).unwrap().state, RunState::Running);
    assert_eq!(other.store().runs(None, 0, 10).unwrap()[0].state, RunState::Running);
    let refused = other.import(&RunRequest::manual(w.integration)).await.unwrap_err();
    assert!(busy_with(&refused, run), "{refused}");
    assert!(refused.to_string().contains(w.store.owner()), "names the process holding it: {refused}");
    let refused = other.preview(&RunRequest::manual(w.integration)).await.unwrap_err();
    assert!(busy_with(&refused, run), "{refused}");

    assert_eq!(ended(w.store.as_ref(), run, Duration::from_secs(60)).await, RunState::Succeeded);
    let created = w.store.run(run).unwrap().counts.created;
    let second = other.import(&RunRequest::manual(w.integration)).await.unwrap();
    assert_eq!((second.run.counts.created, second.run.counts.updated), (0, 0), "applied once: {created} created");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_import_stops_promptly_and_applies_nothing() {
    let w = World::new(400, "active").await;
    slow(&w, 20);
    let engine = Arc::new(w.engine);
    let run = engine.start_import(RunRequest::manual(w.integration)).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    engine.cancel(run, Some("ann")).unwrap();
    assert_eq!(ended(w.store.as_ref(), run, Duration::from_secs(10)).await, RunState::Cancelled);
    assert!(asked.elapsed() < Duration::from_secs(2), "this process stops it at once: {:?}", asked.elapsed());
    let stored = w.store.run(run).unwrap();
    assert_eq!(stored.error.as_deref(), Some(format!("run {run} was cancelled by ann; nothing was applied").as_str()));
    assert_eq!(users(w.store.as_ref()), 0, "nothing applied");
    let again = engine.cancel(run, None).unwrap_err();
    assert!(again.to_string().contains("is not running (it is cancelled)"), "{again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_process_can_cancel_a_run_within_a_heartbeat() {
    let w = World::new(400, "active").await;
    let other = second_process(&w).await;
    slow(&w, 40);
    let engine = Arc::new(w.engine);
    let run = engine.start_import(RunRequest::manual(w.integration)).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    let stored = other.cancel(run, Some("bob")).unwrap();
    assert_eq!(stored.cancel_requested_by.as_deref(), Some("bob"));
    assert_eq!(ended(w.store.as_ref(), run, Duration::from_secs(15)).await, RunState::Cancelled);
    let took = asked.elapsed();
    assert!(took < 2 * hrsync::directory::HEARTBEAT_EVERY + Duration::from_secs(2), "{took:?}");
    assert_eq!(users(w.store.as_ref()), 0, "nothing applied");
    w.sandbox.clear_faults();
    other.import(&RunRequest::manual(w.integration)).await.expect("the integration is free again");
}

#[tokio::test(flavor = "multi_thread")]
async fn whoever_the_fetch_returns_has_their_missing_count_reset_even_when_a_field_is_skipped() {
    let w = World::new(60, "active").await;
    w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    let employees = w.sandbox.employees();
    let stranger = employees.iter().find(|e| e.status == Status::Inactive).expect("someone not imported").id;
    let person = employees.iter().find(|e| w.user_of(e.id).is_some_and(|u| u.manager_id.is_some())).unwrap().id;
    // As a truncated run once left them: missing once.
    let user = w.user_of(person).unwrap();
    let db = rusqlite::Connection::open(&w.db).unwrap();
    db.execute("UPDATE users SET missing_runs = 1 WHERE id = ?1", [user.id.0]).unwrap();
    // Their only change is a supervisor the directory does not have: skipped.
    w.sandbox.apply(person, Edit { supervisor_id: Some(Some(stranger)), ..Edit::default() }).unwrap();

    let report = w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    assert!(
        report
            .issues
            .iter()
            .any(|i| i.source_id.as_deref() == Some(&person.to_string()) && i.message.contains("not in the directory")),
        "{:?}",
        report.issues
    );
    assert!(!report.changes.iter().any(|c| c.user_id == Some(user.id)), "no change for them");
    assert_eq!(w.user_of(person).unwrap().missing_runs, 0, "present, so no longer missing");
    assert_eq!(w.user_of(person).unwrap().manager_id, user.manager_id);
}
