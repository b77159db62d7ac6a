//! Sign-in and sign-out pages, and the static files every page loads.
//!
//! The sign-in form is protected against login CSRF with a double-submit
//! token: a random value in a short-lived SameSite=Strict cookie that the
//! form must echo.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::{FormData, PageResult, Signed, head};
use crate::accounts::{SESSION_LIFETIME, random_token};
use crate::web::AppState;
use crate::web::auth::{self, SignIn};

const LOGIN_COOKIE: &str = "hrsync_login";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/static/app.css", get(|| async { asset("text/css", include_str!("../assets/app.css")) }))
        .route("/static/app.js", get(|| async { asset("text/javascript", include_str!("../assets/app.js")) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// Where to go after signing in: only paths of this site.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/integrations",
    }
}

async fn login_page(Query(q): Query<LoginQuery>) -> Response {
    form_page(StatusCode::OK, local_path(q.next.as_deref()), None)
}

fn form_page(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let token = random_token("");
    let cookie = format!("{LOGIN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/login; Max-Age=3600");
    (status, [(header::SET_COOKIE, cookie)], login_markup(next, &token, error)).into_response()
}

fn login_markup(next: &str, token: &str, error: Option<&str>) -> Markup {
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
                        label { "Username" input #username name="username" autocomplete="username" required autofocus; }
                        label { "Password" input #password type="password" name="password" autocomplete="current-password" required; }
                        button.primary type="submit" #sign-in { "Sign in" }
                    }
                }
            }
        }
    }
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
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
    Ok(match auth::sign_in(&state, peer.ip(), username, password.to_string()).await? {
        SignIn::Locked(wait) => form_page(
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            Some(&format!("Too many failed sign-ins. Try again in {} minutes.", wait.div_ceil(60))),
        ),
        SignIn::Wrong => form_page(StatusCode::UNAUTHORIZED, &next, Some("Wrong username or password.")),
        SignIn::Ok { session, .. } => {
            let lifetime = SESSION_LIFETIME.to_std().unwrap_or(Duration::ZERO);
            let mut response = Redirect::to(&next).into_response();
            let h = response.headers_mut();
            h.append(header::SET_COOKIE, auth::session_cookie(Some(&session.token), lifetime).parse().expect("cookie"));
            h.append(
                header::SET_COOKIE,
                format!("{LOGIN_COOKIE}=; HttpOnly; SameSite=Strict; Path=/login; Max-Age=0").parse().expect("cookie"),
            );
            response
        }
    })
}

async fn logout(
    State(state): State<AppState>,
    Signed(who): Signed,
    headers: HeaderMap,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    if let Some(token) = auth::cookie(&headers, auth::SESSION_COOKIE) {
        state.accounts.end_session(&token).map_err(crate::web::ApiError::internal)?;
    }
    Ok(([(header::SET_COOKIE, auth::session_cookie(None, Duration::ZERO))], Redirect::to("/login")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_path(Some("/runs/3?page=2")), "/runs/3?page=2");
        for hostile in ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"] {
            assert_eq!(local_path(Some(hostile)), "/integrations", "{hostile}");
        }
        assert_eq!(local_path(None), "/integrations");
    }
}
