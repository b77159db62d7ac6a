//! The Personio v1 REST client: authentication, token rotation, paging and
//! error classification. The only module that performs I/O.
//!
//! State lives for one run: the host gives every run a fresh instance, so the
//! token and the ids already returned are kept in instance memory.

use std::cell::RefCell;
use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::attributes::id_of;
use crate::hrsync::connector::host::Level;
use crate::hrsync::connector::types::{
    CheckReport, ConnectorError, FetchRequest, MissingAttribute, Page, RawRecord, Retry, SourceAttribute,
};
use crate::settings::{APP_ID, Settings};

/// Personio's maximum page size for `/company/employees`.
pub const PAGE_SIZE: usize = 100;
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct RunState {
    /// The current bearer token; replaced by the `authorization` header Personio echoes.
    token: Option<String>,
    /// Ids returned so far in this run, to drop duplicates across pages.
    seen: HashSet<String>,
    /// The employee count the first page reported; every page must agree.
    total: Option<u64>,
}

thread_local! {
    static STATE: RefCell<RunState> = RefCell::new(RunState::default());
}

/// "Test connection".
pub fn check(settings: &Settings) -> Result<CheckReport, ConnectorError> {
    STATE.with_borrow_mut(|s| s.token = None);
    authenticate(settings)?;
    let mut warnings = Vec::new();
    let readable = match readable_attributes(settings)? {
        Some(list) => list,
        // Some tenants' credentials may not list attributes: what the first
        // employee carries is what the credential can read.
        None => {
            warnings.push(format!(
                "{ATTRIBUTES_PATH} is not available to this credential, so the readable attributes were read from the first employee instead; attributes that employee has no value for may be missing from this list."
            ));
            first_employee_attributes(settings)?
        }
    };
    let keys: HashSet<&str> = readable.iter().map(|a| a.key.as_str()).collect();
    let missing: Vec<MissingAttribute> = needed_attributes(settings)
        .into_iter()
        .filter(|(key, _, _)| !keys.contains(key.as_str()))
        .map(|(key, purpose, required)| MissingAttribute {
            hint: format!(
                "In Personio open Settings → Integrations → API credentials, edit this credential and add `{key}` to its readable employee attributes."
            ),
            key,
            purpose: purpose.into(),
            required,
        })
        .collect();
    if missing.iter().any(|m| m.key == "supervisor") {
        warnings.push("Without `supervisor`, reporting lines are not imported.".to_string());
    }
    // Which API imports read, and that it answers: the run's choice.
    let api = match crate::v2::resolve(settings)? {
        crate::v2::Api::V1 => "API v1",
        crate::v2::Api::V2 => {
            crate::v2::check_persons(settings)?;
            "API v2"
        }
    };
    let account = Some(match &settings.subdomain {
        Some(sub) => format!("{sub} (Personio {api})"),
        None => format!("Personio {api}"),
    });
    Ok(CheckReport { account, readable, missing, warnings })
}

const ATTRIBUTES_PATH: &str = "/v1/company/employees/attributes";

/// The attributes route's list; `None` when the route is missing (404) or
/// forbidden (403) for this credential.
fn readable_attributes(settings: &Settings) -> Result<Option<Vec<SourceAttribute>>, ConnectorError> {
    let response = get_raw(settings, ATTRIBUTES_PATH, &[])?;
    if matches!(response.status, 403 | 404) {
        crate::log(Level::Info, &format!("{ATTRIBUTES_PATH}: HTTP {}; reading the first employee", response.status));
        return Ok(None);
    }
    let body = parse_json(ATTRIBUTES_PATH, &response.into_body(ATTRIBUTES_PATH)?)?;
    let list = body
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(&format!("{ATTRIBUTES_PATH} returned no `data` list")))?;
    Ok(Some(
        list.iter()
            .filter_map(|a| {
                let key = a.get("key").and_then(Value::as_str)?;
                let label = a.get("label").and_then(Value::as_str).unwrap_or(key);
                Some(SourceAttribute { key: key.into(), label: label.into() })
            })
            .collect(),
    ))
}

/// The attribute keys (and labels) the first employee of the list carries.
fn first_employee_attributes(settings: &Settings) -> Result<Vec<SourceAttribute>, ConnectorError> {
    let path = "/v1/company/employees";
    let query = [("limit".to_string(), "1".to_string()), ("offset".to_string(), "0".to_string())];
    let body = parse_json(path, &get(settings, path, &query)?)?;
    let first = body.get("data").and_then(Value::as_array).and_then(|d| d.first());
    let attributes = first.and_then(|e| e.get("attributes")).and_then(Value::as_object);
    Ok(attributes
        .map(|map| {
            map.iter()
                .filter(|(key, _)| key.as_str() != "id")
                .map(|(key, value)| {
                    let label = value.get("label").and_then(Value::as_str).unwrap_or(key);
                    SourceAttribute { key: key.clone(), label: label.into() }
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The attributes the mapping needs: (key, purpose, required).
fn needed_attributes(settings: &Settings) -> Vec<(String, &'static str, bool)> {
    let mut needed: Vec<(String, &'static str, bool)> = vec![
        ("first_name".into(), "the user's first name", true),
        ("last_name".into(), "the user's last name", true),
        ("email".into(), "the work email that signs users in and matches existing users", true),
        ("status".into(), "who is active, starting or has left", true),
        ("supervisor".into(), "reporting lines (managers)", false),
        ("hire_date".into(), "start dates", false),
        ("termination_date".into(), "termination dates", false),
        ("position".into(), "job titles", false),
        ("office".into(), "offices", false),
        ("team".into(), "teams", false),
        ("preferred_name".into(), "preferred names", false),
        ("gender".into(), "gender", false),
    ];
    for (key, purpose) in [(&settings.department, "departments"), (&settings.employee_id, "employee IDs")] {
        if key != "id" && !needed.iter().any(|(k, _, _)| k == key) {
            needed.push((key.clone(), purpose, false));
        }
    }
    for key in &settings.custom {
        needed.push((key.clone(), "a mapped custom attribute", false));
    }
    needed
}

/// Exactly these employees, one `/v1/company/employees/{id}` each; ids
/// Personio no longer knows (404) are left out.
pub fn fetch_people(settings: &Settings, ids: &[String]) -> Result<Vec<RawRecord>, ConnectorError> {
    let mut records = Vec::with_capacity(ids.len());
    for id in ids {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ConnectorError::InvalidSettings(format!("`{id}` is not a Personio employee id")));
        }
        let path = format!("/v1/company/employees/{id}");
        let answer = get_raw(settings, &path, &[])?;
        if answer.status == 404 {
            crate::log(Level::Info, &format!("employee {id} is no longer in Personio"));
            continue;
        }
        let body = parse_json(&path, &answer.into_body(&path)?)?;
        let data = body.get("data").ok_or_else(|| bad(&format!("{path} answered without `data`")))?;
        records.push(RawRecord { source_id: id.clone(), payload: data.to_string() });
    }
    Ok(records)
}

/// One page of `/v1/company/employees`. The cursor is the item offset.
///
/// Complete or fail: a page that does not continue the list where the last
/// one ended — a repeated page, a window that skips ahead, an employee
/// already returned where new ones belong, a count that changed since the
/// first page — is answered with a retryable error naming the offset, never
/// with an early end; the host retries the page, and gives the run up if
/// Personio keeps answering so.
pub fn fetch_page(settings: &Settings, request: &FetchRequest) -> Result<Page, ConnectorError> {
    let offset: u64 = match &request.cursor {
        None => {
            STATE.with_borrow_mut(|s| {
                s.seen.clear();
                s.total = None;
            });
            0
        }
        Some(c) => c
            .parse()
            .map_err(|_| ConnectorError::InvalidSettings(format!("cursor `{c}` was not issued by this connector")))?,
    };
    let mut query: Vec<(String, String)> =
        vec![("limit".into(), PAGE_SIZE.to_string()), ("offset".into(), offset.to_string())];
    if let Some(since) = &request.updated_since {
        query.push(("updated_since".into(), personio_timestamp(since)?));
    }
    for key in settings.projection() {
        query.push(("attributes[]".into(), key));
    }
    let body = get(settings, "/v1/company/employees", &query)?;
    // The items are kept as the raw JSON Personio sent: no parse-and-print
    // round trip, which is most of a page's cost.
    let page: EmployeePage<'_> = serde_json::from_slice(&body).map_err(|e| malformed("/v1/company/employees", &e))?;
    if page.success == Some(false) {
        return Err(bad(&format!("/v1/company/employees reported failure: {}", error_message(&body))));
    }
    let data = page.data.ok_or_else(|| bad("/v1/company/employees returned no `data` list"))?;
    let total = page.metadata.as_ref().and_then(|m| m.get("total_elements")).and_then(lenient_u64);
    // Where the page really starts: Personio echoes the offset it served.
    let served = page.offset.as_ref().and_then(lenient_u64).unwrap_or(offset);

    let mut items = Vec::with_capacity(data.len());
    for item in &data {
        match item_id(item) {
            Some(id) => items.push((id, *item)),
            None => return Err(bad(&format!("offset {served}: an employee without an id; cannot tell who it is"))),
        }
    }
    let records = STATE.with_borrow(|state| continue_list(state, offset, served, total, &items))?;
    STATE.with_borrow_mut(|state| {
        state.total = state.total.or(total);
        state.seen.extend(records.iter().map(|r| r.source_id.clone()));
    });
    let next = served + data.len() as u64;
    let last = data.is_empty() || total.map_or(data.len() < PAGE_SIZE, |t| next >= t);
    Ok(Page { records, next_cursor: (!last).then(|| next.to_string()), total })
}

/// The new employees of a page, if it continues the list exactly where the
/// run left it at `offset`; a retryable error naming the offset otherwise.
fn continue_list(
    state: &RunState,
    offset: u64,
    served: u64,
    total: Option<u64>,
    items: &[(String, &serde_json::value::RawValue)],
) -> Result<Vec<RawRecord>, ConnectorError> {
    let retry = |what: String| {
        ConnectorError::TemporarilyUnavailable(Retry {
            after_seconds: 1,
            message: format!("the employee list changed while it was read ({what}); reading the page again"),
        })
    };
    if let (Some(first), Some(now)) = (state.total, total)
        && first != now
    {
        return Err(retry(format!("at offset {offset} Personio counts {now} employees, {first} on the first page")));
    }
    if served > offset {
        return Err(retry(format!(
            "asked for offset {offset}, Personio answered from {served}: employees would be skipped"
        )));
    }
    let end = served + items.len() as u64;
    if end <= offset && total.is_some_and(|t| offset < t) {
        return Err(retry(format!("asked for offset {offset}, Personio answered offsets {served}–{end}")));
    }
    let mut records = Vec::with_capacity(items.len());
    let mut in_page = HashSet::new();
    for (position, (id, item)) in (served..).zip(items) {
        let known = state.seen.contains(id) || !in_page.insert(id.as_str());
        match (position < offset, known) {
            // The overlap with pages already read.
            (true, _) => {}
            (false, false) => records.push(RawRecord { source_id: id.clone(), payload: item.get().to_string() }),
            (false, true) => {
                return Err(retry(format!(
                    "employee {id} came again at offset {position}, where only new employees belong"
                )));
            }
        }
    }
    if served < offset {
        crate::log(Level::Info, &format!("offset {offset}: Personio answered from {served}; the overlap was skipped"));
    }
    Ok(records)
}

/// RFC 3339 → Personio's `2022-12-24T08:15:30` (UTC).
fn personio_timestamp(since: &str) -> Result<String, ConnectorError> {
    chrono::DateTime::parse_from_rfc3339(since)
        .map(|t| t.naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string())
        .map_err(|e| ConnectorError::InvalidSettings(format!("updated-since `{since}` is not RFC 3339: {e}")))
}

fn lenient_u64(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str()?.trim().parse().ok())
}

/// POST /v1/auth; stores the token for the run.
fn authenticate(settings: &Settings) -> Result<String, ConnectorError> {
    let (client_id, client_secret) = settings.credentials()?;
    let url = format!("{}/v1/auth", settings.base_url);
    // Form-encoded, as Personio documents it; the host sends it whole with
    // its Content-Length (a chunked body is read as empty by strict servers,
    // which then refuse the "missing" credentials).
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("client_secret", client_secret)
        .finish();
    let (status, retry_after, body) = post_form(settings, &url, form)?;
    match status {
        200..=299 => {}
        401 | 403 => return Err(rejected(&body)),
        _ => return Err(classify(status, retry_after, "/v1/auth", &body)),
    }
    let json: Value = parse_json("/v1/auth", &body)?;
    let token = json
        .pointer("/data/token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("/v1/auth answered without `data.token`"))?
        .to_string();
    STATE.with_borrow_mut(|s| s.token = Some(token.clone()));
    Ok(token)
}

/// A form-encoded POST (Personio's token endpoints), sent whole with its
/// Content-Length: its status, `Retry-After` and body.
pub(crate) fn post_form(
    settings: &Settings,
    url: &str,
    form: String,
) -> Result<(u16, Option<u32>, Vec<u8>), ConnectorError> {
    let response = waki::Client::new()
        .post(url)
        .header("X-Personio-App-ID", APP_ID)
        .header("Accept", "application/json")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .connect_timeout(CONNECT_TIMEOUT)
        .send()
        .map_err(|e| unreachable(settings, &e))?;
    let status = response.status_code();
    let wait = retry_after(&response);
    let body = response.body().map_err(|e| unreachable(settings, &e))?;
    Ok((status, wait, body))
}

/// Personio refused the client id and secret: what the admin should do.
pub(crate) fn rejected(body: &[u8]) -> ConnectorError {
    ConnectorError::CredentialsRejected(format!(
        "Personio rejected the client id and secret ({}). Check them in the settings; credentials are created under Settings → Integrations → API credentials.",
        error_message(body)
    ))
}

/// A finished GET: its status and body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    retry_after: Option<u32>,
    body: Vec<u8>,
}

impl Answer {
    /// The body of a 2xx answer; the classified error otherwise.
    pub(crate) fn into_body(self, path: &str) -> Result<Vec<u8>, ConnectorError> {
        match self.status {
            200..=299 => Ok(self.body),
            401 | 403 => Err(ConnectorError::TemporarilyUnavailable(Retry {
                after_seconds: 2,
                message: format!(
                    "Personio refused a freshly issued token for {path} (HTTP {}: {}). If this persists, check that the credential is still active and may read employees (Settings → Integrations → API credentials).",
                    self.status,
                    error_message(&self.body)
                ),
            })),
            status => Err(classify(status, self.retry_after, path, &self.body)),
        }
    }
}

/// A GET with the run's token: re-authenticates once on 401/403 and
/// follows token rotation; the last answer, whatever its status.
pub(crate) fn get_raw(settings: &Settings, path: &str, query: &[(String, String)]) -> Result<Answer, ConnectorError> {
    let url = format!("{}{path}", settings.base_url);
    let mut reauthenticated = false;
    loop {
        let token = match STATE.with_borrow(|s| s.token.clone()) {
            Some(t) => t,
            None => authenticate(settings)?,
        };
        let response = waki::Client::new()
            .get(&url)
            .query(query)
            .header("Authorization", format!("Bearer {token}"))
            .header("X-Personio-App-ID", APP_ID)
            .header("Accept", "application/json")
            .connect_timeout(CONNECT_TIMEOUT)
            .send()
            .map_err(|e| unreachable(settings, &e))?;
        let status = response.status_code();
        if let Some(next) = response
            .header("authorization")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().trim_start_matches("Bearer ").trim().to_string())
            .filter(|v| !v.is_empty())
        {
            STATE.with_borrow_mut(|s| s.token = Some(next));
        }
        let retry_after = retry_after(&response);
        let body = response.body().map_err(|e| unreachable(settings, &e))?;
        if matches!(status, 401 | 403) && !reauthenticated {
            crate::log(Level::Info, &format!("{path}: HTTP {status}, authenticating again"));
            STATE.with_borrow_mut(|s| s.token = None);
            reauthenticated = true;
            continue;
        }
        return Ok(Answer { status, retry_after, body });
    }
}

/// A GET whose answer must be a success. A token refused again right after
/// authenticating is a passing fault (an expiry racing the request, a
/// token store lagging), not wrong credentials: those fail at `/v1/auth`.
fn get(settings: &Settings, path: &str, query: &[(String, String)]) -> Result<Vec<u8>, ConnectorError> {
    get_raw(settings, path, query)?.into_body(path)
}

pub(crate) fn classify(status: u16, retry_after: Option<u32>, path: &str, body: &[u8]) -> ConnectorError {
    let message = format!("Personio answered HTTP {status} for {path}: {}", error_message(body));
    match status {
        429 => ConnectorError::RateLimited(Retry { after_seconds: retry_after.unwrap_or(1).max(1), message }),
        500 | 502..=504 => {
            ConnectorError::TemporarilyUnavailable(Retry { after_seconds: retry_after.unwrap_or(2).max(1), message })
        }
        _ => ConnectorError::BadResponse(message),
    }
}

pub(crate) fn retry_after(response: &waki::Response) -> Option<u32> {
    response.header("retry-after")?.to_str().ok()?.trim().parse().ok()
}

/// What a Personio error body says — v1's `error.message`, v2's
/// problem+json `errors[0].detail` (or `title`), the token endpoint's
/// `error_description` — or a short excerpt.
pub(crate) fn error_message(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    // v1 `{"error":{"message"}}`, v2 problem+json, OAuth errors, and the
    // plain `{"error":"…"}` some v2 endpoints answer with.
    for pointer in ["/error/message", "/errors/0/detail", "/errors/0/title", "/error_description", "/error", "/message"]
    {
        if let Some(m) = parsed.as_ref().and_then(|v| v.pointer(pointer)).and_then(Value::as_str) {
            return m.trim().to_string();
        }
    }
    let text = String::from_utf8_lossy(body);
    let excerpt: String = text.chars().take(200).collect();
    if excerpt.trim().is_empty() { "empty body".into() } else { excerpt }
}

/// One page of `/company/employees`, items left as raw JSON.
#[derive(serde::Deserialize)]
struct EmployeePage<'a> {
    success: Option<bool>,
    metadata: Option<serde_json::Map<String, Value>>,
    /// The item offset Personio served (a number, or a string on some tenants).
    offset: Option<Value>,
    #[serde(borrow)]
    data: Option<Vec<&'a serde_json::value::RawValue>>,
}

/// Just enough of an employee to read its id.
#[derive(serde::Deserialize)]
struct IdOnly {
    attributes: Option<IdAttribute>,
    id: Option<Value>,
}

#[derive(serde::Deserialize)]
struct IdAttribute {
    id: Option<Value>,
}

/// The employee id of a raw item, in any of Personio's shapes.
fn item_id(item: &serde_json::value::RawValue) -> Option<String> {
    let parsed: IdOnly = serde_json::from_str(item.get()).ok()?;
    let id = parsed.attributes.and_then(|a| a.id).or(parsed.id)?;
    match &id {
        Value::Object(map) => id_of(map.get("value")?),
        other => id_of(other),
    }
}

pub(crate) fn malformed(path: &str, e: &serde_json::Error) -> ConnectorError {
    bad(&format!("{path} returned malformed JSON ({e}); try again later or contact Personio support"))
}

fn parse_json(path: &str, body: &[u8]) -> Result<Value, ConnectorError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(path, &e))?;
    if value.get("success").and_then(Value::as_bool) == Some(false) {
        return Err(bad(&format!("{path} reported failure: {}", error_message(body))));
    }
    Ok(value)
}

pub(crate) fn bad(message: &str) -> ConnectorError {
    ConnectorError::BadResponse(message.into())
}

/// A transport failure. (When hrsync's sandbox denied the request, the host
/// reports that denial itself, with the origins that are granted.)
pub(crate) fn unreachable(settings: &Settings, error: &anyhow::Error) -> ConnectorError {
    ConnectorError::Unreachable(format!(
        "could not reach {} ({}); check the API base URL and the network",
        settings.base_url,
        in_words(&format!("{error:#}"))
    ))
}

/// wasi:http's error codes print as Rust debug text
/// (`ErrorCode::HttpProtocolError`); admins read what happened instead.
fn in_words(transport: &str) -> String {
    const WORDS: [(&str, &str); 10] = [
        ("DnsTimeout", "the host name could not be resolved in time"),
        ("DnsError", "the host name could not be resolved"),
        ("ConnectionRefused", "the connection was refused"),
        ("ConnectionTimeout", "the connection timed out"),
        ("ConnectionReadTimeout", "the server stopped answering"),
        ("ConnectionWriteTimeout", "the server stopped reading"),
        ("ConnectionTerminated", "the server closed the connection"),
        ("ConnectionLimitReached", "too many connections are open"),
        ("Tls", "the TLS handshake failed (certificate or protocol)"),
        ("HttpProtocolError", "the answer was not valid HTTP"),
    ];
    match transport.strip_prefix("ErrorCode::") {
        Some(code) => WORDS
            .iter()
            .find(|(name, _)| code.starts_with(name))
            .map_or_else(|| "the connection failed".to_string(), |(_, words)| words.to_string()),
        None => transport.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_read_from_every_body_shape_personio_uses() {
        let said = |body: &str| error_message(body.as_bytes());
        assert_eq!(
            said(r#"{"success":false,"error":{"code":404,"message":"Es ist ein Problem aufgetreten "}}"#),
            "Es ist ein Problem aufgetreten"
        );
        let problem = r#"{"personio_trace_id":"x","timestamp":"2021-05-28T11:17:30+00:00","errors":[{"title":"Bad request","detail":"Provided filter encoding is invalid.","type":"t","_meta":{}}]}"#;
        assert_eq!(said(problem), "Provided filter encoding is invalid.");
        assert_eq!(said(r#"{"errors":[{"title":"Insufficient access scope"}]}"#), "Insufficient access scope");
        assert_eq!(
            said(r#"{"error":"invalid_client","error_description":"The credentials were not correct."}"#),
            "The credentials were not correct."
        );
        assert_eq!(said(r#"{"error":"Internal error"}"#), "Internal error", "a plain v2 error");
        assert_eq!(said("<html>Bad Gateway</html>"), "<html>Bad Gateway</html>");
        assert_eq!(said(""), "empty body");
    }

    #[test]
    fn transport_errors_are_said_in_words_not_error_code_names() {
        assert_eq!(in_words("ErrorCode::HttpProtocolError"), "the answer was not valid HTTP");
        assert_eq!(
            in_words("ErrorCode::DnsError(DnsErrorPayload { rcode: Some(\"address not available\") })"),
            "the host name could not be resolved"
        );
        assert_eq!(in_words("ErrorCode::TlsCertificateError"), "the TLS handshake failed (certificate or protocol)");
        assert_eq!(in_words("ErrorCode::InternalError(None)"), "the connection failed");
        assert_eq!(in_words("outgoing request write failed"), "outgoing request write failed");
    }

    /// Raw items `{"id": n}` for employees `ids`.
    fn items(ids: std::ops::Range<u64>) -> Vec<(String, Box<serde_json::value::RawValue>)> {
        ids.map(|i| (i.to_string(), serde_json::value::RawValue::from_string(format!("{{\"id\":{i}}}")).unwrap()))
            .collect()
    }

    fn read(
        state: &RunState,
        offset: u64,
        served: u64,
        total: u64,
        page: std::ops::Range<u64>,
    ) -> Result<Vec<String>, String> {
        let owned = items(page);
        let refs: Vec<(String, &serde_json::value::RawValue)> =
            owned.iter().map(|(i, r)| (i.clone(), r.as_ref())).collect();
        continue_list(state, offset, served, Some(total), &refs)
            .map(|r| r.into_iter().map(|r| r.source_id).collect())
            .map_err(|e| match e {
                ConnectorError::TemporarilyUnavailable(r) => r.message,
                other => panic!("{other:?}"),
            })
    }

    fn after(total: u64, seen: std::ops::Range<u64>) -> RunState {
        RunState { token: None, seen: seen.map(|i| i.to_string()).collect(), total: Some(total) }
    }

    #[test]
    fn a_page_that_continues_the_list_is_taken() {
        let got = read(&after(250, 0..100), 100, 100, 250, 100..200).unwrap();
        assert_eq!(got.len(), 100);
        assert_eq!(got[0], "100");
    }

    #[test]
    fn an_overlap_whose_start_personio_reports_is_reconciled() {
        // Asked for 100, served from 90: the first ten are the overlap.
        let got = read(&after(250, 0..100), 100, 90, 250, 90..190).unwrap();
        assert_eq!((got.len(), got[0].as_str()), (90, "100"));
    }

    #[test]
    fn a_repeated_page_is_retried_not_taken_as_the_end() {
        let err = read(&after(250, 0..100), 100, 0, 250, 0..100).unwrap_err();
        assert!(err.contains("offset 100") && err.contains("reading the page again"), "{err}");
        // The same, with the offset not echoed: old employees where new belong.
        let err = read(&after(250, 0..100), 100, 100, 250, 0..100).unwrap_err();
        assert!(err.contains("employee 0 came again at offset 100"), "{err}");
    }

    #[test]
    fn a_skip_ahead_and_a_changed_count_are_retried() {
        let err = read(&after(250, 0..100), 100, 110, 250, 110..210).unwrap_err();
        assert!(err.contains("answered from 110"), "{err}");
        let err = read(&after(250, 0..100), 100, 100, 240, 100..200).unwrap_err();
        assert!(err.contains("counts 240 employees, 250 on the first page"), "{err}");
        let err = read(&after(250, 0..200), 200, 200, 250, 200..200).unwrap_err();
        assert!(err.contains("answered offsets 200–200"), "an empty page before the end: {err}");
    }

    #[test]
    fn the_state_is_untouched_by_a_refused_page() {
        let state = after(250, 0..100);
        read(&state, 100, 0, 250, 0..100).unwrap_err();
        assert_eq!(state.seen.len(), 100);
    }
}
