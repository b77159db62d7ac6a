//! Who may use the admin web app and API: accounts with a role (Argon2id
//! passwords), browser sessions with their CSRF tokens, and API tokens for
//! scripts — revocable, optionally expiring, never more powerful than their
//! creator. Session and API tokens are random; only their SHA-256 is stored.

use std::path::Path;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::TenantId;

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
    /// The company the account belongs to; everything it sees is that
    /// tenant's ([`TenantId::DEFAULT`] in a single-company install).
    pub tenant: TenantId,
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

/// Where accounts, sessions and API tokens are kept: rows only, the rules
/// live in [`Accounts`]. Implemented by both directory stores
/// ([`crate::directory::sqlite::SqliteAccounts`] and
/// [`crate::directory::postgres::PgStore`]); a handle serves one tenant,
/// except that sessions, tokens and sign-in credentials are found by their
/// (globally unique) hash or username and say which tenant they belong to.
pub trait AccountStore: Send + Sync {
    /// Whether the tenant has any account at all.
    fn has_accounts(&self) -> Result<bool, AccountError>;
    /// Adds an enabled account; [`AccountError::Taken`] when the username
    /// (case-insensitively, across tenants) is in use.
    fn insert_account(&self, username: &str, password_hash: &str, role: Role) -> Result<i64, AccountError>;
    /// The tenant's accounts by username.
    fn accounts(&self) -> Result<Vec<Account>, AccountError>;
    fn account(&self, username: &str) -> Result<Option<Account>, AccountError>;
    /// Applies `change` in one transaction, ending the account's sessions
    /// unless it enables the account; [`AccountError::LastAdmin`] when it
    /// would leave the tenant without an enabled admin.
    fn change_account(&self, account: &Account, change: AccountChange) -> Result<(), AccountError>;
    /// The id and password hash of the enabled account `username`.
    fn credentials(&self, username: &str) -> Result<Option<(i64, String)>, AccountError>;
    fn insert_session(&self, session: &SessionRow) -> Result<(), AccountError>;
    /// The enabled account of the live session with this token hash.
    fn session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<Principal>, AccountError>;
    fn delete_session(&self, token_hash: &str) -> Result<(), AccountError>;
    fn insert_token(&self, token: &TokenRow) -> Result<i64, AccountError>;
    /// The live token with this hash (not revoked or expired, its account
    /// enabled), with the token's own role; marks it used at `now`.
    fn token(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<(Principal, Role)>, AccountError>;
    /// The tenant's tokens, newest first: `owner`'s only, or all.
    fn tokens(&self, owner: Option<i64>) -> Result<Vec<Token>, AccountError>;
    /// Revokes token `id` at `now` unless it is revoked already.
    fn revoke_token(&self, id: i64, now: DateTime<Utc>) -> Result<(), AccountError>;
}

/// A change to an account; all but [`AccountChange::Enable`] end its sessions.
#[derive(Debug, Clone, PartialEq)]
pub enum AccountChange {
    Disable,
    Enable,
    Role(Role),
    /// A new password, as its Argon2id PHC string.
    Password(String),
}

impl AccountChange {
    /// Whether the account could stop being an enabled admin by it.
    pub fn demotes(&self, account: &Account) -> bool {
        account.role == Role::Admin
            && matches!(self, AccountChange::Disable | AccountChange::Role(Role::Viewer | Role::Operator))
    }
}

/// A session as stored: the hash of its cookie value.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub token_hash: String,
    pub admin_id: i64,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// An API token as stored: the hash of its value.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub admin_id: i64,
    pub name: String,
    pub token_hash: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Accounts and the rules about them, over an [`AccountStore`].
pub struct Accounts {
    store: Box<dyn AccountStore>,
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

/// A new account's username (trimmed) and password hash, once both are
/// acceptable.
pub fn new_account<'a>(username: &'a str, password: &str) -> Result<(&'a str, String), AccountError> {
    let username = username.trim();
    if !valid_username(username) {
        return Err(AccountError::BadUsername(username.into()));
    }
    let phc = hash_password(password).map_err(|_| AccountError::ShortPassword)?;
    Ok((username, phc))
}

fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
}

impl Accounts {
    /// The accounts in the SQLite database at `db` (opened after the
    /// directory store, which applies the migrations).
    pub fn open(db: &Path) -> anyhow::Result<Self> {
        Ok(Self::new(Box::new(crate::directory::sqlite::SqliteAccounts::open(db)?)))
    }

    pub fn new(store: Box<dyn AccountStore>) -> Self {
        Accounts { store }
    }

    /// Creates the first admin if there is none. Returns the password when
    /// it was generated, so the caller can show it once.
    pub fn ensure_admin(&self, password: Option<&str>) -> anyhow::Result<Option<String>> {
        self.ensure_named_admin(FIRST_ADMIN, password)
    }

    /// Creates the admin `username` if the tenant has no account yet;
    /// returns the password when it was generated.
    pub fn ensure_named_admin(&self, username: &str, password: Option<&str>) -> anyhow::Result<Option<String>> {
        if self.store.has_accounts()? {
            return Ok(None);
        }
        let generated = password.is_none().then(|| random_token("")[..20].to_string());
        let password = password.map(str::to_string).or(generated.clone()).expect("one of them");
        match self.create_account(username, &password, Role::Admin) {
            Ok(_) => Ok(generated),
            // Replicas starting together: another one made it first.
            Err(AccountError::Taken(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A new, enabled account.
    pub fn create_account(&self, username: &str, password: &str, role: Role) -> Result<i64, AccountError> {
        let (username, phc) = new_account(username, password)?;
        self.store.insert_account(username, &phc, role)
    }

    pub fn accounts(&self) -> Result<Vec<Account>, AccountError> {
        self.store.accounts()
    }

    pub fn account(&self, username: &str) -> Result<Account, AccountError> {
        self.store.account(username)?.ok_or_else(|| AccountError::NoAccount(username.into()))
    }

    /// Disables (or enables again) an account. A disabled account cannot
    /// sign in; its sessions end and its tokens stop working.
    pub fn set_disabled(&self, username: &str, disabled: bool) -> Result<Account, AccountError> {
        let account = self.account(username)?;
        let change = if disabled { AccountChange::Disable } else { AccountChange::Enable };
        self.store.change_account(&account, change)?;
        self.account(username)
    }

    /// Changes an account's role; its sessions end so the change applies at once.
    pub fn set_role(&self, username: &str, role: Role) -> Result<Account, AccountError> {
        let account = self.account(username)?;
        self.store.change_account(&account, AccountChange::Role(role))?;
        self.account(username)
    }

    /// Sets a new password (an admin's reset, or the CLI's way back in); the
    /// account's sessions end.
    pub fn reset_password(&self, username: &str, password: &str) -> Result<(), AccountError> {
        let account = self.account(username)?;
        let phc = hash_password(password).map_err(|_| AccountError::ShortPassword)?;
        self.store.change_account(&account, AccountChange::Password(phc))
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
        let row = self.store.credentials(username)?;
        const DUMMY: &str =
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2Wz0mzN1Xn3lVnYgbS4m8o6O1nNnZpj+ElJw2rBqYFU";
        let (id, phc) = row.map_or((None, DUMMY.to_string()), |(id, phc)| (Some(id), phc));
        let parsed = PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("stored password hash: {e}"))?;
        let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        Ok(id.filter(|_| ok))
    }

    pub fn create_session(&self, admin_id: i64) -> anyhow::Result<NewSession> {
        let now = Utc::now();
        let session =
            NewSession { token: random_token("hs_"), csrf: random_token(""), expires_at: now + SESSION_LIFETIME };
        self.store.insert_session(&SessionRow {
            token_hash: token_hash(&session.token),
            admin_id,
            csrf: session.csrf.clone(),
            created_at: now,
            expires_at: session.expires_at,
        })?;
        Ok(session)
    }

    /// The enabled account of a live session.
    pub fn session(&self, token: &str) -> anyhow::Result<Option<Principal>> {
        Ok(self.store.session(&token_hash(token), Utc::now())?)
    }

    pub fn end_session(&self, token: &str) -> anyhow::Result<()> {
        Ok(self.store.delete_session(&token_hash(token))?)
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
        let id = self.store.insert_token(&TokenRow {
            admin_id: creator.admin_id,
            name: name.to_string(),
            token_hash: token_hash(&token),
            role,
            created_at: Utc::now(),
            expires_at,
        })?;
        Ok((id, token))
    }

    /// The principal of a live API token: not revoked, not expired, its
    /// account enabled; its role is never above the account's current one.
    pub fn api_token(&self, token: &str) -> anyhow::Result<Option<Principal>> {
        Ok(self.store.token(&token_hash(token), Utc::now())?.map(|(mut principal, token_role)| {
            principal.role = principal.role.min(token_role);
            principal
        }))
    }

    /// Tokens, newest first: `viewer`'s own, or everyone's for an admin.
    pub fn tokens(&self, viewer: &Principal) -> Result<Vec<Token>, AccountError> {
        self.store.tokens((viewer.role != Role::Admin).then_some(viewer.admin_id))
    }

    /// Revokes a token: one's own, or any for an admin. Revoking twice is fine.
    pub fn revoke_token(&self, by: &Principal, id: i64) -> Result<Token, AccountError> {
        if !self.tokens(by)?.iter().any(|t| t.id == id) {
            return Err(AccountError::NoToken(id));
        }
        self.store.revoke_token(id, Utc::now())?;
        self.tokens(by)?.into_iter().find(|t| t.id == id).ok_or(AccountError::NoToken(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::sqlite::SqliteStore;
    use crate::secrets::SecretBox;

    // The behaviour of accounts on both databases is tested in
    // `directory::suite`; this is what SQLite keeps on disk.
    #[test]
    fn passwords_sessions_and_tokens_are_stored_hashed() {
        let dir =
            std::env::temp_dir().join(format!("hrsync-accounts-{}-{}", std::process::id(), rand::random::<u32>()));
        let db = dir.join("hrsync.db");
        SqliteStore::open(&db, SecretBox::from_key(&[0; 32])).unwrap();
        let a = Accounts::open(&db).unwrap();
        let generated = a.ensure_admin(None).unwrap().expect("a generated password");
        let id = a.verify("admin", &generated).unwrap().unwrap();
        let session = a.create_session(id).unwrap();
        let p = a.session(&session.token).unwrap().unwrap();
        let (_, token) = a.create_api_token(&p, "ci", None, None).unwrap();

        let raw = rusqlite::Connection::open(&db).unwrap();
        let stored = |sql: &str| -> String { raw.query_row(sql, [], |r| r.get(0)).unwrap() };
        let phc = stored("SELECT password_hash FROM admins");
        assert!(phc.starts_with("$argon2id$") && !phc.contains(&generated));
        assert_eq!(stored("SELECT token_hash FROM sessions"), token_hash(&session.token));
        assert_eq!(stored("SELECT token_hash FROM api_tokens"), token_hash(&token));
        let _ = std::fs::remove_dir_all(dir);
    }
}
