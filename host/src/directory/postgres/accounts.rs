//! Accounts, sessions and API tokens on PostgreSQL. Accounts belong to a
//! tenant; usernames are unique across tenants, so signing in needs no
//! tenant and a session or token names the tenant it acts for. A disabled
//! tenant's accounts cannot sign in, and their sessions and tokens stop.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::{PgStore, sql};
use crate::accounts::{
    Account, AccountChange, AccountError, AccountStore, Principal, Role, SessionRow, Token, TokenRow,
};
use crate::directory::StoreError;
use crate::model::TenantId;

const ACCOUNT_COLUMNS: &str = "id, username, role, created_at, disabled_at, password_changed_at";

/// Accounts of enabled tenants only.
const LIVE_ACCOUNT: &str = "a.disabled_at IS NULL AND EXISTS \
     (SELECT 1 FROM tenants n WHERE n.id = a.tenant_id AND n.disabled_at IS NULL)";

fn role(row: &Row, column: &str) -> Result<Role, AccountError> {
    Role::parse(row.get(column)).map_err(|e| AccountError::Database(anyhow::anyhow!("a stored role: {e}")))
}

fn account_from_row(row: &Row) -> Result<Account, AccountError> {
    Ok(Account {
        id: row.get("id"),
        username: row.get("username"),
        role: role(row, "role")?,
        created_at: row.get("created_at"),
        disabled_at: row.get("disabled_at"),
        password_changed_at: row.get("password_changed_at"),
    })
}

fn principal(row: &Row, csrf: Option<String>, token_id: Option<i64>) -> Result<Principal, AccountError> {
    Ok(Principal {
        admin_id: row.get("id"),
        username: row.get("username"),
        role: role(row, "role")?,
        csrf,
        token_id,
        tenant: TenantId(row.get("tenant_id")),
    })
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        AccountError::Database(e.into())
    }
}

impl PgStore {
    fn accounts_block<T: Send>(
        &self,
        work: impl std::future::Future<Output = Result<T, AccountError>> + Send,
    ) -> Result<T, AccountError> {
        // Account errors travel through the store's bridge as their own type.
        self.block(async { Ok(work.await) })?
    }
}

impl AccountStore for PgStore {
    fn has_accounts(&self) -> Result<bool, AccountError> {
        self.accounts_block(async {
            let c = self.client().await?;
            let row = c
                .query_one("SELECT EXISTS (SELECT 1 FROM admins WHERE tenant_id = $1)", &[&self.tenant.0])
                .await
                .map_err(sql)?;
            Ok(row.get(0))
        })
    }

    fn insert_account(&self, username: &str, password_hash: &str, role: Role) -> Result<i64, AccountError> {
        self.accounts_block(async {
            let c = self.client().await?;
            let row = c
                .query_opt(
                    "INSERT INTO admins (tenant_id, username, password_hash, role, created_at, password_changed_at) \
                     VALUES ($1, $2, $3, $4, now(), now()) ON CONFLICT ((lower(username))) DO NOTHING RETURNING id",
                    &[&self.tenant.0, &username, &password_hash, &role.as_str()],
                )
                .await
                .map_err(sql)?;
            row.map(|r| r.get(0)).ok_or_else(|| AccountError::Taken(username.into()))
        })
    }

    fn accounts(&self) -> Result<Vec<Account>, AccountError> {
        self.accounts_block(async {
            let c = self.client().await?;
            let rows = c
                .query(
                    &format!("SELECT {ACCOUNT_COLUMNS} FROM admins WHERE tenant_id = $1 ORDER BY lower(username)"),
                    &[&self.tenant.0],
                )
                .await
                .map_err(sql)?;
            rows.iter().map(account_from_row).collect()
        })
    }

    fn account(&self, username: &str) -> Result<Option<Account>, AccountError> {
        self.accounts_block(async {
            let c = self.client().await?;
            let row = c
                .query_opt(
                    &format!(
                        "SELECT {ACCOUNT_COLUMNS} FROM admins WHERE tenant_id = $1 AND lower(username) = lower($2)"
                    ),
                    &[&self.tenant.0, &username],
                )
                .await
                .map_err(sql)?;
            row.as_ref().map(account_from_row).transpose()
        })
    }

    fn change_account(&self, account: &Account, change: AccountChange) -> Result<(), AccountError> {
        self.accounts_block(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(sql)?;
            // The tenant's admins, locked: two admins demoting each other at
            // once cannot both succeed.
            let admins: Vec<i64> = tx
                .query(
                    "SELECT id FROM admins WHERE tenant_id = $1 AND role = 'admin' AND disabled_at IS NULL FOR UPDATE",
                    &[&self.tenant.0],
                )
                .await
                .map_err(sql)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if change.demotes(account) && !admins.iter().any(|id| *id != account.id) {
                return Err(AccountError::LastAdmin(account.username.clone()));
            }
            let scope = (account.id, self.tenant.0);
            let updated = match &change {
                AccountChange::Disable => {
                    tx.execute("UPDATE admins SET disabled_at = now() WHERE id = $1 AND tenant_id = $2", &[&scope.0, &scope.1])
                        .await
                }
                AccountChange::Enable => {
                    tx.execute("UPDATE admins SET disabled_at = NULL WHERE id = $1 AND tenant_id = $2", &[&scope.0, &scope.1])
                        .await
                }
                AccountChange::Role(role) => {
                    tx.execute(
                        "UPDATE admins SET role = $3 WHERE id = $1 AND tenant_id = $2",
                        &[&scope.0, &scope.1, &role.as_str()],
                    )
                    .await
                }
                AccountChange::Password(phc) => {
                    tx.execute(
                        "UPDATE admins SET password_hash = $3, password_changed_at = now() WHERE id = $1 AND tenant_id = $2",
                        &[&scope.0, &scope.1, phc],
                    )
                    .await
                }
            }
            .map_err(sql)?;
            if updated == 0 {
                return Err(AccountError::NoAccount(account.username.clone()));
            }
            if change != AccountChange::Enable {
                tx.execute("DELETE FROM sessions WHERE admin_id = $1", &[&account.id]).await.map_err(sql)?;
            }
            tx.commit().await.map_err(sql)?;
            Ok(())
        })
    }

    fn credentials(&self, username: &str) -> Result<Option<(i64, String)>, AccountError> {
        self.accounts_block(async {
            let c = self.client().await?;
            let row = c
                .query_opt(
                    &format!("SELECT a.id, a.password_hash FROM admins a WHERE lower(a.username) = lower($1) AND {LIVE_ACCOUNT}"),
                    &[&username],
                )
                .await
                .map_err(sql)?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        })
    }

    fn insert_session(&self, s: &SessionRow) -> Result<(), AccountError> {
        self.accounts_block(async {
            let c = self.client().await?;
            c.execute(
                "INSERT INTO sessions (token_hash, admin_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                &[&s.token_hash, &s.admin_id, &s.csrf, &s.created_at, &s.expires_at],
            )
            .await
            .map_err(sql)?;
            Ok(())
        })
    }

    fn session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<Principal>, AccountError> {
        self.accounts_block(async {
            let c = self.client().await?;
            let row = c
                .query_opt(
                    &format!(
                        "SELECT a.id, a.username, a.role, a.tenant_id, s.csrf_token FROM sessions s \
                         JOIN admins a ON a.id = s.admin_id WHERE s.token_hash = $1 AND s.expires_at > $2 AND {LIVE_ACCOUNT}"
                    ),
                    &[&token_hash, &now],
                )
                .await
                .map_err(sql)?;
            row.map(|r| principal(&r, Some(r.get("csrf_token")), None)).transpose()
        })
    }

    fn delete_session(&self, token_hash: &str) -> Result<(), AccountError> {
        self.accounts_block(async {
            let c = self.client().await?;
            c.execute("DELETE FROM sessions WHERE token_hash = $1", &[&token_hash]).await.map_err(sql)?;
            Ok(())
        })
    }

    fn insert_token(&self, t: &TokenRow) -> Result<i64, AccountError> {
        self.accounts_block(async {
            let c = self.client().await?;
            // The creator must be this tenant's.
            let row = c
                .query_opt(
                    "INSERT INTO api_tokens (admin_id, name, token_hash, created_at, role, expires_at) \
                     SELECT id, $3, $4, $5, $6, $7 FROM admins WHERE id = $1 AND tenant_id = $2 RETURNING id",
                    &[
                        &t.admin_id,
                        &self.tenant.0,
                        &t.name,
                        &t.token_hash,
                        &t.created_at,
                        &t.role.as_str(),
                        &t.expires_at,
                    ],
                )
                .await
                .map_err(sql)?;
            row.map(|r| r.get(0)).ok_or_else(|| AccountError::NoAccount(format!("#{}", t.admin_id)))
        })
    }

    fn token(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<(Principal, Role)>, AccountError> {
        self.accounts_block(async {
            let c = self.client().await?;
            let row = c
                .query_opt(
                    &format!(
                        "UPDATE api_tokens t SET last_used = $2 FROM admins a WHERE a.id = t.admin_id \
                         AND t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2) \
                         AND {LIVE_ACCOUNT} \
                         RETURNING a.id, a.username, a.role, a.tenant_id, t.role AS token_role, t.id AS token_id"
                    ),
                    &[&token_hash, &now],
                )
                .await
                .map_err(sql)?;
            row.map(|r| Ok((principal(&r, None, Some(r.get("token_id")))?, role(&r, "token_role")?))).transpose()
        })
    }

    fn tokens(&self, owner: Option<i64>) -> Result<Vec<Token>, AccountError> {
        self.accounts_block(async {
            let c = self.client().await?;
            let rows = c
                .query(
                    "SELECT t.id, t.name, a.username, t.role, t.created_at, t.last_used, t.expires_at, t.revoked_at \
                     FROM api_tokens t JOIN admins a ON a.id = t.admin_id \
                     WHERE a.tenant_id = $1 AND ($2::bigint IS NULL OR t.admin_id = $2) ORDER BY t.id DESC",
                    &[&self.tenant.0, &owner],
                )
                .await
                .map_err(sql)?;
            rows.iter()
                .map(|r| {
                    Ok(Token {
                        id: r.get("id"),
                        name: r.get("name"),
                        creator: r.get("username"),
                        role: role(r, "role")?,
                        created_at: r.get("created_at"),
                        last_used: r.get("last_used"),
                        expires_at: r.get("expires_at"),
                        revoked_at: r.get("revoked_at"),
                    })
                })
                .collect()
        })
    }

    fn revoke_token(&self, id: i64, now: DateTime<Utc>) -> Result<(), AccountError> {
        self.accounts_block(async {
            let c = self.client().await?;
            c.execute(
                "UPDATE api_tokens t SET revoked_at = COALESCE(t.revoked_at, $3) FROM admins a \
                 WHERE a.id = t.admin_id AND t.id = $1 AND a.tenant_id = $2",
                &[&id, &self.tenant.0, &now],
            )
            .await
            .map_err(sql)?;
            Ok(())
        })
    }
}

/// The sign-in throttle's failures, shared by every replica.
impl crate::web::auth::FailureCounts for PgStore {
    fn failures(&self, keys: &[String]) -> anyhow::Result<Vec<(String, u32, DateTime<Utc>)>> {
        Ok(self.block(async {
            let rows = self
                .client()
                .await?
                .query("SELECT key, count, last_at FROM sign_in_failures WHERE key = ANY($1)", &[&keys])
                .await
                .map_err(sql)?;
            Ok(rows.iter().map(|r| (r.get(0), u32::try_from(r.get::<_, i32>(1)).unwrap_or(0), r.get(2))).collect())
        })?)
    }

    fn fail(&self, keys: &[String], now: DateTime<Utc>, forget_after: chrono::Duration) -> anyhow::Result<()> {
        let stale = now - forget_after;
        Ok(self.block(async {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO sign_in_failures (key, count, last_at) SELECT k, 1, $2 FROM unnest($1::text[]) AS k \
                     ON CONFLICT (key) DO UPDATE SET last_at = $2, count = CASE \
                     WHEN sign_in_failures.last_at <= $3 THEN 1 ELSE sign_in_failures.count + 1 END",
                    &[&keys, &now, &stale],
                )
                .await
                .map_err(sql)?;
            // Bounded whatever the flood: what is forgotten goes.
            client.execute("DELETE FROM sign_in_failures WHERE last_at <= $1", &[&stale]).await.map_err(sql)?;
            Ok(())
        })?)
    }

    fn clear(&self, key: &str) -> anyhow::Result<()> {
        Ok(self.block(async {
            self.client().await?.execute("DELETE FROM sign_in_failures WHERE key = $1", &[&key]).await.map_err(sql)?;
            Ok(())
        })?)
    }
}
