//! The admin web server: the server-rendered admin pages, the JSON API
//! (`/api/v1/...`) they share their rules with, health probes and Prometheus
//! metrics.
//!
//! Every route but sign-in, the probes, static assets and the webhook
//! endpoint (`/hooks/<hook>`, which checks the source's token) requires an admin
//! ([`auth::Admin`] for the API, [`pages`] redirect to the sign-in page);
//! state-changing requests from a browser session need its CSRF token.

pub mod api;
pub mod auth;
pub mod extract;
pub mod metrics;
pub mod openapi;
mod operators;
pub mod pages;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::accounts::{AccountError, Accounts};
use crate::audit::Audit;
use crate::directory::{IntegrationId, StoreError, TenantError};
use crate::model::CheckReport;
use crate::sync::SyncEngine;
use crate::sync::SyncError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<SyncEngine>,
    pub accounts: Arc<Accounts>,
    pub audit: Arc<Audit>,
    pub throttle: Arc<auth::Throttle>,
    /// Proxies whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The app is reached over HTTPS (`public_url`): cookies are `Secure`
    /// and responses carry HSTS.
    pub https: bool,
    pub metrics: Arc<metrics::Metrics>,
    /// The last "Test connection" of each integration: the configuration
    /// tab shows it, and its readable attributes feed the mapping pickers.
    pub checks: Arc<Mutex<HashMap<IntegrationId, CheckOutcome>>>,
    /// Whether a courier delivers the outbox over SMTP. Without one, admins
    /// read queued invitations on the Emails page to hand them over; with
    /// one, set-password links are for their recipients only.
    pub smtp: bool,
    /// Subscriptions with sources that push changes, and their deliveries.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// The tenant whose handles `engine`, `accounts`, `audit` and
    /// `webhooks` are: the default one's in the router's state, the
    /// account's in a handler's [`auth::Scoped`] state.
    pub tenant: crate::model::TenantId,
    pub tenancy: Arc<crate::tenancy::Tenancy>,
}

impl AppState {
    /// The state of an app reached at the engine's public URL (its
    /// invitations' links, and the address sources push changes to).
    pub fn new(engine: Arc<SyncEngine>, accounts: Arc<Accounts>, audit: Arc<Audit>) -> Self {
        let webhooks = Arc::new(crate::webhooks::Webhooks::new(engine.clone(), &engine.invite.public_url));
        let tenant = crate::model::TenantId::DEFAULT;
        Self::for_tenancy(Arc::new(crate::tenancy::Tenancy::single(crate::tenancy::Scope {
            tenant,
            engine,
            accounts,
            audit,
            webhooks,
        })))
    }

    /// The state of an app serving `tenancy`'s tenants.
    pub fn for_tenancy(tenancy: Arc<crate::tenancy::Tenancy>) -> Self {
        let scope = tenancy.default_scope().clone();
        // Replicas count sign-in failures together.
        let throttle = match tenancy.database() {
            Some(pg) => auth::Throttle::counting_in(Box::new(pg.clone())),
            None => auth::Throttle::default(),
        };
        AppState {
            webhooks: scope.webhooks.clone(),
            engine: scope.engine.clone(),
            accounts: scope.accounts.clone(),
            audit: scope.audit.clone(),
            tenant: scope.tenant,
            tenancy,
            throttle: Arc::new(throttle),
            trusted_proxies: Vec::new(),
            https: false,
            metrics: Default::default(),
            checks: Default::default(),
            smtp: false,
        }
    }

    /// This state with `tenant`'s handles.
    pub fn scoped(&self, tenant: crate::model::TenantId) -> Result<AppState, StoreError> {
        if tenant == self.tenant {
            return Ok(self.clone());
        }
        let scope = self.tenancy.scope(tenant)?;
        Ok(AppState {
            engine: scope.engine.clone(),
            accounts: scope.accounts.clone(),
            audit: scope.audit.clone(),
            webhooks: scope.webhooks.clone(),
            tenant,
            ..self.clone()
        })
    }

    /// Adds an audit entry for what `who` did from `client`.
    pub fn record(
        &self,
        who: &crate::accounts::Principal,
        client: auth::Client,
        action: crate::audit::Action,
        target: Option<String>,
        detail: Option<String>,
    ) {
        let actor = match who.token_id {
            Some(t) => format!("{} (token {t})", who.username),
            None => who.username.clone(),
        };
        self.audit.record(crate::audit::Event { actor, address: client.ip.to_string(), action, target, detail });
    }

    /// Audits a settings change by the keys that changed — never their values.
    pub fn record_settings(
        &self,
        who: &crate::accounts::Principal,
        client: auth::Client,
        before: &crate::directory::Integration,
        after: &crate::directory::IntegrationConfig,
    ) {
        let changed = after.changed_since(&before.config);
        let detail = if changed.is_empty() { "nothing changed".to_string() } else { changed.join(", ") };
        self.record(
            who,
            client,
            crate::audit::Action::SettingsChanged,
            Some(format!("integration {}", before.id)),
            Some(detail),
        );
    }

    fn remember_check(&self, integration: IntegrationId, result: Result<CheckReport, String>) {
        self.checks.lock().expect("checks").insert(integration, CheckOutcome { at: Utc::now(), result });
    }

    fn last_check(&self, integration: IntegrationId) -> Option<CheckOutcome> {
        self.checks.lock().expect("checks").get(&integration).cloned()
    }
}

/// The result of a "Test connection".
#[derive(Clone, Debug)]
pub struct CheckOutcome {
    pub at: DateTime<Utc>,
    pub result: Result<CheckReport, String>,
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
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
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
            StoreError::AlreadyRunning(_)
            | StoreError::EmailTaken(_)
            | StoreError::NotRunning { .. }
            | StoreError::LeaseLost(_)
            | StoreError::Managed(_)
            | StoreError::Cancelled(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            StoreError::Invalid(_) => ApiError::new(StatusCode::BAD_REQUEST, e.to_string()),
            StoreError::Other(e) => ApiError::internal(e),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::NoAccount(_) | AccountError::NoToken(_) => {
                ApiError::new(StatusCode::NOT_FOUND, e.to_string())
            }
            AccountError::Taken(_) | AccountError::LastAdmin(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            AccountError::TokenTooPowerful { .. } | AccountError::WrongPassword => ApiError::forbidden(e.to_string()),
            AccountError::BadUsername(_) | AccountError::ShortPassword | AccountError::ExpiryInPast => {
                ApiError::bad_request(e.to_string())
            }
            AccountError::Database(e) => ApiError::internal(e),
        }
    }
}

impl From<TenantError> for ApiError {
    fn from(e: TenantError) -> Self {
        let status = match e {
            TenantError::Store(store) => return store.into(),
            TenantError::Admin(AccountError::Database(ref cause)) => return ApiError::internal(cause),
            TenantError::BadSlug(_) | TenantError::NoName => StatusCode::BAD_REQUEST,
            TenantError::Unknown(_) => StatusCode::NOT_FOUND,
            TenantError::SingleCompany
            | TenantError::Taken(_)
            | TenantError::Platform
            | TenantError::Admin(AccountError::Taken(_)) => StatusCode::CONFLICT,
            TenantError::Admin(_) => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Store(s) => s.into(),
            SyncError::Invalid(m) => ApiError::bad_request(m),
            SyncError::Internal(m) => ApiError::internal(m),
            SyncError::Drift { .. } => {
                ApiError::new(StatusCode::CONFLICT, format!("{e} (send \"accept_drift\": true)"))
            }
            SyncError::Blocked { .. } => ApiError::new(StatusCode::CONFLICT, format!("{e} (send \"override\": true)")),
            SyncError::Cancelled { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            SyncError::TimedOut { .. } => ApiError::new(StatusCode::GATEWAY_TIMEOUT, e.to_string()),
            SyncError::Fetch { .. } | SyncError::Connector { .. } | SyncError::Plan { .. } | SyncError::Check(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, e.to_string())
            }
        }
    }
}

/// The longest a request may take before the client gets a 504.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// The whole app: pages, API, probes and metrics, behind the layers they share.
pub fn router(state: AppState) -> axum::Router {
    api::routes()
        .merge(operators::routes())
        .merge(pages::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), security_headers))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, REQUEST_TIMEOUT))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::count_requests))
        .with_state(state)
}

/// Unknown routes: the API's error body under `/api/`, a page elsewhere.
async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        ApiError::new(StatusCode::NOT_FOUND, format!("no such API route: {}; see /api/v1/openapi.json", uri.path()))
            .into_response()
    } else {
        pages::not_found().into_response()
    }
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {method}; see /api/v1/openapi.json", uri.path()),
    )
    .into_response()
}

/// Headers that keep browsers from sniffing, framing, leaking or caching
/// responses, and from running any script or style but the app's own files
/// (so an injected `<script>` would not run even if escaping failed); HSTS
/// when the app is reached over HTTPS.
async fn security_headers(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map_or(std::net::IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
    let client = auth::Client::of(peer, request.headers(), &state.trusted_proxies, state.https);
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    if client.https {
        h.insert("strict-transport-security", HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
