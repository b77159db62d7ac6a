//! Drives a connector through a complete fetch: pages until the cursor runs
//! out, waits out rate limits and transient failures within a bound, maps
//! each page as it arrives, and checks what the connector returns.

use std::collections::HashSet;
use std::time::Duration;

use crate::runtime::{RunError, Session, wit};

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

/// Options of one fetch.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Incremental fetch: only records changed since this RFC 3339 instant.
    pub updated_since: Option<String>,
    pub retry: RetryPolicy,
}

/// Progress after each page, for progress bars.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub pages: u64,
    pub records: u64,
    pub total: Option<u64>,
}

/// The result of a complete fetch.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub people: Vec<wit::Person>,
    /// Issues from mapping, plus records the host dropped.
    pub issues: Vec<wit::Issue>,
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
}

/// Fetches and maps every page.
pub async fn fetch_all(
    session: &mut Session,
    settings: &[wit::Entry],
    options: &FetchOptions,
    mut progress: impl FnMut(Progress),
) -> Result<Fetched, FetchError> {
    let mut fetched = Fetched { complete: options.updated_since.is_none(), ..Fetched::default() };
    let mut seen_ids: HashSet<String> = HashSet::new();
    let mut seen_cursors: HashSet<String> = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut total = None;
    loop {
        let request = wit::FetchRequest { cursor: cursor.clone(), updated_since: options.updated_since.clone() };
        let page = fetch_page(session, settings, &request, &options.retry, &mut fetched).await?;
        fetched.pages += 1;
        total = page.total.or(total);

        let mut records = Vec::with_capacity(page.records.len());
        for record in page.records {
            if record.source_id.trim().is_empty() {
                fetched.issues.push(host_issue(None, "the connector returned a record without a source id; skipped"));
            } else if !seen_ids.insert(record.source_id.clone()) {
                fetched.issues.push(host_issue(
                    Some(&record.source_id),
                    "returned twice by the source; the second copy was skipped",
                ));
            } else {
                records.push(record);
            }
        }
        fetched.records += records.len() as u64;
        if !records.is_empty() {
            let mapped = session.map_fields(settings, &records).await?;
            check_mapped(session.connector(), &records, &mapped)?;
            fetched.people.extend(mapped.people);
            fetched.issues.extend(mapped.issues);
        }
        progress(Progress { pages: fetched.pages, records: fetched.records, total });

        match page.next_cursor {
            None => return Ok(fetched),
            Some(next) => {
                if !seen_cursors.insert(next.clone()) {
                    return Err(FetchError::RepeatedCursor { connector: session.connector().into(), cursor: next });
                }
                cursor = Some(next);
            }
        }
    }
}

/// Fetches one page, waiting and retrying while the connector says the
/// source is rate limited or temporarily unavailable.
async fn fetch_page(
    session: &mut Session,
    settings: &[wit::Entry],
    request: &wit::FetchRequest,
    policy: &RetryPolicy,
    fetched: &mut Fetched,
) -> Result<wit::Page, FetchError> {
    let mut attempt = 1;
    loop {
        let error = match session.fetch_page(settings, request).await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        let wait = match error.source_error() {
            Some(wit::ConnectorError::RateLimited(r) | wit::ConnectorError::TemporarilyUnavailable(r)) => {
                Duration::from_secs(r.after_seconds.into()).clamp(Duration::from_millis(100), policy.max_wait)
            }
            _ => return Err(error.into()),
        };
        if attempt >= policy.attempts || fetched.waited + wait > policy.total_wait {
            return Err(FetchError::RetriesExhausted { attempts: attempt, waited: fetched.waited, last: error });
        }
        tracing::info!(connector = session.connector(), ?wait, attempt, "{error}; waiting before retrying");
        tokio::time::sleep(wait).await;
        fetched.waited += wait;
        fetched.retries += 1;
        attempt += 1;
    }
}

/// The host does not trust mapped output: every person must come from a
/// record of this page, once, with real calendar dates.
fn check_mapped(connector: &str, records: &[wit::RawRecord], mapped: &wit::Mapped) -> Result<(), RunError> {
    let invalid = |reason: String| RunError::InvalidOutput { connector: connector.into(), reason };
    let ids: HashSet<&str> = records.iter().map(|r| r.source_id.as_str()).collect();
    let mut people = HashSet::new();
    for p in &mapped.people {
        if !ids.contains(p.source_id.as_str()) {
            return Err(invalid(format!(
                "map-fields returned person `{}`, who was not among the records given",
                p.source_id
            )));
        }
        if !people.insert(p.source_id.as_str()) {
            return Err(invalid(format!("map-fields returned person `{}` twice", p.source_id)));
        }
        for (field, date) in [("start-date", &p.start_date), ("termination-date", &p.termination_date)] {
            if let Some(d) = date
                && chrono::NaiveDate::from_ymd_opt(d.year, d.month.into(), d.day.into()).is_none()
            {
                return Err(invalid(format!(
                    "person `{}` has {field} {}-{}-{}, which is not a calendar date",
                    p.source_id, d.year, d.month, d.day
                )));
            }
        }
    }
    Ok(())
}

fn host_issue(source_id: Option<&str>, message: &str) -> wit::Issue {
    wit::Issue {
        source_id: source_id.map(Into::into),
        name: None,
        field: None,
        severity: wit::Severity::Error,
        message: message.into(),
    }
}
