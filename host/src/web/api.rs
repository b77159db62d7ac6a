//! The JSON API, `/api/v1/...`: everything the admin pages do.
//!
//! Secret settings never leave the server: responses say only whether one
//! is stored, and an update that leaves a secret empty keeps the stored one.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{self, Admin, Client, Operator, Scoped, Viewer};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::openapi::ErrorBody;
use super::{ApiError, AppState};
use crate::accounts::{Role, SESSION_LIFETIME};
use crate::audit::Action;
use crate::directory::edit::UserEdit;
use crate::directory::roster::LineAction;
use crate::directory::{
    ChangeFilter, ChangeKind, Field, Integration, IntegrationConfig, IntegrationId, NewUser, RunId, UserId, UserQuery,
    UserStatus,
};
use crate::model::{CheckReport, SettingKind};
use crate::runtime::Connector;
use crate::sync::engine::{RevertRequest, RunRequest};

type ApiResult<T = Response> = Result<T, ApiError>;

/// The API's routes; [`super::router`] adds the layers every route shares.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(super::metrics::scrape))
        .route("/api/v1/openapi.json", get(super::openapi::document))
        .route("/api/v1/session", post(login).get(me).delete(logout))
        .route("/api/v1/session/password", post(change_password))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", axum::routing::delete(revoke_token))
        .route("/api/v1/accounts", get(list_accounts).post(create_account))
        .route("/api/v1/accounts/{username}", patch(update_account))
        .route("/api/v1/audit", get(audit_log))
        .route("/api/v1/connectors", get(connectors))
        .route("/api/v1/integrations", get(list_integrations).post(create_integration))
        .route("/api/v1/integrations/{id}", get(get_integration).put(update_integration))
        .route("/api/v1/integrations/{id}/check", post(check))
        .route("/api/v1/integrations/{id}/previews", post(preview))
        .route("/api/v1/integrations/{id}/imports", post(start_import))
        .route("/api/v1/runs", get(runs))
        .route("/api/v1/runs/{id}", get(run))
        .route("/api/v1/runs/{id}/changes", get(run_changes))
        .route("/api/v1/runs/{id}/revert", post(revert))
        .route("/api/v1/runs/{id}/cancel", post(cancel))
        .route("/api/v1/users", get(users).post(create_user))
        .route("/api/v1/users/invitations", post(invite_users))
        .route("/api/v1/users/import", post(import_users))
        .route("/api/v1/users/{id}", get(user).patch(edit_user))
        .route("/api/v1/users/{id}/overrides/{field}", axum::routing::put(keep_value).delete(remove_override))
        .route("/api/v1/overrides", get(overrides))
        .route("/api/v1/mails", get(mails))
        .route("/api/v1/company", get(company).put(set_company))
        .route("/api/v1/integrations/{id}/webhook", get(webhook).put(webhook_on).delete(webhook_off))
        .route(
            "/hooks/{hook}",
            post(hook_delivery).layer(axum::extract::DefaultBodyLimit::max(crate::webhooks::MAX_BODY_BYTES + 1)),
        )
}

#[utoipa::path(get, path = "/readyz", tag = "probes", responses((status = 200, description = "The directory database answers"), (status = 503, description = "It does not")))]
pub(super) async fn readyz(State(state): State<AppState>) -> ApiResult {
    state.engine.store().integrations().map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok("ready".into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct Login {
    username: String,
    password: String,
}

#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = Login, responses((status = 200, description = "Signed in: sets the HttpOnly session cookie (Secure over HTTPS); the body carries the CSRF token to send as X-CSRF-Token, and the account's role", body = Object), (status = 401, description = "Wrong username or password", body = ErrorBody), (status = 429, description = "Too many recent failures for this account from this address; Retry-After says when to try again", body = ErrorBody)), security(()))]
pub(super) async fn login(State(state): State<AppState>, client: Client, ApiJson(login): ApiJson<Login>) -> ApiResult {
    match auth::sign_in(&state, client, &login.username, login.password).await? {
        auth::SignIn::Wait(wait) => {
            let mut r = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many failed sign-ins for this account from this address; try again in {wait} seconds"),
            )
            .into_response();
            r.headers_mut().insert(header::RETRY_AFTER, wait.into());
            Ok(r)
        }
        auth::SignIn::Wrong => Err(ApiError::unauthorized("wrong username or password")),
        auth::SignIn::Ok { who, session } => {
            let lifetime = SESSION_LIFETIME.to_std().unwrap_or(Duration::ZERO);
            let cookie = auth::session_cookie(Some(&session.token), lifetime, client.https);
            let body = json!({"username": login.username, "role": who.role, "csrf_token": session.csrf, "expires_at": session.expires_at});
            Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
        }
    }
}

#[utoipa::path(get, path = "/api/v1/session", tag = "session", responses((status = 200, description = "The signed-in account, its role and the session's CSRF token", body = Object), (status = 401, body = ErrorBody)))]
pub(super) async fn me(Viewer(p): Viewer) -> ApiResult {
    Ok(Json(json!({"username": p.username, "role": p.role, "csrf_token": p.csrf})).into_response())
}

#[utoipa::path(delete, path = "/api/v1/session", tag = "session", responses((status = 204, description = "Signed out"), (status = 401, body = ErrorBody), (status = 403, description = "Missing CSRF token", body = ErrorBody)))]
pub(super) async fn logout(Scoped(state): Scoped, Viewer(p): Viewer, client: Client, headers: HeaderMap) -> ApiResult {
    if let Some(token) = auth::cookie(&headers, auth::SESSION_COOKIE) {
        state.accounts.end_session(&token).map_err(ApiError::internal)?;
    }
    state.record(&p, client, Action::SignOut, None, None);
    Ok(([(header::SET_COOKIE, auth::session_cookie(None, Duration::ZERO, client.https))], StatusCode::NO_CONTENT)
        .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct PasswordChange {
    current_password: String,
    new_password: String,
}

#[utoipa::path(post, path = "/api/v1/session/password", tag = "session", request_body = PasswordChange, responses((status = 204, description = "Changed; the account's sessions end (sign in again)"), (status = 400, description = "The new password is too short", body = ErrorBody), (status = 403, description = "The current password is wrong", body = ErrorBody)))]
pub(super) async fn change_password(
    Scoped(state): Scoped,
    Viewer(p): Viewer,
    client: Client,
    ApiJson(change): ApiJson<PasswordChange>,
) -> ApiResult {
    let accounts = state.accounts.clone();
    let name = p.username.clone();
    tokio::task::spawn_blocking(move || {
        accounts.change_password(&name, &change.current_password, &change.new_password)
    })
    .await
    .map_err(ApiError::internal)??;
    state.record(&p, client, Action::PasswordChanged, Some(format!("account {}", p.username)), None);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct NewToken {
    name: String,
    /// The token's role: the creator's (default) or a narrower one.
    role: Option<Role>,
    /// When it stops working; none for a token that lasts until revoked.
    expires_at: Option<DateTime<Utc>>,
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "session", request_body = NewToken, responses((status = 201, description = "The new API token, shown once, with its id, role and expiry", body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, description = "A role above the creator's", body = ErrorBody)))]
pub(super) async fn create_token(
    Scoped(state): Scoped,
    Viewer(p): Viewer,
    client: Client,
    ApiJson(t): ApiJson<NewToken>,
) -> ApiResult {
    if t.name.trim().is_empty() {
        return Err(ApiError::bad_request("give the token a name, e.g. the script that uses it"));
    }
    let (id, token) = state.accounts.create_api_token(&p, t.name.trim(), t.role, t.expires_at)?;
    let role = t.role.unwrap_or(p.role);
    let detail = format!(
        "`{}` ({}, expires {})",
        t.name.trim(),
        role.as_str(),
        t.expires_at.map_or("never".into(), |e| e.to_rfc3339())
    );
    state.record(&p, client, Action::TokenCreated, Some(format!("token {id}")), Some(detail));
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "token": token, "role": role, "expires_at": t.expires_at, "note": "shown once; store it now"})),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "session", responses((status = 200, description = "API tokens (never their values): one's own, or every account's for an admin", body = [crate::accounts::Token]), (status = 401, body = ErrorBody)))]
pub(super) async fn list_tokens(Scoped(state): Scoped, Viewer(p): Viewer) -> ApiResult {
    Ok(Json(state.accounts.tokens(&p)?).into_response())
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "session", params(("id" = i64, Path)), responses((status = 200, description = "Revoked: it stops working at once", body = crate::accounts::Token), (status = 404, description = "No such token of yours", body = ErrorBody)))]
pub(super) async fn revoke_token(
    Scoped(state): Scoped,
    Viewer(p): Viewer,
    client: Client,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    let token = state.accounts.revoke_token(&p, id)?;
    state.record(
        &p,
        client,
        Action::TokenRevoked,
        Some(format!("token {id}")),
        Some(format!("`{}` of {}", token.name, token.creator)),
    );
    Ok(Json(token).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct NewAccount {
    username: String,
    password: String,
    role: Role,
}

#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts", responses((status = 200, description = "Every account with its role and state", body = [crate::accounts::Account]), (status = 403, body = ErrorBody)))]
pub(super) async fn list_accounts(Scoped(state): Scoped, Admin(_): Admin) -> ApiResult {
    Ok(Json(state.accounts.accounts()?).into_response())
}

#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts", request_body = NewAccount, responses((status = 201, description = "Created", body = crate::accounts::Account), (status = 400, body = ErrorBody), (status = 409, description = "The username is taken", body = ErrorBody)))]
pub(super) async fn create_account(
    Scoped(state): Scoped,
    Admin(p): Admin,
    client: Client,
    ApiJson(a): ApiJson<NewAccount>,
) -> ApiResult {
    state.accounts.create_account(&a.username, &a.password, a.role)?;
    let account = state.accounts.account(a.username.trim())?;
    state.record(
        &p,
        client,
        Action::AccountCreated,
        Some(format!("account {}", account.username)),
        Some(account.role.as_str().into()),
    );
    Ok((StatusCode::CREATED, Json(account)).into_response())
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
pub(super) struct AccountChange {
    role: Option<Role>,
    disabled: Option<bool>,
    /// A new password (a reset); the account's sessions end.
    password: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/accounts/{username}", tag = "accounts", params(("username" = String, Path)), request_body = AccountChange, responses((status = 200, description = "The account after the change", body = crate::accounts::Account), (status = 404, body = ErrorBody), (status = 409, description = "It is the last enabled admin", body = ErrorBody)))]
pub(super) async fn update_account(
    Scoped(state): Scoped,
    Admin(p): Admin,
    client: Client,
    ApiPath(username): ApiPath<String>,
    ApiJson(change): ApiJson<AccountChange>,
) -> ApiResult {
    let target = Some(format!("account {username}"));
    if let Some(password) = &change.password {
        state.accounts.reset_password(&username, password)?;
        state.record(&p, client, Action::PasswordReset, target.clone(), None);
    }
    if let Some(role) = change.role {
        state.accounts.set_role(&username, role)?;
        state.record(&p, client, Action::RoleChanged, target.clone(), Some(role.as_str().into()));
    }
    if let Some(disabled) = change.disabled {
        state.accounts.set_disabled(&username, disabled)?;
        let action = if disabled { Action::AccountDisabled } else { Action::AccountEnabled };
        state.record(&p, client, action, target.clone(), None);
    }
    Ok(Json(state.accounts.account(&username)?).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    offset: Option<u64>,
    limit: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "accounts", params(AuditQuery), responses((status = 200, description = "Audit entries, newest first: who did what, when and from where", body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn audit_log(Scoped(state): Scoped, Admin(_): Admin, ApiQuery(q): ApiQuery<AuditQuery>) -> ApiResult {
    let query = crate::audit::Query {
        actor: q.actor.filter(|a| !a.trim().is_empty()),
        action: q
            .action
            .as_deref()
            .filter(|a| !a.is_empty())
            .map(Action::parse)
            .transpose()
            .map_err(ApiError::bad_request)?,
        since: q.since,
        until: q.until,
        offset: q.offset.unwrap_or(0),
        limit: q.limit.unwrap_or(50).clamp(1, 500),
    };
    let (entries, total) = state.audit.entries(&query).map_err(ApiError::internal)?;
    Ok(Json(json!({"total": total, "offset": query.offset, "entries": entries})).into_response())
}

fn connector_json(c: &Connector) -> Value {
    let settings: Vec<Value> = c
        .info
        .settings
        .iter()
        .map(|s| {
            json!({"key": s.key, "label": s.label, "kind": s.kind.as_str(),
                "required": s.required, "default": s.default_value, "choices": s.choices, "help": s.help})
        })
        .collect();
    json!({"loaded": true, "id": c.info.id, "name": c.info.name, "version": c.info.version, "description": c.info.description,
    "wit_version": c.wit_version, "settings": settings, "default_hosts": c.info.default_hosts,
        "events": c.events.as_ref().map(|e| json!({"description": e.description, "events": e.events})),
    "capabilities": {
        "supervisors": c.info.capabilities.supervisors,
        "termination_dates": c.info.capabilities.termination_dates,
        "incremental_fetch": c.info.capabilities.incremental_fetch,
        "custom_attributes": c.info.capabilities.custom_attributes,
    }})
}

#[utoipa::path(get, path = "/api/v1/connectors", tag = "integrations", responses((status = 200, description = "Loaded connectors (`loaded: true`) with their settings schema, capabilities and default hosts, then components that did not load (`loaded: false`) with the reason", body = [Object]), (status = 401, body = ErrorBody)))]
pub(super) async fn connectors(Scoped(state): Scoped, Viewer(_): Viewer) -> ApiResult {
    let mut list: Vec<Value> = state.engine.connectors().iter().map(connector_json).collect();
    list.extend(
        state.engine.failed_connectors.iter().map(|f| json!({"loaded": false, "origin": f.origin, "error": f.reason})),
    );
    Ok(Json(list).into_response())
}

/// An integration as the API shows it: secrets only as "stored".
fn integration_json(i: &Integration) -> Value {
    let settings: serde_json::Map<String, Value> = i
        .config
        .settings
        .iter()
        .map(|(k, v)| {
            let shown = if i.config.secret_keys.contains(k) { json!({"stored": !v.is_empty()}) } else { json!(v) };
            (k.clone(), shown)
        })
        .collect();
    let c = &i.config;
    json!({"id": i.id, "connector_id": c.connector_id, "name": c.name, "settings": settings, "grants": c.grants,
        "auto_import": c.auto_import, "send_emails": c.send_emails, "interval_minutes": c.interval_minutes,
        "missing_after": c.missing_after, "max_deactivate_share": c.max_deactivate_share,
        "max_email_share": c.max_email_share, "max_pages": c.limits.max_pages, "max_records": c.limits.max_records,
        "max_run_minutes": c.limits.max_minutes})
}

#[utoipa::path(get, path = "/api/v1/integrations", tag = "integrations", responses((status = 200, description = "Integrations; secret settings appear only as {\"stored\": true}", body = [Object]), (status = 401, body = ErrorBody)))]
pub(super) async fn list_integrations(Scoped(state): Scoped, Viewer(_): Viewer) -> ApiResult {
    let list: Vec<Value> = state.engine.store().integrations()?.iter().map(integration_json).collect();
    Ok(Json(list).into_response())
}

/// What an admin submits for an integration.
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub(super) struct IntegrationInput {
    pub connector_id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    pub grants: Option<Vec<String>>,
    #[serde(default)]
    pub auto_import: bool,
    #[serde(default)]
    pub send_emails: bool,
    pub interval_minutes: Option<u32>,
    pub missing_after: Option<u32>,
    pub max_deactivate_share: Option<f64>,
    pub max_email_share: Option<f64>,
    /// Pages one run may fetch before it stops (default 10,000).
    pub max_pages: Option<u32>,
    /// Records one run may fetch before it stops (default 500,000).
    pub max_records: Option<u32>,
    /// Minutes one run may take before it stops (default 60, at most 1,440).
    pub max_run_minutes: Option<u32>,
}

/// Validates input into a config; `existing` supplies stored secrets left empty.
pub(super) fn config_from(
    state: &AppState,
    input: IntegrationInput,
    existing: Option<&Integration>,
) -> ApiResult<IntegrationConfig> {
    let connector_id = input
        .connector_id
        .or(existing.map(|e| e.config.connector_id.clone()))
        .ok_or_else(|| ApiError::bad_request("connector_id is required"))?;
    let connector = state.engine.connector(&connector_id)?;
    let mut config = IntegrationConfig::new(&connector_id, &input.name);
    config.settings = input.settings;
    // An empty secret keeps what is stored: forms never echo secrets back.
    let mut kept = Vec::new();
    for spec in connector.info.settings.iter().filter(|s| s.kind == SettingKind::Secret) {
        let empty = config.settings.get(&spec.key).is_none_or(|v| v.is_empty());
        if let (true, Some(old)) = (empty, existing.and_then(|e| e.config.settings.get(&spec.key))) {
            config.settings.insert(spec.key.clone(), old.clone());
            if !old.is_empty() {
                kept.push(spec.label.as_str());
            }
        }
    }
    config.grants = input.grants.unwrap_or_else(|| connector.info.default_hosts.clone());
    config.auto_import = input.auto_import;
    config.send_emails = input.send_emails;
    config.interval_minutes = input.interval_minutes.unwrap_or(config.interval_minutes);
    config.missing_after = input.missing_after.unwrap_or(config.missing_after);
    config.max_deactivate_share = input.max_deactivate_share.unwrap_or(config.max_deactivate_share);
    config.max_email_share = input.max_email_share.unwrap_or(config.max_email_share);
    let limits = &mut config.limits;
    limits.max_pages = input.max_pages.unwrap_or(limits.max_pages);
    limits.max_records = input.max_records.unwrap_or(limits.max_records);
    limits.max_minutes = input.max_run_minutes.unwrap_or(limits.max_minutes);
    config.validate(&connector.info).map_err(ApiError::bad_request)?;
    // A kept secret stays bound to the origins it was entered for: sending
    // it elsewhere needs it typed again (or the old secret would follow a
    // changed URL to any host an admin — or an attacker with an admin's
    // session — grants).
    config.secrets_for = match existing {
        Some(e) if !kept.is_empty() => {
            let (was, now) =
                (crate::directory::origins_key(&e.config.secrets_for), crate::directory::origins_key(&config.grants));
            if was != now {
                return Err(ApiError::bad_request(format!(
                    "the allowed outbound hosts changed, so the stored {} would go to a new destination: enter {} again (a stored secret is only sent where it was entered for)",
                    kept.join(" and "),
                    if kept.len() == 1 { "it" } else { "them" }
                )));
            }
            e.config.secrets_for.clone()
        }
        _ => config.grants.clone(),
    };
    Ok(config)
}

/// Password emails greet people with the company's name: turning them on
/// without one is refused.
fn require_company(state: &AppState, config: &IntegrationConfig, before: Option<&IntegrationConfig>) -> ApiResult<()> {
    if state.engine.lacks_company_name(config, before, None)? {
        return Err(ApiError::bad_request(
            "password emails greet new people with the company's name, and none is set: set it first (PUT /api/v1/company with {\"name\": \"…\"}), or leave send_emails off",
        ));
    }
    Ok(())
}

#[utoipa::path(post, path = "/hooks/{hook}", tag = "webhooks", params(("hook" = String, Path, description = "The integration's unguessable endpoint")), responses((status = 202, description = "Stored; imported within seconds"), (status = 401, description = "The token is missing or wrong", body = ErrorBody), (status = 404, description = "No subscription has this endpoint", body = ErrorBody), (status = 413, body = ErrorBody)), security(()))]
/// A delivery from a source that pushes changes: checked against the
/// subscription's token, stored, and answered at once.
pub(super) async fn hook_delivery(
    State(state): State<AppState>,
    axum::extract::Path(hook): axum::extract::Path<String>,
    headers: HeaderMap,
    body: String,
) -> ApiResult {
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_string())))
        .collect();
    // The endpoint names no tenant; its subscription's tenant receives it.
    let receipt = tokio::task::spawn_blocking(move || {
        let tenant = state.tenancy.tenant_of_hook(&hook)?;
        state.scoped(tenant)?.webhooks.receive(&hook, headers, body)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("storing the delivery failed: {e}")))??;
    use crate::webhooks::Receipt;
    match receipt {
        Receipt::Accepted => Ok((StatusCode::ACCEPTED, Json(json!({"accepted": true}))).into_response()),
        Receipt::UnknownHook => Err(ApiError::new(StatusCode::NOT_FOUND, "no subscription has this endpoint")),
        Receipt::WrongToken => Err(ApiError::unauthorized("the delivery's token does not match the subscription's")),
        Receipt::TooLarge => Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "the delivery is larger than 64 KiB")),
    }
}

fn subscription_json(s: &crate::directory::hooks::HookSubscription) -> Value {
    json!({"integration_id": s.integration, "description": s.description, "source_id": s.source_id,
        "created_at": s.created_at, "last_delivery_at": s.last_delivery_at})
}

#[utoipa::path(get, path = "/api/v1/integrations/{id}/webhook", tag = "webhooks", params(("id" = i64, Path)), responses((status = 200, description = "The integration's subscription with its source, and the last delivery", body = Object), (status = 404, description = "Webhooks are off", body = ErrorBody)))]
pub(super) async fn webhook(Scoped(state): Scoped, Viewer(_): Viewer, ApiPath(id): ApiPath<i64>) -> ApiResult {
    let integration = state.engine.store().integration(IntegrationId(id))?;
    match state.engine.store().subscription(integration.id)? {
        Some(s) => Ok(Json(subscription_json(&s)).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "webhooks are off for this integration; PUT turns them on")),
    }
}

#[utoipa::path(put, path = "/api/v1/integrations/{id}/webhook", tag = "webhooks", params(("id" = i64, Path)), responses((status = 200, description = "Subscribed: the source pushes each change, and the complete run becomes daily", body = Object), (status = 400, description = "The connector cannot push changes, or automatic imports are off", body = ErrorBody), (status = 502, description = "The source refused", body = ErrorBody)))]
pub(super) async fn webhook_on(
    Scoped(state): Scoped,
    Admin(p): Admin,
    client: Client,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    let subscription = state.webhooks.subscribe(IntegrationId(id)).await?;
    state.record(
        &p,
        client,
        Action::WebhooksOn,
        Some(format!("integration {id}")),
        Some(subscription.description.clone()),
    );
    Ok(Json(subscription_json(&subscription)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/integrations/{id}/webhook", tag = "webhooks", params(("id" = i64, Path)), responses((status = 204, description = "Unsubscribed at the source"), (status = 404, description = "Webhooks were off", body = ErrorBody)))]
pub(super) async fn webhook_off(
    Scoped(state): Scoped,
    Admin(p): Admin,
    client: Client,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    if !state.webhooks.unsubscribe(IntegrationId(id)).await? {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "webhooks were off for this integration"));
    }
    state.record(&p, client, Action::WebhooksOff, Some(format!("integration {id}")), None);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct CompanyInput {
    /// The name people know the company by, e.g. `Acme`.
    name: String,
}

#[utoipa::path(get, path = "/api/v1/company", tag = "company", responses((status = 200, description = "The company's name as password emails use it (`null`: none yet), and the subject and text of an invitation with it", body = Object)))]
pub(super) async fn company(Scoped(state): Scoped, Viewer(_): Viewer) -> ApiResult {
    let invite = state.engine.invitations()?;
    let sample = crate::mail::sample_invitation(&invite);
    Ok(Json(
        json!({"name": state.engine.company_name()?, "invitation": {"subject": sample.subject, "text": sample.text}}),
    )
    .into_response())
}

#[utoipa::path(put, path = "/api/v1/company", tag = "company", request_body = CompanyInput, responses((status = 200, description = "Saved", body = Object), (status = 400, description = "The name is empty", body = ErrorBody)))]
pub(super) async fn set_company(
    Scoped(state): Scoped,
    Admin(p): Admin,
    client: Client,
    ApiJson(input): ApiJson<CompanyInput>,
) -> ApiResult {
    state.engine.store().set_company_name(&input.name)?;
    state.record(&p, client, Action::CompanyNamed, Some("company".into()), Some(input.name.trim().to_string()));
    Ok(Json(json!({"name": state.engine.company_name()?})).into_response())
}

#[utoipa::path(post, path = "/api/v1/integrations", tag = "integrations", request_body = IntegrationInput, responses((status = 201, description = "Created", body = Object), (status = 400, description = "Invalid settings; the message says which and why", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn create_integration(
    Scoped(state): Scoped,
    Admin(p): Admin,
    client: Client,
    ApiJson(input): ApiJson<IntegrationInput>,
) -> ApiResult {
    let config = config_from(&state, input, None)?;
    require_company(&state, &config, None)?;
    let id = state.engine.store().create_integration(&config)?;
    let created = state.engine.store().integration(id)?;
    state.record(&p, client, Action::IntegrationCreated, Some(format!("integration {id}")), Some(config.name.clone()));
    Ok((StatusCode::CREATED, Json(integration_json(&created))).into_response())
}

#[utoipa::path(get, path = "/api/v1/integrations/{id}", tag = "integrations", params(("id" = i64, Path)), responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub(super) async fn get_integration(Scoped(state): Scoped, Viewer(_): Viewer, ApiPath(id): ApiPath<i64>) -> ApiResult {
    Ok(Json(integration_json(&state.engine.store().integration(IntegrationId(id))?)).into_response())
}

#[utoipa::path(put, path = "/api/v1/integrations/{id}", tag = "integrations", params(("id" = i64, Path)), request_body = IntegrationInput, responses((status = 200, description = "Updated; empty secrets keep the stored value", body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn update_integration(
    Scoped(state): Scoped,
    Admin(p): Admin,
    client: Client,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<IntegrationInput>,
) -> ApiResult {
    let existing = state.engine.store().integration(IntegrationId(id))?;
    let config = config_from(&state, input, Some(&existing))?;
    require_company(&state, &config, Some(&existing.config))?;
    state.engine.store().update_integration(existing.id, &config)?;
    state.record_settings(&p, client, &existing, &config);
    Ok(Json(integration_json(&state.engine.store().integration(existing.id)?)).into_response())
}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/check", tag = "integrations", params(("id" = i64, Path)), responses((status = 200, description = "Test connection: account, readable attributes, attributes to whitelist, warnings", body = Object), (status = 502, description = "The source refused or failed; the message says what to fix", body = ErrorBody)))]
pub(super) async fn check(
    Scoped(state): Scoped,
    Operator(p): Operator,
    client: Client,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    state.record(&p, client, Action::TestConnection, Some(format!("integration {id}")), None);
    let report = run_check(&state, IntegrationId(id)).await?;
    let missing: Vec<Value> = report
        .missing
        .iter()
        .map(|m| json!({"key": m.key, "purpose": m.purpose, "hint": m.hint, "required": m.required}))
        .collect();
    let readable: Vec<Value> = report.readable.iter().map(|a| json!({"key": a.key, "label": a.label})).collect();
    Ok(Json(json!({"ok": report.missing.iter().all(|m| !m.required), "account": report.account,
        "readable": readable, "missing": missing, "warnings": report.warnings}))
    .into_response())
}

/// "Test connection", remembered for the configuration tab.
pub(super) async fn run_check(state: &AppState, id: IntegrationId) -> ApiResult<CheckReport> {
    state.engine.store().integration(id)?;
    match state.engine.check(id).await {
        Ok(report) => {
            state.remember_check(id, Ok(report.clone()));
            Ok(report)
        }
        Err(e) => {
            let e = ApiError::from(e);
            state.remember_check(id, Err(e.message.clone()));
            Err(e)
        }
    }
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
pub(super) struct PreviewInput {
    /// Answer at once with the run to poll, as imports do, instead of
    /// waiting for the preview (large companies take seconds to minutes).
    #[serde(default)]
    background: bool,
}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/previews", tag = "runs", params(("id" = i64, Path)), request_body(content = PreviewInput, description = "Optional"), responses((status = 200, description = "The stored preview run with its issues; its changes are at /api/v1/runs/{id}/changes", body = Object), (status = 202, description = "With `background`: started; poll status_url", body = Object), (status = 502, body = ErrorBody)))]
pub(super) async fn preview(
    Scoped(state): Scoped,
    Operator(p): Operator,
    client: Client,
    ApiPath(id): ApiPath<i64>,
    body: axum::body::Bytes,
) -> ApiResult {
    let input: PreviewInput = optional_json(&body)?;
    state.record(&p, client, Action::Preview, Some(format!("integration {id}")), None);
    let request = RunRequest { actor: Some(p.username), ..RunRequest::manual(IntegrationId(id)) };
    if input.background {
        let run = state.engine.start_preview(request)?;
        return Ok(started(run));
    }
    let report = state.engine.preview(&request).await?;
    Ok(Json(json!({"run": report.run, "issues": report.issues})).into_response())
}

/// `202 Accepted` for a run started in the background.
fn started(run: RunId) -> axum::response::Response {
    (StatusCode::ACCEPTED, Json(json!({"run_id": run, "status_url": format!("/api/v1/runs/{run}")}))).into_response()
}

/// A JSON body that may be left out entirely.
fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON for this call: {e}")))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
pub(super) struct ImportInput {
    from_preview: Option<i64>,
    #[serde(default, rename = "override")]
    override_safeguard: bool,
    #[serde(default)]
    accept_drift: bool,
}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/imports", tag = "runs", params(("id" = i64, Path)), request_body(content = ImportInput, description = "Optional"), responses((status = 202, description = "Started in the background; poll status_url", body = Object), (status = 409, description = "An import of this integration is already running", body = ErrorBody)))]
pub(super) async fn start_import(
    Scoped(state): Scoped,
    Operator(p): Operator,
    client: Client,
    ApiPath(id): ApiPath<i64>,
    body: axum::body::Bytes,
) -> ApiResult {
    let input: ImportInput = optional_json(&body)?;
    let detail = (input.override_safeguard || input.from_preview.is_some())
        .then(|| format!("from preview {:?}, override {}", input.from_preview, input.override_safeguard));
    state.record(&p, client, Action::Import, Some(format!("integration {id}")), detail);
    let request = RunRequest {
        actor: Some(p.username),
        from_preview: input.from_preview.map(RunId),
        override_safeguard: input.override_safeguard,
        accept_drift: input.accept_drift,
        ..RunRequest::manual(IntegrationId(id))
    };
    let run = state.engine.start_import(request)?;
    Ok(started(run))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RunsQuery {
    integration: Option<i64>,
    offset: Option<u64>,
    limit: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(RunsQuery), responses((status = 200, description = "Runs, newest first", body = [crate::directory::Run])))]
pub(super) async fn runs(Scoped(state): Scoped, Viewer(_): Viewer, ApiQuery(q): ApiQuery<RunsQuery>) -> ApiResult {
    let runs = state.engine.store().runs(
        q.integration.map(IntegrationId),
        q.offset.unwrap_or(0),
        q.limit.unwrap_or(50).min(500),
    )?;
    Ok(Json(runs).into_response())
}

#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs", params(("id" = i64, Path)), responses((status = 200, description = "The run, its issues and, while it runs, its fetch progress", body = Object), (status = 404, body = ErrorBody)))]
pub(super) async fn run(Scoped(state): Scoped, Viewer(_): Viewer, ApiPath(id): ApiPath<i64>) -> ApiResult {
    let store = state.engine.store();
    let run = store.run(RunId(id))?;
    let issues = store.run_issues(run.id)?;
    let progress =
        state.engine.progress(run.id).map(|p| json!({"pages": p.pages, "records": p.records, "total": p.total}));
    Ok(Json(json!({"run": run, "issues": issues, "progress": progress})).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PageQuery {
    offset: Option<usize>,
    limit: Option<usize>,
    user: Option<i64>,
    kind: Option<String>,
    search: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/runs/{id}/changes", tag = "runs", params(("id" = i64, Path), PageQuery), responses((status = 200, description = "A page of per-person, per-field changes", body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn run_changes(
    Scoped(state): Scoped,
    Viewer(_): Viewer,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult {
    let kind = q.kind.as_deref().map(ChangeKind::parse).transpose().map_err(ApiError::bad_request)?;
    let filter = ChangeFilter {
        user: q.user.map(UserId),
        kind,
        search: q.search.filter(|s| !s.trim().is_empty()),
        offset: q.offset.unwrap_or(0) as u64,
        limit: q.limit.unwrap_or(50).clamp(1, 500) as u64,
    };
    let store = state.engine.store();
    store.run(RunId(id))?;
    let (page, total) = store.run_changes_page(RunId(id), &filter)?;
    Ok(Json(json!({"total": total, "offset": filter.offset, "changes": page})).into_response())
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
pub(super) struct RevertInput {
    user_id: Option<i64>,
    #[serde(default)]
    dry_run: bool,
    /// Keep the restored values with overrides, so the next import leaves them.
    #[serde(default)]
    keep: bool,
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/revert", tag = "runs", params(("id" = i64, Path)), request_body(content = RevertInput, description = "Optional"), responses((status = 200, description = "The revert run (or, with dry_run, what it would do)", body = Object), (status = 400, body = ErrorBody)))]
pub(super) async fn revert(
    Scoped(state): Scoped,
    Operator(p): Operator,
    client: Client,
    ApiPath(id): ApiPath<i64>,
    body: axum::body::Bytes,
) -> ApiResult {
    let input: RevertInput = optional_json(&body)?;
    if !input.dry_run {
        let who = input.user_id.map(|u| format!("user {u}"));
        state.record(&p, client, Action::Revert, Some(format!("run {id}")), who);
    }
    let request = RevertRequest {
        user: input.user_id.map(UserId),
        dry_run: input.dry_run,
        keep: input.keep,
        ..RevertRequest::new(RunId(id), Some(p.username))
    };
    let (_, report) = state.engine.revert(request).await?;
    Ok(Json(json!({"run": report.run, "changes": report.changes, "issues": report.issues, "kept": report.kept}))
        .into_response())
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "runs", params(("id" = i64, Path)), responses((status = 202, description = "Asked to stop: the run ends as cancelled within seconds and applies nothing; poll it", body = Object), (status = 404, body = ErrorBody), (status = 409, description = "The run is not running", body = ErrorBody)))]
pub(super) async fn cancel(
    Scoped(state): Scoped,
    Operator(p): Operator,
    client: Client,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    let run = state.engine.cancel(RunId(id), Some(&p.username))?;
    state.record(&p, client, Action::Cancel, Some(format!("run {id}")), None);
    Ok((StatusCode::ACCEPTED, Json(json!({"run": run, "status_url": format!("/api/v1/runs/{id}")}))).into_response())
}

/// A page of the directory, narrowed like the Directory page.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct UsersQuery {
    offset: Option<usize>,
    /// 1 to 500; 50 by default.
    limit: Option<usize>,
    /// Part of a name, email, department or employee id.
    search: Option<String>,
    /// `active`, `pending-start` or `inactive`.
    status: Option<String>,
    /// A department's exact name.
    department: Option<String>,
    /// The direct reports of this user id.
    manager: Option<i64>,
    /// Whether they were sent a password email.
    informed: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "directory", params(UsersQuery), responses((status = 200, description = "A page of directory users", body = Object), (status = 400, body = ErrorBody)))]
pub(super) async fn users(Scoped(state): Scoped, Viewer(_): Viewer, ApiQuery(q): ApiQuery<UsersQuery>) -> ApiResult {
    let status = q.status.as_deref().map(UserStatus::parse).transpose().map_err(ApiError::bad_request)?;
    let query = UserQuery {
        search: q.search.filter(|s| !s.trim().is_empty()),
        integration: None,
        status,
        department: q.department.filter(|d| !d.is_empty()),
        manager: q.manager.map(UserId),
        informed: q.informed,
        offset: q.offset.unwrap_or(0) as u64,
        limit: q.limit.unwrap_or(50).clamp(1, 500) as u64,
    };
    let (users, total) = state.engine.store().users(&query)?;
    Ok(Json(json!({"total": total, "offset": query.offset, "users": users})).into_response())
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "directory", params(("id" = i64, Path)), responses((status = 200, description = "The user, their reporting line and history", body = Object), (status = 404, body = ErrorBody)))]
pub(super) async fn user(Scoped(state): Scoped, Viewer(_): Viewer, ApiPath(id): ApiPath<i64>) -> ApiResult {
    let store = state.engine.store();
    let user = store.user(UserId(id))?;
    let line: Vec<Value> = crate::directory::reporting_line(store.as_ref(), &user)?
        .iter()
        .map(|m| json!({"id": m.id, "name": m.profile.display_name(), "job_title": m.profile.job_title}))
        .collect();
    let history: Vec<Value> = store
        .user_history(user.id)?
        .into_iter()
        .map(|(run, change)| json!({"run_id": run, "change": change}))
        .collect();
    Ok(Json(json!({"user": user, "reporting_line": line, "history": history})).into_response())
}

/// A JSON object of field names (`first-name`, `job-title`, `status`,
/// `custom.KEY`) to strings or `null`, and `manager_id`.
fn user_edit(body: &[u8]) -> ApiResult<UserEdit> {
    let object: serde_json::Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be a JSON object of field names to values, e.g. {{\"job-title\": \"CTO\"}}: {e}"
        ))
    })?;
    UserEdit::from_json(&object).map_err(ApiError::bad_request)
}

#[utoipa::path(post, path = "/api/v1/users", tag = "directory", request_body(content = Object, description = "Field names to values: `email`, `first-name` and `last-name` required; `job-title`, `department`, `status`, `start-date`, `custom.KEY`…, and `manager_id`"), responses((status = 201, description = "The new user, unmanaged until a sync adopts them by email", body = Object), (status = 400, body = ErrorBody), (status = 409, description = "The email is taken", body = ErrorBody)))]
pub(super) async fn create_user(
    Scoped(state): Scoped,
    Operator(p): Operator,
    client: Client,
    body: axum::body::Bytes,
) -> ApiResult {
    let new = user_edit(&body)?.create().map_err(ApiError::bad_request)?;
    let store = state.engine.store();
    let id = store.create_user(&new)?;
    state.record(&p, client, Action::UserCreated, Some(format!("user {id}")), Some(new.profile.email.to_string()));
    Ok((StatusCode::CREATED, Json(json!({"user": store.user(id)?}))).into_response())
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "directory", params(("id" = i64, Path)), request_body(content = Object, description = "The fields to change, by name (`null` empties one); `\"status\": \"inactive\"` deactivates"), responses((status = 200, description = "The user after the edit", body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "An integration manages the user (keep a value with an override instead), or the email is taken", body = ErrorBody)))]
pub(super) async fn edit_user(
    Scoped(state): Scoped,
    Operator(p): Operator,
    client: Client,
    ApiPath(id): ApiPath<i64>,
    body: axum::body::Bytes,
) -> ApiResult {
    let edit = user_edit(&body)?;
    let store = state.engine.store();
    let user = store.user(UserId(id))?;
    let changed = edit
        .apply(&NewUser { profile: user.profile.clone(), manager_id: user.manager_id })
        .map_err(ApiError::bad_request)?;
    store.edit_user(user.id, &changed)?;
    let fields: Vec<String> = edit.fields.iter().map(|(f, _)| f.to_string()).collect();
    state.record(&p, client, Action::UserEdited, Some(format!("user {id}")), Some(fields.join(", ")));
    Ok(Json(json!({"user": store.user(user.id)?})).into_response())
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct UploadQuery {
    /// Only check the file and say what it would do.
    #[serde(default)]
    dry_run: bool,
}

#[utoipa::path(post, path = "/api/v1/users/import", tag = "directory", params(UploadQuery), request_body(content = String, content_type = "text/csv", description = "A header line naming fields (`email,first-name,last-name,job-title,department,manager-email`…), then one person per line"), responses((status = 200, description = "Per line: create, update, unchanged; written in one transaction unless dry_run", body = Object), (status = 400, description = "The file, or some lines, are wrong (per line, what to fix); nothing was written", body = Object)))]
pub(super) async fn import_users(
    Scoped(state): Scoped,
    Operator(p): Operator,
    client: Client,
    ApiQuery(q): ApiQuery<UploadQuery>,
    body: axum::body::Bytes,
) -> ApiResult {
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("the file is not UTF-8 text"))?;
    let store = state.engine.store();
    let (everyone, _) = store.users(&UserQuery { limit: u64::MAX >> 1, ..UserQuery::default() })?;
    let plan = crate::directory::roster::plan(text, &everyone).map_err(ApiError::bad_request)?;
    let summary = json!({
        "lines": plan.lines,
        "create": plan.count(LineAction::Create),
        "update": plan.count(LineAction::Update),
        "unchanged": plan.count(LineAction::Unchanged),
        "errors": plan.errors(),
    });
    if plan.errors() > 0 {
        let mut body = summary;
        body["error"] =
            json!({"message": format!("{} lines are wrong (see `lines`); nothing was written", plan.errors())});
        return Ok((StatusCode::BAD_REQUEST, Json(body)).into_response());
    }
    let applied = !q.dry_run;
    if applied {
        store.write_roster(&plan.rows)?;
        state.record(&p, client, Action::UsersUploaded, None, Some(format!("{} lines", plan.lines.len())));
    }
    let mut body = summary;
    body["applied"] = json!(applied);
    Ok(Json(body).into_response())
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
pub(super) struct KeepInput {
    /// The last day the override holds (`YYYY-MM-DD`); none: until removed.
    until: Option<chrono::NaiveDate>,
}

fn field_param(name: &str) -> ApiResult<Field> {
    Field::parse(name).map_err(ApiError::bad_request)
}

#[utoipa::path(put, path = "/api/v1/users/{id}/overrides/{field}", tag = "directory", params(("id" = i64, Path), ("field" = String, Path, description = "A field name, e.g. `job-title` or `manager`")), request_body(content = KeepInput, description = "Optional"), responses((status = 200, description = "The override: syncs keep the field's current value", body = crate::directory::Override), (status = 400, description = "An unknown field, or the status (never kept)", body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn keep_value(
    Scoped(state): Scoped,
    Operator(p): Operator,
    client: Client,
    ApiPath((id, field)): ApiPath<(i64, String)>,
    body: axum::body::Bytes,
) -> ApiResult {
    let input: KeepInput = optional_json(&body)?;
    let field = field_param(&field)?;
    let kept = state.engine.store().keep(UserId(id), &field, Some(&p.username), input.until)?;
    state.record(&p, client, Action::ValueKept, Some(format!("user {id}")), Some(field.label().into_owned()));
    Ok(Json(kept).into_response())
}

#[utoipa::path(delete, path = "/api/v1/users/{id}/overrides/{field}", tag = "directory", params(("id" = i64, Path), ("field" = String, Path)), responses((status = 204, description = "Removed: the next sync applies the source's value"), (status = 404, description = "No such override", body = ErrorBody)))]
pub(super) async fn remove_override(
    Scoped(state): Scoped,
    Operator(p): Operator,
    client: Client,
    ApiPath((id, field)): ApiPath<(i64, String)>,
) -> ApiResult {
    let field = field_param(&field)?;
    if !state.engine.store().unkeep(UserId(id), &field)? {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("user {id} has no override of {field}")));
    }
    state.record(&p, client, Action::OverrideRemoved, Some(format!("user {id}")), Some(field.label().into_owned()));
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/api/v1/overrides", tag = "directory", responses((status = 200, description = "Every override, with what the source said when a run last saw the person (`source.differs`: the drift)", body = [crate::directory::Override])))]
pub(super) async fn overrides(Scoped(state): Scoped, Viewer(_): Viewer) -> ApiResult {
    Ok(Json(json!({"overrides": state.engine.store().overrides(None)?})).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct InviteInput {
    user_ids: Vec<i64>,
}

#[utoipa::path(post, path = "/api/v1/users/invitations", tag = "directory", request_body = InviteInput, responses((status = 200, description = "Password emails queued for the active users among them (earlier links stop working); others are skipped", body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn invite_users(
    Scoped(state): Scoped,
    Operator(p): Operator,
    client: Client,
    ApiJson(input): ApiJson<InviteInput>,
) -> ApiResult {
    if input.user_ids.is_empty() {
        return Err(ApiError::bad_request("user_ids is empty: name the users to email"));
    }
    let users: Vec<UserId> = input.user_ids.iter().copied().map(UserId).collect();
    let invited = state.engine.store().invite(&users, &state.engine.invitations()?, chrono::Utc::now())?;
    state.engine.mail_queued.notify_one();
    let skipped: Vec<&UserId> = users.iter().filter(|u| !invited.contains(u)).collect();
    let ids: Vec<String> = invited.iter().map(|u| u.to_string()).collect();
    state.record(&p, client, Action::InvitationsSent, None, Some(format!("users {}", ids.join(", "))));
    Ok(Json(json!({"invited": invited, "skipped": skipped, "note": "only active users are emailed"})).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct MailsQuery {
    offset: Option<u64>,
    limit: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/mails", tag = "mail", params(MailsQuery), responses((status = 200, description = "The outbox, newest first: invitations and alerts with their delivery state", body = Object), (status = 401, body = ErrorBody)))]
pub(super) async fn mails(
    Scoped(state): Scoped,
    Operator(_): Operator,
    ApiQuery(q): ApiQuery<MailsQuery>,
) -> ApiResult {
    let (mails, total) = state.engine.store().mails(q.offset.unwrap_or(0), q.limit.unwrap_or(50).clamp(1, 500))?;
    let mails: Vec<_> = mails.into_iter().map(|m| m.for_admins(state.smtp)).collect();
    Ok(Json(json!({"total": total, "mails": mails})).into_response())
}
