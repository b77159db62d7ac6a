//! The real Personio component against the sandbox, through the host's
//! sandboxed HTTP: paging, parsing, retries, token handling, egress denial.

use std::collections::HashSet;

use hrsync::model;
use hrsync::runtime::RunError;
use hrsync::sandbox::{Credential, Edit, Email, Fault, Language, Status};
use hrsync::sync::{FetchError, FetchOptions, Fetched, RetryPolicy, fetch_all};
use hrsync_e2e::*;

async fn fetch(url: &str, extra: &[(&str, &str)], options: &FetchOptions) -> Result<Fetched, FetchError> {
    let (runtime, connector) = personio().await;
    let mut session = runtime.session(connector, grant(url)).await.expect("session");
    fetch_all(&mut session, &personio_settings(url, extra), options, |_| {}).await
}

fn fast_retries() -> FetchOptions {
    FetchOptions { retry: RetryPolicy { attempts: 4, ..RetryPolicy::default() }, ..FetchOptions::default() }
}

#[tokio::test]
async fn a_full_paged_fetch_returns_every_employee_once() {
    let (sandbox, running) = sandbox(1234).await;
    let mut progress = Vec::new();
    let (runtime, connector) = personio().await;
    let mut session = runtime.session(connector, grant(&running.url)).await.unwrap();
    let fetched =
        fetch_all(&mut session, &personio_settings(&running.url, &[]), &FetchOptions::default(), |p| progress.push(p))
            .await
            .unwrap();

    assert_eq!(fetched.pages, 13, "1234 people at 100 per page");
    assert_eq!(fetched.records, 1234);
    let ids: HashSet<String> = fetched.people.iter().map(|p| p.source_id.to_string()).collect();
    let want: HashSet<String> = sandbox.employees().iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, want);
    assert_eq!(progress.last().unwrap().total, Some(1234));
    assert!(progress.windows(2).all(|w| w[0].records < w[1].records), "progress grows page by page");
    let stats = sandbox.stats();
    assert_eq!((stats.auth, stats.employee_requests), (1, 13), "one token for the whole run");
    assert_eq!(session.egress().sent, 14);
}

#[tokio::test]
async fn every_field_is_mapped_from_every_shape_the_sandbox_serves() {
    let (sandbox, running) = sandbox(300).await;
    let fetched = fetch(
        &running.url,
        &[("custom-attributes", "dynamic_1002"), ("employee-id-attribute", "dynamic_1003")],
        &FetchOptions::default(),
    )
    .await
    .unwrap();
    let people: std::collections::HashMap<String, &model::Person> =
        fetched.people.iter().map(|p| (p.source_id.to_string(), p)).collect();
    for e in sandbox.employees() {
        let p = people[&e.id.to_string()];
        assert_eq!((p.first_name.as_str(), p.last_name.as_str()), (e.first_name.as_str(), e.last_name.as_str()));
        // Dates arrive as +01:00, +0100 and date-only; all keep the local day.
        let d = p.start_date.as_ref().unwrap();
        assert_eq!(d.to_string(), e.hire_date.to_string(), "{}", e.id);
        assert_eq!(p.termination_date.is_some(), e.termination_date.is_some());
        assert_eq!(p.supervisor_id, e.supervisor.map(|s| s.to_string().into()));
        assert_eq!(p.department.as_deref(), e.department.as_ref().map(|u| u.name.as_str()));
        assert_eq!(p.employee_id.as_deref(), Some(format!("E-{:05}", e.id).as_str()));
        match &e.email {
            Email::Address(a) => assert_eq!(p.email.as_deref(), Some(a.as_str())),
            Email::Empty | Email::Null => assert_eq!(p.email, None),
        }
        // Tags arrive as arrays, comma lists and JSON strings.
        let skills = p.custom.iter().find(|c| c.key == "dynamic_1002").map(|c| c.value.clone());
        assert_eq!(skills, (!e.skills.is_empty()).then(|| e.skills.join(", ")), "{}", e.id);
        let status = match e.status {
            Status::Active => model::PersonStatus::Active,
            Status::Onboarding => model::PersonStatus::Onboarding,
            Status::Leave => model::PersonStatus::Leave,
            Status::Inactive => model::PersonStatus::Inactive,
        };
        assert_eq!(p.status, status);
    }
    let without_email = sandbox.employees().iter().filter(|e| !matches!(e.email, Email::Address(_))).count();
    assert!(without_email > 0);
    assert_eq!(fetched.issues.iter().filter(|i| i.field.as_deref() == Some("email")).count(), without_email);
}

#[tokio::test]
async fn legacy_shapes_and_german_labels_map_the_same() {
    let (sandbox, running) = sandbox(120).await;
    let modern = fetch(&running.url, &[], &FetchOptions::default()).await.unwrap();
    sandbox.add_credential(Credential {
        language: Language::De,
        legacy: true,
        ..Credential::full("old", "old-secret")
    });
    let (runtime, connector) = personio().await;
    let mut session = runtime.session(connector, grant(&running.url)).await.unwrap();
    let settings = entries(&[("api-base-url", &running.url), ("client-id", "old"), ("client-secret", "old-secret")]);
    let legacy = fetch_all(&mut session, &settings, &FetchOptions::default(), |_| {}).await.unwrap();
    assert_eq!(legacy.people, modern.people);
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_waited_out() {
    let (sandbox, running) = sandbox(250).await;
    sandbox.inject([
        Fault::RateLimit { retry_after: Some(1) },
        Fault::Status { status: 503 },
        Fault::Status { status: 502 },
    ]);
    let fetched = fetch(&running.url, &[], &fast_retries()).await.unwrap();
    assert_eq!(fetched.people.len(), 250);
    assert_eq!(fetched.retries, 3);
    assert!(fetched.waited >= std::time::Duration::from_secs(1), "Retry-After was honoured");
}

#[tokio::test]
async fn a_source_that_keeps_failing_exhausts_the_retries_with_a_clear_error() {
    let (sandbox, running) = sandbox(50).await;
    sandbox.inject(std::iter::repeat_n(Fault::Status { status: 504 }, 10));
    let err = fetch(&running.url, &[], &fast_retries()).await.unwrap_err();
    match &err {
        FetchError::RetriesExhausted { attempts, last, .. } => {
            assert_eq!(*attempts, 4);
            assert!(matches!(last.source_error(), Some(model::ConnectorError::TemporarilyUnavailable(_))));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("HTTP 504"), "{err}");
}

#[tokio::test]
async fn rotated_tokens_are_followed() {
    let (sandbox, running) = sandbox(450).await;
    sandbox.set_rotate_tokens(true);
    let fetched = fetch(&running.url, &[], &FetchOptions::default()).await.unwrap();
    assert_eq!(fetched.people.len(), 450);
    let stats = sandbox.stats();
    assert_eq!(stats.auth, 1, "each page used the token echoed by the previous one");
    assert_eq!(stats.unauthorized, 0);
}

#[tokio::test]
async fn an_expired_token_mid_run_means_one_new_login() {
    let (sandbox, running) = sandbox(350).await;
    // The first page works, then all tokens expire.
    sandbox.inject([Fault::Slow { millis: 0 }, Fault::ExpireTokens]);
    let fetched = fetch(&running.url, &[], &FetchOptions::default()).await.unwrap();
    assert_eq!(fetched.people.len(), 350);
    let stats = sandbox.stats();
    assert_eq!((stats.auth, stats.unauthorized), (2, 1));
}

#[tokio::test]
async fn wrong_credentials_are_reported_as_such() {
    let (_sandbox, running) = sandbox(10).await;
    let (runtime, connector) = personio().await;
    let mut session = runtime.session(connector, grant(&running.url)).await.unwrap();
    let settings =
        entries(&[("api-base-url", &running.url), ("client-id", "sandbox-client"), ("client-secret", "wrong")]);
    let err = session.check(&settings).await.unwrap_err();
    assert!(matches!(err.source_error(), Some(model::ConnectorError::CredentialsRejected(_))), "{err}");
    assert!(err.to_string().contains("Wrong credentials"), "{err}");
}

#[tokio::test]
async fn check_names_each_attribute_the_credential_cannot_read() {
    let (_sandbox, running) = sandbox(10).await;
    let (runtime, connector) = personio().await;
    let mut session = runtime.session(connector, grant(&running.url)).await.unwrap();
    let full = session.check(&personio_settings(&running.url, &[])).await.unwrap();
    assert!(full.missing.is_empty(), "{:?}", full.missing);
    assert!(full.readable.iter().any(|a| a.key == "dynamic_1002"));

    let limited = entries(&[
        ("api-base-url", &running.url),
        ("client-id", "sandbox-limited"),
        ("client-secret", "sandbox-limited-secret"),
    ]);
    let mut session = runtime.session(connector, grant(&running.url)).await.unwrap();
    let report = session.check(&limited).await.unwrap();
    let missing: Vec<(&str, bool)> = report.missing.iter().map(|m| (m.key.as_str(), m.required)).collect();
    assert!(missing.contains(&("email", true)), "{missing:?}");
    assert!(missing.contains(&("supervisor", false)), "{missing:?}");
    assert!(report.missing.iter().all(|m| m.hint.contains("API credentials")));
    assert!(report.readable.iter().any(|a| a.label == "Abteilung"), "German labels are passed through");
}

#[tokio::test]
async fn malformed_json_fails_the_run_with_a_clear_error() {
    let (sandbox, running) = sandbox(150).await;
    sandbox.inject([Fault::Slow { millis: 0 }, Fault::Malformed]);
    let err = fetch(&running.url, &[], &FetchOptions::default()).await.unwrap_err();
    match &err {
        FetchError::Run(e) => assert!(
            matches!(e.source_error(), Some(model::ConnectorError::BadResponse(m)) if m.contains("malformed JSON"))
        ),
        other => panic!("{other:?}"),
    }
}

/// Complete or fail: a faulted page is read again, never taken as the end
/// of the list; a fetch either returns everyone or fails.
#[tokio::test]
async fn a_page_that_does_not_continue_the_list_is_read_again_never_taken_as_the_end() {
    let (sandbox, running) = sandbox(420).await;
    let everyone: HashSet<String> = sandbox.employees().iter().map(|e| e.id.to_string()).collect();
    // The second page is faulted (the first request takes the harmless fault).
    for fault in [
        Fault::Overlap { items: 30 },
        Fault::Shrink { items: 150 },
        Fault::RepeatFirstPage,
        Fault::Shrink { items: 20 },
    ] {
        sandbox.inject([Fault::Slow { millis: 0 }, fault.clone()]);
        let fetched = fetch(&running.url, &[], &fast_retries()).await.unwrap();
        let ids: HashSet<String> = fetched.people.iter().map(|p| p.source_id.to_string()).collect();
        assert_eq!(ids, everyone, "{fault:?}: everyone, once");
        assert_eq!(fetched.people.len(), 420, "{fault:?}");
    }
    // A window that silently starts later cannot be repaired within the run:
    // it fails, naming the offset, rather than leave people out.
    sandbox.inject([Fault::Slow { millis: 0 }, Fault::Gap { items: 5 }]);
    let err = fetch(&running.url, &[], &fast_retries()).await.unwrap_err();
    assert!(err.to_string().contains("came again at offset 200"), "{err}");
}

#[tokio::test]
async fn a_token_refused_twice_and_a_server_error_500_are_retried_not_reported_as_wrong_credentials() {
    let (sandbox, running) = sandbox(150).await;
    sandbox.inject([Fault::ExpireTokens, Fault::ExpireTokens]);
    let fetched = fetch(&running.url, &[], &fast_retries()).await.unwrap();
    assert_eq!((fetched.people.len(), fetched.retries), (150, 1));
    sandbox.inject([Fault::Status { status: 500 }]);
    let fetched = fetch(&running.url, &[], &fast_retries()).await.unwrap();
    assert_eq!((fetched.people.len(), fetched.retries), (150, 1));
}

#[tokio::test]
async fn credentials_reach_a_server_that_refuses_chunked_bodies() {
    let (sandbox, running) = sandbox(20).await;
    sandbox.set_strict_bodies(true);
    let fetched = fetch(&running.url, &[], &FetchOptions::default()).await.unwrap();
    assert_eq!(fetched.people.len(), 20);
    assert_eq!(sandbox.stats().auth, 1);
}

#[tokio::test]
async fn test_connection_falls_back_to_the_first_employee_when_the_attributes_route_is_missing_or_forbidden() {
    let (sandbox, running) = sandbox(10).await;
    let (runtime, connector) = personio().await;
    for status in [404, 403] {
        sandbox.set_attributes_status(Some(status));
        let mut session = runtime.session(connector, grant(&running.url)).await.unwrap();
        let report = session.check(&personio_settings(&running.url, &[])).await.expect("check still answers");
        let keys: HashSet<&str> = report.readable.iter().map(|a| a.key.as_str()).collect();
        assert!(keys.contains("email") && keys.contains("supervisor") && keys.contains("status"), "{status}: {keys:?}");
        assert!(report.missing.iter().all(|m| !m.required), "{status}: {:?}", report.missing);
        assert!(
            report.warnings.iter().any(|w| w.contains("read from the first employee instead")),
            "{status}: says so: {:?}",
            report.warnings
        );
    }
}

#[tokio::test]
async fn incremental_fetches_return_only_changed_people() {
    let (sandbox, running) = sandbox(500).await;
    let since = chrono::Utc::now() - chrono::Duration::seconds(5);
    let first = sandbox.employees()[10].id;
    sandbox.apply(first, Edit { position: Some("Head of Things".into()), ..Edit::default() }).unwrap();
    let hired = sandbox.hire(hrsync::sandbox::Hire {
        first_name: "New".into(),
        last_name: "Hire".into(),
        email: Some("new.hire@acme.example".into()),
        ..Default::default()
    });
    let options = FetchOptions { updated_since: Some(since.to_rfc3339()), ..FetchOptions::default() };
    let fetched = fetch(&running.url, &[], &options).await.unwrap();
    let ids: HashSet<String> = fetched.people.iter().map(|p| p.source_id.to_string()).collect();
    assert_eq!(ids, HashSet::from([first.to_string(), hired.to_string()]));
    assert!(!fetched.complete);
    assert_eq!(fetched.pages, 1);
}

#[tokio::test]
async fn requests_to_origins_not_granted_are_denied_and_logged() {
    let (sandbox, running) = sandbox(10).await;
    let (runtime, connector) = personio().await;
    // Granted: a different port on the same host. Denied: the sandbox itself.
    let other = format!("http://127.0.0.1:{}", running.addr.port().wrapping_add(1).max(1));
    let mut session = runtime.session(connector, grant(&other)).await.unwrap();
    let err = session.check(&personio_settings(&running.url, &[])).await.unwrap_err();
    match &err {
        RunError::EgressDenied { request, granted, .. } => {
            assert_eq!(request, &format!("POST {}/v1/auth", running.url));
            assert_eq!(granted, &other);
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("outbound hosts"), "the message says what to do: {err}");
    let egress = session.egress();
    assert_eq!(egress.sent, 0);
    assert_eq!(egress.denied, vec![format!("POST {}/v1/auth", running.url)]);
    assert_eq!(sandbox.stats().auth, 0, "nothing reached the sandbox");
}

/// Granted origins are checked where they resolve: instance metadata is
/// never reached, whatever the grant; loopback only when the grant names it.
#[tokio::test]
async fn metadata_addresses_are_refused_even_when_granted() {
    let metadata = "http://169.254.169.254";
    let (runtime, connector) = personio().await;
    let mut session = runtime.session(connector, grant(metadata)).await.unwrap();
    let err =
        fetch_all(&mut session, &personio_settings(metadata, &[]), &FetchOptions::default(), |_| {}).await.unwrap_err();
    match err {
        FetchError::Run(RunError::EgressBlocked { ref request, ref reason, .. }) => {
            assert!(request.starts_with("POST http://169.254.169.254"), "{request}");
            assert!(reason.contains("link-local") && reason.contains("never connects"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(session.egress().sent, 0, "nothing left the host");

    // `localhost`, granted by that name, is the host's own loopback.
    let (_sandbox, running) = sandbox(12).await;
    let local = running.url.replace("127.0.0.1", "localhost");
    let fetched = fetch(&local, &[], &FetchOptions::default()).await.expect("a grant naming localhost reaches it");
    assert_eq!(fetched.people.len(), 12);
}
