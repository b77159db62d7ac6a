//! Hostile and broken components are contained: each failure names the
//! connector and the cause, and the host keeps working afterwards.

use hrsync::model;
use hrsync::runtime::{LoadError, RunError};
use hrsync::sync::{FetchError, FetchOptions, fetch_all};
use hrsync_e2e::*;

async fn fetch_with_mode(mode: &str) -> Result<hrsync::sync::Fetched, FetchError> {
    let (runtime, connector) = hostile().await;
    let mut session = runtime.session(connector, hrsync::runtime::egress::Grants::none()).await.unwrap();
    fetch_all(&mut session, &entries(&[("mode", mode)]), &FetchOptions::default(), |_| {}).await
}

fn run_error(e: FetchError) -> RunError {
    match e {
        FetchError::Run(r) => r,
        other => panic!("expected a run error, got {other:?}"),
    }
}

/// The host still runs connectors after a hostile one misbehaved.
async fn host_still_works() {
    let fetched = fetch_with_mode("fine").await.expect("a well-behaved call still works");
    assert_eq!(fetched.people.len(), 1);
}

#[tokio::test]
async fn a_trap_is_reported_with_the_panic_message() {
    let err = run_error(fetch_with_mode("trap").await.unwrap_err());
    match &err {
        RunError::Trap { connector, cause } => {
            assert_eq!(connector, "hostile");
            assert!(cause.contains("trapped on purpose"), "{cause}");
        }
        other => panic!("{other:?}"),
    }
    host_still_works().await;
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_the_cpu_budget() {
    let started = std::time::Instant::now();
    let err = run_error(fetch_with_mode("loop").await.unwrap_err());
    assert!(matches!(&err, RunError::CpuExhausted { connector, .. } if connector == "hostile"), "{err:?}");
    assert!(err.to_string().contains("infinite loop"), "{err}");
    assert!(started.elapsed() < test_limits().wall_per_call, "stopped by CPU accounting, not the wall clock");
    host_still_works().await;
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_cap() {
    let err = run_error(fetch_with_mode("memory").await.unwrap_err());
    match &err {
        RunError::MemoryExhausted { connector, limit } => {
            assert_eq!(connector, "hostile");
            assert_eq!(*limit, test_limits().memory_bytes);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("64 MiB"), "{err}");
    host_still_works().await;
}

#[tokio::test]
async fn a_wall_clock_timeout_stops_a_call_that_never_returns() {
    let limits = hrsync::runtime::Limits {
        cpu_per_call: std::time::Duration::from_secs(60),
        wall_per_call: std::time::Duration::from_millis(500),
        ..test_limits()
    };
    let runtime = hrsync::runtime::Runtime::new(limits, None).unwrap();
    let connector = runtime.load("hostile.wasm", HOSTILE).await.unwrap();
    let mut session = runtime.session(&connector, hrsync::runtime::egress::Grants::none()).await.unwrap();
    let request = model::FetchRequest { cursor: None, updated_since: None };
    let err = session.fetch_page(&entries(&[("mode", "loop")]), &request).await.unwrap_err();
    assert!(matches!(err, RunError::Timeout { .. }), "{err:?}");
    let again = session.fetch_page(&entries(&[("mode", "fine")]), &request).await.unwrap_err();
    assert!(matches!(again, RunError::Poisoned { .. }), "a stopped instance is not reused: {again:?}");
}

#[tokio::test]
async fn a_cursor_that_repeats_stops_the_run() {
    let err = fetch_with_mode("repeat-cursor").await.unwrap_err();
    assert!(matches!(&err, FetchError::RepeatedCursor { cursor, .. } if cursor == "same"), "{err:?}");
    assert!(err.to_string().contains("never end"));
}

#[tokio::test]
async fn impossible_dates_and_invented_people_are_refused() {
    let err = run_error(fetch_with_mode("bad-date").await.unwrap_err());
    assert!(matches!(&err, RunError::InvalidOutput { reason, .. } if reason.contains("2024-2-30")), "{err:?}");
    let err = run_error(fetch_with_mode("stranger").await.unwrap_err());
    assert!(matches!(&err, RunError::InvalidOutput { reason, .. } if reason.contains("never-fetched")), "{err:?}");
}

#[tokio::test]
async fn the_sandbox_has_no_files_no_environment_and_no_sockets() {
    // A listener the guest would reach if sockets were allowed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    // The host process has an environment (cargo sets one); none of it may
    // reach the guest.
    assert!(std::env::vars_os().count() > 0, "the test needs a host environment to hide");
    let (runtime, connector) = hostile().await;
    let mut session = runtime.session(connector, hrsync::runtime::egress::Grants::none()).await.unwrap();
    let report = session.check(&entries(&[("mode", "probe"), ("port", &port)])).await.unwrap();
    let w = &report.warnings;
    assert_eq!(w[0], "env: 0 variables");
    assert!(w[1].starts_with("fs: denied"), "{}", w[1]);
    assert!(w[2].starts_with("file: denied"), "{}", w[2]);
    assert!(w[3].starts_with("tcp: denied"), "{}", w[3]);
}

#[tokio::test]
async fn raw_wasi_http_to_an_ungranted_origin_is_denied() {
    let (_sandbox, running) = sandbox(5).await;
    let (runtime, connector) = hostile().await;
    let mut session = runtime.session(connector, hrsync::runtime::egress::Grants::none()).await.unwrap();
    let request = model::FetchRequest { cursor: None, updated_since: None };
    let url = format!("{}/v1/company/employees", running.url);
    let err = session.fetch_page(&entries(&[("mode", "egress"), ("url", &url)]), &request).await.unwrap_err();
    assert!(matches!(&err, RunError::EgressDenied { granted, .. } if granted == "none"), "{err:?}");
    assert_eq!(session.egress().denied, vec![format!("GET {url}")]);
}

#[tokio::test]
async fn broken_components_are_refused_with_a_reason() {
    let (runtime, _) = hostile().await;
    let cases: [(&str, &[u8], &str); 3] = [
        ("garbage.wasm", b"definitely not wasm", "not a valid WebAssembly component"),
        ("core.wasm", b"\0asm\x01\0\0\0", "not a valid WebAssembly component"),
        ("truncated.wasm", &HOSTILE[..HOSTILE.len() / 2], "not a valid WebAssembly component"),
    ];
    for (name, bytes, want) in cases {
        let err = runtime.load(name, bytes).await.unwrap_err();
        assert!(matches!(err, LoadError::InvalidComponent { .. }), "{name}: {err:?}");
        let text = err.to_string();
        assert!(text.contains(name) && text.contains(want) && text.contains("wasm32-wasip2"), "{text}");
    }
}

#[tokio::test]
async fn unknown_wit_versions_are_refused_naming_the_supported_ones() {
    let (runtime, _) = hostile().await;
    let future = r#"(component
        (component $c)
        (instance $i (instantiate $c))
        (export "hrsync:connector/hr-source@9.0.0" (instance $i)))"#;
    let err = runtime.load("future.wasm", future.as_bytes()).await.unwrap_err();
    assert!(matches!(&err, LoadError::UnsupportedWit { found, .. } if found == "9.0.0"), "{err:?}");
    assert!(err.to_string().contains("supported versions: 0.1.x, 0.2.x, 0.3.x"), "{err}");

    let stranger = r#"(component)"#;
    let err = runtime.load("empty.wasm", stranger.as_bytes()).await.unwrap_err();
    assert!(matches!(err, LoadError::NotAConnector { .. }), "{err:?}");
}

#[tokio::test]
async fn components_importing_what_the_host_lacks_are_refused() {
    let (runtime, _) = hostile().await;
    let wants_more = r#"(component
        (import "evil:host/filesystem@1.0.0" (instance (export "open" (func))))
        (component $c)
        (instance $i (instantiate $c))
        (export "hrsync:connector/hr-source@0.1.0" (instance $i)))"#;
    let err = runtime.load("greedy.wasm", wants_more.as_bytes()).await.unwrap_err();
    assert!(matches!(err, LoadError::Link { .. }), "{err:?}");
    assert!(err.to_string().contains("evil:host/filesystem"), "{err}");

    let hollow = r#"(component
        (component $c)
        (instance $i (instantiate $c))
        (export "hrsync:connector/hr-source@0.1.0" (instance $i)))"#;
    let err = runtime.load("hollow.wasm", hollow.as_bytes()).await.unwrap_err();
    assert!(matches!(err, LoadError::Exports { .. }), "{err:?}");
    assert!(err.to_string().contains("describe"), "{err}");
}

#[tokio::test]
async fn compiled_components_are_cached_on_disk() {
    let dir = std::env::temp_dir().join(format!("hrsync-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let runtime = hrsync::runtime::Runtime::new(test_limits(), Some(dir.clone())).unwrap();
    runtime.load("hostile.wasm", HOSTILE).await.unwrap();
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&hrsync::runtime::Runtime::digest(HOSTILE)) && name.ends_with(".cwasm"), "{name}");
    let modified = std::fs::metadata(&files[0]).unwrap().modified().unwrap();
    // A second runtime (a restart) loads the artifact instead of compiling again.
    let again = hrsync::runtime::Runtime::new(test_limits(), Some(dir.clone())).unwrap();
    let c = again.load("hostile.wasm", HOSTILE).await.unwrap();
    assert_eq!(c.info.id, "hostile");
    assert_eq!(std::fs::metadata(&files[0]).unwrap().modified().unwrap(), modified);
    let _ = std::fs::remove_dir_all(&dir);
}
