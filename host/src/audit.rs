//! The audit log: who did what, when and from where — sign-ins (and failed
//! ones), settings changes (which keys, never secret values), previews,
//! imports, reverts and cancels, password emails sent, tokens and accounts.
//!
//! Kept in the database, append-only from the app's side: triggers refuse
//! any change or removal of an entry.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What was done. The names are stable: filters and scripts use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    SignIn,
    SignInFailed,
    SignOut,
    IntegrationCreated,
    SettingsChanged,
    TestConnection,
    Preview,
    Import,
    Revert,
    Cancel,
    InvitationsSent,
    TokenCreated,
    TokenRevoked,
    AccountCreated,
    AccountDisabled,
    AccountEnabled,
    RoleChanged,
    PasswordReset,
    PasswordChanged,
    UserCreated,
    UserEdited,
    UsersUploaded,
    ValueKept,
    OverrideRemoved,
    CompanyNamed,
    WebhooksOn,
    WebhooksOff,
    TenantAdded,
    TenantDisabled,
    TenantEnabled,
}

impl Action {
    pub const ALL: [Action; 30] = [
        Action::SignIn,
        Action::SignInFailed,
        Action::SignOut,
        Action::IntegrationCreated,
        Action::SettingsChanged,
        Action::TestConnection,
        Action::Preview,
        Action::Import,
        Action::Revert,
        Action::Cancel,
        Action::InvitationsSent,
        Action::TokenCreated,
        Action::TokenRevoked,
        Action::AccountCreated,
        Action::AccountDisabled,
        Action::AccountEnabled,
        Action::RoleChanged,
        Action::PasswordReset,
        Action::PasswordChanged,
        Action::UserCreated,
        Action::UserEdited,
        Action::UsersUploaded,
        Action::ValueKept,
        Action::OverrideRemoved,
        Action::CompanyNamed,
        Action::WebhooksOn,
        Action::WebhooksOff,
        Action::TenantAdded,
        Action::TenantDisabled,
        Action::TenantEnabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::SignIn => "sign-in",
            Action::SignInFailed => "sign-in-failed",
            Action::SignOut => "sign-out",
            Action::IntegrationCreated => "integration-created",
            Action::SettingsChanged => "settings-changed",
            Action::TestConnection => "test-connection",
            Action::Preview => "preview",
            Action::Import => "import",
            Action::Revert => "revert",
            Action::Cancel => "cancel",
            Action::InvitationsSent => "invitations-sent",
            Action::TokenCreated => "token-created",
            Action::TokenRevoked => "token-revoked",
            Action::AccountCreated => "account-created",
            Action::AccountDisabled => "account-disabled",
            Action::AccountEnabled => "account-enabled",
            Action::RoleChanged => "role-changed",
            Action::PasswordReset => "password-reset",
            Action::PasswordChanged => "password-changed",
            Action::UserCreated => "user-created",
            Action::UserEdited => "user-edited",
            Action::UsersUploaded => "users-uploaded",
            Action::ValueKept => "value-kept",
            Action::OverrideRemoved => "override-removed",
            Action::CompanyNamed => "company-named",
            Action::WebhooksOn => "webhooks-on",
            Action::WebhooksOff => "webhooks-off",
            Action::TenantAdded => "tenant-added",
            Action::TenantDisabled => "tenant-disabled",
            Action::TenantEnabled => "tenant-enabled",
        }
    }

    pub fn parse(text: &str) -> Result<Action, String> {
        Action::ALL.into_iter().find(|a| a.as_str() == text).ok_or_else(|| {
            let names: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
            format!("unknown action `{text}`; actions are: {}", names.join(", "))
        })
    }
}

/// One thing someone did.
#[derive(Debug, Clone)]
pub struct Event {
    /// The account (or `cli:<user>`, `scheduler`).
    pub actor: String,
    /// The client address, or `cli`.
    pub address: String,
    pub action: Action,
    /// What it was done to: `integration 3`, `run 12`, `account ann`…
    pub target: Option<String>,
    /// Anything else worth keeping — never a secret value.
    pub detail: Option<String>,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Entry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub address: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
}

/// Which entries to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub actor: Option<String>,
    pub action: Option<Action>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub offset: u64,
    pub limit: u64,
}

/// Where audit entries are kept: appended, listed, never changed (both
/// databases refuse updates and deletes). A handle serves one tenant.
pub trait AuditStore: Send + Sync {
    fn append(&self, at: DateTime<Utc>, event: &Event) -> anyhow::Result<()>;
    /// A page of entries matching `q`, newest first, and how many match.
    fn entries(&self, q: &Query) -> anyhow::Result<(Vec<Entry>, u64)>;
}

/// The audit log.
pub struct Audit {
    store: Box<dyn AuditStore>,
}

impl Audit {
    /// The audit log in the SQLite database at `db`.
    pub fn open(db: &Path) -> anyhow::Result<Self> {
        Ok(Self::new(Box::new(crate::directory::sqlite::SqliteAudit::open(db)?)))
    }

    pub fn new(store: Box<dyn AuditStore>) -> Self {
        Audit { store }
    }

    /// Records an event. A failure to record is logged, never hidden: the
    /// action it describes has already happened.
    pub fn record(&self, event: Event) {
        if let Err(e) = self.store.append(Utc::now(), &event) {
            tracing::error!(action = event.action.as_str(), actor = %event.actor, "could not record an audit entry: {e:#}");
        }
    }

    /// A page of entries matching `q`, newest first, and how many match.
    pub fn entries(&self, q: &Query) -> anyhow::Result<(Vec<Entry>, u64)> {
        self.store.entries(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::sqlite::SqliteStore;
    use crate::secrets::SecretBox;

    // Recording and listing are tested on both databases in
    // `directory::suite`; this is SQLite's guard against changes.
    #[test]
    fn sqlite_refuses_to_change_or_remove_entries() {
        let dir = std::env::temp_dir().join(format!("hrsync-audit-{}-{}", std::process::id(), rand::random::<u32>()));
        let db = dir.join("hrsync.db");
        SqliteStore::open(&db, SecretBox::from_key(&[0; 32])).unwrap();
        let audit = Audit::open(&db).unwrap();
        audit.record(Event {
            actor: "ann".into(),
            address: "cli".into(),
            action: Action::Import,
            target: None,
            detail: None,
        });
        let conn = rusqlite::Connection::open(&db).unwrap();
        let err = conn.execute("DELETE FROM audit", []).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        let err = conn.execute("UPDATE audit SET actor = 'mallory'", []).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        assert_eq!(audit.entries(&Query { limit: 5, ..Query::default() }).unwrap().1, 1);
        assert_eq!(Action::parse("cancel"), Ok(Action::Cancel));
        assert!(Action::parse("delete-everything").unwrap_err().contains("actions are: sign-in"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
