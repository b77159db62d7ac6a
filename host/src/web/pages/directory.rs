//! The Directory page (search and pages of users) and a person's page with
//! their reporting line and the history of changes to them.

use crate::directory::prelude::*;
use crate::web::auth::Scoped;
use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::SignedOperator;
use super::{
    FormData, PAGE_SIZE, PageError, PageResult, Section, Signed, change_label, csrf_field, layout, pager, query,
    safe_link, time,
};
use crate::directory::{
    Field, IntegrationId, Override, StoreError, User, UserId, UserQuery, UserStatus, reporting_line,
};
use crate::web::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/directory", get(list))
        .route("/directory/invitations", post(invite))
        .route("/directory/{id}", get(person))
}

/// The directory's filters, as the page's query string carries them (an
/// empty value is "any").
#[derive(Default, Clone)]
struct Filters {
    q: String,
    status: String,
    department: String,
    manager: String,
    /// `yes` or `no`.
    informed: String,
}

impl Filters {
    fn user_query(&self, offset: u64, limit: u64) -> Result<UserQuery, PageError> {
        let status = match self.status.as_str() {
            "" => None,
            s => Some(UserStatus::parse(s).map_err(PageError::bad_request)?),
        };
        let manager = match self.manager.as_str() {
            "" => None,
            m => Some(UserId(m.parse().map_err(|_| PageError::bad_request(format!("`{m}` is not a person")))?)),
        };
        let informed = match self.informed.as_str() {
            "" => None,
            "yes" => Some(true),
            "no" => Some(false),
            other => return Err(PageError::bad_request(format!("`{other}`: pick yes or no for Informed"))),
        };
        Ok(UserQuery {
            search: Some(self.q.trim().to_string()).filter(|s| !s.is_empty()),
            integration: None,
            status,
            department: Some(self.department.clone()).filter(|d| !d.is_empty()),
            manager,
            informed,
            offset,
            limit,
        })
    }

    fn pairs(&self) -> [(&'static str, &str); 5] {
        [
            ("q", &self.q),
            ("status", &self.status),
            ("department", &self.department),
            ("manager", &self.manager),
            ("informed", &self.informed),
        ]
    }

    fn any(&self) -> bool {
        self.pairs().iter().any(|(_, v)| !v.is_empty())
    }

    /// These filters narrowed to the active people not yet sent a password
    /// email; `None` when the filters already exclude them.
    fn uninformed(&self) -> Option<Filters> {
        let active = UserStatus::Active.as_str();
        let excluded = (!self.status.is_empty() && self.status != active) || self.informed == "yes";
        (!excluded).then(|| Filters { status: active.into(), informed: "no".into(), ..self.clone() })
    }
}

/// The page's query: the filters (not flattened in: numbers inside a
/// flattened struct do not survive URL decoding) and what just happened.
#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    department: String,
    #[serde(default)]
    manager: String,
    #[serde(default)]
    informed: String,
    page: Option<u64>,
    /// Invitations just queued, and how many were picked.
    sent: Option<u64>,
    picked: Option<u64>,
    /// The last "Send" named nobody.
    none: Option<u8>,
    /// People just added or updated from an uploaded file.
    uploaded: Option<u64>,
}

/// Everyone a query matches, across pages.
fn everyone(store: &dyn DirectoryStore, query: UserQuery) -> Result<Vec<User>, StoreError> {
    Ok(store.users(&UserQuery { offset: 0, limit: u64::MAX >> 1, ..query })?.0)
}

/// "Send password email": first a page that says who gets one (only active
/// people do; anyone's earlier link stops working), then, confirmed, queues
/// them. People come picked with the checkboxes, or as "everyone active not
/// yet informed" among the directory's current filters.
async fn invite(
    Scoped(state): Scoped,
    SignedOperator(who): SignedOperator,
    client: crate::web::auth::Client,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    let back = form.get("back").filter(|b| b.starts_with("/directory")).unwrap_or("/directory").to_string();
    let sep = if back.contains('?') { '&' } else { '?' };
    let store = state.engine.store();
    let picked: Vec<User> = if form.get("scope") == Some("uninformed") {
        match filters_of(&form).uninformed() {
            Some(filters) => everyone(store.as_ref(), filters.user_query(0, 0)?)?,
            None => Vec::new(),
        }
    } else {
        let mut users = Vec::new();
        for id in form.all("user") {
            let id = id.parse().map_err(|_| PageError::bad_request(format!("`{id}` is not a user id")))?;
            users.push(store.user(UserId(id))?);
        }
        users
    };
    if picked.is_empty() {
        return Ok(Redirect::to(&format!("{back}{sep}none=1")).into_response());
    }
    if form.get("confirm") != Some("yes") {
        return Ok(layout("Send password emails", &who, Section::Directory, confirm_invite(&who, &back, &picked))
            .into_response());
    }
    let ids: Vec<UserId> = picked.iter().map(|u| u.id).collect();
    let invited = store.invite(&ids, &state.engine.invitations()?, chrono::Utc::now())?;
    state.engine.mail_queued.notify_one();
    let listed: Vec<String> = invited.iter().map(|u| u.to_string()).collect();
    state.record(
        &who,
        client,
        crate::audit::Action::InvitationsSent,
        None,
        Some(format!("users {}", listed.join(", "))),
    );
    Ok(Redirect::to(&format!("{back}{sep}sent={}&picked={}", invited.len(), ids.len())).into_response())
}

fn filters_of(form: &FormData) -> Filters {
    let get = |k: &str| form.get(k).unwrap_or_default().to_string();
    Filters {
        q: get("q"),
        status: get("status"),
        department: get("department"),
        manager: get("manager"),
        informed: get("informed"),
    }
}

/// The confirmation: how many get an email, who is skipped and why, and
/// whose earlier link stops working.
fn confirm_invite(who: &crate::accounts::Principal, back: &str, picked: &[User]) -> Markup {
    const LISTED: usize = 25;
    let (sending, skipped): (Vec<&User>, Vec<&User>) =
        picked.iter().partition(|u| u.profile.status == UserStatus::Active);
    let again = sending.iter().filter(|u| u.informed_at.is_some()).count();
    let people = |n: usize| if n == 1 { "1 person".to_string() } else { format!("{n} people") };
    html! {
        p.breadcrumb { a href=(back) { "Directory" } " / " }
        h1 { "Send password emails" }
        section.card #invite-confirm {
            @if sending.is_empty() {
                p #invite-count { "Nobody you picked can get a password email: only active people get one." }
            } @else {
                p #invite-count { strong { "Send a password email to " (people(sending.len())) "?" } }
                ul.names {
                    @for u in sending.iter().take(LISTED) { li { (u.profile.display_name()) " · " span.muted { (u.profile.email) } } }
                    @if sending.len() > LISTED { li.muted { "and " (sending.len() - LISTED) " more" } }
                }
                @if again > 0 {
                    p.warn { (people(again)) " already got one: their earlier link stops working." }
                }
            }
            @if !skipped.is_empty() {
                p.muted #invite-skipped { (people(skipped.len())) " skipped: not active." }
            }
            form method="post" action="/directory/invitations" {
                (csrf_field(who))
                input type="hidden" name="back" value=(back);
                input type="hidden" name="confirm" value="yes";
                @for u in &sending { input type="hidden" name="user" value=(u.id); }
                p.actions {
                    @if !sending.is_empty() {
                        button type="submit" #invite-confirm-send { "Send " (sending.len()) (if sending.len() == 1 { " email" } else { " emails" }) }
                    }
                    a.button.secondary href=(back) #invite-cancel { "Cancel" }
                }
            }
        }
    }
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

/// A `<select>` of the filter `name`: "Any" and the given values with labels.
fn filter_select<'a>(
    label: &str,
    name: &str,
    current: &str,
    options: impl Iterator<Item = (String, &'a str)>,
) -> Markup {
    html! {
        label {
            (label)
            select name=(name) id={ "filter-" (name) } {
                option value="" { "Any" }
                @for (value, text) in options {
                    option value=(value) selected[value == current] { (text) }
                }
            }
        }
    }
}

async fn list(Scoped(state): Scoped, Signed(who): Signed, Query(q): Query<ListQuery>) -> PageResult {
    let operator = who.role.allows(crate::accounts::Role::Operator);
    let store = state.engine.store();
    let page = q.page.unwrap_or(1).max(1);
    let filters = &Filters {
        q: q.q.clone(),
        status: q.status.clone(),
        department: q.department.clone(),
        manager: q.manager.clone(),
        informed: q.informed.clone(),
    };
    let (users, total) = store.users(&filters.user_query((page - 1) * PAGE_SIZE, PAGE_SIZE)?)?;
    // Everyone "Email everyone not yet informed" would reach, on every page.
    let uninformed = match filters.uninformed() {
        Some(f) => store.users(&f.user_query(0, 1)?)?.1,
        None => 0,
    };
    let facets = store.facets()?;
    let managers = names(store.as_ref(), users.iter().filter_map(|u| u.manager_id))?;
    let sources = integration_names(&state)?;
    let base = format!("/directory?{}", query(&filters.pairs()));
    let statuses = [UserStatus::Active, UserStatus::PendingStart, UserStatus::Inactive];
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
        form.filters #directory-filters method="get" action="/directory" role="search" {
            label { "Search" input #directory-search type="search" name="q" value=(filters.q) placeholder="Name, email, department or employee ID"; }
            (filter_select("Status", "status", &filters.status, statuses.iter().map(|s| (s.as_str().to_string(), super::status_label(*s)))))
            (filter_select("Department", "department", &filters.department, facets.departments.iter().map(|d| (d.clone(), d.as_str()))))
            (filter_select("Manager", "manager", &filters.manager, facets.managers.iter().map(|(id, n)| (id.to_string(), n.as_str()))))
            (filter_select("Password email", "informed", &filters.informed, [("no".to_string(), "Not sent yet"), ("yes".to_string(), "Sent")].into_iter()))
            button.secondary type="submit" #directory-search-go { "Search" }
            @if filters.any() { a href="/directory" #clear-filters { "Clear filters" } }
        }
        @if let Some(sent) = q.sent {
            p.ok #invite-result role="status" {
                "Queued " (sent) " password " (if sent == 1 { "email" } else { "emails" })
                @if q.picked.unwrap_or(sent) > sent { "; " (q.picked.unwrap_or(sent) - sent) " skipped (only active people get one)" }
                ". " a href="/emails" { "See the Emails page." }
            }
        }
        @if q.none.is_some() {
            p.warn #invite-none role="status" {
                "Nobody was picked, so no email was sent. Tick the box next to each person to email, or use “Email everyone not yet informed”."
            }
        }
        @if operator {
            form.bulk-bar #invite-form method="post" action="/directory/invitations" {
                (csrf_field(&who))
                input type="hidden" name="back" value=(base);
                @for (k, v) in filters.pairs() { input type="hidden" name=(k) value=(v); }
                span.muted #picked-count data-picked-count="invite-form" aria-live="polite" { "Tick people to email them." }
                button.secondary type="submit" name="scope" value="picked" #send-invitations { "Send password email to the people picked…" }
                @if uninformed > 0 {
                    button.secondary type="submit" name="scope" value="uninformed" #invite-uninformed {
                        "Email everyone not yet informed (" (uninformed) ")…"
                    }
                }
            }
        }
        p.muted #directory-total {
            @match (total == 1, filters.any()) {
                (true, true) => "1 person matches",
                (false, true) => { (total) " people match" },
                (true, false) => "1 person",
                (false, false) => { (total) " people" },
            }
        }
        div.table-wrap {
            table.users #users {
                thead { tr {
                    th { @if operator { input type="checkbox" #pick-all data-pick-all="invite-form" aria-label="Pick everyone on this page"; } }
                    th { "Name" } th { "Email" } th { "Job title" } th { "Department" } th { "Manager" } th { "Status" } th { "Source" } th { "Password email" }
                } }
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
        @if users.is_empty() { p.empty { @if filters.any() { "Nobody matches these filters." } @else { "Nobody is in the directory yet." } } }
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
    Scoped(state): Scoped,
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
