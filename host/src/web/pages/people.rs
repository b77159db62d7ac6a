//! The directory an admin keeps by hand: adding and editing people no
//! integration manages, uploading an existing directory as CSV (checked
//! line by line first), and the values kept against the source (overrides).

use crate::directory::prelude::*;
use crate::web::auth::Scoped;

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use maud::{Markup, html};

use super::{FormData, PageError, PageResult, Section, Signed, SignedOperator, csrf_field, layout, time};
use crate::audit::Action;
use crate::directory::edit::UserEdit;
use crate::directory::roster::{self, LineAction, RosterPlan};
use crate::directory::{Field, NewUser, Override, User, UserId, UserQuery, UserStatus};
use crate::web::AppState;
use crate::web::auth::Client;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/directory/new", get(new_form).post(create))
        .route("/directory/upload", get(upload_form).post(upload))
        .route("/directory/overrides", get(overrides))
        .route("/directory/{id}/edit", get(edit_form).post(edit))
        .route("/directory/{id}/keep", post(keep))
        .route("/directory/{id}/unkeep", post(unkeep))
}

/// The fields a hand-made user has, in the order the form asks for them.
const FORM_FIELDS: [Field; 9] = [
    Field::Email,
    Field::FirstName,
    Field::LastName,
    Field::PreferredName,
    Field::JobTitle,
    Field::Department,
    Field::EmployeeId,
    Field::StartDate,
    Field::Status,
];

/// What the form shows: each field's text and the manager's user id.
struct FormValues {
    fields: Vec<(Field, String)>,
    manager: String,
}

impl FormValues {
    fn blank() -> Self {
        let status = |f: &Field| if *f == Field::Status { UserStatus::Active.as_str().into() } else { String::new() };
        FormValues { fields: FORM_FIELDS.iter().map(|f| (f.clone(), status(f))).collect(), manager: String::new() }
    }

    fn of(user: &NewUser) -> Self {
        FormValues {
            fields: FORM_FIELDS.iter().map(|f| (f.clone(), user.profile.field(f).unwrap_or_default())).collect(),
            manager: user.manager_id.map(|m| m.0.to_string()).unwrap_or_default(),
        }
    }

    /// As submitted, to show again with the error.
    fn submitted(form: &FormData) -> Self {
        FormValues {
            fields: FORM_FIELDS.iter().map(|f| (f.clone(), form.get(&f.name()).unwrap_or_default().into())).collect(),
            manager: form.get("manager").unwrap_or_default().into(),
        }
    }
}

/// The add/edit form, with `error` above it when a save failed.
fn user_form(who: &crate::accounts::Principal, action: &str, values: &FormValues, error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { p.error #form-error role="alert" { "Nothing was saved: " (e) } }
        form.card.user-form method="post" action=(action) {
            (csrf_field(who))
            @for (field, value) in &values.fields {
                @let id = format!("user-{}", field.name());
                label {
                    (field.label()) @if field.required() { " (required)" }
                    @match field {
                        Field::Status => select name=(field.name()) id=(id) {
                            @for s in [UserStatus::Active, UserStatus::PendingStart, UserStatus::Inactive] {
                                option value=(s.as_str()) selected[value == s.as_str()] { (super::status_label(s)) }
                            }
                        },
                        Field::StartDate => input type="date" name=(field.name()) id=(id) value=(value);,
                        Field::Email => input type="email" name=(field.name()) id=(id) value=(value) required;,
                        _ => input type="text" name=(field.name()) id=(id) value=(value) required[field.required()];,
                    }
                }
            }
            label { "Manager (their number, as in the address of their page)"
                input type="number" name="manager" #user-manager value=(values.manager);
            }
            div.actions { button.primary type="submit" #save-user { "Save" } }
        }
    }
}

/// The edit a submitted form asks for.
fn form_edit(form: &FormData) -> Result<UserEdit, String> {
    let mut edit = UserEdit::default();
    for field in FORM_FIELDS.iter().map(|f| f.name()).chain(["manager".into()]) {
        edit.set(&field, form.get(&field).unwrap_or(""))?;
    }
    Ok(edit)
}

async fn new_form(SignedOperator(who): SignedOperator) -> PageResult {
    let body = html! {
        p.breadcrumb { a href="/directory" { "Directory" } " / " }
        h1 { "Add a person" }
        p.muted { "People added here are yours to edit until an HR integration finds them by email; from then on the HR system keeps them up to date." }
        (user_form(&who, "/directory/new", &FormValues::blank(), None))
    };
    Ok(layout("Add a person", &who, Section::Directory, body).into_response())
}

async fn create(
    Scoped(state): Scoped,
    SignedOperator(who): SignedOperator,
    client: Client,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    let store = state.engine.store();
    let attempt = form_edit(&form).and_then(|e| e.create());
    let saved = match &attempt {
        Ok(user) => store.create_user(user).map_err(|e| e.to_string()),
        Err(e) => Err(e.clone()),
    };
    match saved {
        Ok(id) => {
            state.record(&who, client, Action::UserCreated, Some(format!("user {id}")), None);
            Ok(Redirect::to(&format!("/directory/{id}?saved=1")).into_response())
        }
        Err(e) => {
            let body = html! {
                p.breadcrumb { a href="/directory" { "Directory" } " / " }
                h1 { "Add a person" }
                (user_form(&who, "/directory/new", &FormValues::submitted(&form), Some(&e)))
            };
            Ok((axum::http::StatusCode::BAD_REQUEST, layout("Add a person", &who, Section::Directory, body))
                .into_response())
        }
    }
}

fn unmanaged(user: &User) -> Result<(), PageError> {
    match user.managed_by {
        Some(_) => Err(crate::directory::StoreError::Managed(user.id).into()),
        None => Ok(()),
    }
}

async fn edit_form(Scoped(state): Scoped, SignedOperator(who): SignedOperator, Path(id): Path<i64>) -> PageResult {
    let user = state.engine.store().user(UserId(id))?;
    unmanaged(&user)?;
    let current = NewUser { profile: user.profile.clone(), manager_id: user.manager_id };
    let body = html! {
        p.breadcrumb { a href="/directory" { "Directory" } " / " a href={ "/directory/" (id) } { (user.profile.display_name()) } " / " }
        h1 { "Edit " (user.profile.display_name()) }
        p.muted { "To deactivate someone, set the status to Inactive. People are never deleted." }
        (user_form(&who, &format!("/directory/{id}/edit"), &FormValues::of(&current), None))
    };
    Ok(layout("Edit person", &who, Section::Directory, body).into_response())
}

async fn edit(
    Scoped(state): Scoped,
    SignedOperator(who): SignedOperator,
    client: Client,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    let store = state.engine.store();
    let user = store.user(UserId(id))?;
    unmanaged(&user)?;
    let current = NewUser { profile: user.profile.clone(), manager_id: user.manager_id };
    let result = form_edit(&form)
        .and_then(|e| e.apply(&current))
        .and_then(|changed| store.edit_user(user.id, &changed).map_err(|e| e.to_string()));
    match result {
        Ok(()) => {
            state.record(&who, client, Action::UserEdited, Some(format!("user {id}")), None);
            Ok(Redirect::to(&format!("/directory/{id}?saved=1")).into_response())
        }
        Err(e) => {
            let body = html! {
                h1 { "Edit " (user.profile.display_name()) }
                (user_form(&who, &format!("/directory/{id}/edit"), &FormValues::submitted(&form), Some(&e)))
            };
            Ok((axum::http::StatusCode::BAD_REQUEST, layout("Edit person", &who, Section::Directory, body))
                .into_response())
        }
    }
}

const EXAMPLE: &str = "Email,First name,Last name,Job title,Department,Manager email\n\
                       ada@example.com,Ada,Lovelace,CTO,Engineering,\n\
                       alan@example.com,Alan,Turing,Engineer,Engineering,ada@example.com";

fn upload_page(
    who: &crate::accounts::Principal,
    csv: &str,
    checked: Option<&RosterPlan>,
    error: Option<&str>,
) -> Markup {
    html! {
        p.breadcrumb { a href="/directory" { "Directory" } " / " }
        h1 { "Upload an existing directory" }
        p { "Paste (or pick) a CSV file of the people your app already has. The first line names the columns; "
            "each person needs an email, a first and a last name. Nothing is written until you have seen what the file would do." }
        details.help {
            summary { "Columns and an example" }
            p { "Columns, named as here: " @for (i, f) in Field::STANDARD.iter().filter(|f| **f != Field::Manager).enumerate() { @if i > 0 { ", " } q { (f.label()) } } ", and " q { "Manager email" } " (someone in the file or the directory). Status is Active, Inactive or Starts later; dates are written 2026-03-01." }
            pre { (EXAMPLE) }
        }
        @if let Some(e) = error { p.error #upload-error role="alert" { "Nothing was written: " (e) } }
        form.card method="post" action="/directory/upload" {
            (csrf_field(who))
            label { "CSV file" input type="file" accept=".csv,text/csv" #upload-file data-fills="upload-csv"; }
            label { "Contents" textarea name="csv" #upload-csv rows="10" spellcheck="false" { (csv) } }
            div.actions { button.secondary type="submit" name="step" value="check" #upload-check { "Check the file" } }
        }
        @if let Some(plan) = checked {
            section.card #upload-result {
                h2 { "What the file would do" }
                p #upload-summary {
                    (plan.count(LineAction::Create)) " new, " (plan.count(LineAction::Update)) " updated, "
                    (plan.count(LineAction::Unchanged)) " unchanged"
                    @if plan.errors() > 0 { ", " strong { (plan.errors()) " lines to fix" } }
                }
                div.table-wrap {
                    table #upload-lines {
                        thead { tr { th { "Line" } th { "Person" } th { "Email" } th { "Result" } } }
                        tbody {
                            @for l in &plan.lines {
                                tr data-action=(format!("{:?}", l.action).to_lowercase()) {
                                    td { (l.line) }
                                    td { (l.name.as_deref().unwrap_or("")) }
                                    td { (l.email.as_deref().unwrap_or("")) }
                                    td { @match l.action {
                                        LineAction::Create => "will be added",
                                        LineAction::Update => "will be updated",
                                        LineAction::Unchanged => "already up to date",
                                        LineAction::Error => span.error { (l.message.as_deref().unwrap_or("wrong")) },
                                    } }
                                }
                            }
                        }
                    }
                }
                @if plan.errors() == 0 {
                    form method="post" action="/directory/upload" {
                        (csrf_field(who))
                        input type="hidden" name="csv" value=(csv);
                        div.actions { button.primary type="submit" name="step" value="apply" #upload-apply { "Add and update these people" } }
                    }
                } @else {
                    p { "Fix those lines and check the file again; nothing is written while a line is wrong." }
                }
            }
        }
    }
}

async fn upload_form(SignedOperator(who): SignedOperator) -> PageResult {
    Ok(layout("Upload a directory", &who, Section::Directory, upload_page(&who, "", None, None)).into_response())
}

async fn upload(
    Scoped(state): Scoped,
    SignedOperator(who): SignedOperator,
    client: Client,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    let csv = form.all("csv").last().unwrap_or_default().to_string();
    let store = state.engine.store();
    let (everyone, _) = store.users(&UserQuery { limit: u64::MAX >> 1, ..UserQuery::default() })?;
    let plan = match roster::plan(&csv, &everyone) {
        Ok(plan) => plan,
        Err(e) => {
            let page = upload_page(&who, &csv, None, Some(&e));
            return Ok((
                axum::http::StatusCode::BAD_REQUEST,
                layout("Upload a directory", &who, Section::Directory, page),
            )
                .into_response());
        }
    };
    if form.get("step") == Some("apply") && plan.errors() == 0 {
        store.write_roster(&plan.rows)?;
        state.record(&who, client, Action::UsersUploaded, None, Some(format!("{} lines", plan.lines.len())));
        let done = plan.count(LineAction::Create) + plan.count(LineAction::Update);
        return Ok(Redirect::to(&format!("/directory?uploaded={done}")).into_response());
    }
    Ok(layout("Upload a directory", &who, Section::Directory, upload_page(&who, &csv, Some(&plan), None))
        .into_response())
}

/// The field a keep or stop-keeping form names.
fn form_field(form: &FormData) -> Result<Field, PageError> {
    Field::parse(form.get("field").unwrap_or_default()).map_err(PageError::bad_request)
}

/// "Keep this value": the field stays as it is now when syncs run.
async fn keep(
    Scoped(state): Scoped,
    SignedOperator(who): SignedOperator,
    client: Client,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    let field = form_field(&form)?;
    let until = form
        .get("until")
        .map(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d"))
        .transpose()
        .map_err(|_| PageError::bad_request("The end date must be a date, e.g. 2027-03-31."))?;
    state.engine.store().keep(UserId(id), &field, Some(&who.username), until)?;
    state.record(&who, client, Action::ValueKept, Some(format!("user {id}")), Some(field.label().into_owned()));
    Ok(Redirect::to(&format!("/directory/{id}")).into_response())
}

async fn unkeep(
    Scoped(state): Scoped,
    SignedOperator(who): SignedOperator,
    client: Client,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    let field = form_field(&form)?;
    state.engine.store().unkeep(UserId(id), &field)?;
    state.record(&who, client, Action::OverrideRemoved, Some(format!("user {id}")), Some(field.label().into_owned()));
    let back =
        form.get("back").filter(|b| b.starts_with("/directory")).map_or(format!("/directory/{id}"), String::from);
    Ok(Redirect::to(&back).into_response())
}

/// A kept value in words: a manager by name.
pub(super) fn kept_text(store: &dyn DirectoryStore, o: &Override) -> String {
    match (&o.field, &o.value) {
        (Field::Manager, Some(id)) => id
            .parse::<i64>()
            .ok()
            .and_then(|id| store.user(UserId(id)).ok())
            .map_or_else(|| "a removed user".into(), |u| u.profile.display_name()),
        (_, value) => value.clone().unwrap_or_else(|| "(empty)".into()),
    }
}

/// "by ann, until 31 March 2027".
pub(super) fn kept_by(kept_by: Option<&str>, until: Option<chrono::NaiveDate>) -> String {
    let mut text = format!("kept by {}", kept_by.unwrap_or("an admin"));
    if let Some(d) = until {
        text.push_str(&format!(", until {}", d.format("%-d %B %Y")));
    }
    text
}

async fn overrides(Scoped(state): Scoped, Signed(who): Signed) -> PageResult {
    let operator = who.role.allows(crate::accounts::Role::Operator);
    let store = state.engine.store();
    let list = store.overrides(None)?;
    let today = chrono::Utc::now().date_naive();
    let body = html! {
        p.breadcrumb { a href="/directory" { "Directory" } " / " }
        h1 { "Kept values" }
        p { "Values kept here stay as they are when imports run, whatever the HR system says. "
            "Where the HR system now says something else, it is shown; stop keeping a value to let the next import apply the HR system's." }
        @if list.is_empty() { p.empty #no-overrides { "No values are kept. Keep one from a person's page, or with “Revert and keep” on a run." } }
        @else {
            div.table-wrap {
                table #overrides {
                    thead { tr { th { "Person" } th { "Field" } th { "Kept" } th { "The HR system says" } th { "Kept by" } th { span.sr-only { "Actions" } } } }
                    tbody {
                        @for o in &list {
                            @let name = store.user(o.user_id).map(|u| u.profile.display_name()).unwrap_or_default();
                            tr data-user=(o.user_id) data-field=(o.field) data-drift=(o.source.as_ref().is_some_and(|s| s.differs)) {
                                td { a href={ "/directory/" (o.user_id) } { (name) } }
                                td { (o.field.label()) }
                                td.kept { (kept_text(store.as_ref(), o)) }
                                td.source {
                                    @match &o.source {
                                        None => span.muted { "not seen by an import yet" },
                                        Some(s) if s.differs => { span.badge.warn { "differs" } " " (s.value.as_deref().unwrap_or("(empty)")) " " span.muted { "(" (time(s.seen_at)) ")" } },
                                        Some(s) => { span.muted { "the same (" (time(s.seen_at)) ")" } },
                                    }
                                }
                                td {
                                    (kept_by(o.kept_by.as_deref(), o.until))
                                    @if !o.holds_on(today) { " · " strong { "expired" } }
                                }
                                td {
                                    @if operator {
                                        form.inline method="post" action={ "/directory/" (o.user_id) "/unkeep" } {
                                            (csrf_field(&who))
                                            input type="hidden" name="field" value=(o.field);
                                            input type="hidden" name="back" value="/directory/overrides";
                                            button.secondary type="submit" data-remove-override { "Stop keeping" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout("Kept values", &who, Section::Directory, body).into_response())
}
