//! Authentication and authorisation of web and API requests: session
//! cookies (HttpOnly, SameSite=Strict, Secure over HTTPS) with a CSRF token
//! required on every state-changing request, bearer API tokens for scripts,
//! the role each route needs, the client's address (behind trusted proxies
//! only), and a sign-in throttle that cannot be turned against an admin.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};

use super::{ApiError, AppState};
use crate::accounts::{NewSession, Principal, Role};

pub const SESSION_COOKIE: &str = "hrsync_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of one cookie of the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// `Set-Cookie` for a session (or, with `None`, one that ends it); `Secure`
/// when the app is reached over HTTPS.
pub fn session_cookie(token: Option<&str>, max_age: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match token {
        Some(t) => {
            format!("{SESSION_COOKIE}={t}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}", max_age.as_secs())
        }
        None => format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"),
    }
}

/// Where a request comes from: the peer, or — only when the peer is a
/// trusted proxy — the client the proxy names in `X-Forwarded-For`; and
/// whether the client reached the app over HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub ip: IpAddr,
    pub https: bool,
}

impl Client {
    /// The client of a request that came from `peer`.
    pub fn of(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr], public_https: bool) -> Client {
        if !trusted.contains(&peer) {
            return Client { ip: peer, https: public_https };
        }
        // Right to left: the first address no trusted proxy added is the client.
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        let ip = forwarded.iter().rev().find(|a| !trusted.contains(a)).copied().unwrap_or(peer);
        let proto = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).map(str::trim);
        Client { ip, https: public_https || proto.is_some_and(|p| p.eq_ignore_ascii_case("https")) }
    }
}

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([127, 0, 0, 1]), |ConnectInfo(a)| a.ip());
        Ok(Client::of(peer, &parts.headers, &state.trusted_proxies, state.https))
    }
}

/// The principal a request's credentials resolved to, kept in the
/// request for its other extractors: [`Scoped`] and a role extractor both
/// need it, and the session or token is looked up once.
#[derive(Clone)]
pub(super) struct Resolved(pub(super) Principal);

/// The principal of an API request: a bearer token, or a session cookie
/// (then state changes need the session's CSRF token: 403 without).
async fn principal(parts: &mut Parts, state: &AppState) -> Result<Principal, ApiError> {
    let principal = match parts.extensions.get::<Resolved>() {
        Some(Resolved(p)) => p.clone(),
        None => {
            let p = credentials(parts, state)?;
            parts.extensions.insert(Resolved(p.clone()));
            p
        }
    };
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    // A session (no token) comes with a cookie: its changes need the CSRF token.
    if !safe && principal.token_id.is_none() {
        let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if sent.is_none() || sent != principal.csrf.as_deref() {
            return Err(ApiError::forbidden(
                "missing or wrong CSRF token: send the session's token in the X-CSRF-Token header",
            ));
        }
    }
    Ok(principal)
}

/// Who the request's bearer token or session cookie belongs to.
fn credentials(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    if let Some(token) =
        parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
    {
        return match state.accounts.api_token(token.trim()).map_err(ApiError::internal)? {
            Some(p) => Ok(p),
            None => Err(ApiError::unauthorized(
                "the API token is not valid (unknown, revoked, expired, or its account is disabled); create one with POST /api/v1/tokens",
            )),
        };
    }
    let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
        return Err(ApiError::unauthorized("sign in first (POST /api/v1/session), or send an API token"));
    };
    state
        .accounts
        .session(&token)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::unauthorized("the session has expired; sign in again"))
}

/// The app as the signed-in account's company sees it: its engine,
/// accounts, audit log and webhooks are that tenant's, so a handler that
/// takes `Scoped` instead of `State<AppState>` cannot reach another
/// tenant's data. Without a principal it refuses as the route's role
/// extractor would: 401 for the API, the sign-in page for pages.
pub struct Scoped(pub AppState);

impl FromRequestParts<AppState> for Scoped {
    type Rejection = axum::response::Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let who = if parts.uri.path().starts_with("/api/") {
            principal(parts, state).await.map_err(IntoResponse::into_response)?
        } else {
            super::pages::signed(parts, state).await?
        };
        state.scoped(who.tenant).map(Scoped).map_err(|e| ApiError::from(e).into_response())
    }
}

/// A principal whose role allows `needed`; 403 naming the role otherwise.
pub fn require(principal: Principal, needed: Role) -> Result<Principal, ApiError> {
    if principal.role.allows(needed) {
        Ok(principal)
    } else {
        Err(ApiError::forbidden(format!(
            "this needs the {} role; `{}` is {} here — ask an admin",
            needed.as_str(),
            principal.username,
            principal.role.as_str()
        )))
    }
}

macro_rules! api_role {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        pub struct $name(pub Principal);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
                Ok($name(require(principal(parts, state).await?, $role)?))
            }
        }
    };
}

api_role!(
    /// Any signed-in account (read-only access).
    Viewer,
    Role::Viewer
);
api_role!(
    /// An operator or admin: previews, imports, reverts, cancels, invitations.
    Operator,
    Role::Operator
);
api_role!(
    /// An admin: settings, secrets, accounts, the audit log.
    Admin,
    Role::Admin
);

/// An admin of the platform's own tenant (the default one): the
/// operators who add, disable and enable tenants. Any other tenant's
/// admin gets 403.
pub struct PlatformAdmin(pub Principal);

impl FromRequestParts<AppState> for PlatformAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let p = require(principal(parts, state).await?, Role::Admin)?;
        if p.tenant != crate::model::TenantId::DEFAULT {
            return Err(ApiError::forbidden(
                "managing tenants is for the platform's admins (the default tenant's); ask your platform operator",
            ));
        }
        Ok(PlatformAdmin(p))
    }
}

/// How a sign-in attempt ended.
pub enum SignIn {
    Ok {
        /// The account, as its new session shows it.
        who: Principal,
        session: NewSession,
    },
    /// Too many recent failures for this account from this address (or from
    /// this address at all): seconds until the next attempt is accepted.
    Wait(u64),
    Wrong,
}

/// Checks a password, throttled per (account, address) and per address;
/// the page and the API sign in through here. Every outcome is audited.
pub async fn sign_in(state: &AppState, client: Client, username: &str, password: String) -> Result<SignIn, ApiError> {
    let keys = Throttle::keys(username, client.ip);
    if let Some(wait) = state.throttle.wait(&keys).map_err(ApiError::internal)? {
        return Ok(SignIn::Wait(wait.as_secs().max(1)));
    }
    let accounts = state.accounts.clone();
    let name = username.to_string();
    // Argon2 is deliberately slow: keep it off the async workers.
    let verified = tokio::task::spawn_blocking(move || accounts.verify(&name, &password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let audit = |action, detail: Option<String>| {
        state.audit.record(crate::audit::Event {
            actor: username.to_string(),
            address: client.ip.to_string(),
            action,
            target: None,
            detail,
        })
    };
    let Some(admin) = verified else {
        state.throttle.failed(&keys).map_err(ApiError::internal)?;
        audit(crate::audit::Action::SignInFailed, None);
        return Ok(SignIn::Wrong);
    };
    state.throttle.succeeded(&keys).map_err(ApiError::internal)?;
    let session = state.accounts.create_session(admin).map_err(ApiError::internal)?;
    let who = state
        .accounts
        .session(&session.token)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal("a session just made was not found"))?;
    // Failures stay in the deployment's own log (no tenant is known);
    // a success is the account's tenant's.
    state.scoped(who.tenant)?.audit.record(crate::audit::Event {
        actor: username.to_string(),
        address: client.ip.to_string(),
        action: crate::audit::Action::SignIn,
        target: None,
        detail: None,
    });
    Ok(SignIn::Ok { who, session })
}

/// Slows down password guessing without locking anyone out: failures for
/// one account *from one address* grow that pair's delay (3 failures cost
/// nothing, then 1 s, 2 s, 4 s … up to 15 minutes), and a flood of failures from one
/// address across accounts grows that address's. The right password from
/// any other address is never delayed. The failures are counted where
/// [`FailureCounts`] keeps them: in this process, or in the database that
/// replicas share, so spreading guesses over replicas gains nothing.
pub struct Throttle {
    counts: Box<dyn FailureCounts>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle { counts: Box::new(InProcess::default()) }
    }
}

/// Where a [`Throttle`] counts failures.
pub trait FailureCounts: Send + Sync {
    /// Each of `keys` with failures: its count and when it last failed.
    fn failures(&self, keys: &[String]) -> anyhow::Result<Vec<(String, u32, DateTime<Utc>)>>;
    /// Counts a failure of each key at `now`; a key whose last failure is
    /// older than `forget_after` starts over.
    fn fail(&self, keys: &[String], now: DateTime<Utc>, forget_after: chrono::Duration) -> anyhow::Result<()>;
    fn clear(&self, key: &str) -> anyhow::Result<()>;
}

/// Failures counted in this process (a single server).
#[derive(Default)]
pub struct InProcess(Mutex<HashMap<String, (u32, DateTime<Utc>)>>);

impl FailureCounts for InProcess {
    fn failures(&self, keys: &[String]) -> anyhow::Result<Vec<(String, u32, DateTime<Utc>)>> {
        let map = self.0.lock().expect("throttle");
        Ok(keys.iter().filter_map(|k| map.get(k).map(|(n, at)| (k.clone(), *n, *at))).collect())
    }

    fn fail(&self, keys: &[String], now: DateTime<Utc>, forget_after: chrono::Duration) -> anyhow::Result<()> {
        let mut map = self.0.lock().expect("throttle");
        // Keep the table bounded whatever the flood: forget stale keys.
        if map.len() > 100_000 {
            map.retain(|_, (_, at)| now - *at < forget_after);
        }
        for k in keys {
            let (count, at) = map.entry(k.clone()).or_insert((0, now));
            if now - *at >= forget_after {
                *count = 0;
            }
            *count += 1;
            *at = now;
        }
        Ok(())
    }

    fn clear(&self, key: &str) -> anyhow::Result<()> {
        self.0.lock().expect("throttle").remove(key);
        Ok(())
    }
}

/// Failures of one key that cost nothing.
const FREE_FAILURES: u32 = 3;
/// Failures from one address, across accounts, that cost nothing.
const FREE_FAILURES_PER_ADDRESS: u32 = 20;
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// A key forgets its failures after this long without one.
const FORGET_AFTER: chrono::Duration = chrono::Duration::hours(1);

impl Throttle {
    /// A throttle counting failures in `counts`.
    pub fn counting_in(counts: Box<dyn FailureCounts>) -> Self {
        Throttle { counts }
    }

    /// The keys of an attempt: (account, address) and address.
    pub fn keys(username: &str, ip: IpAddr) -> [String; 2] {
        [format!("user:{}@{ip}", username.trim().to_lowercase()), format!("ip:{ip}")]
    }

    fn delay(key: &str, count: u32) -> Duration {
        let free = if key.starts_with("ip:") { FREE_FAILURES_PER_ADDRESS } else { FREE_FAILURES };
        match count.checked_sub(free + 1) {
            None => Duration::ZERO,
            Some(over) => Duration::from_secs(1u64 << over.min(20)).min(MAX_DELAY),
        }
    }

    /// How long until these keys may try again, if they must wait.
    pub fn wait(&self, keys: &[String]) -> anyhow::Result<Option<Duration>> {
        let now = Utc::now();
        Ok(self
            .counts
            .failures(keys)?
            .into_iter()
            .filter(|(_, _, at)| now - *at < FORGET_AFTER)
            .map(|(k, count, at)| Self::delay(&k, count).saturating_sub((now - at).to_std().unwrap_or_default()))
            .filter(|d| !d.is_zero())
            .max())
    }

    pub fn failed(&self, keys: &[String]) -> anyhow::Result<()> {
        self.counts.fail(keys, Utc::now(), FORGET_AFTER)
    }

    /// A success clears the account's failures from that address.
    pub fn succeeded(&self, keys: &[String]) -> anyhow::Result<()> {
        self.counts.clear(&keys[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; hrsync_session=hs_abc; b=2".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("hs_abc"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn failures_grow_a_delay_for_one_account_from_one_address_only() {
        let t = Throttle::default();
        let attacker = Throttle::keys("admin", "203.0.113.9".parse().unwrap());
        let admin = Throttle::keys("admin", "198.51.100.4".parse().unwrap());
        for _ in 0..3 {
            t.failed(&attacker).unwrap();
        }
        assert_eq!(t.wait(&attacker).unwrap(), None, "three tries are free");
        t.failed(&attacker).unwrap();
        let first = t.wait(&attacker).unwrap().unwrap();
        assert!(first <= Duration::from_secs(1) && !first.is_zero(), "{first:?}");
        for _ in 0..30 {
            t.failed(&attacker).unwrap();
        }
        assert!(t.wait(&attacker).unwrap().unwrap() > Duration::from_secs(600), "grows to the cap");
        assert!(t.wait(&attacker).unwrap().unwrap() <= MAX_DELAY);
        assert_eq!(t.wait(&admin).unwrap(), None, "the admin from another address is not delayed");
        t.succeeded(&attacker).unwrap();
        assert!(t.wait(&attacker).unwrap().is_some(), "the address's own flood still counts");
    }

    #[test]
    fn session_cookies_are_http_only_strict_and_secure_over_https() {
        let c = session_cookie(Some("hs_x"), Duration::from_secs(60), false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Max-Age=60"));
        assert!(!c.contains("Secure"));
        assert!(session_cookie(Some("hs_x"), Duration::from_secs(60), true).ends_with("; Secure"));
        assert!(session_cookie(None, Duration::ZERO, false).contains("Max-Age=0"));
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9, 10.0.0.2".parse().unwrap());
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let stranger: IpAddr = "198.51.100.4".parse().unwrap();
        assert_eq!(Client::of(stranger, &h, &[proxy], false), Client { ip: stranger, https: false });
        let behind = Client::of(proxy, &h, &[proxy], false);
        assert_eq!(behind, Client { ip: "203.0.113.9".parse().unwrap(), https: true });
        // A client cannot hide behind the proxy by forging the header's start.
        h.insert("x-forwarded-for", "10.0.0.2, 203.0.113.9".parse().unwrap());
        assert_eq!(Client::of(proxy, &h, &[proxy], false).ip, "203.0.113.9".parse::<IpAddr>().unwrap());
    }
}
