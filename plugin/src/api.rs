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
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct RunState {
    /// The current bearer token; replaced by the `authorization` header Personio echoes.
    token: Option<String>,
    /// Ids returned so far in this run, to drop duplicates across pages.
    seen: HashSet<String>,
}

thread_local! {
    static STATE: RefCell<RunState> = RefCell::new(RunState::default());
}

/// "Test connection".
pub fn check(settings: &Settings) -> Result<CheckReport, ConnectorError> {
    STATE.with_borrow_mut(|s| s.token = None);
    authenticate(settings)?;
    let body =
        parse_json("/v1/company/employees/attributes", &get(settings, "/v1/company/employees/attributes", &[])?)?;
    let list = body
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("/v1/company/employees/attributes returned no `data` list"))?;
    let readable: Vec<SourceAttribute> = list
        .iter()
        .filter_map(|a| {
            let key = a.get("key").and_then(Value::as_str)?;
            let label = a.get("label").and_then(Value::as_str).unwrap_or(key);
            Some(SourceAttribute { key: key.into(), label: label.into() })
        })
        .collect();
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
    let mut warnings = Vec::new();
    if missing.iter().any(|m| m.key == "supervisor") {
        warnings.push("Without `supervisor`, reporting lines are not imported.".to_string());
    }
    Ok(CheckReport { account: settings.subdomain.clone(), readable, missing, warnings })
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

/// One page of `/v1/company/employees`. The cursor is the item offset.
pub fn fetch_page(settings: &Settings, request: &FetchRequest) -> Result<Page, ConnectorError> {
    let offset: usize = match &request.cursor {
        None => {
            STATE.with_borrow_mut(|s| s.seen.clear());
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

    let mut records = Vec::with_capacity(data.len());
    let mut duplicates = 0;
    STATE.with_borrow_mut(|state| {
        for item in &data {
            let Some(id) = item_id(item) else {
                crate::log(Level::Warn, "skipped an employee without an id");
                continue;
            };
            if !state.seen.insert(id.clone()) {
                duplicates += 1;
                continue;
            }
            records.push(RawRecord { source_id: id, payload: item.get().to_string() });
        }
    });
    if duplicates > 0 {
        crate::log(Level::Warn, &format!("offset {offset}: dropped {duplicates} employees already returned"));
    }

    let next = offset + data.len();
    let last = data.is_empty()
        || total.is_some_and(|t| next as u64 >= t)
        || (total.is_none() && data.len() < PAGE_SIZE)
        // A page of nothing new is a repeated page: stop rather than loop.
        || records.is_empty();
    if !data.is_empty() && records.is_empty() {
        crate::log(Level::Warn, &format!("offset {offset}: the page repeated earlier ones; stopping"));
    }
    Ok(Page { records, next_cursor: (!last).then(|| next.to_string()), total })
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
    let response = waki::Client::new()
        .post(&url)
        .header("X-Personio-App-ID", APP_ID)
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .body(serde_json::json!({"client_id": client_id, "client_secret": client_secret}).to_string())
        .connect_timeout(CONNECT_TIMEOUT)
        .send()
        .map_err(|e| unreachable(settings, &e))?;
    let status = response.status_code();
    let retry_after = retry_after(&response);
    let body = response.body().map_err(|e| unreachable(settings, &e))?;
    match status {
        200..=299 => {}
        401 | 403 => {
            return Err(ConnectorError::CredentialsRejected(format!(
                "Personio rejected the client id and secret ({}). Check them in the settings; credentials are created under Settings → Integrations → API credentials.",
                error_message(&body)
            )));
        }
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

/// A GET with the run's token: re-authenticates once on 401/403, follows
/// token rotation, and classifies failures.
fn get(settings: &Settings, path: &str, query: &[(String, String)]) -> Result<Vec<u8>, ConnectorError> {
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
        match status {
            200..=299 => return Ok(body),
            401 | 403 if !reauthenticated => {
                crate::log(Level::Info, &format!("{path}: HTTP {status}, authenticating again"));
                STATE.with_borrow_mut(|s| s.token = None);
                reauthenticated = true;
            }
            401 | 403 => {
                return Err(ConnectorError::CredentialsRejected(format!(
                    "Personio refused a fresh token for {path} (HTTP {status}: {}). Check that the credential is still active.",
                    error_message(&body)
                )));
            }
            _ => return Err(classify(status, retry_after, path, &body)),
        }
    }
}

fn classify(status: u16, retry_after: Option<u32>, path: &str, body: &[u8]) -> ConnectorError {
    let message = format!("Personio answered HTTP {status} for {path}: {}", error_message(body));
    match status {
        429 => ConnectorError::RateLimited(Retry { after_seconds: retry_after.unwrap_or(1).max(1), message }),
        502..=504 => {
            ConnectorError::TemporarilyUnavailable(Retry { after_seconds: retry_after.unwrap_or(2).max(1), message })
        }
        _ => ConnectorError::BadResponse(message),
    }
}

fn retry_after(response: &waki::Response) -> Option<u32> {
    response.header("retry-after")?.to_str().ok()?.trim().parse().ok()
}

/// The `error.message` of a Personio error body, or a short excerpt.
fn error_message(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(m) = parsed.as_ref().and_then(|v| v.pointer("/error/message")).and_then(Value::as_str) {
        return m.trim().to_string();
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

fn malformed(path: &str, e: &serde_json::Error) -> ConnectorError {
    bad(&format!("{path} returned malformed JSON ({e}); try again later or contact Personio support"))
}

fn parse_json(path: &str, body: &[u8]) -> Result<Value, ConnectorError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(path, &e))?;
    if value.get("success").and_then(Value::as_bool) == Some(false) {
        return Err(bad(&format!("{path} reported failure: {}", error_message(body))));
    }
    Ok(value)
}

fn bad(message: &str) -> ConnectorError {
    ConnectorError::BadResponse(message.into())
}

/// A transport failure. (When hrsync's sandbox denied the request, the host
/// reports that denial itself, with the origins that are granted.)
fn unreachable(settings: &Settings, error: &anyhow::Error) -> ConnectorError {
    ConnectorError::Unreachable(format!(
        "could not reach {} ({error:#}); check the API base URL and the network",
        settings.base_url
    ))
}
