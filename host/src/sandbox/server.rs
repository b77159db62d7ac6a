//! The sandbox's HTTP surface: Personio's `/v1` routes, the `/v2` ones of
//! [`super::v2`], and a small `/_sandbox` admin API to change the company
//! and inject faults.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxumState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::render::{self, ATTRIBUTES, View};
use super::{Edit, Fault, Hire, Sandbox, State, Token};

/// A sandbox being served; stops when dropped.
pub struct Running {
    /// Base URL, e.g. `http://127.0.0.1:41234`: the connector's `api-base-url`.
    pub url: String,
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops serving and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub(super) async fn serve(sandbox: Sandbox, addr: SocketAddr) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/v1/auth", post(auth))
        .route("/v1/company/employees", get(list))
        .route("/v1/company/employees/attributes", get(attributes))
        .route("/v1/company/employees/{id}", get(one))
        .route("/_sandbox", get(info))
        .route("/_sandbox/employees", post(hire))
        .route("/_sandbox/employees/{id}", patch(edit).delete(remove))
        .route("/_sandbox/faults", post(faults))
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/webhook-faults", post(webhook_faults))
        .route("/_sandbox/deliveries", get(deliveries))
        .merge(super::v2::routes())
        .merge(super::webhooks::routes())
        .with_state(sandbox.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let (stop_deliveries, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(super::webhooks::deliver_forever(sandbox, stopped));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        let _ = stop_deliveries.send(true);
    });
    Ok(Running { url: format!("http://{addr}"), addr, shutdown: Some(tx), task: Some(task) })
}

/// Personio's error envelope.
fn error(status: StatusCode, code: u16, message: &str) -> Response {
    (status, axum::Json(json!({"success": false, "error": {"code": code, "message": message}}))).into_response()
}

fn too_many() -> Response {
    error(StatusCode::TOO_MANY_REQUESTS, 429, "Too Many Requests")
}

/// A 429 saying when to come back.
fn too_many_for(seconds: u32) -> Response {
    let mut r = too_many();
    r.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    r
}

/// Drops instants older than `span` and says whether one more fits under `max`.
pub(super) fn admit(window: &mut std::collections::VecDeque<Instant>, span: Duration, max: u32, now: Instant) -> bool {
    while window.front().is_some_and(|t| now.duration_since(*t) >= span) {
        window.pop_front();
    }
    (window.len() as u32) < max
}

impl State {
    /// Sliding-window limits of the employee endpoints: `Some(seconds)`
    /// until a request would be admitted again, for `Retry-After`.
    pub(super) fn rate_limited(&mut self) -> Option<u32> {
        let limit = self.config.rate_limit?;
        let now = Instant::now();
        let minute_ok = admit(&mut self.window, Duration::from_secs(60), limit.per_minute, now);
        let last_second =
            self.window.iter().rev().take_while(|t| now.duration_since(**t) < Duration::from_secs(1)).count() as u32;
        if minute_ok && last_second < limit.per_second {
            self.window.push_back(now);
            return None;
        }
        self.stats.rate_limited += 1;
        if !minute_ok {
            // Until the oldest request of the minute leaves the window.
            let oldest = self.window.front().copied().unwrap_or(now);
            let free = Duration::from_secs(60).saturating_sub(now.duration_since(oldest));
            return Some(free.as_secs_f64().ceil().max(1.0) as u32);
        }
        Some(1)
    }

    /// Checks the bearer token; returns the credential index and the token to echo.
    fn authorize(&mut self, headers: &HeaderMap) -> Result<(usize, String), Denied> {
        let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            self.stats.unauthorized += 1;
            return Err(Denied::NotProvided);
        };
        let token = value.trim().trim_start_matches("Bearer ").trim().to_string();
        let now = Instant::now();
        let credential = match self.tokens.get(&token) {
            Some(t) if t.expires > now => t.credential,
            _ => {
                self.stats.unauthorized += 1;
                return Err(Denied::NotValid);
            }
        };
        if self.config.rotate_tokens {
            let expires = self.tokens.remove(&token).expect("checked above").expires;
            let next = new_token();
            self.tokens.insert(next.clone(), Token { credential, expires });
            return Ok((credential, next));
        }
        Ok((credential, token))
    }
}

/// Why a request's token was refused, with Personio's status and message.
enum Denied {
    NotProvided,
    NotValid,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::NotProvided => error(StatusCode::UNAUTHORIZED, 401, "Authorization is not provided"),
            Denied::NotValid => error(StatusCode::FORBIDDEN, 403, "Provided authorization is not valid"),
        }
    }
}

pub(super) fn new_token() -> String {
    format!("papi-{:032x}", rand::random::<u128>())
}

fn with_token(token: &str, response: Response) -> Response {
    let mut response = response;
    if let Ok(v) = format!("Bearer {token}").parse() {
        response.headers_mut().insert(header::AUTHORIZATION, v);
    }
    response
}

/// `POST /v1/auth`: credentials as query, JSON or form body.
async fn auth(
    AxumState(sandbox): AxumState<Sandbox>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let chunked = headers
        .get(header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked && sandbox.lock().config.strict_bodies {
        return error(StatusCode::LENGTH_REQUIRED, 411, "A request body needs a Content-Length");
    }
    let mut pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&body) {
        pairs.extend(map.into_iter().filter_map(|(k, v)| Some((k, v.as_str()?.to_string()))));
    } else {
        pairs.extend(url::form_urlencoded::parse(&body).into_owned());
    }
    let field = |name: &str| pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let (id, secret) = (field("client_id"), field("client_secret"));

    let mut s = sandbox.lock();
    s.stats.auth += 1;
    let limit = s.config.auth_per_minute;
    if !admit(&mut s.auth_window, Duration::from_secs(60), limit, Instant::now()) {
        s.stats.rate_limited += 1;
        return too_many();
    }
    s.auth_window.push_back(Instant::now());
    let Some(index) = s.config.credentials.iter().position(|c| c.client_id == id && c.client_secret == secret) else {
        return error(StatusCode::UNAUTHORIZED, 0, "Wrong credentials");
    };
    let token = new_token();
    let ttl = s.config.token_ttl;
    s.tokens.insert(token.clone(), Token { credential: index, expires: Instant::now() + ttl });
    axum::Json(json!({"success": true, "data": {"token": token, "expires_in": ttl.as_secs()}})).into_response()
}

/// What a list request asked for.
struct ListQuery {
    limit: usize,
    offset: usize,
    attributes: Vec<String>,
    updated_since: Option<i64>,
    email: Option<String>,
}

fn parse_list_query(raw: &str) -> Result<ListQuery, String> {
    let mut q = ListQuery { limit: 50, offset: 0, attributes: Vec::new(), updated_since: None, email: None };
    for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        match key.as_ref() {
            "limit" => {
                let n: usize = value.trim().parse().map_err(|_| format!("limit must be a number, got `{value}`"))?;
                if n == 0 {
                    return Err("limit must be at least 1".into());
                }
                q.limit = n.min(100);
            }
            "offset" => {
                q.offset = value.trim().parse().map_err(|_| format!("offset must be a number, got `{value}`"))?
            }
            "attributes[]" | "attributes" => q.attributes.push(value.into_owned()),
            "email" => q.email = Some(value.into_owned()),
            "updated_since" => {
                let v = value.trim();
                let t = chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S")
                    .or_else(|_| {
                        chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                            .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight"))
                    })
                    .map_err(|_| {
                        format!("updated_since must look like 2022-12-24T08:15:30 or 2022-12-24, got `{v}`")
                    })?;
                q.updated_since = Some(t.and_utc().timestamp());
            }
            _ => {}
        }
    }
    Ok(q)
}

/// What to do after the state lock is released.
enum Outcome {
    Respond(Response),
    Delay(Duration, Response),
}

/// `GET /v1/company/employees`.
async fn list(AxumState(sandbox): AxumState<Sandbox>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let outcome = list_locked(&sandbox, &headers, &query.unwrap_or_default());
    match outcome {
        Outcome::Respond(r) => r,
        Outcome::Delay(d, r) => {
            tokio::time::sleep(d).await;
            r
        }
    }
}

fn list_locked(sandbox: &Sandbox, headers: &HeaderMap, query: &str) -> Outcome {
    let mut s = sandbox.lock();
    s.stats.employee_requests += 1;
    let fault = s.faults.pop_front();
    if fault.is_some() {
        s.stats.faults += 1;
    }
    if fault == Some(Fault::ExpireTokens) {
        s.tokens.clear();
    }
    let (credential, token) = match s.authorize(headers) {
        Ok(v) => v,
        Err(d) => return Outcome::Respond(d.into_response()),
    };
    if let Some(wait) = s.rate_limited() {
        return Outcome::Respond(too_many_for(wait));
    }
    let mut q = match parse_list_query(query) {
        Ok(q) => q,
        Err(m) => return Outcome::Respond(error(StatusCode::BAD_REQUEST, 400, &m)),
    };
    let mut delay = None;
    let mut shrink = 0;
    let mut skip = 0;
    match fault {
        Some(Fault::RateLimit { retry_after }) => {
            s.stats.rate_limited += 1;
            let mut r = too_many();
            if let Some(secs) = retry_after {
                r.headers_mut().insert(header::RETRY_AFTER, secs.into());
            }
            return Outcome::Respond(with_token(&token, r));
        }
        Some(Fault::Status { status }) => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Outcome::Respond(with_token(&token, error(code, status, "Service temporarily unavailable")));
        }
        Some(Fault::Malformed) => {
            let body = r#"{"success":true,"metadata":{"total_elements":3,"#;
            let r = (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response();
            return Outcome::Respond(with_token(&token, r));
        }
        Some(Fault::Slow { millis }) => delay = Some(Duration::from_millis(millis)),
        Some(Fault::RepeatFirstPage) => q.offset = 0,
        Some(Fault::Overlap { items }) => q.offset = q.offset.saturating_sub(items),
        Some(Fault::Shrink { items }) => shrink = items,
        Some(Fault::Gap { items }) => skip = items,
        Some(Fault::ExpireTokens) | None => {}
    }

    let cred = s.config.credentials[credential].clone();
    let matching: Vec<&super::Employee> = s
        .staff(&cred)
        .iter()
        .filter(|e| match (q.updated_since, &q.email) {
            (Some(since), _) => e.last_modified >= since,
            (None, Some(email)) => {
                matches!(&e.email, super::Email::Address(a) if a.eq_ignore_ascii_case(email))
            }
            (None, None) => true,
        })
        .collect();
    let total = matching.len().saturating_sub(shrink);
    let include = |key: &str| cred.may_read(key) && (q.attributes.is_empty() || q.attributes.iter().any(|a| a == key));
    let view =
        View { language: cred.language, legacy: cred.legacy, include: &include, company: &s.config.company_name };
    let data: Vec<Value> =
        matching[..total].iter().skip(q.offset + skip).take(q.limit).map(|e| render::employee(e, &view)).collect();
    let body = json!({
        "success": true,
        "metadata": {
            "total_elements": total,
            "current_page": q.offset / q.limit,
            "total_pages": total.div_ceil(q.limit),
        },
        "offset": q.offset,
        "limit": q.limit,
        "data": data,
    });
    let r = with_token(&token, axum::Json(body).into_response());
    match delay {
        Some(d) => Outcome::Delay(d, r),
        None => Outcome::Respond(r),
    }
}

/// `GET /v1/company/employees/{id}`.
async fn one(AxumState(sandbox): AxumState<Sandbox>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let mut s = sandbox.lock();
    s.stats.employee_requests += 1;
    let (credential, token) = match s.authorize(&headers) {
        Ok(v) => v,
        Err(d) => return d.into_response(),
    };
    if let Some(wait) = s.rate_limited() {
        return too_many_for(wait);
    }
    let cred = s.config.credentials[credential].clone();
    let Some(e) = id.parse::<u64>().ok().and_then(|id| s.staff(&cred).iter().find(|e| e.id == id)) else {
        // Personio's 404 message is German, with a trailing space.
        return with_token(&token, error(StatusCode::NOT_FOUND, 404, "Mitarbeiter nicht gefunden "));
    };
    let include = |key: &str| cred.may_read(key);
    let view =
        View { language: cred.language, legacy: cred.legacy, include: &include, company: &s.config.company_name };
    with_token(&token, axum::Json(json!({"success": true, "data": render::employee(e, &view)})).into_response())
}

/// `GET /v1/company/employees/attributes`: what this credential may read.
async fn attributes(AxumState(sandbox): AxumState<Sandbox>, headers: HeaderMap) -> Response {
    let mut s = sandbox.lock();
    s.stats.attribute_requests += 1;
    let (credential, token) = match s.authorize(&headers) {
        Ok(v) => v,
        Err(d) => return d.into_response(),
    };
    if let Some(status) = s.config.attributes_status {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND);
        let message = if status == 403 { "Access denied" } else { "Not found " };
        return with_token(&token, error(code, status, message));
    }
    let cred = &s.config.credentials[credential];
    let data: Vec<Value> = ATTRIBUTES
        .iter()
        .filter(|a| a.key != "id" && cred.may_read(a.key))
        .map(|a| a.describe(cred.language))
        .collect();
    with_token(&token, axum::Json(json!({"success": true, "data": data})).into_response())
}

async fn info(AxumState(sandbox): AxumState<Sandbox>) -> Response {
    let s = sandbox.lock();
    let credentials: Vec<Value> = s
        .config
        .credentials
        .iter()
        .map(|c| json!({"client_id": c.client_id, "client_secret": c.client_secret, "whitelist": c.whitelist, "language": c.language}))
        .collect();
    axum::Json(json!({"company": s.config.company_name, "employees": s.employees.len(), "credentials": credentials}))
        .into_response()
}

async fn hire(AxumState(sandbox): AxumState<Sandbox>, axum::Json(h): axum::Json<Hire>) -> Response {
    let id = sandbox.hire(h);
    (StatusCode::CREATED, axum::Json(json!({"id": id}))).into_response()
}

async fn edit(
    AxumState(sandbox): AxumState<Sandbox>,
    Path(id): Path<u64>,
    axum::Json(e): axum::Json<Edit>,
) -> Response {
    match sandbox.apply(id, e) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(m) => (StatusCode::NOT_FOUND, m).into_response(),
    }
}

async fn remove(AxumState(sandbox): AxumState<Sandbox>, Path(id): Path<u64>) -> Response {
    if sandbox.remove(id) { StatusCode::NO_CONTENT.into_response() } else { StatusCode::NOT_FOUND.into_response() }
}

async fn faults(AxumState(sandbox): AxumState<Sandbox>, axum::Json(f): axum::Json<Vec<Fault>>) -> Response {
    sandbox.inject(f);
    StatusCode::NO_CONTENT.into_response()
}

async fn webhook_faults(
    AxumState(sandbox): AxumState<Sandbox>,
    axum::Json(f): axum::Json<Vec<super::DeliveryFault>>,
) -> Response {
    sandbox.inject_delivery_faults(f);
    StatusCode::NO_CONTENT.into_response()
}

async fn deliveries(AxumState(sandbox): AxumState<Sandbox>) -> Response {
    axum::Json(sandbox.deliveries()).into_response()
}

async fn stats(AxumState(sandbox): AxumState<Sandbox>) -> Response {
    axum::Json(sandbox.stats()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_queries_follow_personio() {
        let q = parse_list_query(
            "limit=200&offset=300&attributes[]=email&attributes%5B%5D=status&updated_since=2022-12-24T08:15:30",
        )
        .unwrap();
        assert_eq!((q.limit, q.offset), (100, 300), "limit is capped at 100, offset is an item offset");
        assert_eq!(q.attributes, vec!["email", "status"]);
        assert_eq!(q.updated_since, Some(1_671_869_730));
        assert_eq!(parse_list_query("updated_since=2022-12-24").unwrap().updated_since, Some(1_671_840_000));
        assert_eq!(parse_list_query("").unwrap().limit, 50, "the default page size since 2025");
        for bad in ["limit=0", "limit=x", "offset=-1", "updated_since=yesterday"] {
            assert!(parse_list_query(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sliding_windows_admit_up_to_the_limit() {
        let mut w = std::collections::VecDeque::new();
        let now = Instant::now();
        for _ in 0..3 {
            assert!(admit(&mut w, Duration::from_secs(60), 3, now));
            w.push_back(now);
        }
        assert!(!admit(&mut w, Duration::from_secs(60), 3, now));
        assert!(admit(&mut w, Duration::from_secs(60), 3, now + Duration::from_secs(61)));
    }
}
