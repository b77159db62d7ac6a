//! The Personio v2 client: OAuth2 client-credentials tokens, `/v2/persons`
//! cursor pages with each person's latest employment, and department and
//! team names from `/v2/org-units`. Each person becomes the same v1-shaped
//! employee record [`crate::mapping`] reads, so v1 and v2 give the same
//! people by construction (a v2 person id is the v1 employee id).
//!
//! v2 has no office names (API-NOTES-v2 §1.5): each office's name is read
//! once per run from the v1 record of the first person seen in it, with the
//! same credential. v2 persons'
//! `updated_at` does not move when an employment changes, so an incremental
//! request reads everyone: complete, never stale.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use crate::api::{
    CONNECT_TIMEOUT, bad, classify, error_message, malformed, post_form, rejected, retry_after, unreachable,
};
use crate::hrsync::connector::host::Level;
use crate::hrsync::connector::types::{ConnectorError, FetchRequest, Page, RawRecord, Retry};
use crate::settings::{APP_ID, ApiVersion, Settings};

/// Persons per page: half of Personio's 50, because each person costs a
/// request of its own (their employment) and one call should stay well
/// within the host's bound on resources held at once.
pub const PAGE_SIZE: usize = 25;
/// Personio's largest page, of persons and of org units.
const MAX_PAGE_SIZE: usize = 50;
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
    /// Office names by id, from v1.
    offices: HashMap<String, String>,
    /// v1 refused to give an office name: none are asked for again.
    offices_unreadable: bool,
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
            // Busy is not a refusal: the host waits and asks again, and
            // this run still reads v2 then.
            Err(e @ (ConnectorError::RateLimited(_) | ConnectorError::TemporarilyUnavailable(_))) => return Err(e),
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
    let (status, wait, body) = post_form(settings, &format!("{}{path}", settings.base_url), form)?;
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let oauth_error = parsed.as_ref().and_then(|v| v.get("error")).and_then(Value::as_str);
    if status == 400 && matches!(oauth_error, Some("invalid_client" | "unauthorized_client" | "invalid_grant")) {
        return Err(rejected(&body));
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
    match post_form(settings, &format!("{}/v2/auth/revoke", settings.base_url), form) {
        Ok((200..=299, _, _)) => {}
        Ok((status, _, _)) => {
            crate::log(Level::Warn, &format!("/v2/auth/revoke answered HTTP {status}; the token expires by itself"))
        }
        Err(e) => {
            crate::log(Level::Warn, &format!("/v2/auth/revoke failed ({}); the token expires by itself", describe(&e)))
        }
    }
}

/// A request to a v2 resource with the run's token (a new one once if it
/// is refused): the status and body of the answer, whatever the status.
/// `target` is a path with its query, e.g. `/v2/persons?limit=50`.
fn call(
    settings: &Settings,
    method: waki::Method,
    target: &str,
    json: Option<&Value>,
) -> Result<(u16, Option<u32>, Vec<u8>), ConnectorError> {
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
        let mut request = waki::Client::new()
            .request(method.clone(), &url)
            .header("Authorization", format!("Bearer {token}"))
            .header("X-Personio-App-ID", APP_ID)
            .header("Accept", "application/json")
            .connect_timeout(CONNECT_TIMEOUT);
        if let Some(json) = json {
            request = request.header("Content-Type", "application/json").body(json.to_string());
        }
        let response = request.send().map_err(|e| unreachable(settings, &e))?;
        let status = response.status_code();
        let wait = retry_after(&response);
        let body = response.body().map_err(|e| unreachable(settings, &e))?;
        if status == 401 && !renewed {
            crate::log(Level::Info, &format!("{path}: HTTP 401, asking for a new token"));
            STATE.with_borrow_mut(|s| s.token = None);
            renewed = true;
            continue;
        }
        return Ok((status, wait, body));
    }
}

/// The error of a non-2xx answer to `path`; `scope` is what a 403 lacks.
fn refused(status: u16, wait: Option<u32>, path: &str, body: &[u8], scope: &str) -> ConnectorError {
    match status {
        401 => ConnectorError::TemporarilyUnavailable(Retry {
            after_seconds: 2,
            message: format!("Personio refused a fresh v2 token for {path}: {}", error_message(body)),
        }),
        403 => ConnectorError::CredentialsRejected(format!(
            "Personio refused {path} ({}): give the API credential the scope {scope}, or set the Personio API to v1",
            error_message(body)
        )),
        _ => classify(status, wait, path, body),
    }
}

/// A GET that must succeed: its JSON body.
fn get(settings: &Settings, target: &str) -> Result<Value, ConnectorError> {
    get_optional(settings, target)?.ok_or_else(|| {
        let path = target.split('?').next().unwrap_or(target);
        bad(&format!("Personio answered HTTP 404 for {path}"))
    })
}

/// A GET whose 404 means "no such person": `None`.
fn get_optional(settings: &Settings, target: &str) -> Result<Option<Value>, ConnectorError> {
    let path = target.split('?').next().unwrap_or(target);
    match call(settings, waki::Method::Get, target, None)? {
        (200..=299, _, body) => serde_json::from_slice(&body).map(Some).map_err(|e| malformed(path, &e)),
        (404, _, _) => Ok(None),
        (status, wait, body) => Err(refused(status, wait, path, &body, PERSONS_SCOPE)),
    }
}

/// Registers a Personio webhook to `url`, sending `token` verbatim.
pub fn subscribe(
    settings: &Settings,
    url: &str,
    token: &str,
    events: &[&str],
) -> Result<(String, String), ConnectorError> {
    let body = json!({
        "url": url,
        "description": "hrsync: imports each change within seconds",
        "status": "ENABLED",
        "auth_type": "TOKEN",
        "token": token,
        "enabled_events": events,
    });
    match call(settings, waki::Method::Post, "/v2/webhooks", Some(&body))? {
        (200..=299, _, answer) => {
            let created: Value = serde_json::from_slice(&answer).map_err(|e| malformed("/v2/webhooks", &e))?;
            let id = created
                .get("id")
                .and_then(crate::attributes::id_of)
                .ok_or_else(|| bad("/v2/webhooks answered without the webhook's `id`"))?;
            Ok((id.clone(), format!("Personio webhook {id} ({})", events.join(", "))))
        }
        (status, wait, answer) => Err(refused(status, wait, "/v2/webhooks", &answer, WEBHOOKS_SCOPE)),
    }
}

/// Removes a Personio webhook; one Personio no longer knows is gone already.
pub fn unsubscribe(settings: &Settings, id: &str) -> Result<(), ConnectorError> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(ConnectorError::InvalidSettings(format!("`{id}` is not a Personio webhook id")));
    }
    let path = format!("/v2/webhooks/{id}");
    match call(settings, waki::Method::Delete, &path, None)? {
        (200..=299 | 404, _, _) => Ok(()),
        (status, wait, answer) => Err(refused(status, wait, &path, &answer, WEBHOOKS_SCOPE)),
    }
}

const WEBHOOKS_SCOPE: &str = "personio:webhooks:write";

/// Exactly these people, as the records a complete run would give them:
/// one list request per 50 people, then each person's latest employment
/// and, for an office new to the run, its name from v1; org unit names
/// once per run. Those Personio no longer has are left out.
pub fn fetch_people(settings: &Settings, ids: &[String]) -> Result<Vec<RawRecord>, ConnectorError> {
    if let Some(id) =
        ids.iter().find(|id| id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        return Err(ConnectorError::InvalidSettings(format!("`{id}` is not a Personio person id")));
    }
    // The host may call again, or not: each call ends with its token
    // revoked, so no token outlives the run.
    let read = read_people(settings, ids);
    revoke(settings);
    read
}

fn read_people(settings: &Settings, ids: &[String]) -> Result<Vec<RawRecord>, ConnectorError> {
    read_units(settings)?;
    let mut records = Vec::with_capacity(ids.len());
    // One list request per 50 ids (`id` filters the list), then each
    // person's employment.
    for chunk in ids.chunks(MAX_PAGE_SIZE) {
        for person in persons_with_ids(settings, chunk)? {
            let Some(id) = person.get("id").and_then(crate::attributes::id_of) else { continue };
            if !chunk.contains(&id) || records.iter().any(|r: &RawRecord| r.source_id == id) {
                continue;
            }
            let employment = latest_employment(settings, &id)?;
            learn_office(settings, &id, employment.as_ref())?;
            let payload = STATE.with_borrow(|s| employee(s, &person, employment.as_ref()))?;
            records.push(RawRecord { source_id: id, payload: payload.to_string() });
        }
    }
    for id in ids.iter().filter(|id| !records.iter().any(|r| &r.source_id == *id)) {
        crate::log(Level::Info, &format!("person {id} is no longer in Personio"));
    }
    STATE.with_borrow_mut(|s| s.employments.clear());
    Ok(records)
}

/// `/v2/persons?id=…`: the persons among `ids` that Personio has, following
/// `next` links should it page them.
fn persons_with_ids(settings: &Settings, ids: &[String]) -> Result<Vec<Value>, ConnectorError> {
    let mut target = Some(format!("/v2/persons?id={}&limit={MAX_PAGE_SIZE}", ids.join(",")));
    let mut seen = HashSet::new();
    let mut persons = Vec::new();
    while let Some(t) = target.take() {
        if !seen.insert(t.clone()) {
            return Err(bad(&format!("/v2/persons repeated a page ({t})")));
        }
        let mut body = get(settings, &t)?;
        let data = match body.get_mut("_data").map(Value::take) {
            Some(Value::Array(data)) => data,
            _ => return Err(bad("/v2/persons returned no `_data` list")),
        };
        persons.extend(data);
        let next = body.pointer("/_meta/links/next/href").and_then(Value::as_str);
        target = next.map(path_and_query).transpose()?;
    }
    Ok(persons)
}

/// One office's name, from the person's v1 record.
fn read_office_of(settings: &Settings, person: &str, office: &str) -> Result<(), ConnectorError> {
    let path = format!("/v1/company/employees/{person}");
    let answer = crate::api::get_raw(settings, &path, &[])?;
    if matches!(answer.status, 403 | 404) {
        crate::log(
            Level::Warn,
            &format!(
                "office names are not in Personio's API v2 and {path} answered HTTP {}: offices are left out",
                answer.status
            ),
        );
        STATE.with_borrow_mut(|s| s.offices_unreadable = true);
        return Ok(());
    }
    let body: Value = serde_json::from_slice(&answer.into_body(&path)?).map_err(|e| malformed(&path, &e))?;
    let name = body.pointer("/data/attributes/office/value/attributes/name").and_then(Value::as_str);
    if let Some(name) = name {
        STATE.with_borrow_mut(|s| s.offices.insert(office.to_string(), name.to_string()));
    }
    Ok(())
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
        learn_office(settings, &id, employment.as_ref())?;
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
        let mut target = Some(format!("/v2/org-units?type={kind}&limit={MAX_PAGE_SIZE}"));
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

/// The name of the employment's office, if it is new to this run: v2 has
/// no office names, the person's v1 record does.
fn learn_office(settings: &Settings, person: &str, employment: Option<&Value>) -> Result<(), ConnectorError> {
    let office = employment.and_then(|e| e.pointer("/office/id")).and_then(crate::attributes::id_of);
    match office {
        Some(office) if STATE.with_borrow(|s| !s.offices.contains_key(&office) && !s.offices_unreadable) => {
            read_office_of(settings, person, &office)
        }
        _ => Ok(()),
    }
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
        && let Some(name) = state.offices.get(&office)
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
        s.offices = HashMap::from([("7".into(), "Berlin".into())]);
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
    fn typed_custom_values_in_either_case_read_as_text() {
        let person = json!({"id": "5", "custom_attributes": [
            {"id": "dynamic_1", "type": "INT", "value": 42},
            {"id": "dynamic_2", "type": "double", "value": 37.5},
            {"id": "dynamic_3", "type": "BOOLEAN", "value": true},
            {"id": "dynamic_4", "type": "date", "value": "2024-02-29"},
            {"id": "dynamic_5", "type": "STRING_LIST", "value": ["a", "b"]},
            {"id": "dynamic_6", "type": "UNSPECIFIED", "value": null}]});
        let record = employee(&state(), &person, None).unwrap();
        let a = crate::attributes::Attributes::of_employee(&record).unwrap();
        let text = |k: &str| a.custom_text(k);
        assert_eq!(text("dynamic_1").as_deref(), Some("42"));
        assert_eq!(text("dynamic_2").as_deref(), Some("37.5"));
        assert_eq!(text("dynamic_3").as_deref(), Some("true"));
        assert_eq!(text("dynamic_4").as_deref(), Some("2024-02-29"));
        assert_eq!(text("dynamic_5").as_deref(), Some("a, b"));
        assert_eq!(text("dynamic_6"), None);
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
