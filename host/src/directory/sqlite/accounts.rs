//! Accounts, sessions and API tokens in SQLite, on their own connection to
//! the hrsync database. A single-company install: every account is the
//! default tenant's.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use anyhow::Context;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::accounts::{
    Account, AccountChange, AccountError, AccountStore, Principal, Role, SessionRow, Token, TokenRow,
};
use crate::model::TenantId;

/// The [`AccountStore`] of a SQLite install.
pub struct SqliteAccounts {
    conn: Mutex<Connection>,
}

impl SqliteAccounts {
    /// Opens the database at `db`; the directory store has migrated it.
    pub fn open(db: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open(db).with_context(|| format!("opening {}", db.display()))?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        Ok(SqliteAccounts { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().expect("accounts connection")
    }
}

const ACCOUNT_COLUMNS: &str = "id, username, role, created_at, disabled_at, password_changed_at";

fn account_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: r.get(0)?,
        username: r.get(1)?,
        role: r.get(2)?,
        created_at: r.get(3)?,
        disabled_at: r.get(4)?,
        password_changed_at: r.get(5)?,
    })
}

impl AccountStore for SqliteAccounts {
    fn has_accounts(&self) -> Result<bool, AccountError> {
        Ok(self.conn().query_row("SELECT EXISTS (SELECT 1 FROM admins)", [], |r| r.get(0))?)
    }

    fn insert_account(&self, username: &str, password_hash: &str, role: Role) -> Result<i64, AccountError> {
        let conn = self.conn();
        let taken: bool =
            conn.query_row("SELECT EXISTS (SELECT 1 FROM admins WHERE username = ?1)", [username], |r| r.get(0))?;
        if taken {
            return Err(AccountError::Taken(username.into()));
        }
        conn.execute(
            "INSERT INTO admins (username, password_hash, role, created_at, password_changed_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![username, password_hash, role.as_str(), Utc::now()],
        )?;
        Ok(conn.last_insert_rowid())
    }

    fn accounts(&self) -> Result<Vec<Account>, AccountError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {ACCOUNT_COLUMNS} FROM admins ORDER BY username"))?;
        Ok(stmt.query_map([], account_from_row)?.collect::<Result<_, _>>()?)
    }

    fn account(&self, username: &str) -> Result<Option<Account>, AccountError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM admins WHERE username = ?1"),
                [username],
                account_from_row,
            )
            .optional()?)
    }

    fn change_account(&self, account: &Account, change: AccountChange) -> Result<(), AccountError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if change.demotes(account) {
            let others: i64 = tx.query_row(
                "SELECT COUNT(*) FROM admins WHERE role = 'admin' AND disabled_at IS NULL AND id != ?1",
                [account.id],
                |r| r.get(0),
            )?;
            if others == 0 {
                return Err(AccountError::LastAdmin(account.username.clone()));
            }
        }
        let now = Utc::now();
        match &change {
            AccountChange::Disable => {
                tx.execute("UPDATE admins SET disabled_at = ?2 WHERE id = ?1", params![account.id, now])?
            }
            AccountChange::Enable => tx.execute("UPDATE admins SET disabled_at = NULL WHERE id = ?1", [account.id])?,
            AccountChange::Role(role) => {
                tx.execute("UPDATE admins SET role = ?2 WHERE id = ?1", params![account.id, role.as_str()])?
            }
            AccountChange::Password(phc) => tx.execute(
                "UPDATE admins SET password_hash = ?2, password_changed_at = ?3 WHERE id = ?1",
                params![account.id, phc, now],
            )?,
        };
        if change != AccountChange::Enable {
            tx.execute("DELETE FROM sessions WHERE admin_id = ?1", [account.id])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn credentials(&self, username: &str) -> Result<Option<(i64, String)>, AccountError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, password_hash FROM admins WHERE username = ?1 AND disabled_at IS NULL",
                [username],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    fn insert_session(&self, s: &SessionRow) -> Result<(), AccountError> {
        self.conn().execute(
            "INSERT INTO sessions (token_hash, admin_id, csrf_token, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![s.token_hash, s.admin_id, s.csrf, s.created_at, s.expires_at],
        )?;
        Ok(())
    }

    fn session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<Principal>, AccountError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT a.id, a.username, a.role, s.csrf_token FROM sessions s JOIN admins a ON a.id = s.admin_id \
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND a.disabled_at IS NULL",
                params![token_hash, now],
                |r| {
                    Ok(Principal {
                        admin_id: r.get(0)?,
                        username: r.get(1)?,
                        role: r.get(2)?,
                        csrf: Some(r.get(3)?),
                        token_id: None,
                        tenant: TenantId::DEFAULT,
                    })
                },
            )
            .optional()?)
    }

    fn delete_session(&self, token_hash: &str) -> Result<(), AccountError> {
        self.conn().execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
        Ok(())
    }

    fn insert_token(&self, t: &TokenRow) -> Result<i64, AccountError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO api_tokens (admin_id, name, token_hash, created_at, role, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![t.admin_id, t.name, t.token_hash, t.created_at, t.role.as_str(), t.expires_at],
        )?;
        Ok(conn.last_insert_rowid())
    }

    fn token(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<(Principal, Role)>, AccountError> {
        let conn = self.conn();
        let found = conn
            .query_row(
                "SELECT a.id, a.username, a.role, t.role, t.id FROM api_tokens t JOIN admins a ON a.id = t.admin_id \
                 WHERE t.token_hash = ?1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?2) \
                 AND a.disabled_at IS NULL",
                params![token_hash, now],
                |r| {
                    let principal = Principal {
                        admin_id: r.get(0)?,
                        username: r.get(1)?,
                        role: r.get(2)?,
                        csrf: None,
                        token_id: Some(r.get(4)?),
                        tenant: TenantId::DEFAULT,
                    };
                    Ok((principal, r.get(3)?))
                },
            )
            .optional()?;
        if let Some((p, _)) = &found {
            conn.execute("UPDATE api_tokens SET last_used = ?2 WHERE id = ?1", params![p.token_id, now])?;
        }
        Ok(found)
    }

    fn tokens(&self, owner: Option<i64>) -> Result<Vec<Token>, AccountError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT t.id, t.name, a.username, t.role, t.created_at, t.last_used, t.expires_at, t.revoked_at \
             FROM api_tokens t JOIN admins a ON a.id = t.admin_id WHERE ?1 IS NULL OR t.admin_id = ?1 ORDER BY t.id DESC",
        )?;
        Ok(stmt
            .query_map([owner], |r| {
                Ok(Token {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    creator: r.get(2)?,
                    role: r.get(3)?,
                    created_at: r.get(4)?,
                    last_used: r.get(5)?,
                    expires_at: r.get(6)?,
                    revoked_at: r.get(7)?,
                })
            })?
            .collect::<Result<_, _>>()?)
    }

    fn revoke_token(&self, id: i64, now: DateTime<Utc>) -> Result<(), AccountError> {
        self.conn()
            .execute("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1", params![id, now])?;
        Ok(())
    }
}
