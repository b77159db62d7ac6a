//! The conformance runner behind `hrsync connector check`: runs a connector
//! component through the contract's rules and reports each as pass or fail
//! with what to fix.
//!
//! The checks, in order (a failed load stops the rest):
//! - **loads**: a component linking against a supported WIT version and
//!   importing nothing else, with a well-formed `describe`;
//! - **describe**: stable across calls, a `x.y.z` version;
//! - **check**: answers with a report or a contract error (never a crash),
//!   and, when the given settings carry a secret, rejects a wrong one;
//! - **paging**: ends, with no repeated cursor and no record id twice;
//! - **mapping**: `map-fields` is deterministic, only maps fetched records,
//!   and gives valid dates, emails and names;
//! - **diff**: empty for the directory against itself; creates into an empty
//!   directory; one update for one changed field; deactivates people gone
//!   inactive; reactivates people back; links unmanaged users by email;
//!   counts a managed user missing from a complete run, deactivates them
//!   at `missing-after`, and never in an incremental run; and never names a
//!   user the directory does not have;
//! - **egress**: no request to an origin the connector did not declare or
//!   was not granted;
//! - **budgets**: every call within the sandbox's memory, CPU and time limits
//!   and the host-side resource limits, and the host's own memory (measured)
//!   within the guest's cap plus what the host may hold for it.

use std::collections::HashSet;
use std::time::Instant;

use serde::Serialize;

use chrono::NaiveDate;

use crate::model::{
    Change, ConnectorError, DeactivationReason, DiffOptions, DirectoryUser, Email, Entry, FetchRequest, MissingUser,
    Person, PersonStatus, Plan, RawRecord, SourceId, UserId, UserStatus,
};
use crate::rules;
use crate::runtime::egress::Grants;
use crate::runtime::memory::PeakMeter;
use crate::runtime::{Connector, RunError, Runtime, Session};

/// The most pages a conformant connector may need for the test source.
pub const MAX_PAGES: usize = 10_000;

/// One rule's outcome.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    /// What was seen; for failures, what is wrong and what to do.
    pub detail: String,
}

/// Every rule's outcome.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub connector: Option<String>,
    pub wit_version: Option<String>,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    fn pass(&mut self, name: &'static str, detail: impl Into<String>) {
        self.checks.push(Check { name, passed: true, detail: detail.into() });
    }

    fn fail(&mut self, name: &'static str, detail: impl Into<String>) {
        self.checks.push(Check { name, passed: false, detail: detail.into() });
    }

    fn record(&mut self, name: &'static str, result: Result<String, String>) {
        match result {
            Ok(d) => self.pass(name, d),
            Err(d) => self.fail(name, d),
        }
    }

    /// The report as text, one line per rule.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(c) = &self.connector {
            out.push_str(&format!("connector {c} (WIT {})\n", self.wit_version.as_deref().unwrap_or("?")));
        }
        for c in &self.checks {
            out.push_str(&format!("{} {:<9} {}\n", if c.passed { "PASS" } else { "FAIL" }, c.name, c.detail));
        }
        let failed = self.checks.iter().filter(|c| !c.passed).count();
        out.push_str(&if failed == 0 {
            format!("all {} checks passed\n", self.checks.len())
        } else {
            format!("{failed} of {} checks failed\n", self.checks.len())
        });
        out
    }
}

/// What to run the connector against.
pub struct Target {
    pub settings: Vec<Entry>,
    /// Origins the connector may reach besides its declared defaults.
    pub grants: Vec<String>,
}

/// Runs every rule on `bytes`, a connector component.
pub async fn run(runtime: &Runtime, name: &str, bytes: &[u8], target: &Target) -> Report {
    let mut report = Report::default();
    let meter = PeakMeter::start();
    let connector = match runtime.load(name, bytes).await {
        Ok(c) => c,
        Err(e) => {
            report.fail("loads", format!("{e}"));
            return report;
        }
    };
    report.connector = Some(format!("{} {} ({})", connector.info.name, connector.info.version, connector.info.id));
    report.wit_version = Some(connector.wit_version.clone());
    report.pass(
        "loads",
        format!("WIT {}, imports only what the host provides, describe is well-formed", connector.wit_version),
    );

    let mut origins = connector.info.default_hosts.clone();
    origins.extend(target.grants.iter().cloned());
    let grants = match Grants::parse(&origins) {
        Ok(g) => g,
        Err(e) => {
            report.fail("egress", format!("granted host {e}"));
            return report;
        }
    };
    let mut budget_errors = Vec::new();
    let mut denied = Vec::new();
    let mut session = match runtime.session(&connector, grants.clone()).await {
        Ok(s) => s,
        Err(e) => {
            report.fail("budgets", format!("cannot start a session: {e}"));
            return report;
        }
    };

    report.record("describe", describe(&mut session, &connector).await.map_err(|e| note(&mut budget_errors, e)));
    report.record("check", check(runtime, &connector, &grants, target, &mut budget_errors).await);

    let started = Instant::now();
    let fetched = paging(&mut session, &target.settings, &mut budget_errors).await;
    let data_bytes: usize = fetched.as_ref().map_or(0, |(r, _)| r.iter().map(|r| r.payload.len()).sum());
    let records = match fetched {
        Ok((records, pages)) => {
            report.pass(
                "paging",
                format!("{} records in {pages} pages, ended, ids unique ({:.0} ms)", records.len(), ms(started)),
            );
            Some(records)
        }
        Err(e) => {
            report.fail("paging", e);
            None
        }
    };
    denied.extend(session.egress().denied);
    if let Some(records) = records {
        // A fresh session for the rest: a failed page may poison the first.
        let mut session = match runtime.session(&connector, grants.clone()).await {
            Ok(s) => s,
            Err(e) => {
                report.fail("budgets", format!("{e}"));
                return report;
            }
        };
        match mapping(&mut session, &target.settings, &records, &mut budget_errors).await {
            Ok((people, detail)) => {
                report.pass("mapping", detail);
                report.record("diff", diff_laws(&mut session, &target.settings, &people, &mut budget_errors).await);
                if connector.events.is_some() {
                    let checked = events(runtime, &connector, &grants, &target.settings, &people, &mut budget_errors);
                    report.record("events", checked.await);
                }
            }
            Err(e) => report.fail("mapping", e),
        }
        denied.extend(session.egress().denied);
    }
    if denied.is_empty() {
        report.pass("egress", format!("only granted origins were reached ({})", origins.join(", ")));
    } else {
        report.fail(
            "egress",
            format!(
                "requests to origins neither declared in default-hosts nor granted: {}. Declare the hosts the connector needs in describe's default-hosts.",
                denied.join(", ")
            ),
        );
    }
    let limits = runtime.limits();
    // What the host may hold: the guest's memory, what it may make the host
    // hold outside it, the records this check keeps (and their copies), and
    // the runtime's own working set.
    let bound = limits.memory_bytes + limits.host_resource_bytes() + 2 * data_bytes + (64 << 20);
    let growth = meter.as_ref().map(|m| m.growth() as usize);
    let host = match growth {
        Some(g) => format!("the host's memory grew by at most {} MiB (bound {} MiB)", g >> 20, bound >> 20),
        None => "the host's memory could not be measured on this platform".into(),
    };
    if growth.is_some_and(|g| g > bound) {
        budget_errors.push(format!(
            "{host}: the connector makes the host hold more than it should (wasi:http resources, log, results)"
        ));
    }
    if budget_errors.is_empty() {
        report.pass(
            "budgets",
            format!(
                "every call stayed within {} MiB of memory, {:?} of CPU per call and {:?} per call; {host}",
                limits.memory_bytes >> 20,
                limits.cpu_per_call,
                limits.wall_per_call
            ),
        );
    } else {
        report.fail("budgets", format!("the sandbox stopped the connector: {}; {host}", budget_errors.join("; ")));
    }
    report
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// Notes sandbox stops for the budgets rule; returns the error as text.
fn note(budget: &mut Vec<String>, e: RunError) -> String {
    if e.is_budget() {
        budget.push(e.to_string());
    }
    e.to_string()
}

async fn describe(session: &mut Session, loaded: &Connector) -> Result<String, RunError> {
    let again = session.describe().await?;
    if again != loaded.info {
        return Err(RunError::InvalidOutput {
            connector: loaded.info.id.clone(),
            reason: "describe returned something different the second time; it must be constant".into(),
        });
    }
    let semver = loaded.info.version.split('.').count() == 3
        && loaded.info.version.split('.').all(|p| p.chars().next().is_some_and(|c| c.is_ascii_digit()));
    if !semver {
        return Err(RunError::InvalidOutput {
            connector: loaded.info.id.clone(),
            reason: format!("version `{}` is not MAJOR.MINOR.PATCH", loaded.info.version),
        });
    }
    Ok(format!("constant, version {}, {} settings", loaded.info.version, loaded.info.settings.len()))
}

async fn check(
    runtime: &Runtime,
    connector: &Connector,
    grants: &Grants,
    target: &Target,
    budget: &mut Vec<String>,
) -> Result<String, String> {
    let mut session = runtime.session(connector, grants.clone()).await.map_err(|e| e.to_string())?;
    let good = match session.check(&target.settings).await {
        Ok(r) => format!("test connection works ({} readable, {} missing)", r.readable.len(), r.missing.len()),
        Err(RunError::Source { error, .. }) => {
            format!("test connection answered with a contract error: {error}")
        }
        Err(e) => {
            return Err(format!("test connection with the given settings crashed or was stopped: {}", note(budget, e)));
        }
    };
    // Only a secret that is set can be wrong: a source that needs no
    // credentials (a public export) has nothing to reject.
    let secrets: Vec<&str> = connector
        .info
        .secret_keys()
        .filter(|k| target.settings.iter().any(|e| e.key == *k && !e.value.trim().is_empty()))
        .collect();
    if secrets.is_empty() {
        return Ok(format!("{good}; no secret is set, so wrong credentials are not tried"));
    }
    let wrong: Vec<Entry> = target
        .settings
        .iter()
        .map(|e| {
            let value =
                if secrets.contains(&e.key.as_str()) { "conformance-wrong-secret".into() } else { e.value.clone() };
            Entry::new(e.key.clone(), value)
        })
        .collect();
    let mut session = runtime.session(connector, grants.clone()).await.map_err(|e| e.to_string())?;
    match session.check(&wrong).await {
        Ok(_) => Err(format!(
            "{good}, but test connection with a wrong secret succeeded: it must report credentials-rejected"
        )),
        Err(RunError::Source {
            error:
                ConnectorError::CredentialsRejected(_)
                | ConnectorError::InvalidSettings(_)
                | ConnectorError::PermissionDenied(_),
            ..
        }) => Ok(format!("{good}; wrong credentials are rejected")),
        Err(RunError::Source { error, .. }) => {
            Err(format!("{good}, but a wrong secret gave `{error}` instead of credentials-rejected"))
        }
        Err(e) => Err(format!("test connection with a wrong secret crashed or was stopped: {}", note(budget, e))),
    }
}

/// One page, retried as a run retries it when the connector says
/// `rate-limited` or `temporarily-unavailable`: both are the contract's way
/// to ask for time, not failures.
async fn fetch_with_retries(
    session: &mut Session,
    settings: &[Entry],
    request: &FetchRequest,
) -> Result<crate::model::Page, RunError> {
    let mut attempt = 1;
    loop {
        match session.fetch_page(settings, request).await {
            Err(e) => match retry_wait(&e, attempt) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return Err(e),
            },
            ok => return ok,
        }
        attempt += 1;
    }
}

/// How long to wait before trying again a call the connector said was rate
/// limited or temporarily unavailable; `None` to give up.
fn retry_wait(error: &RunError, attempt: u32) -> Option<std::time::Duration> {
    const ATTEMPTS: u32 = 6;
    match error {
        RunError::Source {
            error: ConnectorError::RateLimited(retry) | ConnectorError::TemporarilyUnavailable(retry),
            ..
        } if attempt < ATTEMPTS => Some(std::time::Duration::from_secs(retry.after_seconds.clamp(1, 60).into())),
        _ => None,
    }
}

/// Follows cursors to the end; the records and the number of pages.
async fn paging(
    session: &mut Session,
    settings: &[Entry],
    budget: &mut Vec<String>,
) -> Result<(Vec<RawRecord>, usize), String> {
    let mut cursors = HashSet::new();
    let mut ids = HashSet::new();
    let mut records = Vec::new();
    let mut cursor: Option<String> = None;
    let mut total = None;
    for page in 1..=MAX_PAGES {
        let request = FetchRequest { cursor: cursor.clone(), updated_since: None };
        let got = fetch_with_retries(session, settings, &request)
            .await
            .map_err(|e| format!("page {page}: {}", note(budget, e)))?;
        for r in &got.records {
            if !ids.insert(r.source_id.clone()) {
                return Err(format!(
                    "record id `{}` came twice (page {page}); ids must be stable and unique — de-duplicate across pages",
                    r.source_id
                ));
            }
        }
        records.extend(got.records);
        total = got.total.or(total);
        match got.next_cursor {
            None => {
                return match total {
                    Some(t) if t != records.len() as u64 => Err(format!(
                        "the pages reported a total of {t} records but returned {}: the host fails every run whose records differ from the total it was told. Report the total of the whole source, or none.",
                        records.len()
                    )),
                    _ => Ok((records, page)),
                };
            }
            Some(next) => {
                if !cursors.insert(next.clone()) {
                    return Err(format!(
                        "cursor `{next}` came twice (page {page}): paging would never end. Return no cursor after the last page."
                    ));
                }
                cursor = Some(next);
            }
        }
    }
    Err(format!("paging did not end within {MAX_PAGES} pages; return no cursor after the last page"))
}

/// For a connector that declares events (0.4.0 `hr-events`): a delivery
/// that is not the source's is read without a trap, the same way twice;
/// and `fetch-people` gives exactly the people asked for, mapped as the
/// complete fetch mapped them.
async fn events(
    runtime: &Runtime,
    connector: &Connector,
    grants: &Grants,
    settings: &[Entry],
    people: &[Person],
    budget: &mut Vec<String>,
) -> Result<String, String> {
    let mut session = runtime.session(connector, grants.clone()).await.map_err(|e| note(budget, e))?;
    let headers = [Entry { key: "content-type".into(), value: "application/json".into() }];
    for body in ["", "{}", "<html>not an event</html>", r#"{"event_name":"unknown.thing","payload":{}}"#] {
        let first = session.handle_event(settings, &headers, body).await;
        let second = session.handle_event(settings, &headers, body).await;
        match (first, second) {
            (Ok(a), Ok(b)) if a != b => {
                return Err(format!("handle-event read `{body}` differently twice: it must be pure"));
            }
            (Ok(_) | Err(RunError::Source { .. }), _) => {}
            (Err(e), _) => return Err(format!("handle-event on `{body}`: {}", note(budget, e))),
        }
    }
    let asked: Vec<&Person> = people.iter().take(3).collect();
    let ids: Vec<SourceId> = asked.iter().map(|p| p.source_id.clone()).collect();
    let mut attempt = 1;
    let records = loop {
        match session.fetch_people(settings, &ids).await {
            Ok(records) => break records,
            Err(e) => match retry_wait(&e, attempt) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return Err(format!("fetch-people: {}", note(budget, e))),
            },
        }
        attempt += 1;
    };
    let mapped = session.map_fields(settings, &records).await.map_err(|e| note(budget, e))?.people;
    for p in &asked {
        match mapped.iter().find(|m| m.source_id == p.source_id) {
            Some(m) if m == *p => {}
            Some(_) => {
                return Err(format!("fetch-people mapped `{}` differently from the complete fetch", p.source_id));
            }
            None => return Err(format!("fetch-people left out `{}`, whom the complete fetch returned", p.source_id)),
        }
    }
    if mapped.len() != asked.len() {
        return Err(format!("fetch-people gave {} people for {} ids: only those asked for", mapped.len(), asked.len()));
    }
    Ok(format!(
        "handle-event reads foreign deliveries without trapping; fetch-people gives {} people as the complete fetch does",
        asked.len()
    ))
}

/// Maps twice and checks the people; returns them and a summary.
async fn mapping(
    session: &mut Session,
    settings: &[Entry],
    records: &[RawRecord],
    budget: &mut Vec<String>,
) -> Result<(Vec<Person>, String), String> {
    let first = session.map_fields(settings, records).await.map_err(|e| note(budget, e))?;
    let second = session.map_fields(settings, records).await.map_err(|e| note(budget, e))?;
    if first != second {
        return Err("map-fields gave different results for the same records: it must be pure and deterministic (no clock, no randomness)".into());
    }
    let fetched: HashSet<&SourceId> = records.iter().map(|r| &r.source_id).collect();
    for p in &first.people {
        let who = format!("person `{}`", p.source_id);
        if !fetched.contains(&p.source_id) {
            return Err(format!("{who} was not among the fetched records: map only what fetch-page returned"));
        }
        if p.first_name.trim().is_empty() && p.last_name.trim().is_empty() {
            return Err(format!("{who} has no name"));
        }
        if let Some(e) = &p.email
            && Email::parse(e).is_err()
        {
            return Err(format!("{who}: email `{e}` is not an address; leave it out and report an issue instead"));
        }
    }
    let detail = format!(
        "deterministic; {} people, {} issues, dates/emails/names valid",
        first.people.len(),
        first.issues.len()
    );
    Ok((first.people, detail))
}

/// The day the diff laws are judged on: today, as `host.canonical-diff`
/// takes it.
fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// The people as the directory holds them after an import.
fn as_directory(people: &[Person]) -> Vec<DirectoryUser> {
    people
        .iter()
        .enumerate()
        .map(|(i, p)| DirectoryUser {
            user_id: UserId(i as i64 + 1),
            source_id: Some(p.source_id.clone()),
            status: rules::status_of(p, today()),
            missing_runs: 0,
            person: p.clone(),
        })
        .collect()
}

fn options() -> DiffOptions {
    DiffOptions { complete: true, missing_after: 2 }
}

/// The diff laws on synthetic directories built from the mapped people.
async fn diff_laws(
    session: &mut Session,
    settings: &[Entry],
    people: &[Person],
    budget: &mut Vec<String>,
) -> Result<String, String> {
    // Active people whose start date has come: they are active in the
    // directory, whatever the day's rules make of future starters.
    let active: Vec<&Person> = people
        .iter()
        .filter(|p| rules::status_of(p, today()) == UserStatus::Active && p.status == PersonStatus::Active)
        .filter(|p| p.email.is_some())
        .collect();
    // Two people let the missing law keep one present; one is enough.
    let (Some(&sample), Some(&other)) = (active.first(), active.last()) else {
        return Err("the test source needs an active person with an email to check the diff with: \
                    point the settings at a source that has one"
            .into());
    };
    let mut laws = Vec::new();
    // Only people the connector would import end up in the directory.
    let importable: Vec<Person> = active.iter().map(|p| (*p).clone()).collect();
    let directory = as_directory(&importable);
    let known: HashSet<UserId> = directory.iter().map(|u| u.user_id).collect();
    let id_of = |p: &Person| {
        directory.iter().find(|u| u.source_id.as_ref() == Some(&p.source_id)).expect("in directory").user_id
    };
    let (sample_id, other_id) = (id_of(sample), id_of(other));
    // A connector that declares its diff canonical lets the host compute it
    // in runs: its own `diff` must give the same plan.
    let declared =
        session.canonical_creates(settings).await.map_err(|e| format!("canonical-creates: {}", note(budget, e)))?;
    if declared.is_some() {
        for (law, current) in [("empty directory", &[][..]), ("identical input", &directory[..])] {
            let own = session
                .diff_in_guest(settings, current, &importable, options())
                .await
                .map_err(|e| format!("{law}: {}", note(budget, e)))?;
            let host = session
                .diff(settings, current, &importable, options())
                .await
                .map_err(|e| format!("{law}: {}", note(budget, e)))?;
            if own != host {
                return Err(format!(
                    "canonical-creates says `diff` is the canonical diff, but on the {law} it gave {} changes where the canonical diff gives {}: answer `none`, or return host.canonical-diff from `diff`",
                    own.changes.len(),
                    host.changes.len()
                ));
            }
        }
        laws.push("diff agrees with the canonical diff it declares");
    }

    let mut diff = async |current: &[DirectoryUser], incoming: &[Person], options: DiffOptions, law: &str| {
        let plan = session
            .diff(settings, current, incoming, options)
            .await
            .map_err(|e| format!("{law}: {}", note(budget, e)))?;
        match plan.changes.iter().filter_map(Change::user).find(|id| !known.contains(id)) {
            Some(id) => Err(format!("{law}: a change names user {id}, who is not in the directory")),
            None => Ok(plan),
        }
    };
    let only = |plan: &Plan, law: &str, expected: &str, ok: &dyn Fn(&Change) -> bool| -> Result<(), String> {
        match plan.changes.as_slice() {
            [c] if ok(c) => Ok(()),
            other => Err(format!("{law}: expected {expected}, got {other:?}")),
        }
    };

    // 1. The directory against itself: nothing to do.
    let same = diff(&directory, &importable, options(), "identical input").await?;
    if !same.changes.is_empty() {
        return Err(format!(
            "identical input: the diff of the directory against itself must be empty, got {} changes",
            same.changes.len()
        ));
    }
    laws.push("empty on identical input");

    // 2. An empty directory: the active people are created.
    let fresh = diff(&[], &importable, options(), "empty directory").await?;
    let creates = fresh.changes.iter().filter(|c| matches!(c, Change::Create(_))).count();
    if creates != importable.len() || fresh.changes.len() != creates {
        return Err(format!(
            "empty directory: expected {} creates and nothing else, got {creates} creates of {} changes",
            importable.len(),
            fresh.changes.len()
        ));
    }
    laws.push("create");

    // 3. One field changed in the source: one update of that user.
    let mut changed = importable.clone();
    let target = changed.iter_mut().find(|p| p.source_id == sample.source_id).expect("sample");
    target.job_title = Some(format!("{} (changed)", target.job_title.clone().unwrap_or_default()));
    let plan = diff(&directory, &changed, options(), "one change").await?;
    let expected = format!("one update of user {sample_id}");
    only(
        &plan,
        "one changed job title",
        &expected,
        &|c| matches!(c, Change::Update(u) if u.user_id == sample_id && !u.changes.is_empty()),
    )?;
    laws.push("update");

    // 4. Gone inactive in the source: deactivated.
    let mut left = importable.clone();
    left.iter_mut().find(|p| p.source_id == sample.source_id).expect("sample").status = PersonStatus::Inactive;
    let plan = diff(&directory, &left, options(), "inactive").await?;
    only(
        &plan,
        "a person turned inactive in the source",
        &format!("user {sample_id} deactivated"),
        &|c| matches!(c, Change::Deactivate(d) if d.user_id == sample_id && d.reason == DeactivationReason::InactiveInSource),
    )?;
    laws.push("deactivate");

    // 5. Inactive in the directory, active in the source: reactivated.
    let mut returning = directory.clone();
    returning.iter_mut().find(|u| u.user_id == sample_id).expect("sample").status = UserStatus::Inactive;
    let plan = diff(&returning, &importable, options(), "reactivate").await?;
    only(
        &plan,
        "a deactivated person active again",
        &format!("user {sample_id} reactivated"),
        &|c| matches!(c, Change::Reactivate(u) if u.user_id == sample_id),
    )?;
    laws.push("reactivate");

    // 6. An unmanaged user with the same email: linked, not duplicated.
    let mut unmanaged = directory.clone();
    let u = unmanaged.iter_mut().find(|u| u.user_id == sample_id).expect("sample");
    u.source_id = None;
    u.person.source_id = SourceId::default();
    let plan = diff(&unmanaged, &importable, options(), "link").await?;
    only(
        &plan,
        "an unmanaged user with the same email",
        &format!("user {sample_id} linked"),
        &|c| matches!(c, Change::Link(u) if u.user_id == sample_id),
    )?;
    laws.push("link");

    // 7. A managed user not in a complete fetch: counted missing, then
    // deactivated at `missing-after`; an incremental fetch says nothing
    // about who is gone.
    let without: Vec<Person> = importable.iter().filter(|p| p.source_id != other.source_id).cloned().collect();
    let plan = diff(&directory, &without, options(), "missing").await?;
    let expected = format!("user {other_id} missing for 1 run (missing-after 2)");
    only(&plan, "a person missing from a complete fetch", &expected, &|c| {
        *c == Change::Missing(MissingUser { user_id: other_id, runs: 1 })
    })?;
    let mut again = directory.clone();
    again.iter_mut().find(|u| u.user_id == other_id).expect("other").missing_runs = 1;
    let plan = diff(&again, &without, options(), "missing twice").await?;
    let expected = format!("user {other_id} deactivated as missing from the source");
    only(
        &plan,
        "a person missing from a second complete fetch",
        &expected,
        &|c| matches!(c, Change::Deactivate(d) if d.user_id == other_id && d.reason == DeactivationReason::MissingFromSource && d.person.is_none()),
    )?;
    let incremental = DiffOptions { complete: false, ..options() };
    let plan = diff(&again, &without, incremental, "incremental").await?;
    if !plan.changes.is_empty() {
        return Err(format!(
            "an incremental fetch without a person: expected no change (only complete fetches count people missing), got {:?}",
            plan.changes
        ));
    }
    laws.push("missing");
    Ok(format!("{} hold; no change names an unknown user", laws.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_passes_only_when_every_check_does() {
        let mut r = Report::default();
        assert!(!r.passed(), "no checks is no pass");
        r.pass("loads", "ok");
        assert!(r.passed());
        r.fail("paging", "cursor `x` came twice");
        assert!(!r.passed());
        let text = r.render();
        assert!(
            text.contains("PASS loads") && text.contains("FAIL paging") && text.contains("1 of 2 checks failed"),
            "{text}"
        );
    }
}
