//! What a diff works on and proposes: the directory as a connector sees it,
//! and a plan of changes with the issues found on the way.

use serde::{Deserialize, Serialize};

use super::UserId;
use super::person::{Person, SourceId, UserStatus};

/// How serious an issue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// The record is imported, but something is off.
    Warning,
    /// The record (or this part of it) is not imported.
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "warning" => Ok(Severity::Warning),
            "error" => Ok(Severity::Error),
            other => Err(format!("unknown severity `{other}` (warning, error)")),
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A problem with one record or with the run, shown to admins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    pub source_id: Option<SourceId>,
    /// The person's display name, so admins can find them.
    pub name: Option<String>,
    /// The field concerned (a field name, or a connector's own words).
    pub field: Option<String>,
    pub severity: Severity,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl Issue {
    /// An issue about `person`.
    pub fn about(person: &Person, field: Option<&str>, severity: Severity, message: impl Into<String>) -> Self {
        Issue {
            source_id: Some(person.source_id.clone()),
            name: Some(person.display_name()),
            field: field.map(Into::into),
            severity,
            message: message.into(),
        }
    }
}

/// A directory user as `diff` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub user_id: UserId,
    /// Set when this integration manages the user.
    pub source_id: Option<SourceId>,
    pub status: UserStatus,
    /// Consecutive complete runs that have not seen this user.
    pub missing_runs: u32,
    /// The user's current values. `person.status` follows `status`; the
    /// supervisor is the manager's source id when this integration manages
    /// the manager.
    pub person: Person,
}

/// Options of one diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiffOptions {
    /// The fetch returned every record: only then is absence news.
    pub complete: bool,
    /// Deactivate a managed user missing from this many complete runs in a row.
    pub missing_after: u32,
}

/// One field's change, as a connector reports it for display. The host
/// computes the changes it records itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// An update to an existing user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserUpdate {
    pub user_id: UserId,
    /// The full incoming person.
    pub person: Person,
    pub changes: Vec<FieldChange>,
}

/// Why a user is deactivated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeactivationReason {
    /// The source says the person left.
    InactiveInSource,
    /// Missing from `missing-after` complete runs in a row.
    MissingFromSource,
}

/// A user to deactivate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deactivation {
    pub user_id: UserId,
    pub reason: DeactivationReason,
    /// The incoming person, when still in the source.
    pub person: Option<Person>,
    pub changes: Vec<FieldChange>,
}

/// A managed user missing from a complete run, not yet deactivated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingUser {
    pub user_id: UserId,
    /// Consecutive complete runs without the user, this one included.
    pub runs: u32,
}

/// One step of a change plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Create(Person),
    Update(UserUpdate),
    Deactivate(Deactivation),
    Reactivate(UserUpdate),
    /// An unmanaged user adopted by email.
    Link(UserUpdate),
    Missing(MissingUser),
}

impl Change {
    /// The existing user the change is about; `None` for a creation.
    pub fn user(&self) -> Option<UserId> {
        match self {
            Change::Create(_) => None,
            Change::Update(u) | Change::Reactivate(u) | Change::Link(u) => Some(u.user_id),
            Change::Deactivate(d) => Some(d.user_id),
            Change::Missing(m) => Some(m.user_id),
        }
    }

    /// The contract's name for the kind of change.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Create(_) => "create",
            Change::Update(_) => "update",
            Change::Deactivate(_) => "deactivate",
            Change::Reactivate(_) => "reactivate",
            Change::Link(_) => "link",
            Change::Missing(_) => "missing",
        }
    }
}

/// What a diff returns. Users without a change appear in no change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub issues: Vec<Issue>,
}
