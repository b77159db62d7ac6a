//! HTTP statuses to the contract's errors, so the host can say what to do
//! (fix credentials, whitelist attributes, wait, retry).

use crate::types::{ConnectorError, Retry};

/// The error for a non-success HTTP status. `retry_after` is the
/// `Retry-After` header in seconds, if the source sent one; `what` names
/// the request for the admin ("the employee export").
pub fn from_status(status: u16, retry_after: Option<u32>, what: &str) -> ConnectorError {
    let retry = |default: u32, message: String| Retry { after_seconds: retry_after.unwrap_or(default), message };
    match status {
        401 => ConnectorError::CredentialsRejected(format!("{what}: the source refused the credentials (HTTP 401)")),
        403 => ConnectorError::PermissionDenied(Vec::new()),
        404 => ConnectorError::InvalidSettings(format!("{what}: not found (HTTP 404); check the URL")),
        429 => ConnectorError::RateLimited(retry(60, format!("{what}: too many requests (HTTP 429)"))),
        502..=504 => ConnectorError::TemporarilyUnavailable(retry(
            30,
            format!("{what}: the source is unavailable (HTTP {status})"),
        )),
        _ => ConnectorError::BadResponse(format!("{what}: unexpected HTTP {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_the_admin_must_do() {
        assert!(matches!(from_status(401, None, "x"), ConnectorError::CredentialsRejected(_)));
        assert!(matches!(from_status(403, None, "x"), ConnectorError::PermissionDenied(_)));
        assert!(matches!(from_status(429, Some(7), "x"), ConnectorError::RateLimited(r) if r.after_seconds == 7));
        assert!(
            matches!(from_status(503, None, "x"), ConnectorError::TemporarilyUnavailable(r) if r.after_seconds == 30)
        );
        assert!(matches!(from_status(500, None, "x"), ConnectorError::BadResponse(_)));
    }
}
