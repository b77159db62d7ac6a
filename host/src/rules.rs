//! The sync rules, each defined once: the directory status a person gets on
//! a day, which fields compare and how, who is created, how absence is
//! counted — and the canonical diff built from them.
//!
//! The host's plan check (`sync::plan`), the conformance runner and the
//! canonical diff all use these functions, and connectors get the canonical
//! diff itself through `host.canonical-diff` (contract 0.3.0), so a
//! connector in any language can delegate its `diff` in one line and agree
//! with the host by construction.
//!
//! Matching is by source id first, then adoption of an unmanaged user by
//! case-insensitive email; never by name. People missing from a complete run
//! are counted, and deactivated only after `missing-after` runs in a row: a
//! vanished person is more often a permission or filter change than a leaver.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::NaiveDate;

use crate::model::{
    Change, Deactivation, DeactivationReason, DiffOptions, DirectoryUser, Field, FieldChange, Issue, MissingUser,
    Person, PersonStatus, Plan, Severity, UserId, UserStatus, UserUpdate,
};

/// The directory status a person has on `today`: leavers are inactive;
/// people who have not started yet (onboarding, or a start date ahead) are
/// pending; everyone else, on leave included, is active.
pub fn status_of(person: &Person, today: NaiveDate) -> UserStatus {
    let starts_later = person.start_date.is_some_and(|d| d > today);
    match person.status {
        PersonStatus::Inactive => UserStatus::Inactive,
        PersonStatus::Onboarding => UserStatus::PendingStart,
        PersonStatus::Active | PersonStatus::Leave if starts_later => UserStatus::PendingStart,
        PersonStatus::Active | PersonStatus::Leave => UserStatus::Active,
    }
}

/// The source status a directory user's status stands for, when the
/// directory is shown to a connector as people: the inverse of [`status_of`]
/// for someone whose start date has passed.
pub fn source_status(status: UserStatus) -> PersonStatus {
    match status {
        UserStatus::Active => PersonStatus::Active,
        UserStatus::PendingStart => PersonStatus::Onboarding,
        UserStatus::Inactive => PersonStatus::Inactive,
    }
}

/// Whether a value changed as admins see it: empty text and no value are
/// the same.
pub fn differs(before: Option<&str>, after: Option<&str>) -> bool {
    before.unwrap_or("") != after.unwrap_or("")
}

/// Consecutive complete runs without a user, this run included.
pub fn missing_runs(user_missing_runs: u32) -> u32 {
    user_missing_runs.saturating_add(1)
}

/// Whether a user missing for `runs` complete runs is deactivated.
pub fn deactivates_when_missing(runs: u32, missing_after: u32) -> bool {
    runs >= missing_after.max(1)
}

/// Why a person the directory does not have yet is not created, if not:
/// only people whose status the connector creates, and only with an email.
pub fn not_created(person: &Person, create: &[PersonStatus]) -> Option<NotCreated> {
    if !create.contains(&person.status) {
        Some(NotCreated::Status)
    } else if person.email.as_deref().is_none_or(|e| e.trim().is_empty()) {
        Some(NotCreated::NoEmail)
    } else {
        None
    }
}

/// Why [`not_created`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotCreated {
    /// The status is not one the connector creates (quietly left out).
    Status,
    /// No work email to sign in with (reported).
    NoEmail,
}

/// The fields in which `person` differs from what the directory holds for
/// `user`, in the order of [`Field::STANDARD`], then custom attributes by
/// key. Status is compared as directory status; a source without an email
/// leaves the directory's as it is.
pub fn field_changes(user: &DirectoryUser, person: &Person, today: NaiveDate) -> Vec<FieldChange> {
    let before = &user.person;
    let customs: BTreeSet<&str> = before.custom.iter().chain(&person.custom).map(|e| e.key.as_str()).collect();
    let fields = Field::STANDARD.into_iter().chain(customs.into_iter().map(|k| Field::Custom(k.into())));
    let mut changes = Vec::new();
    for field in fields {
        let (b, a) = match field {
            Field::Status => (Some(user.status.as_str().into()), Some(status_of(person, today).as_str().into())),
            Field::Email if person.email.is_none() => continue,
            _ => (before.field(&field), person.field(&field)),
        };
        if differs(b.as_deref(), a.as_deref()) {
            changes.push(FieldChange { field: field.name().into_owned(), before: b, after: a });
        }
    }
    changes
}

/// The plan that makes the directory match the source. New users are
/// created only for people whose status is in `create`; people already in
/// the directory are always kept up to date.
pub fn canonical_diff(
    current: &[DirectoryUser],
    incoming: &[Person],
    options: &DiffOptions,
    create: &[PersonStatus],
    today: NaiveDate,
) -> Plan {
    let mut plan = Plan::default();
    let mut by_source: HashMap<&str, &DirectoryUser> = HashMap::new();
    let mut unmanaged_by_email: HashMap<String, &DirectoryUser> = HashMap::new();
    for user in current {
        match &user.source_id {
            Some(id) => {
                by_source.insert(id.as_str(), user);
            }
            None => {
                if let Some(email) = &user.person.email {
                    unmanaged_by_email.insert(email.to_lowercase(), user);
                }
            }
        }
    }

    let mut seen: HashSet<&str> = HashSet::with_capacity(incoming.len());
    let mut adopted: HashSet<UserId> = HashSet::new();
    for person in incoming {
        if !seen.insert(person.source_id.as_str()) {
            let message = "the source returned this person twice; the second copy was ignored";
            plan.issues.push(Issue::about(person, None, Severity::Error, message));
            continue;
        }
        if let Some(user) = by_source.get(person.source_id.as_str()) {
            plan.changes.extend(change_for_managed(user, person, today));
            continue;
        }
        let email_match = person
            .email
            .as_ref()
            .and_then(|e| unmanaged_by_email.get(&e.to_lowercase()))
            .filter(|u| !adopted.contains(&u.user_id));
        if let Some(user) = email_match {
            adopted.insert(user.user_id);
            let changes = field_changes(user, person, today);
            plan.changes.push(Change::Link(UserUpdate { user_id: user.user_id, person: person.clone(), changes }));
            continue;
        }
        match not_created(person, create) {
            None => plan.changes.push(Change::Create(person.clone())),
            Some(NotCreated::Status) => {}
            Some(NotCreated::NoEmail) => plan.issues.push(Issue::about(
                person,
                Some("email"),
                Severity::Error,
                "not created: the person has no work email in the source; add one there",
            )),
        }
    }

    if options.complete {
        let mut missing: Vec<&DirectoryUser> = by_source
            .values()
            .copied()
            .filter(|u| u.status != UserStatus::Inactive)
            .filter(|u| !seen.contains(u.source_id.as_ref().map_or("", |s| s.as_str())))
            .collect();
        missing.sort_by_key(|u| u.user_id);
        for user in missing {
            let runs = missing_runs(user.missing_runs);
            plan.changes.push(if deactivates_when_missing(runs, options.missing_after) {
                Change::Deactivate(Deactivation {
                    user_id: user.user_id,
                    reason: DeactivationReason::MissingFromSource,
                    person: None,
                    changes: vec![FieldChange {
                        field: Field::Status.name().into_owned(),
                        before: Some(user.status.as_str().into()),
                        after: Some(UserStatus::Inactive.as_str().into()),
                    }],
                })
            } else {
                Change::Missing(MissingUser { user_id: user.user_id, runs })
            });
        }
    }
    plan
}

/// The change for a user this integration manages, if anything differs.
fn change_for_managed(user: &DirectoryUser, person: &Person, today: NaiveDate) -> Option<Change> {
    let changes = field_changes(user, person, today);
    let update = |changes| UserUpdate { user_id: user.user_id, person: person.clone(), changes };
    let was_inactive = user.status == UserStatus::Inactive;
    let now_inactive = status_of(person, today) == UserStatus::Inactive;
    match (was_inactive, now_inactive) {
        (true, true) | (false, false) => (!changes.is_empty()).then(|| Change::Update(update(changes))),
        (true, false) => Some(Change::Reactivate(update(changes))),
        (false, true) => Some(Change::Deactivate(Deactivation {
            user_id: user.user_id,
            reason: DeactivationReason::InactiveInSource,
            person: Some(person.clone()),
            changes,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Entry;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 15).unwrap()
    }

    /// What the Personio connector creates by default.
    fn create() -> &'static [PersonStatus] {
        &[PersonStatus::Active, PersonStatus::Onboarding, PersonStatus::Leave]
    }

    fn person(id: &str, email: Option<&str>, status: PersonStatus) -> Person {
        Person {
            employee_id: Some(format!("E{id}")),
            email: email.map(Into::into),
            status,
            start_date: NaiveDate::from_ymd_opt(2020, 1, 1),
            job_title: Some("Engineer".into()),
            department: Some("Eng".into()),
            ..Person::new(id, &format!("First{id}"), "Last")
        }
    }

    /// A directory user holding exactly what `p` says.
    fn user_of(user_id: i64, p: &Person, managed: bool) -> DirectoryUser {
        DirectoryUser {
            user_id: UserId(user_id),
            source_id: managed.then(|| p.source_id.clone()),
            status: status_of(p, today()),
            missing_runs: 0,
            person: p.clone(),
        }
    }

    fn full() -> DiffOptions {
        DiffOptions { complete: true, missing_after: 2 }
    }

    fn diff(current: &[DirectoryUser], incoming: &[Person], options: &DiffOptions) -> Plan {
        canonical_diff(current, incoming, options, create(), today())
    }

    fn company() -> Vec<Person> {
        let mut people = vec![
            person("1", Some("ceo@x.io"), PersonStatus::Active),
            person("2", Some("b@x.io"), PersonStatus::Active),
            person("3", Some("c@x.io"), PersonStatus::Onboarding),
            person("4", Some("d@x.io"), PersonStatus::Inactive),
        ];
        people[1].supervisor_id = Some("1".into());
        people[2].supervisor_id = Some("2".into());
        people
    }

    fn directory(people: &[Person]) -> Vec<DirectoryUser> {
        people.iter().enumerate().map(|(i, p)| user_of(i as i64 + 1, p, true)).collect()
    }

    fn fc(f: &str, b: Option<&str>, a: Option<&str>) -> FieldChange {
        FieldChange { field: f.into(), before: b.map(Into::into), after: a.map(Into::into) }
    }

    #[test]
    fn status_follows_the_source_and_the_start_date() {
        let mut p = person("1", None, PersonStatus::Active);
        assert_eq!(status_of(&p, today()), UserStatus::Active);
        p.start_date = NaiveDate::from_ymd_opt(2026, 2, 1);
        assert_eq!(status_of(&p, today()), UserStatus::PendingStart, "starts later");
        p.status = PersonStatus::Leave;
        assert_eq!(status_of(&p, today()), UserStatus::PendingStart);
        p.start_date = None;
        assert_eq!(status_of(&p, today()), UserStatus::Active, "on leave is employed");
        p.status = PersonStatus::Onboarding;
        assert_eq!(status_of(&p, today()), UserStatus::PendingStart);
        p.status = PersonStatus::Inactive;
        assert_eq!(status_of(&p, today()), UserStatus::Inactive);
    }

    #[test]
    fn a_users_status_shown_as_a_person_maps_back_to_itself() {
        for status in [UserStatus::Active, UserStatus::PendingStart, UserStatus::Inactive] {
            let p = Person { status: source_status(status), ..person("1", None, PersonStatus::Active) };
            assert_eq!(status_of(&p, today()), status);
        }
    }

    #[test]
    fn the_directory_against_itself_is_empty() {
        let people = company();
        assert_eq!(diff(&directory(&people), &people, &full()), Plan::default());
    }

    #[test]
    fn first_import_creates_everyone_allowed_by_the_status_filter() {
        let plan = diff(&[], &company(), &full());
        let created: Vec<_> = plan
            .changes
            .iter()
            .map(|c| match c {
                Change::Create(p) => p.source_id.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        // Inactive people are not in the default filter.
        assert_eq!(created, vec!["1", "2", "3"]);
        let all = canonical_diff(&[], &company(), &full(), &PersonStatus::ALL, today());
        assert_eq!(all.changes.len(), 4);
    }

    #[test]
    fn field_updates_carry_before_and_after_in_field_order() {
        let people = company();
        let mut incoming = people.clone();
        incoming[1].job_title = Some("Lead".into());
        incoming[1].last_name = "Renamed".into();
        incoming[2].supervisor_id = Some("1".into());
        incoming[0].custom = vec![Entry::new("dynamic_1", "x")];
        let plan = diff(&directory(&people), &incoming, &full());
        let updates: HashMap<UserId, Vec<FieldChange>> = plan
            .changes
            .into_iter()
            .map(|c| match c {
                Change::Update(u) => (u.user_id, u.changes),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            updates[&UserId(2)],
            vec![fc("last-name", Some("Last"), Some("Renamed")), fc("job-title", Some("Engineer"), Some("Lead"))]
        );
        assert_eq!(updates[&UserId(3)], vec![fc("manager", Some("2"), Some("1"))]);
        assert_eq!(updates[&UserId(1)], vec![fc("custom.dynamic_1", None, Some("x"))]);
        assert_eq!(updates.len(), 3);
    }

    #[test]
    fn blank_and_absent_are_the_same_and_a_lost_email_is_kept() {
        let people = company();
        let mut incoming = people.clone();
        incoming[0].office = Some(String::new());
        incoming[1].email = None;
        assert_eq!(diff(&directory(&people), &incoming, &full()), Plan::default());
    }

    #[test]
    fn leavers_are_deactivated_and_rehires_reactivated() {
        let people = company();
        let mut incoming = people.clone();
        incoming[1].status = PersonStatus::Inactive;
        incoming[1].termination_date = NaiveDate::from_ymd_opt(2026, 6, 30);
        incoming[3].status = PersonStatus::Active;
        let plan = diff(&directory(&people), &incoming, &full());
        assert_eq!(plan.changes.len(), 2);
        match &plan.changes[0] {
            Change::Deactivate(d) => {
                assert_eq!((d.user_id, d.reason), (UserId(2), DeactivationReason::InactiveInSource));
                assert!(d.changes.contains(&fc("termination-date", None, Some("2026-06-30"))));
            }
            other => panic!("{other:?}"),
        }
        match &plan.changes[1] {
            Change::Reactivate(u) => {
                assert_eq!(u.user_id, UserId(4));
                assert!(u.changes.contains(&fc("status", Some("inactive"), Some("active"))));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn people_who_start_become_active_by_update() {
        let people = company();
        let mut incoming = people.clone();
        incoming[2].status = PersonStatus::Active;
        let plan = diff(&directory(&people), &incoming, &full());
        match &plan.changes[..] {
            [Change::Update(u)] => assert_eq!(u.changes, vec![fc("status", Some("pending-start"), Some("active"))]),
            other => panic!("{other:?}"),
        }
        // An active person whose start date is ahead stays pending: no change.
        let mut later = people.clone();
        later[2].status = PersonStatus::Active;
        later[2].start_date = NaiveDate::from_ymd_opt(2026, 3, 1);
        let current = directory(&people);
        let plan = diff(&current, &later, &full());
        assert!(
            matches!(&plan.changes[..], [Change::Update(u)] if u.changes == vec![fc("start-date", Some("2020-01-01"), Some("2026-03-01"))]),
            "{plan:?}"
        );
    }

    #[test]
    fn unmanaged_users_are_adopted_by_case_insensitive_email_once() {
        let mut existing = person("x", Some("B@X.IO"), PersonStatus::Active);
        existing.first_name = "Bea".into();
        let unmanaged = user_of(50, &existing, false);
        let mut twin = person("9", Some("b@x.io"), PersonStatus::Active);
        twin.first_name = "Twin".into();
        let incoming = vec![person("2", Some("b@x.io"), PersonStatus::Active), twin];
        let plan = diff(&[unmanaged], &incoming, &full());
        match &plan.changes[0] {
            Change::Link(u) => {
                assert_eq!((u.user_id, u.person.source_id.as_str()), (UserId(50), "2"));
                assert!(u.changes.iter().any(|c| c.field == "first-name"));
            }
            other => panic!("{other:?}"),
        }
        // The second person with that email is not linked to the same user;
        // it is proposed as a create, which the host refuses as a duplicate email.
        assert!(matches!(&plan.changes[1], Change::Create(p) if p.source_id.as_str() == "9"));
    }

    #[test]
    fn names_never_match() {
        let mut existing = person("x", Some("other@x.io"), PersonStatus::Active);
        existing.first_name = "First2".into();
        let plan =
            diff(&[user_of(50, &existing, false)], &[person("2", Some("b@x.io"), PersonStatus::Active)], &full());
        assert!(matches!(&plan.changes[..], [Change::Create(_)]));
    }

    #[test]
    fn people_without_email_are_reported_not_created() {
        let plan = diff(&[], &[person("1", None, PersonStatus::Active)], &full());
        assert!(plan.changes.is_empty());
        assert_eq!(plan.issues[0].field.as_deref(), Some("email"));
        // ...but an already linked person without email is still updated.
        let mut p = person("1", Some("a@x.io"), PersonStatus::Active);
        let current = user_of(1, &p, true);
        p.email = None;
        p.job_title = Some("New".into());
        let plan = diff(&[current], &[p], &full());
        assert!(matches!(&plan.changes[..], [Change::Update(_)]));
    }

    #[test]
    fn missing_people_are_counted_then_deactivated() {
        let people = company();
        let mut current = directory(&people);
        let incoming: Vec<_> = people.iter().filter(|p| p.source_id.as_str() != "2").cloned().collect();
        let plan = diff(&current, &incoming, &full());
        assert_eq!(plan.changes, vec![Change::Missing(MissingUser { user_id: UserId(2), runs: 1 })]);

        current[1].missing_runs = 1;
        let plan = diff(&current, &incoming, &full());
        match &plan.changes[..] {
            [Change::Deactivate(d)] => {
                assert_eq!((d.user_id, d.reason), (UserId(2), DeactivationReason::MissingFromSource))
            }
            other => panic!("{other:?}"),
        }
        // Incremental runs never infer absence.
        let partial = DiffOptions { complete: false, missing_after: 2 };
        assert!(diff(&current, &incoming, &partial).changes.is_empty());
        // missing-after 0 means 1.
        assert!(deactivates_when_missing(1, 0));
        assert!(!deactivates_when_missing(1, 2));
    }

    #[test]
    fn inactive_users_missing_from_the_source_stay_quiet() {
        let people = company();
        let incoming: Vec<_> = people.iter().filter(|p| p.source_id.as_str() != "4").cloned().collect();
        assert!(diff(&directory(&people), &incoming, &full()).changes.is_empty());
    }

    #[test]
    fn duplicate_source_ids_are_reported() {
        let p = person("1", Some("a@x.io"), PersonStatus::Active);
        let plan = diff(&[], &[p.clone(), p], &full());
        assert_eq!((plan.changes.len(), plan.issues.len()), (1, 1));
    }

    #[test]
    fn changes_only_name_known_users() {
        let people = company();
        let current: Vec<_> = people.iter().enumerate().map(|(i, p)| user_of(i as i64 + 10, p, true)).collect();
        let mut incoming = people.clone();
        incoming.iter_mut().for_each(|p| p.job_title = None);
        let known: HashSet<UserId> = current.iter().map(|u| u.user_id).collect();
        let plan = diff(&current, &incoming, &full());
        assert!(!plan.changes.is_empty());
        assert!(plan.changes.iter().filter_map(Change::user).all(|id| known.contains(&id)));
    }
}
