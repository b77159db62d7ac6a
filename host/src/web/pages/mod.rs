//! The admin pages, rendered on the server with maud.
//!
//! maud escapes every interpolated value, so a person called `<script>` is
//! text; the Content-Security-Policy of [`super::security_headers`] allows
//! only the app's own script and stylesheet on top of that. Pages work
//! without a build step: plain forms that post and redirect, plus a small
//! hand-written script (`assets/app.js`) for confirmation dialogs and
//! progress polling. Every form that changes something carries the
//! session's CSRF token.

mod account;
mod directory;
mod emails;
mod integrations;
mod people;
mod runs;
mod session;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::auth::{self, SESSION_COOKIE};
use super::{ApiError, AppState};
use crate::accounts::{Principal, Role};
use crate::directory::{ChangeKind, ChangeRecord, Counts, Field, Run, RunKind, RunState, StoreError};
use crate::sync::SyncError;

/// Rows per page in every table.
pub const PAGE_SIZE: u64 = 50;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/integrations") }))
        .merge(session::routes())
        .merge(integrations::routes())
        .merge(runs::routes())
        .merge(directory::routes())
        .merge(people::routes())
        .merge(emails::routes())
        .merge(account::routes())
}

/// The signed-in account of a page request; anyone else is sent to the
/// sign-in page, and comes back to where they were going afterwards.
pub(in crate::web) async fn signed(parts: &mut Parts, state: &AppState) -> Result<Principal, Response> {
    // Pages take sessions only: a principal of an API token is not reused.
    if let Some(auth::Resolved(p)) = parts.extensions.get::<auth::Resolved>()
        && p.token_id.is_none()
    {
        return Ok(p.clone());
    }
    let session = match auth::cookie(&parts.headers, SESSION_COOKIE) {
        Some(token) => {
            state.accounts.session(&token).map_err(|e| PageError::from(ApiError::internal(e)).into_response())?
        }
        None => None,
    };
    if let Some(p) = &session {
        parts.extensions.insert(auth::Resolved(p.clone()));
    }
    session.ok_or_else(|| {
        let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let to =
            if parts.method == Method::GET { format!("/login?{}", query(&[("next", next)])) } else { "/login".into() };
        Redirect::to(&to).into_response()
    })
}

macro_rules! page_role {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        pub struct $name(pub Principal);

        impl FromRequestParts<AppState> for $name {
            type Rejection = Response;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
                let who = signed(parts, state).await?;
                if !who.role.allows($role) {
                    return Err(PageError::new(
                        StatusCode::FORBIDDEN,
                        format!(
                            "This page needs the {} role, and you are signed in as {} ({}). Ask an admin if you need it.",
                            $role.as_str(),
                            who.username,
                            who.role.as_str()
                        ),
                    )
                    .into_response());
                }
                Ok($name(who))
            }
        }
    };
}

page_role!(
    /// Any signed-in account: reading integrations, runs and the directory.
    Signed,
    Role::Viewer
);
page_role!(
    /// An operator or admin: previews, imports, reverts, cancels, password emails.
    SignedOperator,
    Role::Operator
);
page_role!(
    /// An admin: settings, accounts, the audit log.
    SignedAdmin,
    Role::Admin
);

/// The page for an address that is not one.
pub fn not_found() -> PageError {
    PageError::new(StatusCode::NOT_FOUND, "There is no such page. Start again from the Integrations page.")
}

/// A submitted form: repeated keys kept (checkbox groups), order kept.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct FormData(Vec<(String, String)>);

impl FormData {
    /// The last value of `key`, trimmed; `None` when absent or empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    }

    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn checked(&self, key: &str) -> bool {
        self.all(key).any(|v| v == "true" || v == "on")
    }

    /// Rejects the form unless it carries the session's CSRF token.
    pub fn verify(&self, who: &Principal) -> Result<(), PageError> {
        match (self.get("csrf"), who.csrf.as_deref()) {
            (Some(sent), Some(expected)) if sent == expected => Ok(()),
            _ => Err(PageError::new(
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from this site. Go back, reload the page and try again.",
            )),
        }
    }

    pub fn number<T: std::str::FromStr>(&self, key: &str, what: &str) -> Result<Option<T>, PageError> {
        self.get(key)
            .map(|v| v.parse().map_err(|_| PageError::bad_request(format!("{what} must be a number, not `{v}`"))))
            .transpose()
    }
}

/// An error shown as a page: what went wrong and what to do.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        PageError { status, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError { status: e.status, message: e.message }
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<SyncError> for PageError {
    fn from(e: SyncError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = html! {
            (DOCTYPE)
            html lang="en" {
                head { (head(title)) }
                body {
                    header.top { a.brand href="/integrations" { "hrsync" } }
                    main {
                        section.card.error-page {
                            h1 { (title) }
                            p.error #error-message { (self.message) }
                            p { a href="/integrations" { "Integrations" } " · " a href="/directory" { "Directory" } }
                        }
                    }
                }
            }
        };
        (self.status, body).into_response()
    }
}

pub type PageResult<T = Response> = Result<T, PageError>;

/// Where the page is, for the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Integrations,
    Directory,
    Emails,
    Accounts,
    Audit,
    Account,
}

fn head(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · hrsync" }
        link rel="stylesheet" href="/static/app.css";
        link rel="icon" type="image/svg+xml" href="/static/favicon.svg";
        script src="/static/app.js" defer {}
    }
}

/// The frame of every signed-in page.
pub fn layout(title: &str, who: &Principal, section: Section, body: Markup) -> Markup {
    let current = |s: Section| if s == section { Some("page") } else { None };
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body {
                header.top {
                    a.brand href="/integrations" { "hrsync" }
                    nav {
                        a href="/integrations" aria-current=[current(Section::Integrations)] { "Integrations" }
                        a href="/directory" aria-current=[current(Section::Directory)] { "Directory" }
                        @if who.role.allows(Role::Operator) {
                            a href="/emails" aria-current=[current(Section::Emails)] { "Emails" }
                        }
                        @if who.role.allows(Role::Admin) {
                            a href="/accounts" aria-current=[current(Section::Accounts)] { "Accounts" }
                            a href="/audit" aria-current=[current(Section::Audit)] { "Audit log" }
                        }
                    }
                    form.signout method="post" action="/logout" {
                        (csrf_field(who))
                        a.who href="/account" aria-current=[current(Section::Account)] title={ "Your account (" (who.role.as_str()) ")" } { (who.username) }
                        button.link type="submit" { "Sign out" }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub fn csrf_field(who: &Principal) -> Markup {
    html! { input type="hidden" name="csrf" value=(who.csrf.as_deref().unwrap_or_default()); }
}

/// A URL-encoded query string of the non-empty pairs.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    q.finish()
}

pub fn time(t: DateTime<Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M UTC")) } }
}

pub fn duration(run: &Run) -> String {
    match run.finished_at {
        Some(end) => {
            let ms = (end - run.started_at).num_milliseconds().max(0);
            if ms < 1000 { format!("{ms} ms") } else { format!("{:.1} s", ms as f64 / 1000.0) }
        }
        None => "—".into(),
    }
}

pub fn state_badge(state: RunState) -> Markup {
    let (class, label) = match state {
        RunState::Queued => ("neutral", "queued"),
        RunState::Running => ("neutral", "running"),
        RunState::Succeeded => ("good", "succeeded"),
        RunState::Failed => ("bad", "failed"),
        RunState::Blocked => ("warn", "blocked"),
        RunState::Cancelled => ("neutral", "cancelled"),
        RunState::Interrupted => ("bad", "interrupted"),
    };
    html! { span class={ "badge " (class) } { (label) } }
}

/// A field as admins read it ("Job title"); an issue's field is text, and
/// what is not a field name stays as it is.
pub fn field_label(name: &str) -> String {
    crate::model::Field::parse(name).map_or_else(|_| name.to_string(), |f| f.label().into_owned())
}

pub fn kind_label(kind: RunKind) -> &'static str {
    match kind {
        RunKind::Preview => "Preview",
        RunKind::Import => "Import",
        RunKind::Revert => "Revert",
    }
}

/// The counts of a run as tiles.
pub fn counts(c: &Counts) -> Markup {
    let tiles = [
        ("created", "New people", c.created),
        ("updated", "Updated", c.updated),
        ("manager_changes", "Manager changes", c.manager_changes),
        ("deactivated", "Deactivated", c.deactivated),
        ("reactivated", "Reactivated", c.reactivated),
        ("linked", "Matched by email", c.linked),
        ("missing", "No longer in the source", c.missing),
        ("unchanged", "Unchanged", c.unchanged),
        ("kept", "Kept values", c.kept),
        ("issues", "Issues", c.issues),
    ];
    html! {
        dl.counts {
            @for (key, label, n) in tiles {
                div class={ "count" @if n == 0 { " zero" } } data-count=(key) { dt { (label) } dd { (n) } }
            }
        }
    }
}

pub fn change_label(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Create => "new",
        ChangeKind::Update => "update",
        ChangeKind::Deactivate => "deactivate",
        ChangeKind::Reactivate => "reactivate",
        ChangeKind::Link => "matched by email",
        ChangeKind::Missing => "no longer in the source",
        ChangeKind::Restore => "restored",
    }
}

/// A status in an admin's words.
pub fn status_label(status: crate::directory::UserStatus) -> &'static str {
    match status {
        crate::directory::UserStatus::Active => "Active",
        crate::directory::UserStatus::PendingStart => "Starts later",
        crate::directory::UserStatus::Inactive => "Inactive",
    }
}

pub const CHANGE_KINDS: [ChangeKind; 7] = [
    ChangeKind::Create,
    ChangeKind::Update,
    ChangeKind::Deactivate,
    ChangeKind::Reactivate,
    ChangeKind::Link,
    ChangeKind::Missing,
    ChangeKind::Restore,
];

/// Per person, the field-level before → after; optionally a button that
/// opens the revert dialog for that person.
pub fn change_list(changes: &[ChangeRecord], revertable: bool) -> Markup {
    html! {
        @if changes.is_empty() {
            p.empty { "No changes match." }
        }
        ul.changes {
            @for c in changes {
                li.change data-kind=(c.kind.as_str()) {
                    details {
                        summary {
                            span class={ "kind " (c.kind.as_str()) } { (change_label(c.kind)) }
                            " "
                            span.name { (c.name) }
                            span.fields-summary {
                                (c.fields.iter().map(|f| f.field.label()).collect::<Vec<_>>().join(", "))
                            }
                        }
                        table.fields {
                            thead { tr { th { "Field" } th { "Before" } th { "After" } } }
                            tbody {
                                @for f in &c.fields {
                                    tr {
                                        td { (f.field.label()) }
                                        td.before { (f.before.as_deref().unwrap_or("—")) }
                                        td.after {
                                            (f.after.as_deref().unwrap_or("—"))
                                            @if let (true, Some(u)) = (revertable && f.field != Field::Status, c.user_id) {
                                                " "
                                                button.link type="button" data-dialog="revert-field-dialog" data-user-id=(u)
                                                    data-user-name=(c.name) data-field=(f.field) data-field-label=(f.field.label()) { "Put back…" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        p.change-links {
                            @if let Some(u) = c.user_id {
                                a href={ "/directory/" (u) } { "Open person" }
                                @if revertable {
                                    " "
                                    button.secondary type="button" data-dialog="revert-person-dialog"
                                        data-user-id=(u) data-user-name=(c.name) { "Revert this person…" }
                                }
                            }
                            @if let Some(s) = &c.source_id { span.muted { " source id " (s) } }
                        }
                    }
                }
            }
        }
    }
}

/// "Page 2 of 7" with previous/next links; `base` is the path with its
/// query but without `page`.
pub fn pager(base: &str, page: u64, total: u64) -> Markup {
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let sep = if base.contains('?') { '&' } else { '?' };
    html! {
        nav.pager aria-label="Pages" {
            @if page > 1 { a rel="prev" href={ (base) (sep) "page=" (page - 1) } { "← Previous" } }
            span { "Page " (page) " of " (pages) " · " (total) " in all" }
            @if page < pages { a rel="next" href={ (base) (sep) "page=" (page + 1) } { "Next →" } }
        }
    }
}

/// A modal confirmation; `app.js` opens it from buttons naming it in
/// `data-dialog` and copies their `data-*` values into `data-fill` slots.
pub fn dialog(id: &str, title: &str, action: &str, who: &Principal, confirm: &str, body: Markup) -> Markup {
    html! {
        dialog id=(id) aria-labelledby={ (id) "-title" } {
            form method="post" action=(action) {
                (csrf_field(who))
                h2 id={ (id) "-title" } { (title) }
                (body)
                div.actions {
                    button.secondary type="button" data-close { "Cancel" }
                    button.primary type="submit" id={ (id) "-confirm" } { (confirm) }
                }
            }
        }
    }
}

/// A progress indicator `app.js` keeps current by polling the run, and
/// reloads the page when the run ends.
pub fn progress(run: &Run, fetched: Option<crate::sync::Progress>) -> Markup {
    let text = match fetched {
        Some(p) if p.records > 0 => format!("Fetched {} people ({} pages)…", p.records, p.pages),
        _ => "Starting…".to_string(),
    };
    html! {
        div.progress data-poll-run=(run.id) role="status" {
            progress {}
            span data-progress { (text) }
        }
    }
}

/// Two-letter initials for a connector's icon.
pub fn initials(name: &str) -> String {
    let words: Vec<&str> = name.split_whitespace().collect();
    let letters: String = match words.as_slice() {
        [a, b, ..] => a.chars().take(1).chain(b.chars().take(1)).collect(),
        [a] => a.chars().take(2).collect(),
        [] => "?".into(),
    };
    letters.to_uppercase()
}

/// Only web links are rendered as links: a source could send `javascript:`.
pub fn safe_link(url: &str) -> Option<&str> {
    (url.starts_with("https://") || url.starts_with("http://")).then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolated_text_is_escaped() {
        let who = Principal {
            admin_id: 1,
            username: "<b>admin</b>".into(),
            role: Role::Admin,
            csrf: Some("t\"ok".into()),
            token_id: None,
            tenant: crate::model::TenantId::DEFAULT,
        };
        let page =
            layout("<script>alert(1)</script>", &who, Section::Directory, html! { p { ("<img src=x onerror=1>") } })
                .into_string();
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("&lt;img src=x onerror=1&gt;"));
        assert!(page.contains("&lt;b&gt;admin&lt;/b&gt;"));
        assert!(page.contains("value=\"t&quot;ok\""));
    }

    #[test]
    fn only_web_links_are_links() {
        assert_eq!(safe_link("https://acme.personio.de/x"), Some("https://acme.personio.de/x"));
        assert_eq!(safe_link("javascript:alert(1)"), None);
        assert_eq!(safe_link("data:text/html,hi"), None);
    }

    #[test]
    fn pager_counts_pages_and_links_neighbours() {
        let html = pager("/directory?q=a", 2, 120).into_string();
        assert!(html.contains("Page 2 of 3"), "{html}");
        assert!(html.contains("/directory?q=a&amp;page=1") && html.contains("/directory?q=a&amp;page=3"));
        let html = pager("/directory", 1, 0).into_string();
        assert!(html.contains("Page 1 of 1") && !html.contains("rel=\"next\""));
    }

    #[test]
    fn forms_keep_repeated_keys_and_check_csrf() {
        let form = FormData(vec![
            ("csrf".into(), "tok".into()),
            ("s".into(), "a".into()),
            ("s".into(), "b".into()),
            ("f".into(), "true".into()),
        ]);
        assert_eq!(form.all("s").collect::<Vec<_>>(), ["a", "b"]);
        assert!(form.checked("f") && !form.checked("g"));
        let who = |csrf: &str| Principal {
            admin_id: 1,
            username: "a".into(),
            role: Role::Admin,
            csrf: Some(csrf.into()),
            token_id: None,
            tenant: crate::model::TenantId::DEFAULT,
        };
        assert!(form.verify(&who("tok")).is_ok());
        assert_eq!(form.verify(&who("other")).unwrap_err().status, StatusCode::FORBIDDEN);
        assert!(FormData::default().verify(&who("tok")).is_err());
    }

    #[test]
    fn initials_take_two_letters() {
        assert_eq!(initials("Personio"), "PE");
        assert_eq!(initials("CSV export"), "CE");
        assert_eq!(initials(""), "?");
    }
}
