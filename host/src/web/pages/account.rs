//! Accounts and the audit log: one's own account (password, API tokens),
//! the accounts an admin manages, and the audit log with its filters.

use crate::web::auth::Scoped;
use axum::Router;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use chrono::{Duration, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    FormData, PAGE_SIZE, PageError, PageResult, Section, Signed, SignedAdmin, csrf_field, layout, pager, query, time,
};
use crate::accounts::{Principal, Role, Token};
use crate::audit::{Action, Query as AuditQuery};
use crate::web::AppState;
use crate::web::auth::Client;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/account", get(own_account))
        .route("/account/password", post(change_password))
        .route("/account/tokens", post(create_token))
        .route("/account/tokens/{id}/revoke", post(revoke_token))
        .route("/accounts", get(accounts).post(create_account))
        .route("/accounts/{username}", post(update_account))
        .route("/audit", get(audit))
}

fn role_options(up_to: Role, selected: Role) -> Markup {
    html! {
        @for r in Role::ALL.into_iter().filter(|r| up_to.allows(*r)) {
            option value=(r.as_str()) selected[r == selected] { (r.as_str()) }
        }
    }
}

/// One's own account: password, and API tokens (a new one shown once).
async fn own_account(Scoped(state): Scoped, Signed(who): Signed) -> PageResult {
    own_page(&state, &who, None, None)
}

fn own_page(state: &AppState, who: &Principal, new_token: Option<&str>, notice: Option<&str>) -> PageResult {
    let tokens = state.accounts.tokens(who).map_err(crate::web::ApiError::from)?;
    let mine: Vec<&Token> = tokens.iter().filter(|t| t.creator.eq_ignore_ascii_case(&who.username)).collect();
    let body = html! {
        h1 { "Your account" }
        p.lead { (who.username) " · " (who.role.as_str()) }
        @if let Some(n) = notice { p.good role="status" #notice { (n) } }
        @if let Some(token) = new_token {
            section.card #new-token {
                h2 { "Your new API token" }
                p { "Copy it now: it is shown once and stored only as a hash. Send it as " code { "Authorization: Bearer …" } "." }
                p { code.token #token-value { (token) } }
            }
        }
        section.card {
            h2 { "Change your password" }
            form method="post" action="/account/password" {
                (csrf_field(who))
                label { "Current password" input type="password" name="current" autocomplete="current-password" required; }
                label { "New password (at least 12 characters)" input type="password" name="new" autocomplete="new-password" minlength="12" required; }
                div.actions { button.primary type="submit" #change-password { "Change password" } }
                p.muted { "Your other sessions end; sign in again with the new password." }
            }
        }
        section.card {
            h2 { "API tokens" }
            p.muted { "For scripts. A token acts with your role or a narrower one, and stops working when revoked, when it expires, or when your account is disabled." }
            (token_table(who, &mine))
            form method="post" action="/account/tokens" {
                (csrf_field(who))
                label { "Name (what uses it)" input name="name" required maxlength="100"; }
                label { "Role" select name="role" { (role_options(who.role, who.role)) } }
                label { "Expires after (days, empty for never)" input type="number" name="days" min="1" max="3650"; }
                div.actions { button.secondary type="submit" #create-token { "Create token" } }
            }
        }
    };
    Ok(layout("Your account", who, Section::Account, body).into_response())
}

fn token_table(who: &Principal, tokens: &[&Token]) -> Markup {
    html! {
        @if tokens.is_empty() { p.empty { "No tokens." } }
        @else {
            table.list #tokens {
                thead { tr { th { "Name" } th { "Creator" } th { "Role" } th { "Created" } th { "Last used" } th { "Expires" } th { "" } } }
                tbody {
                    @for t in tokens {
                        tr data-token=(t.id) {
                            td { (t.name) }
                            td { (t.creator) }
                            td { (t.role.as_str()) }
                            td { (time(t.created_at)) }
                            td { @if let Some(u) = t.last_used { (time(u)) } @else { "never" } }
                            td { @if let Some(e) = t.expires_at { (time(e)) } @else { "never" } }
                            td {
                                @if let Some(r) = t.revoked_at { "revoked " (time(r)) }
                                @else {
                                    form method="post" action={ "/account/tokens/" (t.id) "/revoke" } {
                                        (csrf_field(who))
                                        button.link type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn change_password(
    Scoped(state): Scoped,
    Signed(who): Signed,
    client: Client,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    let (Some(current), Some(new)) = (form.get("current"), form.get("new")) else {
        return Err(PageError::bad_request("Enter your current password and the new one."));
    };
    let (current, new) = (current.to_string(), new.to_string());
    let accounts = state.accounts.clone();
    let name = who.username.clone();
    let changed = tokio::task::spawn_blocking(move || accounts.change_password(&name, &current, &new))
        .await
        .map_err(crate::web::ApiError::internal)?;
    match changed {
        Ok(()) => {
            state.record(&who, client, Action::PasswordChanged, Some(format!("account {}", who.username)), None);
            // The session ended with the old password.
            Ok(Redirect::to("/login?next=%2Faccount").into_response())
        }
        Err(e) => Err(crate::web::ApiError::from(e).into()),
    }
}

async fn create_token(
    Scoped(state): Scoped,
    Signed(who): Signed,
    client: Client,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    let name = form
        .get("name")
        .ok_or_else(|| PageError::bad_request("Give the token a name, e.g. the script that uses it."))?;
    let role = form.get("role").map(Role::parse).transpose().map_err(PageError::bad_request)?;
    let days: Option<i64> = form.number("days", "The expiry")?;
    let expires = days.map(|d| Utc::now() + Duration::days(d.clamp(1, 3650)));
    let (id, token) = state.accounts.create_api_token(&who, name, role, expires).map_err(crate::web::ApiError::from)?;
    let role = role.unwrap_or(who.role);
    state.record(
        &who,
        client,
        Action::TokenCreated,
        Some(format!("token {id}")),
        Some(format!("`{name}` ({})", role.as_str())),
    );
    own_page(&state, &who, Some(&token), None)
}

async fn revoke_token(
    Scoped(state): Scoped,
    Signed(who): Signed,
    client: Client,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    let token = state.accounts.revoke_token(&who, id).map_err(crate::web::ApiError::from)?;
    state.record(
        &who,
        client,
        Action::TokenRevoked,
        Some(format!("token {id}")),
        Some(format!("`{}` of {}", token.name, token.creator)),
    );
    let back = if token.creator.eq_ignore_ascii_case(&who.username) { "/account" } else { "/accounts" };
    Ok(Redirect::to(back).into_response())
}

/// Every account, and every API token, for admins.
async fn accounts(Scoped(state): Scoped, SignedAdmin(who): SignedAdmin) -> PageResult {
    let accounts = state.accounts.accounts().map_err(crate::web::ApiError::from)?;
    let tokens = state.accounts.tokens(&who).map_err(crate::web::ApiError::from)?;
    let body = html! {
        h1 { "Accounts" }
        p.lead { "Admins change everything; operators preview, import, revert and send password emails; viewers read." }
        section.card {
            table.list #accounts {
                thead { tr { th { "Username" } th { "Role" } th { "State" } th { "Password changed" } th { "" } } }
                tbody {
                    @for a in &accounts {
                        tr data-account=(a.username) {
                            td { (a.username) }
                            td {
                                form.inline method="post" action={ "/accounts/" (a.username) } {
                                    (csrf_field(&who))
                                    select name="role" aria-label={ "Role of " (a.username) } { (role_options(Role::Admin, a.role)) }
                                    button.link type="submit" name="action" value="role" { "Change" }
                                }
                            }
                            td { @if let Some(d) = a.disabled_at { "disabled " (time(d)) } @else { "enabled" } }
                            td { @if let Some(c) = a.password_changed_at { (time(c)) } @else { "—" } }
                            td {
                                form.inline method="post" action={ "/accounts/" (a.username) } {
                                    (csrf_field(&who))
                                    @if a.disabled_at.is_some() {
                                        button.link type="submit" name="action" value="enable" { "Enable" }
                                    } @else {
                                        button.link type="submit" name="action" value="disable" { "Disable" }
                                    }
                                }
                                form.inline method="post" action={ "/accounts/" (a.username) } {
                                    (csrf_field(&who))
                                    input type="password" name="password" placeholder="New password" minlength="12" autocomplete="new-password" aria-label={ "New password for " (a.username) };
                                    button.link type="submit" name="action" value="reset" { "Reset password" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "Add an account" }
            form method="post" action="/accounts" {
                (csrf_field(&who))
                label { "Username" input name="username" required maxlength="64" autocomplete="off"; }
                label { "Role" select name="role" { (role_options(Role::Admin, Role::Viewer)) } }
                label { "Initial password (at least 12 characters)" input type="password" name="password" minlength="12" required autocomplete="new-password"; }
                div.actions { button.primary type="submit" #create-account { "Add account" } }
            }
        }
        section.card {
            h2 { "API tokens of every account" }
            (token_table(&who, &tokens.iter().collect::<Vec<_>>()))
        }
    };
    Ok(layout("Accounts", &who, Section::Accounts, body).into_response())
}

async fn create_account(
    Scoped(state): Scoped,
    SignedAdmin(who): SignedAdmin,
    client: Client,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    let username = form.get("username").unwrap_or_default();
    let role = Role::parse(form.get("role").unwrap_or("viewer")).map_err(PageError::bad_request)?;
    let password = form.get("password").unwrap_or_default();
    state.accounts.create_account(username, password, role).map_err(crate::web::ApiError::from)?;
    state.record(&who, client, Action::AccountCreated, Some(format!("account {username}")), Some(role.as_str().into()));
    Ok(Redirect::to("/accounts").into_response())
}

async fn update_account(
    Scoped(state): Scoped,
    SignedAdmin(who): SignedAdmin,
    client: Client,
    Path(username): Path<String>,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    let accounts = &state.accounts;
    let target = Some(format!("account {username}"));
    let api = crate::web::ApiError::from;
    match form.get("action") {
        Some("role") => {
            let role = Role::parse(form.get("role").unwrap_or_default()).map_err(PageError::bad_request)?;
            accounts.set_role(&username, role).map_err(api)?;
            state.record(&who, client, Action::RoleChanged, target, Some(role.as_str().into()));
        }
        Some("disable") => {
            accounts.set_disabled(&username, true).map_err(api)?;
            state.record(&who, client, Action::AccountDisabled, target, None);
        }
        Some("enable") => {
            accounts.set_disabled(&username, false).map_err(api)?;
            state.record(&who, client, Action::AccountEnabled, target, None);
        }
        Some("reset") => {
            accounts.reset_password(&username, form.get("password").unwrap_or_default()).map_err(api)?;
            state.record(&who, client, Action::PasswordReset, target, None);
        }
        _ => return Err(PageError::bad_request("Pick what to change: role, disable, enable or reset password.")),
    }
    Ok(Redirect::to("/accounts").into_response())
}

#[derive(Deserialize)]
struct AuditFilter {
    actor: Option<String>,
    action: Option<String>,
    since: Option<String>,
    page: Option<u64>,
}

/// The audit log with filters by account, action and day.
async fn audit(Scoped(state): Scoped, SignedAdmin(who): SignedAdmin, Query(f): Query<AuditFilter>) -> PageResult {
    let action =
        f.action.as_deref().filter(|a| !a.is_empty()).map(Action::parse).transpose().map_err(PageError::bad_request)?;
    let since = match f.since.as_deref().filter(|s| !s.is_empty()) {
        Some(day) => Some(
            chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .map_err(|_| PageError::bad_request(format!("`{day}` is not a day like 2026-12-01")))?
                .and_hms_opt(0, 0, 0)
                .expect("midnight")
                .and_utc(),
        ),
        None => None,
    };
    let page = f.page.unwrap_or(1).max(1);
    let actor = f.actor.clone().filter(|a| !a.trim().is_empty());
    let q = AuditQuery {
        actor: actor.clone(),
        action,
        since,
        until: None,
        offset: (page - 1) * PAGE_SIZE,
        limit: PAGE_SIZE,
    };
    let (entries, total) = state.audit.entries(&q).map_err(crate::web::ApiError::internal)?;
    let base = format!(
        "/audit?{}",
        query(&[
            ("actor", actor.as_deref().unwrap_or("")),
            ("action", f.action.as_deref().unwrap_or("")),
            ("since", f.since.as_deref().unwrap_or(""))
        ])
    );
    let body = html! {
        h1 { "Audit log" }
        p.lead { "Who did what, when and from where. Entries cannot be changed or removed." }
        form.filters method="get" action="/audit" {
            label { "Account" input name="actor" value=(actor.as_deref().unwrap_or("")); }
            label { "Action" select name="action" {
                option value="" { "any" }
                @for a in Action::ALL { option value=(a.as_str()) selected[Some(a) == action] { (a.as_str()) } }
            } }
            label { "Since (day)" input type="date" name="since" value=(f.since.as_deref().unwrap_or("")); }
            button.secondary type="submit" { "Filter" }
        }
        @if entries.is_empty() { p.empty { "No entries match." } }
        @else {
            table.list #audit {
                thead { tr { th { "When" } th { "Who" } th { "From" } th { "What" } th { "On" } th { "Detail" } } }
                tbody {
                    @for e in &entries {
                        tr data-action=(e.action) {
                            td { (time(e.at)) }
                            td { (e.actor) }
                            td { (e.address) }
                            td { (e.action) }
                            td { (e.target.as_deref().unwrap_or("")) }
                            td { (e.detail.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        (pager(&base, page, total))
    };
    Ok(layout("Audit log", &who, Section::Audit, body).into_response())
}
