//! The admin JSON API over real HTTP: authentication, CSRF, secrets, and
//! every endpoint, with the real Personio component against the sandbox.

use hrsync::sandbox::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Hire};
use serde_json::json;

use crate::common::request;
use crate::server::{PASSWORD, server, server_with};

/// Every endpoint that needs an admin.
const PROTECTED: [(&str, &str); 41] = [
    ("GET", "/api/v1/session"),
    ("DELETE", "/api/v1/session"),
    ("POST", "/api/v1/session/password"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/1"),
    ("GET", "/api/v1/accounts"),
    ("POST", "/api/v1/accounts"),
    ("PATCH", "/api/v1/accounts/1"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/connectors"),
    ("GET", "/api/v1/integrations"),
    ("POST", "/api/v1/integrations"),
    ("GET", "/api/v1/integrations/1"),
    ("PUT", "/api/v1/integrations/1"),
    ("POST", "/api/v1/integrations/1/check"),
    ("POST", "/api/v1/integrations/1/previews"),
    ("POST", "/api/v1/integrations/1/imports"),
    ("GET", "/api/v1/runs"),
    ("GET", "/api/v1/runs/1"),
    ("GET", "/api/v1/runs/1/changes"),
    ("POST", "/api/v1/runs/1/revert"),
    ("POST", "/api/v1/runs/1/cancel"),
    ("GET", "/api/v1/users"),
    ("GET", "/api/v1/users/1"),
    ("POST", "/api/v1/users/invitations"),
    ("POST", "/api/v1/users"),
    ("PATCH", "/api/v1/users/1"),
    ("POST", "/api/v1/users/import"),
    ("PUT", "/api/v1/users/1/overrides/job-title"),
    ("DELETE", "/api/v1/users/1/overrides/job-title"),
    ("GET", "/api/v1/overrides"),
    ("GET", "/api/v1/mails"),
    ("GET", "/api/v1/company"),
    ("PUT", "/api/v1/company"),
    ("GET", "/api/v1/integrations/1/webhook"),
    ("PUT", "/api/v1/integrations/1/webhook"),
    ("DELETE", "/api/v1/integrations/1/webhook"),
    ("GET", "/api/v1/tenants"),
    ("POST", "/api/v1/tenants"),
    ("PATCH", "/api/v1/tenants/1"),
];

#[tokio::test]
async fn every_endpoint_requires_authentication() {
    let s = server().await;
    for (method, path) in PROTECTED {
        let r = request(method, &s.url(path), &[("Content-Type", "application/json")], "{}").await;
        assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
        assert!(r.json()["error"]["message"].as_str().unwrap().contains("sign in"), "{method} {path}");
        let forged = request(method, &s.url(path), &[("Cookie", "hrsync_session=hs_forged")], "").await;
        assert_eq!(forged.status, 401, "{method} {path} with a forged session");
        let token = request(method, &s.url(path), &[("Authorization", "Bearer hrs_forged")], "").await;
        assert_eq!(token.status, 401, "{method} {path} with a forged token");
    }
    assert_eq!(request("GET", &s.url("/healthz"), &[], "").await.status, 200);
    assert_eq!(request("GET", &s.url("/readyz"), &[], "").await.status, 200);
}

#[tokio::test]
async fn state_changes_from_a_browser_need_the_csrf_token() {
    let s = server().await;
    let b = s.sign_in().await;
    let me = request("GET", &s.url("/api/v1/session"), &[("Cookie", &b.cookie)], "").await;
    assert_eq!(me.json()["username"], "admin", "reads need no CSRF token");
    for csrf in [None, Some("wrong")] {
        let mut headers = vec![("Cookie", b.cookie.as_str()), ("Content-Type", "application/json")];
        if let Some(c) = csrf {
            headers.push(("X-CSRF-Token", c));
        }
        let r = request("POST", &s.url("/api/v1/tokens"), &headers, r#"{"name":"x"}"#).await;
        assert_eq!(r.status, 403, "{csrf:?}: {}", r.body);
        assert!(r.body.contains("CSRF"));
    }
    let token = s.call(&b, "POST", "/api/v1/tokens", Some(json!({"name": "ci"}))).await;
    assert_eq!(token.status, 201, "{}", token.body);
    let token = token.json()["token"].as_str().unwrap().to_string();
    // Scripts with a token send no cookie, so no CSRF token is needed.
    let r = request(
        "POST",
        &s.url("/api/v1/tokens"),
        &[("Authorization", &format!("Bearer {token}")), ("Content-Type", "application/json")],
        r#"{"name":"y"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let out = s.call(&b, "DELETE", "/api/v1/session", None).await;
    assert_eq!(out.status, 204);
    let after = request("GET", &s.url("/api/v1/session"), &[("Cookie", &b.cookie)], "").await;
    assert_eq!(after.status, 401, "signed out");
}

#[tokio::test]
async fn repeated_failed_sign_ins_are_throttled() {
    let s = server().await;
    let attempt = |password: &'static str| {
        let url = s.url("/api/v1/session");
        async move {
            request(
                "POST",
                &url,
                &[("Content-Type", "application/json")],
                &json!({"username": "admin", "password": password}).to_string(),
            )
            .await
        }
    };
    // Three failures cost nothing; the fourth makes this address wait.
    for _ in 0..4 {
        assert_eq!(attempt("wrong password!").await.status, 401);
    }
    let locked = attempt(PASSWORD).await;
    assert_eq!(locked.status, 429, "even the right password waits from here: {}", locked.body);
    assert!(locked.header("retry-after").is_some());
}

#[tokio::test]
async fn secrets_are_never_returned_and_kept_when_left_empty() {
    let s = server().await;
    let b = s.sign_in().await;
    let id = s.integration(&b).await;
    let mut bodies = Vec::new();
    let one = s.call(&b, "GET", &format!("/api/v1/integrations/{id}"), None).await;
    assert_eq!(one.json()["settings"]["client-secret"], json!({"stored": true}));
    bodies.push(one.body);
    bodies.push(s.call(&b, "GET", "/api/v1/integrations", None).await.body);
    // An update that leaves the secret empty keeps it: the check still authenticates.
    let updated = s
        .call(
            &b,
            "PUT",
            &format!("/api/v1/integrations/{id}"),
            Some(json!({
                "name": "Acme GmbH",
                "settings": {"api-base-url": s.sandbox_url, "client-id": DEMO_CLIENT_ID, "client-secret": ""},
                "grants": [s.sandbox_url]
            })),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    bodies.push(updated.body);
    let check = s.call(&b, "POST", &format!("/api/v1/integrations/{id}/check"), None).await;
    assert_eq!(check.json()["ok"], true, "{}", check.body);
    bodies.push(check.body);
    for body in bodies {
        assert!(!body.contains(DEMO_CLIENT_SECRET), "a response leaked the secret: {body}");
    }
}

#[tokio::test]
async fn invalid_integration_settings_are_refused_with_what_to_fix() {
    let s = server().await;
    let b = s.sign_in().await;
    for (body, needle) in [
        (json!({"connector_id": "nope", "name": "x"}), "not loaded"),
        (json!({"connector_id": "personio", "name": "x", "settings": {"client-id": "a"}}), "`client-secret`"),
        (json!({"connector_id": "personio", "name": "x", "settings": {"salary": "1"}}), "unknown setting `salary`"),
        (
            json!({"connector_id": "personio", "name": "x", "settings": {"client-id": "a", "client-secret": "b"}, "grants": ["https://*.evil"]}),
            "wildcards",
        ),
        (
            json!({"connector_id": "personio", "name": "x", "settings": {"client-id": "a", "client-secret": "b"}, "interval_minutes": 1}),
            "between 5",
        ),
        (
            json!({"connector_id": "personio", "name": "x", "settings": {"client-id": "a", "client-secret": "b"}, "max_run_minutes": 0}),
            "max_run_minutes must be between 1 and 1440",
        ),
        (
            json!({"connector_id": "personio", "name": "x", "settings": {"client-id": "a", "client-secret": "b"}, "max_pages": 0}),
            "max_pages must be between 1",
        ),
    ] {
        let r = s.call(&b, "POST", "/api/v1/integrations", Some(body)).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body.contains(needle), "{needle}: {}", r.body);
    }
    // The run limits are kept and shown.
    let r = s
        .call(&b, "POST", "/api/v1/integrations", Some(json!({"connector_id": "personio", "name": "x",
            "settings": {"client-id": "a", "client-secret": "b"}, "max_pages": 50, "max_records": 4000, "max_run_minutes": 15})))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let made = r.json();
    assert_eq!(
        (made["max_pages"].as_u64(), made["max_records"].as_u64(), made["max_run_minutes"].as_u64()),
        (Some(50), Some(4000), Some(15))
    );
}

#[tokio::test]
async fn preview_import_runs_users_and_revert_over_the_api() {
    let s = server().await;
    s.sandbox.hire(Hire {
        first_name: "<script>alert(1)</script>".into(),
        last_name: "Tables".into(),
        email: Some("bobby@acme.example".into()),
        ..Hire::default()
    });
    let b = s.sign_in().await;
    let id = s.integration(&b).await;

    let connectors = s.call(&b, "GET", "/api/v1/connectors", None).await.json();
    assert_eq!(connectors[0]["id"], "personio");
    assert!(
        connectors[0]["settings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["key"] == "client-secret" && x["kind"] == "secret")
    );

    let preview = s.call(&b, "POST", &format!("/api/v1/integrations/{id}/previews"), None).await.json();
    let created = preview["run"]["counts"]["created"].as_u64().unwrap();
    let preview_id = preview["run"]["id"].as_i64().unwrap();
    // The same preview in the background: the run to poll, at once.
    let started =
        s.call(&b, "POST", &format!("/api/v1/integrations/{id}/previews"), Some(json!({"background": true}))).await;
    assert_eq!(started.status, 202, "{}", started.body);
    let status_url = started.json()["status_url"].as_str().unwrap().to_string();
    let background = s.finished(&b, &status_url).await;
    assert_eq!(background["run"]["kind"], "preview", "{background}");
    assert_eq!(background["run"]["state"], "succeeded", "{background}");
    assert_eq!(background["run"]["counts"]["created"].as_u64(), Some(created));
    let unknown = s.call(&b, "POST", "/api/v1/integrations/999/previews", Some(json!({"background": true}))).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let import = s
        .call(&b, "POST", &format!("/api/v1/integrations/{id}/imports"), Some(json!({"from_preview": preview_id})))
        .await;
    assert_eq!(import.status, 202, "{}", import.body);
    let run_id = import.json()["run_id"].as_i64().unwrap();
    let again = s.call(&b, "POST", &format!("/api/v1/integrations/{id}/imports"), None).await;
    assert!(again.status == 409 || again.status == 202, "{}", again.body);
    let run = s.finished(&b, &format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(run["run"]["state"], "succeeded", "{run}");
    assert_eq!(run["run"]["counts"]["created"].as_u64(), Some(created));

    let page = s.call(&b, "GET", &format!("/api/v1/runs/{run_id}/changes?limit=10&offset=5"), None).await.json();
    assert_eq!(page["total"].as_u64(), Some(created));
    assert_eq!(page["changes"].as_array().unwrap().len(), 10);
    let filtered =
        s.call(&b, "GET", &format!("/api/v1/runs/{run_id}/changes?kind=create&search=TABLES"), None).await.json();
    assert_eq!(filtered["total"], 1, "{filtered}");
    let bad = s.call(&b, "GET", &format!("/api/v1/runs/{run_id}/changes?kind=bogus"), None).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let runs = s.call(&b, "GET", &format!("/api/v1/runs?integration={id}"), None).await.json();
    assert!(runs.as_array().unwrap().len() >= 2);

    let found = s.call(&b, "GET", "/api/v1/users?search=Tables", None).await;
    assert_eq!(found.header("content-type"), Some("application/json"));
    assert_eq!(found.header("x-content-type-options"), Some("nosniff"));
    let found = found.json();
    assert_eq!(found["total"], 1);
    assert_eq!(found["users"][0]["first_name"], "<script>alert(1)</script>", "stored and returned as data");
    let user_id = found["users"][0]["id"].as_i64().unwrap();
    let detail = s.call(&b, "GET", &format!("/api/v1/users/{user_id}"), None).await.json();
    assert_eq!(detail["history"][0]["run_id"].as_i64(), Some(run_id));
    let gzipped =
        request("GET", &s.url("/api/v1/users?limit=500"), &[("Cookie", &b.cookie), ("Accept-Encoding", "gzip")], "")
            .await;
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"), "large responses are compressed");
    let with_manager = s.call(&b, "GET", "/api/v1/users?limit=500", None).await.json();
    let managed = with_manager["users"].as_array().unwrap().iter().find(|u| !u["manager_id"].is_null()).unwrap();
    let line = s.call(&b, "GET", &format!("/api/v1/users/{}", managed["id"]), None).await.json();
    assert!(!line["reporting_line"].as_array().unwrap().is_empty());

    let dry = s
        .call(&b, "POST", &format!("/api/v1/runs/{run_id}/revert"), Some(json!({"user_id": user_id, "dry_run": true})))
        .await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    assert_eq!(dry.json()["changes"][0]["fields"][0]["after"], "inactive");
    let missing = s.call(&b, "GET", "/api/v1/runs/99999", None).await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("does not exist"));

    let metrics = request("GET", &s.url("/metrics"), &[], "").await;
    assert_eq!(metrics.status, 200);
    let line = |needle: &str| metrics.body.lines().find(|l| l.starts_with(needle)).map(str::to_string);
    assert_eq!(
        line("hrsync_runs{kind=\"import\",state=\"succeeded\"}").as_deref(),
        Some("hrsync_runs{kind=\"import\",state=\"succeeded\"} 1"),
        "{}",
        metrics.body
    );
    let changed = line("hrsync_people_changed{kind=\"import\"}").unwrap();
    assert!(changed.ends_with(&format!(" {created}")), "{changed}");
    assert!(metrics.body.contains("hrsync_http_requests_total{method=\"GET\",status=\"404\"} 1"), "{}", metrics.body);
    assert!(line("hrsync_run_seconds{kind=\"import\"}").is_some());
}

#[tokio::test]
async fn set_password_links_are_for_their_recipients_when_smtp_delivers_them() {
    let s = server_with(crate::server::Options { smtp: true, ..Default::default() }).await;
    let b = s.sign_in().await;
    let id = s.integration(&b).await;
    let import = s.call(&b, "POST", &format!("/api/v1/integrations/{id}/previews"), None).await;
    assert_eq!(import.status, 200, "{}", import.body);
    let run = import.json()["run"]["id"].as_i64().unwrap();
    let path = format!("/api/v1/integrations/{id}/imports");
    let run_id = s.call(&b, "POST", &path, Some(json!({"from_preview": run}))).await.json()["run_id"].as_i64().unwrap();
    s.finished(&b, &format!("/api/v1/runs/{run_id}")).await;
    let users = s.call(&b, "GET", "/api/v1/users?limit=500", None).await.json();
    let active = users["users"].as_array().unwrap().iter().find(|u| u["status"] == "active").unwrap()["id"].clone();
    let invited = s.call(&b, "POST", "/api/v1/users/invitations", Some(json!({"user_ids": [active]}))).await;
    assert_eq!(invited.json()["invited"], json!([active]), "{}", invited.body);

    // Queued, not yet sent: still not readable by admins.
    let mails = s.call(&b, "GET", "/api/v1/mails", None).await.json();
    let mail = &mails["mails"][0];
    assert_eq!((mail["kind"].as_str(), mail["state"].as_str()), (Some("invitation"), Some("queued")), "{mail}");
    let text = mail["text"].as_str().unwrap();
    assert!(text.contains("/set-password/(hidden: for the recipient only)"), "{text}");
    assert!(mail["html"].is_null(), "{mail}");
    let page = request("GET", &s.url("/emails"), &[("Cookie", &b.cookie)], "").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("(hidden: for the recipient only)"), "{}", page.body);
    let links = page.body.match_indices("/set-password/").map(|(at, _)| &page.body[at..]);
    assert!(links.into_iter().all(|l| l.starts_with("/set-password/(hidden")), "no link on the page");
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_endpoints() {
    let s = server().await;
    let r = request("GET", &s.url("/api/v1/openapi.json"), &[], "").await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let path = path
                .replace("{id}", "1")
                .replace("{username}", "1")
                .replace("{slug}", "1")
                .replace("{field}", "job-title")
                .replace("{hook}", "unknown");
            documented.push((method.to_uppercase(), path));
        }
    }
    let mut expected: Vec<(String, String)> = PROTECTED.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    expected.push(("POST".into(), "/api/v1/session".into()));
    expected.push(("GET".into(), "/readyz".into()));
    expected.push(("POST".into(), "/hooks/unknown".into()));
    documented.sort();
    expected.sort();
    assert_eq!(documented, expected);
    // Each documented protected operation really refuses strangers.
    let public =
        |m: &str, p: &str| (m == "POST" && p == "/api/v1/session") || p == "/readyz" || p.starts_with("/hooks/");
    for (method, path) in documented.iter().filter(|(m, p)| !public(m, p)) {
        assert_eq!(request(method, &s.url(path), &[], "").await.status, 401, "{method} {path}");
    }
    // A delivery to an endpoint nobody subscribed is refused, as one without the token would be.
    assert_eq!(request("POST", &s.url("/hooks/unknown"), &[], "{}").await.status, 404);
}

/// A URL-encoded form body.
fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!("{k}={}", v.replace('%', "%25").replace('&', "%26").replace('+', "%2B").replace(' ', "+"))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The CSRF token a page embeds in its forms.
fn csrf_of(html: &str) -> String {
    let needle = "name=\"csrf\" value=\"";
    let at = html.find(needle).expect("a form with a CSRF token") + needle.len();
    html[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn pages_send_strangers_to_sign_in_and_refuse_forms_without_the_csrf_token() {
    let s = server().await;
    for path in [
        "/integrations",
        "/integrations/new?connector=personio",
        "/integrations/1/configuration",
        "/integrations/1/preview",
        "/integrations/1/history",
        "/runs/1",
        "/directory",
        "/directory/1",
        "/emails",
    ] {
        let r = request("GET", &s.url(path), &[], "").await;
        assert_eq!(r.status, 303, "{path}");
        assert!(r.header("location").unwrap().starts_with("/login?next=%2F"), "{path}: {:?}", r.header("location"));
    }
    for path in [
        "/integrations",
        "/integrations/1/configuration",
        "/integrations/1/preview",
        "/integrations/1/import",
        "/runs/1/revert",
        "/logout",
        "/directory/invitations",
    ] {
        let r = request("POST", &s.url(path), &[("Content-Type", "application/x-www-form-urlencoded")], "csrf=x").await;
        assert_eq!((r.status, r.header("location")), (303, Some("/login")), "POST {path}");
    }

    // Signing in through the page needs the form's own token (login CSRF).
    let page = request("GET", &s.url("/login"), &[], "").await;
    // The pages have an icon, served to anyone (the sign-in page shows it).
    assert!(page.body.contains(r#"<link rel="icon" type="image/svg+xml" href="/static/favicon.svg">"#));
    for icon in ["/static/favicon.svg", "/favicon.ico"] {
        let r = request("GET", &s.url(icon), &[], "").await;
        assert_eq!((r.status, r.header("content-type")), (200, Some("image/svg+xml")), "{icon}");
        assert!(r.body.starts_with("<svg"), "{icon}");
    }
    let login_cookie = page.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    let token = csrf_of(&page.body);
    let body = form(&[("csrf", &token), ("username", "admin"), ("password", PASSWORD), ("next", "//evil.example/")]);
    let forged =
        request("POST", &s.url("/login"), &[("Content-Type", "application/x-www-form-urlencoded")], &body).await;
    assert_eq!(forged.status, 403, "no login cookie: {}", forged.body);
    let ok = request(
        "POST",
        &s.url("/login"),
        &[("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", &login_cookie)],
        &body,
    )
    .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(ok.header("location"), Some("/integrations"), "never redirected off-site");
    let session =
        ok.headers.iter().find(|(k, v)| k == "set-cookie" && v.starts_with("hrsync_session=")).unwrap().1.clone();
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"));
    let cookie = session.split(';').next().unwrap().to_string();

    // Signed in, a form without the right token changes nothing.
    let b = s.sign_in().await;
    let id = s.integration(&b).await;
    let before = s.call(&b, "GET", &format!("/api/v1/integrations/{id}"), None).await.body;
    let runs_before = s.call(&b, "GET", "/api/v1/runs", None).await.json().as_array().unwrap().len();
    for csrf in ["", "wrong"] {
        let headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", cookie.as_str())];
        let save = form(&[("csrf", csrf), ("name", "Renamed"), ("setting.client-id", "x"), ("action", "save")]);
        let r = request("POST", &s.url(&format!("/integrations/{id}/configuration")), &headers, &save).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body.contains("did not come from this site"), "{}", r.body);
        let r =
            request("POST", &s.url(&format!("/integrations/{id}/preview")), &headers, &form(&[("csrf", csrf)])).await;
        assert_eq!(r.status, 403);
        let r =
            request("POST", &s.url(&format!("/integrations/{id}/import")), &headers, &form(&[("csrf", csrf)])).await;
        assert_eq!(r.status, 403);
    }
    assert_eq!(s.call(&b, "GET", &format!("/api/v1/integrations/{id}"), None).await.body, before);
    assert_eq!(s.call(&b, "GET", "/api/v1/runs", None).await.json().as_array().unwrap().len(), runs_before);

    // With the page's token, the same form saves and starts a preview.
    let config = request("GET", &s.url(&format!("/integrations/{id}/configuration")), &[("Cookie", &cookie)], "").await;
    assert_eq!(config.status, 200);
    assert!(!config.body.contains(DEMO_CLIENT_SECRET), "secrets are never rendered");
    assert!(config.body.contains("data-stored=\"client-secret\""), "but shown as stored");
    let save = form(&[
        ("csrf", &csrf_of(&config.body)),
        ("name", "Renamed"),
        ("setting.client-id", DEMO_CLIENT_ID),
        ("setting.client-secret", ""),
        ("setting.api-base-url", &s.sandbox_url),
        ("grants", &s.sandbox_url),
        ("interval_minutes", "120"),
        ("action", "save"),
    ]);
    let headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", cookie.as_str())];
    let r = request("POST", &s.url(&format!("/integrations/{id}/configuration")), &headers, &save).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.header("location").unwrap().starts_with(&format!("/integrations/{id}/preview?run=")));
    let saved = s.call(&b, "GET", &format!("/api/v1/integrations/{id}"), None).await.json();
    assert_eq!(saved["name"], "Renamed");
    assert_eq!(saved["settings"]["client-secret"], json!({"stored": true}), "an empty secret keeps the stored one");

    // Invalid settings: the form again, with what to fix, and nothing saved.
    let config = request("GET", &s.url(&format!("/integrations/{id}/configuration")), &[("Cookie", &cookie)], "").await;
    let bad = form(&[
        ("csrf", &csrf_of(&config.body)),
        ("name", "Broken"),
        ("setting.client-id", DEMO_CLIENT_ID),
        ("grants", "ftp://nope"),
        ("interval_minutes", "1"),
        ("action", "save"),
    ]);
    let r = request("POST", &s.url(&format!("/integrations/{id}/configuration")), &headers, &bad).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("id=\"form-error\""), "{}", r.body);
    assert_eq!(s.call(&b, "GET", &format!("/api/v1/integrations/{id}"), None).await.json()["name"], "Renamed");

    // Testing a mistyped secret reports it and changes nothing: the
    // integration keeps working with the stored one.
    let config = request("GET", &s.url(&format!("/integrations/{id}/configuration")), &[("Cookie", &cookie)], "").await;
    let mistyped = form(&[
        ("csrf", &csrf_of(&config.body)),
        ("name", "Mistyped"),
        ("setting.client-id", DEMO_CLIENT_ID),
        ("setting.client-secret", "mistyped-secret"),
        ("setting.api-base-url", &s.sandbox_url),
        ("grants", &s.sandbox_url),
        ("interval_minutes", "120"),
        ("action", "test"),
    ]);
    let r = request("POST", &s.url(&format!("/integrations/{id}/configuration")), &headers, &mistyped).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("Nothing was saved"), "{}", r.body);
    assert!(r.body.contains("data-ok=\"false\""), "the failed test is shown");
    assert!(!r.body.contains("mistyped-secret"), "secrets are never rendered");
    assert_eq!(s.call(&b, "GET", &format!("/api/v1/integrations/{id}"), None).await.json()["name"], "Renamed");
    let check = s.call(&b, "POST", &format!("/api/v1/integrations/{id}/check"), None).await;
    assert_eq!(check.status, 200, "the stored credentials still work: {}", check.body);

    // Every connector gets its form from its own schema: the CSV export's.
    let form = request("GET", &s.url("/integrations/new?connector=csv-export"), &[("Cookie", &cookie)], "").await;
    assert_eq!(form.status, 200);
    for field in ["id=\"setting-url\"", "id=\"setting-id-column\"", "list=\"setting-email-column-options\""] {
        assert!(form.body.contains(field), "{field}");
    }
    assert!(form.body.contains("id=\"setting-password\" type=\"password\""), "secrets are password fields");
    assert!(form.body.contains("Left empty, the address entered above is allowed"));
}

#[tokio::test]
async fn hostile_names_render_as_text_on_every_page() {
    let s = server().await;
    s.sandbox.hire(Hire {
        first_name: "<script>alert(1)</script>".into(),
        last_name: "<img src=x onerror=alert(2)>".into(),
        email: Some("hostile@acme.example".into()),
        position: Some("\"><svg onload=alert(3)>".into()),
        ..Hire::default()
    });
    let b = s.sign_in().await;
    let id = s.integration(&b).await;
    let import = s.call(&b, "POST", &format!("/api/v1/integrations/{id}/imports"), None).await.json();
    let run = import["run_id"].as_i64().unwrap();
    s.finished(&b, &format!("/api/v1/runs/{run}")).await;
    let users = s.call(&b, "GET", "/api/v1/users?search=hostile@", None).await.json();
    let user = users["users"][0]["id"].as_i64().expect("the hostile person was imported");
    for path in [
        "/directory?q=hostile".to_string(),
        format!("/directory/{user}"),
        format!("/runs/{run}?q=script"),
        format!("/integrations/{id}/history"),
    ] {
        let r = request("GET", &s.url(&path), &[("Cookie", &b.cookie)], "").await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.header("content-security-policy").unwrap().contains("script-src 'self'"), "{path}");
        for raw in ["<script>alert", "<img src=x", "<svg onload"] {
            assert!(!r.body.contains(raw), "{path} contains raw `{raw}`");
        }
        if !path.contains("history") {
            assert!(r.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{path} shows the name as text");
        }
    }
}

#[tokio::test]
async fn a_failing_connector_shows_in_the_metrics_by_kind() {
    let s = server().await;
    let b = s.sign_in().await;
    let id = s.integration(&b).await;
    let put = s
        .call(&b, "PUT", &format!("/api/v1/integrations/{id}"), Some(json!({
            "name": "Acme", "settings": {"api-base-url": s.sandbox_url, "client-id": DEMO_CLIENT_ID, "client-secret": "wrong"},
            "grants": [s.sandbox_url]
        })))
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    let check = s.call(&b, "POST", &format!("/api/v1/integrations/{id}/check"), None).await;
    assert_eq!(check.status, 502, "{}", check.body);
    assert!(check.body.contains("credentials rejected"), "{}", check.body);
    let metrics = request("GET", &s.url("/metrics"), &[], "").await.body;
    assert!(metrics.contains("hrsync_connector_errors{kind=\"credentials-rejected\"} 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_import_holds_the_integration_and_can_be_cancelled_over_the_api() {
    let s = server().await;
    let b = s.sign_in().await;
    let id = s.integration(&b).await;
    s.sandbox.inject(std::iter::repeat_n(hrsync::sandbox::Fault::Slow { millis: 500 }, 20));
    let started = s.call(&b, "POST", &format!("/api/v1/integrations/{id}/imports"), None).await;
    assert_eq!(started.status, 202, "{}", started.body);
    let run = started.json()["run_id"].as_i64().unwrap();

    let preview = s.call(&b, "POST", &format!("/api/v1/integrations/{id}/previews"), None).await;
    assert_eq!(preview.status, 409, "{}", preview.body);
    let message = preview.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains(&format!("is busy: run {run} (manual import by admin")), "{message}");

    let cancel = s.call(&b, "POST", &format!("/api/v1/runs/{run}/cancel"), None).await;
    assert_eq!(cancel.status, 202, "{}", cancel.body);
    assert_eq!(cancel.json()["run"]["cancel_requested_by"], "admin");
    let ended = s.finished(&b, &format!("/api/v1/runs/{run}")).await;
    assert_eq!(ended["run"]["state"], "cancelled", "{ended}");
    let again = s.call(&b, "POST", &format!("/api/v1/runs/{run}/cancel"), None).await;
    assert_eq!(again.status, 409, "{}", again.body);
    let users = s.call(&b, "GET", "/api/v1/users", None).await.json();
    assert_eq!(users["total"], 0, "nothing applied");
}

/// The text a person reads on a page: tags, scripts and styles removed.
fn visible_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        let tail = &rest[open..];
        let end = ["<script", "<style"]
            .iter()
            .find(|t| tail.starts_with(*t))
            .and_then(|t| tail.find(&format!("</{}>", &t[1..])).map(|at| at + t.len() + 2))
            .or_else(|| tail.find('>').map(|at| at + 1))
            .unwrap_or(tail.len());
        text.push(' ');
        rest = &tail[end..];
    }
    text.push_str(rest);
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_speak_in_field_labels_and_never_name_cli_flags() {
    use hrsync::model::Field;
    use hrsync::sandbox::{Edit, Status};
    let s = server().await;
    let b = s.sign_in().await;
    let id = s.integration(&b).await;
    let import = s.call(&b, "POST", &format!("/api/v1/integrations/{id}/imports"), None).await.json();
    let import = import["run_id"].as_i64().unwrap();
    s.finished(&b, &format!("/api/v1/runs/{import}")).await;
    // Updates, a leaver and a new manager, so every kind of field change shows.
    let people = s.sandbox.employees();
    let active: Vec<_> = people.iter().filter(|e| e.status == Status::Active).collect();
    let edit = |e: Edit| Edit { position: Some("Principal Engineer".into()), department: Some("Platform".into()), ..e };
    s.sandbox.apply(active[1].id, edit(Edit { supervisor_id: Some(Some(active[3].id)), ..Edit::default() })).unwrap();
    s.sandbox.apply(active[2].id, Edit { status: Some(Status::Inactive), ..Edit::default() }).unwrap();
    let second = s.call(&b, "POST", &format!("/api/v1/integrations/{id}/imports"), None).await.json();
    let second = second["run_id"].as_i64().unwrap();
    let done = s.finished(&b, &format!("/api/v1/runs/{second}")).await;
    assert_eq!(done["run"]["state"], "succeeded", "{done}");
    let preview = s.call(&b, "POST", &format!("/api/v1/integrations/{id}/previews"), None).await.json();
    let preview = preview["run"]["id"].as_i64().expect("a preview");
    let changed = s.call(&b, "GET", &format!("/api/v1/runs/{second}/changes"), None).await.json();
    let user = changed["changes"][0]["user_id"].as_i64().expect("a changed user");
    // A kept value and a person added by hand, so their pages show too.
    let kept = s.call(&b, "PUT", &format!("/api/v1/users/{user}/overrides/job-title"), None).await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    let added = serde_json::json!({"email": "hand@example.com", "first-name": "Hand", "last-name": "Made"});
    let added = s.call(&b, "POST", "/api/v1/users", Some(added)).await.json();
    let added = added["user"]["id"].as_i64().expect("a user added by hand");

    let keys: Vec<String> = Field::STANDARD.iter().map(|f| f.name().into_owned()).filter(|n| n.contains('-')).collect();
    for path in [
        "/integrations".to_string(),
        format!("/integrations/{id}/configuration"),
        format!("/integrations/{id}/preview"),
        format!("/integrations/{id}/history?previews=on&unapplied=on&unchanged=on"),
        format!("/runs/{import}"),
        format!("/runs/{second}"),
        format!("/runs/{preview}"),
        "/directory".to_string(),
        format!("/directory/{user}"),
        format!("/directory/{added}"),
        format!("/directory/{added}/edit"),
        "/directory/new".to_string(),
        "/directory/upload".to_string(),
        "/directory/overrides".to_string(),
        "/emails".to_string(),
        "/account".to_string(),
        "/accounts".to_string(),
        "/audit".to_string(),
    ] {
        let r = request("GET", &s.url(&path), &[("Cookie", &b.cookie)], "").await;
        assert_eq!(r.status, 200, "{path}");
        let text = visible_text(&r.body);
        for key in &keys {
            assert!(!text.contains(key.as_str()), "{path} shows the field key `{key}`");
        }
        let flag =
            text.match_indices("--").find(|(at, _)| text[at + 2..].starts_with(|c: char| c.is_ascii_lowercase()));
        assert!(
            flag.is_none(),
            "{path} names a command-line flag: …{}…",
            &text[flag.unwrap().0..][..40.min(text.len() - flag.unwrap().0)]
        );
    }
    // The run page of the second import names the fields by label.
    let r = request("GET", &s.url(&format!("/runs/{second}")), &[("Cookie", &b.cookie)], "").await;
    assert!(visible_text(&r.body).contains("Job title"), "labels, not keys");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preview_older_than_an_applied_import_says_so_and_offers_no_import() {
    let s = server().await;
    let b = s.sign_in().await;
    let id = s.integration(&b).await;
    let preview = s.call(&b, "POST", &format!("/api/v1/integrations/{id}/previews"), None).await.json();
    let preview = preview["run"]["id"].as_i64().expect("a preview");
    let page = |run: i64| {
        let url = s.url(&format!("/integrations/{id}/preview?run={run}"));
        let cookie = b.cookie.clone();
        async move { request("GET", &url, &[("Cookie", &cookie)], "").await.body }
    };
    let fresh = page(preview).await;
    assert!(
        fresh.contains("id=\"import-now\"") && !fresh.contains("stale-preview"),
        "a fresh preview offers the import"
    );

    let import = s.call(&b, "POST", &format!("/api/v1/integrations/{id}/imports"), None).await.json();
    let import = import["run_id"].as_i64().unwrap();
    s.finished(&b, &format!("/api/v1/runs/{import}")).await;
    let stale = page(preview).await;
    assert!(stale.contains("id=\"stale-preview\""), "{stale}");
    assert!(stale.contains(&format!("href=\"/runs/{import}\"")), "names the run that applied changes");
    assert!(!stale.contains("id=\"import-now\""), "no import of a stale preview");
    assert!(stale.contains("Refresh preview"));
}

/// A form post as the signed-in browser.
async fn post_form(
    s: &crate::server::Server,
    b: &crate::server::Browser,
    path: &str,
    pairs: &[(&str, &str)],
) -> crate::common::Reply {
    let mut all = vec![("csrf", b.csrf.as_str())];
    all.extend_from_slice(pairs);
    let headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", b.cookie.as_str())];
    request("POST", &s.url(path), &headers, &form(&all)).await
}

async fn page(s: &crate::server::Server, b: &crate::server::Browser, path: &str) -> String {
    let r = request("GET", &s.url(path), &[("Cookie", &b.cookie)], "").await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.body
}

#[tokio::test(flavor = "multi_thread")]
async fn the_directory_filters_and_asks_before_emailing_with_the_count() {
    let s = server().await;
    let b = s.sign_in().await;
    let id = s.integration(&b).await;
    let import = s.call(&b, "POST", &format!("/api/v1/integrations/{id}/imports"), None).await.json();
    s.finished(&b, &format!("/api/v1/runs/{}", import["run_id"])).await;
    let (server, browser) = (&s, &b);
    let users = move |query: &str| {
        let path = format!("/api/v1/users?limit=500&{query}");
        async move { server.call(browser, "GET", &path, None).await.json() }
    };
    let everyone = users("").await;
    let list = everyone["users"].as_array().unwrap();
    let active = users("status=active&informed=false").await["total"].as_u64().unwrap();
    assert!(active > 0 && active < list.len() as u64, "some people are not active: {active} of {}", list.len());
    let department = list.iter().find_map(|u| u["department"].as_str()).expect("a department").to_string();
    let in_department = users(&format!("department={}", department.replace(' ', "+"))).await;
    assert!(in_department["users"].as_array().unwrap().iter().all(|u| u["department"] == department.as_str()));
    let manager = list.iter().find_map(|u| u["manager_id"].as_i64()).expect("someone with a manager");
    let reports = users(&format!("manager={manager}")).await;
    assert!(reports["total"].as_u64().unwrap() >= 1);
    assert!(reports["users"].as_array().unwrap().iter().all(|u| u["manager_id"] == manager));
    assert_eq!(s.call(&b, "GET", "/api/v1/users?status=gone", None).await.status, 400, "an unknown status is refused");

    // The page narrows the same way and offers everyone not yet informed.
    let body = page(&s, &b, &format!("/directory?department={}", department.replace(' ', "+"))).await;
    let matched = in_department["total"].as_u64().unwrap();
    let says = if matched == 1 { "1 person matches".to_string() } else { format!("{matched} people match") };
    assert!(visible_text(&body).contains(&says), "{body}");
    assert!(body.contains("id=\"invite-uninformed\""), "{body}");
    let body = page(&s, &b, "/directory").await;
    assert!(body.contains(&format!("Email everyone not yet informed ({active})…")), "{body}");

    // Nothing picked: a friendly word, no email.
    let r = post_form(&s, &b, "/directory/invitations", &[("back", "/directory"), ("scope", "picked")]).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/directory?none=1")));
    assert!(page(&s, &b, "/directory?none=1").await.contains("Nobody was picked, so no email was sent."));
    // Everyone not yet informed: first the count, then, confirmed, the emails.
    let r = post_form(&s, &b, "/directory/invitations", &[("back", "/directory"), ("scope", "uninformed")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let people = if active == 1 { "1 person".to_string() } else { format!("{active} people") };
    assert!(r.body.contains(&format!("Send a password email to {people}?")), "{}", r.body);
    assert!(s.call(&b, "GET", "/api/v1/mails", None).await.json()["mails"].as_array().unwrap().is_empty(), "not yet");
    let ids: Vec<String> = users("status=active&informed=false").await["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].to_string())
        .collect();
    let mut confirm: Vec<(&str, &str)> = vec![("back", "/directory"), ("confirm", "yes")];
    confirm.extend(ids.iter().map(|id| ("user", id.as_str())));
    let r = post_form(&s, &b, "/directory/invitations", &confirm).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some(format!("/directory?sent={active}&picked={active}").as_str()));
    assert_eq!(users("informed=false&status=active").await["total"], 0, "everyone active is informed now");
    assert!(!page(&s, &b, "/directory").await.contains("id=\"invite-uninformed\""), "nobody left to inform");
    // Someone inactive, picked by hand, is skipped and the page says so.
    let inactive = users("status=inactive").await["users"][0]["id"].to_string();
    let r = post_form(&s, &b, "/directory/invitations", &[("back", "/directory"), ("user", &inactive)]).await;
    assert!(r.body.contains("1 person skipped: not active."), "{}", r.body);
    assert!(!r.body.contains("id=\"invite-confirm-send\""), "nothing to send");
}

#[tokio::test(flavor = "multi_thread")]
async fn password_emails_need_the_company_name_which_the_configuration_tab_asks_for_and_previews() {
    let s = server().await;
    let b = s.sign_in().await;
    let id = s.integration(&b).await;
    let path = format!("/integrations/{id}/configuration");
    let settings = |company: &'static str| {
        let sandbox = s.sandbox_url.clone();
        move |extra: &[(&'static str, &'static str)]| -> Vec<(String, String)> {
            let mut pairs: Vec<(String, String)> = [
                ("name", "Acme"),
                ("setting.client-id", DEMO_CLIENT_ID),
                ("interval_minutes", "120"),
                ("send_emails", "true"),
                ("company_name", company),
                ("action", "save"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            pairs.push(("setting.api-base-url".into(), sandbox.clone()));
            pairs.push(("grant".into(), sandbox.clone()));
            pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            pairs
        }
    };
    let post = |pairs: Vec<(String, String)>| {
        let path = path.clone();
        let b = &b;
        let s = &s;
        async move {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            post_form(s, b, &path, &pairs).await
        }
    };

    // No name yet: the email previews without one, and turning emails on is refused.
    let body = page(&s, &b, &path).await;
    assert!(body.contains("id=\"invite-preview\""), "{body}");
    assert!(body.contains("Your new account: choose a password"), "{body}");
    let r = post(settings("")(&[])).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("Enter it under “Company name”"), "{}", r.body);
    assert_eq!(s.call(&b, "GET", &format!("/api/v1/integrations/{id}"), None).await.json()["send_emails"], false);
    // The API says the same, and where to set the name.
    let api = s.call(&b, "GET", &format!("/api/v1/integrations/{id}"), None).await.json();
    let mut input = api.clone();
    input["send_emails"] = json!(true);
    input["settings"]["client-secret"] = json!("");
    let refused = s.call(&b, "PUT", &format!("/api/v1/integrations/{id}"), Some(input)).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("/api/v1/company"), "{}", refused.body);

    // With a name: saved, and the email greets people with it.
    let r = post(settings("Acme Robotics")(&[])).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.header("location").unwrap().contains("saved=1"), "{:?}", r.header("location"));
    let saved = s.call(&b, "GET", &format!("/api/v1/integrations/{id}"), None).await.json();
    assert_eq!(saved["send_emails"], true);
    let company = s.call(&b, "GET", "/api/v1/company", None).await.json();
    assert_eq!(company["name"], "Acme Robotics");
    let subject = company["invitation"]["subject"].as_str().unwrap();
    assert!(subject.contains("Acme Robotics") && !subject.to_lowercase().contains("your your"), "{subject}");
    let body = page(&s, &b, &path).await;
    assert!(body.contains("value=\"Acme Robotics\""), "the form shows the name");
    assert!(body.contains("welcome to Acme Robotics!"), "the preview uses it");
    assert!(page(&s, &b, r.header("location").unwrap()).await.contains("id=\"saved\""));
    let renamed = s.call(&b, "PUT", "/api/v1/company", Some(json!({"name": "  "}))).await;
    assert_eq!(renamed.status, 400, "a blank name is refused: {}", renamed.body);
    let audit = s.call(&b, "GET", "/api/v1/audit?action=company-named", None).await.json();
    assert!(audit.to_string().contains("Acme Robotics"), "{audit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drifted_import_names_who_changed_since_the_preview_and_offers_to_preview_again() {
    use hrsync::sandbox::{Edit, Status};
    let s = server().await;
    let b = s.sign_in().await;
    let id = s.integration(&b).await;
    let import = s.call(&b, "POST", &format!("/api/v1/integrations/{id}/imports"), None).await.json();
    s.finished(&b, &format!("/api/v1/runs/{}", import["run_id"])).await;
    let someone = s.sandbox.employees().into_iter().find(|e| e.status == Status::Active).unwrap();
    s.sandbox.apply(someone.id, Edit { position: Some("Head of Preview".into()), ..Edit::default() }).unwrap();
    let preview = s.call(&b, "POST", &format!("/api/v1/integrations/{id}/previews"), None).await.json();
    let preview = preview["run"]["id"].as_i64().expect("a preview");
    // The HR system moves on before the import.
    s.sandbox.apply(someone.id, Edit { position: Some("Head of Drift".into()), ..Edit::default() }).unwrap();
    let r = post_form(&s, &b, &format!("/integrations/{id}/import"), &[("from_preview", &preview.to_string())]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let run = r.header("location").unwrap().to_string();
    let done = s.finished(&b, &format!("/api/v1{run}")).await;
    assert_eq!(done["run"]["state"], "failed", "{done}");
    let body = page(&s, &b, &run).await;
    assert!(body.contains("id=\"drift\""), "{body}");
    let name = format!("{} {}", someone.first_name, someone.last_name);
    assert!(body.contains(&format!("data-drifted=\"{name}\"")), "names who drifted: {body}");
    assert!(visible_text(&body).contains("now different: Job title"), "{body}");
    assert!(body.contains("id=\"preview-again\""), "offers to preview again");
    let text = visible_text(&body);
    assert!(!text.match_indices("--").any(|(at, _)| text[at + 2..].starts_with(char::is_lowercase)), "no CLI flags");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_configuration_tab_turns_webhooks_on_and_off() {
    let s = server().await;
    let b = s.sign_in().await;
    let id = s.integration(&b).await;
    let path = format!("/integrations/{id}/configuration");
    let body = page(&s, &b, &path).await;
    assert!(body.contains("id=\"webhooks\"") && body.contains("Turn on “Run automatic imports” above first"), "{body}");
    let refused = s.call(&b, "PUT", &format!("/api/v1/integrations/{id}/webhook"), None).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("automatic imports"), "{}", refused.body);

    let mut integration = s.store.integration(hrsync::directory::IntegrationId(id)).unwrap();
    integration.config.auto_import = true;
    s.store.update_integration(integration.id, &integration.config).unwrap();
    let r = post_form(&s, &b, &format!("/integrations/{id}/webhooks"), &[("use", "on")]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some(format!("{path}?webhooks=on#webhooks").as_str()));
    let hooks = s.sandbox.webhooks();
    assert_eq!(hooks.len(), 1, "subscribed with the sandbox");
    assert!(hooks[0].url.starts_with(&format!("{}/hooks/", s.url(""))), "{}", hooks[0].url);
    let body = page(&s, &b, &format!("{path}?webhooks=on")).await;
    assert!(body.contains("id=\"webhooks-done\"") && body.contains("id=\"webhooks-off\""), "{body}");
    assert!(visible_text(&body).contains("last change received: none yet"));
    let api = s.call(&b, "GET", &format!("/api/v1/integrations/{id}/webhook"), None).await.json();
    assert!(api["description"].as_str().unwrap().contains("Personio webhook"), "{api}");
    assert_eq!(s.call(&b, "GET", &format!("/api/v1/integrations/{id}"), None).await.json()["interval_minutes"], 1440);

    let r = post_form(&s, &b, &format!("/integrations/{id}/webhooks"), &[("use", "off")]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(s.sandbox.webhooks().is_empty(), "unsubscribed at the source");
    assert_eq!(s.call(&b, "GET", &format!("/api/v1/integrations/{id}/webhook"), None).await.status, 404);
    let audit = s.call(&b, "GET", "/api/v1/audit", None).await.json().to_string();
    assert!(audit.contains("webhooks-on") && audit.contains("webhooks-off"), "{audit}");
}
