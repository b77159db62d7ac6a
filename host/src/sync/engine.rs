//! Preview, import and revert, each recorded as a run.
//!
//! A run fetches every page through the connector, asks it for a diff
//! against the directory, has [`plan`](super::plan) check and translate the
//! result, and then either stores it as a preview or applies it in one
//! transaction together with its history entry. Failures, blocked and
//! cancelled runs are recorded too, so admins see why nothing changed.
//!
//! A run holds its integration for as long as it works: the store refuses a
//! second run of any kind in any process, and this process renews the run's
//! lease every [`HEARTBEAT_EVERY`] until the run ends. A cancel request
//! (from this process or another) or a lost lease stops the run at once;
//! the import's transaction is fenced by the lease, so a run that was
//! cancelled or taken over never applies.

use crate::directory::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use tokio_util::sync::CancellationToken;

use super::fetch::{FetchError, FetchLimits, FetchOptions, Progress, RetryPolicy, fetch_all, fetch_named};
use super::plan::{self, PlanError, PlanInput, Planned};
use crate::connectors::LoadFailure;
use crate::directory::{
    Apply, ChangeKind, ChangeRecord, Counts, FieldChange, HEARTBEAT_EVERY, Integration, IntegrationConfig,
    IntegrationId, IssueRecord, KeptValue, Lease, NewOverride, NewRun, Override, PlannedChange, PlannedUser, Run,
    RunId, RunKind, RunOutcome, RunState, StoreError, Target, Trigger, User, UserId, UserStatus,
};
use crate::mail::Invite;
use crate::model::{CheckReport, DiffOptions, DirectoryUser, Entry, Field, Person, Severity, SourceId};
use crate::runtime::egress::{Grants, Pacer};
use crate::runtime::{Connector, RunError, Runtime};

/// Reports fetch progress, e.g. to a progress bar.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Why a run did not apply.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("run {run} failed: {source}")]
    Fetch { run: RunId, source: FetchError },
    #[error("run {run} failed: {source}")]
    Connector { run: RunId, source: RunError },
    #[error("run {run} failed: {source}")]
    Plan { run: RunId, source: PlanError },
    #[error("run {run} is blocked by the mass-change safeguard: {reason}")]
    Blocked { run: RunId, reason: String, counts: Counts },
    #[error(
        "run {run} was not applied: the source changed since preview {preview}, so the import no longer matches what was reviewed. Preview again, check the changes, and import that preview"
    )]
    Drift { run: RunId, preview: RunId },
    #[error("run {run} was cancelled{}; nothing was applied", by.as_ref().map(|b| format!(" by {b}")).unwrap_or_default())]
    Cancelled { run: RunId, by: Option<String> },
    #[error(
        "run {run} took longer than the integration's limit of {minutes} minutes and was stopped; nothing was applied. Raise the limit if the source really is that slow."
    )]
    TimedOut { run: RunId, minutes: u32 },
    #[error("test connection failed: {0}")]
    Check(RunError),
    /// The request cannot be carried out as asked (a run that is not a
    /// preview, settings that cannot be used): the caller fixes it.
    #[error("{0}")]
    Invalid(String),
    /// hrsync itself failed (a task died, the directory could not be read):
    /// not the caller's fault; the message is for the operator's log.
    #[error("internal error: {0}")]
    Internal(String),
}

impl SyncError {
    /// The same error, recorded under `run`.
    fn at(self, run: RunId) -> SyncError {
        match self {
            SyncError::Fetch { source, .. } => SyncError::Fetch { run, source },
            SyncError::Connector { source, .. } => SyncError::Connector { run, source },
            SyncError::Plan { source, .. } => SyncError::Plan { run, source },
            other => other,
        }
    }

    /// The run this error was recorded under, if one was started.
    pub fn run(&self) -> Option<RunId> {
        match self {
            SyncError::Fetch { run, .. }
            | SyncError::Connector { run, .. }
            | SyncError::Plan { run, .. }
            | SyncError::Blocked { run, .. }
            | SyncError::Drift { run, .. }
            | SyncError::Cancelled { run, .. }
            | SyncError::TimedOut { run, .. } => Some(*run),
            SyncError::Store(StoreError::LeaseLost(run) | StoreError::Cancelled(run)) => Some(*run),
            SyncError::Store(_) | SyncError::Check(_) | SyncError::Invalid(_) | SyncError::Internal(_) => None,
        }
    }

    /// The connector failure behind this error, if any.
    pub fn run_error(&self) -> Option<&RunError> {
        match self {
            SyncError::Connector { source, .. } | SyncError::Check(source) => Some(source),
            SyncError::Fetch { source, .. } => source.run_error(),
            _ => None,
        }
    }
}

/// What to run.
#[derive(Clone)]
pub struct RunRequest {
    pub integration: IntegrationId,
    pub automatic: bool,
    pub actor: Option<String>,
    /// Import exactly what preview N showed, or report the drift.
    pub from_preview: Option<RunId>,
    /// Apply although the mass-change safeguard tripped (manual runs only).
    pub override_safeguard: bool,
    pub accept_drift: bool,
    pub progress: Option<ProgressFn>,
    /// Fetch only people changed since then (connectors with incremental
    /// fetch); people absent from such a run are not "missing".
    pub updated_since: Option<DateTime<Utc>>,
    /// The day (UTC) that decides who has started: people whose start date
    /// is later are pending. `None` is the real today; the scheduler passes
    /// its clock's day.
    pub today: Option<NaiveDate>,
    /// An event-driven run: only the people the source pushed news of.
    /// Recorded with the trigger `event`.
    pub pushed: Option<Pushed>,
}

/// Who an event-driven run is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Created or changed in the source: fetched and planned; nobody absent
    /// is counted missing.
    pub changed: Vec<SourceId>,
    /// Announced deleted by the source. Fetched too: whoever the source
    /// still has is planned as changed (the announcement was stale or
    /// forged); whoever it no longer has is deactivated.
    pub deleted: Vec<SourceId>,
}

impl Pushed {
    /// Everyone to fetch, each once.
    fn ids(&self) -> Vec<SourceId> {
        let mut ids = self.changed.clone();
        for id in &self.deleted {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        ids
    }
}

impl RunRequest {
    /// A manual run of `integration` with no options.
    pub fn manual(integration: IntegrationId) -> Self {
        RunRequest {
            integration,
            automatic: false,
            actor: None,
            from_preview: None,
            override_safeguard: false,
            accept_drift: false,
            progress: None,
            updated_since: None,
            today: None,
            pushed: None,
        }
    }
}

/// A finished run with what it changed (or, for previews, would change).
#[derive(Debug, Clone)]
pub struct RunReport {
    pub run: Run,
    pub changes: Vec<ChangeRecord>,
    pub issues: Vec<IssueRecord>,
    /// Fields overrides kept although the source differs.
    pub kept: Vec<KeptValue>,
}

/// Why a run this process holds must stop.
#[derive(Debug, Clone)]
enum Stop {
    Cancelled {
        by: Option<String>,
    },
    /// Another process took the run over.
    LeaseLost,
}

/// A run this process holds, while it works.
struct LiveRun {
    progress: Progress,
    /// Fires when the run must stop; also ends its lease renewal.
    stop: CancellationToken,
    why: Arc<Mutex<Option<Stop>>>,
}

/// The sync engine: connectors, runtime and directory together.
pub struct SyncEngine {
    runtime: Arc<Runtime>,
    store: Arc<dyn DirectoryStore>,
    connectors: Vec<Connector>,
    /// Components found but not loaded, with the reason.
    pub failed_connectors: Vec<LoadFailure>,
    pub retry: RetryPolicy,
    /// Deployment details for invitation emails; the company name here is
    /// the configuration file's, used until an admin sets one.
    pub invite: Invite,
    /// Notified when an import queued mail, so the courier sends it at once.
    pub mail_queued: Arc<tokio::sync::Notify>,
    /// Requests per minute and burst for each integration's source, or no
    /// pacing. Personio allows 300 a minute (15 a second): servers pace
    /// below that, benchmarks against the sandbox do not.
    pub pace: Option<(u32, u32)>,
    pacers: Mutex<HashMap<IntegrationId, Arc<Pacer>>>,
    /// The runs this process holds.
    live: Mutex<HashMap<RunId, LiveRun>>,
    /// Connector errors since start, by kind, for the metrics; shared by
    /// the engines of every tenant of a process.
    errors: Arc<Mutex<BTreeMap<&'static str, u64>>>,
}

impl SyncEngine {
    /// What invitations are written with now: the deployment's details and
    /// the company name an admin set (else the configuration file's).
    pub fn invitations(&self) -> Result<Invite, StoreError> {
        let mut invite = self.invite.clone();
        if let Some(name) = self.store.company_name()? {
            invite.company = Some(name);
        }
        Ok(invite)
    }

    /// The company name password emails use, if there is one.
    pub fn company_name(&self) -> Result<Option<String>, StoreError> {
        Ok(self.invitations()?.company.filter(|c| !c.trim().is_empty()))
    }

    /// Whether saving `config` over `before` would turn password emails on
    /// with no company name to greet people with (and `posted` names none):
    /// every surface refuses that and says where to set the name.
    pub fn lacks_company_name(
        &self,
        config: &IntegrationConfig,
        before: Option<&IntegrationConfig>,
        posted: Option<&str>,
    ) -> Result<bool, StoreError> {
        let turning_on = config.send_emails && !before.is_some_and(|b| b.send_emails);
        let posted = posted.is_some_and(|p| !p.trim().is_empty());
        Ok(turning_on && !posted && self.company_name()?.is_none())
    }

    pub fn new(runtime: Arc<Runtime>, store: Arc<dyn DirectoryStore>, connectors: Vec<Connector>) -> Self {
        SyncEngine {
            runtime,
            store,
            connectors,
            failed_connectors: Vec::new(),
            retry: RetryPolicy::default(),
            invite: Invite::default(),
            mail_queued: Arc::default(),
            pace: None,
            pacers: Mutex::default(),
            live: Mutex::default(),
            errors: Arc::default(),
        }
    }

    /// An engine like this one — same runtime, connectors, retries, pace,
    /// invitation details and mail wake-up — over another store, e.g.
    /// another tenant's. Its runs, pacers and error counts are its own.
    pub fn for_store(&self, store: Arc<dyn DirectoryStore>) -> SyncEngine {
        SyncEngine {
            failed_connectors: self.failed_connectors.clone(),
            retry: self.retry.clone(),
            invite: self.invite.clone(),
            mail_queued: self.mail_queued.clone(),
            pace: self.pace,
            errors: self.errors.clone(),
            ..SyncEngine::new(self.runtime.clone(), store, self.connectors.clone())
        }
    }

    pub fn store(&self) -> &Arc<dyn DirectoryStore> {
        &self.store
    }

    pub fn connectors(&self) -> &[Connector] {
        &self.connectors
    }

    pub fn connector(&self, id: &str) -> Result<&Connector, SyncError> {
        self.connectors.iter().find(|c| c.info.id == id).ok_or_else(|| {
            let ids: Vec<&str> = self.connectors.iter().map(|c| c.info.id.as_str()).collect();
            let mut message = format!("connector `{id}` is not loaded (loaded: {})", ids.join(", "));
            for f in &self.failed_connectors {
                message.push_str(&format!("; {} did not load: {}", f.origin, f.reason));
            }
            SyncError::Invalid(message)
        })
    }

    /// "Test connection" for a configured integration.
    pub async fn check(&self, integration: IntegrationId) -> Result<CheckReport, SyncError> {
        self.check_config(&self.store.integration(integration)?.config).await
    }

    /// "Test connection" for settings that are not saved (yet): nothing is
    /// stored, so a test with wrong credentials cannot break a working
    /// integration.
    pub async fn check_config(&self, config: &IntegrationConfig) -> Result<CheckReport, SyncError> {
        let connector = self.connector(&config.connector_id)?;
        let (settings, grants) = session_inputs(config)?;
        let result = match self.runtime.session(connector, grants).await {
            Ok(mut session) => session.check(&settings).await,
            Err(e) => Err(e),
        };
        result.map_err(|e| {
            let e = SyncError::Check(e);
            self.count_connector_error(&e);
            e
        })
    }

    /// A session of `integration`'s connector with its settings, for the
    /// calls of `hr-events` (0.4.0), which its connector must declare.
    async fn events_session(
        &self,
        integration: IntegrationId,
    ) -> Result<(crate::runtime::Session, Vec<Entry>, Integration), SyncError> {
        let integration = self.store.integration(integration)?;
        let connector = self.connector(&integration.config.connector_id)?;
        if connector.events.is_none() {
            return Err(SyncError::Invalid(format!(
                "connector `{}` cannot receive changes from its source (it declares no events); imports run on the schedule",
                connector.info.id
            )));
        }
        let (settings, grants) = session_inputs(&integration.config)?;
        let session = self
            .runtime
            .paced_session(connector, grants, self.pacer(integration.id))
            .await
            .map_err(SyncError::Check)?;
        Ok((session, settings, integration))
    }

    /// Asks the source to push `integration`'s changes to `callback_url`
    /// with `token`.
    pub async fn subscribe(
        &self,
        integration: IntegrationId,
        callback_url: &str,
        token: &str,
    ) -> Result<crate::model::Subscription, SyncError> {
        let (mut session, settings, _) = self.events_session(integration).await?;
        session.subscribe(&settings, callback_url, token).await.map_err(SyncError::Check)
    }

    /// Removes a subscription from the source.
    pub async fn unsubscribe(&self, integration: IntegrationId, id: &str) -> Result<(), SyncError> {
        let (mut session, settings, _) = self.events_session(integration).await?;
        session.unsubscribe(&settings, id).await.map_err(SyncError::Check)
    }

    /// Who the deliveries are about, one answer per delivery (the
    /// connector's `handle-event`, in one sandboxed instance).
    pub async fn read_events(
        &self,
        integration: IntegrationId,
        deliveries: &[(Vec<Entry>, String)],
    ) -> Result<Vec<Result<crate::model::SourceEvent, RunError>>, SyncError> {
        let (mut session, settings, _) = self.events_session(integration).await?;
        let mut read = Vec::with_capacity(deliveries.len());
        for (headers, body) in deliveries {
            read.push(session.handle_event(&settings, headers, body).await);
        }
        Ok(read)
    }

    /// Computes what an import would change and stores it as a preview.
    pub async fn preview(&self, request: &RunRequest) -> Result<RunReport, SyncError> {
        let integration = self.store.integration(request.integration)?;
        let run = self.begin(&integration, RunKind::Preview, request, None)?;
        let result = self.finish_preview(&integration, run, request).await;
        self.end(run);
        result?;
        self.report(run)
    }

    /// Starts a preview in the background and returns its run at once; its
    /// fetch progress is [`progress`](Self::progress) until it ends.
    pub fn start_preview(self: &Arc<Self>, request: RunRequest) -> Result<RunId, SyncError> {
        let integration = self.store.integration(request.integration)?;
        let run = self.begin(&integration, RunKind::Preview, &request, None)?;
        self.in_background(run, request, |engine, run, request| async move {
            engine.finish_preview(&integration, run, &request).await
        });
        Ok(run)
    }

    /// The pacer of an integration's source, shared by its runs.
    fn pacer(&self, integration: IntegrationId) -> Option<Arc<Pacer>> {
        let (per_minute, burst) = self.pace?;
        let mut pacers = self.pacers.lock().expect("pacers");
        Some(pacers.entry(integration).or_insert_with(|| Arc::new(Pacer::new(per_minute, burst))).clone())
    }

    /// How far the fetch of a run this process holds has come, while it runs.
    pub fn progress(&self, run: RunId) -> Option<Progress> {
        self.live.lock().expect("live runs").get(&run).map(|l| l.progress)
    }

    /// Asks a run to stop — one of this process's, or another's — and
    /// returns it. A run of this process stops at once; another process's
    /// within a heartbeat. Nothing of a cancelled run is applied.
    pub fn cancel(&self, run: RunId, by: Option<&str>) -> Result<Run, SyncError> {
        let stored = self.store.request_cancel(run, by)?;
        if let Some(live) = self.live.lock().expect("live runs").get(&run) {
            *live.why.lock().expect("stop reason") = Some(Stop::Cancelled { by: by.map(String::from) });
            live.stop.cancel();
        }
        Ok(stored)
    }

    /// Runs `work` on its own task with progress tracked under `run`.
    fn in_background<F, Fut>(self: &Arc<Self>, run: RunId, mut request: RunRequest, work: F)
    where
        F: FnOnce(Arc<Self>, RunId, RunRequest) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), SyncError>> + Send + 'static,
    {
        let weak = Arc::downgrade(self);
        let outer = request.progress.take();
        request.progress = Some(Arc::new(move |p| {
            if let Some(engine) = weak.upgrade()
                && let Some(live) = engine.live.lock().expect("live runs").get_mut(&run)
            {
                live.progress = p;
            }
            if let Some(f) = &outer {
                f(p)
            }
        }));
        let engine = self.clone();
        tokio::spawn(async move {
            if let Err(e) = work(engine.clone(), run, request).await {
                tracing::warn!(%run, "background run ended without applying: {e}");
            }
            engine.end(run);
        });
    }

    async fn finish_preview(
        &self,
        integration: &Integration,
        run: RunId,
        request: &RunRequest,
    ) -> Result<(), SyncError> {
        let planned = self.compute_held(integration, run, request).await?;
        let outcome = RunOutcome {
            state: RunState::Succeeded,
            counts: planned.apply.counts.clone(),
            error: None,
            fingerprint: Some(planned.fingerprint.clone()),
            changes: preview_records(&planned.apply),
            issues: planned.apply.issues.clone(),
            kept: planned.apply.kept.clone(),
        };
        self.store.finish_run(run, &outcome).map_err(|e| self.fail(run, e.into()))
    }

    /// Fetches, plans and applies in one transaction.
    pub async fn import(&self, request: &RunRequest) -> Result<RunReport, SyncError> {
        let (integration, run) = self.begin_import(request)?;
        let result = self.finish_import(&integration, run, request).await;
        self.end(run);
        result?;
        self.report(run)
    }

    /// Starts an import in the background and returns its run at once; a
    /// second run of the same integration is refused right here
    /// ([`StoreError::AlreadyRunning`]). The run's state in the store tells
    /// how it ends.
    pub fn start_import(self: &Arc<Self>, request: RunRequest) -> Result<RunId, SyncError> {
        let (integration, run) = self.begin_import(&request)?;
        self.in_background(run, request, |engine, run, request| async move {
            engine.finish_import(&integration, run, &request).await
        });
        Ok(run)
    }

    fn begin_import(&self, request: &RunRequest) -> Result<(Integration, RunId), SyncError> {
        let integration = self.store.integration(request.integration)?;
        if let Some(p) = request.from_preview {
            let preview = self.store.run(p)?;
            if preview.kind != RunKind::Preview || preview.integration_id != integration.id {
                return Err(SyncError::Invalid(format!("run {p} is not a preview of integration {}", integration.id)));
            }
        }
        let run = self.begin(&integration, RunKind::Import, request, None)?;
        Ok((integration, run))
    }

    async fn finish_import(
        &self,
        integration: &Integration,
        run: RunId,
        request: &RunRequest,
    ) -> Result<(), SyncError> {
        let planned = self.compute_held(integration, run, request).await?;
        if let Some(p) = request.from_preview {
            let preview = self.store.run(p)?;
            if preview.fingerprint.as_deref() != Some(planned.fingerprint.as_str()) && !request.accept_drift {
                let e = SyncError::Drift { run, preview: p };
                self.record(run, RunState::Failed, &planned, Some(e.to_string()))?;
                return Err(e);
            }
        }
        if let Some(reason) = plan::safeguard(integration, &planned)
            && (request.automatic || !request.override_safeguard)
        {
            self.record(run, RunState::Blocked, &planned, Some(reason.clone()))?;
            return Err(SyncError::Blocked { run, reason, counts: planned.apply.counts });
        }
        let mut apply = planned.apply;
        // Only automatic imports email people; manual ones never do.
        let invites = request.automatic && integration.config.send_emails;
        if invites {
            apply.invitees = invitees(&apply);
            apply.invite = Some(self.invitations()?);
        }
        self.apply(run, apply, planned.fingerprint).await?;
        if invites {
            self.mail_queued.notify_one();
        }
        Ok(())
    }

    /// Restores the values a run recorded as "before" — for every person, or
    /// one — where no later run changed them since. With `dry_run`, only
    /// reports what it would do.
    pub async fn revert(&self, request: RevertRequest) -> Result<(Apply, RunReport), SyncError> {
        let RevertRequest { run: target, user, field, actor, dry_run, keep } = request;
        let original = self.store.run(target)?;
        if original.kind == RunKind::Preview || original.state != RunState::Succeeded {
            return Err(SyncError::Invalid(format!(
                "run {target} is a {:?} run in state {:?}; only successful imports and reverts can be reverted",
                original.kind, original.state
            )));
        }
        let changes = self.store.run_changes(target, user)?;
        if changes.is_empty() {
            return Err(SyncError::Invalid(match user {
                Some(u) => format!("run {target} did not change user {u}"),
                None => format!("run {target} changed nobody"),
            }));
        }
        if let Some(f) = &field
            && !changes.iter().any(|c| c.fields.iter().any(|g| g.field == *f))
        {
            return Err(SyncError::Invalid(format!("run {target} did not change {} of anyone asked for", f.label())));
        }
        let mut apply = self.plan_revert(&changes, field.as_ref())?;
        if keep {
            apply.keep = keeps(&apply, actor.as_deref());
        }
        let integration = self.store.integration(original.integration_id)?;
        if dry_run {
            let report = RunReport {
                run: Run {
                    id: RunId(0),
                    integration_id: integration.id,
                    kind: RunKind::Revert,
                    trigger: Trigger::Manual,
                    actor,
                    state: RunState::Queued,
                    preview_id: None,
                    reverts_id: Some(target),
                    started_at: Utc::now(),
                    finished_at: None,
                    counts: apply.counts.clone(),
                    error: None,
                    fingerprint: None,
                    since: None,
                    owner: None,
                    cancel_requested_by: None,
                },
                changes: preview_records(&apply),
                issues: apply.issues.clone(),
                kept: Vec::new(),
            };
            return Ok((apply, report));
        }
        let request = RunRequest { actor, ..RunRequest::manual(integration.id) };
        let run = self.begin(&integration, RunKind::Revert, &request, Some(target))?;
        let result = self.apply(run, apply.clone(), String::new()).await;
        self.end(run);
        result?;
        Ok((apply, self.report(run)?))
    }

    /// Starts a run holding `integration` and renews its lease until
    /// [`end`](Self::end).
    fn begin(
        &self,
        integration: &Integration,
        kind: RunKind,
        request: &RunRequest,
        reverts: Option<RunId>,
    ) -> Result<RunId, SyncError> {
        let run = self.store.begin_run(&NewRun {
            integration_id: integration.id,
            kind,
            trigger: match (&request.pushed, request.automatic) {
                (Some(_), _) => Trigger::Event,
                (None, true) => Trigger::Automatic,
                (None, false) => Trigger::Manual,
            },
            actor: request.actor.clone(),
            preview_id: request.from_preview,
            reverts_id: reverts,
            since: request.updated_since,
        })?;
        let stop = CancellationToken::new();
        let why = Arc::new(Mutex::new(None));
        self.live
            .lock()
            .expect("live runs")
            .insert(run, LiveRun { progress: Progress::default(), stop: stop.clone(), why: why.clone() });
        tokio::spawn(keep_alive(self.store.clone(), run, stop, why));
        Ok(run)
    }

    /// The run ended (whichever way): stop renewing its lease.
    fn end(&self, run: RunId) {
        if let Some(live) = self.live.lock().expect("live runs").remove(&run) {
            live.stop.cancel();
        }
    }

    /// [`compute`](Self::compute) while the run holds its lease: stops with
    /// [`SyncError::Cancelled`] as soon as someone cancels the run, and at
    /// the integration's time limit. Failures are recorded under the run.
    async fn compute_held(
        &self,
        integration: &Integration,
        run: RunId,
        request: &RunRequest,
    ) -> Result<Planned, SyncError> {
        let (stop, why) = {
            let live = self.live.lock().expect("live runs");
            let l = live.get(&run).expect("a run this process began");
            (l.stop.clone(), l.why.clone())
        };
        let minutes = integration.config.limits.max_minutes.max(1);
        let limit = Duration::from_secs(u64::from(minutes) * 60);
        let result = tokio::select! {
            biased;
            _ = stop.cancelled() => Err(match why.lock().expect("stop reason").clone() {
                Some(Stop::LeaseLost) => SyncError::Store(StoreError::LeaseLost(run)),
                Some(Stop::Cancelled { by }) => SyncError::Cancelled { run, by },
                None => SyncError::Cancelled { run, by: None },
            }),
            r = tokio::time::timeout(limit, self.compute(integration, request)) => {
                r.unwrap_or(Err(SyncError::TimedOut { run, minutes }))
            }
        };
        result.map_err(|e| self.fail(run, e))
    }

    /// Connector errors since this process started, by kind.
    pub fn connector_errors(&self) -> Vec<(&'static str, u64)> {
        self.errors.lock().expect("errors").iter().map(|(k, n)| (*k, *n)).collect()
    }

    fn count_connector_error(&self, error: &SyncError) {
        let kind = match error {
            e if e.run_error().is_some() => e.run_error().expect("checked").kind(),
            SyncError::Fetch { source: FetchError::RepeatedCursor { .. }, .. } => "repeated-cursor",
            SyncError::Fetch { source: FetchError::LimitExceeded { .. }, .. } => "run-limit",
            SyncError::Fetch { source: FetchError::Incomplete { .. }, .. } => "incomplete-fetch",
            SyncError::Plan { .. } => "invalid-plan",
            _ => return,
        };
        *self.errors.lock().expect("errors").entry(kind).or_default() += 1;
    }

    /// Records a failure under its run and passes it on. A cancelled run is
    /// recorded as such; a run another process took over is not ours to
    /// record.
    fn fail(&self, run: RunId, error: SyncError) -> SyncError {
        let error = error.at(run);
        self.count_connector_error(&error);
        let state = match &error {
            SyncError::Store(StoreError::LeaseLost(_)) => return error,
            SyncError::Cancelled { .. } | SyncError::Store(StoreError::Cancelled(_)) => RunState::Cancelled,
            _ => RunState::Failed,
        };
        let error = match error {
            SyncError::Store(StoreError::Cancelled(run)) => {
                let by = self.store.run(run).ok().and_then(|r| r.cancel_requested_by);
                SyncError::Cancelled { run, by }
            }
            other => other,
        };
        let outcome = RunOutcome {
            state,
            counts: Counts::default(),
            error: Some(error.to_string()),
            fingerprint: None,
            changes: Vec::new(),
            issues: Vec::new(),
            kept: Vec::new(),
        };
        if let Err(e) = self.store.finish_run(run, &outcome) {
            tracing::error!(%run, "could not record the end of run {run}: {e}");
        }
        error
    }

    /// Records a run that ends without applying (drifted, blocked).
    fn record(&self, run: RunId, state: RunState, planned: &Planned, error: Option<String>) -> Result<(), SyncError> {
        let outcome = RunOutcome {
            state,
            counts: planned.apply.counts.clone(),
            error,
            fingerprint: Some(planned.fingerprint.clone()),
            changes: preview_records(&planned.apply),
            issues: planned.apply.issues.clone(),
            kept: planned.apply.kept.clone(),
        };
        self.store.finish_run(run, &outcome).map_err(|e| self.fail(run, e.into()))
    }

    /// Applies in one transaction, fenced by the run's lease: a run that was
    /// cancelled or taken over meanwhile rolls back and is recorded so.
    async fn apply(&self, run: RunId, apply: Apply, fingerprint: String) -> Result<(), SyncError> {
        let store = self.store.clone();
        let result = tokio::task::spawn_blocking(move || store.apply(run, &apply, &fingerprint))
            .await
            .map_err(|e| SyncError::Internal(format!("the import task failed: {e}")))?;
        result.map_err(|e| self.fail(run, SyncError::Store(e)))
    }

    fn report(&self, run: RunId) -> Result<RunReport, SyncError> {
        Ok(RunReport {
            run: self.store.run(run)?,
            changes: self.store.run_changes(run, None)?,
            issues: self.store.run_issues(run)?,
            kept: self.store.run_kept(run)?,
        })
    }

    /// Fetch, diff and plan, without writing.
    async fn compute(&self, integration: &Integration, request: &RunRequest) -> Result<Planned, SyncError> {
        let config = &integration.config;
        let connector = self.connector(&config.connector_id)?;
        let (settings, grants) = session_inputs(&integration.config)?;
        let run = RunId(0);
        // One day for the whole run: the host's rules (and so a connector
        // delegating to `host.canonical-diff`) and the plan check agree on
        // who has started, also when the scheduler runs at midnight.
        let today = request.today.unwrap_or_else(|| Utc::now().date_naive());
        let mut session = self
            .runtime
            .paced_session(connector, grants, self.pacer(integration.id))
            .await
            .map_err(|source| SyncError::Connector { run, source })?;
        session.set_today(today);
        let options = FetchOptions {
            updated_since: request.updated_since.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            retry: self.retry.clone(),
            limits: FetchLimits::from(config.limits),
        };
        let progress = request.progress.clone();
        let fetched = match &request.pushed {
            Some(pushed) => fetch_named(&mut session, &settings, &pushed.ids(), &options).await,
            None => {
                fetch_all(&mut session, &settings, &options, |p| {
                    if let Some(f) = &progress {
                        f(p)
                    }
                })
                .await
            }
        }
        .map_err(|source| SyncError::Fetch { run, source })?;

        let store = self.store.clone();
        let id = integration.id;
        let (current, index, overrides) = tokio::task::spawn_blocking(move || {
            Ok::<_, StoreError>((store.users_for_sync(id)?, store.index()?, store.overrides(None)?))
        })
        .await
        .map_err(|e| SyncError::Internal(format!("reading the directory failed: {e}")))??;
        let mut holding: HashMap<UserId, Vec<Override>> = HashMap::new();
        for o in overrides.into_iter().filter(|o| o.holds_on(today)) {
            holding.entry(o.user_id).or_default().push(o);
        }
        let directory = directory_view(&current, id);
        let options = DiffOptions { complete: fetched.complete, missing_after: config.missing_after.max(1) };
        let diff = session
            .diff(&settings, &directory, &fetched.people, options)
            .await
            .map_err(|source| SyncError::Connector { run, source })?;
        // The instance's linear memory only ever grows: free it, the
        // directory view and the people (their digests stay) before
        // planning, so the peaks do not add up.
        drop(session);
        drop(directory);
        let (received, complete, issues) = (fetched.received, fetched.complete, fetched.issues);
        drop(fetched.people);
        // Announced deleted, and the fetch right after confirms it.
        let deleted: Vec<SourceId> =
            request.pushed.iter().flat_map(|p| &p.deleted).filter(|id| !received.contains_key(*id)).cloned().collect();
        plan::plan(PlanInput {
            connector: &connector.info.id,
            integration,
            current: &current,
            index: &index,
            received: &received,
            complete,
            issues,
            plan: diff,
            today,
            overrides: &holding,
            deleted: &deleted,
        })
        .map_err(|source| SyncError::Plan { run, source })
    }

    /// Restores recorded before-values where the current value is still the
    /// recorded after-value.
    fn plan_revert(&self, changes: &[ChangeRecord], only: Option<&Field>) -> Result<Apply, SyncError> {
        let mut apply = Apply::default();
        for change in changes {
            let Some(id) = change.user_id else { continue };
            let user = match self.store.user(id) {
                Ok(u) => u,
                Err(StoreError::NoUser(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut profile = user.profile.clone();
            let mut manager = user.manager_id;
            let mut restored = Vec::new();
            let current: BTreeMap<Field, Option<String>> = user.profile.fields().into_iter().collect();
            // A creation has no before-values; undoing it deactivates (below).
            let restorable = if change.kind == ChangeKind::Create { &[][..] } else { &change.fields[..] };
            for f in restorable.iter().filter(|f| only.is_none_or(|o| *o == f.field)) {
                let still = if f.field == Field::Manager {
                    user.manager_id == f.after_id
                } else {
                    current.get(&f.field).cloned().flatten() == f.after
                };
                if !still {
                    apply.issues.push(IssueRecord {
                        source_id: change.source_id.clone(),
                        name: Some(change.name.clone()),
                        field: Some(f.field.to_string()),
                        severity: Severity::Warning,
                        message: format!(
                            "{} was changed again after that run (now {}); not reverted",
                            f.field,
                            if f.field == Field::Manager {
                                manager.map_or("none".to_string(), |m| format!("user {m}"))
                            } else {
                                current.get(&f.field).cloned().flatten().unwrap_or_else(|| "empty".into())
                            }
                        ),
                    });
                    continue;
                }
                if f.field == Field::Manager {
                    manager = f.before_id;
                } else if let Err(e) = profile.set_field(&f.field, f.before.clone()) {
                    return Err(SyncError::Invalid(format!("user {id}: cannot restore {}: {e}", f.field)));
                }
                restored.push(FieldChange {
                    field: f.field.clone(),
                    before: f.after.clone(),
                    after: f.before.clone(),
                    before_id: f.after_id,
                    after_id: f.before_id,
                });
            }
            // Undoing a creation leaves the user inactive: people are never deleted.
            if change.kind == ChangeKind::Create && only.is_none() && profile.status != UserStatus::Inactive {
                restored.push(FieldChange {
                    field: Field::Status,
                    before: Some(profile.status.as_str().into()),
                    after: Some(UserStatus::Inactive.as_str().into()),
                    before_id: None,
                    after_id: None,
                });
                profile.status = UserStatus::Inactive;
            }
            // Undoing an adoption unlinks; restoring one of its fields does not.
            let unlink = change.kind == ChangeKind::Link && only.is_none();
            let managed_by = if unlink { None } else { user.managed_by.clone() };
            if restored.is_empty() && managed_by == user.managed_by {
                continue;
            }
            let status = restored.iter().find(|f| f.field == Field::Status).and_then(|f| f.after.as_deref());
            match status {
                Some("inactive") => apply.counts.deactivated += 1,
                Some(_) if user.profile.status == UserStatus::Inactive => apply.counts.reactivated += 1,
                _ => apply.counts.updated += 1,
            }
            if restored.iter().any(|f| f.field == Field::Manager) {
                apply.counts.manager_changes += 1;
            }
            apply.updates.push(PlannedUser {
                target: Target::Existing(id),
                profile: profile.clone(),
                manager: manager.map(Target::Existing),
                managed_by,
                missing_runs: user.missing_runs,
            });
            apply.changes.push(PlannedChange {
                target: Target::Existing(id),
                source_id: change.source_id.clone(),
                name: profile.display_name(),
                kind: ChangeKind::Restore,
                fields: restored,
                manager_after: manager.map(Target::Existing),
            });
        }
        apply.counts.issues = apply.issues.len() as u64;
        Ok(apply)
    }
}

/// What to revert: a run, for everyone or one person; with `keep`, every
/// restored field but the status is kept by an override, so the next sync
/// does not undo the revert.
#[derive(Debug, Clone)]
pub struct RevertRequest {
    pub run: RunId,
    pub user: Option<UserId>,
    /// Only this field (with `user`: one value of one person).
    pub field: Option<Field>,
    pub actor: Option<String>,
    /// Only report what it would do.
    pub dry_run: bool,
    pub keep: bool,
}

impl RevertRequest {
    /// Reverts all of `run`, by `actor`.
    pub fn new(run: RunId, actor: Option<String>) -> Self {
        RevertRequest { run, user: None, field: None, actor, dry_run: false, keep: false }
    }
}

/// Overrides keeping what a revert restores (the status follows the source).
fn keeps(apply: &Apply, by: Option<&str>) -> Vec<NewOverride> {
    apply
        .changes
        .iter()
        .filter_map(|c| match c.target {
            Target::Existing(id) => Some((id, c)),
            Target::New(_) => None,
        })
        .flat_map(|(id, c)| c.fields.iter().map(move |f| (id, f)))
        .filter(|(_, f)| crate::directory::overrides::keepable(&f.field).is_ok())
        .map(|(id, f)| NewOverride {
            user_id: id,
            field: f.field.clone(),
            value: if f.field == Field::Manager { f.after_id.map(|m| m.0.to_string()) } else { f.after.clone() },
            kept_by: by.map(Into::into),
            until: None,
        })
        .collect()
}

/// Renews `run`'s lease until `stop` fires; fires it (with the reason) when
/// someone asks to cancel the run or another process took it over.
async fn keep_alive(
    store: Arc<dyn DirectoryStore>,
    run: RunId,
    stop: CancellationToken,
    why: Arc<Mutex<Option<Stop>>>,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(HEARTBEAT_EVERY) => {}
        }
        let s = store.clone();
        let reason = match tokio::task::spawn_blocking(move || s.heartbeat(run)).await {
            Ok(Ok(Lease::Held)) => continue,
            Ok(Ok(Lease::CancelRequested { by })) => Stop::Cancelled { by },
            Ok(Ok(Lease::Lost)) => Stop::LeaseLost,
            // A busy or failing database: try again at the next beat; the
            // lease outlives several missed ones.
            Ok(Err(e)) => {
                tracing::warn!(%run, "could not renew the lease of run {run}: {e}");
                continue;
            }
            Err(_) => return,
        };
        why.lock().expect("stop reason").get_or_insert(reason);
        stop.cancel();
        return;
    }
}

/// The settings and grants a session for an integration configured so
/// uses. Stored secrets go only to the origins they were entered for.
fn session_inputs(config: &IntegrationConfig) -> Result<(Vec<Entry>, Grants), SyncError> {
    if !config.secrets_bound() {
        return Err(SyncError::Invalid(format!(
            "integration `{}`: its outbound hosts changed since its secrets were entered, so they are not sent anywhere; enter them again on the Configuration tab",
            config.name
        )));
    }
    let settings = config.settings.iter().map(|(k, v)| Entry::new(k.clone(), v.clone())).collect();
    let grants = Grants::parse(&config.grants)
        .map_err(|e| SyncError::Invalid(format!("integration `{}`: granted host {e}", config.name)))?;
    Ok((settings, grants))
}

/// Who an automatic import invites: the people it creates, and those whose
/// start date has come (pending-start → active). The store skips anyone not
/// active or already informed.
fn invitees(apply: &Apply) -> Vec<Target> {
    apply.creates.iter().map(|u| u.target).chain(apply.starters.iter().copied()).collect()
}

/// History records of a plan that has not run: new people have no id yet.
fn preview_records(apply: &Apply) -> Vec<ChangeRecord> {
    apply
        .changes
        .iter()
        .map(|c| ChangeRecord {
            user_id: match c.target {
                Target::Existing(id) => Some(id),
                Target::New(_) => None,
            },
            source_id: c.source_id.clone(),
            name: c.name.clone(),
            kind: c.kind,
            fields: c.fields.clone(),
        })
        .collect()
}

/// The directory as the connector's `diff` sees it: a person's status
/// follows the user's, and a supervisor is the manager's source id when
/// this integration manages the manager.
pub fn directory_view(users: &[User], integration: IntegrationId) -> Vec<DirectoryUser> {
    let source_of: HashMap<UserId, &str> = users
        .iter()
        .filter_map(|u| match &u.managed_by {
            Some((i, s)) if *i == integration => Some((u.id, s.as_str())),
            _ => None,
        })
        .collect();
    users
        .iter()
        .map(|u| {
            let p = &u.profile;
            let source_id = source_of.get(&u.id).map(|s| SourceId::from(*s));
            DirectoryUser {
                user_id: u.id,
                source_id: source_id.clone(),
                status: p.status,
                missing_runs: u.missing_runs,
                person: Person {
                    source_id: source_id.unwrap_or_default(),
                    employee_id: p.employee_id.clone(),
                    first_name: p.first_name.clone(),
                    last_name: p.last_name.clone(),
                    preferred_name: p.preferred_name.clone(),
                    email: Some(p.email.to_string()),
                    gender: p.gender,
                    status: crate::rules::source_status(p.status),
                    supervisor_id: u.manager_id.and_then(|m| source_of.get(&m)).map(|s| (*s).into()),
                    start_date: p.start_date,
                    termination_date: p.termination_date,
                    job_title: p.job_title.clone(),
                    department: p.department.clone(),
                    office: p.office.clone(),
                    team: p.team.clone(),
                    custom: p.custom.iter().map(|(k, v)| Entry::new(k.clone(), v.clone())).collect(),
                    profile_url: p.profile_url.clone(),
                },
            }
        })
        .collect()
}
