//! The admin web server: the JSON API (`/api/v1/...`), health probes and
//! Prometheus metrics.
//!
//! Every route but sign-in and the probes requires an admin ([`auth::Admin`]);
//! state-changing requests from a browser session need its CSRF token.

pub mod api;
pub mod auth;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::accounts::Accounts;
use crate::directory::StoreError;
use crate::sync::SyncEngine;
use crate::sync::SyncError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<SyncEngine>,
    pub accounts: Arc<Accounts>,
    pub throttle: Arc<auth::Throttle>,
    pub metrics: Arc<metrics::Metrics>,
}

/// An API error: a status and a message that says what to do.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }
    pub fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn forbidden(message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    /// An unexpected failure: logged in full, reported without detail.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {e}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the server log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({"error": {"message": self.message}}))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoIntegration(_) | StoreError::NoRun(_) | StoreError::NoUser(_) => {
                ApiError::new(StatusCode::NOT_FOUND, e.to_string())
            }
            StoreError::AlreadyRunning(_) | StoreError::EmailTaken(_) => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            StoreError::Other(e) => ApiError::internal(e),
        }
    }
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Store(s) => s.into(),
            SyncError::Invalid(m) => ApiError::bad_request(m),
            SyncError::Blocked { .. } | SyncError::Drift { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            SyncError::Fetch { .. } | SyncError::Connector { .. } | SyncError::Plan { .. } | SyncError::Check(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, e.to_string())
            }
        }
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = api::router(state);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
