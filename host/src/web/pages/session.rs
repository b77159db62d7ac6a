//! Sign-in and sign-out pages, and the static files every page loads.
//!
//! The sign-in form is protected against login CSRF with a double-submit
//! token: a random value in a short-lived SameSite=Strict cookie that the
//! form must echo.

use crate::web::auth::Scoped;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::{FormData, PageResult, Signed, head};
use crate::accounts::{SESSION_LIFETIME, random_token};
use crate::web::AppState;
use crate::web::auth::{self, Client, SignIn};

const LOGIN_COOKIE: &str = "hrsync_login";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/static/app.css", get(|| async { asset("text/css", include_str!("../assets/app.css")) }))
        .route("/static/app.js", get(|| async { asset("text/javascript", include_str!("../assets/app.js")) }))
        .route("/static/favicon.svg", get(favicon))
        // Browsers ask for it whatever a page links; the same picture.
        .route("/favicon.ico", get(favicon))
}

async fn favicon() -> Response {
    asset("image/svg+xml", include_str!("../assets/favicon.svg"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// Where to go after signing in: only a path of this site. Browsers drop
/// tabs and newlines and read `\` as `/`, so `/\t/evil.example` would be
/// another host: anything with a control character, a backslash, a scheme or
/// a leading `//` goes to the Integrations page instead (a newline would
/// also break the redirect header).
fn local_path(next: Option<&str>) -> &str {
    let safe = |n: &str| {
        n.starts_with('/')
            && !n.starts_with("//")
            && !n.chars().any(|c| c.is_control() || c == '\\')
            && !n.split(['?', '#']).next().unwrap_or_default().contains(':')
    };
    match next {
        Some(n) if safe(n) => n,
        _ => "/integrations",
    }
}

async fn login_page(Query(q): Query<LoginQuery>) -> Response {
    form_page(StatusCode::OK, local_path(q.next.as_deref()), None)
}

fn form_page(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    form_with(status, next, "", error)
}

/// The form again after a refused sign-in, the username kept.
fn form_again(status: StatusCode, next: &str, username: &str, error: &str) -> Response {
    form_with(status, next, username, Some(error))
}

fn form_with(status: StatusCode, next: &str, username: &str, error: Option<&str>) -> Response {
    let token = random_token("");
    let cookie = format!("{LOGIN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/login; Max-Age=3600");
    (status, [(header::SET_COOKIE, cookie)], login_markup(next, &token, username, error)).into_response()
}

fn login_markup(next: &str, token: &str, username: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head("Sign in")) }
            body.login {
                main {
                    form.card.login-form method="post" action="/login" {
                        h1 { "hrsync" }
                        p.muted { "Sign in to manage your HR integrations and directory." }
                        @if let Some(e) = error { p.error role="alert" #login-error { (e) } }
                        input type="hidden" name="csrf" value=(token);
                        input type="hidden" name="next" value=(next);
                        label { "Username" input #username name="username" autocomplete="username" value=(username) required autofocus[username.is_empty()]; }
                        label { "Password" input #password type="password" name="password" autocomplete="current-password" required autofocus[!username.is_empty()]; }
                        button.primary type="submit" #sign-in { "Sign in" }
                    }
                }
            }
        }
    }
}

async fn login(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    let next = local_path(form.get("next")).to_string();
    let expected = auth::cookie(&headers, LOGIN_COOKIE);
    if expected.is_none() || expected.as_deref() != form.get("csrf") {
        return Ok(form_page(
            StatusCode::FORBIDDEN,
            &next,
            Some("The sign-in form expired. Please sign in again (cookies must be enabled)."),
        ));
    }
    let (Some(username), Some(password)) = (form.get("username"), form.get("password")) else {
        return Ok(form_page(StatusCode::BAD_REQUEST, &next, Some("Enter your username and password.")));
    };
    let typed = username.to_string();
    Ok(match auth::sign_in(&state, client, username, password.to_string()).await? {
        SignIn::Wait(wait) => form_again(
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            &typed,
            &format!("Too many failed sign-ins for this account from here. Try again in {}.", wait_text(wait)),
        ),
        SignIn::Wrong => form_again(StatusCode::UNAUTHORIZED, &next, &typed, "Wrong username or password."),
        SignIn::Ok { session, .. } => {
            let lifetime = SESSION_LIFETIME.to_std().unwrap_or(Duration::ZERO);
            let mut response = Redirect::to(&next).into_response();
            let h = response.headers_mut();
            let cookie = auth::session_cookie(Some(&session.token), lifetime, client.https);
            h.append(header::SET_COOKIE, cookie.parse().map_err(crate::web::ApiError::internal)?);
            h.append(
                header::SET_COOKIE,
                format!("{LOGIN_COOKIE}=; HttpOnly; SameSite=Strict; Path=/login; Max-Age=0").parse().expect("cookie"),
            );
            response
        }
    })
}

async fn logout(
    Scoped(state): Scoped,
    Signed(who): Signed,
    client: Client,
    headers: HeaderMap,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    if let Some(token) = auth::cookie(&headers, auth::SESSION_COOKIE) {
        state.accounts.end_session(&token).map_err(crate::web::ApiError::internal)?;
    }
    state.record(&who, client, crate::audit::Action::SignOut, None, None);
    Ok(([(header::SET_COOKIE, auth::session_cookie(None, Duration::ZERO, client.https))], Redirect::to("/login"))
        .into_response())
}

fn wait_text(seconds: u64) -> String {
    match seconds {
        0..=90 => format!("{seconds} seconds"),
        s => format!("{} minutes", s.div_ceil(60)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_path(Some("/runs/3?page=2")), "/runs/3?page=2");
        assert_eq!(local_path(Some("/audit?since=2026-12-01&actor=ann")), "/audit?since=2026-12-01&actor=ann");
        for hostile in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil.example",
            "\\/evil.example",
            "javascript:alert(1)",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\nSet-Cookie: x=1",
            "\t//evil.example",
            "/javascript:alert(1)",
            "evil.example",
        ] {
            assert_eq!(local_path(Some(hostile)), "/integrations", "{hostile:?}");
        }
        assert_eq!(local_path(None), "/integrations");
    }
}
