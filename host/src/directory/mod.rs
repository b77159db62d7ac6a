//! The user directory: users, integrations and the history of runs.
//!
//! The sync engine talks to storage only through [`DirectoryStore`], a
//! narrow interface of whole operations (read what a run needs, write what a
//! run decided in one transaction), so a PostgreSQL backend can be added
//! beside [`sqlite::SqliteStore`] without touching the sync code.

pub mod sqlite;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::mail::{Invite, MailRecord, Message};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A directory user.
    UserId
);
id_type!(
    /// A configured connector instance.
    IntegrationId
);
id_type!(
    /// A preview, import or revert.
    RunId
);

/// A syntactically plausible email address. Compared case-insensitively,
/// displayed as given.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let plausible = text.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }) && text.len() <= 254
            && !text.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
        if plausible { Ok(Email(text.to_string())) } else { Err(format!("`{text}` is not a valid email address")) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive key emails are unique by.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0) || self.key() == other.key()
    }
}

impl Eq for Email {}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Email {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Email::parse(&value)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

/// Whether a user can sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UserStatus {
    Active,
    Inactive,
    /// Created ahead of the start date.
    PendingStart,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Inactive => "inactive",
            UserStatus::PendingStart => "pending-start",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "active" => Ok(UserStatus::Active),
            "inactive" => Ok(UserStatus::Inactive),
            "pending-start" => Ok(UserStatus::PendingStart),
            other => Err(format!("unknown user status `{other}` (active, inactive, pending-start)")),
        }
    }
}

/// The values of a user that imports write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub email: Email,
    pub first_name: String,
    pub last_name: String,
    pub preferred_name: Option<String>,
    pub gender: Option<String>,
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

/// Field names shared with the connector contract's `field-change`s.
pub const MANAGER_FIELD: &str = "manager";

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

    /// Every displayable field, in a stable order; custom attributes as `custom.KEY`.
    pub fn fields(&self) -> Vec<(String, Option<String>)> {
        let date = |d: &Option<NaiveDate>| d.map(|d| d.to_string());
        let mut out = vec![
            ("first-name".to_string(), Some(self.first_name.clone())),
            ("last-name".into(), Some(self.last_name.clone())),
            ("preferred-name".into(), self.preferred_name.clone()),
            ("email".into(), Some(self.email.to_string())),
            ("employee-id".into(), self.employee_id.clone()),
            ("gender".into(), self.gender.clone()),
            ("status".into(), Some(self.status.as_str().into())),
            ("start-date".into(), date(&self.start_date)),
            ("termination-date".into(), date(&self.termination_date)),
            ("job-title".into(), self.job_title.clone()),
            ("department".into(), self.department.clone()),
            ("office".into(), self.office.clone()),
            ("team".into(), self.team.clone()),
        ];
        out.extend(self.custom.iter().map(|(k, v)| (format!("custom.{k}"), Some(v.clone()))));
        out
    }

    /// Sets one field by its name (as in [`Profile::fields`]); used by revert.
    pub fn set_field(&mut self, field: &str, value: Option<String>) -> Result<(), String> {
        let required = |v: Option<String>| v.ok_or_else(|| format!("`{field}` cannot be empty"));
        let date = |v: Option<String>| {
            v.map(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|e| format!("`{field}`: {e}"))).transpose()
        };
        match field {
            "first-name" => self.first_name = required(value)?,
            "last-name" => self.last_name = required(value)?,
            "preferred-name" => self.preferred_name = value,
            "email" => self.email = Email::parse(&required(value)?)?,
            "employee-id" => self.employee_id = value,
            "gender" => self.gender = value,
            "status" => self.status = UserStatus::parse(&required(value)?)?,
            "start-date" => self.start_date = date(value)?,
            "termination-date" => self.termination_date = date(value)?,
            "job-title" => self.job_title = value,
            "department" => self.department = value,
            "office" => self.office = value,
            "team" => self.team = value,
            other => match other.strip_prefix("custom.") {
                Some(key) => {
                    match value {
                        Some(v) => self.custom.insert(key.into(), v),
                        None => self.custom.remove(key),
                    };
                }
                None => return Err(format!("unknown field `{other}`")),
            },
        }
        Ok(())
    }

    pub fn display_name(&self) -> String {
        display_name(&self.first_name, &self.last_name, self.preferred_name.as_deref())
    }
}

/// How a person is named on pages, in emails and in history: the preferred
/// name (or the first name) with the last name — unless the preferred name
/// already carries the last name ("Kasia Nowak"), which is then not repeated.
pub fn display_name(first: &str, last: &str, preferred: Option<&str>) -> String {
    let given = preferred.map(str::trim).filter(|p| !p.is_empty()).unwrap_or(first.trim());
    let last = last.trim();
    let (given_lower, last_lower) = (given.to_lowercase(), last.to_lowercase());
    let repeats_last = !last.is_empty()
        && (given_lower.ends_with(&format!(" {last_lower}"))
            || given_lower.split_whitespace().any(|w| w == last_lower));
    if repeats_last { given.to_string() } else { format!("{given} {last}").trim().to_string() }
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

/// An unmanaged user created by hand (or by the app the directory belongs to).
#[derive(Debug, Clone)]
pub struct NewUser {
    pub profile: Profile,
    pub manager_id: Option<UserId>,
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

    /// Whether the stored secrets may go where the integration now sends
    /// requests: the granted origins are those they were entered for.
    /// Changing the outbound hosts without entering the secrets again
    /// unbinds them, and runs refuse to send them.
    pub fn secrets_bound(&self) -> bool {
        let has_secret = self.settings.iter().any(|(k, v)| self.secret_keys.contains(k) && !v.is_empty());
        !has_secret || origins_key(&self.secrets_for) == origins_key(&self.grants)
    }
}

/// Origins compared as the egress point compares them (scheme, host, port),
/// in any order and spelling.
pub fn origins_key(origins: &[String]) -> std::collections::BTreeSet<String> {
    origins
        .iter()
        .map(|o| crate::runtime::egress::Origin::parse(o).map_or_else(|_| o.trim().to_string(), |o| o.to_string()))
        .collect()
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
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Automatic => "automatic",
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
    pub field: String,
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
    /// `warning` or `error`.
    pub severity: String,
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
    /// Queue invitations, in the same transaction, for `invitees` who end
    /// up active and were never informed (automatic imports of
    /// integrations that send password emails).
    pub invite: Option<Invite>,
    pub invitees: Vec<Target>,
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
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The serde name of a unit enum value, e.g. `interrupted`.
fn enum_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// A page of users.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserQuery {
    /// Case-insensitive substring of name, email, department or employee id.
    pub search: Option<String>,
    pub integration: Option<IntegrationId>,
    pub offset: u64,
    pub limit: u64,
}

/// The operations the sync engine needs from storage.
pub trait DirectoryStore: Send + Sync {
    /// Stores a new integration; its secrets are bound to its grants unless
    /// `secrets_for` says otherwise.
    fn create_integration(&self, config: &IntegrationConfig) -> Result<IntegrationId, StoreError>;
    fn update_integration(&self, id: IntegrationId, config: &IntegrationConfig) -> Result<(), StoreError>;
    fn integration(&self, id: IntegrationId) -> Result<Integration, StoreError>;
    fn integrations(&self) -> Result<Vec<Integration>, StoreError>;

    fn create_user(&self, user: &NewUser) -> Result<UserId, StoreError>;
    fn user(&self, id: UserId) -> Result<User, StoreError>;
    fn users(&self, query: &UserQuery) -> Result<(Vec<User>, u64), StoreError>;
    /// Users a run of `integration` may see: those it manages and the unmanaged ones.
    fn users_for_sync(&self, integration: IntegrationId) -> Result<Vec<User>, StoreError>;
    /// Every user's manager, email and name: what a run checks reporting
    /// lines and email uniqueness against, across all integrations.
    fn index(&self) -> Result<Vec<IndexEntry>, StoreError>;

    /// Who this handle is to other processes (`host:pid:nonce`): the owner
    /// of the runs it begins.
    fn owner(&self) -> &str;
    /// Starts a run owned by this handle, holding a lease on its
    /// integration. Refuses ([`StoreError::AlreadyRunning`]) while another
    /// run of the integration — of any kind, in any process — holds a fresh
    /// lease; a run whose lease expired is marked interrupted first.
    fn begin_run(&self, run: &NewRun) -> Result<RunId, StoreError>;
    /// Renews the lease of a run this handle owns, and says whether someone
    /// asked to cancel it or another process took it over.
    fn heartbeat(&self, run: RunId) -> Result<Lease, StoreError>;
    /// Asks a running run to stop. Its process stops it within a heartbeat
    /// and records it cancelled; a run whose process is gone is marked
    /// cancelled at once.
    fn request_cancel(&self, run: RunId, by: Option<&str>) -> Result<Run, StoreError>;
    /// Ends a run this handle owns without writing users (previews,
    /// failures, blocked and cancelled runs); [`StoreError::LeaseLost`] if
    /// it no longer owns it.
    fn finish_run(&self, id: RunId, outcome: &RunOutcome) -> Result<(), StoreError>;
    /// Writes users, history and the run's end in one transaction — only
    /// while this handle still owns the run and nobody asked to cancel it
    /// ([`StoreError::LeaseLost`], [`StoreError::Cancelled`]).
    fn apply(&self, id: RunId, apply: &Apply, fingerprint: &str) -> Result<(), StoreError>;
    fn run(&self, id: RunId) -> Result<Run, StoreError>;
    /// Newest first.
    fn runs(&self, integration: Option<IntegrationId>, offset: u64, limit: u64) -> Result<Vec<Run>, StoreError>;
    fn run_changes(&self, id: RunId, user: Option<UserId>) -> Result<Vec<ChangeRecord>, StoreError>;
    /// One page of a run's changes, filtered, with the filtered total.
    fn run_changes_page(&self, id: RunId, filter: &ChangeFilter) -> Result<(Vec<ChangeRecord>, u64), StoreError>;
    fn run_issues(&self, id: RunId) -> Result<Vec<IssueRecord>, StoreError>;
    /// Every recorded change to one user, newest first, with its run.
    fn user_history(&self, user: UserId) -> Result<Vec<(RunId, ChangeRecord)>, StoreError>;
    /// Totals per run kind and state, for metrics.
    fn run_stats(&self) -> Result<Vec<RunStat>, StoreError>;

    /// The scheduler's state of an integration, if it has any.
    fn schedule(&self, integration: IntegrationId) -> Result<Option<Schedule>, StoreError>;
    fn save_schedule(&self, schedule: &Schedule) -> Result<(), StoreError>;
    /// How many of `integration`'s pending-start users have reached their
    /// start date by `today`: only a complete run sees a date pass.
    fn starts_due(&self, integration: IntegrationId, today: NaiveDate) -> Result<u64, StoreError>;

    /// Queues a set-password email for each of `users` who is active (an
    /// earlier unused link stops working); returns who was invited.
    fn invite(&self, users: &[UserId], invite: &Invite, now: DateTime<Utc>) -> Result<Vec<UserId>, StoreError>;
    fn enqueue_mail(&self, message: &Message, run: Option<RunId>, now: DateTime<Utc>) -> Result<i64, StoreError>;
    /// Takes up to `limit` due messages for sending, reserved for `lease`.
    fn claim_mail(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> Result<Vec<MailRecord>, StoreError>;
    fn mail_sent(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Records a failed attempt; `retry_at` `None` gives the message up.
    fn mail_failed(&self, id: i64, error: &str, retry_at: Option<DateTime<Utc>>) -> Result<(), StoreError>;
    /// Newest first.
    fn mails(&self, offset: u64, limit: u64) -> Result<(Vec<MailRecord>, u64), StoreError>;
    /// The person a valid, unused, unexpired set-password token belongs to.
    fn invitation_user(&self, token: &str, now: DateTime<Utc>) -> Result<Option<User>, StoreError>;
    /// Uses the token once: stores the password hash; `None` if the token is
    /// unknown, used or expired.
    fn redeem_invitation(
        &self,
        token: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError>;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_compare_case_insensitively_and_reject_junk() {
        assert_eq!(Email::parse("Ada@Example.com").unwrap(), Email::parse("ada@example.COM").unwrap());
        assert_eq!(Email::parse(" Zoë@例え.jp ").unwrap().key(), "zoë@例え.jp");
        for bad in ["", "ada", "ada@", "@x.io", "a b@x.io", "<script>@x.io", "a@x"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_names_never_repeat_the_last_name() {
        assert_eq!(display_name("Katarzyna", "Nowak", Some("Kasia")), "Kasia Nowak");
        assert_eq!(display_name("Katarzyna", "Nowak", Some("Kasia Nowak")), "Kasia Nowak");
        assert_eq!(display_name("Katarzyna", "Nowak", Some("kasia NOWAK")), "kasia NOWAK");
        assert_eq!(display_name("Jan", "van der Berg", Some("Jan van der Berg")), "Jan van der Berg");
        assert_eq!(display_name("Ada", "Lovelace", None), "Ada Lovelace");
        assert_eq!(display_name("Ada", "Lovelace", Some(" ")), "Ada Lovelace");
        assert_eq!(display_name("Nowakowski", "Nowak", None), "Nowakowski Nowak", "a prefix is not the name");
        assert_eq!(display_name("", "Cher", None), "Cher");
        assert_eq!(display_name("X", "Cher", Some("Cher")), "Cher");
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
        other.set_field("job-title", None).unwrap();
        other.set_field("status", Some("pending-start".into())).unwrap();
        other.set_field("custom.dynamic_1", None).unwrap();
        other.set_field("start-date", Some("2021-03-04".into())).unwrap();
        for (field, value) in original.fields() {
            p.set_field(&field, value).unwrap();
        }
        assert_eq!(p, original);
        assert_eq!(other.status, UserStatus::PendingStart);
        assert!(other.custom.is_empty() && other.job_title.is_none());
        assert!(other.set_field("first-name", None).is_err());
        assert!(other.set_field("salary", Some("1".into())).is_err());
    }
}
