//! Personio's v2 Person & Employment API over the same company the v1
//! routes serve: `/v2/auth/token` and `/revoke` (form-encoded OAuth2 client
//! credentials, OAuth2 error bodies), `/v2/persons` and `/v2/persons/{id}`,
//! `/v2/persons/{id}/employments`, `/v2/org-units` — cursor pages of at most
//! 50 linked by `_meta.links.next`, every field subject to the credential's
//! whitelist, `application/problem+json` errors, and the quirks the notes
//! list (lower-case enums and custom attribute types, relative links, a
//! `next` that repeats its page, missing labels).

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxumState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value, json};

use super::company::{Email, Employee, Status, Unit};
use super::{Credential, Fault, Sandbox, State, Token};

/// Personio's documented page size limits for v2 lists.
pub const MAX_LIMIT: usize = 50;
const DEFAULT_LIMIT: usize = 10;
/// `POST /v2/auth/token`: 150 a minute, then one a second for 60 s.
const TOKENS_PER_MINUTE: u32 = 150;
const TOKEN_PENALTY: Duration = Duration::from_secs(60);
/// What the v2 token grants.
const SCOPES: &str = "personio:persons:read personio:webhooks:read personio:webhooks:write";

pub(super) fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/v2/auth/token", post(token))
        .route("/v2/auth/revoke", post(revoke))
        .route("/v2/persons", get(persons))
        .route("/v2/persons/{id}", get(person))
        .route("/v2/persons/{id}/employments", get(employments))
        .route("/v2/org-units", get(org_units))
        .route("/v2/org-units/{id}", get(org_unit))
}

/// `application/problem+json`, as Personio's v2 resources answer errors.
pub(super) fn problem(status: StatusCode, title: &str, detail: &str, kind: &str) -> Response {
    let body = json!({
        "personio_trace_id": format!("{:032x}", rand::random::<u128>()),
        "timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "errors": [{
            "title": title,
            "detail": detail,
            "type": format!("https://developer.personio.de/reference/errors#{kind}"),
            "_meta": {},
        }],
    });
    (status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
}

fn bad_request(detail: &str) -> Response {
    problem(StatusCode::BAD_REQUEST, "Bad request", detail, "common.bad_request")
}

fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "Resource not found",
        "There is no resource for the specified id.",
        "common.resource_not_found",
    )
}

fn too_many(retry_after: Option<u32>) -> Response {
    let mut r = problem(
        StatusCode::TOO_MANY_REQUESTS,
        "Too Many Requests",
        "The rate limit was exceeded. Please try again later.",
        "common.too_many_requests",
    );
    if let Some(secs) = retry_after {
        r.headers_mut().insert(header::RETRY_AFTER, secs.into());
    }
    r
}

/// The OAuth2 error body of the token endpoints.
fn oauth_error(error: &str, description: &str) -> Response {
    let body = json!({
        "timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "trace_id": format!("{:032x}", rand::random::<u128>()),
        "error": error,
        "error_description": description,
        "error_uri": format!("https://developer.personio.de/reference/errors#credentials.oauth2.{error}"),
    });
    (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
}

fn form_encoded(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
}

/// Whether a token request is admitted: 150 a minute; past that, one a
/// second for the next 60 s (the penalty starts at the first refusal).
fn admit_token(s: &mut super::State, now: Instant) -> bool {
    if let Some(penalty) = &mut s.token_penalty {
        if now < penalty.until {
            if now.duration_since(penalty.last) < Duration::from_secs(1) {
                return false;
            }
            penalty.last = now;
            return true;
        }
        s.token_penalty = None;
        s.token_window.clear();
    }
    if !super::server::admit(&mut s.token_window, Duration::from_secs(60), TOKENS_PER_MINUTE, now) {
        s.token_penalty = Some(super::TokenPenalty { until: now + TOKEN_PENALTY, last: now });
        return false;
    }
    s.token_window.push_back(now);
    true
}

/// `POST /v2/auth/token`: form-encoded `client_credentials` only.
async fn token(AxumState(sandbox): AxumState<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    if !form_encoded(&headers) {
        return oauth_error(
            "invalid_request",
            "The content type of the request must be application/x-www-form-urlencoded",
        );
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_default();
    let mut s = sandbox.lock();
    s.stats.auth += 1;
    let now = Instant::now();
    if !admit_token(&mut s, now) {
        s.stats.rate_limited += 1;
        return too_many(Some(1));
    }
    match field("grant_type") {
        "client_credentials" => {}
        "" => return oauth_error("invalid_request", "The request is missing the parameter grant_type"),
        other => return oauth_error("unsupported_grant_type", &format!("Grant type {other} is not supported")),
    }
    let (id, secret) = (field("client_id"), field("client_secret"));
    let Some(index) = s.config.credentials.iter().position(|c| c.client_id == id && c.client_secret == secret) else {
        return oauth_error(
            "unauthorized_client",
            "The credentials were not correct. Make sure you are providing the right client_id and client_secret.",
        );
    };
    let token = super::server::new_token();
    let ttl = s.config.token_ttl;
    s.tokens.insert(token.clone(), Token { credential: index, expires: now + ttl });
    let scope = if s.config.credentials[index].v2 { SCOPES } else { "employees:read" };
    axum::Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": ttl.as_secs(), "scope": scope}))
        .into_response()
}

/// `POST /v2/auth/revoke`: the token stops working; 200 with no body.
async fn revoke(AxumState(sandbox): AxumState<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    if !form_encoded(&headers) {
        return oauth_error(
            "invalid_request",
            "The content type of the request must be application/x-www-form-urlencoded",
        );
    }
    let token = url::form_urlencoded::parse(&body).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned());
    let Some(token) = token else {
        return oauth_error("invalid_request", "The request is missing the parameter token");
    };
    let mut s = sandbox.lock();
    s.stats.revoked += u64::from(s.tokens.remove(&token).is_some());
    StatusCode::OK.into_response()
}

/// The error answer a request gets instead of data (boxed: responses are large).
pub(super) type Refused = Box<Response>;

/// Who is asking: the credential of a valid bearer token with the persons scope.
pub(super) fn authorize(s: &mut State, headers: &HeaderMap) -> Result<Credential, Refused> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_start_matches("Bearer ").trim().to_string());
    let now = Instant::now();
    let credential = token.and_then(|t| s.tokens.get(&t).filter(|t| t.expires > now).map(|t| t.credential));
    let Some(credential) = credential else {
        s.stats.unauthorized += 1;
        return Err(Box::new(problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "The access token is missing, expired or revoked.",
            "common.unauthorized",
        )));
    };
    let credential = s.config.credentials[credential].clone();
    if !credential.v2 {
        return Err(Box::new(problem(
            StatusCode::FORBIDDEN,
            "Insufficient access scope",
            "Client scope insufficient to access resource",
            "common.forbidden",
        )));
    }
    Ok(credential)
}

/// A request to a v2 resource: authorized, counted, rate-limited, and
/// answering the next queued fault if there is one.
fn admit_request(s: &mut State, headers: &HeaderMap) -> Result<(Credential, Option<Fault>), Refused> {
    let fault = s.faults.pop_front();
    if fault.is_some() {
        s.stats.faults += 1;
    }
    if fault == Some(Fault::ExpireTokens) {
        s.tokens.clear();
    }
    let credential = authorize(s, headers)?;
    if let Some(wait) = s.rate_limited() {
        return Err(Box::new(too_many(Some(wait))));
    }
    let refused = match fault {
        Some(Fault::RateLimit { retry_after }) => {
            s.stats.rate_limited += 1;
            too_many(retry_after)
        }
        Some(Fault::Status { status }) => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            problem(
                code,
                code.canonical_reason().unwrap_or("Server error"),
                "There was a problem while processing this request. Please try again later.",
                "common.internal_server_error",
            )
        }
        Some(Fault::Malformed) => {
            let body = r#"{"_data":[{"id":"1","#;
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        other => return Ok((credential, other)),
    };
    Err(Box::new(refused))
}

async fn delayed(fault: &Option<Fault>, response: Response) -> Response {
    if let Some(Fault::Slow { millis }) = fault {
        tokio::time::sleep(Duration::from_millis(*millis)).await;
    }
    response
}

/// The base of absolute links: the address the client used.
fn base(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}")
}

/// A link as the tenant writes them: absolute, or (the older quirk) relative.
fn link(s: &State, headers: &HeaderMap, path: &str) -> String {
    if s.config.v2_relative_links { path.to_string() } else { format!("{}{path}", base(headers)) }
}

/// An enum value in Personio's upper case, or lower case for tenants with that quirk.
fn enum_value(s: &State, upper: &str) -> String {
    if s.config.v2_lowercase_enums { upper.to_ascii_lowercase() } else { upper.to_string() }
}

/// A list request: the filters, and where in the list the cursor points.
#[derive(Debug, Clone, PartialEq)]
struct Listing {
    limit: usize,
    offset: usize,
    /// `key=value` pairs of the filters, as given (they travel in the cursor).
    filters: Vec<(String, String)>,
}

/// Cursors carry the position and the filters, so a request with only
/// `cursor` continues the same listing (Personio's `next` links hold only it).
fn cursor_of(listing: &Listing, offset: usize) -> String {
    let mut text = url::form_urlencoded::Serializer::new(String::new());
    text.append_pair("offset", &offset.to_string());
    text.append_pair("limit", &listing.limit.to_string());
    for (k, v) in &listing.filters {
        text.append_pair(k, v);
    }
    format!("cur_{}", URL_SAFE_NO_PAD.encode(text.finish()))
}

fn parse_listing(raw: &str, filter_keys: &[&str]) -> Result<Listing, String> {
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes()).into_owned().collect();
    if let Some((_, cursor)) = pairs.iter().find(|(k, _)| k == "cursor") {
        let text = cursor
            .strip_prefix("cur_")
            .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or("Provided cursor is invalid.")?;
        let explicit_limit = pairs.iter().find(|(k, _)| k == "limit").cloned();
        pairs = url::form_urlencoded::parse(text.as_bytes()).into_owned().collect();
        if let Some(limit) = explicit_limit {
            pairs.retain(|(k, _)| k != "limit");
            pairs.push(limit);
        }
    }
    let mut listing = Listing { limit: DEFAULT_LIMIT, offset: 0, filters: Vec::new() };
    for (key, value) in pairs {
        match key.as_str() {
            "limit" => {
                let n: usize = value.parse().map_err(|_| "Provided request parameters are invalid.")?;
                if !(1..=MAX_LIMIT).contains(&n) {
                    return Err("Provided request parameters are invalid.".into());
                }
                listing.limit = n;
            }
            "offset" => listing.offset = value.parse().map_err(|_| "Provided cursor is invalid.")?,
            k if filter_keys.contains(&k) => listing.filters.push((key, value)),
            _ => {}
        }
    }
    Ok(listing)
}

/// One page of `items` and the `_meta` linking the next one.
fn page(
    s: &State,
    headers: &HeaderMap,
    path: &str,
    listing: &Listing,
    items: Vec<Value>,
    fault: &Option<Fault>,
) -> Value {
    let end = listing.offset + listing.limit;
    let mut links = Map::new();
    links.insert("self".into(), json!({"href": link(s, headers, path)}));
    let more = items.len() > end;
    let data: Vec<Value> = items.into_iter().skip(listing.offset).take(listing.limit).collect();
    if more {
        // The reported bug: a `next` that points to the page just served.
        let at = if *fault == Some(Fault::RepeatFirstPage) { listing.offset } else { end };
        let next = format!("{path}?cursor={}", cursor_of(listing, at));
        links.insert("next".into(), json!({"href": link(s, headers, &next)}));
    }
    json!({"_data": data, "_meta": {"links": links}})
}

fn filter<'a>(listing: &'a Listing, key: &str) -> Option<&'a str> {
    listing.filters.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn timestamp(unix: i64) -> String {
    DateTime::from_timestamp(unix, 0).expect("valid time").to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn parse_time(text: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp())
        .map_err(|_| format!("Provided filter encoding is invalid: `{text}` is not an RFC 3339 date-time."))
}

/// `status` of a person: derived from the latest employment.
fn person_status(e: &Employee) -> &'static str {
    if e.status == Status::Inactive { "INACTIVE" } else { "ACTIVE" }
}

/// Does `e` pass the person filters of `listing`?
fn matches(e: &Employee, listing: &Listing) -> Result<bool, String> {
    for (key, value) in &listing.filters {
        let ok = match key.as_str() {
            "id" => value.split(',').any(|id| id.trim() == e.id.to_string()),
            "email" => {
                value.split(',').any(|m| matches!(&e.email, Email::Address(a) if a.eq_ignore_ascii_case(m.trim())))
            }
            "first_name" => e.first_name == *value,
            "last_name" => e.last_name == *value,
            "status" => match value.to_ascii_uppercase().as_str() {
                s @ ("ACTIVE" | "INACTIVE") => person_status(e) == s,
                _ => return Err("Provided request parameters are invalid.".into()),
            },
            "updated_at.gt" => e.last_modified > parse_time(value)?,
            "updated_at.lt" => e.last_modified < parse_time(value)?,
            "created_at.gt" => e.created > parse_time(value)?,
            "created_at.lt" => e.created < parse_time(value)?,
            _ => true,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

const PERSON_FILTERS: &[&str] = &[
    "id",
    "email",
    "first_name",
    "last_name",
    "status",
    "updated_at.gt",
    "updated_at.lt",
    "created_at.gt",
    "created_at.lt",
];

/// A custom attribute in the v2 shape.
fn custom(id: &str, kind: &str, global_id: &str, label: Option<&str>, value: Value) -> Value {
    let mut attribute = json!({"id": id, "type": kind, "global_id": global_id, "value": value});
    if let Some(label) = label {
        attribute["label"] = json!(label);
    }
    attribute
}

/// A person as `/v2/persons` shows them to `credential`.
fn person_json(s: &State, headers: &HeaderMap, e: &Employee, credential: &Credential) -> Value {
    let mut p = Map::new();
    p.insert("id".into(), json!(e.id.to_string()));
    p.insert("created_at".into(), json!(timestamp(e.created)));
    p.insert("updated_at".into(), json!(timestamp(e.last_modified)));
    let mut put = |key: &str, v1: &str, value: Option<Value>| {
        if let Some(value) = value.filter(|_| credential.may_read(v1)) {
            p.insert(key.into(), value);
        }
    };
    put(
        "email",
        "email",
        match &e.email {
            Email::Address(a) => Some(json!(a)),
            Email::Empty => Some(json!("")),
            Email::Null => None,
        },
    );
    put("first_name", "first_name", Some(json!(e.first_name)));
    put("last_name", "last_name", Some(json!(e.last_name)));
    put("preferred_name", "preferred_name", e.preferred_name.as_ref().map(|n| json!(n)));
    put("gender", "gender", Some(json!(enum_value(s, &e.gender.unwrap_or("unspecified").to_ascii_uppercase()))));
    put("status", "status", Some(json!(enum_value(s, person_status(e)))));
    let mut customs = Vec::new();
    let (text, list) = (enum_value(s, "STRING"), enum_value(s, "STRING_LIST"));
    if credential.may_read("dynamic_1001") {
        customs.push(custom("dynamic_1001", &text, "cost_center_code", Some("Cost center code"), json!(e.cost_center)));
    }
    if credential.may_read("dynamic_1002") {
        customs.push(custom("dynamic_1002", &list, "skills", Some("Skills"), json!(e.skills)));
    }
    if credential.may_read("dynamic_1003") {
        // Labels are often missing in v2.
        customs.push(custom("dynamic_1003", &text, "employee_number", None, json!(format!("E-{:05}", e.id))));
    }
    p.insert("custom_attributes".into(), Value::Array(customs));
    p.insert("employments".into(), json!([{"id": employment_id(e.id)}]));
    let employments = link(s, headers, &format!("/v2/persons/{}/employments", e.id));
    p.insert("_meta".into(), json!({"links": {"employments": {"href": employments}}}));
    Value::Object(p)
}

/// A stable UUID per person: each sandbox person has one employment.
pub(super) fn employment_id(person: u64) -> String {
    format!("{:08x}-0000-4000-8000-{person:012x}", person & 0xffff_ffff)
}

fn date(d: NaiveDate) -> String {
    d.to_string()
}

fn unit_ref(kind: &str, unit: &Option<Unit>) -> Option<Value> {
    unit.as_ref().map(|u| json!({"type": kind, "id": u.id.to_string()}))
}

/// A person's (latest) employment as `credential` may read it.
fn employment_json(s: &State, headers: &HeaderMap, e: &Employee, credential: &Credential) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(employment_id(e.id)));
    m.insert("person".into(), json!({"id": e.id.to_string()}));
    m.insert("created_at".into(), json!(timestamp(e.created)));
    m.insert("updated_at".into(), json!(timestamp(e.last_modified)));
    let mut put = |key: &str, v1: &str, value: Option<Value>| {
        if let Some(value) = value.filter(|_| credential.may_read(v1)) {
            m.insert(key.into(), value);
        }
    };
    let status = match e.status {
        Status::Active => "ACTIVE",
        Status::Onboarding => "ONBOARDING",
        Status::Leave => "LEAVE",
        Status::Inactive => "INACTIVE",
    };
    put("status", "status", Some(json!(enum_value(s, status))));
    let kind = if e.id.is_multiple_of(17) { "EXTERNAL" } else { "INTERNAL" };
    put("type", "employment_type", Some(json!(enum_value(s, kind))));
    put("position", "position", Some(json!({"title": e.position})));
    let supervisor = e.supervisor.map(|id| {
        let href = link(s, headers, &format!("/v2/persons/{id}"));
        json!({"id": id.to_string(), "_meta": {"links": {"supervisor": {"href": href}}}})
    });
    put("supervisor", "supervisor", supervisor);
    put("office", "office", e.office.as_ref().map(|o| json!({"id": o.id.to_string()})));
    put("employment_start_date", "hire_date", Some(json!(date(e.hire_date))));
    put("employment_end_date", "termination_date", Some(e.termination_date.map_or(Value::Null, |d| json!(date(d)))));
    put(
        "termination",
        "termination_date",
        e.termination_date
            .map(|d| json!({"termination_date": date(d), "last_working_day": date(d), "type": "UNSPECIFIED"})),
    );
    put("weekly_working_hours", "weekly_working_hours", Some(json!(if e.id.is_multiple_of(9) { 30 } else { 40 })));
    let mut units: Vec<Value> = Vec::new();
    if credential.may_read("department") {
        units.extend(unit_ref("department", &e.department));
    }
    if credential.may_read("team") {
        units.extend(unit_ref("team", &e.team));
    }
    m.insert("org_units".into(), Value::Array(units));
    let href = link(s, headers, &format!("/v2/persons/{}/employments/{}", e.id, employment_id(e.id)));
    m.insert("_meta".into(), json!({"links": {"self": {"href": href}}}));
    Value::Object(m)
}

/// A request to a v2 resource: counted, admitted (token, limits, the next
/// queued fault), answered by `respond` under the lock, then delayed if
/// the fault says so.
async fn resource(
    sandbox: &Sandbox,
    headers: &HeaderMap,
    count: fn(&mut super::Stats),
    respond: impl FnOnce(&State, &Credential, &Option<Fault>) -> Response,
) -> Response {
    let (response, fault) = {
        let mut s = sandbox.lock();
        count(&mut s.stats);
        match admit_request(&mut s, headers) {
            Err(r) => (*r, None),
            Ok((credential, fault)) => (respond(&s, &credential, &fault), fault),
        }
    };
    delayed(&fault, response).await
}

fn find<'a>(s: &'a State, credential: &Credential, id: &str) -> Option<&'a Employee> {
    id.parse::<u64>().ok().and_then(|id| s.staff(credential).iter().find(|e| e.id == id))
}

/// `GET /v2/persons`.
async fn persons(AxumState(sandbox): AxumState<Sandbox>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    resource(
        &sandbox,
        &headers,
        |s| s.person_requests += 1,
        |s, credential, fault| persons_page(s, &headers, &query, credential, fault),
    )
    .await
}

fn persons_page(
    s: &State,
    headers: &HeaderMap,
    query: &str,
    credential: &Credential,
    fault: &Option<Fault>,
) -> Response {
    let listing = match parse_listing(query, PERSON_FILTERS) {
        Ok(l) => l,
        Err(m) => return bad_request(&m),
    };
    let mut people = Vec::new();
    for e in s.staff(credential) {
        match matches(e, &listing) {
            Ok(true) => people.push(person_json(s, headers, e, credential)),
            Ok(false) => {}
            Err(m) => return bad_request(&m),
        }
    }
    axum::Json(page(s, headers, "/v2/persons", &listing, people, fault)).into_response()
}

/// `GET /v2/persons/{id}`: a bare person.
async fn person(AxumState(sandbox): AxumState<Sandbox>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    resource(
        &sandbox,
        &headers,
        |s| s.person_requests += 1,
        |s, credential, _| match find(s, credential, &id) {
            Some(e) => axum::Json(person_json(s, &headers, e, credential)).into_response(),
            None => not_found(),
        },
    )
    .await
}

/// `GET /v2/persons/{id}/employments`: the latest first (one per person here).
async fn employments(
    AxumState(sandbox): AxumState<Sandbox>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    resource(
        &sandbox,
        &headers,
        |s| s.employment_requests += 1,
        |s, credential, fault| match (find(s, credential, &id), parse_listing(&query, &["id"])) {
            (None, _) => not_found(),
            (_, Err(m)) => bad_request(&m),
            (Some(e), Ok(listing)) => {
                let items = vec![employment_json(s, &headers, e, credential)];
                let path = format!("/v2/persons/{id}/employments");
                axum::Json(page(s, &headers, &path, &listing, items, fault)).into_response()
            }
        },
    )
    .await
}

/// The company's departments or teams, by id.
fn units(s: &State, credential: &Credential, kind: &str) -> Option<Vec<Unit>> {
    let field = |e: &Employee| -> Option<Unit> {
        match kind {
            "department" => e.department.clone(),
            "team" => e.team.clone(),
            _ => None,
        }
    };
    if !matches!(kind, "department" | "team") {
        return None;
    }
    let mut all: Vec<Unit> = s.staff(credential).iter().filter_map(field).collect();
    all.sort_by_key(|u| u.id);
    all.dedup_by_key(|u| u.id);
    Some(all)
}

fn unit_json(kind: &str, u: &Unit) -> Value {
    json!({"id": u.id.to_string(), "type": kind, "name": u.name})
}

const NO_KIND: &str = "Provided request parameters are invalid: `type` must be department or team.";

/// `GET /v2/org-units?type=department|team`.
async fn org_units(AxumState(sandbox): AxumState<Sandbox>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    resource(
        &sandbox,
        &headers,
        |s| s.org_unit_requests += 1,
        |s, credential, fault| {
            let listing = match parse_listing(&query, &["type"]) {
                Ok(l) => l,
                Err(m) => return bad_request(&m),
            };
            match filter(&listing, "type").and_then(|k| Some((k, units(s, credential, k)?))) {
                None => bad_request(NO_KIND),
                Some((kind, list)) => {
                    let items = list.iter().map(|u| unit_json(kind, u)).collect();
                    axum::Json(page(s, &headers, "/v2/org-units", &listing, items, fault)).into_response()
                }
            }
        },
    )
    .await
}

/// `GET /v2/org-units/{id}?type=…`: a bare org unit.
async fn org_unit(
    AxumState(sandbox): AxumState<Sandbox>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let kind = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "type").map(|(_, v)| v.into_owned());
    resource(
        &sandbox,
        &headers,
        |s| s.org_unit_requests += 1,
        |s, credential, _| {
            let Some(list) = kind.as_deref().and_then(|k| units(s, credential, k)) else { return bad_request(NO_KIND) };
            match list.into_iter().find(|u| u.id.to_string() == id) {
                Some(u) => axum::Json(unit_json(kind.as_deref().unwrap_or_default(), &u)).into_response(),
                None => not_found(),
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_carry_position_and_filters_and_limits_are_checked() {
        let first = parse_listing("limit=20&status=ACTIVE&ignored=1", PERSON_FILTERS).unwrap();
        assert_eq!(first.filters, vec![("status".to_string(), "ACTIVE".to_string())]);
        let cursor = cursor_of(&first, 20);
        let next = parse_listing(&format!("cursor={cursor}"), PERSON_FILTERS).unwrap();
        assert_eq!(next, Listing { offset: 20, ..first.clone() });
        assert_eq!(parse_listing("", PERSON_FILTERS).unwrap().limit, DEFAULT_LIMIT);
        for bad in ["limit=0", "limit=51", "limit=x", "cursor=nonsense", "cursor=cur_zz"] {
            assert!(parse_listing(bad, PERSON_FILTERS).is_err(), "{bad}");
        }
    }
}
