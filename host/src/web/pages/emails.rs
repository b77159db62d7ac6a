//! The Emails page (the outbox: what was sent, what waits, what failed) and
//! the public set-password page people reach from their invitation.

use crate::web::auth::Scoped;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::{FormData, PAGE_SIZE, PageResult, Section, SignedOperator, head, layout, pager, time};
use crate::accounts::{MIN_PASSWORD_CHARS, hash_password};
use crate::mail::{MailKind, MailState};
use crate::web::{ApiError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/emails", get(list)).route("/set-password/{token}", get(set_password_page).post(set_password))
}

#[derive(Deserialize)]
struct ListQuery {
    page: Option<u64>,
}

fn state_badge(state: MailState) -> Markup {
    let (class, label) = match state {
        MailState::Queued => ("neutral", "queued"),
        MailState::Sending => ("neutral", "sending"),
        MailState::Sent => ("good", "sent"),
        MailState::Failed => ("bad", "failed"),
    };
    html! { span class={ "badge " (class) } { (label) } }
}

async fn list(Scoped(state): Scoped, SignedOperator(who): SignedOperator, Query(q): Query<ListQuery>) -> PageResult {
    let page = q.page.unwrap_or(1).max(1);
    let (mails, total) = state.engine.store().mails((page - 1) * PAGE_SIZE, PAGE_SIZE)?;
    let body = html! {
        h1 { "Emails" }
        p.lead {
            "Invitations and alerts are queued here in the same step as the import that causes them, then delivered. "
            @if state.smtp { "Set-password links go to their recipients only and are hidden here." }
            @else { "No SMTP server is configured: they stay queued and can be read here, links included." }
        }
        @if mails.is_empty() { p.empty { "No emails yet." } }
        ul.changes #emails {
            @for m in &mails {
                li data-mail=(m.id) data-state=(serde_json::to_value(m.state).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()) {
                    details {
                        summary {
                            (state_badge(m.state))
                            span class={ "kind " @if m.kind == MailKind::Alert { "deactivate" } @else { "create" } } {
                                @if m.kind == MailKind::Alert { "alert" } @else { "invitation" }
                            }
                            span.name { (m.recipient) }
                            span.fields-summary { (m.subject) }
                        }
                        p.muted {
                            "Queued " (time(m.created_at))
                            @if let Some(t) = m.sent_at { " · sent " (time(t)) }
                            " · " (m.attempts) " attempts · " code { (m.message_id) }
                        }
                        @if let Some(e) = &m.last_error { p.error { (e) } }
                        pre.mail-text { (m.text_for_admins(state.smtp)) }
                    }
                }
            }
        }
        (pager("/emails", page, total))
    };
    Ok(layout("Emails", &who, Section::Emails, body).into_response())
}

fn public_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body.login { main { section.card.login-form { h1 { (title) } (body) } } }
        }
    }
}

fn expired() -> Response {
    let body = public_page(
        "Link expired",
        html! { p.error #link-error { "This link has expired or was already used. Ask your administrator to send a new one." } },
    );
    (StatusCode::NOT_FOUND, body).into_response()
}

fn form(name: &str, token: &str, error: Option<&str>) -> Markup {
    public_page(
        "Choose your password",
        html! {
            p { "Hello " (name) ", choose the password for your account." }
            @if let Some(e) = error { p.error role="alert" #password-error { (e) } }
            form method="post" action={ "/set-password/" (token) } {
                label { "New password" input #new-password type="password" name="password" autocomplete="new-password" minlength=(MIN_PASSWORD_CHARS) required; }
                label { "Repeat it" input #repeat-password type="password" name="repeat" autocomplete="new-password" required; }
                small { "At least " (MIN_PASSWORD_CHARS) " characters." }
                div.actions { button.primary type="submit" #set-password { "Set password" } }
            }
        },
    )
}

async fn set_password_page(State(state): State<AppState>, Path(token): Path<String>) -> PageResult {
    let Some(user) = state.engine.store().invitation_user(&token, Utc::now())? else { return Ok(expired()) };
    Ok(form(&user.profile.display_name(), &token, None).into_response())
}

/// The token in the path is the credential: a forged request cannot know it,
/// so this public form needs no session or CSRF token.
async fn set_password(
    State(state): State<AppState>,
    Path(token): Path<String>,
    axum::Form(f): axum::Form<FormData>,
) -> PageResult {
    let store = state.engine.store().clone();
    let Some(user) = store.invitation_user(&token, Utc::now())? else { return Ok(expired()) };
    let name = user.profile.display_name();
    let password = f.all("password").next().unwrap_or_default().to_string();
    if Some(password.as_str()) != f.all("repeat").next() {
        return Ok((StatusCode::BAD_REQUEST, form(&name, &token, Some("The two passwords differ."))).into_response());
    }
    // Argon2 is deliberately slow: keep it off the async workers.
    let hashed = tokio::task::spawn_blocking(move || hash_password(&password)).await.map_err(ApiError::internal)?;
    let hashed = match hashed {
        Ok(h) => h,
        Err(e) => return Ok((StatusCode::BAD_REQUEST, form(&name, &token, Some(&format!("{e}.")))).into_response()),
    };
    if store.redeem_invitation(&token, &hashed, Utc::now())?.is_none() {
        return Ok(expired());
    }
    Ok(public_page("Password set", html! { p #password-set { "Your password is set. You can sign in now." } })
        .into_response())
}
