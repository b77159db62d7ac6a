//! What connectors say about themselves and their source, and how their
//! calls fail.

use std::fmt;

use super::person::{Person, SourceId};
use super::plan::Issue;

/// How the host renders and stores a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SettingKind {
    Text,
    /// A credential: encrypted at rest, write-only on pages, never logged.
    Secret,
    /// A checkbox: "true" or "false".
    Flag,
    /// One of the spec's choices.
    Choice,
    /// Several of the spec's choices, comma-separated.
    MultiChoice,
    /// The key of one source attribute.
    Attribute,
    /// Several source attribute keys, comma-separated.
    AttributeList,
}

impl SettingKind {
    /// The contract's name for the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            SettingKind::Text => "text",
            SettingKind::Secret => "secret",
            SettingKind::Flag => "flag",
            SettingKind::Choice => "choice",
            SettingKind::MultiChoice => "multi-choice",
            SettingKind::Attribute => "attribute",
            SettingKind::AttributeList => "attribute-list",
        }
    }
}

/// One setting a connector needs from the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingSpec {
    pub key: String,
    pub label: String,
    pub kind: SettingKind,
    pub required: bool,
    pub default_value: Option<String>,
    pub choices: Vec<String>,
    pub help: String,
}

/// What a connector can do beyond the basics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Records carry a supervisor.
    pub supervisors: bool,
    /// Records carry termination dates.
    pub termination_dates: bool,
    /// `fetch-page` honours `updated-since`.
    pub incremental_fetch: bool,
    /// `map-fields` fills custom attributes.
    pub custom_attributes: bool,
}

/// What `describe` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorInfo {
    /// Stable, lower-kebab-case; keys integrations.
    pub id: String,
    pub name: String,
    /// The connector's own version (semver).
    pub version: String,
    pub description: String,
    pub settings: Vec<SettingSpec>,
    pub capabilities: Capabilities,
    /// Origins contacted by default, `scheme://host[:port]`.
    pub default_hosts: Vec<String>,
}

impl ConnectorInfo {
    /// The spec of one setting.
    pub fn setting(&self, key: &str) -> Option<&SettingSpec> {
        self.settings.iter().find(|s| s.key == key)
    }

    /// Keys of the secret settings: the connector's schema decides what is
    /// secret, never the stored values.
    pub fn secret_keys(&self) -> impl Iterator<Item = &str> {
        self.settings.iter().filter(|s| s.kind == SettingKind::Secret).map(|s| s.key.as_str())
    }
}

/// One attribute of the source, as `check` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceAttribute {
    pub key: String,
    pub label: String,
}

/// An attribute the connector needs but the credential cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingAttribute {
    pub key: String,
    pub purpose: String,
    pub hint: String,
    pub required: bool,
}

/// The result of "test connection".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub account: Option<String>,
    pub readable: Vec<SourceAttribute>,
    pub missing: Vec<MissingAttribute>,
    pub warnings: Vec<String>,
}

/// What `fetch-page` is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchRequest {
    /// `None` for the first page, then the previous page's cursor.
    pub cursor: Option<String>,
    /// Incremental runs: records changed since this RFC 3339 instant.
    pub updated_since: Option<String>,
}

/// What a source can push (contract 0.4.0 `hr-events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsInfo {
    pub description: String,
    /// The source's event names a subscription asks for.
    pub events: Vec<String>,
}

/// A subscription the source holds for hrsync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub description: String,
}

/// What one delivery from the source means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEvent {
    /// These people were created or changed: fetch and plan only them.
    Changed(Vec<SourceId>),
    /// These people were deleted in the source: fetched, and deactivated
    /// only when the source no longer has them.
    Deleted(Vec<SourceId>),
    /// Not about people of this integration: why.
    Ignored(String),
}

/// One record as the source returned it; the payload is opaque to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub source_id: SourceId,
    pub payload: String,
}

/// One page of a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub records: Vec<RawRecord>,
    /// `None` after the last page.
    pub next_cursor: Option<String>,
    /// Records across all pages, when the source says.
    pub total: Option<u64>,
}

/// What `map-fields` returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mapped {
    pub people: Vec<Person>,
    pub issues: Vec<Issue>,
}

/// How a retryable failure should be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub after_seconds: u32,
    pub message: String,
}

/// Every way a connector call can fail through the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorError {
    CredentialsRejected(String),
    PermissionDenied(Vec<MissingAttribute>),
    RateLimited(Retry),
    TemporarilyUnavailable(Retry),
    Unreachable(String),
    InvalidSettings(String),
    BadResponse(String),
}

impl ConnectorError {
    /// The contract's name for the case: stable, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectorError::CredentialsRejected(_) => "credentials-rejected",
            ConnectorError::PermissionDenied(_) => "permission-denied",
            ConnectorError::RateLimited(_) => "rate-limited",
            ConnectorError::TemporarilyUnavailable(_) => "temporarily-unavailable",
            ConnectorError::Unreachable(_) => "unreachable",
            ConnectorError::InvalidSettings(_) => "invalid-settings",
            ConnectorError::BadResponse(_) => "bad-response",
        }
    }

    /// How long the connector asked the host to wait, for the retryable cases.
    pub fn retry(&self) -> Option<&Retry> {
        match self {
            ConnectorError::RateLimited(r) | ConnectorError::TemporarilyUnavailable(r) => Some(r),
            _ => None,
        }
    }
}

/// One admin-readable line.
impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectorError::CredentialsRejected(m) => write!(f, "credentials rejected: {m}"),
            ConnectorError::PermissionDenied(missing) => {
                let keys: Vec<&str> = missing.iter().map(|m| m.key.as_str()).collect();
                write!(f, "permission denied; the credential cannot read: {}", keys.join(", "))
            }
            ConnectorError::RateLimited(r) => {
                write!(f, "rate limited (retry after {} s): {}", r.after_seconds, r.message)
            }
            ConnectorError::TemporarilyUnavailable(r) => {
                write!(f, "temporarily unavailable (retry after {} s): {}", r.after_seconds, r.message)
            }
            ConnectorError::Unreachable(m) => write!(f, "source unreachable: {m}"),
            ConnectorError::InvalidSettings(m) => write!(f, "invalid settings: {m}"),
            ConnectorError::BadResponse(m) => write!(f, "bad response from the source: {m}"),
        }
    }
}

/// Levels of a connector's `host.log` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}
