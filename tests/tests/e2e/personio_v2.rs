//! The real Personio component reading API v2 from the sandbox: the same
//! people as v1 whatever the credential may read, a switch between the
//! versions that changes nothing, `auto`, and every v2 quirk of the notes.

use hrsync::directory::prelude::*;
use hrsync::model::Person;
use hrsync::sandbox::{Credential, Edit, Fault};
use hrsync::sync::engine::RunRequest;
use hrsync::sync::{FetchError, FetchOptions, Fetched, RetryPolicy, fetch_all};
use hrsync_e2e::*;

const V2: (&str, &str) = ("api-version", "v2");
const MAPPED: [(&str, &str); 2] =
    [("custom-attributes", "dynamic_1001,dynamic_1002"), ("employee-id-attribute", "dynamic_1003")];

async fn fetch(url: &str, extra: &[(&str, &str)]) -> Result<Fetched, FetchError> {
    let (runtime, connector) = personio().await;
    let mut session = runtime.session(connector, grant(url)).await.expect("session");
    let options =
        FetchOptions { retry: RetryPolicy { attempts: 4, ..RetryPolicy::default() }, ..FetchOptions::default() };
    fetch_all(&mut session, &personio_settings(url, extra), &options, |_| {}).await
}

/// A sandbox whose limits do not slow the walk: v2 reads a request per person.
async fn unlimited(people: usize) -> (hrsync::sandbox::Sandbox, hrsync::sandbox::Running) {
    let (sandbox, running) = sandbox(people).await;
    sandbox.set_rate_limit(None);
    (sandbox, running)
}

fn sorted(mut people: Vec<Person>) -> Vec<Person> {
    people.sort_by(|a, b| a.source_id.cmp(&b.source_id));
    people
}

#[tokio::test]
async fn v1_and_v2_read_the_same_people_whatever_the_credential_may_read() {
    let (sandbox, running) = unlimited(180).await;
    let v1 = fetch(&running.url, &MAPPED).await.unwrap();
    sandbox.reset_stats();
    let v2 = fetch(&running.url, &[MAPPED[0], MAPPED[1], V2]).await.unwrap();
    assert_eq!(v2.records, 180);
    assert_eq!(sorted(v2.people.clone()), sorted(v1.people.clone()), "the same people, field by field");
    let messages = |f: &Fetched| {
        let mut m: Vec<String> =
            f.issues.iter().map(|i| format!("{:?} {:?} {}", i.source_id, i.field, i.message)).collect();
        m.sort();
        m
    };
    assert_eq!(messages(&v2), messages(&v1), "and the same issues");
    let stats = sandbox.stats();
    assert_eq!(stats.person_requests, 8, "180 people in pages of 25");
    assert_eq!(stats.employment_requests, 180, "each person's latest employment");
    assert!(stats.org_unit_requests >= 2, "department and team names, once per run");
    let offices: std::collections::HashSet<u64> =
        sandbox.employees().iter().filter_map(|e| e.office.as_ref().map(|o| o.id)).collect();
    assert_eq!(stats.employee_requests, offices.len() as u64, "each office's name once, from a v1 record");
    assert_eq!(stats.revoked, 1, "the v2 token is revoked at the end of the run");

    // A whitelisting credential: fields left out the same way.
    let limited = [("client-id", "sandbox-limited"), ("client-secret", "sandbox-limited-secret")];
    let v1 = fetch(&running.url, &limited).await.unwrap();
    let v2 = fetch(&running.url, &[limited[0], limited[1], V2]).await.unwrap();
    assert_eq!(sorted(v2.people.clone()), sorted(v1.people));
    assert!(v2.people.iter().all(|p| p.email.is_none() && p.supervisor_id.is_none()), "not whitelisted");
    assert!(v2.people.iter().any(|p| p.department.is_some()), "whitelisted fields still arrive");
}

#[tokio::test]
async fn switching_an_integration_between_v1_and_v2_changes_nothing() {
    let w = World::new(90, "active,onboarding,leave,inactive").await;
    w.sandbox.set_rate_limit(None);
    let first = w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    assert!(first.run.counts.created > 50);
    let before = w.users();
    let set = |version: &str| {
        let mut integration = w.store.integration(w.integration).unwrap();
        integration.config.settings.insert("api-version".into(), version.into());
        w.store.update_integration(w.integration, &integration.config).unwrap();
    };
    for version in ["v2", "auto", "v1"] {
        set(version);
        let preview = w.engine.preview(&RunRequest::manual(w.integration)).await.unwrap();
        let c = &preview.run.counts;
        let changed = c.created + c.updated + c.deactivated + c.reactivated + c.linked + c.missing;
        assert_eq!(changed, 0, "{version}: {:?}", preview.changes);
        let import = w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
        assert_eq!(import.changes.len(), 0, "{version}");
        assert_eq!(w.users(), before, "{version}: the directory is as it was");
    }

    // And a change in the HR system arrives through v2 as through v1.
    set("v2");
    let someone = w.sandbox.employees().into_iter().find(|e| w.user_of(e.id).is_some()).unwrap();
    w.sandbox.apply(someone.id, Edit { position: Some("Chief Cartographer".into()), ..Edit::default() }).unwrap();
    let import = w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    assert_eq!(import.changes.len(), 1);
    assert_eq!(w.user_of(someone.id).unwrap().profile.job_title.as_deref(), Some("Chief Cartographer"));
}

#[tokio::test]
async fn auto_reads_v2_when_the_credential_may_read_persons_and_test_connection_says_which() {
    let (sandbox, running) = unlimited(20).await;
    let (runtime, connector) = personio().await;
    let check = |extra: Vec<(&'static str, &'static str)>| {
        let url = running.url.clone();
        async move {
            let mut session = runtime.session(connector, grant(&url)).await.unwrap();
            session.check(&personio_settings(&url, &extra)).await.unwrap()
        }
    };
    let auto = check(vec![("api-version", "auto")]).await;
    assert_eq!(auto.account.as_deref(), Some("Personio API v2"), "{auto:?}");
    assert_eq!(check(vec![]).await.account.as_deref(), Some("Personio API v1"), "pinned to v1");

    sandbox.add_credential(Credential { v2: false, ..Credential::full("v1-only", "v1-only-secret") });
    let v1_only = vec![("client-id", "v1-only"), ("client-secret", "v1-only-secret"), ("api-version", "auto")];
    assert_eq!(check(v1_only.clone()).await.account.as_deref(), Some("Personio API v1"));
    sandbox.reset_stats();
    let fetched = fetch(&running.url, &v1_only).await.unwrap();
    assert_eq!(fetched.records, 20);
    assert_eq!((sandbox.stats().person_requests, sandbox.stats().employee_requests), (0, 1), "read through v1");

    // Set to v2, a credential without the scope is told what to do.
    let pinned = vec![("client-id", "v1-only"), ("client-secret", "v1-only-secret"), V2];
    let err = fetch(&running.url, &pinned).await.unwrap_err().to_string();
    assert!(err.contains("personio:persons:read") && err.contains("v1"), "{err}");
    // Wrong credentials are refused as such.
    let err = fetch(&running.url, &[("client-secret", "wrong"), V2]).await.unwrap_err().to_string();
    assert!(err.contains("rejected the client id and secret"), "{err}");
}

#[tokio::test]
async fn v2_quirks_relative_links_lower_case_enums_missing_labels_and_faults_read_the_same() {
    let (sandbox, running) = unlimited(120).await;
    let plain = fetch(&running.url, &[MAPPED[0], MAPPED[1], V2]).await.unwrap();
    sandbox.set_v2_relative_links(true);
    sandbox.set_v2_lowercase_enums(true);
    // Transient faults are retried; an expired token is renewed; a slow answer waited for.
    sandbox.inject([
        Fault::RateLimit { retry_after: Some(1) },
        Fault::Status { status: 503 },
        Fault::ExpireTokens,
        Fault::Slow { millis: 100 },
    ]);
    let quirky = fetch(&running.url, &[MAPPED[0], MAPPED[1], V2]).await.unwrap();
    assert_eq!(sorted(quirky.people), sorted(plain.people), "lower-case enums and custom types, relative links");
    assert!(quirky.retries >= 2, "the 429 and the 503 were retried: {}", quirky.retries);
}

/// Asks the token endpoint for `n` tokens as another client of the company would.
async fn take_tokens(url: &str, n: usize) -> Vec<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = url.strip_prefix("http://").unwrap();
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        hrsync::sandbox::DEMO_CLIENT_ID,
        hrsync::sandbox::DEMO_CLIENT_SECRET
    );
    let mut statuses = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
        let request = format!(
            "POST /v2/auth/token HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        statuses.push(reply.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap());
    }
    statuses
}

#[tokio::test]
async fn a_token_endpoint_past_its_limit_is_waited_out() {
    let (sandbox, running) = unlimited(30).await;
    // Other clients of the company took the minute's 150 tokens: the next
    // token comes a second later at the earliest.
    let taken = take_tokens(&running.url, 151).await;
    assert_eq!((taken[149], taken[150]), (200, 429), "150 a minute");
    let fetched = fetch(&running.url, &[V2]).await.unwrap();
    assert_eq!(fetched.people.len(), 30, "everyone, once the token came");
    assert!(fetched.retries >= 1, "the refused token was waited for: {}", fetched.retries);

    // Still within the penalty: `auto` waits for its token too, rather
    // than taking the refusal as "no v2" and reading v1.
    sandbox.reset_stats();
    let auto = fetch(&running.url, &[("api-version", "auto")]).await.unwrap();
    assert_eq!(auto.people.len(), 30);
    assert!(auto.retries >= 1 && sandbox.stats().person_requests > 0, "read v2: {:?}", sandbox.stats());
}

#[tokio::test]
async fn a_next_link_that_repeats_its_page_fails_the_run_instead_of_looping() {
    let (sandbox, running) = unlimited(120).await;
    // Every v2 resource request takes one queued fault: org units (2), the
    // first persons page and its 25 employments; then the second persons
    // page links to itself.
    let before_second_page = 2 + 1 + 25;
    let mut faults = vec![Fault::Slow { millis: 0 }; before_second_page];
    faults.push(Fault::RepeatFirstPage);
    sandbox.inject(faults);
    let err = fetch(&running.url, &[V2]).await.unwrap_err().to_string();
    assert!(err.contains("next link points to the page just read"), "{err}");
}

#[tokio::test]
async fn cursor_pages_follow_next_links_to_the_end_and_every_person_comes_once() {
    let (sandbox, running) = unlimited(251).await;
    let fetched = fetch(&running.url, &[V2]).await.unwrap();
    assert_eq!((fetched.records, fetched.pages), (251, 11), "pages of 25");
    let mut ids: Vec<String> = fetched.people.iter().map(|p| p.source_id.to_string()).collect();
    ids.dedup();
    let want: Vec<String> = sandbox.employees().iter().map(|e| e.id.to_string()).collect();
    let mut got = ids.clone();
    got.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got, want_sorted, "person id == v1 employee id");
}

/// What a webhook receiver got: each delivery's headers (lower-case names) and body.
type Arrived = std::sync::Arc<std::sync::Mutex<Vec<(Vec<(String, String)>, String)>>>;

/// A loopback receiver standing in for the host's webhook endpoint.
async fn receiver() -> (String, Arrived) {
    let got: Arrived = Default::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hooks/test",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let headers = headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
                    .collect();
                seen.lock().unwrap().push((headers, body));
                axum::http::StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/test", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

async fn arrived(got: &Arrived, n: usize) -> Vec<(Vec<(String, String)>, String)> {
    for _ in 0..200 {
        if got.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    got.lock().unwrap().clone()
}

#[tokio::test]
async fn webhooks_subscribe_name_who_changed_and_fetch_just_them_in_three_requests_a_person() {
    use hrsync::model::{Entry, SourceEvent, SourceId};
    let (sandbox, running) = unlimited(60).await;
    let (runtime, connector) = personio().await;
    assert!(connector.events.as_ref().unwrap().events.iter().any(|e| e == "employment.updated"));
    let settings = personio_settings(&running.url, &[V2]);
    let mut session = runtime.session(connector, grant(&running.url)).await.unwrap();
    let (url, got) = receiver().await;

    let subscription = session.subscribe(&settings, &url, "hook-token-1").await.unwrap();
    let hooks = sandbox.webhooks();
    assert_eq!((hooks.len(), hooks[0].id.as_str(), hooks[0].url.as_str()), (1, subscription.id.as_str(), url.as_str()));
    assert_eq!(hooks[0].status, "ENABLED");

    // A supervisor move in Personio arrives, carrying the token, and names the person.
    let people = sandbox.employees();
    let (mover, boss) = (people[10].id, people[3].id);
    sandbox
        .apply(mover, Edit { supervisor_id: Some(Some(boss)), position: Some("Lead".into()), ..Edit::default() })
        .unwrap();
    let deliveries = arrived(&got, 1).await;
    let (headers, body) = &deliveries[0];
    assert!(headers.iter().any(|(k, v)| k == "authorization" && v == "hook-token-1"), "{headers:?}");
    let headers: Vec<Entry> = headers.iter().map(|(k, v)| Entry { key: k.clone(), value: v.clone() }).collect();
    let event = session.handle_event(&settings, &headers, body).await.unwrap();
    assert_eq!(event, SourceEvent::Changed(vec![SourceId::new(mover.to_string())]));
    assert!(matches!(session.handle_event(&settings, &[], "{}").await.unwrap(), SourceEvent::Ignored(_)));

    // Just that person, as a complete run maps them.
    sandbox.reset_stats();
    let mut fresh = runtime.session(connector, grant(&running.url)).await.unwrap();
    let records = fresh.fetch_people(&settings, &[SourceId::new(mover.to_string())]).await.unwrap();
    let stats = sandbox.stats();
    let per_person = stats.person_requests + stats.employment_requests + stats.employee_requests;
    assert!(per_person <= 3, "at most three requests for the person: {stats:?}");
    assert!(stats.org_unit_requests <= 2, "org unit names once: {stats:?}");
    let one = fresh.map_fields(&settings, &records).await.unwrap().people;
    let complete = fetch(&running.url, &[V2]).await.unwrap();
    let same = complete.people.iter().find(|p| p.source_id.as_str() == mover.to_string()).unwrap();
    assert_eq!(one, vec![same.clone()], "the same person as a complete run gives");
    assert_eq!(one[0].supervisor_id.as_ref().map(|s| s.to_string()), Some(boss.to_string()));
    let gone = fresh.fetch_people(&settings, &[SourceId::new("999999")]).await.unwrap();
    assert!(gone.is_empty(), "someone Personio no longer has is left out");

    session.unsubscribe(&settings, &subscription.id).await.unwrap();
    assert!(sandbox.webhooks().is_empty());
    session.unsubscribe(&settings, &subscription.id).await.unwrap();
}

#[tokio::test]
async fn a_v2_run_of_more_people_than_the_handle_bound_completes() {
    // A request per person: wasmtime-wasi-http 48 kept every request's
    // options in the run's resource table (bound: 1024), so a v2 run
    // stopped after about a thousand people until the host released them.
    let (_sandbox, running) = unlimited(1100).await;
    let fetched = fetch(&running.url, &[V2]).await.unwrap();
    assert_eq!(fetched.records, 1100);
}
