//! The user directory: users, integrations and the history of runs.
//!
//! The sync engine talks to storage only through [`DirectoryStore`], a
//! narrow interface of whole operations (read what a run needs, write what a
//! run decided in one transaction), so a PostgreSQL backend can be added
//! beside [`sqlite::SqliteStore`] without touching the sync code.

pub mod edit;
pub mod hooks;
pub mod overrides;
pub mod postgres;
pub mod roster;
pub mod sealing;
pub mod sqlite;
mod store;
#[cfg(test)]
mod suite;

pub use overrides::{KeptValue, NewOverride, Override, SourceSays};
pub use store::{
    DirectoryStore, HookStore, IntegrationStore, OutboxStore, OverrideStore, PeopleStore, RunStore, ScheduleStore,
};

/// The store traits, to call them on a concrete store:
/// `use hrsync::directory::prelude::*`.
pub mod prelude {
    pub use super::store::{
        DirectoryStore, HookStore, IntegrationStore, OutboxStore, OverrideStore, PeopleStore, RunStore, ScheduleStore,
    };
}

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::mail::{Invite, Message};

use crate::model::{ConnectorInfo, SettingKind, SettingSpec};
pub use crate::model::{
    Email, Field, Gender, IntegrationId, RunId, Severity, TenantId, UserId, UserStatus, display_name,
};
use crate::runtime::egress::Grants;

/// The values of a user that imports write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub email: Email,
    pub first_name: String,
    pub last_name: String,
    pub preferred_name: Option<String>,
    pub gender: Option<Gender>,
    pub status: UserStatus,
    pub start_date: Option<NaiveDate>,
    pub termination_date: Option<NaiveDate>,
    pub job_title: Option<String>,
    pub employee_id: Option<String>,
    pub department: Option<String>,
    pub office: Option<String>,
    pub team: Option<String>,
    pub custom: BTreeMap<String, String>,
    pub profile_url: Option<String>,
}

impl Profile {
    /// An active person with just an email and a name.
    pub fn new(email: Email, first_name: &str, last_name: &str) -> Self {
        Profile {
            email,
            first_name: first_name.into(),
            last_name: last_name.into(),
            preferred_name: None,
            gender: None,
            status: UserStatus::Active,
            start_date: None,
            termination_date: None,
            job_title: None,
            employee_id: None,
            department: None,
            office: None,
            team: None,
            custom: BTreeMap::new(),
            profile_url: None,
        }
    }

    /// A field's text, in the form [`Field`] defines. The manager is not
    /// part of a profile (it is the user's reporting line): `None`.
    pub fn field(&self, field: &Field) -> Option<String> {
        let date = |d: &Option<NaiveDate>| d.map(|d| d.to_string());
        match field {
            Field::FirstName => Some(self.first_name.clone()),
            Field::LastName => Some(self.last_name.clone()),
            Field::PreferredName => self.preferred_name.clone(),
            Field::Email => Some(self.email.to_string()),
            Field::EmployeeId => self.employee_id.clone(),
            Field::Gender => self.gender.map(|g| g.as_str().into()),
            Field::Status => Some(self.status.as_str().into()),
            Field::Manager => None,
            Field::StartDate => date(&self.start_date),
            Field::TerminationDate => date(&self.termination_date),
            Field::JobTitle => self.job_title.clone(),
            Field::Department => self.department.clone(),
            Field::Office => self.office.clone(),
            Field::Team => self.team.clone(),
            Field::Custom(key) => self.custom.get(key).cloned(),
        }
    }

    /// Every field of the profile, in [`Field::STANDARD`] order, then
    /// custom attributes by key.
    pub fn fields(&self) -> Vec<(Field, Option<String>)> {
        let standard = Field::STANDARD.into_iter().filter(|f| *f != Field::Manager);
        let custom = self.custom.keys().map(|k| Field::Custom(k.clone()));
        standard.chain(custom).map(|f| (f.clone(), self.field(&f))).collect()
    }

    /// Sets one field from its text form; used by revert.
    pub fn set_field(&mut self, field: &Field, value: Option<String>) -> Result<(), String> {
        let required = |v: Option<String>| v.ok_or_else(|| format!("`{field}` cannot be empty"));
        let date = |v: Option<String>| {
            v.map(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|e| format!("`{field}`: {e}"))).transpose()
        };
        match field {
            Field::FirstName => self.first_name = required(value)?,
            Field::LastName => self.last_name = required(value)?,
            Field::PreferredName => self.preferred_name = value,
            Field::Email => self.email = Email::parse(&required(value)?)?,
            Field::EmployeeId => self.employee_id = value,
            Field::Gender => self.gender = value.as_deref().map(Gender::parse).transpose()?,
            Field::Status => self.status = UserStatus::parse(&required(value)?)?,
            Field::Manager => return Err("the manager is the user's reporting line, not a profile field".into()),
            Field::StartDate => self.start_date = date(value)?,
            Field::TerminationDate => self.termination_date = date(value)?,
            Field::JobTitle => self.job_title = value,
            Field::Department => self.department = value,
            Field::Office => self.office = value,
            Field::Team => self.team = value,
            Field::Custom(key) => {
                match value {
                    Some(v) => self.custom.insert(key.clone(), v),
                    None => self.custom.remove(key),
                };
            }
        }
        Ok(())
    }

    pub fn display_name(&self) -> String {
        display_name(&self.first_name, &self.last_name, self.preferred_name.as_deref())
    }
}

/// A directory user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub profile: Profile,
    pub manager_id: Option<UserId>,
    /// The integration that manages this user and the source's id for them.
    pub managed_by: Option<(IntegrationId, String)>,
    /// Consecutive complete runs of the managing integration without this user.
    pub missing_runs: u32,
    pub informed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user as the API and `hrsync users --json` show them: every field of
/// the profile, flat, with who manages them and when they were informed.
impl Serialize for User {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Flat<'a> {
            id: UserId,
            email: &'a Email,
            name: String,
            first_name: &'a str,
            last_name: &'a str,
            preferred_name: Option<&'a str>,
            gender: Option<Gender>,
            status: UserStatus,
            manager_id: Option<UserId>,
            job_title: Option<&'a str>,
            employee_id: Option<&'a str>,
            department: Option<&'a str>,
            office: Option<&'a str>,
            team: Option<&'a str>,
            start_date: Option<NaiveDate>,
            termination_date: Option<NaiveDate>,
            custom: &'a BTreeMap<String, String>,
            profile_url: Option<&'a str>,
            integration_id: Option<IntegrationId>,
            source_id: Option<&'a str>,
            missing_runs: u32,
            informed_at: Option<DateTime<Utc>>,
            created_at: DateTime<Utc>,
            updated_at: DateTime<Utc>,
        }
        let p = &self.profile;
        Flat {
            id: self.id,
            email: &p.email,
            name: p.display_name(),
            first_name: &p.first_name,
            last_name: &p.last_name,
            preferred_name: p.preferred_name.as_deref(),
            gender: p.gender,
            status: p.status,
            manager_id: self.manager_id,
            job_title: p.job_title.as_deref(),
            employee_id: p.employee_id.as_deref(),
            department: p.department.as_deref(),
            office: p.office.as_deref(),
            team: p.team.as_deref(),
            start_date: p.start_date,
            termination_date: p.termination_date,
            custom: &p.custom,
            profile_url: p.profile_url.as_deref(),
            integration_id: self.managed_by.as_ref().map(|m| m.0),
            source_id: self.managed_by.as_ref().map(|m| m.1.as_str()),
            missing_runs: self.missing_runs,
            informed_at: self.informed_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
        .serialize(serializer)
    }
}

/// An unmanaged user created by hand (or by the app the directory belongs to).
#[derive(Debug, Clone)]
pub struct NewUser {
    pub profile: Profile,
    pub manager_id: Option<UserId>,
}

/// One person of an uploaded directory, as it will be written.
#[derive(Debug, Clone, PartialEq)]
pub struct RosterRow {
    /// The unmanaged user with this email, updated; `None`: a new user.
    pub existing: Option<UserId>,
    pub profile: Profile,
    /// `None` leaves an existing user's manager as it is.
    pub manager: Option<RosterManager>,
}

/// A row's manager: a user already in the directory, or another row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RosterManager {
    User(UserId),
    Row(usize),
}

/// How a configured connector instance behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationConfig {
    pub connector_id: String,
    pub name: String,
    /// Setting values in clear; secret ones are encrypted by the store.
    pub settings: BTreeMap<String, String>,
    /// Keys of `settings` that are secrets (from the connector's `describe`).
    pub secret_keys: BTreeSet<String>,
    /// Origins the connector may contact.
    pub grants: Vec<String>,
    pub auto_import: bool,
    pub send_emails: bool,
    pub interval_minutes: u32,
    /// Deactivate a user missing from this many complete runs in a row.
    pub missing_after: u32,
    /// Safeguard: block runs deactivating more than this share of managed users.
    pub max_deactivate_share: f64,
    /// Safeguard: block runs changing more than this share of managed emails.
    pub max_email_share: f64,
    /// How far one run may go before it is stopped.
    pub limits: RunLimits,
    /// The granted origins the secret settings were entered for: a stored
    /// secret is only ever sent there (see [`IntegrationConfig::secrets_bound`]).
    pub secrets_for: Vec<String>,
}

/// Bounds of one run of an integration: a connector that pages forever, or a
/// source far larger than expected, stops the run instead of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Pages fetched.
    pub max_pages: u32,
    /// Records fetched.
    pub max_records: u32,
    /// Wall time of the whole run, fetch, diff and apply.
    pub max_minutes: u32,
}

impl Default for RunLimits {
    /// Room for 100,000 people several times over: 100 a page takes 1,000
    /// pages, and Personio's 300 requests a minute 3–4 minutes.
    fn default() -> Self {
        RunLimits { max_pages: 10_000, max_records: 500_000, max_minutes: 60 }
    }
}

impl IntegrationConfig {
    /// What differs from `before`, in words for the audit log: setting keys
    /// (secret ones marked, never their values) and the named policies.
    pub fn changed_since(&self, before: &IntegrationConfig) -> Vec<String> {
        let b = before;
        let keys: BTreeSet<&String> = b.settings.keys().chain(self.settings.keys()).collect();
        let mut changed: Vec<String> = keys
            .into_iter()
            .filter(|k| b.settings.get(*k) != self.settings.get(*k))
            .map(|k| if self.secret_keys.contains(k) { format!("{k} (secret)") } else { k.clone() })
            .collect();
        let other = [
            ("name", b.name != self.name),
            ("outbound hosts", origins_key(&b.grants) != origins_key(&self.grants)),
            ("automatic imports", b.auto_import != self.auto_import),
            ("password emails", b.send_emails != self.send_emails),
            ("interval", b.interval_minutes != self.interval_minutes),
            (
                "safeguards",
                b.missing_after != self.missing_after
                    || b.max_deactivate_share != self.max_deactivate_share
                    || b.max_email_share != self.max_email_share,
            ),
            ("run limits", b.limits != self.limits),
        ];
        changed.extend(other.into_iter().filter(|(_, differs)| *differs).map(|(name, _)| name.to_string()));
        changed
    }

    /// Defaults for a connector: automatic imports off, every two hours when on.
    pub fn new(connector_id: &str, name: &str) -> Self {
        IntegrationConfig {
            connector_id: connector_id.into(),
            name: name.into(),
            settings: BTreeMap::new(),
            secret_keys: BTreeSet::new(),
            grants: Vec::new(),
            auto_import: false,
            send_emails: false,
            interval_minutes: 120,
            missing_after: 2,
            max_deactivate_share: 0.2,
            max_email_share: 0.2,
            limits: RunLimits::default(),
            secrets_for: Vec::new(),
        }
    }

    /// Checks a configuration against its connector's schema and the
    /// host's bounds — the one place every surface (API, pages, CLI)
    /// validates an integration before saving it. Secrecy comes from the
    /// schema: `secret_keys` is set from it here (the secret settings given).
    ///
    /// The error says what is wrong and what to enter instead.
    pub fn validate(&mut self, connector: &ConnectorInfo) -> Result<(), String> {
        if self.connector_id != connector.id {
            return Err(format!("the integration is for connector `{}`, not `{}`", self.connector_id, connector.id));
        }
        self.name = self.name.trim().to_string();
        if self.name.is_empty() {
            return Err("name is required: what admins call this integration, e.g. \"Personio\"".into());
        }
        let known: Vec<&str> = connector.settings.iter().map(|s| s.key.as_str()).collect();
        if let Some(unknown) = self.settings.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(format!("unknown setting `{unknown}`; {} has: {}", connector.id, known.join(", ")));
        }
        for spec in &connector.settings {
            let value = self.settings.get(&spec.key).map(|v| v.trim()).unwrap_or("");
            if value.is_empty() {
                if spec.required && spec.default_value.is_none() {
                    return Err(format!("`{}` ({}) is required", spec.key, spec.label));
                }
                continue;
            }
            check_setting(spec, value)?;
        }
        self.secret_keys =
            connector.secret_keys().filter(|k| self.settings.contains_key(*k)).map(String::from).collect();
        Grants::parse(&self.grants).map_err(|e| format!("granted host {e}"))?;
        if !(5..=1440).contains(&self.interval_minutes) {
            return Err("interval_minutes must be between 5 (5 minutes) and 1440 (24 hours)".into());
        }
        if self.missing_after == 0 {
            return Err("missing_after must be at least 1".into());
        }
        for (name, share) in
            [("max_deactivate_share", self.max_deactivate_share), ("max_email_share", self.max_email_share)]
        {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("{name} is a share between 0 and 1, e.g. 0.2 for 20 %"));
            }
        }
        let l = &self.limits;
        for (name, value, max) in [
            ("max_pages", l.max_pages, u32::MAX),
            ("max_records", l.max_records, u32::MAX),
            ("max_run_minutes", l.max_minutes, 1440),
        ] {
            if !(1..=max).contains(&value) {
                return Err(format!("{name} must be between 1 and {max}"));
            }
        }
        Ok(())
    }

    /// Whether the stored secrets may go where the integration now sends
    /// requests: the granted origins are those they were entered for.
    /// Changing the outbound hosts without entering the secrets again
    /// unbinds them, and runs refuse to send them.
    pub fn secrets_bound(&self) -> bool {
        let has_secret = self.settings.iter().any(|(k, v)| self.secret_keys.contains(k) && !v.is_empty());
        !has_secret || origins_key(&self.secrets_for) == origins_key(&self.grants)
    }
}

/// A set setting's value against its kind.
fn check_setting(spec: &SettingSpec, value: &str) -> Result<(), String> {
    let name = format!("`{}` ({})", spec.key, spec.label);
    match spec.kind {
        SettingKind::Flag if !matches!(value, "true" | "false") => {
            Err(format!("{name} is a checkbox: \"true\" or \"false\", not `{value}`"))
        }
        SettingKind::Choice if !spec.choices.iter().any(|c| c == value) => {
            Err(format!("{name} must be one of {}, not `{value}`", spec.choices.join(", ")))
        }
        SettingKind::MultiChoice => {
            match value.split(',').map(str::trim).find(|v| !v.is_empty() && !spec.choices.iter().any(|c| c == v)) {
                Some(bad) => Err(format!(
                    "{name} takes a comma-separated list of {}; `{bad}` is none of them",
                    spec.choices.join(", ")
                )),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// The origins of the address settings filled in (`url` or `*-url`, e.g.
/// Personio's `api-base-url`): where an admin who typed the source's address
/// means its connector to connect.
pub fn address_origins(settings: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    let mut origins: Vec<String> = settings
        .iter()
        .filter(|(k, _)| *k == "url" || k.ends_with("-url"))
        .filter_map(|(_, v)| url::Url::parse(v.trim()).ok())
        .filter(|u| matches!(u.scheme(), "https" | "http") && u.host_str().is_some())
        .map(|u| u.origin().ascii_serialization())
        .collect();
    origins.dedup();
    origins
}

/// Origins compared as the egress point compares them (scheme, host, port),
/// in any order and spelling.
pub fn origins_key(origins: &[String]) -> std::collections::BTreeSet<String> {
    origins
        .iter()
        .map(|o| crate::runtime::egress::Origin::parse(o).map_or_else(|_| o.trim().to_string(), |o| o.to_string()))
        .collect()
}

/// A customer company of a multi-tenant deployment: it owns integrations,
/// people, runs, accounts and its audit log.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Tenant {
    pub id: TenantId,
    /// The operator's handle for it: lower-case letters, digits, dashes.
    pub slug: String,
    pub name: String,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Why an operator's change to the tenants was refused; each says what
/// to do instead.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error(
        "this install keeps one company in SQLite; tenants need a PostgreSQL database (set database_url or HRSYNC_DATABASE_URL)"
    )]
    SingleCompany,
    #[error("`{0}` is not a tenant slug: use up to 63 lower-case letters, digits and dashes, e.g. `acme-gmbh`")]
    BadSlug(String),
    #[error("the tenant's name is empty: enter the company's name")]
    NoName,
    #[error("a tenant `{0}` exists already; choose another slug")]
    Taken(String),
    #[error("no tenant `{0}`; `hrsync tenant list` or GET /api/v1/tenants lists them")]
    Unknown(String),
    #[error("the default tenant holds the platform's own accounts and cannot be disabled or enabled")]
    Platform,
    /// The new tenant's admin could not be created (nothing was added).
    #[error("the tenant's admin: {0}")]
    Admin(#[from] crate::accounts::AccountError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Tenant {
    /// The slug and name of a tenant to add, checked: `name` trimmed.
    pub fn check_new<'a>(slug: &str, name: &'a str) -> Result<&'a str, TenantError> {
        let valid = !slug.is_empty()
            && slug.len() <= 63
            && !slug.starts_with('-')
            && slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(TenantError::BadSlug(slug.into()));
        }
        match name.trim() {
            "" => Err(TenantError::NoName),
            name => Ok(name),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Integration {
    pub id: IntegrationId,
    pub config: IntegrationConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    Preview,
    Import,
    Revert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Manual,
    Automatic,
    /// A change the source pushed (a webhook delivery).
    Event,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Automatic => "automatic",
            Trigger::Event => "event",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Blocked,
    /// Stopped on request; nothing was applied.
    Cancelled,
    /// Its process stopped answering (crashed, killed, or lost the
    /// database) before it finished; nothing was applied.
    Interrupted,
}

impl RunState {
    /// Queued or running: the run holds its integration.
    pub fn is_live(self) -> bool {
        matches!(self, RunState::Queued | RunState::Running)
    }
}

/// Per-run counts, as shown in previews and history.
/// Which runs a history list shows. The default is what changed the
/// directory: imports and reverts that applied something, and runs still
/// going; the rest is one tick away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct RunFilter {
    /// Previews too.
    #[serde(default)]
    pub previews: bool,
    /// Runs that applied nothing: failed, blocked, cancelled, interrupted.
    #[serde(default)]
    pub unapplied: bool,
    /// Runs that ended finding nothing to change.
    #[serde(default)]
    pub unchanged: bool,
}

impl RunFilter {
    /// Every run.
    pub const ALL: RunFilter = RunFilter { previews: true, unapplied: true, unchanged: true };
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Counts {
    pub created: u64,
    pub updated: u64,
    pub manager_changes: u64,
    pub deactivated: u64,
    pub reactivated: u64,
    pub linked: u64,
    pub missing: u64,
    pub unchanged: u64,
    pub issues: u64,
    /// Fields overrides kept although the source differs.
    pub kept: u64,
}

/// The managers above `user`, nearest first: at most 50, and it stops at a
/// loop rather than walking it (the sync refuses cycles, but a directory
/// edited elsewhere may have one).
pub fn reporting_line(store: &dyn DirectoryStore, user: &User) -> Result<Vec<User>, StoreError> {
    let mut line: Vec<User> = Vec::new();
    let mut next = user.manager_id;
    while let Some(m) = next {
        if line.len() >= 50 || m == user.id || line.iter().any(|l| l.id == m) {
            break;
        }
        let manager = store.user(m)?;
        next = manager.manager_id;
        line.push(manager);
    }
    Ok(line)
}

/// The scheduler's memory of one integration.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub integration_id: IntegrationId,
    pub next_run_at: DateTime<Utc>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_full_at: Option<DateTime<Utc>>,
    /// Automatic runs that failed (or were blocked) in a row.
    pub failures: u32,
    /// Whether the admins were told about the current streak.
    pub alerted: bool,
    pub last_error: Option<String>,
}

impl Schedule {
    /// A first schedule: the integration's next run at `next_run_at`, no
    /// runs before it.
    pub fn first(integration_id: IntegrationId, next_run_at: DateTime<Utc>) -> Self {
        Schedule {
            integration_id,
            next_run_at,
            last_success_at: None,
            last_full_at: None,
            failures: 0,
            alerted: false,
            last_error: None,
        }
    }
}

/// A run as history lists it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Run {
    pub id: RunId,
    pub integration_id: IntegrationId,
    pub kind: RunKind,
    pub trigger: Trigger,
    pub actor: Option<String>,
    pub state: RunState,
    pub preview_id: Option<RunId>,
    pub reverts_id: Option<RunId>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub counts: Counts,
    pub error: Option<String>,
    pub fingerprint: Option<String>,
    /// Incremental runs: only people changed since this instant were fetched.
    pub since: Option<DateTime<Utc>>,
    /// The process that runs (or ran) it, as `host:pid:nonce`.
    pub owner: Option<String>,
    /// Who asked to cancel it, while it stops.
    pub cancel_requested_by: Option<String>,
}

/// How often a process renews the lease of a run it holds.
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
/// A run whose process has not renewed its lease for this long is
/// interrupted: another process may then start a run of its integration.
pub const LEASE_TTL: chrono::Duration = chrono::Duration::seconds(30);

/// Whether a run's lease ran out: its process stopped renewing it.
pub(crate) fn lease_expired(heartbeat: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    heartbeat.is_none_or(|h| now - h > LEASE_TTL)
}

/// Why a run whose lease ran out ended.
pub(crate) fn interrupted_message(owner: Option<&str>) -> String {
    format!(
        "interrupted: the process running it ({}) stopped renewing its lease — it crashed, was killed or lost the database; nothing was applied",
        owner.unwrap_or("unknown")
    )
}

impl Run {
    /// The run as it is: a live run whose lease expired is interrupted,
    /// even before a writer records it so (reading never writes).
    pub(crate) fn seen_at(mut self, heartbeat: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        if self.state.is_live() && lease_expired(heartbeat, now) {
            self.state = RunState::Interrupted;
            self.error = Some(interrupted_message(self.owner.as_deref()));
        }
        self
    }
}

/// The run that holds an integration, as a refused run reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Holder {
    pub run: RunId,
    pub integration: IntegrationId,
    pub kind: RunKind,
    pub trigger: Trigger,
    pub actor: Option<String>,
    pub owner: Option<String>,
    pub started_at: DateTime<Utc>,
}

impl Holder {
    /// The holder a live run is.
    pub fn of(run: Run) -> Self {
        Holder {
            run: run.id,
            integration: run.integration_id,
            kind: run.kind,
            trigger: run.trigger,
            actor: run.actor,
            owner: run.owner,
            started_at: run.started_at,
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            RunKind::Preview => "preview",
            RunKind::Import => "import",
            RunKind::Revert => "revert",
        };
        write!(f, "run {} ({} {kind}", self.run, self.trigger.as_str())?;
        if let Some(a) = &self.actor {
            write!(f, " by {a}")?;
        }
        write!(f, ", started {}", self.started_at.format("%Y-%m-%d %H:%M:%S UTC"))?;
        if let Some(o) = &self.owner {
            write!(f, ", process {o}")?;
        }
        write!(f, ")")
    }
}

/// What renewing a run's lease found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lease {
    /// Still ours; carry on.
    Held,
    /// Someone asked to cancel the run: stop and record it cancelled.
    CancelRequested { by: Option<String> },
    /// The run is no longer ours (another process found it expired): stop
    /// without writing anything.
    Lost,
}

/// What a change did to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Create,
    Update,
    Deactivate,
    Reactivate,
    Link,
    Missing,
    /// A revert restoring recorded values.
    Restore,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Create => "create",
            ChangeKind::Update => "update",
            ChangeKind::Deactivate => "deactivate",
            ChangeKind::Reactivate => "reactivate",
            ChangeKind::Link => "link",
            ChangeKind::Missing => "missing",
            ChangeKind::Restore => "restore",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(text.into())).map_err(|_| format!("unknown change `{text}`"))
    }
}

/// One field's before and after. For `manager`, values are display names and
/// `*_id` the users, so a revert can restore the exact manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldChange {
    #[schema(value_type = String, example = "job-title")]
    pub field: Field,
    pub before: Option<String>,
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_id: Option<UserId>,
}

/// One person's change in a run.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChangeRecord {
    /// `None` in previews for people not yet created.
    pub user_id: Option<UserId>,
    pub source_id: Option<String>,
    pub name: String,
    pub kind: ChangeKind,
    pub fields: Vec<FieldChange>,
}

/// A problem a run reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IssueRecord {
    pub source_id: Option<String>,
    pub name: Option<String>,
    pub field: Option<String>,
    #[schema(value_type = String, example = "warning")]
    pub severity: Severity,
    pub message: String,
}

/// Who a planned write is about: an existing user, or the n-th user this
/// run creates (ids are assigned inside the transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Existing(UserId),
    New(usize),
}

/// One user as a run leaves them.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedUser {
    pub target: Target,
    pub profile: Profile,
    pub manager: Option<Target>,
    pub managed_by: Option<(IntegrationId, String)>,
    pub missing_runs: u32,
}

/// A history entry whose user may not exist yet.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedChange {
    pub target: Target,
    pub source_id: Option<String>,
    pub name: String,
    pub kind: ChangeKind,
    pub fields: Vec<FieldChange>,
    /// For `manager`: the targets behind `before_id`/`after_id`.
    pub manager_after: Option<Target>,
}

/// Writes the set-password email for one person. Storage calls it inside
/// the transaction that creates the link's one-time token; the mail module
/// implements it, so storage never formats mail.
pub trait InvitationWriter {
    /// How long a link works.
    fn valid_for(&self) -> chrono::Duration;
    /// The message for `profile`, carrying `token`, which works until `expires`.
    fn write(&self, profile: &Profile, token: &str, expires: DateTime<Utc>) -> Message;
}

/// Everything one import writes, applied in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Apply {
    /// Users to insert (`Target::New(i)` is `creates[i]`).
    pub creates: Vec<PlannedUser>,
    /// Existing users to overwrite.
    pub updates: Vec<PlannedUser>,
    pub changes: Vec<PlannedChange>,
    pub issues: Vec<IssueRecord>,
    pub counts: Counts,
    /// Existing users whose start date has come: pending-start → active.
    pub starters: Vec<Target>,
    /// Queue invitations, in the same transaction, for `invitees` who end
    /// up active and were never informed (automatic imports of
    /// integrations that send password emails).
    pub invite: Option<Invite>,
    pub invitees: Vec<Target>,
    /// What overrides kept against the source (every kept field of every
    /// person the run saw; the differing ones are the run's record).
    pub kept: Vec<KeptValue>,
    /// Overrides to set with the writes ("revert and keep").
    pub keep: Vec<NewOverride>,
}

/// Storage errors that callers act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("integration {integration} is busy: {holder} holds it; wait for it to finish, or cancel it", integration = .0.integration, holder = .0)]
    AlreadyRunning(Box<Holder>),
    #[error("run {run} is not running (it is {}); only a running run can be cancelled", enum_name(state))]
    NotRunning { run: RunId, state: RunState },
    #[error(
        "run {0} was taken over: its process stopped renewing its lease, so another process marked it interrupted; nothing of it was applied"
    )]
    LeaseLost(RunId),
    #[error("run {0} was cancelled before it was applied; nothing was changed")]
    Cancelled(RunId),
    #[error("integration {0} does not exist; `hrsync integration list` lists them")]
    NoIntegration(IntegrationId),
    #[error("run {0} does not exist; `hrsync history` lists runs")]
    NoRun(RunId),
    #[error("user {0} does not exist; `hrsync users` lists them")]
    NoUser(UserId),
    #[error("that email is already used by another user (emails are unique regardless of case): {0}")]
    EmailTaken(String),
    #[error(
        "user {0} is managed by an integration, so the HR system owns their values; change them there, or keep a local value with an override"
    )]
    Managed(UserId),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl StoreError {
    /// `manager` reports, directly or indirectly, to the person they would manage.
    pub(crate) fn reporting_cycle(manager: UserId) -> Self {
        StoreError::Invalid(format!(
            "user {manager} cannot be the manager: they report (directly or indirectly) to this person, which would make a reporting cycle"
        ))
    }

    /// No user `manager` (in this directory).
    pub(crate) fn no_such_manager(manager: UserId) -> Self {
        StoreError::Invalid(format!("the manager, user {manager}, does not exist; `hrsync users` lists users"))
    }
}

/// How far up a reporting line a manager check walks: deeper lines are
/// not a cycle this check could find in reasonable time.
pub(crate) const MAX_REPORTING_DEPTH: u32 = 10_000;

/// The serde name of a unit enum value, e.g. `interrupted`.
pub(crate) fn enum_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// A page of users.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserQuery {
    /// Case-insensitive substring of name, email, department or employee id.
    pub search: Option<String>,
    pub integration: Option<IntegrationId>,
    /// Only people in this state.
    pub status: Option<UserStatus>,
    /// Only people in this department (the exact name).
    pub department: Option<String>,
    /// Only the direct reports of this person.
    pub manager: Option<UserId>,
    /// Only people who were (`true`) or were not yet (`false`) sent a password email.
    pub informed: Option<bool>,
    pub offset: u64,
    pub limit: u64,
}

/// What the directory can be narrowed by: its departments and the people
/// others report to, each by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facets {
    pub departments: Vec<String>,
    pub managers: Vec<(UserId, String)>,
}

/// Totals of the runs of one kind in one state.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStat {
    pub kind: RunKind,
    pub state: RunState,
    pub runs: u64,
    /// Wall time of the finished ones.
    pub seconds: f64,
    /// People created, updated, deactivated, reactivated or linked.
    pub people_changed: u64,
}

/// Which of a run's changes to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeFilter {
    pub user: Option<UserId>,
    pub kind: Option<ChangeKind>,
    /// Case-insensitive substring of the person's name.
    pub search: Option<String>,
    pub offset: u64,
    pub limit: u64,
}

/// The directory-wide facts about one user that validation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub id: UserId,
    pub manager_id: Option<UserId>,
    pub email: Email,
    pub name: String,
}

/// A run about to start.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub integration_id: IntegrationId,
    pub kind: RunKind,
    pub trigger: Trigger,
    pub actor: Option<String>,
    pub preview_id: Option<RunId>,
    pub reverts_id: Option<RunId>,
    pub since: Option<DateTime<Utc>>,
}

/// How a run ended, when it wrote no users.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub state: RunState,
    pub counts: Counts,
    pub error: Option<String>,
    pub fingerprint: Option<String>,
    /// Previews store what they would change.
    pub changes: Vec<ChangeRecord>,
    pub issues: Vec<IssueRecord>,
    /// What overrides kept (or would keep) against the source.
    pub kept: Vec<KeptValue>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_slugs_are_short_lower_case_handles_and_names_are_not_blank() {
        assert_eq!(Tenant::check_new("acme-gmbh", "  Acme GmbH ").unwrap(), "Acme GmbH");
        assert_eq!(Tenant::check_new("a1", "A").unwrap(), "A");
        assert!(Tenant::check_new(&"a".repeat(63), "A").is_ok());
        for bad in ["", "-acme", "Acme", "acme_gmbh", "acme gmbh", "ácme", &"a".repeat(64)] {
            assert!(matches!(Tenant::check_new(bad, "A"), Err(TenantError::BadSlug(_))), "{bad:?}");
        }
        assert!(matches!(Tenant::check_new("acme", " \t"), Err(TenantError::NoName)));
    }

    #[test]
    fn address_settings_give_their_origins() {
        let settings = std::collections::BTreeMap::from([
            ("url".to_string(), "https://hr.acme.example/exports/people.csv?x=1".to_string()),
            ("api-base-url".to_string(), "http://127.0.0.1:8081/".to_string()),
            ("token-url".to_string(), "ftp://files.acme.example/".to_string()),
            ("username".to_string(), "https://not.an-address.example".to_string()),
            ("other-url".to_string(), "not a url".to_string()),
        ]);
        assert_eq!(address_origins(&settings), vec!["http://127.0.0.1:8081", "https://hr.acme.example"]);
    }

    #[test]
    fn fields_round_trip_through_set_field() {
        let mut p = Profile {
            email: Email::parse("a@x.io").unwrap(),
            first_name: "A".into(),
            last_name: "B".into(),
            preferred_name: None,
            gender: None,
            status: UserStatus::Active,
            start_date: NaiveDate::from_ymd_opt(2020, 1, 2),
            termination_date: None,
            job_title: Some("Dev".into()),
            employee_id: None,
            department: None,
            office: None,
            team: None,
            custom: BTreeMap::from([("dynamic_1".into(), "x".into())]),
            profile_url: None,
        };
        let original = p.clone();
        let mut other = p.clone();
        other.set_field(&Field::JobTitle, None).unwrap();
        other.set_field(&Field::Status, Some("pending-start".into())).unwrap();
        other.set_field(&Field::Custom("dynamic_1".into()), None).unwrap();
        other.set_field(&Field::StartDate, Some("2021-03-04".into())).unwrap();
        for (field, value) in original.fields() {
            p.set_field(&field, value).unwrap();
        }
        assert_eq!(p, original);
        assert_eq!(other.status, UserStatus::PendingStart);
        assert!(other.custom.is_empty() && other.job_title.is_none());
        assert!(other.set_field(&Field::FirstName, None).is_err());
        assert!(other.set_field(&Field::Gender, Some("unknown".into())).is_err());
        assert!(other.set_field(&Field::Manager, Some("Ada".into())).is_err());
    }
}
