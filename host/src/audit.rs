//! The audit log: who did what, when and from where — sign-ins (and failed
//! ones), settings changes (which keys, never secret values), previews,
//! imports, reverts and cancels, password emails sent, tokens and accounts.
//!
//! Kept in the database, append-only from the app's side: triggers refuse
//! any change or removal of an entry.

use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
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
}

impl Action {
    pub const ALL: [Action; 27] = [
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

/// The audit log, on its own connection to the hrsync database.
pub struct Audit {
    conn: Mutex<Connection>,
}

impl Audit {
    pub fn open(db: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open(db).with_context(|| format!("opening {}", db.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        Ok(Audit { conn: Mutex::new(conn) })
    }

    /// Records an event. A failure to record is logged, never hidden: the
    /// action it describes has already happened.
    pub fn record(&self, event: Event) {
        let result = self.conn.lock().expect("audit connection").execute(
            "INSERT INTO audit (at, actor, address, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![Utc::now(), event.actor, event.address, event.action.as_str(), event.target, event.detail],
        );
        if let Err(e) = result {
            tracing::error!(action = event.action.as_str(), actor = %event.actor, "could not record an audit entry: {e}");
        }
    }

    /// A page of entries matching `q`, newest first, and how many match.
    pub fn entries(&self, q: &Query) -> anyhow::Result<(Vec<Entry>, u64)> {
        let conn = self.conn.lock().expect("audit connection");
        let filter = "(?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action = ?2) AND (?3 IS NULL OR at >= ?3) \
                      AND (?4 IS NULL OR at < ?4)";
        let action = q.action.map(Action::as_str);
        let total: u64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM audit WHERE {filter}"),
            params![q.actor, action, q.since, q.until],
            |r| r.get(0),
        )?;
        let mut stmt = conn.prepare(&format!(
            "SELECT id, at, actor, address, action, target, detail FROM audit WHERE {filter} \
             ORDER BY id DESC LIMIT ?5 OFFSET ?6"
        ))?;
        let entries = stmt
            .query_map(params![q.actor, action, q.since, q.until, q.limit.max(1), q.offset], |r| {
                Ok(Entry {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    address: r.get(3)?,
                    action: r.get(4)?,
                    target: r.get(5)?,
                    detail: r.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok((entries, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::sqlite::SqliteStore;
    use crate::secrets::SecretBox;

    #[test]
    fn entries_are_kept_filtered_and_never_changed() {
        let dir = std::env::temp_dir().join(format!("hrsync-audit-{}-{}", std::process::id(), rand::random::<u32>()));
        let db = dir.join("hrsync.db");
        SqliteStore::open(&db, SecretBox::from_key(&[0; 32])).unwrap();
        let audit = Audit::open(&db).unwrap();
        for (actor, action) in [("ann", Action::SignIn), ("bob", Action::SignInFailed), ("ann", Action::Import)] {
            audit.record(Event {
                actor: actor.into(),
                address: "10.0.0.7".into(),
                action,
                target: Some("integration 1".into()),
                detail: None,
            });
        }
        let (all, total) = audit.entries(&Query { limit: 10, ..Query::default() }).unwrap();
        assert_eq!((all.len(), total), (3, 3));
        assert_eq!(all[0].action, "import", "newest first");
        let (ann, _) = audit.entries(&Query { actor: Some("ann".into()), limit: 10, ..Query::default() }).unwrap();
        assert_eq!(ann.len(), 2);
        let (failed, _) =
            audit.entries(&Query { action: Some(Action::SignInFailed), limit: 10, ..Query::default() }).unwrap();
        assert_eq!(failed[0].actor, "bob");

        let conn = Connection::open(&db).unwrap();
        let err = conn.execute("DELETE FROM audit", []).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        let err = conn.execute("UPDATE audit SET actor = 'mallory'", []).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        assert_eq!(Action::parse("cancel"), Ok(Action::Cancel));
        assert!(Action::parse("delete-everything").unwrap_err().contains("actions are: sign-in"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
