//! The Integrations page and, per integration, the Configuration, Preview
//! and History tabs. The configuration form is generated from the settings
//! schema the connector's `describe` returns, so every connector gets the
//! same pages.

use crate::web::auth::Scoped;
use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    CHANGE_KINDS, FormData, PAGE_SIZE, PageError, PageResult, Section, Signed, SignedAdmin, SignedOperator,
    change_label, change_list, counts, csrf_field, dialog, duration, field_label, initials, kind_label, layout, pager,
    progress, query, state_badge, time,
};
use crate::accounts::{Principal, Role};
use crate::audit::Action;
use crate::directory::{
    ChangeFilter, ChangeKind, Integration, IntegrationConfig, IntegrationId, Run, RunFilter, RunId, RunKind, RunState,
};
use crate::model::{CheckReport, SettingKind, SettingSpec, SourceAttribute};
use crate::runtime::Connector;
use crate::sync::engine::RunRequest;
use crate::web::api::{IntegrationInput, config_from};
use crate::web::auth::Client;
use crate::web::{AppState, CheckOutcome};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/integrations", get(list).post(create))
        .route("/integrations/new", get(new_form))
        .route("/integrations/{id}", get(first_tab))
        .route("/integrations/{id}/configuration", get(configuration).post(save))
        .route("/integrations/{id}/webhooks", post(webhooks))
        .route("/integrations/{id}/preview", get(preview_tab).post(start_preview))
        .route("/integrations/{id}/import", post(start_import))
        .route("/integrations/{id}/history", get(history))
}

/// An integration opens on the tab its reader may use first.
async fn first_tab(Signed(who): Signed, Path(id): Path<i64>) -> Redirect {
    let tab = if who.role.allows(Role::Admin) { "configuration" } else { "preview" };
    Redirect::to(&format!("/integrations/{id}/{tab}"))
}

async fn list(Scoped(state): Scoped, Signed(who): Signed) -> PageResult {
    let store = state.engine.store();
    let integrations = store.integrations()?;
    let mut rows = Vec::new();
    for i in &integrations {
        let last = store.runs(Some(i.id), 0, 1)?.into_iter().next();
        let connector = state.engine.connector(&i.config.connector_id).ok();
        let schedule = store.schedule(i.id)?.filter(|_| i.config.auto_import);
        rows.push((i, connector, last, schedule));
    }
    let body = html! {
        h1 { "Integrations" }
        p.lead { "hrsync imports people and reporting lines from your HR system into the directory. Each integration runs a sandboxed connector." }
        section {
            h2 { "Your integrations" }
            @if rows.is_empty() { p.empty { "None yet: add one from the connectors below." } }
            ul.cards {
                @for (i, connector, last, schedule) in &rows {
                    li.card.integration {
                        span.icon aria-hidden="true" { (initials(connector.map_or(&i.config.connector_id, |c| &c.info.name))) }
                        div {
                            h3 { a href={ "/integrations/" (i.id) } { (i.config.name) } }
                            p.muted {
                                (connector.map_or(i.config.connector_id.clone(), |c| format!("{} {}", c.info.name, c.info.version)))
                                " · "
                                @if i.config.auto_import { "automatic imports every " (interval_label(i.config.interval_minutes)) } @else { "manual imports only" }
                            }
                            @if connector.is_none() { p.error { "Its connector `" (i.config.connector_id) "` is not loaded." } }
                            @if let Some(s) = schedule {
                                @if s.failures >= crate::schedule::ALERT_AFTER || (s.failures > 0 && last.as_ref().is_some_and(|r| r.state == RunState::Blocked)) {
                                    p.warn data-warning=(i.id) {
                                        strong { "Automatic imports need attention: " }
                                        (s.failures) " in a row did not apply. "
                                        (s.last_error.as_deref().unwrap_or_default())
                                    }
                                }
                                p.muted { "Next automatic check " (time(s.next_run_at)) }
                            }
                            p {
                                @match last {
                                    Some(run) => {
                                        "Last run: " (kind_label(run.kind)) " " (state_badge(run.state)) " " (time(run.started_at))
                                        @if matches!(run.state, RunState::Failed | RunState::Blocked) {
                                            " " span.badge.warn title=(run.error.clone().unwrap_or_default()) { "needs attention" }
                                        }
                                    }
                                    None => { span.muted { "Never run" } }
                                }
                            }
                            p.tab-links {
                                @if who.role.allows(Role::Admin) { a href={ "/integrations/" (i.id) "/configuration" } { "Configuration" } }
                                a href={ "/integrations/" (i.id) "/preview" } { "Preview" }
                                a href={ "/integrations/" (i.id) "/history" } { "History" }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Connectors" }
            ul.cards {
                @for c in state.engine.connectors() {
                    @let configured = integrations.iter().filter(|i| i.config.connector_id == c.info.id).count();
                    li.card.connector data-connector=(c.info.id) {
                        span.icon aria-hidden="true" { (initials(&c.info.name)) }
                        div {
                            h3 { (c.info.name) " " span.muted { (c.info.version) } }
                            p { (c.info.description) }
                            p.muted {
                                @if configured == 0 { "Not configured" } @else { (configured) " configured" }
                                " · contract " (c.wit_version)
                            }
                            @if who.role.allows(Role::Admin) {
                                a.button href={ "/integrations/new?" (query(&[("connector", &c.info.id)])) } { "Add integration" }
                            }
                        }
                    }
                }
            }
            @if !state.engine.failed_connectors.is_empty() {
                h3 { "Not loaded" }
                p.muted { "These components were found in the connectors folder but could not be loaded; everything else works without them." }
                ul.cards {
                    @for f in &state.engine.failed_connectors {
                        li.card.connector-failed {
                            div {
                                p { strong { (f.origin) } }
                                p.error { (f.reason) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout("Integrations", &who, Section::Integrations, body).into_response())
}

fn interval_label(minutes: u32) -> String {
    if minutes.is_multiple_of(60) { format!("{} h", minutes / 60) } else { format!("{minutes} min") }
}

const INTERVALS: [u32; 10] = [5, 10, 15, 30, 60, 120, 240, 360, 720, 1440];

/// The tabs of one integration; Configuration is for admins.
fn tabs(i: &Integration, active: &str, who: &Principal) -> Markup {
    let tab = |name: &str, label: &str| {
        html! {
            a href={ "/integrations/" (i.id) "/" (name) } aria-current=[(name == active).then_some("page")] { (label) }
        }
    };
    html! {
        p.breadcrumb { a href="/integrations" { "Integrations" } " / " }
        h1 { (i.config.name) }
        nav.tabs {
            @if who.role.allows(Role::Admin) { (tab("configuration", "Configuration")) }
            (tab("preview", "Preview"))
            (tab("history", "History"))
        }
    }
}

#[derive(Deserialize)]
struct NewQuery {
    connector: String,
}

async fn new_form(Scoped(state): Scoped, SignedAdmin(who): SignedAdmin, Query(q): Query<NewQuery>) -> PageResult {
    let connector = state.engine.connector(&q.connector)?;
    let mut config = IntegrationConfig::new(&connector.info.id, &connector.info.name);
    config.grants = connector.info.default_hosts.clone();
    let mail = mail_setting(&state, None)?;
    let body = html! {
        p.breadcrumb { a href="/integrations" { "Integrations" } " / " }
        h1 { "Add " (connector.info.name) }
        (config_form(&who, connector, &config, None, None, None, &mail))
    };
    Ok(layout("Add integration", &who, Section::Integrations, body).into_response())
}

#[derive(Deserialize)]
struct ConfigurationQuery {
    /// The settings were just saved.
    saved: Option<u8>,
    /// Webhooks were just turned `on` or `off`.
    webhooks: Option<String>,
}

async fn configuration(
    Scoped(state): Scoped,
    SignedAdmin(who): SignedAdmin,
    Path(id): Path<i64>,
    Query(q): Query<ConfigurationQuery>,
) -> PageResult {
    let integration = state.engine.store().integration(IntegrationId(id))?;
    let connector = state.engine.connector(&integration.config.connector_id)?;
    let check = state.last_check(integration.id);
    let mail = mail_setting(&state, None)?;
    let body = html! {
        (tabs(&integration, "configuration", &who))
        @if q.saved.is_some() { p.ok #saved role="status" { "Saved." } }
        @match q.webhooks.as_deref() {
            Some("on") => p.ok #webhooks-done role="status" { "Webhooks are on: changes arrive within seconds, and the complete import runs daily." },
            Some("off") => p.ok #webhooks-done role="status" { "Webhooks are off: imports run on the schedule." },
            _ => {}
        }
        (config_form(&who, connector, &integration.config, Some(&integration), check.as_ref(), None, &mail))
        (webhooks_section(&state, &who, connector, &integration)?)
    };
    Ok(layout(&integration.config.name, &who, Section::Integrations, body).into_response())
}

async fn create(
    Scoped(state): Scoped,
    SignedAdmin(who): SignedAdmin,
    client: Client,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    let connector_id = form.get("connector_id").unwrap_or_default().to_string();
    let connector = state.engine.connector(&connector_id)?;
    let posted = Posted::new(&state, &who, connector, &form, None)?;
    let (config, tested) = match posted.check(&state).await? {
        Ok(checked) => checked,
        Err(again) => return Ok(again),
    };
    save_company(&state, &who, client, &form)?;
    let id = state.engine.store().create_integration(&config)?;
    state.record(
        &who,
        client,
        Action::IntegrationCreated,
        Some(format!("integration {id}")),
        Some(config.name.clone()),
    );
    after_save(&state, &who, id, tested)
}

async fn save(
    Scoped(state): Scoped,
    SignedAdmin(who): SignedAdmin,
    client: Client,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    let existing = state.engine.store().integration(IntegrationId(id))?;
    let connector = state.engine.connector(&existing.config.connector_id)?;
    let posted = Posted::new(&state, &who, connector, &form, Some(&existing))?;
    let (config, tested) = match posted.check(&state).await? {
        Ok(checked) => checked,
        Err(again) => return Ok(again),
    };
    save_company(&state, &who, client, &form)?;
    state.engine.store().update_integration(existing.id, &config)?;
    state.record_settings(&who, client, &existing, &config);
    after_save(&state, &who, existing.id, tested)
}

/// "Changes within seconds": webhooks for connectors whose source pushes
/// changes — on or off, since when, the last delivery.
fn webhooks_section(
    state: &AppState,
    who: &Principal,
    connector: &Connector,
    integration: &Integration,
) -> PageResult<Markup> {
    let Some(events) = &connector.events else { return Ok(html! {}) };
    let subscription = state.engine.store().subscription(integration.id)?;
    let action = format!("/integrations/{}/webhooks", integration.id);
    Ok(html! {
        section.card #webhooks {
            h2 { "Changes within seconds" }
            p.muted { (events.description) }
            @match &subscription {
                Some(s) => {
                    p #webhooks-state {
                        span.badge.good { "on" } " since " (time(s.created_at)) " · last change received: "
                        @match s.last_delivery_at { Some(t) => (time(t)), None => "none yet" }
                    }
                    form.inline method="post" action=(action) {
                        (csrf_field(who)) input type="hidden" name="use" value="off";
                        button.secondary type="submit" #webhooks-off { "Turn webhooks off" }
                    }
                }
                None => {
                    p #webhooks-state {
                        "Off: imports run on the schedule. With webhooks, the HR system tells hrsync about each change as it happens, and a complete import still runs once a day to catch anything missed."
                    }
                    @if integration.config.auto_import {
                        form.inline method="post" action=(action) {
                            (csrf_field(who)) input type="hidden" name="use" value="on";
                            button.primary type="submit" #webhooks-on { "Use webhooks" }
                        }
                    } @else {
                        p.muted { "Turn on “Run automatic imports” above first: changes that arrive are applied as automatic imports are." }
                    }
                }
            }
        }
    })
}

/// Turns webhooks on or off for an integration.
async fn webhooks(
    Scoped(state): Scoped,
    SignedAdmin(who): SignedAdmin,
    client: Client,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    let integration = IntegrationId(id);
    let target = Some(format!("integration {id}"));
    let on = match form.get("use") {
        Some("on") => {
            let s = state.webhooks.subscribe(integration).await?;
            state.record(&who, client, Action::WebhooksOn, target, Some(s.description));
            "on"
        }
        Some("off") => {
            state.webhooks.unsubscribe(integration).await?;
            state.record(&who, client, Action::WebhooksOff, target, None);
            "off"
        }
        _ => return Err(PageError::bad_request("Choose to turn webhooks on or off.")),
    };
    Ok(Redirect::to(&format!("/integrations/{id}/configuration?webhooks={on}#webhooks")).into_response())
}

/// The company name as the form shows it, and the invitation it gives.
struct MailSetting {
    company: String,
    sample: crate::mail::Message,
}

/// The stored company name, or the one the admin just posted.
fn mail_setting(state: &AppState, posted: Option<&str>) -> PageResult<MailSetting> {
    let company = match posted.map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => p.to_string(),
        None => state.engine.company_name()?.unwrap_or_default(),
    };
    let invite =
        crate::mail::Invite { company: Some(company.clone()).filter(|c| !c.is_empty()), ..state.engine.invitations()? };
    Ok(MailSetting { sample: crate::mail::sample_invitation(&invite), company })
}

/// A configuration form as posted: for a new integration or an existing one.
struct Posted<'a> {
    who: &'a Principal,
    connector: &'a Connector,
    form: &'a FormData,
    existing: Option<&'a Integration>,
    mail: MailSetting,
}

impl<'a> Posted<'a> {
    fn new(
        state: &AppState,
        who: &'a Principal,
        connector: &'a Connector,
        form: &'a FormData,
        existing: Option<&'a Integration>,
    ) -> PageResult<Self> {
        Ok(Posted { who, connector, form, existing, mail: mail_setting(state, form.get("company_name"))? })
    }

    /// The settings to store and, after "Test connection", the report; or
    /// the form again saying why nothing was saved.
    async fn check(
        &self,
        state: &AppState,
    ) -> PageResult<Result<(IntegrationConfig, Option<CheckReport>), axum::response::Response>> {
        let input = input_from(self.form, self.connector)?;
        let config = match config_from(state, input, self.existing) {
            Ok(c) => c,
            Err(e) => return Ok(Err(self.again(e.status, &e.message, None))),
        };
        let before = self.existing.map(|e| &e.config);
        if state.engine.lacks_company_name(&config, before, self.form.get("company_name"))? {
            let message = "Nothing was saved: password emails greet new people with your company's name. Enter it under “Company name”, or untick “Send password emails”.";
            return Ok(Err(self.again(StatusCode::UNPROCESSABLE_ENTITY, message, None)));
        }
        Ok(match test_first(state, self.form, &config).await {
            Ok(tested) => Ok((config, tested)),
            Err(failed) => Err(self.again(NOT_SAVED.0, NOT_SAVED.1, Some(&failed))),
        })
    }

    /// The form again with what the admin submitted (secrets not), why
    /// nothing was saved and, after a failed test, its report.
    fn again(&self, status: StatusCode, message: &str, check: Option<&CheckOutcome>) -> axum::response::Response {
        let (who, connector) = (self.who, self.connector);
        let shown = shown_config(connector, self.form);
        let fields = config_form(who, connector, &shown, self.existing, check, Some(message), &self.mail);
        let (title, body) = match self.existing {
            Some(i) => (i.config.name.as_str(), html! { (tabs(i, "configuration", who)) (fields) }),
            None => (
                "Add integration",
                html! {
                    p.breadcrumb { a href="/integrations" { "Integrations" } " / " }
                    h1 { "Add " (connector.info.name) }
                    (fields)
                },
            ),
        };
        (status, layout(title, who, Section::Integrations, body)).into_response()
    }
}

/// Stores a changed company name from the form (shared by every integration).
fn save_company(state: &AppState, who: &Principal, client: Client, form: &FormData) -> PageResult<()> {
    let posted = form.get("company_name").map(str::trim).unwrap_or_default();
    if !posted.is_empty() && state.engine.store().company_name()?.as_deref() != Some(posted) {
        state.engine.store().set_company_name(posted)?;
        state.record(who, client, Action::CompanyNamed, Some("company".into()), Some(posted.to_string()));
    }
    Ok(())
}

const NOT_SAVED: (StatusCode, &str) = (
    StatusCode::UNPROCESSABLE_ENTITY,
    "Nothing was saved: the source did not accept these settings (see the test below). \
     Fix them and test again; \"Save and preview\" stores them untested.",
);

/// "Test connection, then save" tests the submitted settings before
/// anything is stored, so testing wrong credentials never breaks a working
/// integration. `Ok(None)`: a plain save, nothing to test.
async fn test_first(
    state: &AppState,
    form: &FormData,
    config: &IntegrationConfig,
) -> Result<Option<CheckReport>, CheckOutcome> {
    if form.get("action") != Some("test") {
        return Ok(None);
    }
    let result = state.engine.check_config(config).await.map_err(|e| crate::web::ApiError::from(e).message);
    result.map(Some).map_err(|message| CheckOutcome { at: chrono::Utc::now(), result: Err(message) })
}

/// After a tested save the form shows the report (its attributes feed the
/// pickers); after a plain save a fresh preview starts.
fn after_save(state: &AppState, who: &Principal, id: IntegrationId, tested: Option<CheckReport>) -> PageResult {
    if let Some(report) = tested {
        state.remember_check(id, Ok(report));
        return Ok(Redirect::to(&format!("/integrations/{id}/configuration?saved=1#check")).into_response());
    }
    let request = RunRequest { actor: Some(who.username.clone()), ..RunRequest::manual(id) };
    let run = state.engine.start_preview(request)?;
    Ok(Redirect::to(&format!("/integrations/{id}/preview?run={run}&saved=1")).into_response())
}

fn field_name(key: &str) -> String {
    format!("setting.{key}")
}

/// The form's values as the API takes them; checkbox groups and attribute
/// pickers are joined with commas.
fn input_from(form: &FormData, connector: &Connector) -> Result<IntegrationInput, PageError> {
    let mut settings = BTreeMap::new();
    for spec in &connector.info.settings {
        let name = field_name(&spec.key);
        let value = match spec.kind {
            SettingKind::Flag => (if form.checked(&name) { "true" } else { "false" }).to_string(),
            SettingKind::MultiChoice | SettingKind::AttributeList => {
                let mut parts: Vec<&str> = Vec::new();
                for part in form.all(&name).flat_map(|v| v.split(',')).map(str::trim).filter(|p| !p.is_empty()) {
                    if !parts.contains(&part) {
                        parts.push(part);
                    }
                }
                parts.join(",")
            }
            _ => form.get(&name).unwrap_or_default().to_string(),
        };
        settings.insert(spec.key.clone(), value);
    }
    // Ticked origins and typed ones; none ticked or typed for a connector
    // that declares no hosts: the origin of the address the admin entered.
    let mut grants: Vec<String> = Vec::new();
    for origin in form.all("grant").chain(form.get("grants").unwrap_or_default().lines()).map(str::trim) {
        if !origin.is_empty() && !grants.iter().any(|g| g == origin) {
            grants.push(origin.to_string());
        }
    }
    if grants.is_empty() && connector.info.default_hosts.is_empty() {
        grants = crate::directory::address_origins(&settings);
    }
    let share = |key: &str, what: &str| -> Result<Option<f64>, PageError> {
        Ok(form.number::<f64>(key, what)?.map(|percent| percent / 100.0))
    };
    Ok(IntegrationInput {
        connector_id: Some(connector.info.id.clone()),
        name: form.get("name").unwrap_or_default().to_string(),
        settings,
        grants: (!grants.is_empty()).then_some(grants),
        auto_import: form.checked("auto_import"),
        send_emails: form.checked("send_emails"),
        interval_minutes: form.number("interval_minutes", "The import interval")?,
        missing_after: form.number("missing_after", "Runs before deactivating missing people")?,
        max_deactivate_share: share("max_deactivate_share", "The deactivation limit")?,
        max_email_share: share("max_email_share", "The email-change limit")?,
        max_pages: form.number("max_pages", "The page limit")?,
        max_records: form.number("max_records", "The record limit")?,
        max_run_minutes: form.number("max_run_minutes", "The run time limit")?,
    })
}

/// What the admin submitted, to show again next to an error (secrets not).
fn shown_config(connector: &Connector, form: &FormData) -> IntegrationConfig {
    let mut config = IntegrationConfig::new(&connector.info.id, form.get("name").unwrap_or_default());
    if let Ok(input) = input_from(form, connector) {
        config.settings = input.settings;
        config.grants = input.grants.unwrap_or_default();
        config.auto_import = input.auto_import;
        config.send_emails = input.send_emails;
        config.interval_minutes = input.interval_minutes.unwrap_or(config.interval_minutes);
    }
    for spec in connector.info.settings.iter().filter(|s| s.kind == SettingKind::Secret) {
        config.settings.remove(&spec.key);
    }
    config
}

fn config_form(
    who: &Principal,
    connector: &Connector,
    config: &IntegrationConfig,
    existing: Option<&Integration>,
    check: Option<&CheckOutcome>,
    error: Option<&str>,
    mail: &MailSetting,
) -> Markup {
    let action = match existing {
        Some(i) => format!("/integrations/{}/configuration", i.id),
        None => "/integrations".into(),
    };
    let readable: Vec<&SourceAttribute> = match check.map(|c| &c.result) {
        Some(Ok(report)) => report.readable.iter().collect(),
        _ => Vec::new(),
    };
    html! {
        form.config method="post" action=(action) novalidate {
            (csrf_field(who))
            input type="hidden" name="connector_id" value=(connector.info.id);
            @if let Some(e) = error { p.error role="alert" #form-error data-focus[check.is_none()] tabindex="-1" { (e) } }
            fieldset {
                legend { "Connection" }
                label { "Name" input #name name="name" value=(config.name) required; }
                @for spec in &connector.info.settings {
                    (setting_field(spec, config, existing, &readable))
                }
                (grants_field(connector, config))
            }
            fieldset {
                legend { "Automation" }
                label.check {
                    input #auto_import type="checkbox" name="auto_import" value="true" checked[config.auto_import];
                    "Run automatic imports"
                }
                label {
                    "Check for changes every"
                    select #interval_minutes name="interval_minutes" {
                        @for m in INTERVALS {
                            option value=(m) selected[m == config.interval_minutes] { (interval_label(m)) }
                        }
                        @if !INTERVALS.contains(&config.interval_minutes) {
                            option value=(config.interval_minutes) selected { (interval_label(config.interval_minutes)) }
                        }
                    }
                }
                label.check {
                    input #send_emails type="checkbox" name="send_emails" value="true" checked[config.send_emails];
                    "Send password emails when new users are imported"
                }
                small { "Only automatic imports send them; manual imports never email anyone." }
                label {
                    "Company name"
                    input #company_name name="company_name" value=(mail.company) autocomplete="organization" placeholder="e.g. Acme";
                    small { "Password emails greet new people with it; every integration shares it. Needed to send them." }
                }
                details.mail-preview #invite-preview {
                    summary { "Preview the password email" }
                    p { strong { "Subject: " } span #invite-preview-subject { (mail.sample.subject) } }
                    pre.mail-text #invite-preview-text { (mail.sample.text) }
                }
            }
            details.safeguards {
                summary { "Safeguards" }
                label {
                    "Deactivate people missing from the source after this many runs"
                    input #missing_after type="number" min="1" name="missing_after" value=(config.missing_after);
                }
                label {
                    "Stop an import that would deactivate more than (%)"
                    input #max_deactivate_share type="number" min="0" max="100" step="any" name="max_deactivate_share" value=(percent(config.max_deactivate_share));
                }
                label {
                    "Stop an import that would change more emails than (%)"
                    input #max_email_share type="number" min="0" max="100" step="any" name="max_email_share" value=(percent(config.max_email_share));
                }
                p.muted { "A run stops, applying nothing, when it goes past any of these:" }
                label {
                    "Pages fetched"
                    input #max_pages type="number" min="1" name="max_pages" value=(config.limits.max_pages);
                }
                label {
                    "People fetched"
                    input #max_records type="number" min="1" name="max_records" value=(config.limits.max_records);
                }
                label {
                    "Minutes per run"
                    input #max_run_minutes type="number" min="1" max="1440" name="max_run_minutes" value=(config.limits.max_minutes);
                }
            }
            div.actions {
                button.primary type="submit" name="action" value="save" #save { "Save and preview" }
                button.secondary type="submit" name="action" value="test" #test-connection { "Test connection, then save" }
            }
            // Right under the button that asked for it, and brought into view.
            @if let Some(c) = check { (check_report(c, error.is_some())) }
        }
    }
}

/// Where the connector may connect: its own hosts and the origins of the
/// addresses entered, as boxes to tick, and any others typed in.
fn grants_field(connector: &Connector, config: &IntegrationConfig) -> Markup {
    let mut offered: Vec<String> = connector.info.default_hosts.clone();
    for origin in crate::directory::address_origins(&config.settings) {
        if !offered.contains(&origin) {
            offered.push(origin);
        }
    }
    // Compared as the egress point compares origins, whatever the spelling.
    let key = |o: &String| crate::directory::origins_key(std::slice::from_ref(o));
    let granted = crate::directory::origins_key(&config.grants);
    let offered_keys = crate::directory::origins_key(&offered);
    let others: Vec<&str> =
        config.grants.iter().filter(|g| key(g).is_disjoint(&offered_keys)).map(String::as_str).collect();
    html! {
        fieldset.group #grants-list {
            legend { "Addresses the connector may reach" }
            @for o in &offered {
                label.check { input type="checkbox" name="grant" value=(o) checked[!key(o).is_disjoint(&granted)]; code { (o) } }
            }
            label {
                @if offered.is_empty() { "Addresses, one per line" } @else { "Other addresses, one per line" }
                textarea #grants name="grants" rows="2" placeholder="https://hr.example.com" { (others.join("\n")) }
            }
            small {
                "The connector can reach nothing else. "
                @if connector.info.default_hosts.is_empty() { "Left empty, the address entered above is allowed." }
            }
        }
    }
}

fn percent(share: f64) -> String {
    let p = (share * 1000.0).round() / 10.0;
    if p.fract() == 0.0 { format!("{p:.0}") } else { format!("{p}") }
}

fn setting_field(
    spec: &SettingSpec,
    config: &IntegrationConfig,
    existing: Option<&Integration>,
    readable: &[&SourceAttribute],
) -> Markup {
    let name = field_name(&spec.key);
    let id = format!("setting-{}", spec.key);
    let value = config.settings.get(&spec.key).map(String::as_str);
    let current = value.filter(|v| !v.is_empty()).or(spec.default_value.as_deref()).unwrap_or_default();
    let listed: Vec<&str> = current.split(',').map(str::trim).filter(|v| !v.is_empty()).collect();
    let placeholder = spec.default_value.as_deref().map(|d| format!("default: {d}"));
    html! {
        @match spec.kind {
            SettingKind::Flag => {
                label.check {
                    input id=(id) type="checkbox" name=(name) value="true" checked[current == "true"];
                    (spec.label)
                }
                (help(&spec.help))
            }
            SettingKind::Secret => {
                @let stored = existing.and_then(|i| i.config.settings.get(&spec.key)).is_some_and(|v| !v.is_empty());
                label {
                    (spec.label) @if spec.required { " *" }
                    @if stored { " " span.badge.good data-stored=(spec.key) { "stored" } }
                    input id=(id) type="password" name=(name) autocomplete="new-password"
                        placeholder=[stored.then_some("stored — leave empty to keep it")];
                    (help(&spec.help))
                }
            }
            SettingKind::Choice => {
                label {
                    (spec.label)
                    select id=(id) name=(name) {
                        @for c in &spec.choices { option value=(c) selected[current == c] { (c) } }
                    }
                    (help(&spec.help))
                }
            }
            SettingKind::MultiChoice => {
                fieldset.group {
                    legend { (spec.label) }
                    @for c in &spec.choices {
                        label.check {
                            input type="checkbox" name=(name) value=(c) checked[listed.contains(&c.as_str())];
                            (c)
                        }
                    }
                    (help(&spec.help))
                }
            }
            SettingKind::Attribute => {
                label {
                    (spec.label)
                    input id=(id) name=(name) value=(value.unwrap_or_default()) placeholder=[placeholder] list={ (id) "-options" };
                    datalist id={ (id) "-options" } {
                        @for a in readable { option value=(a.key) { (a.label) } }
                    }
                    (help(&spec.help))
                    @if readable.is_empty() { small.muted { "Test the connection to pick from the attributes the source returns." } }
                }
            }
            SettingKind::AttributeList => {
                @let others: Vec<&str> = listed.iter().copied().filter(|v| !readable.iter().any(|a| a.key == *v)).collect();
                fieldset.group.attributes {
                    legend { (spec.label) }
                    @if !readable.is_empty() {
                        div.picker {
                            @for a in readable {
                                label.check {
                                    input type="checkbox" name=(name) value=(a.key) checked[listed.contains(&a.key.as_str())];
                                    (a.label) " " code { (a.key) }
                                }
                            }
                        }
                    }
                    label {
                        @if readable.is_empty() { "Attribute keys, comma-separated" } @else { "Others, comma-separated" }
                        input id=(id) name=(name) value=(others.join(", ")) placeholder=[placeholder];
                    }
                    (help(&spec.help))
                    @if readable.is_empty() { small.muted { "Test the connection to pick from the attributes the source returns." } }
                }
            }
            SettingKind::Text => {
                label {
                    (spec.label) @if spec.required { " *" }
                    input id=(id) name=(name) value=(value.unwrap_or_default()) placeholder=[placeholder];
                    (help(&spec.help))
                }
            }
        }
    }
}

fn help(text: &str) -> Markup {
    html! { @if !text.is_empty() { small { (text) } } }
}

/// The last Test connection; `focus` brings it into view (it answers the
/// form just posted).
fn check_report(c: &CheckOutcome, focus: bool) -> Markup {
    html! {
        section.card.check #check {
            h2 { "Test connection " small.muted { (super::time(c.at)) } }
            @match &c.result {
                Err(message) => { p.error #check-result data-ok="false" data-focus[focus] tabindex="-1" { (message) } }
                Ok(report) => {
                    @let ok = report.missing.iter().all(|m| !m.required);
                    p class=(if ok { "ok" } else { "warn" }) #check-result data-ok=(ok) data-focus[focus] tabindex="-1" {
                        @if ok { "Connected" } @else { "Connected, but required attributes are not readable" }
                        @if let Some(a) = &report.account { " as " strong { (a) } }
                        ". " (report.readable.len()) " attributes are readable."
                    }
                    @if !report.missing.is_empty() {
                        p { "The source does not give these yet; each says how to change that:" }
                        ul.missing {
                            @for m in &report.missing {
                                li {
                                    code { (m.key) } " — " (m.purpose)
                                    @if m.required { " " span.badge.bad { "required" } }
                                    @if !m.hint.is_empty() { br; small { (m.hint) } }
                                }
                            }
                        }
                    }
                    @for w in &report.warnings { p.warn { (w) } }
                    details {
                        summary { "Readable attributes" }
                        ul.readable { @for a in &report.readable { li { code { (a.key) } " " (a.label) } } }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct ChangesQuery {
    pub run: Option<i64>,
    /// The integration's settings were just saved (the preview tab says so).
    pub saved: Option<u8>,
    pub kind: Option<String>,
    pub q: Option<String>,
    pub page: Option<u64>,
}

impl ChangesQuery {
    pub fn filter(&self) -> Result<ChangeFilter, PageError> {
        let kind = self
            .kind
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(ChangeKind::parse)
            .transpose()
            .map_err(PageError::bad_request)?;
        Ok(ChangeFilter {
            user: None,
            kind,
            search: self.q.clone().filter(|s| !s.trim().is_empty()),
            offset: (self.page() - 1) * PAGE_SIZE,
            limit: PAGE_SIZE,
        })
    }

    pub fn page(&self) -> u64 {
        self.page.unwrap_or(1).max(1)
    }
}

/// The filter form, the page of changes and the pager of a run.
pub(super) fn changes_section(
    state: &AppState,
    run: &Run,
    path: &str,
    q: &ChangesQuery,
    revertable: bool,
) -> PageResult<Markup> {
    let filter = q.filter()?;
    let (changes, total) = state.engine.store().run_changes_page(run.id, &filter)?;
    let run_param = q.run.map(|r| r.to_string()).unwrap_or_default();
    let kind = q.kind.clone().unwrap_or_default();
    let search = q.q.clone().unwrap_or_default();
    let base = format!("{path}?{}", query(&[("run", &run_param), ("kind", &kind), ("q", &search)]));
    Ok(html! {
        section.changes-section #changes {
            h2 { "People" }
            form.filters method="get" action=(path) {
                @if let Some(r) = q.run { input type="hidden" name="run" value=(r); }
                label { "Change"
                    select name="kind" #filter-kind {
                        option value="" { "All" }
                        @for k in CHANGE_KINDS { option value=(k.as_str()) selected[kind == k.as_str()] { (change_label(k)) } }
                    }
                }
                label { "Search" input type="search" name="q" #filter-q value=(search) placeholder="Name or source id"; }
                button.secondary type="submit" #filter-apply { "Filter" }
            }
            (change_list(&changes, revertable))
            (pager(&base, q.page(), total))
        }
    })
}

/// What overrides kept against the source in a run: "Personio says X,
/// kept Y (kept by ann, until …)".
pub(super) fn kept_section(state: &AppState, run: &Run, source: &str) -> PageResult<Markup> {
    let kept = state.engine.store().run_kept(run.id)?;
    Ok(html! {
        @if !kept.is_empty() {
            details.kept-values #kept open[kept.len() <= 10] {
                summary { (kept.len()) " kept values (the HR system says otherwise)" }
                ul {
                    @for k in kept.iter().take(100) {
                        li data-user=(k.user_id) data-field=(k.field) {
                            a href={ "/directory/" (k.user_id) } { strong { (k.name) } } ": " em { (k.field.label()) } " — "
                            (source) " says " q { (k.source.as_deref().unwrap_or("(empty)")) } ", kept "
                            q { (k.kept.as_deref().unwrap_or("(empty)")) }
                            span.muted { " (" (super::people::kept_by(k.kept_by.as_deref(), k.until)) ")" }
                        }
                    }
                }
                p.muted { a href="/directory/overrides" { "All kept values" } }
            }
        }
    })
}

/// The issues a run reported, the first hundred.
pub(super) fn issues_section(state: &AppState, run: &Run) -> PageResult<Markup> {
    let issues = state.engine.store().run_issues(run.id)?;
    Ok(html! {
        @if !issues.is_empty() {
            details.issues open[issues.len() <= 10] {
                summary { (issues.len()) " issues (people or fields skipped)" }
                ul {
                    @for i in issues.iter().take(100) {
                        li class=(i.severity) {
                            @if let Some(n) = &i.name { strong { (n) } ": " }
                            @if let Some(f) = &i.field { em { (field_label(f)) } ": " }
                            (i.message)
                        }
                    }
                }
                @if issues.len() > 100 { p.muted { "… and " (issues.len() - 100) " more (GET /api/v1/runs/" (run.id) " lists all)." } }
            }
        }
    })
}

async fn preview_tab(
    Scoped(state): Scoped,
    Signed(who): Signed,
    Path(id): Path<i64>,
    Query(q): Query<ChangesQuery>,
) -> PageResult {
    let store = state.engine.store();
    let integration = store.integration(IntegrationId(id))?;
    let run = match q.run {
        Some(r) => {
            let run = store.run(RunId(r))?;
            if run.kind != RunKind::Preview || run.integration_id != integration.id {
                return Err(PageError::new(
                    StatusCode::NOT_FOUND,
                    format!("run {r} is not a preview of this integration"),
                ));
            }
            Some(run)
        }
        None => store.runs(Some(integration.id), 0, 50)?.into_iter().find(|r| r.kind == RunKind::Preview),
    };
    let path = format!("/integrations/{id}/preview");
    let operator = who.role.allows(Role::Operator);
    let start = html! {
        @if operator {
            form.inline method="post" action=(path) {
                (csrf_field(&who))
                button.secondary type="submit" #run-preview { @if run.is_some() { "Refresh preview" } @else { "Run preview" } }
            }
        }
    };
    let body = match &run {
        None => html! {
            section.card {
                p { "A preview fetches everyone from the source and shows what an import would change, per person and per field. Nothing is written." }
                (start)
            }
        },
        Some(run) if matches!(run.state, RunState::Running | RunState::Queued) => html! {
            section.card { p { "Preview " (run.id) " started " (time(run.started_at)) "." } (progress(run, state.engine.progress(run.id))) }
        },
        Some(run) if run.state != RunState::Succeeded => html! {
            section.card {
                p { "Preview " (run.id) " " (state_badge(run.state)) " " (time(run.started_at)) }
                p.error #run-error { (run.error.as_deref().unwrap_or("no reason recorded")) }
                (start)
            }
        },
        Some(run) => {
            let c = &run.counts;
            let changed = c.created + c.updated + c.deactivated + c.reactivated + c.linked + c.missing;
            // An import or revert that changed the directory after this
            // preview makes it stale: importing it could only fail as drift.
            let applied_since = store
                .history(Some(integration.id), RunFilter::default(), 0, 1)?
                .into_iter()
                .find(|r| r.id > run.id && r.state == RunState::Succeeded);
            html! {
                section.card.run-head {
                    p {
                        "Preview " (run.id) " · " (time(run.started_at))
                        @if let Some(a) = &run.actor { " · by " (a) }
                        " · took " (duration(run))
                    }
                    (counts(c))
                    @if let Some(r) = &applied_since {
                        p.warn #stale-preview {
                            "This preview is out of date: "
                            a href={ "/runs/" (r.id) } { (kind_label(r.kind).to_lowercase()) " #" (r.id) }
                            " changed the directory after it (" (time(r.started_at)) "). Refresh the preview to see what an import would change now."
                        }
                    }
                    div.actions {
                        (start)
                        @if operator && applied_since.is_none() {
                            button.primary type="button" #import-now data-dialog="import-dialog" disabled[changed == 0] { "Import now…" }
                        }
                    }
                    @if changed == 0 && applied_since.is_none() { p.muted { "Everything is up to date: an import would change nobody." } }
                }
                (issues_section(&state, run)?)
                (kept_section(&state, run, &integration.config.name)?)
                (changes_section(&state, run, &path, &ChangesQuery { run: Some(run.id.0), ..q }, false)?)
                (dialog("import-dialog", "Import these changes?", &format!("/integrations/{id}/import"), &who, "Import", html! {
                    input type="hidden" name="from_preview" value=(run.id);
                    p { "The import applies what this preview shows to the directory, in one step:" }
                    ul.summary {
                        li { (c.created) " new people" }
                        li { (c.updated) " updated (" (c.manager_changes) " manager changes)" }
                        li { (c.deactivated) " deactivated, " (c.reactivated) " reactivated" }
                        li { (c.linked) " people already in the directory, matched by email" }
                    }
                    p { strong { "Nobody is emailed:" } " manual imports never send password emails." }
                    p.muted { "If the source changed since this preview, the import stops and says so; nothing is half-applied. Every change can be reverted from History." }
                }))
            }
        }
    };
    let page = html! {
        (tabs(&integration, "preview", &who))
        @if q.saved.is_some() { p.ok #saved role="status" { "Saved. This preview uses the new settings." } }
        (body)
    };
    Ok(layout(&format!("Preview · {}", integration.config.name), &who, Section::Integrations, page).into_response())
}

async fn start_preview(
    Scoped(state): Scoped,
    SignedOperator(who): SignedOperator,
    client: Client,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    state.record(&who, client, Action::Preview, Some(format!("integration {id}")), None);
    let request = RunRequest { actor: Some(who.username.clone()), ..RunRequest::manual(IntegrationId(id)) };
    let run = state.engine.start_preview(request)?;
    Ok(Redirect::to(&format!("/integrations/{id}/preview?run={run}")).into_response())
}

async fn start_import(
    Scoped(state): Scoped,
    SignedOperator(who): SignedOperator,
    client: Client,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    let detail = form.checked("override").then(|| "despite the safeguard".to_string());
    state.record(&who, client, Action::Import, Some(format!("integration {id}")), detail);
    let request = RunRequest {
        actor: Some(who.username.clone()),
        from_preview: form.number::<i64>("from_preview", "The preview")?.map(RunId),
        override_safeguard: form.checked("override"),
        accept_drift: form.checked("accept_drift"),
        ..RunRequest::manual(IntegrationId(id))
    };
    let run = state.engine.start_import(request)?;
    Ok(Redirect::to(&format!("/runs/{run}")).into_response())
}

#[derive(Deserialize)]
struct HistoryQuery {
    page: Option<u64>,
    /// Checkboxes: present (`on`) when ticked.
    previews: Option<String>,
    unapplied: Option<String>,
    unchanged: Option<String>,
}

impl HistoryQuery {
    fn filter(&self) -> RunFilter {
        RunFilter {
            previews: self.previews.is_some(),
            unapplied: self.unapplied.is_some(),
            unchanged: self.unchanged.is_some(),
        }
    }
}

/// The filter as a query string for the pager's links.
fn filter_query(f: RunFilter) -> String {
    [(f.previews, "&previews=on"), (f.unapplied, "&unapplied=on"), (f.unchanged, "&unchanged=on")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, q)| *q)
        .collect()
}

async fn history(
    Scoped(state): Scoped,
    Signed(who): Signed,
    Path(id): Path<i64>,
    Query(q): Query<HistoryQuery>,
) -> PageResult {
    let store = state.engine.store();
    let integration = store.integration(IntegrationId(id))?;
    let page = q.page.unwrap_or(1).max(1);
    let filter = q.filter();
    let mut runs = store.history(Some(integration.id), filter, (page - 1) * PAGE_SIZE, PAGE_SIZE + 1)?;
    let more = runs.len() as u64 > PAGE_SIZE;
    runs.truncate(PAGE_SIZE as usize);
    let also = filter_query(filter);
    let body = html! {
        (tabs(&integration, "history", &who))
        form.filters #history-filter method="get" {
            fieldset {
                legend { "Imports and reverts that changed the directory. Also show:" }
                label.check { input type="checkbox" name="previews" #show-previews checked[filter.previews]; "Previews" }
                label.check { input type="checkbox" name="unapplied" #show-unapplied checked[filter.unapplied]; "Runs that applied nothing (failed, blocked, cancelled)" }
                label.check { input type="checkbox" name="unchanged" #show-unchanged checked[filter.unchanged]; "Runs that found nothing to change" }
            }
            button.secondary type="submit" #history-filter-apply { "Show" }
        }
        @if runs.is_empty() && page == 1 {
            p.empty { @if filter == RunFilter::ALL { "No runs yet." } @else { "No runs to show. Tick more above to see the others." } }
        }
        div.table-wrap {
            table.runs #runs {
                thead { tr { th { "Run" } th { "Kind" } th { "Started" } th { "Trigger" } th { "By" } th { "Outcome" } th { "Changes" } th { "Duration" } } }
                tbody {
                    @for r in &runs {
                        tr data-run=(r.id) {
                            td { a href={ "/runs/" (r.id) } { "#" (r.id) } }
                            td { (kind_label(r.kind)) }
                            td { (time(r.started_at)) }
                            td { (r.trigger.as_str()) }
                            td { (r.actor.as_deref().unwrap_or("—")) }
                            td { (state_badge(r.state)) }
                            td.muted { (counts_line(r)) }
                            td { (duration(r)) }
                        }
                    }
                }
            }
        }
        nav.pager {
            @if page > 1 { a rel="prev" href={ "?page=" (page - 1) (also) } { "← Newer" } }
            span { "Page " (page) }
            @if more { a rel="next" href={ "?page=" (page + 1) (also) } { "Older →" } }
        }
    };
    Ok(layout(&format!("History · {}", integration.config.name), &who, Section::Integrations, body).into_response())
}

/// "3 new, 2 updated, 1 deactivated": the non-zero counts.
pub(super) fn counts_line(r: &Run) -> String {
    let c = &r.counts;
    let parts: Vec<String> = [
        (c.created, "new"),
        (c.updated, "updated"),
        (c.deactivated, "deactivated"),
        (c.reactivated, "reactivated"),
        (c.linked, "matched by email"),
        (c.missing, "no longer in the source"),
        (c.kept, "kept"),
        (c.issues, "issues"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, label)| format!("{n} {label}"))
    .collect();
    if parts.is_empty() { "no changes".into() } else { parts.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_show_as_percentages() {
        assert_eq!(percent(0.2), "20");
        assert_eq!(percent(0.125), "12.5");
        assert_eq!(interval_label(120), "2 h");
        assert_eq!(interval_label(15), "15 min");
    }
}
