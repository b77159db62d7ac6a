//! The Personio v2 client: OAuth2 client-credentials tokens, `/v2/persons`
//! cursor pages with each person's latest employment, and department and
//! team names from `/v2/org-units`. Each person becomes the same v1-shaped
//! employee record [`crate::mapping`] reads, so v1 and v2 give the same
//! people by construction (a v2 person id is the v1 employee id).
//!
//! v2 has no office names (API-NOTES-v2 §1.5): they are read once per run
//! from v1 (`attributes[]=office`), with the same credential. v2 persons'
//! `updated_at` does not move when an employment changes, so an incremental
//! request reads everyone: complete, never stale.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use crate::api::{CONNECT_TIMEOUT, bad, classify, error_message, malformed, retry_after, unreachable};
use crate::hrsync::connector::host::Level;
use crate::hrsync::connector::types::{ConnectorError, FetchRequest, Page, RawRecord, Retry};
use crate::settings::{APP_ID, ApiVersion, Settings};

/// Personio's maximum page size for v2 lists.
pub const PAGE_SIZE: usize = 50;
const PERSONS_SCOPE: &str = "personio:persons:read";

/// Which API this run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    V1,
    V2,
}

#[derive(Default)]
struct RunState {
    api: Option<Api>,
    token: Option<String>,
    /// Ids returned so far in this run, to drop duplicates across pages.
    seen: HashSet<String>,
    /// Org unit names by type and id, read once per run.
    units: HashMap<(String, String), String>,
    units_read: bool,
    /// Office names by id, from v1; `None` until read.
    offices: Option<HashMap<String, String>>,
    /// Employments read for the page being fetched: a page retried after a
    /// rate limit asks only for the ones still missing.
    employments: HashMap<String, Option<Value>>,
}

thread_local! {
    static STATE: RefCell<RunState> = RefCell::new(RunState::default());
}

/// The API this run reads: as set, or for `auto` v2 when the credential's
/// token may read persons. Decided once per run.
pub fn resolve(settings: &Settings) -> Result<Api, ConnectorError> {
    if let Some(api) = STATE.with_borrow(|s| s.api) {
        return Ok(api);
    }
    let api = match settings.api_version {
        ApiVersion::V1 => Api::V1,
        ApiVersion::V2 => Api::V2,
        ApiVersion::Auto => match token(settings) {
            Ok(grant) if grant.may_read_persons => Api::V2,
            Ok(_) => {
                crate::log(Level::Info, "the credential's v2 token may not read persons: reading API v1");
                Api::V1
            }
            Err(e) => {
                crate::log(Level::Info, &format!("no v2 token ({}): reading API v1", describe(&e)));
                Api::V1
            }
        },
    };
    STATE.with_borrow_mut(|s| s.api = Some(api));
    Ok(api)
}

fn describe(e: &ConnectorError) -> String {
    match e {
        ConnectorError::CredentialsRejected(m)
        | ConnectorError::BadResponse(m)
        | ConnectorError::Unreachable(m)
        | ConnectorError::InvalidSettings(m) => m.clone(),
        ConnectorError::RateLimited(r) | ConnectorError::TemporarilyUnavailable(r) => r.message.clone(),
        ConnectorError::PermissionDenied(missing) => {
            let keys: Vec<&str> = missing.iter().map(|m| m.key.as_str()).collect();
            format!("missing permissions for {}", keys.join(", "))
        }
    }
}

/// What `/v2/auth/token` granted.
struct Grant {
    may_read_persons: bool,
}

/// `POST /v2/auth/token`, form-encoded client credentials; keeps the token
/// for the run.
fn token(settings: &Settings) -> Result<Grant, ConnectorError> {
    let (client_id, client_secret) = settings.credentials()?;
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", client_id)
        .append_pair("client_secret", client_secret)
        .finish();
    let path = "/v2/auth/token";
    let response = waki::Client::new()
        .post(&format!("{}{path}", settings.base_url))
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
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let oauth_error = parsed.as_ref().and_then(|v| v.get("error")).and_then(Value::as_str);
    if status == 400 && matches!(oauth_error, Some("invalid_client" | "unauthorized_client" | "invalid_grant")) {
        return Err(ConnectorError::CredentialsRejected(format!(
            "Personio rejected the client id and secret ({}). Check them in the settings; credentials are created under Settings → Integrations → API credentials.",
            error_message(&body)
        )));
    }
    if !(200..300).contains(&status) {
        return Err(classify(status, wait, path, &body));
    }
    let json = parsed.ok_or_else(|| bad(&format!("{path} answered with a body that is not JSON")))?;
    let token = json
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad(&format!("{path} answered without `access_token`")))?;
    // Without a scope list the token has every scope of the client.
    let may_read_persons =
        json.get("scope").and_then(Value::as_str).is_none_or(|s| s.split_whitespace().any(|s| s == PERSONS_SCOPE));
    STATE.with_borrow_mut(|s| s.token = Some(token.to_string()));
    Ok(Grant { may_read_persons })
}

/// `POST /v2/auth/revoke` at the end of a run; a failure is only logged.
fn revoke(settings: &Settings) {
    let Some(token) = STATE.with_borrow_mut(|s| s.token.take()) else { return };
    let form = form_urlencoded::Serializer::new(String::new()).append_pair("token", &token).finish();
    let sent = waki::Client::new()
        .post(&format!("{}/v2/auth/revoke", settings.base_url))
        .header("X-Personio-App-ID", APP_ID)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .connect_timeout(CONNECT_TIMEOUT)
        .send();
    match sent.map(|r| r.status_code()) {
        Ok(200..=299) => {}
        Ok(status) => {
            crate::log(Level::Warn, &format!("/v2/auth/revoke answered HTTP {status}; the token expires by itself"))
        }
        Err(e) => crate::log(Level::Warn, &format!("/v2/auth/revoke failed ({e}); the token expires by itself")),
    }
}

/// A GET of a v2 resource with the run's token (a new one once if it is
/// refused); the body of a 2xx answer, the classified error otherwise.
/// `target` is a path with its query, e.g. `/v2/persons?limit=50`.
fn get(settings: &Settings, target: &str) -> Result<Value, ConnectorError> {
    let url = format!("{}{target}", settings.base_url);
    let path = target.split('?').next().unwrap_or(target);
    let mut renewed = false;
    loop {
        let token = match STATE.with_borrow(|s| s.token.clone()) {
            Some(t) => t,
            None => {
                token(settings)?;
                STATE.with_borrow(|s| s.token.clone()).expect("a token was just stored")
            }
        };
        let response = waki::Client::new()
            .get(&url)
            .header("Authorization", format!("Bearer {token}"))
            .header("X-Personio-App-ID", APP_ID)
            .header("Accept", "application/json")
            .connect_timeout(CONNECT_TIMEOUT)
            .send()
            .map_err(|e| unreachable(settings, &e))?;
        let status = response.status_code();
        let wait = retry_after(&response);
        let body = response.body().map_err(|e| unreachable(settings, &e))?;
        match status {
            200..=299 => return serde_json::from_slice(&body).map_err(|e| malformed(path, &e)),
            401 if !renewed => {
                crate::log(Level::Info, &format!("{path}: HTTP 401, asking for a new token"));
                STATE.with_borrow_mut(|s| s.token = None);
                renewed = true;
            }
            401 => {
                return Err(ConnectorError::TemporarilyUnavailable(Retry {
                    after_seconds: 2,
                    message: format!("Personio refused a fresh v2 token for {path}: {}", error_message(&body)),
                }));
            }
            403 => {
                return Err(ConnectorError::CredentialsRejected(format!(
                    "Personio refused {path} ({}): give the API credential the scope {PERSONS_SCOPE}, or set the Personio API to v1",
                    error_message(&body)
                )));
            }
            _ => return Err(classify(status, wait, path, &body)),
        }
    }
}

/// "Test connection" with v2: the first person can be read.
pub fn check_persons(settings: &Settings) -> Result<(), ConnectorError> {
    get(settings, "/v2/persons?limit=1").map(|_| ())
}

/// One page of persons with their employments. The cursor is the `next`
/// link Personio gave (absolute or relative); only its path and query are
/// used, on the configured base URL.
pub fn fetch_page(settings: &Settings, request: &FetchRequest) -> Result<Page, ConnectorError> {
    let target = match &request.cursor {
        None => {
            STATE.with_borrow_mut(|s| s.seen.clear());
            read_units(settings)?;
            read_offices(settings)?;
            format!("/v2/persons?limit={PAGE_SIZE}")
        }
        Some(link) => path_and_query(link)?,
    };
    let body = get(settings, &target)?;
    let data =
        body.get("_data").and_then(Value::as_array).ok_or_else(|| bad("/v2/persons returned no `_data` list"))?;
    let mut records: Vec<RawRecord> = Vec::with_capacity(data.len());
    for person in data {
        let id = person
            .get("id")
            .and_then(crate::attributes::id_of)
            .ok_or_else(|| bad("/v2/persons returned a person without an id; cannot tell who it is"))?;
        if STATE.with_borrow(|s| s.seen.contains(&id)) || records.iter().any(|r| r.source_id == id) {
            crate::log(Level::Info, &format!("person {id} came again; skipped"));
            continue;
        }
        let employment = latest_employment(settings, &id)?;
        let payload = STATE.with_borrow(|s| employee(s, person, employment.as_ref()))?;
        records.push(RawRecord { source_id: id, payload: payload.to_string() });
    }
    let next = body.pointer("/_meta/links/next/href").and_then(Value::as_str).map(String::from);
    if let Some(n) = &next
        && path_and_query(n)? == target
    {
        return Err(bad(&format!(
            "Personio's next link points to the page just read ({n}); the list cannot be read to its end"
        )));
    }
    // The page is whole: remember who came, forget their employments.
    STATE.with_borrow_mut(|s| {
        s.seen.extend(records.iter().map(|r| r.source_id.clone()));
        s.employments.clear();
    });
    if next.is_none() {
        revoke(settings);
    }
    Ok(Page { records, next_cursor: next, total: None })
}

/// `/v2/persons?cursor=…` of an absolute or relative link.
fn path_and_query(link: &str) -> Result<String, ConnectorError> {
    if link.starts_with('/') {
        return Ok(link.to_string());
    }
    let rest = link
        .strip_prefix("https://")
        .or_else(|| link.strip_prefix("http://"))
        .ok_or_else(|| bad(&format!("`{link}` is not a link Personio gives")))?;
    Ok(rest.find('/').map_or_else(|| "/".to_string(), |at| rest[at..].to_string()))
}

/// The person's most recent employment (Personio lists it first).
fn latest_employment(settings: &Settings, person: &str) -> Result<Option<Value>, ConnectorError> {
    if let Some(known) = STATE.with_borrow(|s| s.employments.get(person).cloned()) {
        return Ok(known);
    }
    let target = format!("/v2/persons/{person}/employments?limit=1");
    let body = get(settings, &target)?;
    let latest = body.get("_data").and_then(Value::as_array).and_then(|d| d.first()).cloned();
    STATE.with_borrow_mut(|s| s.employments.insert(person.to_string(), latest.clone()));
    Ok(latest)
}

/// Department and team names, from `/v2/org-units` (paged).
fn read_units(settings: &Settings) -> Result<(), ConnectorError> {
    if STATE.with_borrow(|s| s.units_read) {
        return Ok(());
    }
    let mut units = HashMap::new();
    for kind in ["department", "team"] {
        let mut target = Some(format!("/v2/org-units?type={kind}&limit={PAGE_SIZE}"));
        let mut seen = HashSet::new();
        while let Some(t) = target.take() {
            if !seen.insert(t.clone()) {
                return Err(bad(&format!("/v2/org-units repeated a page ({t})")));
            }
            let body = get(settings, &t)?;
            for unit in body.get("_data").and_then(Value::as_array).into_iter().flatten() {
                let id = unit.get("id").and_then(crate::attributes::id_of);
                let name = unit.get("name").and_then(Value::as_str);
                if let (Some(id), Some(name)) = (id, name) {
                    units.insert((kind.to_string(), id), name.to_string());
                }
            }
            let next = body.pointer("/_meta/links/next/href").and_then(Value::as_str);
            target = next.map(path_and_query).transpose()?;
        }
    }
    STATE.with_borrow_mut(|s| {
        s.units = units;
        s.units_read = true;
    });
    Ok(())
}

/// Office names by id, which v2 does not give: one v1 pass over
/// `attributes[]=office`. Refused (403/404): offices are left out.
fn read_offices(settings: &Settings) -> Result<(), ConnectorError> {
    if STATE.with_borrow(|s| s.offices.is_some()) {
        return Ok(());
    }
    let mut offices = HashMap::new();
    let mut offset = 0usize;
    loop {
        let query = [
            ("limit".to_string(), crate::api::PAGE_SIZE.to_string()),
            ("offset".to_string(), offset.to_string()),
            ("attributes[]".to_string(), "office".to_string()),
        ];
        let answer = crate::api::get_raw(settings, "/v1/company/employees", &query)?;
        if matches!(answer.status, 403 | 404) {
            crate::log(
                Level::Warn,
                &format!(
                    "office names are not in Personio's API v2 and v1 answered HTTP {}: offices are left out",
                    answer.status
                ),
            );
            break;
        }
        let body: Value = serde_json::from_slice(&answer.into_body("/v1/company/employees")?)
            .map_err(|e| malformed("/v1/company/employees", &e))?;
        let data = body.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
        for employee in &data {
            let office = employee.pointer("/attributes/office/value/attributes");
            let id = office.and_then(|o| o.get("id")).and_then(crate::attributes::id_of);
            let name = office.and_then(|o| o.get("name")).and_then(Value::as_str);
            if let (Some(id), Some(name)) = (id, name) {
                offices.insert(id, name.to_string());
            }
        }
        offset += data.len();
        let total = body.pointer("/metadata/total_elements").and_then(Value::as_u64);
        if data.is_empty() || total.is_none_or(|t| offset as u64 >= t) {
            break;
        }
    }
    STATE.with_borrow_mut(|s| s.offices = Some(offices));
    Ok(())
}

/// A v2 person and employment as the v1 employee record the mapping reads:
/// only what the credential returned is present.
fn employee(state: &RunState, person: &Value, employment: Option<&Value>) -> Result<Value, ConnectorError> {
    let mut a = Map::new();
    let mut put = |key: &str, value: Value| {
        a.insert(key.into(), json!({ "value": value }));
    };
    let id = person.get("id").and_then(crate::attributes::id_of).unwrap_or_default();
    put("id", json!(id));
    for key in ["first_name", "last_name", "preferred_name", "email"] {
        if let Some(v) = person.get(key) {
            put(key, v.clone());
        }
    }
    if let Some(g) = person.get("gender").and_then(Value::as_str) {
        let g = g.to_ascii_lowercase();
        put("gender", if g == "unspecified" { Value::Null } else { json!(g) });
    }
    let e = employment.and_then(Value::as_object);
    let field = |key: &str| e.and_then(|e| e.get(key));
    // The employment's status is v1's (active, onboarding, leave,
    // inactive); the person's only says active or inactive.
    let status = field("status").or_else(|| person.get("status")).and_then(Value::as_str);
    if let Some(s) = status.map(str::to_ascii_lowercase).filter(|s| s != "unspecified") {
        put("status", json!(s));
    }
    if let Some(p) = field("position") {
        put("position", p.get("title").cloned().unwrap_or(Value::Null));
    }
    if let Some(s) = field("supervisor") {
        put("supervisor", s.get("id").map_or(Value::Null, |id| json!({ "id": id })));
    }
    if let Some(d) = field("employment_start_date") {
        put("hire_date", d.clone());
    }
    let termination =
        field("termination").and_then(|t| t.get("termination_date")).or_else(|| field("employment_end_date"));
    if field("termination").is_some() || field("employment_end_date").is_some() {
        put("termination_date", termination.cloned().unwrap_or(Value::Null));
    }
    for unit in field("org_units").and_then(Value::as_array).into_iter().flatten() {
        let (Some(kind), Some(unit_id)) =
            (unit.get("type").and_then(Value::as_str), unit.get("id").and_then(crate::attributes::id_of))
        else {
            continue;
        };
        let kind = kind.to_ascii_lowercase();
        if !matches!(kind.as_str(), "department" | "team") {
            continue;
        }
        let name = state.units.get(&(kind.clone(), unit_id.clone())).ok_or_else(|| {
            bad(&format!("person {id}'s {kind} {unit_id} is not among /v2/org-units; its name is unknown"))
        })?;
        put(&kind, json!({ "type": kind, "attributes": { "id": unit_id, "name": name } }));
    }
    if let Some(office) = field("office").and_then(|o| o.get("id")).and_then(crate::attributes::id_of)
        && let Some(name) = state.offices.as_ref().and_then(|o| o.get(&office))
    {
        put("office", json!({ "type": "Office", "attributes": { "id": office, "name": name } }));
    }
    for custom in person.get("custom_attributes").and_then(Value::as_array).into_iter().flatten() {
        let Some(key) = custom.get("id").and_then(Value::as_str) else { continue };
        let list = custom.get("type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("string_list"));
        let mut attribute = json!({
            "value": custom.get("value").cloned().unwrap_or(Value::Null),
            "type": if list { "tags" } else { "standard" },
        });
        if let Some(label) = custom.get("label") {
            attribute["label"] = label.clone();
        }
        a.insert(key.into(), attribute);
    }
    Ok(json!({ "type": "Employee", "attributes": a }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> RunState {
        let mut s = RunState::default();
        s.units.insert(("department".into(), "401".into()), "Engineering".into());
        s.units.insert(("team".into(), "45".into()), "Platform".into());
        s.offices = Some(HashMap::from([("7".into(), "Berlin".into())]));
        s
    }

    #[test]
    fn a_person_and_employment_become_the_v1_record_the_mapping_reads() {
        let person = json!({"id": "1042", "first_name": "Zoë", "last_name": "Åström", "email": "zoe@acme.example",
            "gender": "FEMALE", "status": "ACTIVE",
            "custom_attributes": [{"id": "dynamic_1002", "type": "string_list", "value": ["Rust", "Go"]},
                                  {"id": "dynamic_1001", "type": "STRING", "label": "Cost center", "value": "CC-7"}]});
        let employment = json!({"status": "LEAVE", "position": {"title": "Engineer"}, "supervisor": {"id": "7"},
            "employment_start_date": "2020-03-01", "employment_end_date": null, "office": {"id": "7"},
            "org_units": [{"type": "department", "id": "401"}, {"type": "TEAM", "id": "45"}]});
        let record = employee(&state(), &person, Some(&employment)).unwrap();
        let a = crate::attributes::Attributes::of_employee(&record).unwrap();
        assert_eq!(a.text("id").as_deref(), Some("1042"));
        assert_eq!(a.text("gender").as_deref(), Some("female"));
        assert_eq!(a.text("status").as_deref(), Some("leave"), "the employment's status, not the person's");
        assert_eq!(a.text("position").as_deref(), Some("Engineer"));
        assert_eq!(a.reference_id("supervisor").as_deref(), Some("7"));
        assert_eq!(a.text("department").as_deref(), Some("Engineering"));
        assert_eq!(a.text("team").as_deref(), Some("Platform"));
        assert_eq!(a.text("office").as_deref(), Some("Berlin"));
        assert!(a.is_present("termination_date") && a.text("termination_date").is_none());
        assert_eq!(a.custom_text("dynamic_1002").as_deref(), Some("Rust, Go"));
        assert_eq!(a.custom_text("dynamic_1001").as_deref(), Some("CC-7"));
    }

    #[test]
    fn what_the_credential_cannot_read_stays_absent() {
        let person = json!({"id": "9", "first_name": "A", "status": "inactive"});
        let record = employee(&state(), &person, Some(&json!({"position": {"title": "X"}}))).unwrap();
        let a = crate::attributes::Attributes::of_employee(&record).unwrap();
        for key in ["email", "supervisor", "department", "office", "hire_date", "termination_date", "gender"] {
            assert!(!a.is_present(key), "{key}");
        }
        assert_eq!(a.text("status").as_deref(), Some("inactive"), "the person's status when the employment has none");
    }

    #[test]
    fn an_org_unit_without_a_name_fails_rather_than_blanking_a_department() {
        let employment = json!({"org_units": [{"type": "department", "id": "999"}]});
        let err = employee(&state(), &json!({"id": "1"}), Some(&employment)).unwrap_err();
        assert!(matches!(err, ConnectorError::BadResponse(m) if m.contains("department 999")));
    }

    #[test]
    fn next_links_absolute_or_relative_keep_only_path_and_query() {
        assert_eq!(
            path_and_query("https://api.personio.de/v2/persons?cursor=cur_1").unwrap(),
            "/v2/persons?cursor=cur_1"
        );
        assert_eq!(path_and_query("/v2/persons?cursor=cur_2").unwrap(), "/v2/persons?cursor=cur_2");
        assert!(path_and_query("ftp://x/y").is_err());
    }
}
