//! `hrsync connector check` on real components: the Personio connector
//! passes every rule against the sandbox; deliberately broken connectors
//! fail the rule they break, with a message that says what to fix.

use hrsync::conformance::{self, Report, Target};
use hrsync::connectors::BUNDLED_PERSONIO;
use hrsync_e2e::{HOSTILE, hostile, personio_settings, sandbox};

fn failed<'a>(report: &'a Report, rule: &str) -> &'a str {
    let check = report.checks.iter().find(|c| c.name == rule).unwrap_or_else(|| panic!("no `{rule}`: {report:?}"));
    assert!(!check.passed, "`{rule}` passed: {}", report.render());
    &check.detail
}

fn hostile_target(mode: &str) -> Target {
    Target { settings: hrsync_e2e::entries(&[("mode", mode)]), grants: Vec::new() }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_personio_connector_passes_every_rule_against_the_sandbox() {
    let (sandbox, running) = sandbox(150).await;
    let (runtime, _) = hostile().await;
    // On API v1 and on v2 (whose complete fetch asks a request per person:
    // the sandbox's limits are lifted, they have their own tests).
    sandbox.set_rate_limit(None);
    for version in ["v1", "v2"] {
        let settings = personio_settings(&running.url, &[("api-version", version)]);
        let target = Target { settings, grants: vec![running.url.clone()] };
        let report = conformance::run(runtime, "personio.wasm", BUNDLED_PERSONIO, &target).await;
        assert!(report.passed(), "{version}: {}", report.render());
        let rules: Vec<&str> = report.checks.iter().map(|c| c.name).collect();
        assert_eq!(rules, ["loads", "describe", "check", "paging", "mapping", "diff", "events", "egress", "budgets"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_connectors_fail_the_rule_they_break_and_say_what_to_fix() {
    let (runtime, _) = hostile().await;
    let run = |mode: &'static str| async move {
        conformance::run(runtime, "hostile.wasm", HOSTILE, &hostile_target(mode)).await
    };

    let report = run("endless").await;
    assert!(failed(&report, "paging").contains("did not end within 10000 pages"), "{}", report.render());

    let report = run("repeat-cursor").await;
    assert!(failed(&report, "paging").contains("came twice"), "{}", report.render());

    let report = run("nondeterministic").await;
    assert!(failed(&report, "mapping").contains("deterministic"), "{}", report.render());

    let report = run("diff-unknown").await;
    assert!(failed(&report, "diff").contains("names user 999999, who is not in the directory"), "{}", report.render());

    let report = run("short-total").await;
    assert!(failed(&report, "paging").contains("a total of 3 records but returned 2"), "{}", report.render());

    // A connector that makes the host hold ever more header sets: stopped
    // at the host's limit, and the host's own memory is reported.
    let report = run("fields").await;
    let detail = failed(&report, "budgets");
    assert!(detail.contains("the host's limit of 1024 resource handles"), "{}", report.render());
    assert!(detail.contains("the host's memory grew by at most"), "{detail}");

    // Egress to a host it never declared: denied by the sandbox, and named.
    let (_sandbox, running) = sandbox(5).await;
    let target = Target {
        settings: hrsync_e2e::entries(&[("mode", "egress"), ("url", &format!("{}/v1/auth", running.url))]),
        grants: Vec::new(),
    };
    let report = conformance::run(runtime, "hostile.wasm", HOSTILE, &target).await;
    let detail = failed(&report, "egress");
    assert!(detail.contains(&running.url.replace("http://", "")) && detail.contains("default-hosts"), "{detail}");

    // A component for a contract version this host does not know.
    let future = r#"(component
        (component $c)
        (instance $i (instantiate $c))
        (export "hrsync:connector/hr-source@9.0.0" (instance $i)))"#;
    let report = conformance::run(runtime, "future.wasm", future.as_bytes(), &hostile_target("")).await;
    assert!(failed(&report, "loads").contains("supported versions: 0.1.x, 0.2.x, 0.3.x, 0.4.x"), "{}", report.render());
    assert_eq!(report.checks.len(), 1, "nothing else runs on a component that does not load");
}
