//! Who may use the admin web app and API: admin accounts (Argon2id
//! passwords), browser sessions with their CSRF tokens, and API tokens for
//! scripts. Session and API tokens are random; only their SHA-256 is stored.

use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

/// How long a browser session lasts without signing in again.
pub const SESSION_LIFETIME: Duration = Duration::hours(12);
/// Environment variable with the first admin's password (else one is generated and printed).
pub const ADMIN_PASSWORD_ENV: &str = "HRSYNC_ADMIN_PASSWORD";
pub const FIRST_ADMIN: &str = "admin";

/// A signed-in admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub admin_id: i64,
    pub username: String,
    /// The session's CSRF token; `None` for API tokens (no cookie, no CSRF risk).
    pub csrf: Option<String>,
}

/// A new browser session: the cookie value and its CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
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

impl Accounts {
    pub fn open(db: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open(db).with_context(|| format!("opening {}", db.display()))?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
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
        self.create_admin(FIRST_ADMIN, &password)?;
        Ok(generated)
    }

    pub fn create_admin(&self, username: &str, password: &str) -> anyhow::Result<i64> {
        let phc = hash_password(password)?;
        let conn = self.conn();
        conn.execute(
            "INSERT INTO admins (username, password_hash, created_at) VALUES (?1, ?2, ?3)",
            params![username, phc, Utc::now()],
        )
        .with_context(|| format!("creating admin `{username}`"))?;
        Ok(conn.last_insert_rowid())
    }

    /// The admin with these credentials. Unknown users cost a hash too, so
    /// timing does not tell which usernames exist.
    pub fn verify(&self, username: &str, password: &str) -> anyhow::Result<Option<i64>> {
        let row: Option<(i64, String)> = self
            .conn()
            .query_row("SELECT id, password_hash FROM admins WHERE username = ?1", [username], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
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

    /// The admin of a live session.
    pub fn session(&self, token: &str) -> anyhow::Result<Option<Principal>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT a.id, a.username, s.csrf_token FROM sessions s JOIN admins a ON a.id = s.admin_id \
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2",
                params![token_hash(token), Utc::now()],
                |r| Ok(Principal { admin_id: r.get(0)?, username: r.get(1)?, csrf: Some(r.get(2)?) }),
            )
            .optional()?)
    }

    pub fn end_session(&self, token: &str) -> anyhow::Result<()> {
        self.conn().execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash(token)])?;
        Ok(())
    }

    /// A new API token; the value is returned once and never stored.
    pub fn create_api_token(&self, admin_id: i64, name: &str) -> anyhow::Result<String> {
        let token = random_token("hrs_");
        self.conn().execute(
            "INSERT INTO api_tokens (admin_id, name, token_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![admin_id, name, token_hash(&token), Utc::now()],
        )?;
        Ok(token)
    }

    /// The admin an API token belongs to.
    pub fn api_token(&self, token: &str) -> anyhow::Result<Option<Principal>> {
        let conn = self.conn();
        let found = conn
            .query_row(
                "SELECT a.id, a.username, t.id FROM api_tokens t JOIN admins a ON a.id = t.admin_id WHERE t.token_hash = ?1",
                [token_hash(token)],
                |r| Ok((Principal { admin_id: r.get(0)?, username: r.get(1)?, csrf: None }, r.get::<_, i64>(2)?)),
            )
            .optional()?;
        if let Some((_, id)) = &found {
            conn.execute("UPDATE api_tokens SET last_used = ?2 WHERE id = ?1", params![id, Utc::now()])?;
        }
        Ok(found.map(|(p, _)| p))
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
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn sessions_and_tokens_are_stored_hashed_and_can_end() {
        let (a, dir) = accounts();
        a.ensure_admin(Some("correct horse battery")).unwrap();
        let id = a.verify("admin", "correct horse battery").unwrap().unwrap();
        let s = a.create_session(id).unwrap();
        let p = a.session(&s.token).unwrap().unwrap();
        assert_eq!((p.username.as_str(), p.csrf.as_deref()), ("admin", Some(s.csrf.as_str())));
        let raw: String = a.conn().query_row("SELECT token_hash FROM sessions", [], |r| r.get(0)).unwrap();
        assert_ne!(raw, s.token);
        a.end_session(&s.token).unwrap();
        assert!(a.session(&s.token).unwrap().is_none());

        let t = a.create_api_token(id, "ci").unwrap();
        assert_eq!(a.api_token(&t).unwrap().unwrap().csrf, None);
        assert!(a.api_token("hrs_forged").unwrap().is_none());
        assert!(a.create_admin("short", "too short").is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
