//! Tenants on one PostgreSQL database: an admin of one company calls every
//! API route and page with the other company's ids and learns and changes
//! nothing of it.

use std::sync::Arc;

use hrsync::accounts::{Accounts, Role};
use hrsync::directory::prelude::*;
use hrsync::directory::{IntegrationId, RunId, Trigger, UserQuery};
use hrsync::sandbox::Edit;
use hrsync_pg_cluster::Cluster;
use serde_json::json;

use crate::security::{API, PAGES, api_call, page_call};
use crate::server::{Options, PASSWORD, server_with};

/// What one tenant can observe of its own data, to compare before and after.
fn snapshot(store: &dyn hrsync::directory::DirectoryStore, accounts: &Accounts) -> String {
    let integrations: Vec<String> = store.integrations().unwrap().iter().map(|i| format!("{:?}", i.config)).collect();
    let (users, _) = store.users(&UserQuery { limit: 1000, ..UserQuery::default() }).unwrap();
    let users: Vec<String> = users.iter().map(|u| format!("{:?} {:?}", u.id, u.profile)).collect();
    let runs: Vec<String> =
        store.runs(None, 0, 100).unwrap().iter().map(|r| format!("{:?} {:?} {:?}", r.id, r.kind, r.state)).collect();
    let overrides = format!("{:?}", store.overrides(None).unwrap());
    let accounts = format!("{:?}", accounts.accounts().unwrap());
    format!("{integrations:?}\n{users:?}\n{runs:?}\n{overrides}\n{accounts}\n{:?}", store.company_name().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn no_route_reads_or_changes_another_tenants_data() {
    let cluster = Arc::new(Cluster::start().expect("a PostgreSQL cluster (apt-get install postgresql)"));
    let url = cluster.create_database("tenants").unwrap();
    let s = server_with(Options { postgres: Some(url), ..Options::default() }).await;
    let pg = s.postgres.clone().unwrap();

    // Acme, the default tenant: an integration, an import, a kept value, a token.
    s.accounts.ensure_admin(Some(PASSWORD)).unwrap();
    let acme = s.sign_in().await;
    let integration = s.integration(&acme).await;
    let mut config = s.store.integration(IntegrationId(integration)).unwrap().config;
    config.name = "Acme Secret Integration".into();
    s.store.update_integration(IntegrationId(integration), &config).unwrap();
    let started = s.call(&acme, "POST", &format!("/api/v1/integrations/{integration}/imports"), None).await;
    let run = s.finished(&acme, started.json()["status_url"].as_str().unwrap()).await;
    assert_eq!(run["run"]["state"], "succeeded", "{run}");
    let run = run["run"]["id"].as_i64().unwrap();
    let (people, _) = s.store.users(&UserQuery { limit: 1000, ..UserQuery::default() }).unwrap();
    assert!(people.len() > 10);
    let user = people[0].id.0;
    let kept = s.call(&acme, "PUT", &format!("/api/v1/users/{user}/overrides/job-title"), None).await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    let token = s.call(&acme, "POST", "/api/v1/tokens", Some(json!({"name": "acme-ci-token"}))).await;
    assert_eq!(token.status, 201, "{}", token.body);
    let token = token.json()["id"].as_i64().unwrap();
    s.call(&acme, "PUT", "/api/v1/company", Some(json!({"name": "Acme Secret Company"}))).await;
    let before = snapshot(s.store.as_ref(), &s.accounts);

    // Globex, a second tenant, with its own admin.
    let globex_id = pg.create_tenant("globex", "Globex").unwrap();
    let globex_accounts = Accounts::new(Box::new(pg.tenant(globex_id)));
    globex_accounts.create_account("admin@globex", "globex admin password", Role::Admin).unwrap();
    let globex = s.sign_in_as("admin@globex", "globex admin password").await;

    // What must never show in Globex's answers.
    let mut secrets: Vec<String> = people.iter().map(|u| u.profile.email.to_string()).collect();
    secrets.extend(["Acme Secret Integration", "Acme Secret Company", "acme-ci-token"].map(String::from));
    let leaks = |body: &str| secrets.iter().find(|m| body.contains(m.as_str())).cloned();

    let ids = |path: &str| {
        path.replace("/integrations/1", &format!("/integrations/{integration}"))
            .replace("/runs/1", &format!("/runs/{run}"))
            .replace("/users/1", &format!("/users/{user}"))
            .replace("/directory/1", &format!("/directory/{user}"))
            .replace("/tokens/999", &format!("/tokens/{token}"))
            .replace("/accounts/nobody", "/accounts/admin")
    };
    // The table's calls, plus writes with bodies that would change something.
    let mut calls: Vec<(String, String, String)> =
        API.iter().map(|(m, p, b, _)| (m.to_string(), ids(p), b.to_string())).collect();
    calls.extend(
        [
            ("PATCH", format!("/api/v1/users/{user}"), r#"{"job_title": "Hacked"}"#.to_string()),
            ("PATCH", "/api/v1/accounts/admin".into(), r#"{"disabled": true, "role": "viewer"}"#.into()),
            ("PUT", format!("/api/v1/integrations/{integration}"), r#"{"name": "Hacked", "auto_import": true}"#.into()),
            ("POST", format!("/api/v1/runs/{run}/revert"), "{}".into()),
            ("POST", "/api/v1/users/invitations".into(), format!(r#"{{"user_ids": [{user}]}}"#)),
        ]
        .map(|(m, p, b)| (m.to_string(), p, b)),
    );
    for (method, path, body) in &calls {
        if path == "/api/v1/session" && method == "DELETE" {
            continue; // signs Globex out; done last
        }
        let r = api_call(&s, &globex, method, path, body).await;
        assert!(r.status != 401 && r.status != 403, "Globex's admin may call {method} {path}: {} {}", r.status, r.body);
        if let Some(leak) = leaks(&r.body) {
            panic!("{method} {path} showed Acme's `{leak}` to Globex: {}", r.body);
        }
        let names_acme = [integration, run, user, token].iter().any(|id| path.contains(&format!("/{id}")))
            || path.contains("/accounts/admin");
        if names_acme {
            assert!(
                matches!(r.status, 404 | 400 | 422),
                "{method} {path} about Acme's data answered Globex {}: {}",
                r.status,
                r.body
            );
        }
    }
    for (method, path, _) in PAGES {
        if path == "/logout" {
            continue;
        }
        let path = ids(path);
        let r = page_call(&s, &globex, method, &path).await;
        if let Some(leak) = leaks(&r.body) {
            panic!("page {method} {path} showed Acme's `{leak}` to Globex: {}", r.body);
        }
    }

    // Acme's data is as it was; Globex sees only its own (empty) directory.
    assert_eq!(snapshot(s.store.as_ref(), &s.accounts), before, "Globex changed Acme's data");
    let globex_store = pg.tenant(globex_id);
    assert!(
        hrsync::directory::IntegrationStore::integrations(&globex_store)
            .unwrap()
            .iter()
            .all(|i| i.config.name != "Hacked")
    );
    assert!(hrsync::directory::RunStore::run(&globex_store, RunId(run)).is_err());
    let acme_page = page_call(&s, &acme, "GET", "/directory").await;
    assert!(acme_page.body.contains(people[0].profile.email.as_str()), "Acme still sees its people");
    assert_eq!(api_call(&s, &globex, "DELETE", "/api/v1/session", "").await.status, 204);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_tenants_webhooks_reach_its_own_directory() {
    let cluster = Arc::new(Cluster::start().expect("a PostgreSQL cluster (apt-get install postgresql)"));
    let url = cluster.create_database("tenant_hooks").unwrap();
    let s = server_with(Options { postgres: Some(url), ..Options::default() }).await;
    let pg = s.postgres.clone().unwrap();
    s.sandbox.set_rate_limit(None);
    s.sandbox.set_delivery_backoff(std::time::Duration::from_millis(100));
    let globex_id = pg.create_tenant("globex", "Globex").unwrap();
    let globex_store = pg.tenant(globex_id);
    Accounts::new(Box::new(globex_store.clone()))
        .create_account("admin@globex", "globex admin password", Role::Admin)
        .unwrap();
    let globex = s.sign_in_as("admin@globex", "globex admin password").await;
    let integration = IntegrationId(s.integration(&globex).await);
    let mut config = globex_store.integration(integration).unwrap().config;
    config.settings.insert("api-version".into(), "v2".into());
    config.auto_import = true;
    globex_store.update_integration(integration, &config).unwrap();
    let started = s.call(&globex, "POST", &format!("/api/v1/integrations/{}/imports", integration.0), None).await;
    s.finished(&globex, started.json()["status_url"].as_str().unwrap()).await;
    tokio::spawn(s.tenancy.clone().process_deliveries_forever(std::future::pending()));

    let on = s.call(&globex, "PUT", &format!("/api/v1/integrations/{}/webhook", integration.0), None).await;
    assert_eq!(on.status, 200, "{}", on.body);
    let (imported, _) = globex_store.users(&UserQuery { limit: 1000, ..UserQuery::default() }).unwrap();
    // Someone the first import brought in: their source id is the sandbox's employee id.
    let someone: u64 = imported.iter().find_map(|u| u.managed_by.as_ref()?.1.parse().ok()).unwrap();
    s.sandbox.apply(someone, Edit { position: Some("Chief Webhook Officer".into()), ..Edit::default() }).unwrap();
    let titled = || {
        let (users, _) = globex_store.users(&UserQuery { limit: 1000, ..UserQuery::default() }).unwrap();
        users.iter().any(|u| u.profile.job_title.as_deref() == Some("Chief Webhook Officer"))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !titled() {
        assert!(std::time::Instant::now() < deadline, "the change pushed to Globex's endpoint never arrived");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let runs = globex_store.runs(None, 0, 10).unwrap();
    assert_eq!(runs[0].trigger, Trigger::Event, "{runs:#?}");
    assert!(s.store.runs(None, 0, 10).unwrap().is_empty(), "nothing ran in the default tenant");
    assert!(s.store.users(&UserQuery::default()).unwrap().0.is_empty());
}
