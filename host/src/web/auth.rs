//! Authentication of web and API requests: session cookies (HttpOnly,
//! SameSite=Strict) with a CSRF token required on every state-changing
//! request, bearer API tokens for scripts, and login throttling.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};

use super::{ApiError, AppState};
use crate::accounts::{NewSession, Principal};

pub const SESSION_COOKIE: &str = "hrsync_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of one cookie of the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// `Set-Cookie` for a session (or, with `None`, one that ends it).
pub fn session_cookie(token: Option<&str>, max_age: Duration) -> String {
    match token {
        Some(t) => format!("{SESSION_COOKIE}={t}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}", max_age.as_secs()),
        None => format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    }
}

/// The signed-in admin of a request. Rejects unauthenticated requests with
/// 401, and cookie-authenticated state changes without the session's CSRF
/// token with 403.
pub struct Admin(pub Principal);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(token) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            return match state.accounts.api_token(token.trim()).map_err(ApiError::internal)? {
                Some(p) => Ok(Admin(p)),
                None => Err(ApiError::unauthorized("the API token is not valid; create one with POST /api/v1/tokens")),
            };
        }
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(ApiError::unauthorized("sign in first (POST /api/v1/session), or send an API token"));
        };
        let Some(principal) = state.accounts.session(&token).map_err(ApiError::internal)? else {
            return Err(ApiError::unauthorized("the session has expired; sign in again"));
        };
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if sent.is_none() || sent != principal.csrf.as_deref() {
                return Err(ApiError::forbidden(
                    "missing or wrong CSRF token: send the session's token in the X-CSRF-Token header",
                ));
            }
        }
        Ok(Admin(principal))
    }
}

/// How a sign-in attempt ended.
pub enum SignIn {
    Ok {
        username: String,
        session: NewSession,
    },
    /// Too many failures: seconds until the next attempt is accepted.
    Locked(u64),
    Wrong,
}

/// Checks a password, throttled per username and per address; the page and
/// the API sign in through here.
pub async fn sign_in(state: &AppState, peer: IpAddr, username: &str, password: String) -> Result<SignIn, ApiError> {
    let keys = vec![format!("user:{}", username.to_lowercase()), format!("ip:{peer}")];
    if let Some(wait) = state.throttle.locked(&keys) {
        return Ok(SignIn::Locked(wait));
    }
    let accounts = state.accounts.clone();
    let name = username.to_string();
    // Argon2 is deliberately slow: keep it off the async workers.
    let verified = tokio::task::spawn_blocking(move || accounts.verify(&name, &password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let Some(admin) = verified else {
        state.throttle.failed(&keys);
        return Ok(SignIn::Wrong);
    };
    state.throttle.succeeded(&keys);
    let session = state.accounts.create_session(admin).map_err(ApiError::internal)?;
    Ok(SignIn::Ok { username: username.to_string(), session })
}

/// Refuses logins for a while after repeated failures for one username or
/// from one address.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

const MAX_FAILURES: u32 = 5;
const LOCKOUT: Duration = Duration::from_secs(15 * 60);

impl Throttle {
    /// Seconds to wait, if `keys` are locked out.
    pub fn locked(&self, keys: &[String]) -> Option<u64> {
        let failures = self.failures.lock().expect("throttle");
        keys.iter()
            .filter_map(|k| failures.get(k))
            .filter(|(n, since)| *n >= MAX_FAILURES && since.elapsed() < LOCKOUT)
            .map(|(_, since)| (LOCKOUT - since.elapsed()).as_secs().max(1))
            .max()
    }

    pub fn failed(&self, keys: &[String]) {
        let mut failures = self.failures.lock().expect("throttle");
        for k in keys {
            let entry = failures.entry(k.clone()).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= LOCKOUT {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
            entry.1 = Instant::now();
        }
    }

    pub fn succeeded(&self, keys: &[String]) {
        let mut failures = self.failures.lock().expect("throttle");
        for k in keys {
            failures.remove(k);
        }
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
    fn five_failures_lock_the_key_and_success_clears_it() {
        let t = Throttle::default();
        let keys = vec!["user:admin".to_string()];
        for _ in 0..4 {
            t.failed(&keys);
        }
        assert_eq!(t.locked(&keys), None);
        t.failed(&keys);
        assert!(t.locked(&keys).unwrap() > 800);
        t.succeeded(&keys);
        assert_eq!(t.locked(&keys), None);
    }

    #[test]
    fn session_cookies_are_http_only_and_strict() {
        let c = session_cookie(Some("hs_x"), Duration::from_secs(60));
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Max-Age=60"));
        assert!(session_cookie(None, Duration::ZERO).contains("Max-Age=0"));
    }
}
