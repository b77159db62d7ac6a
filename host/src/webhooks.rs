//! Webhooks: changes the source pushes (contract 0.4.0 `hr-events`).
//!
//! [`Webhooks::subscribe`] registers an integration's endpoint,
//! `/hooks/<hook>` with an unguessable `hook` and a token the source sends
//! back, with its source. [`Webhooks::receive`] checks a delivery (the
//! token in constant time), stores it and answers at once — well within the
//! 3 s Personio waits. [`Webhooks::process_due`] turns stored deliveries
//! into event-driven runs: read by the connector (`handle-event`),
//! de-duplicated, coalesced over a short window, then one import of just
//! the people named, under the same one-run-per-integration rule and
//! safeguards as any import, recorded with the trigger `event`. A person
//! announced deleted is fetched too, and deactivated only when the source
//! confirms it no longer has them. The daily complete run repairs lost
//! deliveries.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use subtle::ConstantTimeEq;

use crate::accounts::token_hash;
use crate::directory::hooks::{EventEnd, EventState, HookSubscription, NewEvent, Waiting};
use crate::directory::{IntegrationId, StoreError};
use crate::model::{Entry, SourceEvent};
use crate::sync::engine::{Pushed, RunRequest};
use crate::sync::{SyncEngine, SyncError};

/// Deliveries larger than this are refused (Personio's are a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Deliveries read per batch, at most.
const BATCH: u64 = 1000;
/// With webhooks on, the complete run that repairs lost deliveries runs daily.
pub const DAILY: u32 = 24 * 60;

/// How a delivery was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// Stored; processed shortly.
    Accepted,
    /// No subscription has this endpoint.
    UnknownHook,
    /// The token is missing or wrong.
    WrongToken,
    /// Larger than [`MAX_BODY_BYTES`].
    TooLarge,
}

impl Receipt {
    pub fn as_str(self) -> &'static str {
        match self {
            Receipt::Accepted => "accepted",
            Receipt::UnknownHook => "unknown-hook",
            Receipt::WrongToken => "wrong-token",
            Receipt::TooLarge => "too-large",
        }
    }
}

/// Deliveries by how they were answered, and how long events took from
/// arrival to the directory (for `/metrics`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    pub deliveries: BTreeMap<&'static str, u64>,
    /// Seconds from a delivery's arrival to its run's end: count, sum, max.
    pub lag_count: u64,
    pub lag_sum: f64,
    pub lag_max: f64,
}

/// Subscriptions, the endpoint's checks and the processing of deliveries.
pub struct Webhooks {
    engine: Arc<SyncEngine>,
    /// Where the source reaches hrsync, e.g. `https://people.acme.example`.
    public_url: String,
    /// How long deliveries are gathered before one run takes them all:
    /// at least `window` after the first, and while more keep coming (one
    /// less than `window` ago) up to `max_window` — a burst becomes a few
    /// large runs instead of many small ones, a lone change waits `window`.
    pub window: Duration,
    pub max_window: Duration,
    /// Notified when a delivery is stored; shared by every tenant's
    /// webhooks of a process, which one worker serves.
    wake: Arc<tokio::sync::Notify>,
    /// Shared like `wake`: `/metrics` counts the process's deliveries.
    counters: Arc<Mutex<Counters>>,
}

impl Webhooks {
    pub fn new(engine: Arc<SyncEngine>, public_url: &str) -> Self {
        Webhooks {
            engine,
            public_url: public_url.trim_end_matches('/').to_string(),
            window: Duration::from_millis(250),
            max_window: Duration::from_secs(1),
            wake: Arc::default(),
            counters: Arc::default(),
        }
    }

    /// These webhooks, sharing `other`'s wake-up, counters and windows:
    /// one worker and one `/metrics` serve every tenant's webhooks of a
    /// process.
    pub fn sharing(self, other: &Webhooks) -> Self {
        Webhooks {
            wake: other.wake.clone(),
            counters: other.counters.clone(),
            window: other.window,
            max_window: other.max_window,
            ..self
        }
    }

    /// What a delivery being stored notifies.
    pub fn wake_handle(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    /// What the process's webhooks received and processed since start.
    pub fn counters(&self) -> Counters {
        self.counters.lock().expect("webhook counters").clone()
    }

    /// Registers the integration's endpoint with its source (replacing an
    /// earlier subscription) and makes the polling a daily complete run.
    /// Needs automatic imports on: events are applied as automatic imports.
    pub async fn subscribe(&self, integration: IntegrationId) -> Result<HookSubscription, SyncError> {
        let store = self.engine.store();
        let mut current = store.integration(integration)?;
        if !current.config.auto_import {
            return Err(SyncError::Invalid(
                "turn on \"Run automatic imports\" first: changes the source pushes are applied as automatic imports are"
                    .into(),
            ));
        }
        if !(self.public_url.starts_with("https://") || self.public_url.starts_with("http://")) {
            return Err(SyncError::Invalid(format!(
                "the public URL `{}` is not an http(s) address the source can reach; set public_url in the config file",
                self.public_url
            )));
        }
        if let Some(old) = store.subscription(integration)? {
            self.engine.unsubscribe(integration, &old.source_id).await?;
        }
        let hook = crate::accounts::random_token("");
        let token = crate::accounts::random_token("");
        let callback = format!("{}/hooks/{hook}", self.public_url);
        let made = self.engine.subscribe(integration, &callback, &token).await?;
        let subscription = HookSubscription {
            integration,
            hook,
            token_hash: token_hash(&token),
            source_id: made.id,
            description: made.description,
            created_at: Utc::now(),
            last_delivery_at: None,
        };
        store.save_subscription(&subscription)?;
        if current.config.interval_minutes < DAILY {
            current.config.interval_minutes = DAILY;
            store.update_integration(integration, &current.config)?;
        }
        Ok(subscription)
    }

    /// Removes the integration's subscription at its source and here; whether there was one.
    pub async fn unsubscribe(&self, integration: IntegrationId) -> Result<bool, SyncError> {
        let store = self.engine.store();
        let Some(subscription) = store.subscription(integration)? else { return Ok(false) };
        self.engine.unsubscribe(integration, &subscription.source_id).await?;
        Ok(store.remove_subscription(integration)?)
    }

    /// One delivery to `/hooks/<hook>`: checked, stored, counted. Quick: one
    /// lookup and one insert; the connector reads it later.
    pub fn receive(&self, hook: &str, headers: Vec<(String, String)>, body: String) -> Result<Receipt, StoreError> {
        let receipt = self.check_and_store(hook, headers, body)?;
        *self.counters.lock().expect("webhook counters").deliveries.entry(receipt.as_str()).or_default() += 1;
        if receipt == Receipt::Accepted {
            self.wake.notify_one();
        }
        Ok(receipt)
    }

    fn check_and_store(&self, hook: &str, headers: Vec<(String, String)>, body: String) -> Result<Receipt, StoreError> {
        let store = self.engine.store();
        let Some(subscription) = store.subscription_by_hook(hook)? else { return Ok(Receipt::UnknownHook) };
        let sent = headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.trim());
        // Personio sends the token verbatim; a `Bearer ` prefix is accepted too.
        let sent = sent.map(|t| t.strip_prefix("Bearer ").unwrap_or(t));
        let matches = sent.is_some_and(|t| token_hash(t).as_bytes().ct_eq(subscription.token_hash.as_bytes()).into());
        if !matches {
            return Ok(Receipt::WrongToken);
        }
        if body.len() > MAX_BODY_BYTES {
            return Ok(Receipt::TooLarge);
        }
        store.receive_event(&NewEvent {
            integration: subscription.integration,
            received_at: Utc::now(),
            headers,
            body,
        })?;
        Ok(Receipt::Accepted)
    }

    /// Every integration with deliveries older than the window: one batch each.
    pub async fn process_due(&self) -> Result<(), SyncError> {
        loop {
            let pending = self.engine.store().pending_integrations(Utc::now())?;
            let Some(waiting) = pending.first().copied() else { return Ok(()) };
            if let Some(wait) = self.gather(&waiting) {
                tokio::time::sleep(wait).await;
                continue;
            }
            match self.process(waiting.integration).await {
                Ok(()) => {}
                // Another run of the integration holds it: try again shortly.
                Err(SyncError::Store(StoreError::AlreadyRunning(_))) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// How much longer to gather an integration's deliveries into one run;
    /// `None`: run now.
    fn gather(&self, waiting: &Waiting) -> Option<Duration> {
        let now = Utc::now();
        let since = |t: chrono::DateTime<Utc>| (now - t).to_std().unwrap_or_default();
        wait_before_run(self.window, self.max_window, since(waiting.oldest), since(waiting.newest))
    }

    /// One batch of an integration's deliveries, claimed for as long as its
    /// run may take: who they name, one run for all of them, and how each
    /// ended. When the run cannot start (another holds the integration, the
    /// database fails), the claim is given back for the next try.
    async fn process(&self, integration: IntegrationId) -> Result<(), SyncError> {
        let store = self.engine.store();
        let minutes = store.integration(integration).map_or(60, |i| i.config.limits.max_minutes.max(1));
        let now = Utc::now();
        let until = now + chrono::Duration::minutes(i64::from(minutes)) + crate::schedule::CLAIM_MARGIN;
        let batch = store.claim_events(integration, BATCH, now, until)?;
        if batch.is_empty() {
            return Ok(());
        }
        match self.run_batch(integration, &batch).await {
            Err(e) => {
                let ids: Vec<i64> = batch.iter().map(|p| p.id).collect();
                if let Err(release) = store.release_events(&ids) {
                    tracing::warn!("giving back webhook deliveries (they wait for their claim to lapse): {release}");
                }
                Err(e)
            }
            Ok(ends) => Ok(store.finish_events(&ends, Utc::now())?),
        }
    }

    /// How each delivery of a claimed batch ended, after the one run they
    /// ask for; an error when the run could not start.
    async fn run_batch(
        &self,
        integration: IntegrationId,
        batch: &[crate::directory::hooks::PendingEvent],
    ) -> Result<Vec<EventEnd>, SyncError> {
        let deliveries: Vec<(Vec<Entry>, String)> = batch
            .iter()
            .map(|e| {
                let headers = e.event.headers.iter().map(|(k, v)| Entry::new(k.clone(), v.clone())).collect();
                (headers, e.event.body.clone())
            })
            .collect();
        let read = match self.engine.read_events(integration, &deliveries).await {
            Ok(read) => read,
            // The database failing is worth another try; anything else (the
            // integration or its connector gone, the connector failing to
            // start) would fail the same way again: these deliveries end
            // here, and the daily complete run covers what they announced.
            Err(e) if matches!(&e, SyncError::Store(s) if !matches!(s, StoreError::NoIntegration(_))) => return Err(e),
            Err(e) => {
                let failed = |p: &crate::directory::hooks::PendingEvent| EventEnd {
                    id: p.id,
                    state: EventState::Failed,
                    outcome: e.to_string(),
                    run: None,
                };
                return Ok(batch.iter().map(failed).collect());
            }
        };
        let mut pushed = Pushed::default();
        let mut ends = Vec::with_capacity(batch.len());
        let mut named = Vec::new();
        for (pending, read) in batch.iter().zip(read) {
            let (ids, into) = match read {
                Ok(SourceEvent::Changed(ids)) => (ids, &mut pushed.changed),
                Ok(SourceEvent::Deleted(ids)) => (ids, &mut pushed.deleted),
                Ok(SourceEvent::Ignored(why)) => {
                    ends.push(EventEnd { id: pending.id, state: EventState::Ignored, outcome: why, run: None });
                    continue;
                }
                Err(e) => {
                    ends.push(EventEnd {
                        id: pending.id,
                        state: EventState::Failed,
                        outcome: e.to_string(),
                        run: None,
                    });
                    continue;
                }
            };
            if ids.is_empty() {
                let outcome = "named nobody".to_string();
                ends.push(EventEnd { id: pending.id, state: EventState::Ignored, outcome, run: None });
                continue;
            }
            for id in ids {
                if !into.contains(&id) {
                    into.push(id);
                }
            }
            named.push(pending.id);
        }
        if !named.is_empty() {
            let request = RunRequest {
                automatic: true,
                actor: Some("webhook".into()),
                pushed: Some(pushed),
                ..RunRequest::manual(integration)
            };
            let (state, outcome, run) = match self.engine.import(&request).await {
                Ok(report) => (EventState::Done, format!("imported in run {}", report.run.id), Some(report.run.id)),
                Err(e @ SyncError::Store(StoreError::AlreadyRunning(_))) => return Err(e),
                Err(e) => (EventState::Failed, e.to_string(), e.run()),
            };
            self.record_lag(batch, &named);
            ends.extend(named.iter().map(|&id| EventEnd { id, state, outcome: outcome.clone(), run }));
        }
        Ok(ends)
    }

    fn record_lag(&self, batch: &[crate::directory::hooks::PendingEvent], named: &[i64]) {
        let now = Utc::now();
        let mut counters = self.counters.lock().expect("webhook counters");
        for pending in batch.iter().filter(|p| named.contains(&p.id)) {
            let lag = (now - pending.event.received_at).num_milliseconds().max(0) as f64 / 1000.0;
            counters.lag_count += 1;
            counters.lag_sum += lag;
            counters.lag_max = counters.lag_max.max(lag);
        }
    }
}

/// How much longer deliveries whose oldest arrived `age` ago and newest
/// `quiet` ago are gathered; `None`: run now.
fn wait_before_run(window: Duration, max_window: Duration, age: Duration, quiet: Duration) -> Option<Duration> {
    if age < window {
        return Some(window - age);
    }
    if age < max_window && quiet < window {
        return Some((window - quiet).min(max_window - age));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_delivery_waits_the_window_and_a_burst_at_most_the_longest_window() {
        let ms = Duration::from_millis;
        let wait = |age, quiet| wait_before_run(ms(250), ms(1000), ms(age), ms(quiet));
        assert_eq!(wait(0, 0), Some(ms(250)), "just arrived");
        assert_eq!(wait(250, 250), None, "nothing came since");
        assert_eq!(wait(500, 10), Some(ms(240)), "more keep coming: gather them");
        assert_eq!(wait(990, 10), Some(ms(10)), "but not past the longest window");
        assert_eq!(wait(1000, 0), None);
        assert_eq!(wait(600, 300), None, "quiet for a window: run");
    }

    #[test]
    fn receipts_have_stable_names() {
        let names: Vec<&str> = [Receipt::Accepted, Receipt::UnknownHook, Receipt::WrongToken, Receipt::TooLarge]
            .map(Receipt::as_str)
            .to_vec();
        assert_eq!(names, ["accepted", "unknown-hook", "wrong-token", "too-large"]);
    }
}
