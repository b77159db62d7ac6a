//! What the sync engine, the scheduler, the courier and the pages need
//! from storage, one trait per aggregate: integrations, people, overrides, runs with
//! their history, schedules, the mail outbox, and webhook deliveries. [`DirectoryStore`] is all
//! of them, for the places that hold one handle to everything.

use chrono::{DateTime, NaiveDate, Utc};

use super::*;
use crate::mail::{MailRecord, Message};

/// Configured integrations; secret settings sealed at rest.
pub trait IntegrationStore: Send + Sync {
    /// Stores a new integration; its secrets are bound to its grants unless
    /// `secrets_for` says otherwise.
    fn create_integration(&self, config: &IntegrationConfig) -> Result<IntegrationId, StoreError>;
    fn update_integration(&self, id: IntegrationId, config: &IntegrationConfig) -> Result<(), StoreError>;
    fn integration(&self, id: IntegrationId) -> Result<Integration, StoreError>;
    fn integrations(&self) -> Result<Vec<Integration>, StoreError>;
    /// The company's name as password emails greet new people with it, if
    /// an admin has set it.
    fn company_name(&self) -> Result<Option<String>, StoreError>;
    /// Sets the company's name; it must not be blank.
    fn set_company_name(&self, name: &str) -> Result<(), StoreError>;
}

/// The directory's users.
pub trait PeopleStore: Send + Sync {
    fn create_user(&self, user: &NewUser) -> Result<UserId, StoreError>;
    fn user(&self, id: UserId) -> Result<User, StoreError>;
    fn users(&self, query: &UserQuery) -> Result<(Vec<User>, u64), StoreError>;
    /// The departments and managers the directory can be filtered by, sorted by name.
    fn facets(&self) -> Result<Facets, StoreError>;
    /// Users a run of `integration` may see: those it manages and the unmanaged ones.
    fn users_for_sync(&self, integration: IntegrationId) -> Result<Vec<User>, StoreError>;
    /// Every user's manager, email and name: what a run checks reporting
    /// lines and email uniqueness against, across all integrations.
    fn index(&self) -> Result<Vec<IndexEntry>, StoreError>;
    /// Changes a user no integration manages (a managed one is refused with
    /// [`StoreError::Managed`]: the source owns them).
    fn edit_user(&self, id: UserId, user: &NewUser) -> Result<(), StoreError>;
    /// Creates and edits unmanaged users in one transaction (a CSV upload):
    /// all of them or, on the first error, none. Returns each row's user.
    fn write_roster(&self, rows: &[RosterRow]) -> Result<Vec<UserId>, StoreError>;
}

/// Overrides: fields admins keep against the source.
pub trait OverrideStore: Send + Sync {
    /// Keeps `field` of `user` at its current value, replacing an earlier
    /// override of that field. The status cannot be kept.
    fn keep(
        &self,
        user: UserId,
        field: &Field,
        by: Option<&str>,
        until: Option<NaiveDate>,
    ) -> Result<Override, StoreError>;
    /// Removes an override; whether there was one.
    fn unkeep(&self, user: UserId, field: &Field) -> Result<bool, StoreError>;
    /// The overrides of one user, or of everyone, by user and field.
    fn overrides(&self, user: Option<UserId>) -> Result<Vec<Override>, StoreError>;
    /// What a run's overrides kept against the source.
    fn run_kept(&self, run: RunId) -> Result<Vec<KeptValue>, StoreError>;
}

/// Runs, their leases, and the history they record. Applying a run writes users too: one transaction, so nothing is half-applied.
pub trait RunStore: Send + Sync {
    /// Who this handle is to other processes (`host:pid:nonce`): the owner
    /// of the runs it begins.
    fn owner(&self) -> &str;
    /// Starts a run owned by this handle, holding a lease on its
    /// integration. Refuses ([`StoreError::AlreadyRunning`]) while another
    /// run of the integration — of any kind, in any process — holds a fresh
    /// lease; a run whose lease expired is marked interrupted first.
    fn begin_run(&self, run: &NewRun) -> Result<RunId, StoreError>;
    /// Renews the lease of a run this handle owns, and says whether someone
    /// asked to cancel it or another process took it over.
    fn heartbeat(&self, run: RunId) -> Result<Lease, StoreError>;
    /// Asks a running run to stop. Its process stops it within a heartbeat
    /// and records it cancelled; a run whose process is gone is marked
    /// cancelled at once.
    fn request_cancel(&self, run: RunId, by: Option<&str>) -> Result<Run, StoreError>;
    /// Ends a run this handle owns without writing users (previews,
    /// failures, blocked and cancelled runs); [`StoreError::LeaseLost`] if
    /// it no longer owns it.
    fn finish_run(&self, id: RunId, outcome: &RunOutcome) -> Result<(), StoreError>;
    /// Writes users, history and the run's end in one transaction — only
    /// while this handle still owns the run and nobody asked to cancel it
    /// ([`StoreError::LeaseLost`], [`StoreError::Cancelled`]).
    fn apply(&self, id: RunId, apply: &Apply, fingerprint: &str) -> Result<(), StoreError>;
    fn run(&self, id: RunId) -> Result<Run, StoreError>;
    /// Every run, newest first.
    fn runs(&self, integration: Option<IntegrationId>, offset: u64, limit: u64) -> Result<Vec<Run>, StoreError> {
        self.history(integration, RunFilter::ALL, offset, limit)
    }
    /// The runs `filter` keeps, newest first.
    fn history(
        &self,
        integration: Option<IntegrationId>,
        filter: RunFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Run>, StoreError>;
    fn run_changes(&self, id: RunId, user: Option<UserId>) -> Result<Vec<ChangeRecord>, StoreError>;
    /// One page of a run's changes, filtered, with the filtered total.
    fn run_changes_page(&self, id: RunId, filter: &ChangeFilter) -> Result<(Vec<ChangeRecord>, u64), StoreError>;
    fn run_issues(&self, id: RunId) -> Result<Vec<IssueRecord>, StoreError>;
    /// Every change applied to one user (by imports and reverts that
    /// succeeded), newest first, with its run.
    fn user_history(&self, user: UserId) -> Result<Vec<(RunId, ChangeRecord)>, StoreError>;
    /// Totals per run kind and state, for metrics.
    fn run_stats(&self) -> Result<Vec<RunStat>, StoreError>;
}

/// The scheduler's state per integration.
pub trait ScheduleStore: Send + Sync {
    /// The scheduler's state of an integration, if it has any.
    fn schedule(&self, integration: IntegrationId) -> Result<Option<Schedule>, StoreError>;
    fn save_schedule(&self, schedule: &Schedule) -> Result<(), StoreError>;
    /// Takes a due run: moves the integration's next run from `seen` (as
    /// read) to `until` in one step, and says whether this caller did it.
    /// Of several schedulers — replicas, processes — that saw the same due
    /// run, exactly one gets `true`; a claimer that dies leaves the run due
    /// again at `until`.
    fn claim_schedule(
        &self,
        integration: IntegrationId,
        seen: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Brings a next run that lies further out than the interval allows
    /// (it was shortened) forward to `to` — unless the schedule changed
    /// since it was read as `seen`, or `seen` is a claim's end, not a
    /// scheduled time. Says whether it did.
    fn shorten_schedule(
        &self,
        integration: IntegrationId,
        seen: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// How many of `integration`'s pending-start users have reached their
    /// start date by `today`: only a complete run sees a date pass.
    fn starts_due(&self, integration: IntegrationId, today: NaiveDate) -> Result<u64, StoreError>;
}

/// The transactional outbox of mail, and the set-password invitations it carries.
pub trait OutboxStore: Send + Sync {
    /// Queues a set-password email for each of `users` who is active (an
    /// earlier unused link stops working); returns who was invited.
    fn invite(
        &self,
        users: &[UserId],
        writer: &dyn InvitationWriter,
        now: DateTime<Utc>,
    ) -> Result<Vec<UserId>, StoreError>;
    fn enqueue_mail(&self, message: &Message, run: Option<RunId>, now: DateTime<Utc>) -> Result<i64, StoreError>;
    /// Takes up to `limit` due messages for sending, reserved for `lease`.
    fn claim_mail(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> Result<Vec<MailRecord>, StoreError>;
    fn mail_sent(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Records a failed attempt; `retry_at` `None` gives the message up.
    fn mail_failed(&self, id: i64, error: &str, retry_at: Option<DateTime<Utc>>) -> Result<(), StoreError>;
    /// Newest first.
    fn mails(&self, offset: u64, limit: u64) -> Result<(Vec<MailRecord>, u64), StoreError>;
    /// The person a valid, unused, unexpired set-password token belongs to.
    fn invitation_user(&self, token: &str, now: DateTime<Utc>) -> Result<Option<User>, StoreError>;
    /// Uses the token once: stores the password hash; `None` if the token is
    /// unknown, used or expired.
    fn redeem_invitation(
        &self,
        token: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError>;
}

/// Webhook subscriptions and the deliveries they bring (contract 0.4.0
/// `hr-events`): stored when they arrive, processed after.
pub trait HookStore: Send + Sync {
    fn subscription(&self, integration: IntegrationId) -> Result<Option<hooks::HookSubscription>, StoreError>;
    /// The subscription whose endpoint is `/hooks/<hook>`.
    fn subscription_by_hook(&self, hook: &str) -> Result<Option<hooks::HookSubscription>, StoreError>;
    /// Stores (or replaces) an integration's subscription.
    fn save_subscription(&self, subscription: &hooks::HookSubscription) -> Result<(), StoreError>;
    /// Whether there was one.
    fn remove_subscription(&self, integration: IntegrationId) -> Result<bool, StoreError>;
    /// Stores a delivery as pending; its id.
    fn receive_event(&self, event: &hooks::NewEvent) -> Result<i64, StoreError>;
    /// Claims an integration's oldest pending deliveries — at most `limit`
    /// of those nobody holds at `now` — until `until`, oldest first: of
    /// processes or replicas that look at once, each delivery goes to one,
    /// and one that dies holding some leaves them to others once the claim
    /// lapses.
    fn claim_events(
        &self,
        integration: IntegrationId,
        limit: u64,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<hooks::PendingEvent>, StoreError>;
    /// Gives back claimed deliveries that are still pending (their run
    /// could not start), for whoever looks next.
    fn release_events(&self, ids: &[i64]) -> Result<(), StoreError>;
    /// Integrations with pending deliveries nobody holds at `now`, the
    /// longest waiting first.
    fn pending_integrations(&self, now: DateTime<Utc>) -> Result<Vec<hooks::Waiting>, StoreError>;
    /// Records how deliveries ended, in one transaction.
    fn finish_events(&self, ends: &[hooks::EventEnd], now: DateTime<Utc>) -> Result<(), StoreError>;
}

/// Every store of the directory: what one handle to the database offers.
pub trait DirectoryStore:
    IntegrationStore + PeopleStore + OverrideStore + RunStore + ScheduleStore + OutboxStore + HookStore
{
}

impl<T: IntegrationStore + PeopleStore + OverrideStore + RunStore + ScheduleStore + OutboxStore + HookStore>
    DirectoryStore for T
{
}
