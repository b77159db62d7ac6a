//! Contract versions: a connector built against the frozen 0.1.0 contract
//! (the hostile test connector) and connectors built against 0.2.0 (the
//! bundled Personio and CSV connectors, through the kit) load side by side
//! in one runtime, and each syncs into the directory. What 0.2.0 added
//! (`host.progress`) is tested with the CSV connector in `csv.rs`.

use hrsync::directory::{DirectoryStore, IntegrationConfig};
use hrsync::sync::SyncEngine;
use hrsync::sync::engine::RunRequest;
use hrsync_e2e::{HOSTILE, World, personio};

#[tokio::test(flavor = "multi_thread")]
async fn connectors_of_each_contract_version_load_and_sync() {
    let (runtime, personio) = personio().await;
    let old = runtime.load("hostile.wasm", HOSTILE).await.expect("a 0.1.0 connector loads");
    assert_eq!(old.wit_version, "0.1.0");
    assert_eq!(personio.wit_version, "0.2.0");
    let csv = runtime.load("bundled:csv", hrsync::connectors::BUNDLED_CSV).await.unwrap();
    assert_eq!(csv.wit_version, "0.2.0");

    // 0.2.0: the Personio connector syncs a sandbox company.
    let w = World::new(30, "active").await;
    let report = w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    assert!(report.run.counts.created > 10, "{:?}", report.run.counts);

    // 0.1.0: the old connector syncs into the same kind of directory.
    let mut config = IntegrationConfig::new("hostile", "Old contract");
    config.settings.insert("mode".into(), "simple".into());
    let integration = w.store.create_integration(&config).unwrap();
    let engine = SyncEngine::new(runtime.clone(), w.store.clone(), vec![old.clone()]);
    let report = engine.import(&RunRequest::manual(integration)).await.unwrap();
    assert_eq!(report.run.counts.created, 1, "{:?}", report.run.counts);
    let mallory = w.users().into_iter().find(|u| u.profile.email.as_str() == "mallory@example.com").unwrap();
    assert_eq!(mallory.managed_by.as_ref().map(|m| m.0), Some(integration));
    let again = engine.import(&RunRequest::manual(integration)).await.unwrap();
    assert_eq!(again.run.counts.created, 0, "nothing new the second time");
}
