//! The operator API, `/api/v1/tenants`: the platform's admins list, add,
//! disable and enable the tenants of a multi-tenant (PostgreSQL)
//! deployment — what `hrsync tenant` does, over HTTP. The platform's
//! admins are the default tenant's; a tenant's own admins see only their
//! tenant, so these routes refuse them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::Deserialize;

use super::auth::{Client, PlatformAdmin, Scoped};
use super::extract::{ApiJson, ApiPath};
use super::openapi::ErrorBody;
use super::{ApiError, AppState};
use crate::audit::Action;
use crate::directory::Tenant;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants", get(list_tenants).post(add_tenant))
        .route("/api/v1/tenants/{slug}", patch(change_tenant))
}

#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", responses((status = 200, description = "Every tenant, by slug", body = [Tenant]), (status = 403, description = "Not an admin of the platform (the default tenant)", body = ErrorBody), (status = 409, description = "A single-company (SQLite) install has no tenants", body = ErrorBody)))]
pub(super) async fn list_tenants(Scoped(state): Scoped, PlatformAdmin(_): PlatformAdmin) -> Result<Response, ApiError> {
    Ok(Json(state.tenancy.platform()?.tenants()?).into_response())
}

/// A tenant to add, with its first admin.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct NewTenant {
    /// The operator's handle: lower-case letters, digits and dashes.
    slug: String,
    /// The company's name.
    name: String,
    admin: NewTenantAdmin,
}

/// The new tenant's first admin; usernames are unique across tenants.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct NewTenantAdmin {
    username: String,
    /// At least 12 characters; never shown again.
    password: String,
}

#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = NewTenant, responses((status = 201, description = "Added, with its admin", body = Tenant), (status = 400, description = "A bad slug, name, username or password; nothing was added", body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, description = "The slug or the admin's username is taken (nothing was added), or the install has no tenants", body = ErrorBody)))]
pub(super) async fn add_tenant(
    Scoped(state): Scoped,
    PlatformAdmin(p): PlatformAdmin,
    client: Client,
    ApiJson(new): ApiJson<NewTenant>,
) -> Result<Response, ApiError> {
    let pg = state.tenancy.platform()?.clone();
    let admin = new.admin.username.trim().to_string();
    // Argon2 is deliberately slow: keep it off the async workers.
    let tenant = tokio::task::spawn_blocking(move || {
        crate::tenancy::add_tenant(&pg, &new.slug, &new.name, &new.admin.username, &new.admin.password)
    })
    .await
    .map_err(ApiError::internal)??;
    state.record(&p, client, Action::TenantAdded, Some(format!("tenant {}", tenant.slug)), Some(tenant.name.clone()));
    // The new tenant's own log starts with who made its admin.
    state.scoped(tenant.id)?.record(
        &p,
        client,
        Action::AccountCreated,
        Some(format!("account {admin}")),
        Some("admin".into()),
    );
    Ok((StatusCode::CREATED, Json(tenant)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct TenantChange {
    /// A disabled tenant's accounts cannot sign in, its sessions and tokens
    /// stop, and its integrations are not scheduled.
    disabled: bool,
}

#[utoipa::path(patch, path = "/api/v1/tenants/{slug}", tag = "tenants", params(("slug" = String, Path)), request_body = TenantChange, responses((status = 200, description = "The tenant after the change", body = Tenant), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "The default tenant (the platform's own) stays enabled, or the install has no tenants", body = ErrorBody)))]
pub(super) async fn change_tenant(
    Scoped(state): Scoped,
    PlatformAdmin(p): PlatformAdmin,
    client: Client,
    ApiPath(slug): ApiPath<String>,
    ApiJson(change): ApiJson<TenantChange>,
) -> Result<Response, ApiError> {
    let tenant = crate::tenancy::set_tenant_disabled(state.tenancy.platform()?, &slug, change.disabled)?;
    let action = if change.disabled { Action::TenantDisabled } else { Action::TenantEnabled };
    state.record(&p, client, action, Some(format!("tenant {}", tenant.slug)), None);
    Ok(Json(tenant).into_response())
}
