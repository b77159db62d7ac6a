//! Security as an attacker and as each role meet it: every route against
//! every role, tokens, secrets bound to their origin, the sign-in throttle,
//! redirects, transport headers, JSON errors and the audit log.

use std::net::IpAddr;

use hrsync::accounts::Role;
use hrsync::directory::IntegrationId;
use hrsync::sandbox::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
use serde_json::{Value, json};

use crate::common::{Reply, request};
use crate::server::{Browser, Options, PASSWORD, Server, server, server_with};

const OPERATOR_PASSWORD: &str = "operator password here";
const VIEWER_PASSWORD: &str = "viewer password here";

/// The server with an integration, a finished import, and one account of
/// each role: (server, admin, operator, viewer).
async fn with_roles() -> (Server, Browser, Browser, Browser) {
    let s = server().await;
    let admin = s.sign_in().await;
    let id = s.integration(&admin).await;
    let started = s.call(&admin, "POST", &format!("/api/v1/integrations/{id}/imports"), None).await;
    s.finished(&admin, started.json()["status_url"].as_str().unwrap()).await;
    s.accounts.create_account("olga", OPERATOR_PASSWORD, Role::Operator).unwrap();
    s.accounts.create_account("victor", VIEWER_PASSWORD, Role::Viewer).unwrap();
    let operator = s.sign_in_as("olga", OPERATOR_PASSWORD).await;
    let viewer = s.sign_in_as("victor", VIEWER_PASSWORD).await;
    (s, admin, operator, viewer)
}

/// Every API route, a body it may take, and the least role it needs.
pub(crate) const API: [(&str, &str, &str, Role); 41] = [
    ("GET", "/api/v1/session", "", Role::Viewer),
    ("POST", "/api/v1/session/password", "{}", Role::Viewer),
    ("GET", "/api/v1/tokens", "", Role::Viewer),
    ("POST", "/api/v1/tokens", "{}", Role::Viewer),
    ("DELETE", "/api/v1/tokens/999", "", Role::Viewer),
    ("GET", "/api/v1/accounts", "", Role::Admin),
    ("POST", "/api/v1/accounts", "{}", Role::Admin),
    ("PATCH", "/api/v1/accounts/nobody", "{}", Role::Admin),
    ("GET", "/api/v1/audit", "", Role::Admin),
    ("GET", "/api/v1/connectors", "", Role::Viewer),
    ("GET", "/api/v1/integrations", "", Role::Viewer),
    ("POST", "/api/v1/integrations", "{}", Role::Admin),
    ("GET", "/api/v1/integrations/1", "", Role::Viewer),
    ("PUT", "/api/v1/integrations/1", "{}", Role::Admin),
    ("POST", "/api/v1/integrations/1/check", "", Role::Operator),
    ("POST", "/api/v1/integrations/1/previews", r#"{"background": true}"#, Role::Operator),
    ("POST", "/api/v1/integrations/1/imports", r#"{"from_preview": 999999}"#, Role::Operator),
    ("GET", "/api/v1/runs", "", Role::Viewer),
    ("GET", "/api/v1/runs/1", "", Role::Viewer),
    ("GET", "/api/v1/runs/1/changes", "", Role::Viewer),
    ("POST", "/api/v1/runs/1/revert", r#"{"dry_run": true}"#, Role::Operator),
    ("POST", "/api/v1/runs/1/cancel", "", Role::Operator),
    ("GET", "/api/v1/users", "", Role::Viewer),
    ("GET", "/api/v1/users/1", "", Role::Viewer),
    ("POST", "/api/v1/users/invitations", r#"{"user_ids": []}"#, Role::Operator),
    ("POST", "/api/v1/users", "{}", Role::Operator),
    ("PATCH", "/api/v1/users/1", "{}", Role::Operator),
    ("POST", "/api/v1/users/import", "", Role::Operator),
    ("PUT", "/api/v1/users/1/overrides/job-title", "", Role::Operator),
    ("DELETE", "/api/v1/users/1/overrides/job-title", "", Role::Operator),
    ("GET", "/api/v1/overrides", "", Role::Viewer),
    ("GET", "/api/v1/mails", "", Role::Operator),
    ("GET", "/api/v1/company", "", Role::Viewer),
    ("PUT", "/api/v1/company", r#"{"name": "Acme"}"#, Role::Admin),
    ("GET", "/api/v1/integrations/1/webhook", "", Role::Viewer),
    ("PUT", "/api/v1/integrations/1/webhook", "", Role::Admin),
    ("DELETE", "/api/v1/integrations/1/webhook", "", Role::Admin),
    ("GET", "/api/v1/tenants", "", Role::Admin),
    ("POST", "/api/v1/tenants", "{}", Role::Admin),
    ("PATCH", "/api/v1/tenants/nobody", "{}", Role::Admin),
    ("DELETE", "/api/v1/session", "", Role::Viewer),
];

/// Every page (GET) and form (POST), and the least role it needs.
pub(crate) const PAGES: [(&str, &str, Role); 38] = [
    ("GET", "/integrations", Role::Viewer),
    ("GET", "/integrations/new?connector=personio", Role::Admin),
    ("POST", "/integrations", Role::Admin),
    ("POST", "/integrations/1/webhooks", Role::Admin),
    ("GET", "/integrations/1", Role::Viewer),
    ("GET", "/integrations/1/configuration", Role::Admin),
    ("POST", "/integrations/1/configuration", Role::Admin),
    ("GET", "/integrations/1/preview", Role::Viewer),
    ("POST", "/integrations/1/preview", Role::Operator),
    ("POST", "/integrations/1/import", Role::Operator),
    ("GET", "/integrations/1/history", Role::Viewer),
    ("GET", "/runs/1", Role::Viewer),
    ("POST", "/runs/1/revert", Role::Operator),
    ("POST", "/runs/1/cancel", Role::Operator),
    ("GET", "/directory", Role::Viewer),
    ("POST", "/directory/invitations", Role::Operator),
    ("GET", "/directory/1", Role::Viewer),
    ("GET", "/directory/new", Role::Operator),
    ("POST", "/directory/new", Role::Operator),
    ("GET", "/directory/upload", Role::Operator),
    ("POST", "/directory/upload", Role::Operator),
    ("GET", "/directory/overrides", Role::Viewer),
    ("GET", "/directory/1/edit", Role::Operator),
    ("POST", "/directory/1/edit", Role::Operator),
    ("POST", "/directory/1/keep", Role::Operator),
    ("POST", "/directory/1/unkeep", Role::Operator),
    ("GET", "/emails", Role::Operator),
    ("GET", "/account", Role::Viewer),
    ("POST", "/account/password", Role::Viewer),
    ("POST", "/account/tokens", Role::Viewer),
    ("POST", "/account/tokens/999/revoke", Role::Viewer),
    ("GET", "/accounts", Role::Admin),
    ("POST", "/accounts", Role::Admin),
    ("POST", "/accounts/nobody", Role::Admin),
    ("GET", "/audit", Role::Admin),
    ("GET", "/login", Role::Viewer),
    ("GET", "/", Role::Viewer),
    ("POST", "/logout", Role::Viewer),
];

pub(crate) async fn api_call(s: &Server, b: &Browser, method: &str, path: &str, body: &str) -> Reply {
    request(
        method,
        &s.url(path),
        &[("Cookie", &b.cookie), ("X-CSRF-Token", &b.csrf), ("Content-Type", "application/json")],
        body,
    )
    .await
}

pub(crate) async fn page_call(s: &Server, b: &Browser, method: &str, path: &str) -> Reply {
    let form = format!("csrf={}", b.csrf);
    let headers = [("Cookie", b.cookie.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
    request(method, &s.url(path), &headers, if method == "POST" { &form } else { "" }).await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_api_route_and_page_enforces_its_role_for_every_role() {
    let (s, admin, operator, viewer) = with_roles().await;
    // The table is every API route the OpenAPI document lists, no more.
    let doc = request("GET", &s.url("/api/v1/openapi.json"), &[], "").await.json();
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let path = path
                .replace("{id}", "1")
                .replace("{username}", "nobody")
                .replace("{slug}", "nobody")
                .replace("{field}", "job-title");
            let path = if path == "/api/v1/tokens/1" { "/api/v1/tokens/999".to_string() } else { path };
            documented.push((method.to_uppercase(), path));
        }
    }
    // Public: signing in, the probe, and webhook deliveries (checked by the source's token).
    documented.retain(|(m, p)| !(m == "POST" && p == "/api/v1/session") && p != "/readyz" && !p.starts_with("/hooks/"));
    let mut listed: Vec<(String, String)> = API.iter().map(|(m, p, _, _)| (m.to_string(), p.to_string())).collect();
    documented.sort();
    listed.sort();
    assert_eq!(listed, documented, "the role table covers exactly the documented API");

    for (role, who) in [(Role::Viewer, &viewer), (Role::Operator, &operator), (Role::Admin, &admin)] {
        for (method, path, body, needed) in API {
            if method == "DELETE" && path == "/api/v1/session" {
                continue; // signs out: checked last
            }
            let r = api_call(&s, who, method, path, body).await;
            if role.allows(needed) {
                assert!(r.status != 401 && r.status != 403, "{role:?} may {method} {path}: {} {}", r.status, r.body);
            } else {
                assert_eq!(r.status, 403, "{role:?} may not {method} {path}: {}", r.body);
                let message = r.json()["error"]["message"].as_str().unwrap().to_string();
                assert!(message.contains(&format!("needs the {} role", needed.as_str())), "{message}");
            }
        }
        for (method, path, needed) in PAGES {
            if path == "/logout" {
                continue;
            }
            let r = page_call(&s, who, method, path).await;
            if role.allows(needed) {
                assert!(
                    r.status != 403 && r.header("location") != Some("/login"),
                    "{role:?} may {method} {path}: {} {}",
                    r.status,
                    r.body
                );
            } else {
                assert_eq!(r.status, 403, "{role:?} may not {method} {path}");
                assert!(r.body.contains(&format!("needs the {} role", needed.as_str())), "{}", r.body);
            }
        }
    }
    for who in [&viewer, &operator, &admin] {
        assert_eq!(api_call(&s, who, "DELETE", "/api/v1/session", "").await.status, 204);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_offer_only_what_the_role_may_do() {
    let (s, _, operator, viewer) = with_roles().await;
    let preview = page_call(&s, &viewer, "GET", "/integrations/1/preview").await.body;
    assert!(!preview.contains("run-preview") && !preview.contains("/configuration\""), "{preview}");
    let preview = page_call(&s, &operator, "GET", "/integrations/1/preview").await.body;
    assert!(preview.contains("run-preview") && !preview.contains("Configuration</a>"), "{preview}");
    let nav = page_call(&s, &viewer, "GET", "/directory").await.body;
    assert!(!nav.contains("href=\"/emails\"") && !nav.contains("href=\"/audit\"") && !nav.contains("send-invitations"));
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_listed_revoked_expire_narrow_and_die_with_their_account() {
    let (s, admin, operator, _) = with_roles().await;
    let made = api_call(&s, &operator, "POST", "/api/v1/tokens", r#"{"name": "nightly", "role": "viewer"}"#).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let token = made.json()["token"].as_str().unwrap().to_string();
    let id = made.json()["id"].as_i64().unwrap();
    let bearer = |path: &str, method: &'static str| {
        let (url, token) = (s.url(path), token.clone());
        async move { request(method, &url, &[("Authorization", &format!("Bearer {token}"))], "").await }
    };
    assert_eq!(bearer("/api/v1/users", "GET").await.status, 200);
    assert_eq!(bearer("/api/v1/integrations/1/previews", "POST").await.status, 403, "a viewer token cannot preview");
    let too_much = api_call(&s, &operator, "POST", "/api/v1/tokens", r#"{"name": "x", "role": "admin"}"#).await;
    assert_eq!(too_much.status, 403, "{}", too_much.body);

    // Listed with creator, role, dates; never the value.
    let mine = api_call(&s, &operator, "GET", "/api/v1/tokens", "").await;
    assert!(!mine.body.contains(&token));
    let listed = &mine.json()[0];
    assert_eq!(
        (listed["name"].as_str(), listed["creator"].as_str(), listed["role"].as_str()),
        (Some("nightly"), Some("olga"), Some("viewer"))
    );
    assert!(listed["last_used"].is_string(), "{listed}");
    let everyone = api_call(&s, &admin, "GET", "/api/v1/tokens", "").await.json();
    assert!(everyone.as_array().unwrap().iter().any(|t| t["id"] == id), "admins see every token");

    // Revoked: it stops at once.
    assert_eq!(api_call(&s, &operator, "DELETE", &format!("/api/v1/tokens/{id}"), "").await.status, 200);
    assert_eq!(bearer("/api/v1/users", "GET").await.status, 401);

    // Expired, and a disabled account's tokens.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    let short =
        api_call(&s, &operator, "POST", "/api/v1/tokens", &json!({"name": "short", "expires_at": soon}).to_string())
            .await;
    let short = short.json()["token"].as_str().unwrap().to_string();
    let long = api_call(&s, &operator, "POST", "/api/v1/tokens", r#"{"name": "long"}"#).await.json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let get = |t: String| {
        let url = s.url("/api/v1/users");
        async move { request("GET", &url, &[("Authorization", &format!("Bearer {t}"))], "").await }
    };
    assert_eq!(get(short).await.status, 401, "expired");
    assert_eq!(get(long.clone()).await.status, 200);
    let r = api_call(&s, &admin, "PATCH", "/api/v1/accounts/olga", r#"{"disabled": true}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get(long).await.status, 401, "a disabled account's tokens stop");
    assert_eq!(api_call(&s, &operator, "GET", "/api/v1/session", "").await.status, 401, "and its sessions");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stored_secret_never_reaches_a_newly_granted_origin() {
    let s = server().await;
    let b = s.sign_in().await;
    let id = s.integration(&b).await;
    // An attacker's listener, to be granted.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil = format!("http://{}", listener.local_addr().unwrap());
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let ears = heard.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = vec![0; 8192];
            let n = conn.read(&mut buf).await.unwrap_or(0);
            ears.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });

    let moved = json!({"connector_id": "personio", "name": "Acme",
        "settings": {"api-base-url": evil, "client-id": DEMO_CLIENT_ID, "client-secret": ""}, "grants": [evil]});
    let r = s.call(&b, "PUT", &format!("/api/v1/integrations/{id}"), Some(moved)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("enter it again") && r.body.contains("Client secret"), "{}", r.body);
    let check = s.call(&b, "POST", &format!("/api/v1/integrations/{id}/check"), None).await;
    assert_eq!(check.status, 200, "the stored settings still work: {}", check.body);

    // Changed behind the API's back (a direct edit): runs refuse to send it.
    let mut config = s.store.integration(IntegrationId(id)).unwrap().config;
    config.settings.insert("api-base-url".into(), evil.clone());
    config.grants = vec![evil.clone()];
    s.store.update_integration(IntegrationId(id), &config).unwrap();
    let check = s.call(&b, "POST", &format!("/api/v1/integrations/{id}/check"), None).await;
    assert_eq!(check.status, 400, "{}", check.body);
    assert!(check.body.contains("enter them again"), "{}", check.body);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let heard = heard.lock().unwrap().clone();
    assert!(heard.iter().all(|h| !h.contains(DEMO_CLIENT_SECRET)), "{heard:?}");
    assert!(heard.is_empty(), "the new origin was never even contacted: {heard:?}");

    // Typed again, the secret goes where it was entered for.
    let retyped = json!({"connector_id": "personio", "name": "Acme",
        "settings": {"api-base-url": s.sandbox_url, "client-id": DEMO_CLIENT_ID, "client-secret": DEMO_CLIENT_SECRET},
        "grants": [s.sandbox_url]});
    assert_eq!(s.call(&b, "PUT", &format!("/api/v1/integrations/{id}"), Some(retyped)).await.status, 200);
    assert_eq!(s.call(&b, "POST", &format!("/api/v1/integrations/{id}/check"), None).await.status, 200);
}

async fn sign_in_from(s: &Server, ip: &str, password: &str) -> u16 {
    let body = json!({"username": "admin", "password": password}).to_string();
    request("POST", &s.url("/api/v1/session"), &[("Content-Type", "application/json"), ("X-Forwarded-For", ip)], &body)
        .await
        .status
}

#[tokio::test(flavor = "multi_thread")]
async fn guessing_from_one_address_never_locks_the_admin_out_from_another() {
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    let s = server_with(Options { trusted_proxies: vec![loopback], ..Options::default() }).await;
    let attacker = "203.0.113.9";
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(sign_in_from(&s, attacker, "wrong guess, wrong guess").await);
    }
    assert!(statuses[..4].iter().all(|st| *st == 401), "{statuses:?}");
    assert!(statuses.contains(&429), "the guesser is slowed down: {statuses:?}");
    let delayed = request(
        "POST",
        &s.url("/api/v1/session"),
        &[("Content-Type", "application/json"), ("X-Forwarded-For", attacker)],
        &json!({"username": "admin", "password": PASSWORD}).to_string(),
    )
    .await;
    assert_eq!(delayed.status, 429, "even the right password waits from there");
    assert!(delayed.header("retry-after").is_some());
    assert_eq!(sign_in_from(&s, "198.51.100.4", PASSWORD).await, 200, "the admin elsewhere signs in");
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_addresses_are_ignored_unless_a_trusted_proxy_sends_them() {
    let s = server().await;
    // Without a trusted proxy, rotating X-Forwarded-For gains nothing.
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(sign_in_from(&s, &format!("203.0.113.{i}"), "wrong guess, wrong guess").await);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

/// A fresh sign-in form: its login-CSRF cookie and token.
async fn login_form(s: &Server, next: &str) -> (String, String) {
    let page = request("GET", &s.url(&format!("/login?next={next}")), &[], "").await;
    let cookie = page.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    let token = page.body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    (cookie, token)
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_redirects_only_to_paths_of_this_site() {
    let s = server().await;
    for (next, to) in [
        ("%2Fruns%2F3", "/runs/3"),
        ("%2F%09%2Fevil.example", "/integrations"),
        ("%09%2F%2Fevil.example", "/integrations"),
        ("%2F%0A%2Fevil.example", "/integrations"),
        ("%2F%0D%0ASet-Cookie%3A%20x%3D1", "/integrations"),
        ("%2F%5Cevil.example", "/integrations"),
        ("%2F%2Fevil.example", "/integrations"),
        ("https%3A%2F%2Fevil.example", "/integrations"),
    ] {
        let (cookie, token) = login_form(&s, next).await;
        let form = format!("csrf={token}&next={next}&username=admin&password={}", PASSWORD.replace(' ', "+"));
        let r = request(
            "POST",
            &s.url("/login"),
            &[("Cookie", &cookie), ("Content-Type", "application/x-www-form-urlencoded")],
            &form,
        )
        .await;
        assert_eq!(r.status, 303, "{next}: {}", r.body);
        assert_eq!(r.header("location"), Some(to), "{next}");
        assert!(r.headers.iter().any(|(k, v)| k == "set-cookie" && v.starts_with("hrsync_session=hs_")), "{next}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn over_https_cookies_are_secure_and_hsts_is_sent() {
    let s = server_with(Options { https: true, ..Options::default() }).await;
    let r = request(
        "POST",
        &s.url("/api/v1/session"),
        &[("Content-Type", "application/json")],
        &json!({"username": "admin", "password": PASSWORD}).to_string(),
    )
    .await;
    assert!(r.header("set-cookie").unwrap().contains("; Secure"), "{:?}", r.headers);
    assert!(r.header("strict-transport-security").unwrap().contains("max-age="));
    // Plain HTTP: neither.
    let s = server().await;
    let r = request("GET", &s.url("/login"), &[], "").await;
    assert!(r.header("strict-transport-security").is_none());
    // Behind a trusted proxy that says HTTPS: both.
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    let s = server_with(Options { trusted_proxies: vec![loopback], ..Options::default() }).await;
    let r = request("GET", &s.url("/login"), &[("X-Forwarded-Proto", "https")], "").await;
    assert!(r.header("strict-transport-security").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn api_errors_are_json_whatever_was_wrong() {
    let s = server().await;
    let b = s.sign_in().await;
    for (method, path, body, status) in [
        ("POST", "/api/v1/integrations", "{not json", 400),
        ("POST", "/api/v1/integrations", r#"{"name": 5}"#, 422),
        ("GET", "/api/v1/runs/not-a-number", "", 400),
        ("GET", "/api/v1/runs?limit=lots", "", 400),
        ("GET", "/api/v1/nothing-here", "", 404),
        ("PATCH", "/api/v1/integrations", "{}", 405),
    ] {
        let r = api_call(&s, &b, method, path, body).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        assert!(r.header("content-type").unwrap().starts_with("application/json"), "{method} {path}");
        let message = r.json()["error"]["message"].as_str().unwrap_or_default().to_string();
        assert!(!message.is_empty(), "{method} {path}: {}", r.body);
    }
    let doc = request("GET", &s.url("/api/v1/openapi.json"), &[], "").await.json();
    let tokens = &doc["paths"]["/api/v1/tokens"]["post"]["responses"];
    for status in ["400", "401", "403"] {
        assert!(tokens[status].is_object(), "the document lists {status}: {tokens}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_log_says_who_did_what_from_where_and_never_a_secret() {
    let (s, admin, operator, _) = with_roles().await;
    let failed = request(
        "POST",
        &s.url("/api/v1/session"),
        &[("Content-Type", "application/json")],
        &json!({"username": "olga", "password": "not her password"}).to_string(),
    )
    .await;
    assert_eq!(failed.status, 401);
    let changed = json!({"connector_id": "personio", "name": "Acme",
        "settings": {"api-base-url": s.sandbox_url, "client-id": DEMO_CLIENT_ID, "client-secret": "a-brand-new-secret-value"},
        "grants": [s.sandbox_url], "interval_minutes": 30});
    assert_eq!(s.call(&admin, "PUT", "/api/v1/integrations/1", Some(changed)).await.status, 200);
    let t = api_call(&s, &operator, "POST", "/api/v1/tokens", r#"{"name": "ci"}"#).await.json();
    api_call(&s, &operator, "DELETE", &format!("/api/v1/tokens/{}", t["id"]), "").await;
    api_call(&s, &admin, "PATCH", "/api/v1/accounts/victor", r#"{"role": "operator"}"#).await;

    let log = api_call(&s, &admin, "GET", "/api/v1/audit?limit=500", "").await;
    assert!(!log.body.contains("a-brand-new-secret-value") && !log.body.contains(DEMO_CLIENT_SECRET), "{}", log.body);
    let entries = log.json()["entries"].as_array().unwrap().clone();
    let find = |action: &str| entries.iter().find(|e| e["action"] == action).cloned().unwrap_or(Value::Null);
    assert_eq!(find("sign-in-failed")["actor"], "olga");
    assert_eq!(find("sign-in-failed")["address"], "127.0.0.1");
    assert!(entries.iter().any(|e| e["action"] == "sign-in" && e["actor"] == "admin"), "{entries:?}");
    let settings = find("settings-changed");
    assert_eq!(settings["target"], "integration 1");
    let detail = settings["detail"].as_str().unwrap();
    assert!(detail.contains("client-secret (secret)") && detail.contains("interval"), "{detail}");
    assert_eq!(find("import")["actor"], "admin");
    assert_eq!(find("token-created")["actor"], "olga");
    assert_eq!(find("token-revoked")["actor"], "olga");
    assert_eq!(find("role-changed")["target"], "account victor");
    let only = api_call(&s, &admin, "GET", "/api/v1/audit?action=sign-in-failed", "").await.json();
    assert!(only["entries"].as_array().unwrap().iter().all(|e| e["action"] == "sign-in-failed"), "{only}");
    let page = page_call(&s, &admin, "GET", "/audit?actor=olga").await;
    assert!(
        page.body.contains("data-action=\"token-created\"") && !page.body.contains("data-action=\"role-changed\""),
        "{}",
        page.body
    );
}
