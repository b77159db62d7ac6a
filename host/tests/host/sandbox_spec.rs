//! The sandbox's responses validated against Personio's official v1 response
//! schemas, kept in `host/tests/fixtures/personio-v1-schemas.json` (converted
//! from the official OpenAPI document; its `$comment` says how), over a minimal
//! raw HTTP client so the checks do not go through the code under test.

use hrsync::sandbox::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Fault, Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::common as http;

/// The official v1 response schemas as JSON Schema.
const SCHEMAS: &str = include_str!("../fixtures/personio-v1-schemas.json");

/// A validator for `#/components/schemas/{pointer}`.
fn validator(pointer: &str) -> jsonschema::Validator {
    let schemas: Value = serde_json::from_str(SCHEMAS).expect("the fixture is JSON");
    let schema = json!({"$ref": format!("#/components/schemas/{pointer}"), "components": schemas["components"]});
    jsonschema::validator_for(&schema).expect("the fixture is a valid JSON Schema")
}

fn assert_valid(validator: &jsonschema::Validator, instance: &Value, what: &str) {
    let errors: Vec<String> =
        validator.iter_errors(instance).take(5).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{what} violates the spec: {errors:#?}");
}

async fn token(url: &str) -> String {
    let (_, body) = http::post_json(
        &format!("{url}/v1/auth"),
        &json!({"client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET}),
    )
    .await;
    body["data"]["token"].as_str().expect("a token").to_string()
}

#[tokio::test]
async fn employee_lists_single_employees_and_errors_match_the_official_spec() {
    // The spec's EmployeesResponse is allOf [Response (data: object), {data: array}],
    // which no document satisfies; the list-specific half is the real contract.
    let list_schema = validator("EmployeesResponse/allOf/1");
    let one_schema = validator("EmployeeResponse");
    let error_schema = validator("ErrorResponse");

    let sandbox = Sandbox::new(SandboxConfig::new(250, 11));
    let running = sandbox.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let token = token(&running.url).await;

    for offset in [0, 100, 200] {
        let (status, body) =
            http::get(&format!("{}/v1/company/employees?limit=100&offset={offset}", running.url), &token).await;
        assert_eq!(status, 200);
        assert_eq!(body["success"], json!(true));
        assert_valid(&list_schema, &body, &format!("page at offset {offset}"));
        assert_eq!(body["metadata"]["total_elements"], json!(250));
        assert_eq!(body["metadata"]["current_page"], json!(offset / 100));
        assert_eq!(body["metadata"]["total_pages"], json!(3));
        assert_eq!(body["data"].as_array().unwrap().len(), if offset == 200 { 50 } else { 100 });
    }
    let id = sandbox.employees()[3].id;
    let (status, body) = http::get(&format!("{}/v1/company/employees/{id}", running.url), &token).await;
    assert_eq!(status, 200);
    assert_valid(&one_schema, &body, "a single employee");

    let (status, body) = http::get(&format!("{}/v1/company/employees/999999", running.url), &token).await;
    assert_eq!(status, 404);
    assert_valid(&error_schema, &body, "404");
    assert!(body["error"]["message"].as_str().unwrap().ends_with(' '), "Personio's German 404 has a trailing space");

    let (status, body) = http::get(&format!("{}/v1/company/employees", running.url), "not-a-token").await;
    assert_eq!(status, 403);
    assert_valid(&error_schema, &body, "403");

    sandbox.inject([Fault::RateLimit { retry_after: None }]);
    let (status, body) = http::get(&format!("{}/v1/company/employees", running.url), &token).await;
    assert_eq!(status, 429);
    assert_valid(&error_schema, &body, "429");
    running.stop().await;
}

#[test]
fn the_validator_rejects_a_response_that_breaks_the_spec() {
    let list_schema = validator("EmployeesResponse/allOf/1");
    let broken = json!({
        "success": true,
        "metadata": {"total_elements": "many", "current_page": 0, "total_pages": 1},
        "offset": 0, "limit": 100,
        "data": [{"type": "Employee", "attributes": {"department": {"label": "Department",
            "value": {"type": "Department", "attributes": {"id": "x", "name": 5}}}}}]
    });
    let errors = list_schema.iter_errors(&broken).count();
    assert!(errors >= 2, "total_elements and the department's id and name are wrong, got {errors} errors");
}

#[tokio::test]
async fn projection_and_whitelists_leave_attributes_absent_not_null() {
    let sandbox = Sandbox::new(SandboxConfig::new(20, 2));
    let running = sandbox.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let token = token(&running.url).await;
    let url = format!("{}/v1/company/employees?attributes[]=first_name&attributes[]=email", running.url);
    let (_, body) = http::get(&url, &token).await;
    let keys: Vec<&String> = body["data"][0]["attributes"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["email", "first_name", "id"]);

    let (_, auth) = http::post_json(
        &format!("{}/v1/auth", running.url),
        &json!({"client_id": "sandbox-limited", "client_secret": "sandbox-limited-secret"}),
    )
    .await;
    let limited = auth["data"]["token"].as_str().unwrap();
    let (_, body) = http::get(&format!("{}/v1/company/employees", running.url), limited).await;
    let attributes = body["data"][0]["attributes"].as_object().unwrap();
    assert!(!attributes.contains_key("email") && !attributes.contains_key("supervisor"));
    assert_eq!(attributes["first_name"]["label"], json!("Vorname"), "the limited tenant speaks German");
    assert_eq!(body["limit"], json!(50), "the default page size is 50");
    running.stop().await;
}

#[tokio::test]
async fn auth_accepts_query_json_and_form_and_rejects_wrong_credentials() {
    let sandbox = Sandbox::new(SandboxConfig::new(5, 1));
    let running = sandbox.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("{}/v1/auth", running.url);
    let (status, body) =
        http::post_json(&url, &json!({"client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET})).await;
    assert_eq!((status, body["data"]["expires_in"].clone()), (200, json!(86400)));
    let query = format!("{url}?client_id={DEMO_CLIENT_ID}&client_secret={DEMO_CLIENT_SECRET}");
    assert_eq!(http::request("POST", &query, &[], "").await.status, 200);
    let form = format!("client_id={DEMO_CLIENT_ID}&client_secret={DEMO_CLIENT_SECRET}");
    let header = [("Content-Type", "application/x-www-form-urlencoded")];
    assert_eq!(http::request("POST", &url, &header, &form).await.status, 200);
    let (status, body) = http::post_json(&url, &json!({"client_id": DEMO_CLIENT_ID, "client_secret": "nope"})).await;
    assert_eq!(status, 401);
    assert_eq!(body, json!({"success": false, "error": {"code": 0, "message": "Wrong credentials"}}));
    running.stop().await;
}

/// A chunked body, as a client that sends no Content-Length would.
async fn post_chunked(url: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let request = format!(
        "POST /{path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    reply.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap()
}

#[tokio::test]
async fn strict_mode_refuses_chunked_bodies_as_strict_servers_do() {
    let sandbox = Sandbox::new(SandboxConfig::new(5, 1));
    let running = sandbox.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("{}/v1/auth", running.url);
    let form = format!("client_id={DEMO_CLIENT_ID}&client_secret={DEMO_CLIENT_SECRET}");
    assert_eq!(post_chunked(&url, &form).await, 411, "strict by default");
    sandbox.set_strict_bodies(false);
    assert_eq!(post_chunked(&url, &form).await, 200);
    running.stop().await;
}
