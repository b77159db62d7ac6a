//! The Directory page (search and pages of users) and a person's page with
//! their reporting line and the history of changes to them.

use crate::directory::prelude::*;
use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::SignedOperator;
use super::{
    FormData, PAGE_SIZE, PageError, PageResult, Section, Signed, change_label, csrf_field, layout, pager, query,
    safe_link, time,
};
use crate::directory::{Field, IntegrationId, Override, StoreError, User, UserId, UserQuery, reporting_line};
use crate::web::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/directory", get(list))
        .route("/directory/invitations", post(invite))
        .route("/directory/{id}", get(person))
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
    page: Option<u64>,
    /// Invitations just queued, and how many were picked.
    sent: Option<u64>,
    picked: Option<u64>,
    /// People just added or updated from an uploaded file.
    uploaded: Option<u64>,
}

/// "Send password email" for the people picked: active people get a new
/// single-use link (any earlier one stops working); others are skipped.
async fn invite(
    State(state): State<AppState>,
    SignedOperator(who): SignedOperator,
    client: crate::web::auth::Client,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    let mut users = Vec::new();
    for id in form.all("user") {
        users.push(UserId(id.parse().map_err(|_| PageError::bad_request(format!("`{id}` is not a user id")))?));
    }
    if users.is_empty() {
        return Err(PageError::bad_request("Pick the people to email with the checkboxes first."));
    }
    let invited = state.engine.store().invite(&users, &state.engine.invite, chrono::Utc::now())?;
    state.engine.mail_queued.notify_one();
    let ids: Vec<String> = invited.iter().map(|u| u.to_string()).collect();
    state.record(&who, client, crate::audit::Action::InvitationsSent, None, Some(format!("users {}", ids.join(", "))));
    let back = form.get("back").filter(|b| b.starts_with("/directory")).unwrap_or("/directory");
    let sep = if back.contains('?') { '&' } else { '?' };
    Ok(Redirect::to(&format!("{back}{sep}sent={}&picked={}", invited.len(), users.len())).into_response())
}

/// Names of the given users, for the manager column.
fn names(store: &dyn DirectoryStore, ids: impl Iterator<Item = UserId>) -> Result<HashMap<UserId, String>, StoreError> {
    let mut names = HashMap::new();
    for id in ids {
        if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(id) {
            match store.user(id) {
                Ok(u) => {
                    slot.insert(u.profile.display_name());
                }
                Err(StoreError::NoUser(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(names)
}

fn integration_names(state: &AppState) -> Result<HashMap<IntegrationId, String>, StoreError> {
    Ok(state.engine.store().integrations()?.into_iter().map(|i| (i.id, i.config.name)).collect())
}

async fn list(State(state): State<AppState>, Signed(who): Signed, Query(q): Query<ListQuery>) -> PageResult {
    let operator = who.role.allows(crate::accounts::Role::Operator);
    let store = state.engine.store();
    let page = q.page.unwrap_or(1).max(1);
    let search = q.q.clone().unwrap_or_default();
    let query_ = UserQuery {
        search: Some(search.trim().to_string()).filter(|s| !s.is_empty()),
        integration: None,
        offset: (page - 1) * PAGE_SIZE,
        limit: PAGE_SIZE,
    };
    let (users, total) = store.users(&query_)?;
    let managers = names(store.as_ref(), users.iter().filter_map(|u| u.manager_id))?;
    let sources = integration_names(&state)?;
    let base = format!("/directory?{}", query(&[("q", &search)]));
    let body = html! {
        h1 { "Directory" }
        @if operator {
            p.actions #directory-actions {
                a.button.secondary href="/directory/new" #add-person { "Add a person" }
                a.button.secondary href="/directory/upload" #upload-directory { "Upload a directory (CSV)" }
                a.button.secondary href="/directory/overrides" #kept-values { "Kept values" }
            }
        }
        @if let Some(n) = q.uploaded { p.ok #upload-done role="status" { "Saved: " (n) " people added or updated. An HR integration's next preview shows who it will match by email." } }
        form.filters method="get" action="/directory" role="search" {
            label { "Search" input #directory-search type="search" name="q" value=(search) placeholder="Name, email, department or employee ID"; }
            button.secondary type="submit" #directory-search-go { "Search" }
        }
        @if let Some(sent) = q.sent {
            p.ok #invite-result {
                "Queued " (sent) " password " (if sent == 1 { "email" } else { "emails" })
                @if q.picked.unwrap_or(sent) > sent { "; " (q.picked.unwrap_or(sent) - sent) " skipped (only active people get one)" }
                ". " a href="/emails" { "See the Emails page." }
            }
        }
        form #invite-form method="post" action="/directory/invitations" {
            (csrf_field(&who))
            input type="hidden" name="back" value=(base);
        }
        div.table-wrap {
            table.users #users {
                thead { tr { th { span.sr-only { "Pick" } } th { "Name" } th { "Email" } th { "Job title" } th { "Department" } th { "Manager" } th { "Status" } th { "Source" } th { "Informed" } } }
                tbody {
                    @for u in &users {
                        tr data-user=(u.id) {
                            td { @if operator { input type="checkbox" name="user" value=(u.id) form="invite-form" aria-label={ "Pick " (u.profile.display_name()) }; } }
                            td { a href={ "/directory/" (u.id) } { (u.profile.display_name()) } }
                            td { (u.profile.email) }
                            td { (u.profile.job_title.as_deref().unwrap_or("")) }
                            td { (u.profile.department.as_deref().unwrap_or("")) }
                            td { @if let Some(m) = u.manager_id { a href={ "/directory/" (m) } { (managers.get(&m).map_or("—", String::as_str)) } } }
                            td { span class={ "badge status " (u.profile.status.as_str()) } { (super::status_label(u.profile.status)) } }
                            td { (source(u, &sources)) }
                            td { @match u.informed_at { Some(t) => (time(t)), None => span.muted { "not yet" } } }
                        }
                    }
                }
            }
        }
        @if users.is_empty() { p.empty { "Nobody matches." } }
        @if operator {
            div.actions {
                button.secondary type="submit" form="invite-form" #send-invitations { "Send password email to the people picked" }
            }
        }
        (pager(&base, page, total))
    };
    Ok(layout("Directory", &who, Section::Directory, body).into_response())
}

fn source(u: &User, sources: &HashMap<IntegrationId, String>) -> String {
    match &u.managed_by {
        Some((i, _)) => sources.get(i).cloned().unwrap_or_else(|| format!("integration {i}")),
        None => "—".into(),
    }
}

#[derive(Deserialize)]
struct PersonQuery {
    saved: Option<u8>,
}

/// One profile row: the value, and whether (and by whom) it is kept.
fn profile_row(
    who: &crate::accounts::Principal,
    user: &User,
    field: &Field,
    value: Markup,
    kept: Option<&Override>,
) -> Markup {
    let operator = who.role.allows(crate::accounts::Role::Operator);
    let keepable = crate::directory::overrides::keepable(field).is_ok();
    html! {
        div data-row=(field) {
            dt { (field.label()) }
            dd data-field=(field) {
                (value)
                @if let Some(o) = kept {
                    " " span.badge.kept title=(super::people::kept_by(o.kept_by.as_deref(), o.until)) { "kept" }
                    span.muted { " " (super::people::kept_by(o.kept_by.as_deref(), o.until)) }
                    @if let Some(s) = o.source.as_ref().filter(|s| s.differs) {
                        span.muted { "; the HR system says " (s.value.as_deref().unwrap_or("(empty)")) }
                    }
                    @if operator {
                        form.inline method="post" action={ "/directory/" (user.id) "/unkeep" } {
                            (csrf_field(who)) input type="hidden" name="field" value=(field);
                            button.link type="submit" data-unkeep=(field) { "Stop keeping" }
                        }
                    }
                } @else if operator && keepable && user.managed_by.is_some() {
                    form.inline method="post" action={ "/directory/" (user.id) "/keep" } {
                        (csrf_field(who)) input type="hidden" name="field" value=(field);
                        button.link type="submit" data-keep=(field) title="Imports will leave this value as it is" { "Keep this value" }
                    }
                }
            }
        }
    }
}

async fn person(
    State(state): State<AppState>,
    Signed(who): Signed,
    Path(id): Path<i64>,
    Query(q): Query<PersonQuery>,
) -> PageResult {
    let store = state.engine.store();
    let user = store.user(UserId(id))?;
    let p = &user.profile;
    let line = reporting_line(store.as_ref(), &user)?;
    let history = store.user_history(user.id)?;
    let sources = integration_names(&state)?;
    let fields = p.fields();
    let kept: HashMap<Field, Override> =
        store.overrides(Some(user.id))?.into_iter().map(|o| (o.field.clone(), o)).collect();
    let operator = who.role.allows(crate::accounts::Role::Operator);
    let manager = line.first();
    let body = html! {
        p.breadcrumb { a href="/directory" { "Directory" } " / " }
        @if q.saved.is_some() { p.ok #saved role="status" { "Saved." } }
        h1 #person-name { (p.display_name()) " " span class={ "badge status " (p.status.as_str()) } { (super::status_label(p.status)) } }
        @if operator && user.managed_by.is_none() {
            p.actions { a.button.secondary href={ "/directory/" (user.id) "/edit" } #edit-person { "Edit" } }
        }
        div.columns {
            section.card {
                h2 { "Profile" }
                dl.profile {
                    @for (field, value) in &fields {
                        @if value.is_some() || kept.contains_key(field) {
                            (profile_row(&who, &user, field, html! { (value.as_deref().unwrap_or("—")) }, kept.get(field)))
                        }
                    }
                    (profile_row(&who, &user, &Field::Manager, html! {
                        @match manager { Some(m) => a href={ "/directory/" (m.id) } { (m.profile.display_name()) }, None => "—" }
                    }, kept.get(&Field::Manager)))
                    div { dt { "Kept up to date by" } dd { @match &user.managed_by { Some(_) => (source(&user, &sources)), None => "nobody: added by hand" } } }
                    @if let Some(url) = p.profile_url.as_deref().and_then(safe_link) {
                        div { dt { "In the HR system" } dd { a href=(url) rel="noreferrer" target="_blank" { "Open in the HR system" } } }
                    }
                    @if let Some((_, s)) = &user.managed_by {
                        div { dt { "Details" } dd { details { summary { "Technical details" } p.muted { "ID in the HR system: " code { (s) } " · user number " (user.id) } } } }
                    }
                    div { dt { "Password email" } dd { @match user.informed_at { Some(t) => { "sent " (time(t)) }, None => "not sent yet" } } }
                }
            }
            section.card {
                h2 { "Reporting line" }
                @if line.is_empty() { p.muted #reporting-line { "Reports to nobody." } }
                @else {
                    ol.reporting-line #reporting-line {
                        @for m in &line {
                            li { a href={ "/directory/" (m.id) } { (m.profile.display_name()) } @if let Some(t) = &m.profile.job_title { span.muted { " · " (t) } } }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "History" }
            @if history.is_empty() { p.muted { "No recorded changes." } }
            ul.history #person-history {
                @for (run, change) in history.iter().rev() {
                    li {
                        @let r = store.run(*run)?;
                        (time(r.finished_at.unwrap_or(r.started_at))) " · "
                        a href={ "/runs/" (run) } { (super::kind_label(r.kind)) " #" (run) } " "
                        span class={ "kind " (change.kind.as_str()) } { (change_label(change.kind)) }
                        ul.fields-inline {
                            @for f in &change.fields {
                                li { strong { (f.field.label()) } " " span.before { (f.before.as_deref().unwrap_or("—")) } " → " span.after { (f.after.as_deref().unwrap_or("—")) } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(&p.display_name(), &who, Section::Directory, body).into_response())
}
