//! Drives a connector through a fetch: pages until the cursor runs out,
//! waits out rate limits and transient failures within a bound, maps each
//! page as it arrives, and checks what the connector returns.
//!
//! A fetch is complete or it fails. It stops with an error — never early —
//! when paging repeats a cursor, passes the run's limits, or returns a
//! different number of people than the source said it has: a run that
//! decides who is missing must have seen everyone.

use std::collections::HashMap;
use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::intake::{self, CURSOR_BYTES, Issues, PersonDigest, SOURCE_ID_BYTES};
use crate::directory::RunLimits;
use crate::model::{Entry, FetchRequest, Issue, Mapped, Page, Person, RawRecord, Severity, SourceId};
use crate::runtime::{RunError, Session};

/// How long a run may wait for a rate-limited or failing source.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per page, the first included.
    pub attempts: u32,
    /// Longest single wait; a longer `Retry-After` is clamped to this.
    pub max_wait: Duration,
    /// Total waiting allowed in one run.
    pub total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 6, max_wait: Duration::from_secs(120), total_wait: Duration::from_secs(600) }
    }
}

/// How far one fetch may go.
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    pub max_pages: u64,
    pub max_records: u64,
    /// Bytes of mapped people kept for the run.
    pub max_people_bytes: u64,
}

/// Bytes of mapped people one run keeps: 100,000 people take about 50 MiB.
pub const MAX_PEOPLE_BYTES: u64 = 256 << 20;

impl From<RunLimits> for FetchLimits {
    fn from(l: RunLimits) -> Self {
        FetchLimits {
            max_pages: l.max_pages.into(),
            max_records: l.max_records.into(),
            max_people_bytes: MAX_PEOPLE_BYTES,
        }
    }
}

impl Default for FetchLimits {
    fn default() -> Self {
        RunLimits::default().into()
    }
}

/// Options of one fetch.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Incremental fetch: only records changed since this RFC 3339 instant.
    pub updated_since: Option<String>,
    pub retry: RetryPolicy,
    pub limits: FetchLimits,
}

/// Progress after each page, for progress bars.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub pages: u64,
    pub records: u64,
    pub total: Option<u64>,
}

/// The result of a fetch.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub people: Vec<Person>,
    /// Every source id received, with the digest of the person it mapped
    /// to (`None`: the record could not be mapped). A person received but
    /// not mapped is still present in the source: never counted missing.
    pub received: HashMap<SourceId, Option<PersonDigest>>,
    /// Issues from mapping, plus what the host cut or dropped.
    pub issues: Vec<Issue>,
    pub pages: u64,
    pub records: u64,
    /// Calls retried after `rate-limited` or `temporarily-unavailable`.
    pub retries: u32,
    pub waited: Duration,
    /// True for a full fetch (no `updated_since`): absence means something.
    pub complete: bool,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(
        "gave up after {attempts} attempts and {waited:?} of waiting; the source is still failing, try again later. Last error: {last}"
    )]
    RetriesExhausted { attempts: u32, waited: Duration, last: RunError },
    #[error(
        "connector `{connector}` returned cursor `{cursor}` twice; its paging would never end. Report this to the connector's author."
    )]
    RepeatedCursor { connector: String, cursor: String },
    #[error(
        "the fetch passed the run's limit of {limit} {what} (at page {page}); nothing was changed. If the source really is that large, raise the integration's limit; otherwise the connector is paging without end — report it to its author."
    )]
    LimitExceeded { what: &'static str, limit: u64, page: u64 },
    #[error(
        "the source returned {received} of {total} people; nothing was changed. The source's list changed while it was read, or its paging skipped people; the next run tries again."
    )]
    Incomplete { received: u64, total: u64 },
}

impl FetchError {
    /// The connector error behind this failure, if the connector reported one.
    pub fn run_error(&self) -> Option<&RunError> {
        match self {
            FetchError::Run(r) | FetchError::RetriesExhausted { last: r, .. } => Some(r),
            _ => None,
        }
    }
}

/// Fetches and maps every page.
pub async fn fetch_all(
    session: &mut Session,
    settings: &[Entry],
    options: &FetchOptions,
    mut progress: impl FnMut(Progress),
) -> Result<Fetched, FetchError> {
    let limits = options.limits;
    let mut fetched = Fetched { complete: options.updated_since.is_none(), ..Fetched::default() };
    let mut issues = Issues::default();
    let mut seen_cursors: HashSet<String> = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut total = None;
    let mut people_bytes = 0u64;
    loop {
        let request = FetchRequest { cursor: cursor.clone(), updated_since: options.updated_since.clone() };
        let page = fetch_page(session, settings, &request, &options.retry, &mut fetched).await?;
        fetched.pages += 1;
        if fetched.pages > limits.max_pages {
            return Err(FetchError::LimitExceeded { what: "pages", limit: limits.max_pages, page: fetched.pages });
        }
        total = page.total.or(total);

        take(session, settings, &limits, page.records, &mut fetched, &mut issues, &mut people_bytes).await?;
        progress(Progress { pages: fetched.pages, records: fetched.records, total });

        match page.next_cursor {
            None => break,
            Some(next) if next.len() > CURSOR_BYTES => {
                return Err(invalid(session, format!("a cursor of {} bytes (at most {CURSOR_BYTES})", next.len())));
            }
            Some(next) => {
                if !seen_cursors.insert(next.clone()) {
                    return Err(FetchError::RepeatedCursor { connector: session.connector().into(), cursor: next });
                }
                cursor = Some(next);
            }
        }
    }
    // The source said how many people it has: a fetch that received another
    // number did not cover it, whatever the connector believed.
    if let Some(total) = total
        && total != fetched.received.len() as u64
    {
        return Err(FetchError::Incomplete { received: fetched.received.len() as u64, total });
    }
    fetched.issues = issues.into_vec();
    Ok(fetched)
}

/// Checks, maps and keeps one batch of records: ids present, bounded and
/// new to this fetch; the people bounded, digested and within the run's limits.
async fn take(
    session: &mut Session,
    settings: &[Entry],
    limits: &FetchLimits,
    batch: Vec<RawRecord>,
    fetched: &mut Fetched,
    issues: &mut Issues,
    people_bytes: &mut u64,
) -> Result<(), FetchError> {
    let mut records = Vec::with_capacity(batch.len());
    for record in batch {
        if record.source_id.as_str().trim().is_empty() {
            issues.push(host_issue(None, "the connector returned a record without a source id; skipped"));
        } else if record.source_id.as_str().len() > SOURCE_ID_BYTES {
            return Err(invalid(
                session,
                format!("a source id of {} bytes (at most {SOURCE_ID_BYTES})", record.source_id.as_str().len()),
            ));
        } else if fetched.received.contains_key(&record.source_id) {
            issues
                .push(host_issue(Some(&record.source_id), "returned twice by the source; the second copy was skipped"));
        } else {
            fetched.received.insert(record.source_id.clone(), None);
            records.push(record);
        }
    }
    fetched.records += records.len() as u64;
    if fetched.records > limits.max_records {
        return Err(FetchError::LimitExceeded { what: "records", limit: limits.max_records, page: fetched.pages });
    }
    if records.is_empty() {
        return Ok(());
    }
    let mut mapped = session.map_fields(settings, &records).await?;
    check_mapped(session.connector(), &records, &mapped)?;
    for person in &mut mapped.people {
        issues.extend(intake::bound_person(person));
        *people_bytes += intake::person_bytes(person) as u64;
        fetched.received.insert(person.source_id.clone(), Some(intake::digest(person)));
    }
    if *people_bytes > limits.max_people_bytes {
        return Err(FetchError::LimitExceeded {
            what: "bytes of people",
            limit: limits.max_people_bytes,
            page: fetched.pages,
        });
    }
    fetched.people.extend(mapped.people);
    issues.extend(mapped.issues);
    Ok(())
}

/// Ids per `fetch-people` call: the contract's most. A call is the unit a
/// connector can tidy up after (Personio revokes its token at the end of
/// each), so fewer, larger calls cost the source fewer requests; a hundred
/// people at a request or two each stay well within the 120 s of a call.
pub const PEOPLE_PER_CALL: usize = 100;

/// Fetches and maps exactly these people (contract 0.4.0 `fetch-people`), in
/// calls of at most [`PEOPLE_PER_CALL`], each retried like a page. Never
/// complete: nobody absent from it is missing. A record for someone not
/// asked for is refused: the plan covers only the people the event named.
pub async fn fetch_named(
    session: &mut Session,
    settings: &[Entry],
    ids: &[SourceId],
    options: &FetchOptions,
) -> Result<Fetched, FetchError> {
    let mut fetched = Fetched { complete: false, ..Fetched::default() };
    let mut issues = Issues::default();
    let mut people_bytes = 0u64;
    for chunk in ids.chunks(PEOPLE_PER_CALL) {
        let records = fetch_chunk(session, settings, chunk, &options.retry, &mut fetched).await?;
        fetched.pages += 1;
        take(session, settings, &options.limits, records, &mut fetched, &mut issues, &mut people_bytes).await?;
    }
    fetched.issues = issues.into_vec();
    Ok(fetched)
}

/// One `fetch-people` call, retried while the source is busy; only people
/// asked for may come back.
async fn fetch_chunk(
    session: &mut Session,
    settings: &[Entry],
    chunk: &[SourceId],
    retry: &RetryPolicy,
    fetched: &mut Fetched,
) -> Result<Vec<RawRecord>, FetchError> {
    let mut attempt = 1;
    let records = loop {
        match session.fetch_people(settings, chunk).await {
            Ok(records) => break records,
            Err(error) => wait_to_retry(session.connector().to_owned(), error, retry, fetched, attempt).await?,
        }
        attempt += 1;
    };
    if let Some(stranger) = records.iter().find(|r| !chunk.contains(&r.source_id)) {
        return Err(invalid(session, format!("fetch-people returned `{}`, who was not asked for", stranger.source_id)));
    }
    Ok(records)
}

fn invalid(session: &Session, reason: String) -> FetchError {
    FetchError::Run(RunError::InvalidOutput { connector: session.connector().into(), reason })
}

/// Fetches one page, waiting and retrying while the connector says the
/// source is rate limited or temporarily unavailable.
async fn fetch_page(
    session: &mut Session,
    settings: &[Entry],
    request: &FetchRequest,
    policy: &RetryPolicy,
    fetched: &mut Fetched,
) -> Result<Page, FetchError> {
    let mut attempt = 1;
    loop {
        let error = match session.fetch_page(settings, request).await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        wait_to_retry(session.connector().to_owned(), error, policy, fetched, attempt).await?;
        attempt += 1;
    }
}

/// Waits before a failed call is tried again, when the connector said the
/// source is rate limited or temporarily unavailable and the policy allows
/// another attempt; the error to give up with otherwise.
async fn wait_to_retry(
    connector: String,
    error: RunError,
    policy: &RetryPolicy,
    fetched: &mut Fetched,
    attempt: u32,
) -> Result<(), FetchError> {
    let wait = match error.source_error().and_then(|e| e.retry()) {
        Some(r) => Duration::from_secs(r.after_seconds.into()).clamp(Duration::from_millis(100), policy.max_wait),
        None => return Err(error.into()),
    };
    if attempt >= policy.attempts || fetched.waited + wait > policy.total_wait {
        return Err(FetchError::RetriesExhausted { attempts: attempt, waited: fetched.waited, last: error });
    }
    tracing::info!(connector, ?wait, attempt, "{error}; waiting before retrying");
    let started = Instant::now();
    tokio::time::sleep(wait).await;
    fetched.waited += started.elapsed().max(wait);
    fetched.retries += 1;
    Ok(())
}

/// The host does not trust mapped output: every person must come from a
/// record of this page, once. (Impossible dates never get this far: the
/// bindings refuse them.)
fn check_mapped(connector: &str, records: &[RawRecord], mapped: &Mapped) -> Result<(), RunError> {
    let invalid = |reason: String| RunError::InvalidOutput { connector: connector.into(), reason };
    let ids: HashSet<&SourceId> = records.iter().map(|r| &r.source_id).collect();
    let mut people = HashSet::new();
    for p in &mapped.people {
        if !ids.contains(&p.source_id) {
            return Err(invalid(format!(
                "map-fields returned person `{}`, who was not among the records given",
                p.source_id
            )));
        }
        if !people.insert(&p.source_id) {
            return Err(invalid(format!("map-fields returned person `{}` twice", p.source_id)));
        }
    }
    Ok(())
}

fn host_issue(source_id: Option<&SourceId>, message: &str) -> Issue {
    Issue { source_id: source_id.cloned(), name: None, field: None, severity: Severity::Error, message: message.into() }
}
