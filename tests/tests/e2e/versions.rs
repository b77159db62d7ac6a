//! Contract versions: connectors built against the frozen 0.1.0 and 0.2.0
//! contracts (the hostile test connector, built twice), 0.3.0 (the Python
//! connector, in `python.rs`) and 0.4.0 (the bundled Personio and CSV
//! connectors, through the kit) load side by side in one runtime, and each
//! syncs into the directory. What 0.2.0 added (`host.progress`) is tested
//! with the CSV connector in `csv.rs`; what 0.3.0 added
//! (`host.canonical-diff`) by every sync of the bundled ones; what 0.4.0
//! added (`hr-events`) in `personio_v2.rs`.

use hrsync::directory::IntegrationConfig;
use hrsync::directory::prelude::*;
use hrsync::sync::SyncEngine;
use hrsync::sync::engine::RunRequest;
use hrsync_e2e::{HOSTILE, HOSTILE_0_2, World, personio};

#[tokio::test(flavor = "multi_thread")]
async fn connectors_of_each_contract_version_load_and_sync() {
    let (runtime, personio) = personio().await;
    assert_eq!(personio.wit_version, "0.4.0");
    assert!(personio.events.is_some(), "Personio pushes changes");
    let csv = runtime.load("bundled:csv", hrsync::connectors::BUNDLED_CSV).await.unwrap();
    assert_eq!(csv.wit_version, "0.4.0");
    assert_eq!(csv.events, None, "a published file does not");

    // 0.4.0: the Personio connector syncs a sandbox company, its diff the host's.
    let w = World::new(30, "active").await;
    let report = w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    assert!(report.run.counts.created > 10, "{:?}", report.run.counts);

    // 0.1.0 and 0.2.0: the old connector syncs into the same kind of directory.
    for (version, component, email) in
        [("0.1.0", HOSTILE, "mallory@example.com"), ("0.2.0", HOSTILE_0_2, "mallory@example.org")]
    {
        let old = runtime.load(&format!("hostile-{version}.wasm"), component).await.expect("an older connector loads");
        assert_eq!(old.wit_version, version);
        let mut config = IntegrationConfig::new("hostile", &format!("Contract {version}"));
        config.settings.insert("mode".into(), "simple".into());
        config.settings.insert("email".into(), email.into());
        let integration = w.store.create_integration(&config).unwrap();
        let engine = SyncEngine::new(runtime.clone(), w.store.clone(), vec![old.clone()]);
        let report = engine.import(&RunRequest::manual(integration)).await.unwrap();
        assert_eq!(report.run.counts.created, 1, "{version}: {:?}", report.run.counts);
        let mallory = w.users().into_iter().find(|u| u.profile.email.as_str() == email).unwrap();
        assert_eq!(mallory.managed_by.as_ref().map(|m| m.0), Some(integration), "{version}");
        let again = engine.import(&RunRequest::manual(integration)).await.unwrap();
        assert_eq!(again.run.counts.created, 0, "{version}: nothing new the second time");
    }
}
