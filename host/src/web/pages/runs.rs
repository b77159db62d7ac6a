//! One run: its outcome, progress while it runs, the per-person changes,
//! and reverting the run or one person.

use crate::web::auth::Scoped;
use axum::Router;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use maud::html;

use super::integrations::{ChangesQuery, changes_section, counts_line, issues_section, kept_section};
use super::{
    FormData, PageError, PageResult, Section, Signed, SignedOperator, counts, dialog, duration, kind_label, layout,
    progress,
};
use super::{state_badge, time};
use crate::accounts::Role;
use crate::audit::Action;
use crate::directory::{Field, RunId, RunKind, RunState, UserId};
use crate::sync::drift::{Drifted, drifted};
use crate::sync::engine::RevertRequest;
use crate::web::AppState;
use crate::web::auth::Client;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/runs/{id}", get(run_page))
        .route("/runs/{id}/revert", post(revert))
        .route("/runs/{id}/cancel", post(cancel))
}

async fn run_page(
    Scoped(state): Scoped,
    Signed(who): Signed,
    Path(id): Path<i64>,
    Query(q): Query<ChangesQuery>,
) -> PageResult {
    let store = state.engine.store();
    let run = store.run(RunId(id))?;
    let integration = store.integration(run.integration_id)?;
    let path = format!("/runs/{id}");
    let live = matches!(run.state, RunState::Running | RunState::Queued);
    let operator = who.role.allows(Role::Operator);
    let revertable = operator && run.state == RunState::Succeeded && run.kind != RunKind::Preview;
    let title = format!("{} #{}", kind_label(run.kind), run.id);
    let drift = drift_section(&state, &who, &run)?;
    let body = html! {
        p.breadcrumb {
            a href="/integrations" { "Integrations" } " / "
            a href={ "/integrations/" (integration.id) "/history" } { (integration.config.name) } " / "
        }
        h1 { (title) " " (state_badge(run.state)) }
        section.card.run-head {
            p {
                (time(run.started_at)) " · " (run.trigger.as_str())
                @if let Some(a) = &run.actor { " · by " (a) }
                " · took " (duration(&run))
                @if let Some(p) = run.preview_id { " · from " a href={ "/integrations/" (integration.id) "/preview?run=" (p) } { "preview " (p) } }
                @if let Some(r) = run.reverts_id { " · reverts " a href={ "/runs/" (r) } { "run " (r) } }
            }
            @if live { (progress(&run, state.engine.progress(run.id))) }
            @if let Some(e) = &run.error { p class=(if run.state == RunState::Blocked { "warn" } else { "error" }) #run-error { (e) } }
            @if !live { (counts(&run.counts)) p.muted #run-summary { (counts_line(&run)) } }
            div.actions {
                @if live && operator {
                    button.secondary type="button" data-dialog="cancel-dialog" #cancel-run { "Cancel run…" }
                }
                @if operator && run.state == RunState::Blocked && run.kind == RunKind::Import {
                    button.primary type="button" data-dialog="override-dialog" #import-anyway { "Import anyway…" }
                }
                @if matches!(run.state, RunState::Failed | RunState::Blocked) && drift.is_none() {
                    a.button.secondary href={ "/integrations/" (integration.id) "/preview" } { "Back to preview" }
                }
                @if revertable { button.secondary type="button" data-dialog="revert-run-dialog" #revert-run { "Revert this run…" } }
            }
        }
        @if let Some(d) = &drift { (d) }
        @if !live {
            (issues_section(&state, &run)?)
            (kept_section(&state, &run, &integration.config.name)?)
            (changes_section(&state, &run, &path, &q, revertable)?)
        }
        @if revertable {
            (dialog("revert-run-dialog", "Revert this run?", &format!("/runs/{id}/revert"), &who, "Revert run", html! {
                p { "Every value this run changed goes back to what it was before, for every person it touched. People it created are deactivated (never deleted)." }
                p.muted { "Values changed again by a later run are kept and listed. The revert is itself a run you can see in History." }
                (keep_choice("revert-run-keep"))
            }))
            (dialog("revert-person-dialog", "Revert this person?", &format!("/runs/{id}/revert"), &who, "Revert person", html! {
                input type="hidden" name="user_id" data-fill="userId";
                p { "Restore what " strong data-fill="userName" { "this person" } " looked like before this run." }
                p.muted { "Values changed again by a later run are kept and listed." }
                (keep_choice("revert-person-keep"))
            }))
            (dialog("revert-field-dialog", "Put the old value back?", &format!("/runs/{id}/revert"), &who, "Put it back", html! {
                input type="hidden" name="user_id" data-fill="userId";
                input type="hidden" name="field" data-fill="field";
                p { "Restore " strong data-fill="fieldLabel" { "this field" } " of " strong data-fill="userName" { "this person" } " to what it was before this run." }
                label.check {
                    input type="checkbox" name="keep" value="true" #revert-field-keep checked;
                    " And keep it: later imports leave it as it is, until you stop keeping it on the "
                    a href="/directory/overrides" { "Kept values" } " page."
                }
            }))
        }
        @if live && operator {
            (dialog("cancel-dialog", "Cancel this run?", &format!("/runs/{id}/cancel"), &who, "Cancel run", html! {
                p { "The run stops within a few seconds. Nothing of it is applied; the directory stays as it is." }
            }))
        }
        @if operator && run.state == RunState::Blocked && run.kind == RunKind::Import {
            (dialog("override-dialog", "Import despite the safeguard?", &format!("/integrations/{}/import", integration.id), &who, "Import anyway", html! {
                input type="hidden" name="override" value="true";
                @if let Some(p) = run.preview_id { input type="hidden" name="from_preview" value=(p); }
                p { "This import was stopped because it would change more people than the integration's safeguards allow:" }
                p.warn { (run.error.as_deref().unwrap_or_default()) }
                p { "Import anyway only if you expected this (e.g. a reorganisation). Nobody is emailed." }
            }))
        }
    };
    Ok(layout(&title, &who, Section::Integrations, body).into_response())
}

/// An import refused because the source changed since its preview: who
/// would now be changed differently, and a button to preview again.
fn drift_section(
    state: &AppState,
    who: &crate::accounts::Principal,
    run: &crate::directory::Run,
) -> PageResult<Option<maud::Markup>> {
    let Some(preview_id) = run.preview_id.filter(|_| run.kind == RunKind::Import && run.state == RunState::Failed)
    else {
        return Ok(None);
    };
    let store = state.engine.store();
    let preview = store.run(preview_id)?;
    if run.fingerprint.is_none() || preview.fingerprint == run.fingerprint {
        return Ok(None);
    }
    let (previewed, now) = (store.run_changes(preview_id, None)?, store.run_changes(run.id, None)?);
    let people = drifted(&previewed, &now);
    const LISTED: usize = 50;
    Ok(Some(html! {
        section.card #drift {
            h2 { "What changed since the preview" }
            p {
                "The HR system changed after " a href={ "/integrations/" (run.integration_id) "/preview?run=" (preview_id) } { "the preview" }
                " was made, so nothing was imported: the import would no longer do what you reviewed. "
                @if people.is_empty() { "The same people change, but in a different order or with different details." }
                @else { (people.len()) (if people.len() == 1 { " person is" } else { " people are" }) " now planned differently:" }
            }
            ul.drifted {
                @for d in people.iter().take(LISTED) {
                    li data-drifted=(d.name) {
                        @match d.user() {
                            Some(u) => a href={ "/directory/" (u) } { (d.name) },
                            None => strong { (d.name) },
                        }
                        " — " (drift_words(d))
                    }
                }
                @if people.len() > LISTED { li.muted { "and " (people.len() - LISTED) " more" } }
            }
            @if who.role.allows(Role::Operator) {
                form.inline method="post" action={ "/integrations/" (run.integration_id) "/preview" } {
                    (super::csrf_field(who))
                    button.primary type="submit" #preview-again { "Preview again" }
                }
            }
        }
    }))
}

/// How one person's plan moved, in words.
fn drift_words(d: &Drifted<'_>) -> String {
    use crate::directory::ChangeKind::*;
    let done = |c: &crate::directory::ChangeRecord| match c.kind {
        Create => "added",
        Update => "updated",
        Deactivate => "deactivated",
        Reactivate => "reactivated",
        Link => "matched by email",
        Missing => "counted as no longer in the HR system",
        Restore => "restored",
    };
    match (d.previewed, d.now) {
        (None, Some(n)) => format!("not in the preview; would now be {}", done(n)),
        (Some(p), None) => format!("the preview had them {}; now nothing changes for them", done(p)),
        (Some(p), Some(n)) if p.kind != n.kind => {
            format!("the preview had them {}; now they would be {}", done(p), done(n))
        }
        _ => {
            let fields: Vec<String> = d.fields().iter().map(|f| f.label().into_owned()).collect();
            format!("now different: {}", fields.join(", "))
        }
    }
}

/// "Revert and keep": without it, the next import applies the HR system's
/// values again.
fn keep_choice(id: &str) -> maud::Markup {
    html! {
        label.check {
            input type="checkbox" name="keep" value="true" id=(id);
            " Keep the restored values: later imports leave them as they are (see "
            a href="/directory/overrides" { "Kept values" } "). Without this, the next import brings back what the HR system says."
        }
    }
}

async fn cancel(
    Scoped(state): Scoped,
    SignedOperator(who): SignedOperator,
    client: Client,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    state.engine.cancel(RunId(id), Some(&who.username))?;
    state.record(&who, client, Action::Cancel, Some(format!("run {id}")), None);
    Ok(Redirect::to(&format!("/runs/{id}")).into_response())
}

async fn revert(
    Scoped(state): Scoped,
    SignedOperator(who): SignedOperator,
    client: Client,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<FormData>,
) -> PageResult {
    form.verify(&who)?;
    let user = form.number::<i64>("user_id", "The person")?.map(UserId);
    state.record(&who, client, Action::Revert, Some(format!("run {id}")), user.map(|u| format!("user {u}")));
    let keep = form.get("keep") == Some("true");
    let field = form.get("field").map(Field::parse).transpose().map_err(PageError::bad_request)?;
    let request = RevertRequest { user, field, keep, ..RevertRequest::new(RunId(id), Some(who.username.clone())) };
    let (_, report) = state.engine.revert(request).await?;
    Ok(Redirect::to(&format!("/runs/{}", report.run.id)).into_response())
}
