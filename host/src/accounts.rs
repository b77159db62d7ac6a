//! Who may use the admin web app and API: accounts with a role (Argon2id
//! passwords), browser sessions with their CSRF tokens, and API tokens for
//! scripts — revocable, optionally expiring, never more powerful than their
//! creator. Session and API tokens are random; only their SHA-256 is stored.

use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How long a browser session lasts without signing in again.
pub const SESSION_LIFETIME: Duration = Duration::hours(12);
/// Environment variable with the first admin's password (else one is generated and printed).
pub const ADMIN_PASSWORD_ENV: &str = "HRSYNC_ADMIN_PASSWORD";
pub const FIRST_ADMIN: &str = "admin";

/// What an account may do; each role can do everything the ones below it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads integrations, runs, history and the directory.
    Viewer,
    /// Also previews, imports, reverts and cancels runs, tests connections
    /// and sends password emails; no settings, no secrets.
    Operator,
    /// Everything: settings and secrets, accounts, tokens of others, the audit log.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Result<Role, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role `{other}`; roles are admin, operator and viewer")),
        }
    }

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl rusqlite::types::FromSql for Role {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        Role::parse(value.as_str()?).map_err(|e| rusqlite::types::FromSqlError::Other(e.into()))
    }
}

/// A signed-in account, as a request carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub admin_id: i64,
    pub username: String,
    /// What this request may do: the account's role, or a token's narrower one.
    pub role: Role,
    /// The session's CSRF token; `None` for API tokens (no cookie, no CSRF risk).
    pub csrf: Option<String>,
    /// The API token the request came with, if any.
    pub token_id: Option<i64>,
}

/// A new browser session: the cookie value and its CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// An account as the accounts page and API list it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Account {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub password_changed_at: Option<DateTime<Utc>>,
}

/// An API token as listed: never its value.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Token {
    pub id: i64,
    pub name: String,
    /// The account that created it.
    pub creator: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub last_used: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Why an account operation was refused; each says what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("no account `{0}`; `hrsync admin list` lists them")]
    NoAccount(String),
    #[error("an account named `{0}` exists already; pick another name")]
    Taken(String),
    #[error("`{0}` is not a usable username: use 1 to 64 letters, digits and . _ @ - (an email address works)")]
    BadUsername(String),
    #[error("passwords need at least {MIN_PASSWORD_CHARS} characters")]
    ShortPassword,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("{0} is the last enabled admin: make another account admin first, or nobody could manage hrsync")]
    LastAdmin(String),
    #[error(
        "{} accounts cannot create {} tokens: a token's role is its creator's or a narrower one",
        creator.as_str(),
        wanted.as_str()
    )]
    TokenTooPowerful { creator: Role, wanted: Role },
    #[error("no API token {0}")]
    NoToken(i64),
    #[error("an expiry must lie in the future")]
    ExpiryInPast,
    #[error(transparent)]
    Database(#[from] anyhow::Error),
}

impl From<rusqlite::Error> for AccountError {
    fn from(e: rusqlite::Error) -> Self {
        AccountError::Database(e.into())
    }
}

/// Accounts, on their own connection to the hrsync database (opened after
/// the directory store, which applies the migrations).
pub struct Accounts {
    conn: Mutex<Connection>,
}

/// 256 random bits as hex, after `prefix`.
pub fn random_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// The shortest password hrsync accepts, for admins and directory users.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// An Argon2id PHC string for `password`, refusing short ones.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        password.chars().count() >= MIN_PASSWORD_CHARS,
        "passwords need at least {MIN_PASSWORD_CHARS} characters"
    );
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?
        .to_string())
}

/// SHA-256 of a token, hex: what is stored instead of the token.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
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

impl Accounts {
    pub fn open(db: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open(db).with_context(|| format!("opening {}", db.display()))?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        Ok(Accounts { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().expect("accounts connection")
    }

    /// Creates the first admin if there is none. Returns the password when
    /// it was generated, so the caller can show it once.
    pub fn ensure_admin(&self, password: Option<&str>) -> anyhow::Result<Option<String>> {
        let count: i64 = self.conn().query_row("SELECT COUNT(*) FROM admins", [], |r| r.get(0))?;
        if count > 0 {
            return Ok(None);
        }
        let generated = password.is_none().then(|| random_token("")[..20].to_string());
        let password = password.map(str::to_string).or(generated.clone()).expect("one of them");
        self.create_account(FIRST_ADMIN, &password, Role::Admin)?;
        Ok(generated)
    }

    /// A new, enabled account.
    pub fn create_account(&self, username: &str, password: &str, role: Role) -> Result<i64, AccountError> {
        let username = username.trim();
        if !valid_username(username) {
            return Err(AccountError::BadUsername(username.into()));
        }
        let phc = hash_password(password).map_err(|_| AccountError::ShortPassword)?;
        let conn = self.conn();
        let taken: bool =
            conn.query_row("SELECT EXISTS (SELECT 1 FROM admins WHERE username = ?1)", [username], |r| r.get(0))?;
        if taken {
            return Err(AccountError::Taken(username.into()));
        }
        conn.execute(
            "INSERT INTO admins (username, password_hash, role, created_at, password_changed_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![username, phc, role.as_str(), Utc::now()],
        )?;
        Ok(conn.last_insert_rowid())
    }

    pub fn accounts(&self) -> Result<Vec<Account>, AccountError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {ACCOUNT_COLUMNS} FROM admins ORDER BY username"))?;
        Ok(stmt.query_map([], account_from_row)?.collect::<Result<_, _>>()?)
    }

    pub fn account(&self, username: &str) -> Result<Account, AccountError> {
        self.conn()
            .query_row(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM admins WHERE username = ?1"),
                [username],
                account_from_row,
            )
            .optional()?
            .ok_or_else(|| AccountError::NoAccount(username.into()))
    }

    /// Refuses when `username` is the last enabled admin and would stop being one.
    fn keep_an_admin(conn: &Connection, username: &str) -> Result<(), AccountError> {
        let others: i64 = conn.query_row(
            "SELECT COUNT(*) FROM admins WHERE role = 'admin' AND disabled_at IS NULL AND username != ?1",
            [username],
            |r| r.get(0),
        )?;
        if others == 0 { Err(AccountError::LastAdmin(username.into())) } else { Ok(()) }
    }

    /// Disables (or enables again) an account. A disabled account cannot
    /// sign in; its sessions end and its tokens stop working.
    pub fn set_disabled(&self, username: &str, disabled: bool) -> Result<Account, AccountError> {
        let account = self.account(username)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if disabled {
            if account.role == Role::Admin {
                Self::keep_an_admin(&tx, &account.username)?;
            }
            tx.execute("UPDATE admins SET disabled_at = ?2 WHERE id = ?1", params![account.id, Utc::now()])?;
            tx.execute("DELETE FROM sessions WHERE admin_id = ?1", [account.id])?;
        } else {
            tx.execute("UPDATE admins SET disabled_at = NULL WHERE id = ?1", [account.id])?;
        }
        tx.commit()?;
        drop(conn);
        self.account(username)
    }

    /// Changes an account's role; its sessions end so the change applies at once.
    pub fn set_role(&self, username: &str, role: Role) -> Result<Account, AccountError> {
        let account = self.account(username)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if account.role == Role::Admin && role != Role::Admin {
            Self::keep_an_admin(&tx, &account.username)?;
        }
        tx.execute("UPDATE admins SET role = ?2 WHERE id = ?1", params![account.id, role.as_str()])?;
        tx.execute("DELETE FROM sessions WHERE admin_id = ?1", [account.id])?;
        tx.commit()?;
        drop(conn);
        self.account(username)
    }

    /// Sets a new password (an admin's reset, or the CLI's way back in); the
    /// account's sessions end.
    pub fn reset_password(&self, username: &str, password: &str) -> Result<(), AccountError> {
        let account = self.account(username)?;
        let phc = hash_password(password).map_err(|_| AccountError::ShortPassword)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE admins SET password_hash = ?2, password_changed_at = ?3 WHERE id = ?1",
            params![account.id, phc, Utc::now()],
        )?;
        tx.execute("DELETE FROM sessions WHERE admin_id = ?1", [account.id])?;
        tx.commit()?;
        Ok(())
    }

    /// Changes one's own password, knowing the current one.
    pub fn change_password(&self, username: &str, current: &str, new: &str) -> Result<(), AccountError> {
        if self.verify(username, current)?.is_none() {
            return Err(AccountError::WrongPassword);
        }
        self.reset_password(username, new)
    }

    /// The enabled account with these credentials. Unknown users cost a
    /// hash too, so timing does not tell which usernames exist.
    pub fn verify(&self, username: &str, password: &str) -> anyhow::Result<Option<i64>> {
        let row: Option<(i64, String)> = self
            .conn()
            .query_row(
                "SELECT id, password_hash FROM admins WHERE username = ?1 AND disabled_at IS NULL",
                [username],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        const DUMMY: &str =
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2Wz0mzN1Xn3lVnYgbS4m8o6O1nNnZpj+ElJw2rBqYFU";
        let (id, phc) = row.map_or((None, DUMMY.to_string()), |(id, phc)| (Some(id), phc));
        let parsed = PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("stored password hash: {e}"))?;
        let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        Ok(id.filter(|_| ok))
    }

    pub fn create_session(&self, admin_id: i64) -> anyhow::Result<NewSession> {
        let session = NewSession {
            token: random_token("hs_"),
            csrf: random_token(""),
            expires_at: Utc::now() + SESSION_LIFETIME,
        };
        self.conn().execute(
            "INSERT INTO sessions (token_hash, admin_id, csrf_token, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![token_hash(&session.token), admin_id, session.csrf, Utc::now(), session.expires_at],
        )?;
        Ok(session)
    }

    /// The enabled account of a live session.
    pub fn session(&self, token: &str) -> anyhow::Result<Option<Principal>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT a.id, a.username, a.role, s.csrf_token FROM sessions s JOIN admins a ON a.id = s.admin_id \
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND a.disabled_at IS NULL",
                params![token_hash(token), Utc::now()],
                |r| {
                    Ok(Principal {
                        admin_id: r.get(0)?,
                        username: r.get(1)?,
                        role: r.get(2)?,
                        csrf: Some(r.get(3)?),
                        token_id: None,
                    })
                },
            )
            .optional()?)
    }

    pub fn end_session(&self, token: &str) -> anyhow::Result<()> {
        self.conn().execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash(token)])?;
        Ok(())
    }

    /// A new API token for `creator`, with its role or a narrower one; the
    /// value is returned once and never stored.
    pub fn create_api_token(
        &self,
        creator: &Principal,
        name: &str,
        role: Option<Role>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(i64, String), AccountError> {
        let role = role.unwrap_or(creator.role);
        if !creator.role.allows(role) {
            return Err(AccountError::TokenTooPowerful { creator: creator.role, wanted: role });
        }
        if expires_at.is_some_and(|e| e <= Utc::now()) {
            return Err(AccountError::ExpiryInPast);
        }
        let token = random_token("hrs_");
        let conn = self.conn();
        conn.execute(
            "INSERT INTO api_tokens (admin_id, name, token_hash, created_at, role, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![creator.admin_id, name, token_hash(&token), Utc::now(), role.as_str(), expires_at],
        )?;
        Ok((conn.last_insert_rowid(), token))
    }

    /// The principal of a live API token: not revoked, not expired, its
    /// account enabled; its role is never above the account's current one.
    pub fn api_token(&self, token: &str) -> anyhow::Result<Option<Principal>> {
        let conn = self.conn();
        let now = Utc::now();
        let found = conn
            .query_row(
                "SELECT a.id, a.username, a.role, t.role, t.id FROM api_tokens t JOIN admins a ON a.id = t.admin_id \
                 WHERE t.token_hash = ?1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?2) \
                 AND a.disabled_at IS NULL",
                params![token_hash(token), now],
                |r| {
                    let (account, token): (Role, Role) = (r.get(2)?, r.get(3)?);
                    Ok(Principal {
                        admin_id: r.get(0)?,
                        username: r.get(1)?,
                        role: account.min(token),
                        csrf: None,
                        token_id: Some(r.get(4)?),
                    })
                },
            )
            .optional()?;
        if let Some(p) = &found {
            conn.execute("UPDATE api_tokens SET last_used = ?2 WHERE id = ?1", params![p.token_id, now])?;
        }
        Ok(found)
    }

    /// Tokens, newest first: `viewer`'s own, or everyone's for an admin.
    pub fn tokens(&self, viewer: &Principal) -> Result<Vec<Token>, AccountError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT t.id, t.name, a.username, t.role, t.created_at, t.last_used, t.expires_at, t.revoked_at \
             FROM api_tokens t JOIN admins a ON a.id = t.admin_id WHERE ?1 OR t.admin_id = ?2 ORDER BY t.id DESC",
        )?;
        let all = viewer.role == Role::Admin;
        Ok(stmt
            .query_map(params![all, viewer.admin_id], |r| {
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

    /// Revokes a token: one's own, or any for an admin. Revoking twice is fine.
    pub fn revoke_token(&self, by: &Principal, id: i64) -> Result<Token, AccountError> {
        let visible = self.tokens(by)?.into_iter().find(|t| t.id == id);
        if visible.is_none() {
            return Err(AccountError::NoToken(id));
        }
        self.conn().execute(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
            params![id, Utc::now()],
        )?;
        self.tokens(by)?.into_iter().find(|t| t.id == id).ok_or(AccountError::NoToken(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::sqlite::SqliteStore;
    use crate::secrets::SecretBox;

    fn accounts() -> (Accounts, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("hrsync-accounts-{}-{}", std::process::id(), rand::random::<u32>()));
        let db = dir.join("hrsync.db");
        SqliteStore::open(&db, SecretBox::from_key(&[0; 32])).unwrap();
        (Accounts::open(&db).unwrap(), dir)
    }

    fn principal(a: &Accounts, username: &str, password: &str) -> Principal {
        let id = a.verify(username, password).unwrap().expect("signed in");
        let s = a.create_session(id).unwrap();
        a.session(&s.token).unwrap().unwrap()
    }

    #[test]
    fn the_first_admin_is_created_once_with_a_printed_or_given_password() {
        let (a, dir) = accounts();
        let generated = a.ensure_admin(None).unwrap().expect("a generated password");
        assert_eq!(a.ensure_admin(Some("another-password")).unwrap(), None, "only once");
        assert!(a.verify("admin", &generated).unwrap().is_some());
        assert!(a.verify("ADMIN", &generated).unwrap().is_some(), "usernames are case-insensitive");
        assert!(a.verify("admin", "wrong-password!").unwrap().is_none());
        assert!(a.verify("nobody", &generated).unwrap().is_none());
        let stored: String = a.conn().query_row("SELECT password_hash FROM admins", [], |r| r.get(0)).unwrap();
        assert!(stored.starts_with("$argon2id$") && !stored.contains(&generated));
        assert_eq!(a.account("admin").unwrap().role, Role::Admin);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn sessions_and_tokens_are_stored_hashed_and_can_end() {
        let (a, dir) = accounts();
        a.ensure_admin(Some("correct horse battery")).unwrap();
        let p = principal(&a, "admin", "correct horse battery");
        assert_eq!((p.username.as_str(), p.role), ("admin", Role::Admin));
        let raw: String = a.conn().query_row("SELECT token_hash FROM sessions", [], |r| r.get(0)).unwrap();
        assert!(!raw.starts_with("hs_"));

        let (_, t) = a.create_api_token(&p, "ci", None, None).unwrap();
        assert_eq!(a.api_token(&t).unwrap().unwrap().csrf, None);
        assert!(a.api_token("hrs_forged").unwrap().is_none());
        assert!(matches!(a.create_account("short", "too short", Role::Viewer), Err(AccountError::ShortPassword)));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn roles_order_and_tokens_never_outrank_their_creator() {
        let (a, dir) = accounts();
        a.ensure_admin(Some("correct horse battery")).unwrap();
        a.create_account("olga", "operator password", Role::Operator).unwrap();
        let olga = principal(&a, "olga", "operator password");
        assert!(Role::Admin.allows(Role::Operator) && !Role::Viewer.allows(Role::Operator));
        let refused = a.create_api_token(&olga, "x", Some(Role::Admin), None).unwrap_err();
        assert!(refused.to_string().contains("operator accounts cannot create admin tokens"), "{refused}");
        let (id, viewer_token) = a.create_api_token(&olga, "read", Some(Role::Viewer), None).unwrap();
        assert_eq!(a.api_token(&viewer_token).unwrap().unwrap().role, Role::Viewer);
        // Demoting the account narrows its tokens too.
        let (_, op_token) = a.create_api_token(&olga, "ops", None, None).unwrap();
        a.set_role("olga", Role::Viewer).unwrap();
        assert_eq!(a.api_token(&op_token).unwrap().unwrap().role, Role::Viewer);
        // Revoked, expired and disabled tokens stop working.
        a.revoke_token(&olga, id).unwrap();
        assert!(a.api_token(&viewer_token).unwrap().is_none());
        let soon = Utc::now() + Duration::milliseconds(50);
        let (_, short) = a.create_api_token(&olga, "short", None, Some(soon)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(80));
        assert!(a.api_token(&short).unwrap().is_none(), "expired");
        a.set_disabled("olga", true).unwrap();
        assert!(a.api_token(&op_token).unwrap().is_none(), "a disabled account's tokens stop");
        assert!(a.verify("olga", "operator password").unwrap().is_none(), "and it cannot sign in");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_last_admin_cannot_be_disabled_or_demoted() {
        let (a, dir) = accounts();
        a.ensure_admin(Some("correct horse battery")).unwrap();
        assert!(matches!(a.set_disabled("admin", true), Err(AccountError::LastAdmin(_))));
        assert!(matches!(a.set_role("admin", Role::Viewer), Err(AccountError::LastAdmin(_))));
        a.create_account("second", "another admin password", Role::Admin).unwrap();
        a.set_disabled("admin", true).expect("another admin remains");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_reset_password_ends_sessions_and_a_change_needs_the_current_one() {
        let (a, dir) = accounts();
        a.ensure_admin(Some("correct horse battery")).unwrap();
        let id = a.verify("admin", "correct horse battery").unwrap().unwrap();
        let s = a.create_session(id).unwrap();
        assert!(matches!(
            a.change_password("admin", "wrong one here", "a new password!"),
            Err(AccountError::WrongPassword)
        ));
        a.change_password("admin", "correct horse battery", "a new password!").unwrap();
        assert!(a.session(&s.token).unwrap().is_none(), "sessions end with the old password");
        a.reset_password("admin", "from the command line").unwrap();
        assert!(a.verify("admin", "from the command line").unwrap().is_some());
        let _ = std::fs::remove_dir_all(dir);
    }
}
