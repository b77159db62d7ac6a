//! A faithful local imitation of Personio's v1 API and its v2 Person &
//! Employment API ([`v2`]), for tests, benchmarks and the demo: nobody needs
//! a Personio account to try hrsync.
//!
//! It serves generated companies ([`company`]) rendered exactly as Personio
//! does ([`render`]) over real HTTP ([`server`]): token auth with expiry and
//! optional rotation, per-credential attribute whitelists, item-offset paging
//! capped at 100, `attributes[]`, `updated_since`, Personio's error bodies and
//! rate limits. Tests and the admin API change the company between syncs and
//! inject faults (429s, 5xx, slow or malformed responses, repeated and
//! shrinking pages).

pub mod company;
pub mod render;
mod server;
pub mod v2;
pub mod webhooks;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub use company::{CompanySpec, Email, Employee, Status, Unit};
pub use render::Language;
pub use server::Running;
pub use webhooks::{Delivered, DeliveryFault, Webhook};

/// Client id of the demo credential that may read every attribute.
pub const DEMO_CLIENT_ID: &str = "sandbox-client";
/// Its secret. Not a real secret: the sandbox is a local stand-in.
pub const DEMO_CLIENT_SECRET: &str = "sandbox-secret";

/// An API credential of the sandbox tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credential {
    pub client_id: String,
    pub client_secret: String,
    /// Readable attributes; `None` = all. `id` is always readable.
    pub whitelist: Option<Vec<String>>,
    pub language: Language,
    /// Answer in the older shape: attributes with `label` and `value` only.
    pub legacy: bool,
    /// Its v2 tokens carry `personio:persons:read`: it can read `/v2/persons`.
    #[serde(default = "yes")]
    pub v2: bool,
    /// The company this credential reads, instead of the sandbox's own:
    /// one sandbox serves as many companies as it has such credentials
    /// (benchmarks of many tenants). Reads only — [`Sandbox::hire`] and the
    /// other changes, faults and webhooks are the sandbox's own company's.
    #[serde(default)]
    pub company: Option<CompanySpec>,
}

fn yes() -> bool {
    true
}

impl Credential {
    /// A credential that reads everything, with English labels.
    pub fn full(client_id: &str, client_secret: &str) -> Self {
        Credential {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            whitelist: None,
            language: Language::En,
            legacy: false,
            v2: true,
            company: None,
        }
    }

    /// A credential that reads everything of its own company.
    pub fn with_company(client_id: &str, client_secret: &str, company: CompanySpec) -> Self {
        Credential { company: Some(company), ..Credential::full(client_id, client_secret) }
    }

    fn may_read(&self, key: &str) -> bool {
        key == "id" || self.whitelist.as_ref().is_none_or(|w| w.iter().any(|k| k == key))
    }
}

/// How the sandbox is set up.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub company: CompanySpec,
    pub company_name: String,
    pub credentials: Vec<Credential>,
    /// Limits of the employee endpoints; `None` serves as fast as asked.
    pub rate_limit: Option<RateLimit>,
    /// `/v1/auth` calls per minute (Personio: 60).
    pub auth_per_minute: u32,
    pub token_ttl: Duration,
    /// Single-use tokens: every response carries the next token and the old
    /// one stops working, as Personio's API once did.
    pub rotate_tokens: bool,
    /// Refuse request bodies sent without a length (`Transfer-Encoding:
    /// chunked`) with 411, as strict servers and proxies in front of an API
    /// do — they read no body at all.
    pub strict_bodies: bool,
    /// Answer `/v1/company/employees/attributes` with this status instead
    /// (404 or 403), as some tenants' credentials do.
    pub attributes_status: Option<u16>,
    /// v2 `_meta.links` relative (`/v2/persons?cursor=…`), as some v2 APIs
    /// sent them, instead of absolute.
    pub v2_relative_links: bool,
    /// v2 enums (status, gender, employment type) in lower case.
    pub v2_lowercase_enums: bool,
}

impl SandboxConfig {
    /// A company of `people` from `seed`, Personio's documented limits, and
    /// two credentials: the demo one (everything) and `sandbox-limited`
    /// (German labels, no `email` and `supervisor`).
    pub fn new(people: usize, seed: u64) -> Self {
        let limited = Credential {
            client_id: "sandbox-limited".into(),
            client_secret: "sandbox-limited-secret".into(),
            whitelist: Some(
                [
                    "first_name",
                    "last_name",
                    "status",
                    "position",
                    "department",
                    "hire_date",
                    "termination_date",
                    "office",
                    "team",
                ]
                .map(String::from)
                .to_vec(),
            ),
            language: Language::De,
            legacy: false,
            v2: true,
            company: None,
        };
        SandboxConfig {
            company: CompanySpec {
                people,
                seed,
                today: chrono::Utc::now().date_naive(),
                domain: "acme.example".into(),
            },
            company_name: "Acme Demo GmbH".into(),
            credentials: vec![Credential::full(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET), limited],
            rate_limit: Some(RateLimit::PERSONIO),
            auth_per_minute: 60,
            token_ttl: Duration::from_secs(86_400),
            rotate_tokens: false,
            strict_bodies: true,
            attributes_status: None,
            v2_relative_links: false,
            v2_lowercase_enums: false,
        }
    }
}

/// Request limits of the employee endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_minute: u32,
    pub per_second: u32,
}

impl RateLimit {
    /// Personio's documented limits for `/company/employees`.
    pub const PERSONIO: RateLimit = RateLimit { per_minute: 300, per_second: 15 };
}

/// A fault to inject into the next request(s) to `/v1/company/employees`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// HTTP 429, with a `Retry-After` header if given.
    RateLimit { retry_after: Option<u32> },
    /// An error status such as 500, 502, 503 or 504.
    Status { status: u16 },
    /// A 200 whose body is cut-off JSON.
    Malformed,
    /// Answer after a delay.
    Slow { millis: u64 },
    /// Invalidate every token before handling the request.
    ExpireTokens,
    /// Ignore `offset` and serve the first page again.
    RepeatFirstPage,
    /// Start this many items before the requested offset (duplicates across pages).
    Overlap { items: usize },
    /// Report and serve this many fewer employees (a shrinking total).
    Shrink { items: usize },
    /// Start this many items after the requested offset but echo the
    /// requested one: employees silently skipped.
    Gap { items: usize },
}

impl Fault {
    /// One of every kind, with typical parameters: what a fault soak draws from.
    pub fn kinds() -> Vec<Fault> {
        vec![
            Fault::RateLimit { retry_after: Some(1) },
            Fault::RateLimit { retry_after: None },
            Fault::Status { status: 500 },
            Fault::Status { status: 502 },
            Fault::Status { status: 503 },
            Fault::Status { status: 504 },
            Fault::Malformed,
            Fault::Slow { millis: 200 },
            Fault::ExpireTokens,
            Fault::RepeatFirstPage,
            Fault::Overlap { items: 7 },
            Fault::Shrink { items: 3 },
            Fault::Gap { items: 5 },
        ]
    }

    /// A short, stable name of the kind, for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::RateLimit { .. } => "rate-limit",
            Fault::Status { status: 500 } => "status-500",
            Fault::Status { .. } => "status-5xx",
            Fault::Malformed => "malformed",
            Fault::Slow { .. } => "slow",
            Fault::ExpireTokens => "expire-tokens",
            Fault::RepeatFirstPage => "repeat-first-page",
            Fault::Overlap { .. } => "overlap",
            Fault::Shrink { .. } => "shrink",
            Fault::Gap { .. } => "gap",
        }
    }
}

/// Request counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Token requests, v1 and v2.
    pub auth: u64,
    /// v2 tokens revoked.
    pub revoked: u64,
    pub employee_requests: u64,
    pub attribute_requests: u64,
    /// `/v2/persons` and `/v2/persons/{id}`.
    pub person_requests: u64,
    /// `/v2/persons/{id}/employments`.
    pub employment_requests: u64,
    /// `/v2/org-units`.
    pub org_unit_requests: u64,
    pub rate_limited: u64,
    pub faults: u64,
    pub unauthorized: u64,
}

/// A new employee for [`Sandbox::hire`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Hire {
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub supervisor_id: Option<u64>,
    pub position: Option<String>,
    pub department: Option<String>,
    pub status: Option<Status>,
    pub hire_date: Option<NaiveDate>,
}

/// A change for [`Sandbox::apply`]; absent fields are left alone.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Edit {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    /// `Some(None)` removes the supervisor.
    #[serde(default, deserialize_with = "double_option")]
    pub supervisor_id: Option<Option<u64>>,
    pub position: Option<String>,
    pub department: Option<String>,
    pub status: Option<Status>,
    pub termination_date: Option<NaiveDate>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

struct Token {
    credential: usize,
    expires: Instant,
}

struct State {
    config: SandboxConfig,
    employees: Vec<Employee>,
    /// The companies of credentials with their own, by client id.
    companies: HashMap<String, Vec<Employee>>,
    tokens: HashMap<String, Token>,
    faults: VecDeque<Fault>,
    stats: Stats,
    window: VecDeque<Instant>,
    auth_window: VecDeque<Instant>,
    token_window: VecDeque<Instant>,
    /// Past the token limit: one token a second until then.
    token_penalty: Option<TokenPenalty>,
    hooks: webhooks::Hooks,
}

/// Personio's penalty for passing 150 token requests a minute: one a
/// second for the next 60 s.
#[derive(Debug, Clone, Copy)]
struct TokenPenalty {
    until: Instant,
    /// The last token request admitted under the penalty, or the first refused.
    last: Instant,
}

/// A handle on the sandbox tenant; clones share it.
#[derive(Clone)]
pub struct Sandbox {
    state: Arc<Mutex<State>>,
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Self {
        let employees = company::generate(&config.company);
        let companies = config.credentials.iter().filter_map(own_company).collect();
        Sandbox {
            state: Arc::new(Mutex::new(State {
                config,
                employees,
                companies,
                tokens: HashMap::new(),
                faults: VecDeque::new(),
                stats: Stats::default(),
                window: VecDeque::new(),
                auth_window: VecDeque::new(),
                token_window: VecDeque::new(),
                token_penalty: None,
                hooks: webhooks::Hooks::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("sandbox state")
    }

    /// Serves the API on `addr` (use port 0 for any free port).
    pub async fn serve(&self, addr: std::net::SocketAddr) -> std::io::Result<Running> {
        server::serve(self.clone(), addr).await
    }

    pub fn len(&self) -> usize {
        self.lock().employees.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn employees(&self) -> Vec<Employee> {
        self.lock().employees.clone()
    }

    pub fn employee(&self, id: u64) -> Option<Employee> {
        self.lock().employees.iter().find(|e| e.id == id).cloned()
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    pub fn reset_stats(&self) {
        self.lock().stats = Stats::default();
    }

    /// Queues faults; each is used by one request, in order.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }

    /// Drops the faults not used yet.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    pub fn set_strict_bodies(&self, strict: bool) {
        self.lock().config.strict_bodies = strict;
    }

    /// Makes the attributes route answer `status` (e.g. 404), or serve again.
    pub fn set_attributes_status(&self, status: Option<u16>) {
        self.lock().config.attributes_status = status;
    }

    /// v2 links relative instead of absolute.
    pub fn set_v2_relative_links(&self, relative: bool) {
        self.lock().config.v2_relative_links = relative;
    }

    /// v2 enums in lower case instead of upper case.
    pub fn set_v2_lowercase_enums(&self, lower: bool) {
        self.lock().config.v2_lowercase_enums = lower;
    }

    pub fn set_rotate_tokens(&self, rotate: bool) {
        self.lock().config.rotate_tokens = rotate;
    }

    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        self.lock().config.rate_limit = limit;
    }

    /// The webhook subscriptions registered through `/v2/webhooks`.
    pub fn webhooks(&self) -> Vec<Webhook> {
        self.lock().hooks.webhooks.clone()
    }

    /// Every delivery so far, in the order they ended.
    pub fn deliveries(&self) -> Vec<Delivered> {
        self.lock().hooks.log.clone()
    }

    /// Queues delivery faults; each is used by one delivery, in order.
    pub fn inject_delivery_faults(&self, faults: impl IntoIterator<Item = DeliveryFault>) {
        self.lock().hooks.faults.extend(faults);
    }

    /// The wait before a failed delivery's first retry (Personio's is
    /// longer); it doubles per attempt.
    pub fn set_delivery_backoff(&self, first: Duration) {
        self.lock().hooks.backoff = Some(first);
    }

    pub fn add_credential(&self, credential: Credential) {
        let mut s = self.lock();
        if let Some((client_id, employees)) = own_company(&credential) {
            s.companies.insert(client_id, employees);
        }
        s.config.credentials.push(credential);
    }

    /// How many people the company `client_id` reads has.
    pub fn company_size(&self, client_id: &str) -> Option<usize> {
        let s = self.lock();
        let credential = s.config.credentials.iter().find(|c| c.client_id == client_id)?;
        Some(s.staff(credential).len())
    }

    /// Adds an employee; returns the new id.
    pub fn hire(&self, hire: Hire) -> u64 {
        let mut s = self.lock();
        let id = s.employees.iter().map(|e| e.id).max().unwrap_or(999) + 1;
        let now = chrono::Utc::now().timestamp();
        let department = hire.department.map(|name| unit_named(&s.employees, &name, |e| &e.department));
        let employee = Employee {
            id,
            first_name: hire.first_name,
            last_name: hire.last_name,
            preferred_name: None,
            email: hire.email.map_or(Email::Null, Email::Address),
            gender: None,
            status: hire.status.unwrap_or(Status::Active),
            position: hire.position.unwrap_or_default(),
            supervisor: hire.supervisor_id,
            hire_date: hire.hire_date.unwrap_or(s.config.company.today),
            termination_date: None,
            department,
            office: None,
            team: None,
            cost_center: "CC-100".into(),
            skills: Vec::new(),
            last_modified: now,
            created: now,
        };
        s.employees.push(employee);
        s.hooks.emit("person.created", id);
        s.hooks.emit("employment.created", id);
        id
    }

    /// Changes an employee and bumps `last_modified_at`.
    pub fn apply(&self, id: u64, edit: Edit) -> Result<(), String> {
        let mut s = self.lock();
        // What Personio's webhooks would announce: person fields, employment fields.
        let person = edit.first_name.is_some() || edit.last_name.is_some() || edit.email.is_some();
        let employment = edit.supervisor_id.is_some()
            || edit.position.is_some()
            || edit.department.is_some()
            || edit.status.is_some()
            || edit.termination_date.is_some();
        let department = edit.department.as_ref().map(|name| unit_named(&s.employees, name, |e| &e.department));
        let e = s.employees.iter_mut().find(|e| e.id == id).ok_or_else(|| format!("no employee {id}"))?;
        if let Some(v) = edit.first_name {
            e.first_name = v;
        }
        if let Some(v) = edit.last_name {
            e.last_name = v;
        }
        if let Some(v) = edit.email {
            e.email = if v.is_empty() { Email::Empty } else { Email::Address(v) };
        }
        if let Some(v) = edit.supervisor_id {
            e.supervisor = v;
        }
        if let Some(v) = edit.position {
            e.position = v;
        }
        if let Some(v) = department {
            e.department = Some(v);
        }
        if let Some(v) = edit.status {
            e.status = v;
            if v != Status::Inactive {
                e.termination_date = None;
            }
        }
        if let Some(v) = edit.termination_date {
            e.termination_date = Some(v);
        }
        e.last_modified = chrono::Utc::now().timestamp();
        if person {
            s.hooks.emit("person.updated", id);
        }
        if employment {
            s.hooks.emit("employment.updated", id);
        }
        Ok(())
    }

    /// Makes an employee vanish, as a permission or filter change would.
    pub fn remove(&self, id: u64) -> bool {
        let mut s = self.lock();
        let before = s.employees.len();
        s.employees.retain(|e| e.id != id);
        let removed = s.employees.len() != before;
        if removed {
            s.hooks.emit("person.deleted", id);
        }
        removed
    }
}

impl State {
    /// The people `credential` reads: its own company's, or the sandbox's.
    fn staff(&self, credential: &Credential) -> &[Employee] {
        credential.company.as_ref().and_then(|_| self.companies.get(&credential.client_id)).unwrap_or(&self.employees)
    }
}

/// A credential's own company, generated.
fn own_company(credential: &Credential) -> Option<(String, Vec<Employee>)> {
    credential.company.as_ref().map(|spec| (credential.client_id.clone(), company::generate(spec)))
}

/// The unit with that name, or a new one.
fn unit_named(employees: &[Employee], name: &str, field: impl Fn(&Employee) -> &Option<Unit>) -> Unit {
    employees
        .iter()
        .filter_map(|e| field(e).as_ref())
        .find(|u| u.name == name)
        .cloned()
        .unwrap_or_else(|| Unit { id: 290_000 + employees.len() as u64, name: name.into() })
}
