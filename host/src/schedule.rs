//! Automatic imports: runs each integration that has them on at its
//! interval, with jitter, incrementally where the connector can, and with a
//! complete run at least daily — and on the first run of a day on which a
//! pending starter's start date comes, so they are activated (and invited)
//! that day.
//!
//! All decisions are made in [`Scheduler::tick`] against an injected
//! [`Clock`], and the state each decision needs (next run, last successful
//! and last complete run, failure streak) is persisted in the directory, so
//! tests can drive time and a restart neither skips nor doubles a run.
//! Failures retry with back-off; a streak of failures, or a run blocked by
//! the mass-change safeguard, sends the admins one alert.
//!
//! [`Schedulers`] drives the scheduler of every tenant a process serves.
//! Several processes or replicas may schedule the same integrations: each
//! due run is claimed ([`crate::directory::ScheduleStore::claim_schedule`])
//! before it starts, so exactly one of them runs it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::directory::{Email, Integration, IntegrationId, Schedule, StoreError};
use crate::model::TenantId;
use crate::sync::engine::RunRequest;
use crate::sync::{SyncEngine, SyncError};
use crate::tenancy::Tenancy;

/// The time, injectable so tests can move it.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A complete run at least this often: deletions and changes that do not
/// touch `last_modified_at` only show in complete runs.
pub const FULL_RUN_EVERY: chrono::Duration = chrono::Duration::hours(24);
/// Incremental runs overlap the previous one by this much, for clock skew
/// between hrsync and the source.
pub const OVERLAP: chrono::Duration = chrono::Duration::minutes(2);
/// Failed runs in a row before the admins are alerted.
pub const ALERT_AFTER: u32 = 3;
/// How long a claimed run stays claimed beyond the integration's longest
/// run (`max_run_minutes`): the apply after the fetch, and clock skew
/// between replicas. A claim cannot lapse while its run is going on, so no
/// other scheduler starts the same run twice; if the claimer dies, the run
/// is due again when the claim lapses.
pub const CLAIM_MARGIN: chrono::Duration = chrono::Duration::minutes(1);

/// Integrations due together run side by side, this many at once: a slow
/// complete run of one company does not hold back the others, while the
/// memory of the connector instances stays bounded.
pub const PARALLEL_RUNS: usize = 4;

/// What the scheduler did with one integration in one tick.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// First sight: the first run was scheduled.
    Scheduled {
        at: DateTime<Utc>,
    },
    /// Ran; `incremental` tells whether only changes were fetched.
    Ran {
        incremental: bool,
        next: DateTime<Utc>,
    },
    Failed {
        failures: u32,
        next: DateTime<Utc>,
        alerted: bool,
    },
    Blocked {
        next: DateTime<Utc>,
        alerted: bool,
    },
    /// Another run of the integration was running (in any process), tried
    /// next tick; or another scheduler (a replica) took this due run.
    Busy,
    /// An admin cancelled the run: not a failure, the next comes at the interval.
    Cancelled {
        next: DateTime<Utc>,
    },
}

/// Runs automatic imports.
pub struct Scheduler {
    engine: Arc<SyncEngine>,
    clock: Arc<dyn Clock>,
    rng: Mutex<StdRng>,
    /// Who gets alerts.
    pub alert_to: Vec<Email>,
    /// Where the admin pages are, for links in alerts.
    pub public_url: String,
}

impl Scheduler {
    pub fn new(engine: Arc<SyncEngine>, clock: Arc<dyn Clock>, seed: u64) -> Self {
        Scheduler {
            engine,
            clock,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            alert_to: Vec::new(),
            public_url: "http://127.0.0.1:8080".into(),
        }
    }

    /// A random offset in `[0, span)`, so integrations do not fire together.
    fn jitter(&self, span: chrono::Duration) -> chrono::Duration {
        let ms = span.num_milliseconds().max(1);
        chrono::Duration::milliseconds(self.rng.lock().expect("rng").random_range(0..ms))
    }

    /// The interval with ±10 % jitter.
    pub fn next_after(&self, from: DateTime<Utc>, interval_minutes: u32) -> DateTime<Utc> {
        let interval = chrono::Duration::minutes(interval_minutes.clamp(5, 1440) as i64);
        from + interval - interval / 10 + self.jitter(interval / 5)
    }

    /// After `failures` failed runs in a row: 1, 2, 4 … minutes, never
    /// longer than the interval.
    pub fn retry_after(failures: u32, interval_minutes: u32) -> chrono::Duration {
        let minutes = 1i64 << failures.saturating_sub(1).min(20);
        chrono::Duration::minutes(minutes.min(interval_minutes.clamp(5, 1440) as i64))
    }

    /// Runs every integration that is due now, up to [`PARALLEL_RUNS`] at
    /// once; returns what happened.
    pub async fn tick(&self) -> Result<Vec<(IntegrationId, Outcome)>, StoreError> {
        let store = self.engine.store().clone();
        let integrations = store.integrations()?;
        let mut outcomes = Vec::new();
        let mut due = Vec::new();
        for integration in integrations.into_iter().filter(|i| i.config.auto_import) {
            let now = self.clock.now();
            let schedule = match store.schedule(integration.id)? {
                Some(s) => s,
                None => {
                    // First sight: soon, but not all at once.
                    let interval = chrono::Duration::minutes(integration.config.interval_minutes.min(10) as i64);
                    let at = now + self.jitter(interval);
                    store.save_schedule(&Schedule::first(integration.id, at))?;
                    outcomes.push((integration.id, Outcome::Scheduled { at }));
                    continue;
                }
            };
            // A shorter interval saved since the last run takes effect now,
            // not after the old, longer wait.
            let longest = now + chrono::Duration::minutes(integration.config.interval_minutes as i64) * 11 / 10;
            let schedule = if schedule.next_run_at > longest {
                // Only a scheduled time, and only if nobody changed it since
                // (a claim's end lies out as far, and must stay).
                let sooner = self.next_after(now, integration.config.interval_minutes);
                if !store.shorten_schedule(integration.id, schedule.next_run_at, sooner)? {
                    continue;
                }
                Schedule { next_run_at: sooner, ..schedule }
            } else {
                schedule
            };
            if now < schedule.next_run_at {
                continue;
            }
            due.push((integration, schedule, now));
        }
        let mut runs = futures::stream::iter(due)
            .map(|(integration, schedule, now)| async move {
                let outcome = self.run(&integration, schedule, now).await;
                (integration.id, outcome)
            })
            .buffer_unordered(PARALLEL_RUNS);
        // Every started run finishes before an error is returned: dropping
        // the others midway would leave their runs for the restart to clean up.
        let mut error = None;
        while let Some((id, outcome)) = runs.next().await {
            match outcome {
                Ok(outcome) => outcomes.push((id, outcome)),
                Err(e) => error = error.or(Some(e)),
            }
        }
        error.map_or(Ok(outcomes), Err)
    }

    /// When the next integration is due, if any has automatic imports on.
    pub fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let store = self.engine.store();
        let mut next = None;
        for i in store.integrations()?.into_iter().filter(|i| i.config.auto_import) {
            let at = store.schedule(i.id)?.map_or(self.clock.now(), |s| s.next_run_at);
            next = Some(next.map_or(at, |n: DateTime<Utc>| n.min(at)));
        }
        Ok(next)
    }

    async fn run(&self, integration: &Integration, mut s: Schedule, now: DateTime<Utc>) -> Result<Outcome, StoreError> {
        let incremental_capable = self
            .engine
            .connector(&integration.config.connector_id)
            .is_ok_and(|c| c.info.capabilities.incremental_fetch);
        let store = self.engine.store().clone();
        // Other schedulers (replicas, processes) may have seen the same due
        // run: whoever moves the schedule first runs it.
        let minutes = i64::from(integration.config.limits.max_minutes.max(1));
        let until = now + chrono::Duration::minutes(minutes) + CLAIM_MARGIN;
        if !store.claim_schedule(integration.id, s.next_run_at, until)? {
            return Ok(Outcome::Busy);
        }
        let today = now.date_naive();
        // A start date passing changes nobody's `last_modified_at`, so only
        // a complete run turns pending starters active (and invites them):
        // the first run of a day on which someone starts is complete.
        let starts_due = s.last_full_at.is_some_and(|full| full.date_naive() < today)
            && store.starts_due(integration.id, today)? > 0;
        let since = match (s.last_success_at, s.last_full_at) {
            (Some(success), Some(full)) if incremental_capable && now - full < FULL_RUN_EVERY && !starts_due => {
                Some(success - OVERLAP)
            }
            _ => None,
        };
        let request = RunRequest {
            automatic: true,
            actor: Some("scheduler".into()),
            updated_since: since,
            today: Some(today),
            ..RunRequest::manual(integration.id)
        };
        let interval = integration.config.interval_minutes;
        let outcome = match self.engine.import(&request).await {
            Ok(report) => {
                // The source compares `updated_since` with its own clock:
                // remember when the run really started, not the scheduler's time.
                s.last_success_at = Some(report.run.started_at);
                if since.is_none() {
                    s.last_full_at = Some(now);
                }
                s.failures = 0;
                s.alerted = false;
                s.last_error = None;
                s.next_run_at = self.next_after(now, interval);
                Outcome::Ran { incremental: since.is_some(), next: s.next_run_at }
            }
            Err(SyncError::Store(StoreError::AlreadyRunning(_))) => {
                // Due still: give the claim back, so the next tick tries again.
                store.save_schedule(&s)?;
                return Ok(Outcome::Busy);
            }
            Err(SyncError::Cancelled { .. }) => {
                s.next_run_at = self.next_after(now, interval);
                Outcome::Cancelled { next: s.next_run_at }
            }
            Err(SyncError::Store(e)) => return Err(e),
            Err(e @ SyncError::Blocked { .. }) => {
                // Retrying soon would block again: wait a whole interval.
                s.failures += 1;
                s.last_error = Some(e.to_string());
                s.next_run_at = self.next_after(now, interval);
                let alerted = self.alert_once(integration, &mut s, &e, e.run(), now)?;
                Outcome::Blocked { next: s.next_run_at, alerted }
            }
            Err(e) => {
                s.failures += 1;
                s.last_error = Some(e.to_string());
                s.next_run_at = now + Self::retry_after(s.failures, interval);
                let alerted = if s.failures >= ALERT_AFTER {
                    self.alert_once(integration, &mut s, &e, e.run(), now)?
                } else {
                    false
                };
                Outcome::Failed { failures: s.failures, next: s.next_run_at, alerted }
            }
        };
        store.save_schedule(&s)?;
        Ok(outcome)
    }

    /// Queues one alert per streak; returns whether this call queued it.
    fn alert_once(
        &self,
        integration: &Integration,
        s: &mut Schedule,
        error: &SyncError,
        run: Option<crate::directory::RunId>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if s.alerted {
            return Ok(false);
        }
        s.alerted = true;
        let link = format!("{}/integrations/{}/history", self.public_url.trim_end_matches('/'), integration.id);
        let problem = match error {
            SyncError::Blocked { .. } => format!("An automatic import was blocked and nothing was applied: {error}"),
            _ => format!("{} automatic imports in a row failed. The last error: {error}", s.failures),
        };
        for to in &self.alert_to {
            let message = crate::mail::alert(to, &integration.config.name, &problem, &link);
            self.engine.store().enqueue_mail(&message, run, now)?;
        }
        if self.alert_to.is_empty() {
            tracing::warn!(integration = %integration.id, "{problem} (no alert address is configured)");
        }
        self.engine.mail_queued.notify_one();
        Ok(true)
    }
}

/// The schedulers of every tenant a process serves, made on first use.
/// A single-company install has one; on PostgreSQL, one query finds the
/// tenants with due runs, whatever their number.
pub struct Schedulers {
    tenancy: Arc<Tenancy>,
    clock: Arc<dyn Clock>,
    seed: u64,
    /// Who gets alerts, for every tenant: the deployment's operators.
    pub alert_to: Vec<Email>,
    /// Where the admin pages are, for links in alerts.
    pub public_url: String,
    each: Mutex<HashMap<TenantId, Arc<Scheduler>>>,
}

impl Schedulers {
    pub fn new(tenancy: Arc<Tenancy>, clock: Arc<dyn Clock>, seed: u64) -> Self {
        Schedulers {
            tenancy,
            clock,
            seed,
            alert_to: Vec::new(),
            public_url: "http://127.0.0.1:8080".into(),
            each: Mutex::default(),
        }
    }

    fn scheduler(&self, tenant: TenantId) -> Result<Arc<Scheduler>, StoreError> {
        if let Some(s) = self.each.lock().expect("schedulers").get(&tenant) {
            return Ok(s.clone());
        }
        let engine = self.tenancy.scope(tenant)?.engine.clone();
        let mut scheduler = Scheduler::new(engine, self.clock.clone(), self.seed ^ tenant.0 as u64);
        scheduler.alert_to = self.alert_to.clone();
        scheduler.public_url = self.public_url.clone();
        let scheduler = Arc::new(scheduler);
        self.each.lock().expect("schedulers").insert(tenant, scheduler.clone());
        Ok(scheduler)
    }

    /// The tenants whose schedulers have something to do now.
    fn due_tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        match self.tenancy.database() {
            Some(pg) => pg.tenants_with_due_runs(self.clock.now()),
            None => Ok(vec![self.tenancy.default_scope().tenant]),
        }
    }

    /// Ticks every tenant with due runs, [`PARALLEL_RUNS`] tenants at once.
    pub async fn tick(&self) -> Result<Vec<(TenantId, IntegrationId, Outcome)>, StoreError> {
        let mut ticks = futures::stream::iter(self.due_tenants()?)
            .map(|tenant| async move {
                let scheduler = self.scheduler(tenant)?;
                Ok::<_, StoreError>((tenant, scheduler.tick().await?))
            })
            .buffer_unordered(PARALLEL_RUNS);
        let (mut outcomes, mut error) = (Vec::new(), None);
        while let Some(tick) = ticks.next().await {
            match tick {
                Ok((tenant, done)) => outcomes.extend(done.into_iter().map(|(id, o)| (tenant, id, o))),
                Err(e) => error = error.or(Some(e)),
            }
        }
        error.map_or(Ok(outcomes), Err)
    }

    /// When the next run of any tenant is due.
    pub fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self.tenancy.database() {
            Some(pg) => pg.next_scheduled_run(),
            None => self.scheduler(self.tenancy.default_scope().tenant)?.next_due(),
        }
    }

    /// Ticks until `shutdown` resolves, sleeping until the next run is due
    /// — or, on PostgreSQL, until any replica makes a run due sooner — and
    /// at most a minute, so settings changes are picked up.
    pub async fn run_forever(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let sooner = self.tenancy.database().map(|pg| pg.schedule_changes()).unwrap_or_default();
        loop {
            // At most a tick a second, however often other replicas wake it.
            let earliest = tokio::time::Instant::now() + Duration::from_secs(1);
            if let Err(e) = self.tick().await {
                tracing::error!("the scheduler could not read its state: {e}");
            }
            let wait = match self.next_due() {
                Ok(Some(at)) => (at - self.clock.now()).to_std().unwrap_or(Duration::ZERO),
                _ => Duration::from_secs(60),
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = async {
                    tokio::time::sleep_until(earliest).await;
                    sooner.notified().await;
                } => {}
                _ = tokio::time::sleep(wait.clamp(Duration::from_secs(1), Duration::from_secs(60))) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_the_interval() {
        let minutes = |f| Scheduler::retry_after(f, 120).num_minutes();
        assert_eq!([minutes(1), minutes(2), minutes(3), minutes(4)], [1, 2, 4, 8]);
        assert_eq!(minutes(30), 120);
        assert_eq!(Scheduler::retry_after(10, 5).num_minutes(), 5);
    }
}
