//! The OpenAPI document of the JSON API, generated from the handlers'
//! annotations (utoipa) and served at `/api/v1/openapi.json`.

use axum::Json;
use axum::response::IntoResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{api, operators};
use crate::directory::{ChangeKind, ChangeRecord, Counts, FieldChange, IssueRecord, Run, RunKind, RunState, Trigger};

/// Every error body: `{"error": {"message": "what went wrong and what to do"}}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Documents the shape `ApiError` writes with `json!`.
pub struct ErrorBody {
    error: ErrorMessage,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorMessage {
    message: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hrsync admin API",
        description = "Everything the admin pages do. Authenticate with a session (POST /api/v1/session sets an HttpOnly cookie; send the returned CSRF token as X-CSRF-Token on every change) or with an API token (Authorization: Bearer …). Secret settings are write-only: responses show only whether one is stored."
    ),
    paths(
        api::readyz,
        api::login,
        api::me,
        api::logout,
        api::change_password,
        api::create_token,
        api::list_tokens,
        api::revoke_token,
        api::list_accounts,
        api::create_account,
        api::update_account,
        api::audit_log,
        api::connectors,
        api::list_integrations,
        api::create_integration,
        api::get_integration,
        api::update_integration,
        api::check,
        api::preview,
        api::start_import,
        api::runs,
        api::run,
        api::run_changes,
        api::revert,
        api::cancel,
        api::users,
        api::create_user,
        api::invite_users,
        api::import_users,
        api::user,
        api::edit_user,
        api::keep_value,
        api::remove_override,
        api::overrides,
        api::mails,
        api::company,
        api::set_company,
        api::webhook,
        api::webhook_on,
        api::webhook_off,
        api::hook_delivery,
        operators::list_tenants,
        operators::add_tenant,
        operators::change_tenant,
    ),
    components(schemas(
        crate::accounts::Role,
        crate::accounts::Account,
        crate::accounts::Token,
        crate::audit::Entry,
        ErrorBody,
        ErrorMessage,
        crate::directory::Override,
        crate::directory::SourceSays,
        crate::directory::KeptValue,
        Run,
        RunKind,
        RunState,
        Trigger,
        Counts,
        ChangeRecord,
        ChangeKind,
        FieldChange,
        IssueRecord
    )),
    modifiers(&Security, &Errors),
    security(("token" = []), ("session" = []))
)]
pub struct ApiDoc;

/// Declares the two ways to authenticate.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token from POST /api/v1/tokens"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::auth::SESSION_COOKIE,
                "The browser session; changes also need the X-CSRF-Token header",
            ))),
        );
    }
}

/// Every operation can fail with the API's error body: a request it cannot
/// read (400/422), no or a bad credential (401), a role that may not (403),
/// and an unexpected failure (500); each is listed unless the operation
/// says more about it.
struct Errors;

impl Modify for Errors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let common = [
            ("400", "The request could not be read (malformed JSON, a bad parameter); the message says what"),
            ("401", "No session or token, or one that is no longer valid"),
            ("403", "The role does not allow this, or the CSRF token is missing"),
            ("422", "The JSON body lacks a field or has one of the wrong type"),
            ("500", "An unexpected failure; see the server log"),
        ];
        for item in openapi.paths.paths.values_mut() {
            for op in
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
            {
                for (status, description) in common {
                    op.responses.responses.entry(status.to_string()).or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(description)
                            .content(
                                "application/json",
                                ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                            )
                            .build()
                            .into()
                    });
                }
            }
        }
    }
}

pub(super) async fn document() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_route_is_documented() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/api/v1/session",
            "/api/v1/tokens",
            "/api/v1/connectors",
            "/api/v1/integrations",
            "/api/v1/integrations/{id}",
            "/api/v1/integrations/{id}/check",
            "/api/v1/integrations/{id}/previews",
            "/api/v1/integrations/{id}/imports",
            "/api/v1/runs",
            "/api/v1/runs/{id}",
            "/api/v1/runs/{id}/changes",
            "/api/v1/runs/{id}/revert",
            "/api/v1/runs/{id}/cancel",
            "/api/v1/tokens/{id}",
            "/api/v1/accounts",
            "/api/v1/accounts/{username}",
            "/api/v1/audit",
            "/api/v1/session/password",
            "/api/v1/users",
            "/api/v1/users/{id}",
            "/api/v1/users/invitations",
            "/api/v1/mails",
        ] {
            assert!(paths.contains_key(path), "{path} is not in the OpenAPI document");
        }
        assert!(doc["components"]["securitySchemes"]["token"].is_object());
        assert!(doc["components"]["schemas"]["Run"]["properties"]["counts"].is_object());
    }
}
