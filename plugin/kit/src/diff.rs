//! The canonical diff: directory vs. incoming people → change plan. Pure
//! and deterministic; every connector can use it as is.
//!
//! Matching is by source id first, then adoption of an unmanaged user by
//! case-insensitive email; never by name. People missing from a complete run
//! are reported, and deactivated only after `missing-after` runs in a row:
//! a vanished person is more often a permission or filter change than a leaver.

use std::collections::{HashMap, HashSet};

use crate::types::Change;
use crate::types::{
    Date, Deactivation, DeactivationReason, DiffOptions, DirectoryUser, FieldChange, Gender, Issue, MissingUser,
    Person, PersonStatus, Plan, Severity, UserStatus, UserUpdate,
};

/// The directory status a source status maps to.
pub fn directory_status(status: PersonStatus) -> UserStatus {
    match status {
        PersonStatus::Active | PersonStatus::Leave => UserStatus::Active,
        PersonStatus::Onboarding => UserStatus::PendingStart,
        PersonStatus::Inactive => UserStatus::Inactive,
    }
}

/// The directory status as the host names it in field changes.
pub fn status_name(status: UserStatus) -> &'static str {
    match status {
        UserStatus::Active => "active",
        UserStatus::Inactive => "inactive",
        UserStatus::PendingStart => "pending-start",
    }
}

/// `YYYY-MM-DD`.
pub fn date_text(d: &Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)
}

fn gender_text(g: &Gender) -> String {
    match g {
        Gender::Male => "male",
        Gender::Female => "female",
        Gender::Diverse => "diverse",
    }
    .into()
}

/// The field-level differences between a directory user and an incoming person.
/// `status` is compared as directory status.
pub fn field_changes(user: &DirectoryUser, person: &Person) -> Vec<FieldChange> {
    let before = &user.person;
    let mut changes = Vec::new();
    let mut field = |name: &str, b: Option<String>, a: Option<String>| {
        if b != a {
            changes.push(FieldChange { field: name.into(), before: b, after: a });
        }
    };
    field("first-name", Some(before.first_name.clone()), Some(person.first_name.clone()));
    field("last-name", Some(before.last_name.clone()), Some(person.last_name.clone()));
    field("preferred-name", before.preferred_name.clone(), person.preferred_name.clone());
    field("email", before.email.clone(), person.email.clone());
    field("employee-id", before.employee_id.clone(), person.employee_id.clone());
    field("gender", before.gender.as_ref().map(gender_text), person.gender.as_ref().map(gender_text));
    field("status", Some(status_name(user.status).into()), Some(status_name(directory_status(person.status)).into()));
    field("manager", before.supervisor_id.clone(), person.supervisor_id.clone());
    field("start-date", before.start_date.as_ref().map(date_text), person.start_date.as_ref().map(date_text));
    field(
        "termination-date",
        before.termination_date.as_ref().map(date_text),
        person.termination_date.as_ref().map(date_text),
    );
    field("job-title", before.job_title.clone(), person.job_title.clone());
    field("department", before.department.clone(), person.department.clone());
    field("office", before.office.clone(), person.office.clone());
    field("team", before.team.clone(), person.team.clone());
    let keys: std::collections::BTreeSet<&str> =
        before.custom.iter().chain(&person.custom).map(|e| e.key.as_str()).collect();
    for key in keys {
        let get = |p: &Person| p.custom.iter().find(|e| e.key == key).map(|e| e.value.clone());
        field(&format!("custom.{key}"), get(before), get(person));
    }
    // A blank empty-string and a missing value are the same to admins.
    changes.retain(|c| c.before.as_deref().unwrap_or("") != c.after.as_deref().unwrap_or(""));
    changes
}

/// Computes the plan that makes the directory match the source. New
/// directory users are created only for people whose status is in
/// `creatable`; people already in the directory are always kept up to date.
pub fn diff(creatable: &[PersonStatus], current: &[DirectoryUser], incoming: &[Person], options: &DiffOptions) -> Plan {
    let mut plan = Plan { changes: Vec::new(), issues: Vec::new() };
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
    let mut adopted: HashSet<u64> = HashSet::new();
    for person in incoming {
        if !seen.insert(person.source_id.as_str()) {
            plan.issues.push(issue(
                person,
                Severity::Error,
                None,
                "the source returned this person twice; the second copy was ignored",
            ));
            continue;
        }
        if let Some(user) = by_source.get(person.source_id.as_str()) {
            plan.changes.extend(change_for_managed(user, person));
            continue;
        }
        let email_match = person
            .email
            .as_ref()
            .and_then(|e| unmanaged_by_email.get(&e.to_lowercase()))
            .filter(|u| !adopted.contains(&u.user_id));
        if let Some(user) = email_match {
            adopted.insert(user.user_id);
            plan.changes.push(Change::Link(UserUpdate {
                user_id: user.user_id,
                person: person.clone(),
                changes: field_changes(user, person),
            }));
            continue;
        }
        if !creatable.contains(&person.status) {
            continue;
        }
        if person.email.is_none() {
            plan.issues.push(issue(
                person,
                Severity::Error,
                Some("email"),
                "not created: the person has no work email in the source; add one there",
            ));
            continue;
        }
        plan.changes.push(Change::Create(person.clone()));
    }

    if options.complete {
        let threshold = options.missing_after.max(1);
        let mut missing: Vec<&DirectoryUser> = by_source
            .values()
            .copied()
            .filter(|u| u.status != UserStatus::Inactive && !seen.contains(u.source_id.as_deref().unwrap_or("")))
            .collect();
        missing.sort_by_key(|u| u.user_id);
        for user in missing {
            let runs = user.missing_runs.saturating_add(1);
            plan.changes.push(if runs >= threshold {
                Change::Deactivate(Deactivation {
                    user_id: user.user_id,
                    reason: DeactivationReason::MissingFromSource,
                    person: None,
                    changes: vec![FieldChange {
                        field: "status".into(),
                        before: Some(status_name(user.status).into()),
                        after: Some("inactive".into()),
                    }],
                })
            } else {
                Change::Missing(MissingUser { user_id: user.user_id, runs })
            });
        }
    }
    plan
}

fn change_for_managed(user: &DirectoryUser, person: &Person) -> Option<Change> {
    let changes = field_changes(user, person);
    let incoming = directory_status(person.status);
    let update = |changes| UserUpdate { user_id: user.user_id, person: person.clone(), changes };
    match (user.status, incoming) {
        (UserStatus::Inactive, UserStatus::Inactive)
        | (UserStatus::Active | UserStatus::PendingStart, UserStatus::Active | UserStatus::PendingStart) => {
            (!changes.is_empty()).then(|| Change::Update(update(changes)))
        }
        (UserStatus::Inactive, _) => Some(Change::Reactivate(update(changes))),
        (_, UserStatus::Inactive) => Some(Change::Deactivate(Deactivation {
            user_id: user.user_id,
            reason: DeactivationReason::InactiveInSource,
            person: Some(person.clone()),
            changes,
        })),
    }
}

fn issue(person: &Person, severity: Severity, field: Option<&str>, message: &str) -> Issue {
    Issue {
        source_id: Some(person.source_id.clone()),
        name: Some(format!("{} {}", person.first_name, person.last_name).trim().to_string()),
        field: field.map(Into::into),
        severity,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the Personio connector creates by default.
    fn settings() -> &'static [PersonStatus] {
        &[PersonStatus::Active, PersonStatus::Onboarding, PersonStatus::Leave]
    }

    fn person(id: &str, email: Option<&str>, status: PersonStatus) -> Person {
        Person {
            source_id: id.into(),
            employee_id: Some(format!("E{id}")),
            first_name: format!("First{id}"),
            last_name: "Last".into(),
            preferred_name: None,
            email: email.map(Into::into),
            gender: None,
            status,
            supervisor_id: None,
            start_date: Some(Date { year: 2020, month: 1, day: 1 }),
            termination_date: None,
            job_title: Some("Engineer".into()),
            department: Some("Eng".into()),
            office: None,
            team: None,
            custom: vec![],
            profile_url: None,
        }
    }

    /// A directory user holding exactly what `p` says.
    fn user_of(user_id: u64, p: &Person, managed: bool) -> DirectoryUser {
        DirectoryUser {
            user_id,
            source_id: managed.then(|| p.source_id.clone()),
            status: directory_status(p.status),
            missing_runs: 0,
            person: p.clone(),
        }
    }

    fn full() -> DiffOptions {
        DiffOptions { complete: true, missing_after: 2 }
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

    #[test]
    fn the_directory_against_itself_is_empty() {
        let people = company();
        let current: Vec<_> = people.iter().enumerate().map(|(i, p)| user_of(i as u64 + 1, p, true)).collect();
        let plan = diff(settings(), &current, &people, &full());
        assert_eq!(plan, Plan { changes: vec![], issues: vec![] });
    }

    #[test]
    fn first_import_creates_everyone_allowed_by_the_status_filter() {
        let plan = diff(settings(), &[], &company(), &full());
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
        let all = [PersonStatus::Active, PersonStatus::Onboarding, PersonStatus::Leave, PersonStatus::Inactive];
        assert_eq!(diff(&all, &[], &company(), &full()).changes.len(), 4);
    }

    #[test]
    fn field_updates_carry_before_and_after() {
        let people = company();
        let current: Vec<_> = people.iter().enumerate().map(|(i, p)| user_of(i as u64 + 1, p, true)).collect();
        let mut incoming = people.clone();
        incoming[1].job_title = Some("Lead".into());
        incoming[1].last_name = "Renamed".into();
        incoming[2].supervisor_id = Some("1".into());
        incoming[0].custom = vec![crate::types::Entry { key: "dynamic_1".into(), value: "x".into() }];
        let plan = diff(settings(), &current, &incoming, &full());
        let updates: HashMap<u64, Vec<FieldChange>> = plan
            .changes
            .into_iter()
            .map(|c| match c {
                Change::Update(u) => (u.user_id, u.changes),
                other => panic!("{other:?}"),
            })
            .collect();
        let fc = |f: &str, b: Option<&str>, a: Option<&str>| FieldChange {
            field: f.into(),
            before: b.map(Into::into),
            after: a.map(Into::into),
        };
        assert_eq!(
            updates[&2],
            vec![fc("last-name", Some("Last"), Some("Renamed")), fc("job-title", Some("Engineer"), Some("Lead"))]
        );
        assert_eq!(updates[&3], vec![fc("manager", Some("2"), Some("1"))]);
        assert_eq!(updates[&1], vec![fc("custom.dynamic_1", None, Some("x"))]);
        assert_eq!(updates.len(), 3);
    }

    #[test]
    fn leavers_are_deactivated_and_rehires_reactivated() {
        let people = company();
        let current: Vec<_> = people.iter().enumerate().map(|(i, p)| user_of(i as u64 + 1, p, true)).collect();
        let mut incoming = people.clone();
        incoming[1].status = PersonStatus::Inactive;
        incoming[1].termination_date = Some(Date { year: 2026, month: 6, day: 30 });
        incoming[3].status = PersonStatus::Active;
        let plan = diff(settings(), &current, &incoming, &full());
        assert_eq!(plan.changes.len(), 2);
        match &plan.changes[0] {
            Change::Deactivate(d) => {
                assert_eq!((d.user_id, d.reason), (2, DeactivationReason::InactiveInSource));
                assert!(
                    d.changes.iter().any(|c| c.field == "termination-date" && c.after.as_deref() == Some("2026-06-30"))
                );
            }
            other => panic!("{other:?}"),
        }
        match &plan.changes[1] {
            Change::Reactivate(u) => {
                assert_eq!(u.user_id, 4);
                assert!(u.changes.iter().any(|c| c.field == "status" && c.after.as_deref() == Some("active")));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn onboarding_people_who_start_become_active_by_update() {
        let people = company();
        let current: Vec<_> = people.iter().enumerate().map(|(i, p)| user_of(i as u64 + 1, p, true)).collect();
        let mut incoming = people.clone();
        incoming[2].status = PersonStatus::Active;
        let plan = diff(settings(), &current, &incoming, &full());
        match &plan.changes[..] {
            [Change::Update(u)] => {
                assert_eq!(u.changes[0].before.as_deref(), Some("pending-start"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unmanaged_users_are_adopted_by_case_insensitive_email_once() {
        let mut existing = person("x", Some("B@X.IO"), PersonStatus::Active);
        existing.first_name = "Bea".into();
        let unmanaged = user_of(50, &existing, false);
        let mut twin = person("9", Some("b@x.io"), PersonStatus::Active);
        twin.first_name = "Twin".into();
        let incoming = vec![person("2", Some("b@x.io"), PersonStatus::Active), twin];
        let plan = diff(settings(), &[unmanaged], &incoming, &full());
        match &plan.changes[0] {
            Change::Link(u) => {
                assert_eq!(u.user_id, 50);
                assert_eq!(u.person.source_id, "2");
                assert!(u.changes.iter().any(|c| c.field == "first-name"));
            }
            other => panic!("{other:?}"),
        }
        // The second person with that email is not linked to the same user;
        // it is proposed as a create, which the host rejects as a duplicate email.
        assert!(matches!(&plan.changes[1], Change::Create(p) if p.source_id == "9"));
    }

    #[test]
    fn names_never_match() {
        let mut existing = person("x", Some("other@x.io"), PersonStatus::Active);
        existing.first_name = "First2".into();
        let plan = diff(
            settings(),
            &[user_of(50, &existing, false)],
            &[person("2", Some("b@x.io"), PersonStatus::Active)],
            &full(),
        );
        assert!(matches!(&plan.changes[..], [Change::Create(_)]));
    }

    #[test]
    fn people_without_email_are_reported_not_created() {
        let plan = diff(settings(), &[], &[person("1", None, PersonStatus::Active)], &full());
        assert!(plan.changes.is_empty());
        assert_eq!(plan.issues[0].field.as_deref(), Some("email"));
        // ...but an already linked person without email is still updated.
        let mut p = person("1", None, PersonStatus::Active);
        let current = user_of(1, &p, true);
        p.job_title = Some("New".into());
        let plan = diff(settings(), &[current], &[p], &full());
        assert!(matches!(&plan.changes[..], [Change::Update(_)]));
    }

    #[test]
    fn missing_people_are_reported_then_deactivated() {
        let people = company();
        let mut current: Vec<_> = people.iter().enumerate().map(|(i, p)| user_of(i as u64 + 1, p, true)).collect();
        let incoming: Vec<_> = people.iter().filter(|p| p.source_id != "2").cloned().collect();
        let plan = diff(settings(), &current, &incoming, &full());
        assert_eq!(plan.changes, vec![Change::Missing(MissingUser { user_id: 2, runs: 1 })]);

        current[1].missing_runs = 1;
        let plan = diff(settings(), &current, &incoming, &full());
        match &plan.changes[..] {
            [Change::Deactivate(d)] => assert_eq!((d.user_id, d.reason), (2, DeactivationReason::MissingFromSource)),
            other => panic!("{other:?}"),
        }

        // Incremental runs never infer absence.
        let partial = DiffOptions { complete: false, missing_after: 2 };
        assert!(diff(settings(), &current, &incoming, &partial).changes.is_empty());
    }

    #[test]
    fn inactive_users_missing_from_the_source_stay_quiet() {
        let people = company();
        let current: Vec<_> = people.iter().enumerate().map(|(i, p)| user_of(i as u64 + 1, p, true)).collect();
        let incoming: Vec<_> = people.iter().filter(|p| p.source_id != "4").cloned().collect();
        assert!(diff(settings(), &current, &incoming, &full()).changes.is_empty());
    }

    #[test]
    fn duplicate_source_ids_are_reported() {
        let p = person("1", Some("a@x.io"), PersonStatus::Active);
        let plan = diff(settings(), &[], &[p.clone(), p], &full());
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(plan.issues.len(), 1);
    }

    #[test]
    fn changes_only_name_known_users() {
        let people = company();
        let current: Vec<_> = people.iter().enumerate().map(|(i, p)| user_of(i as u64 + 10, p, true)).collect();
        let mut incoming = people.clone();
        incoming.iter_mut().for_each(|p| p.job_title = None);
        let known: HashSet<u64> = current.iter().map(|u| u.user_id).collect();
        for change in diff(settings(), &current, &incoming, &full()).changes {
            let id = match change {
                Change::Update(u) | Change::Reactivate(u) | Change::Link(u) => u.user_id,
                Change::Deactivate(d) => d.user_id,
                Change::Missing(m) => m.user_id,
                Change::Create(_) => continue,
            };
            assert!(known.contains(&id));
        }
    }
}
