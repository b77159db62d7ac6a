//! A hostile connector against the host's bounds: paging without end, host
//! resources grown through `wasi:http`, log floods, runaway field values,
//! stack overflows, a guest `exit`, and plans that lie. Each is stopped or
//! refused with a message that names the connector and the cause, nothing
//! is applied, and the host's memory stays within the stated bound.

use hrsync::directory::prelude::*;
use hrsync::directory::{IntegrationConfig, IntegrationId, RunLimits, RunState, UserStatus};
use hrsync::model;
use hrsync::runtime::RunError;
use hrsync::runtime::egress::Grants;
use hrsync::runtime::memory::PeakMeter;
use hrsync::sync::engine::RunRequest;
use hrsync::sync::{FetchError, FetchLimits, FetchOptions, SyncEngine, SyncError, fetch_all};
use hrsync_e2e::*;

async fn fetch_mode(mode: &str, limits: FetchLimits) -> (Result<hrsync::sync::Fetched, FetchError>, Vec<String>) {
    let (runtime, connector) = hostile().await;
    let mut session = runtime.session(connector, Grants::none()).await.unwrap();
    let options = FetchOptions { limits, ..FetchOptions::default() };
    let result = fetch_all(&mut session, &entries(&[("mode", mode)]), &options, |_| {}).await;
    let logs = session.logs().iter().map(|l| l.message.clone()).collect();
    (result, logs)
}

/// A directory with the hostile connector as an integration, in `mode`.
struct Hostile {
    world: World,
    engine: SyncEngine,
    integration: IntegrationId,
}

impl Hostile {
    async fn new(mode: &str) -> Hostile {
        let world = World::new(5, "active").await;
        let (runtime, connector) = hostile().await;
        let mut config = IntegrationConfig::new("hostile", "Hostile");
        config.settings.insert("mode".into(), mode.into());
        let integration = world.store.create_integration(&config).unwrap();
        let engine = SyncEngine::new(runtime.clone(), world.store.clone(), vec![connector.clone()]);
        Hostile { world, engine, integration }
    }

    fn set_mode(&self, mode: &str) {
        let mut config = self.world.store.integration(self.integration).unwrap().config;
        config.settings.insert("mode".into(), mode.into());
        self.world.store.update_integration(self.integration, &config).unwrap();
    }

    /// Every user this integration manages, as (id, status, missing runs).
    fn users(&self) -> Vec<(i64, UserStatus, u32)> {
        let mine = |u: &hrsync::directory::User| u.managed_by.as_ref().is_some_and(|m| m.0 == self.integration);
        self.world.users().iter().filter(|u| mine(u)).map(|u| (u.id.0, u.profile.status, u.missing_runs)).collect()
    }
}

#[tokio::test]
async fn endless_paging_with_fresh_cursors_stops_at_the_page_limit() {
    let limits = FetchLimits { max_pages: 50, ..FetchLimits::default() };
    let (result, _) = fetch_mode("endless", limits).await;
    let err = result.unwrap_err();
    assert!(matches!(err, FetchError::LimitExceeded { what: "pages", limit: 50, page: 51 }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("limit of 50 pages") && text.contains("nothing was changed"), "{text}");

    // The same through an import: a failed run, recorded with the limit.
    let h = Hostile::new("endless").await;
    let mut config = h.world.store.integration(h.integration).unwrap().config;
    config.limits = RunLimits { max_pages: 20, ..RunLimits::default() };
    h.world.store.update_integration(h.integration, &config).unwrap();
    let err = h.engine.import(&RunRequest::manual(h.integration)).await.unwrap_err();
    assert!(err.to_string().contains("limit of 20 pages"), "{err}");
    let run = h.world.store.run(err.run().unwrap()).unwrap();
    assert_eq!(run.state, RunState::Failed);
    assert!(h.users().is_empty(), "nothing applied");
}

#[tokio::test]
async fn the_default_limits_fit_a_large_company_and_stop_a_runaway() {
    let d = RunLimits::default();
    assert!(d.max_pages >= 2_000 && d.max_records >= 200_000, "room for 100,000 people at 50 a page: {d:?}");
    assert!(d.max_minutes >= 30 && d.max_minutes <= 24 * 60, "{d:?}");
}

#[tokio::test]
async fn a_source_that_reports_more_people_than_it_returns_fails_the_run() {
    let (result, _) = fetch_mode("short-total", FetchLimits::default()).await;
    let err = result.unwrap_err();
    assert!(matches!(err, FetchError::Incomplete { received: 2, total: 3 }), "{err:?}");
    assert!(err.to_string().contains("the source returned 2 of 3 people; nothing was changed"), "{err}");
}

/// The resource bombs, run in this process: each is stopped, named, and
/// the host carries on. With `HRSYNC_BOMB` set (by the test below, in a
/// child process) it runs that bomb alone and prints the host's peak.
#[tokio::test(flavor = "multi_thread")]
async fn resource_bombs_are_stopped_and_named() {
    let only = std::env::var("HRSYNC_BOMB").ok();
    let cases = [
        ("fields", "the host's limit of 1024 resource handles"),
        ("big-fields", "the host's limit of 16 KiB per header set"),
        ("bodies", "the host's limit of 1024 resource handles"),
        ("memory", "more than 64 MiB of memory"),
    ];
    for (mode, limit) in cases.into_iter().filter(|(m, _)| only.as_deref().is_none_or(|o| o == *m)) {
        let (runtime, connector) = hostile().await;
        let meter = PeakMeter::start().expect("Linux reports the process's memory");
        let mut session = runtime.session(connector, Grants::none()).await.unwrap();
        let request = model::FetchRequest { cursor: None, updated_since: None };
        let err = session.fetch_page(&entries(&[("mode", mode)]), &request).await.unwrap_err();
        assert!(err.is_budget(), "{mode}: a bound of the sandbox stops it: {err:?}");
        assert!(err.to_string().contains(limit), "{mode}: {err}");
        drop(session);
        println!("bomb {mode}: peak growth {} bytes", meter.growth());
    }
    let fine = fetch_mode("fine", FetchLimits::default()).await.0.expect("the host still runs connectors");
    assert_eq!(fine.people.len(), 1);
}

/// The bound the README states: guest memory cap plus host-side resources,
/// measured in a child process so that other tests' memory is not counted.
#[test]
fn a_resource_bomb_cannot_grow_the_host_beyond_the_stated_bound() {
    let limits = test_limits();
    // What the guest may use, what the host may hold for it, and the
    // instance's and runtime's own overhead.
    let bound = limits.memory_bytes + limits.host_resource_bytes() + (32 << 20);
    for mode in ["fields", "big-fields", "bodies", "memory"] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "hostile::resource_bombs_are_stopped_and_named", "--nocapture", "--test-threads", "1"])
            .env("HRSYNC_BOMB", mode)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{mode}: {text}{}", String::from_utf8_lossy(&out.stderr));
        let growth: usize = text
            .lines()
            .find_map(|l| l.split(&format!("bomb {mode}: peak growth ")).nth(1))
            .and_then(|l| l.trim_end_matches(" bytes").parse().ok())
            .unwrap_or_else(|| panic!("{mode}: no figure in {text}"));
        println!("{mode}: host RSS grew by {} MiB (bound {} MiB)", growth >> 20, bound >> 20);
        assert!(growth <= bound, "{mode}: the host grew by {growth} bytes, over the bound of {bound}");
    }
}

#[tokio::test]
async fn a_log_flood_is_cut_escaped_and_bounded() {
    let (result, logs) = fetch_mode("log-flood", FetchLimits::default()).await;
    result.expect("logging too much is not an error");
    let kept: usize = logs.iter().map(String::len).sum();
    assert!(kept <= test_limits().log_bytes, "{kept} bytes kept");
    assert!(!logs.is_empty() && logs.len() < 5_000, "{} of 5,000 lines kept", logs.len());
    for line in &logs {
        assert!(line.len() <= test_limits().log_line_bytes + 32, "{} bytes", line.len());
        assert!(!line.contains('\n') && line.contains("\\n2026-12-02T00:00:00Z"), "{line}");
    }
}

#[tokio::test]
async fn a_runaway_field_value_is_cut_to_the_limit_and_reported() {
    let (result, _) = fetch_mode("huge-field", FetchLimits::default()).await;
    let fetched = result.unwrap();
    let title = fetched.people[0].job_title.as_ref().unwrap();
    assert_eq!(title.len(), hrsync::sync::intake::FIELD_BYTES);
    let issue = fetched.issues.iter().find(|i| i.field.as_deref() == Some("job-title")).expect("reported");
    assert!(issue.message.contains("5242880 bytes") && issue.message.contains("first 1024"), "{}", issue.message);

    // Imported with the cut value and the issue; the next run sees no change.
    let h = Hostile::new("huge-field").await;
    let report = h.engine.import(&RunRequest::manual(h.integration)).await.unwrap();
    assert_eq!(report.run.counts.created, 1);
    assert!(report.issues.iter().any(|i| i.field.as_deref() == Some("job-title")), "{:?}", report.issues);
    let user = h.world.users().into_iter().find(|u| u.managed_by.is_some()).unwrap();
    assert_eq!(user.profile.job_title.as_ref().map(String::len), Some(hrsync::sync::intake::FIELD_BYTES));
    let again = h.engine.import(&RunRequest::manual(h.integration)).await.unwrap();
    assert_eq!((again.run.counts.created, again.run.counts.updated), (0, 0), "{:?}", again.run.counts);
}

#[tokio::test]
async fn a_stack_overflow_and_a_guest_exit_are_named_as_such() {
    let (result, _) = fetch_mode("stack-overflow", FetchLimits::default()).await;
    let err = result.unwrap_err();
    assert!(matches!(err, FetchError::Run(RunError::StackOverflow { .. })), "{err:?}");
    assert!(err.to_string().contains("overflowed its stack"), "{err}");

    let (result, _) = fetch_mode("exit", FetchLimits::default()).await;
    let err = result.unwrap_err();
    assert!(matches!(err, FetchError::Run(RunError::Exited { code: 0, .. })), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("exited (status 0)") && !text.contains("backtrace"), "{text}");
}

/// One lie per rule of the plan check: the run fails naming the connector
/// and the claim, and the directory is as before.
#[tokio::test(flavor = "multi_thread")]
async fn plans_that_lie_are_refused_and_nothing_is_applied() {
    let cases: [(&str, bool, &str); 9] = [
        ("lie-deactivate-present", false, "whom this very fetch returned"),
        ("lie-deactivate-early", false, "after 1 complete runs without them; this integration waits for 2"),
        ("lie-missing-count", false, "missing for 5 runs; with this run it is 1"),
        ("lie-missing-incremental", true, "in an incremental run"),
        ("lie-deactivate-active", false, "as inactive in the source, but the source has them active"),
        ("lie-reactivate-active", false, "to reactivate user"),
        ("lie-update-inactive", false, "would make user"),
        ("lie-create-stranger", false, "`ghost`, who was not fetched in this run"),
        ("lie-create-altered", false, "already exists"),
    ];
    for (mode, incremental, want) in cases {
        let h = Hostile::new("simple").await;
        h.engine.import(&RunRequest::manual(h.integration)).await.expect("the simple mode creates Mallory");
        let before = h.users();
        assert_eq!(before.len(), 1);
        h.set_mode(mode);
        let mut request = RunRequest::manual(h.integration);
        if incremental {
            request.updated_since = Some(chrono::Utc::now());
        }
        let err = h.engine.import(&request).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, SyncError::Plan { .. }), "{mode}: {err:?}");
        assert!(text.contains("connector `hostile` proposed") && text.contains(want), "{mode}: {text}");
        assert!(text.contains("nothing was applied"), "{mode}: {text}");
        assert_eq!(h.users(), before, "{mode}: nothing applied");
        assert_eq!(h.world.store.run(err.run().unwrap()).unwrap().state, RunState::Failed, "{mode}");
    }
}

#[tokio::test]
async fn a_create_of_a_person_with_other_values_than_mapped_is_refused() {
    let h = Hostile::new("lie-create-altered").await;
    let err = h.engine.import(&RunRequest::manual(h.integration)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("to create `1` with values that differ from what map-fields returned"), "{text}");
    assert!(h.users().is_empty());
}

#[tokio::test]
async fn a_plan_with_an_impossible_date_is_refused_at_the_boundary() {
    // Before, the date was silently nulled and the person created.
    let h = Hostile::new("lie-create-bad-date").await;
    let err = h.engine.import(&RunRequest::manual(h.integration)).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SyncError::Connector { .. }), "{err:?}");
    assert!(text.contains("person `1` has start-date 2024-2-30, which is not a calendar date"), "{text}");
    assert!(h.users().is_empty());
}

#[tokio::test]
async fn connectors_that_fail_to_load_are_listed_and_the_rest_load() {
    let dir = std::env::temp_dir().join(format!("hrsync-unloadable-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in UNLOADABLE {
        std::fs::write(dir.join(format!("{name}.wasm")), bytes).unwrap();
    }
    std::fs::write(dir.join("junk.wasm"), b"not a component").unwrap();
    let runtime = hrsync::runtime::Runtime::new(test_limits(), None).unwrap();
    let started = std::time::Instant::now();
    let loaded = hrsync::connectors::load_all(&runtime, Some(&dir), &[]).await.expect("the bundled ones load");
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "bounded: {:?}", started.elapsed());
    let ids: Vec<&str> = loaded.connectors.iter().map(|c| c.info.id.as_str()).collect();
    assert_eq!(ids, ["personio", "csv-export"]);
    let reason = |file: &str| {
        loaded.failed.iter().find(|f| f.origin.ends_with(file)).map(|f| f.reason.clone()).unwrap_or_default()
    };
    assert!(reason("describe-panic.wasm").contains("hostile describe panicked on purpose"), "{:?}", loaded.failed);
    assert!(reason("describe-loop.wasm").contains("of CPU in one call"), "{:?}", loaded.failed);
    assert!(reason("describe-memory.wasm").contains("MiB of memory"), "{:?}", loaded.failed);
    assert!(reason("junk.wasm").contains("not a valid WebAssembly component"), "{:?}", loaded.failed);
    std::fs::remove_dir_all(dir).unwrap();
}
