//! Tenants on one PostgreSQL database: an admin of one company calls every
//! API route and page with the other company's ids and learns and changes
//! nothing of it.

use std::sync::Arc;

use hrsync::accounts::{Accounts, Role};
use hrsync::directory::postgres::PgStore;
use hrsync::directory::prelude::*;
use hrsync::directory::{IntegrationId, RunId, RunKind, RunState, Trigger, UserQuery};
use hrsync::sandbox::Edit;
use hrsync_pg_cluster::Cluster;
use serde_json::json;

use crate::security::{API, PAGES, api_call, page_call};
use crate::server::{Options, PASSWORD, Server, server_with};

/// A server on a database of a throwaway cluster (stopped when the
/// cluster is dropped), and the database's store.
async fn on_postgres(database: &str) -> (Arc<Cluster>, Server, PgStore) {
    let cluster = Arc::new(Cluster::start().expect("a PostgreSQL cluster (apt-get install postgresql)"));
    let url = cluster.create_database(database).unwrap();
    let s = server_with(Options { postgres: Some(url), ..Options::default() }).await;
    let pg = s.postgres.clone().unwrap();
    (cluster, s, pg)
}

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
    let (_cluster, s, pg) = on_postgres("tenants").await;

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
            ("PATCH", "/api/v1/tenants/default".into(), r#"{"disabled": true}"#.into()),
            (
                "POST",
                "/api/v1/tenants".into(),
                r#"{"slug": "evil", "name": "Evil", "admin": {"username": "evil", "password": "evil admin password"}}"#
                    .into(),
            ),
        ]
        .map(|(m, p, b)| (m.to_string(), p, b)),
    );
    for (method, path, body) in &calls {
        if path == "/api/v1/session" && method == "DELETE" {
            continue; // signs Globex out; done last
        }
        let r = api_call(&s, &globex, method, path, body).await;
        if path.starts_with("/api/v1/tenants") {
            // The operator API is the platform's, not a tenant admin's.
            assert_eq!(r.status, 403, "{method} {path} as Globex's admin: {}", r.body);
            continue;
        }
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
    let slugs: Vec<String> = pg.tenants().unwrap().into_iter().map(|t| t.slug).collect();
    assert_eq!(slugs, ["default", "globex"], "Globex added no tenant");
    assert!(pg.tenant_by_slug("default").unwrap().disabled_at.is_none(), "nor disabled the platform's");
    let acme_page = page_call(&s, &acme, "GET", "/directory").await;
    assert!(acme_page.body.contains(people[0].profile.email.as_str()), "Acme still sees its people");
    assert_eq!(api_call(&s, &globex, "DELETE", "/api/v1/session", "").await.status, 204);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_tenants_webhooks_reach_its_own_directory() {
    let (_cluster, s, pg) = on_postgres("tenant_hooks").await;
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

    // The deployment's metrics count every tenant's runs and deliveries, and its tenants.
    let metrics = crate::common::request("GET", &s.url("/metrics"), &[], "").await.body;
    let value = |name: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in {metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let imports = globex_store
        .runs(None, 0, 100)
        .unwrap()
        .iter()
        .filter(|r| r.kind == RunKind::Import && r.state == RunState::Succeeded)
        .count();
    assert!(imports >= 2, "the first import and the event's");
    assert_eq!(value("hrsync_runs{kind=\"import\",state=\"succeeded\"}"), imports as f64, "{metrics}");
    assert!(value("hrsync_webhook_deliveries{outcome=\"accepted\"}") >= 1.0, "{metrics}");
    assert!(value("hrsync_event_lag_seconds{kind=\"count\"}") >= 1.0, "{metrics}");
    assert_eq!(value("hrsync_tenants{state=\"enabled\"}"), 2.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_platforms_admins_add_list_disable_and_enable_tenants_over_the_api() {
    let (_cluster, s, pg) = on_postgres("operator_api").await;
    s.accounts.ensure_admin(Some(PASSWORD)).unwrap();
    let operator = s.sign_in().await;
    let slugs = || pg.tenants().unwrap().into_iter().map(|t| t.slug).collect::<Vec<_>>();
    let new_tenant = |slug: &str, name: &str, admin: &str, password: &str| json!({"slug": slug, "name": name, "admin": {"username": admin, "password": password}});

    let added = s
        .call(
            &operator,
            "POST",
            "/api/v1/tenants",
            Some(new_tenant("globex", " Globex ", "admin@globex", "globex admin password")),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    assert_eq!((added.json()["slug"].as_str(), added.json()["name"].as_str()), (Some("globex"), Some("Globex")));
    assert!(added.json()["disabled_at"].is_null() && !added.body.contains("globex admin password"), "{}", added.body);
    let globex = s.sign_in_as("admin@globex", "globex admin password").await;
    let listed = s.call(&operator, "GET", "/api/v1/tenants", None).await.json();
    let listed: Vec<&str> = listed.as_array().unwrap().iter().map(|t| t["slug"].as_str().unwrap()).collect();
    assert_eq!(listed, ["default", "globex"]);

    // Refusals say why and add nothing: a bad slug, a taken slug, a short
    // password, and an admin username another tenant has.
    for (body, status, says) in [
        (new_tenant("Bad_Slug", "Bad", "admin@bad", "a long enough password"), 400, "is not a tenant slug"),
        (new_tenant("globex", "Globex again", "other@globex", "a long enough password"), 409, "exists already"),
        (new_tenant("initech", "Initech", "admin@initech", "short"), 400, "at least 12 characters"),
        (
            new_tenant("initech", "Initech", "admin@globex", "a long enough password"),
            409,
            "`admin@globex` exists already",
        ),
        (new_tenant("initech", "  ", "admin@initech", "a long enough password"), 400, "name is empty"),
    ] {
        let r = s.call(&operator, "POST", "/api/v1/tenants", Some(body.clone())).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(r.json()["error"]["message"].as_str().unwrap().contains(says), "{body}: {}", r.body);
    }
    assert_eq!(slugs(), ["default", "globex"], "nothing was half-added");

    // A tenant's own admin may not manage tenants, its own included.
    for (method, path, body) in [
        ("GET", "/api/v1/tenants", None),
        ("PATCH", "/api/v1/tenants/globex", Some(json!({"disabled": true}))),
        ("POST", "/api/v1/tenants", Some(new_tenant("mine", "Mine", "admin@mine", "a long enough password"))),
    ] {
        let r = s.call(&globex, method, path, body).await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
        assert!(r.json()["error"]["message"].as_str().unwrap().contains("platform's admins"), "{}", r.body);
    }

    // Disabling ends the tenant's sessions; enabling lets its admin back in.
    let off = s.call(&operator, "PATCH", "/api/v1/tenants/globex", Some(json!({"disabled": true}))).await;
    assert_eq!(off.status, 200, "{}", off.body);
    assert!(off.json()["disabled_at"].is_string(), "{}", off.body);
    assert_eq!(s.call(&globex, "GET", "/api/v1/session", None).await.status, 401);
    let platform = s.call(&operator, "PATCH", "/api/v1/tenants/default", Some(json!({"disabled": true}))).await;
    assert_eq!(platform.status, 409, "{}", platform.body);
    let unknown = s.call(&operator, "PATCH", "/api/v1/tenants/nope", Some(json!({"disabled": true}))).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let on = s.call(&operator, "PATCH", "/api/v1/tenants/globex", Some(json!({"disabled": false}))).await;
    assert!(on.status == 200 && on.json()["disabled_at"].is_null(), "{}", on.body);
    let again = s.sign_in_as("admin@globex", "globex admin password").await;
    assert_eq!(s.call(&again, "GET", "/api/v1/session", None).await.status, 200);

    // The platform's log says who did what; the new tenant's log starts with its admin.
    let log = s.call(&operator, "GET", "/api/v1/audit", None).await.json();
    let tenant_entries: Vec<(String, String)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("tenant-"))
        .map(|e| (e["action"].as_str().unwrap().to_string(), e["actor"].as_str().unwrap().to_string()))
        .collect();
    let by_admin = |a: &str| (a.to_string(), "admin".to_string());
    assert_eq!(tenant_entries, [by_admin("tenant-enabled"), by_admin("tenant-disabled"), by_admin("tenant-added")]);
    let globex_log = s.call(&again, "GET", "/api/v1/audit", None).await.json();
    assert!(
        globex_log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "account-created" && e["actor"] == "admin"),
        "{globex_log}"
    );
}

#[tokio::test]
async fn a_single_company_install_says_tenants_need_postgresql() {
    let s = crate::server::server().await;
    let admin = s.sign_in().await;
    let r = s.call(&admin, "GET", "/api/v1/tenants", None).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.json()["error"]["message"].as_str().unwrap().contains("tenants need a PostgreSQL database"),
        "{}",
        r.body
    );
}
