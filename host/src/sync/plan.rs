//! The host's check of a connector's change plan, and its translation into
//! what the directory will write.
//!
//! The connector proposes; the host decides. Every claim of a plan is
//! checked against the people the fetch returned and the directory: a
//! create must be a fetched, mapped person, exactly as mapped; an update or
//! reactivation names a user this integration manages, and cannot change
//! whether they are active; `inactive-in-source` needs the fetched person to
//! be inactive; `missing` and `missing-from-source` need a complete fetch
//! without the person, and the count the integration's settings ask for.
//! A plan that breaks any of these fails the run, naming the connector:
//! it is broken or hostile, and nothing is applied. Problems with single
//! people — an email another user already has, a supervisor that is not in
//! the directory, a manager change that would close a reporting cycle, a
//! person without email — skip that person or that field, and are reported.
//! Whoever the fetch returned has their missing count reset, whatever else
//! was skipped for them.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use sha2::{Digest, Sha256};

use super::intake::{self, PersonDigest};
use crate::directory::{
    Apply, ChangeKind, Counts, Email, FieldChange, IndexEntry, Integration, IntegrationId, IssueRecord, KeptValue,
    Override, PlannedChange, PlannedUser, Profile, Target, User, UserId, UserStatus,
};
use crate::model::{Change, DeactivationReason, Field, Issue, Person, Plan, Severity, SourceId};
use crate::rules::{self, status_of};

/// A plan the host refuses as a whole.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(
        "connector `{connector}` proposed to change user {user}, which this integration does not manage ({why}); nothing was applied. Report this to the connector's author."
    )]
    Forbidden { connector: String, user: UserId, why: String },
    #[error("connector `{connector}` proposed {what}; nothing was applied. Report this to the connector's author.")]
    Invalid { connector: String, what: String },
}

/// What a run would do, with the facts the safeguard needs.
#[derive(Debug, Clone, Default)]
pub struct Planned {
    pub apply: Apply,
    /// Users this integration managed before the run (active or not).
    pub managed: usize,
    pub deactivations: usize,
    pub email_changes: usize,
    /// SHA-256 over the planned changes: equal plans, equal fingerprints.
    pub fingerprint: String,
}

/// Inputs of [`plan`].
pub struct PlanInput<'a> {
    pub connector: &'a str,
    pub integration: &'a Integration,
    /// `users_for_sync`: users this integration manages plus unmanaged ones.
    pub current: &'a [User],
    /// Every user of the directory.
    pub index: &'a [IndexEntry],
    /// Every source id the fetch received, with the digest of the person it
    /// mapped to (`None`: received, but could not be mapped).
    pub received: &'a HashMap<SourceId, Option<PersonDigest>>,
    /// The fetch covered the whole source (no `updated-since`).
    pub complete: bool,
    pub issues: Vec<Issue>,
    pub plan: Plan,
    pub today: NaiveDate,
    /// The overrides that hold `today`, by user: their fields stay as kept.
    pub overrides: &'a HashMap<UserId, Vec<Override>>,
    /// People the source announced deleted (a webhook) whom a fetch right
    /// after no longer found: deactivated by the host, whatever the plan.
    pub deleted: &'a [SourceId],
}

/// A profile from a person; the email falls back to `base`'s (a source that
/// loses an email does not blank the user's sign-in address).
fn profile_of(person: &Person, base: Option<&Profile>, today: NaiveDate) -> Result<Profile, String> {
    let email = match (&person.email, base) {
        (Some(e), _) => Email::parse(e)?,
        (None, Some(b)) => b.email.clone(),
        (None, None) => return Err("the person has no work email in the source; add one there".into()),
    };
    Ok(Profile {
        email,
        first_name: person.first_name.clone(),
        last_name: person.last_name.clone(),
        preferred_name: person.preferred_name.clone(),
        gender: person.gender,
        status: status_of(person, today),
        start_date: person.start_date,
        termination_date: person.termination_date,
        job_title: person.job_title.clone(),
        employee_id: person.employee_id.clone(),
        department: person.department.clone(),
        office: person.office.clone(),
        team: person.team.clone(),
        custom: person.custom.iter().map(|e| (e.key.clone(), e.value.clone())).collect(),
        profile_url: person.profile_url.clone(),
    })
}

fn issue(person: Option<&Person>, field: Option<&str>, severity: Severity, message: String) -> IssueRecord {
    IssueRecord {
        source_id: person.map(|p| p.source_id.to_string()),
        name: person.map(Person::display_name),
        field: field.map(Into::into),
        severity,
        message,
    }
}

/// One user the run touches, while it is being planned.
struct Entry<'a> {
    target: Target,
    kind: ChangeKind,
    before: Option<&'a User>,
    profile: Profile,
    person: Option<&'a Person>,
    managed_by: Option<(IntegrationId, String)>,
    missing_runs: u32,
    manager: Option<Target>,
    skipped: bool,
    /// An override keeps the manager.
    manager_kept: Option<&'a Override>,
}

/// What the checks of one plan look things up in.
struct Checker<'a> {
    connector: &'a str,
    integration: &'a Integration,
    received: &'a HashMap<SourceId, Option<PersonDigest>>,
    complete: bool,
    today: NaiveDate,
    by_id: HashMap<UserId, &'a User>,
    /// This integration's users by source id.
    by_source: HashMap<&'a str, UserId>,
}

impl<'a> Checker<'a> {
    fn new(input: &'a PlanInput<'a>) -> Self {
        let integration = input.integration.id;
        let by_source = input
            .current
            .iter()
            .filter_map(|u| match &u.managed_by {
                Some((i, s)) if *i == integration => Some((s.as_str(), u.id)),
                _ => None,
            })
            .collect();
        Checker {
            connector: input.connector,
            integration: input.integration,
            received: input.received,
            complete: input.complete,
            today: input.today,
            by_id: input.current.iter().map(|u| (u.id, u)).collect(),
            by_source,
        }
    }

    fn invalid(&self, what: String) -> PlanError {
        PlanError::Invalid { connector: self.connector.into(), what }
    }

    fn forbidden(&self, user: UserId, why: &str) -> PlanError {
        PlanError::Forbidden { connector: self.connector.into(), user, why: why.into() }
    }

    fn mine(&self, u: &User) -> bool {
        matches!(&u.managed_by, Some((i, _)) if *i == self.integration.id)
    }

    /// A user this integration manages.
    fn managed(&self, uid: UserId) -> Result<&'a User, PlanError> {
        match self.by_id.get(&uid) {
            Some(u) if self.mine(u) => Ok(u),
            Some(_) => Err(self.forbidden(uid, "it is not managed by this integration")),
            None => Err(self.forbidden(uid, "no such user was given to the connector")),
        }
    }

    fn source_id(u: &User) -> &str {
        u.managed_by.as_ref().map_or("", |m| m.1.as_str())
    }

    /// The person a change carries must be who the fetch returned, exactly
    /// as `map-fields` gave them (so every check of mapping holds for it).
    fn fetched<'p>(&self, person: &'p Person, what: &str) -> Result<&'p Person, PlanError> {
        let sid = &person.source_id;
        match self.received.get(sid) {
            Some(Some(d)) if *d == intake::digest(person) => Ok(person),
            Some(Some(_)) => {
                Err(self.invalid(format!("to {what} `{sid}` with values that differ from what map-fields returned")))
            }
            Some(None) => Err(self.invalid(format!("to {what} `{sid}`, whose record could not be mapped"))),
            None => Err(self.invalid(format!("to {what} `{sid}`, who was not fetched in this run"))),
        }
    }

    /// A managed user's person: same source id, as fetched.
    fn own_person<'p>(&self, user: &User, person: &'p Person, what: &str) -> Result<&'p Person, PlanError> {
        if Self::source_id(user) != person.source_id.as_str() {
            return Err(self.forbidden(user.id, "its source id differs from the person's"));
        }
        self.fetched(person, what)
    }

    /// Whether `user` may be counted missing in this run: a complete fetch
    /// that did not return them. `Ok(false)`: the fetch received their record
    /// but could not map it — present, so the claim is dropped.
    fn absent(&self, user: &User, what: &str) -> Result<bool, PlanError> {
        if !self.complete {
            return Err(self.invalid(format!(
                "to {what} user {} in an incremental run, which does not see who left; only complete runs count people missing",
                user.id
            )));
        }
        match self.received.get(Self::source_id(user)) {
            None => Ok(true),
            Some(None) => Ok(false),
            Some(Some(_)) => Err(self.invalid(format!(
                "to {what} user {}, whom this very fetch returned (source id `{}`)",
                user.id,
                Self::source_id(user)
            ))),
        }
    }

    /// The active user of a person the source deleted, if this integration
    /// manages one. Only for people the fetch did not return: whoever it
    /// returned is still in the source.
    fn deleted(&self, sid: &SourceId) -> Option<&'a User> {
        if self.received.contains_key(sid) {
            return None;
        }
        let user = self.by_id.get(self.by_source.get(sid.as_str())?)?;
        (user.profile.status != UserStatus::Inactive).then_some(*user)
    }

    /// Checks one change and turns it into an entry; `None` when the claim is
    /// dropped or the person skipped (with an issue).
    fn entry(&self, change: &'a Change, issues: &mut Vec<IssueRecord>) -> Result<Option<Entry<'a>>, PlanError> {
        let entry = |user: &'a User, kind, profile, person, missing_runs| Entry {
            target: Target::Existing(user.id),
            kind,
            before: Some(user),
            profile,
            person,
            managed_by: user.managed_by.clone(),
            missing_runs,
            manager: user.manager_id.map(Target::Existing),
            skipped: false,
            manager_kept: None,
        };
        Ok(Some(match change {
            Change::Create(p) => {
                if let Some(existing) = self.by_source.get(p.source_id.as_str()) {
                    return Err(
                        self.invalid(format!("to create `{}`, who already exists as user {existing}", p.source_id))
                    );
                }
                let p = self.fetched(p, "create")?;
                match profile_of(p, None, self.today) {
                    Ok(profile) => Entry {
                        target: Target::New(0),
                        kind: ChangeKind::Create,
                        before: None,
                        profile,
                        person: Some(p),
                        managed_by: Some((self.integration.id, p.source_id.to_string())),
                        missing_runs: 0,
                        manager: None,
                        skipped: false,
                        manager_kept: None,
                    },
                    Err(message) => {
                        issues.push(issue(Some(p), Some("email"), Severity::Error, format!("not created: {message}")));
                        return Ok(None);
                    }
                }
            }
            Change::Update(u) | Change::Reactivate(u) => {
                let user = self.managed(u.user_id)?;
                let reactivate = matches!(change, Change::Reactivate(_));
                let what = if reactivate { "reactivate" } else { "update" };
                let person = self.own_person(user, &u.person, what)?;
                let was_inactive = user.profile.status == UserStatus::Inactive;
                let now_inactive = status_of(person, self.today) == UserStatus::Inactive;
                let comes_back = was_inactive && !now_inactive;
                if reactivate && !comes_back {
                    return Err(self.invalid(format!(
                        "to reactivate user {}, who is {} and {} in the source; only an inactive user whose person is active again is reactivated",
                        user.id,
                        user.profile.status.as_str(),
                        if now_inactive { "inactive" } else { "active" }
                    )));
                }
                if !reactivate && was_inactive != now_inactive {
                    return Err(self.invalid(format!(
                        "an update that would make user {} {}; that is a {}, which must say so",
                        user.id,
                        if now_inactive { "inactive" } else { "active" },
                        if now_inactive { "deactivation" } else { "reactivation" }
                    )));
                }
                let profile = profile_of(person, Some(&user.profile), self.today).unwrap_or_else(|m| {
                    issues.push(issue(Some(person), Some("email"), Severity::Warning, format!("email kept: {m}")));
                    user.profile.clone()
                });
                let kind = if reactivate { ChangeKind::Reactivate } else { ChangeKind::Update };
                entry(user, kind, profile, Some(person), 0)
            }
            Change::Link(u) => {
                let uid = u.user_id;
                let user = *self
                    .by_id
                    .get(&uid)
                    .ok_or_else(|| self.forbidden(uid, "no such user was given to the connector"))?;
                if user.managed_by.is_some() {
                    return Err(self.forbidden(uid, "it is already managed, so it cannot be adopted"));
                }
                let person = self.fetched(&u.person, "link")?;
                let email_matches =
                    person.email.as_ref().and_then(|e| Email::parse(e).ok()).is_some_and(|e| e == user.profile.email);
                if !email_matches {
                    return Err(self.forbidden(uid, "users are only adopted by a matching email"));
                }
                if self.by_source.contains_key(person.source_id.as_str()) {
                    return Err(self.invalid(format!(
                        "to link `{}` to user {uid}, but that person is already linked",
                        person.source_id
                    )));
                }
                let profile =
                    profile_of(person, Some(&user.profile), self.today).unwrap_or_else(|_| user.profile.clone());
                Entry {
                    managed_by: Some((self.integration.id, person.source_id.to_string())),
                    ..entry(user, ChangeKind::Link, profile, Some(person), 0)
                }
            }
            Change::Deactivate(d) => {
                let user = self.managed(d.user_id)?;
                if user.profile.status == UserStatus::Inactive {
                    return Err(self.invalid(format!("to deactivate user {}, who is already inactive", user.id)));
                }
                let (person, missing_runs) = match d.reason {
                    DeactivationReason::InactiveInSource => {
                        let Some(p) = &d.person else {
                            return Err(self.invalid(format!(
                                "to deactivate user {} as inactive in the source without the person",
                                user.id
                            )));
                        };
                        let p = self.own_person(user, p, "deactivate")?;
                        if status_of(p, self.today) != UserStatus::Inactive {
                            return Err(self.invalid(format!(
                                "to deactivate user {} as inactive in the source, but the source has them {}",
                                user.id,
                                status_of(p, self.today).as_str()
                            )));
                        }
                        (Some(p), 0)
                    }
                    DeactivationReason::MissingFromSource => {
                        if d.person.is_some() {
                            return Err(self.invalid(format!(
                                "to deactivate user {} as missing from the source, with a person from the source",
                                user.id
                            )));
                        }
                        if !self.absent(user, "deactivate as missing")? {
                            issues.push(present_but_unmapped(user));
                            return Ok(None);
                        }
                        let runs = rules::missing_runs(user.missing_runs);
                        let after = self.integration.config.missing_after.max(1);
                        if !rules::deactivates_when_missing(runs, after) {
                            return Err(self.invalid(format!(
                                "to deactivate user {} after {runs} complete runs without them; this integration waits for {after}",
                                user.id
                            )));
                        }
                        (None, runs)
                    }
                };
                let mut profile = match person {
                    Some(p) => profile_of(p, Some(&user.profile), self.today).unwrap_or_else(|_| user.profile.clone()),
                    None => user.profile.clone(),
                };
                profile.status = UserStatus::Inactive;
                entry(user, ChangeKind::Deactivate, profile, person, missing_runs)
            }
            Change::Missing(m) => {
                let user = self.managed(m.user_id)?;
                if user.profile.status == UserStatus::Inactive {
                    return Err(self.invalid(format!("to count user {} missing, who is already inactive", user.id)));
                }
                if !self.absent(user, "count missing")? {
                    issues.push(present_but_unmapped(user));
                    return Ok(None);
                }
                let runs = rules::missing_runs(user.missing_runs);
                if m.runs != runs {
                    return Err(self.invalid(format!(
                        "to count user {} missing for {} runs; with this run it is {runs}",
                        user.id, m.runs
                    )));
                }
                entry(user, ChangeKind::Missing, user.profile.clone(), None, runs)
            }
        }))
    }
}

/// The issue for a missing claim about someone whose record was received
/// but could not be mapped.
fn present_but_unmapped(user: &User) -> IssueRecord {
    IssueRecord {
        source_id: user.managed_by.as_ref().map(|m| m.1.clone()),
        name: Some(user.profile.display_name()),
        field: None,
        severity: Severity::Warning,
        message: "still in the source, but their record could not be read (see the issue above); not counted missing"
            .into(),
    }
}

/// Each problem once: the connector's mapping, its diff and the host's
/// checks may each report the same one about the same person.
fn distinct(mut issues: Vec<IssueRecord>) -> Vec<IssueRecord> {
    let mut seen = HashSet::new();
    issues.retain(|i| seen.insert((i.source_id.clone(), i.field.clone(), i.message.clone())));
    issues
}

/// Checks a connector's plan and turns it into what the directory writes.
pub fn plan(input: PlanInput<'_>) -> Result<Planned, PlanError> {
    let checker = Checker::new(&input);
    let mut issues: Vec<IssueRecord> = input
        .issues
        .iter()
        .chain(&input.plan.issues)
        .map(|i| {
            let mut i = i.clone();
            intake::bound_issue(&mut i);
            IssueRecord {
                source_id: i.source_id.map(SourceId::into_string),
                name: i.name,
                field: i.field,
                severity: i.severity,
                message: i.message,
            }
        })
        .collect();

    let mut entries: Vec<Entry<'_>> = Vec::new();
    let mut seen_users: HashSet<UserId> = HashSet::new();
    let mut seen_creates: HashSet<&str> = HashSet::new();
    for change in &input.plan.changes {
        let Some(mut entry) = checker.entry(change, &mut issues)? else { continue };
        match entry.target {
            Target::Existing(id) if !seen_users.insert(id) => {
                return Err(checker.invalid(format!("two changes for user {id}")));
            }
            Target::New(_) => {
                let sid = entry.person.map_or("", |p| p.source_id.as_str());
                if !seen_creates.insert(sid) {
                    return Err(checker.invalid(format!("to create `{sid}` twice")));
                }
                entry.target = Target::New(seen_creates.len() - 1);
            }
            Target::Existing(_) => {}
        }
        entries.push(entry);
    }
    for sid in input.deleted {
        let Some(user) = checker.deleted(sid) else { continue };
        if seen_users.insert(user.id) {
            issues.push(IssueRecord {
                source_id: Some(sid.to_string()),
                name: Some(user.profile.display_name()),
                field: None,
                severity: Severity::Warning,
                message: "deleted in the source (announced by the source and confirmed by fetching them): deactivated"
                    .into(),
            });
            let mut profile = user.profile.clone();
            profile.status = UserStatus::Inactive;
            entries.push(Entry {
                target: Target::Existing(user.id),
                kind: ChangeKind::Deactivate,
                before: Some(user),
                profile,
                person: None,
                managed_by: user.managed_by.clone(),
                missing_runs: 0,
                manager: user.manager_id.map(Target::Existing),
                skipped: false,
                manager_kept: None,
            });
        }
    }

    let mut kept = keep_overridden(&mut entries, input.overrides);
    check_emails(&mut entries, input.index, &mut issues);
    let (names, managers_kept) = plan_managers(&mut entries, input.index, &checker.by_source, &mut issues);
    kept.extend(managers_kept.into_iter().map(|(e, wanted, o)| {
        let name = |t: Option<Target>| t.and_then(|t| names.get(&t).cloned());
        kept_value(e.0, &e.1, o, name(wanted), name(e.2), wanted != e.2)
    }));
    kept.extend(kept_unchanged(&checker, input.current, &entries, input.overrides));
    let mut planned = translate(&checker, input.current, entries, &names, issues);
    planned.apply.counts.kept = kept.iter().filter(|k| k.differs).count() as u64;
    planned.apply.kept = kept;
    Ok(planned)
}

fn kept_value(
    user: UserId,
    name: &str,
    o: &Override,
    source: Option<String>,
    kept: Option<String>,
    differs: bool,
) -> KeptValue {
    KeptValue {
        user_id: user,
        name: name.to_string(),
        field: o.field.clone(),
        source,
        kept,
        differs,
        kept_by: o.kept_by.clone(),
        until: o.until,
    }
}

/// Puts kept values back over what the source says, and records both. The
/// manager is kept later, where managers are resolved.
fn keep_overridden<'a>(entries: &mut [Entry<'a>], overrides: &'a HashMap<UserId, Vec<Override>>) -> Vec<KeptValue> {
    let mut kept = Vec::new();
    for e in entries.iter_mut() {
        let Target::Existing(id) = e.target else { continue };
        for o in overrides.get(&id).into_iter().flatten() {
            if o.field == Field::Manager {
                e.manager_kept = Some(o);
                continue;
            }
            let source = e.profile.field(&o.field);
            // A value the profile cannot take (a kept field the status
            // rules own) is refused when set; here it is left to the source.
            if e.profile.set_field(&o.field, o.value.clone()).is_ok() {
                let differs = source != o.value;
                kept.push(kept_value(id, &e.profile.display_name(), o, source, o.value.clone(), differs));
            }
        }
    }
    kept
}

/// The overrides of people the fetch returned whom the plan leaves alone:
/// the source agrees with every kept value (the connector's diff saw the
/// directory, kept values included, and found nothing to change).
fn kept_unchanged(
    checker: &Checker<'_>,
    current: &[User],
    entries: &[Entry<'_>],
    overrides: &HashMap<UserId, Vec<Override>>,
) -> Vec<KeptValue> {
    let planned: HashSet<Target> = entries.iter().map(|e| e.target).collect();
    let names: HashMap<UserId, String> = current.iter().map(|u| (u.id, u.profile.display_name())).collect();
    current
        .iter()
        .filter(|u| checker.mine(u) && !planned.contains(&Target::Existing(u.id)))
        .filter(|u| matches!(checker.received.get(Checker::source_id(u)), Some(Some(_))))
        .flat_map(|u| overrides.get(&u.id).into_iter().flatten().map(move |o| (u, o)))
        .map(|(u, o)| {
            let value = match o.field {
                Field::Manager => u.manager_id.and_then(|m| names.get(&m).cloned()),
                _ => o.value.clone(),
            };
            kept_value(u.id, &u.profile.display_name(), o, value.clone(), value, false)
        })
        .collect()
}

/// The entries as the directory's writes and history, with counts.
fn translate(
    checker: &Checker<'_>,
    current: &[User],
    entries: Vec<Entry<'_>>,
    names: &HashMap<Target, String>,
    issues: Vec<IssueRecord>,
) -> Planned {
    let names = |t: Target| names.get(&t).cloned().unwrap_or_else(|| "?".into());
    let mut planned = Planned { managed: checker.by_source.len(), ..Planned::default() };
    let mut counts = Counts::default();
    for e in entries.into_iter().filter(|e| !e.skipped) {
        let mut fields = field_changes(e.before.map(|u| &u.profile), &e.profile);
        let manager_before = e.before.and_then(|u| u.manager_id).map(Target::Existing);
        if manager_before != e.manager {
            fields.push(FieldChange {
                field: Field::Manager,
                before: manager_before.map(&names),
                after: e.manager.map(&names),
                before_id: manager_before.and_then(|t| match t {
                    Target::Existing(id) => Some(id),
                    Target::New(_) => None,
                }),
                after_id: None,
            });
            counts.manager_changes += 1;
        }
        // An update whose every change was refused is no change (the missing
        // count is still reset below).
        if e.kind == ChangeKind::Update && fields.is_empty() {
            continue;
        }
        match e.kind {
            ChangeKind::Create => counts.created += 1,
            ChangeKind::Update => counts.updated += 1,
            ChangeKind::Deactivate => counts.deactivated += 1,
            ChangeKind::Reactivate => counts.reactivated += 1,
            ChangeKind::Link => counts.linked += 1,
            ChangeKind::Missing => counts.missing += 1,
            ChangeKind::Restore => {}
        }
        // Adopting a user into an inactive person deactivates them too.
        let deactivates = e.before.is_some_and(|b| b.profile.status != UserStatus::Inactive)
            && e.profile.status == UserStatus::Inactive;
        if deactivates {
            planned.deactivations += 1;
        }
        if e.before.is_some_and(|b| b.profile.email != e.profile.email) {
            planned.email_changes += 1;
        }
        if e.before.is_some_and(|b| b.profile.status == UserStatus::PendingStart)
            && e.profile.status == UserStatus::Active
        {
            planned.apply.starters.push(e.target);
        }
        planned.apply.changes.push(PlannedChange {
            target: e.target,
            source_id: e.managed_by.as_ref().map(|m| m.1.clone()),
            name: e.profile.display_name(),
            kind: e.kind,
            fields,
            manager_after: e.manager,
        });
        let user = PlannedUser {
            target: e.target,
            profile: e.profile,
            manager: e.manager,
            managed_by: e.managed_by,
            missing_runs: e.missing_runs,
        };
        match user.target {
            Target::New(_) => planned.apply.creates.push(user),
            Target::Existing(_) => planned.apply.updates.push(user),
        }
    }
    // Whoever the fetch returned is present: a missing count left from an
    // earlier run goes back to zero, whatever was skipped for them here.
    let written: HashSet<Target> = planned.apply.updates.iter().map(|u| u.target).collect();
    let resets = current
        .iter()
        .filter(|u| checker.mine(u) && u.missing_runs > 0 && !written.contains(&Target::Existing(u.id)))
        .filter(|u| checker.received.contains_key(Checker::source_id(u)))
        .map(|u| PlannedUser {
            target: Target::Existing(u.id),
            profile: u.profile.clone(),
            manager: u.manager_id.map(Target::Existing),
            managed_by: u.managed_by.clone(),
            missing_runs: 0,
        })
        .collect::<Vec<_>>();
    planned.apply.updates.extend(resets);
    // Targets of skipped creates no longer exist: renumber the rest.
    renumber_creates(&mut planned.apply);
    let changed: HashSet<&str> = planned.apply.changes.iter().filter_map(|c| c.source_id.as_deref()).collect();
    counts.unchanged = checker
        .received
        .keys()
        .filter(|s| checker.by_source.contains_key(s.as_str()) && !changed.contains(s.as_str()))
        .count() as u64;
    let issues = distinct(issues);
    counts.issues = issues.len() as u64;
    planned.apply.counts = counts;
    planned.apply.issues = issues;
    planned.fingerprint = fingerprint(&planned.apply);
    planned
}

/// The fields whose value differs.
fn field_changes(before: Option<&Profile>, after: &Profile) -> Vec<FieldChange> {
    let mut fields: Vec<Field> = after.fields().into_iter().map(|(f, _)| f).collect();
    // Custom attributes the source no longer has.
    if let Some(b) = before {
        fields.extend(b.custom.keys().filter(|k| !after.custom.contains_key(*k)).map(|k| Field::Custom(k.clone())));
    }
    fields
        .into_iter()
        .filter_map(|field| {
            let was = before.and_then(|b| b.field(&field));
            let now = after.field(&field);
            (was != now).then_some(FieldChange { field, before: was, after: now, before_id: None, after_id: None })
        })
        .collect()
}

/// No two users may hold one email. A person claiming an address that
/// another user keeps, or that several incoming people claim, keeps their
/// old address (or, if new, is not created).
fn check_emails(entries: &mut [Entry<'_>], index: &[IndexEntry], issues: &mut Vec<IssueRecord>) {
    let mut owner: HashMap<String, Target> = index.iter().map(|i| (i.email.key(), Target::Existing(i.id))).collect();
    // Addresses given up in this run are free to claim.
    for e in entries.iter() {
        if let Some(b) = e.before
            && b.profile.email != e.profile.email
        {
            owner.remove(&b.profile.email.key());
        }
    }
    let mut claims: HashMap<String, usize> = HashMap::new();
    for e in entries.iter().filter(|e| e.before.is_none_or(|b| b.profile.email != e.profile.email)) {
        *claims.entry(e.profile.email.key()).or_default() += 1;
    }
    for e in entries.iter_mut() {
        let key = e.profile.email.key();
        let claiming = e.before.is_none_or(|b| b.profile.email != e.profile.email);
        if !claiming {
            continue;
        }
        let taken_by_other = owner.get(&key).is_some_and(|t| *t != e.target);
        let contested = claims.get(&key).copied().unwrap_or(0) > 1;
        if !(taken_by_other || contested) {
            owner.insert(key, e.target);
            continue;
        }
        let why = if contested {
            "several people in the source have this email"
        } else {
            "another user already has this email"
        };
        match e.before {
            None => {
                e.skipped = true;
                issues.push(issue(
                    e.person,
                    Some("email"),
                    Severity::Error,
                    format!("not created: {} ({why}); fix the emails in the source", e.profile.email),
                ));
            }
            Some(b) => {
                issues.push(issue(
                    e.person,
                    Some("email"),
                    Severity::Error,
                    format!("email not changed to {} ({why}); kept {}", e.profile.email, b.profile.email),
                ));
                e.profile.email = b.profile.email.clone();
                owner.insert(b.profile.email.key(), e.target);
            }
        }
    }
}

/// Resolves supervisors to users and refuses manager changes that would
/// close a reporting cycle. Returns every target's display name.
/// A manager an override kept: (the user and their name, the kept
/// manager), the manager the source wanted, the override.
type ManagerKept<'a> = ((UserId, String, Option<Target>), Option<Target>, &'a Override);

fn plan_managers<'a>(
    entries: &mut [Entry<'a>],
    index: &[IndexEntry],
    by_source: &HashMap<&str, UserId>,
    issues: &mut Vec<IssueRecord>,
) -> (HashMap<Target, String>, Vec<ManagerKept<'a>>) {
    let mut kept = Vec::new();
    let mut source_to_target: HashMap<String, Target> =
        by_source.iter().map(|(s, id)| (s.to_string(), Target::Existing(*id))).collect();
    // People created or adopted by email in this very run can be managers
    // in it: their reports get them now, not at the next run.
    for e in entries.iter().filter(|e| !e.skipped) {
        if let Some((_, s)) = &e.managed_by {
            source_to_target.entry(s.clone()).or_insert(e.target);
        }
    }
    let mut graph: HashMap<Target, Option<Target>> =
        index.iter().map(|i| (Target::Existing(i.id), i.manager_id.map(Target::Existing))).collect();
    for e in entries.iter().filter(|e| !e.skipped) {
        graph.entry(e.target).or_insert(None);
    }
    for e in entries.iter_mut().filter(|e| !e.skipped) {
        let Some(person) = e.person else { continue };
        if let (Some(o), Target::Existing(id)) = (e.manager_kept, e.target) {
            let wanted = person.supervisor_id.as_ref().and_then(|s| source_to_target.get(s.as_str()).copied());
            kept.push(((id, e.profile.display_name(), e.manager), wanted, o));
            continue;
        }
        let wanted = match &person.supervisor_id {
            None => None,
            Some(sid) => match source_to_target.get(sid.as_str()) {
                Some(t) => Some(*t),
                None => {
                    issues.push(issue(
                        Some(person),
                        Some("manager"),
                        Severity::Warning,
                        format!("supervisor `{sid}` is not in the directory (not imported, filtered out, or without email); manager left unchanged"),
                    ));
                    continue;
                }
            },
        };
        if wanted == e.manager {
            continue;
        }
        if let Some(m) = wanted
            && closes_cycle(&graph, e.target, m)
        {
            issues.push(issue(
                Some(person),
                Some("manager"),
                Severity::Error,
                "manager not changed: the new manager reports (directly or indirectly) to this person, which would make a reporting cycle; fix the supervisors in the source".into(),
            ));
            continue;
        }
        e.manager = wanted;
        graph.insert(e.target, wanted);
    }
    let mut names: HashMap<Target, String> = index.iter().map(|i| (Target::Existing(i.id), i.name.clone())).collect();
    for e in entries.iter() {
        names.insert(e.target, e.profile.display_name());
    }
    (names, kept)
}

/// Whether making `manager` the manager of `person` closes a loop.
fn closes_cycle(graph: &HashMap<Target, Option<Target>>, person: Target, manager: Target) -> bool {
    let mut current = Some(manager);
    let mut steps = 0;
    while let Some(t) = current {
        if t == person {
            return true;
        }
        steps += 1;
        if steps > graph.len() {
            // An existing loop above: do not add to it.
            return true;
        }
        current = graph.get(&t).copied().flatten();
    }
    false
}

/// Creates skipped after numbering leave gaps; `Target::New(i)` must index `creates`.
fn renumber_creates(apply: &mut Apply) {
    let map: HashMap<Target, Target> =
        apply.creates.iter().enumerate().map(|(i, u)| (u.target, Target::New(i))).collect();
    let fix = |t: &mut Target| {
        if let Target::New(_) = t {
            *t = map.get(t).copied().unwrap_or(*t);
        }
    };
    for u in apply.creates.iter_mut().chain(apply.updates.iter_mut()) {
        fix(&mut u.target);
        if let Some(m) = u.manager.as_mut() {
            fix(m);
        }
    }
    for c in apply.changes.iter_mut() {
        fix(&mut c.target);
        if let Some(m) = c.manager_after.as_mut() {
            fix(m);
        }
    }
}

fn fingerprint(apply: &Apply) -> String {
    let mut hasher = Sha256::new();
    for c in &apply.changes {
        hasher.update(c.kind.as_str());
        hasher.update(c.source_id.as_deref().unwrap_or(""));
        for f in &c.fields {
            hasher.update(f.field.name().as_bytes());
            hasher.update([0]);
            hasher.update(f.before.as_deref().unwrap_or("\u{0}"));
            hasher.update([0]);
            hasher.update(f.after.as_deref().unwrap_or("\u{0}"));
        }
        hasher.update([1]);
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a run must not apply by itself, if it would change too much.
pub fn safeguard(integration: &Integration, planned: &Planned) -> Option<String> {
    let c = &integration.config;
    // Small absolute numbers never trip the safeguard: one leaver in a team
    // of four is 25 %, but not a mass change.
    const FLOOR: usize = 5;
    let limit = |share: f64| ((share * planned.managed as f64).floor() as usize).max(FLOOR);
    if planned.deactivations > limit(c.max_deactivate_share) {
        return Some(format!(
            "this run would deactivate {} of {} managed users (more than {:.0} %); check the source and the credential's permissions, then run it manually with the override",
            planned.deactivations,
            planned.managed,
            c.max_deactivate_share * 100.0
        ));
    }
    if planned.email_changes > limit(c.max_email_share) {
        return Some(format!(
            "this run would change the email of {} of {} managed users (more than {:.0} %); check the source, then run it manually with the override",
            planned.email_changes,
            planned.managed,
            c.max_email_share * 100.0
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_problem_with_the_same_person_is_listed_once() {
        let problem = |source: &str, message: &str| IssueRecord {
            source_id: Some(source.into()),
            name: Some("Ada".into()),
            field: Some("email".into()),
            severity: Severity::Warning,
            message: message.into(),
        };
        let issues =
            vec![problem("1", "no email"), problem("1", "no email"), problem("2", "no email"), problem("1", "bad")];
        assert_eq!(distinct(issues), vec![problem("1", "no email"), problem("2", "no email"), problem("1", "bad")]);
    }
}
