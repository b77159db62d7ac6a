//! Preview, import, history and revert with the real Personio component
//! against the sandbox, into a real SQLite directory.

use hrsync::directory::prelude::*;
use std::collections::{BTreeMap, HashMap};

use hrsync::directory::{ChangeKind, ChangeRecord, Email, NewUser, Profile, RunKind, RunState, User, UserStatus};
use hrsync::sandbox::{Edit, Email as SandboxEmail, Employee, Fault, Hire, Status};
use hrsync::sync::SyncError;
use hrsync::sync::engine::{RevertRequest, RunRequest};
use hrsync_e2e::World;

const ALL: &str = "active,onboarding,leave,inactive";

fn has_email(e: &Employee) -> bool {
    matches!(e.email, SandboxEmail::Address(_))
}

fn fields(c: &ChangeRecord) -> BTreeMap<String, (Option<String>, Option<String>)> {
    c.fields.iter().map(|f| (f.field.to_string(), (f.before.clone(), f.after.clone()))).collect()
}

fn by_name(changes: &[ChangeRecord], source_id: u64) -> &ChangeRecord {
    let sid = source_id.to_string();
    changes
        .iter()
        .find(|c| c.source_id.as_deref() == Some(sid.as_str()))
        .unwrap_or_else(|| panic!("no change for {sid}"))
}

#[tokio::test]
async fn first_import_then_changes_preview_import_history_and_revert() {
    let w = World::new(60, ALL).await;
    let employees = w.sandbox.employees();

    // --- First import.
    let first = w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    let importable: Vec<&Employee> = employees.iter().filter(|e| has_email(e)).collect();
    assert_eq!(first.run.state, RunState::Succeeded);
    assert_eq!(first.run.counts.created as usize, importable.len());
    assert_eq!(w.users().len(), importable.len());
    for e in &importable {
        let u = w.user_of(e.id).unwrap();
        let expected_status = match e.status {
            Status::Inactive => UserStatus::Inactive,
            Status::Onboarding => UserStatus::PendingStart,
            Status::Active | Status::Leave => UserStatus::Active,
        };
        assert_eq!(u.profile.status, expected_status, "{}", e.id);
        let manager = e.supervisor.and_then(|s| w.user_of(s)).map(|m| m.id);
        assert_eq!(u.manager_id, manager, "reporting line of {}", e.id);
    }
    let without_email = employees.len() - importable.len();
    assert!(first.issues.iter().filter(|i| i.field.as_deref() == Some("email")).count() >= without_email);

    // --- The company changes.
    let active: Vec<&Employee> =
        importable.iter().copied().filter(|e| e.status == Status::Active && e.supervisor.is_some()).collect();
    let boss = importable.iter().find(|e| e.status == Status::Active).unwrap().id;
    let mover = active.iter().find(|e| e.supervisor != Some(boss) && e.id != boss).unwrap().id;
    let rest: Vec<u64> = active.iter().map(|e| e.id).filter(|id| ![boss, mover].contains(id)).collect();
    let (renamed, leaver, email_changer, vanished) = (rest[0], rest[1], rest[2], rest[3]);
    let rehired = importable.iter().find(|e| e.status == Status::Inactive).expect("an inactive person").id;
    let termination = chrono::NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
    let snapshot: HashMap<u64, hrsync::directory::User> =
        [mover, renamed, email_changer].iter().map(|id| (*id, w.user_of(*id).unwrap())).collect();

    let hired = w.sandbox.hire(Hire {
        first_name: "Nova".into(),
        last_name: "Neuling".into(),
        email: Some("nova.neuling@acme.example".into()),
        supervisor_id: Some(boss),
        position: Some("Engineer".into()),
        department: Some("Engineering".into()),
        ..Hire::default()
    });
    w.sandbox.apply(mover, Edit { supervisor_id: Some(Some(boss)), ..Edit::default() }).unwrap();
    w.sandbox.apply(renamed, Edit { last_name: Some("Renamed".into()), ..Edit::default() }).unwrap();
    w.sandbox
        .apply(leaver, Edit { status: Some(Status::Inactive), termination_date: Some(termination), ..Edit::default() })
        .unwrap();
    w.sandbox.apply(rehired, Edit { status: Some(Status::Active), ..Edit::default() }).unwrap();
    w.sandbox.apply(email_changer, Edit { email: Some("new.address@acme.example".into()), ..Edit::default() }).unwrap();
    assert!(w.sandbox.remove(vanished));

    // --- The preview shows exactly those changes, field by field.
    let preview = w.engine.preview(&RunRequest::manual(w.integration)).await.unwrap();
    let c = &preview.run.counts;
    assert_eq!(
        (c.created, c.updated, c.deactivated, c.reactivated, c.missing, c.linked, c.manager_changes),
        (1, 3, 1, 1, 1, 0, 2),
        "{c:?}"
    );
    assert_eq!(preview.changes.len(), 7, "{:#?}", preview.changes);
    let name = |id: u64| w.user_of(id).unwrap().profile.display_name();
    let old = |id: u64| w.user_of(id).unwrap();

    let create = by_name(&preview.changes, hired);
    assert_eq!(create.kind, ChangeKind::Create);
    assert_eq!(create.user_id, None);
    assert_eq!(fields(create)["manager"], (None, Some(name(boss))));
    assert_eq!(fields(create)["email"], (None, Some("nova.neuling@acme.example".into())));

    let moved = by_name(&preview.changes, mover);
    assert_eq!(moved.kind, ChangeKind::Update);
    let old_manager = old(mover).manager_id.map(|m| w.store.user(m).unwrap().profile.display_name());
    assert_eq!(fields(moved), BTreeMap::from([("manager".into(), (old_manager, Some(name(boss))))]));

    let r = by_name(&preview.changes, renamed);
    assert_eq!(
        fields(r),
        BTreeMap::from([("last-name".into(), (Some(old(renamed).profile.last_name), Some("Renamed".into())))])
    );

    let l = by_name(&preview.changes, leaver);
    assert_eq!(l.kind, ChangeKind::Deactivate);
    assert_eq!(
        fields(l),
        BTreeMap::from([
            ("status".into(), (Some("active".into()), Some("inactive".into()))),
            ("termination-date".into(), (None, Some("2026-12-31".into()))),
        ])
    );

    let back = by_name(&preview.changes, rehired);
    assert_eq!(back.kind, ChangeKind::Reactivate);
    let back_fields = fields(back);
    assert_eq!(back_fields["status"], (Some("inactive".into()), Some("active".into())));
    assert_eq!(back_fields["termination-date"].1, None);
    assert_eq!(back_fields.len(), 2, "{back_fields:?}");

    let mail = by_name(&preview.changes, email_changer);
    assert_eq!(
        fields(mail),
        BTreeMap::from([(
            "email".into(),
            (Some(old(email_changer).profile.email.to_string()), Some("new.address@acme.example".into()))
        )])
    );

    let gone = by_name(&preview.changes, vanished);
    assert_eq!(gone.kind, ChangeKind::Missing);
    assert_eq!(old(vanished).profile.status, UserStatus::Active, "a preview writes nothing");

    // --- The import of that preview applies exactly that.
    let import = w
        .engine
        .import(&RunRequest { from_preview: Some(preview.run.id), ..RunRequest::manual(w.integration) })
        .await
        .unwrap();
    assert_eq!(import.run.counts, preview.run.counts);
    assert_eq!(import.run.preview_id, Some(preview.run.id));
    let boss_user = w.user_of(boss).unwrap().id;
    assert_eq!(w.user_of(mover).unwrap().manager_id, Some(boss_user));
    assert_eq!(w.user_of(hired).unwrap().manager_id, Some(boss_user));
    assert_eq!(w.user_of(renamed).unwrap().profile.last_name, "Renamed");
    assert_eq!(w.user_of(leaver).unwrap().profile.status, UserStatus::Inactive);
    assert_eq!(w.user_of(rehired).unwrap().profile.status, UserStatus::Active);
    assert_eq!(w.user_of(email_changer).unwrap().profile.email.as_str(), "new.address@acme.example");
    let v = w.user_of(vanished).unwrap();
    assert_eq!((v.profile.status, v.missing_runs), (UserStatus::Active, 1), "missing once: reported, not deactivated");

    // --- History lists both imports (and the preview) with drill-down.
    let runs = w.store.runs(Some(w.integration), 0, 10).unwrap();
    let kinds: Vec<RunKind> = runs.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [RunKind::Import, RunKind::Preview, RunKind::Import]);
    let mover_user = w.user_of(mover).unwrap().id;
    let drill = w.store.run_changes(import.run.id, Some(mover_user)).unwrap();
    assert_eq!(drill.len(), 1);
    assert_eq!(drill[0].fields[0].after_id, Some(boss_user));
    let history = w.store.user_history(mover_user).unwrap();
    assert_eq!(history.iter().map(|(r, _)| *r).collect::<Vec<_>>(), [import.run.id, first.run.id]);

    // --- Revert one person, then the whole run.
    let renamed_user = w.user_of(renamed).unwrap().id;
    let one_person = RevertRequest { user: Some(renamed_user), ..RevertRequest::new(import.run.id, None) };
    let (_, one) = w.engine.revert(one_person).await.unwrap();
    assert_eq!(one.run.kind, RunKind::Revert);
    assert_eq!(one.run.reverts_id, Some(import.run.id));
    assert_eq!(w.user_of(renamed).unwrap().profile.last_name, snapshot[&renamed].profile.last_name);

    let (dry, _) =
        w.engine.revert(RevertRequest { dry_run: true, ..RevertRequest::new(import.run.id, None) }).await.unwrap();
    assert!(dry.issues.iter().any(|i| i.field.as_deref() == Some("last-name") && i.message.contains("changed again")));
    let before_dry = w.users();
    assert_eq!(w.users(), before_dry, "a dry run writes nothing");

    let (_, all) = w.engine.revert(RevertRequest::new(import.run.id, Some("admin".into()))).await.unwrap();
    assert_eq!(all.run.actor.as_deref(), Some("admin"));
    assert_eq!(w.user_of(mover).unwrap().manager_id, snapshot[&mover].manager_id);
    assert_eq!(w.user_of(leaver).unwrap().profile.status, UserStatus::Active);
    assert_eq!(w.user_of(rehired).unwrap().profile.status, UserStatus::Inactive);
    assert_eq!(w.user_of(email_changer).unwrap().profile.email, snapshot[&email_changer].profile.email);
    assert_eq!(w.user_of(hired).unwrap().profile.status, UserStatus::Inactive, "reverting a creation deactivates");
}

#[tokio::test]
async fn a_re_sync_without_changes_changes_nothing() {
    let w = World::new(80, ALL).await;
    w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    let before = w.users();
    let again = w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    assert!(again.changes.is_empty(), "{:#?}", again.changes);
    assert_eq!(again.run.counts.unchanged as usize, before.len());
    assert_eq!(w.users(), before);
}

#[tokio::test]
async fn existing_users_are_adopted_by_email_never_duplicated() {
    let w = World::new(40, ALL).await;
    let target = w.sandbox.employees().into_iter().find(|e| has_email(e) && e.status == Status::Active).unwrap();
    let SandboxEmail::Address(address) = &target.email else { unreachable!() };
    let existing = w
        .store
        .create_user(&NewUser { profile: profile(&address.to_uppercase(), "Old", "Name"), manager_id: None })
        .unwrap();
    let report = w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    assert_eq!(report.run.counts.linked, 1);
    let link = report.changes.iter().find(|c| c.kind == ChangeKind::Link).unwrap();
    assert_eq!(link.user_id, Some(existing));
    assert_eq!(fields(link)["last-name"], (Some("Name".into()), Some(target.last_name.clone())));
    let adopted = w.store.user(existing).unwrap();
    assert_eq!(adopted.managed_by.map(|m| m.1), Some(target.id.to_string()));
    let holders = w.users().iter().filter(|u| u.profile.email.key() == address.to_lowercase()).count();
    assert_eq!(holders, 1);
}

#[tokio::test]
async fn an_adopted_manager_is_their_reports_manager_in_the_same_run() {
    let w = World::new(40, ALL).await;
    let employees = w.sandbox.employees();
    // A manager with an email whose reports have emails too.
    let manager = employees
        .iter()
        .find(|m| has_email(m) && employees.iter().any(|e| e.supervisor == Some(m.id) && has_email(e)))
        .expect("a manager with reports");
    let SandboxEmail::Address(address) = &manager.email else { unreachable!() };
    let existing =
        w.store.create_user(&NewUser { profile: profile(address, "Old", "Name"), manager_id: None }).unwrap();
    let report = w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    assert_eq!(report.run.counts.linked, 1);
    let reports: Vec<&Employee> =
        employees.iter().filter(|e| e.supervisor == Some(manager.id) && has_email(e)).collect();
    let imported: Vec<User> = reports.iter().filter_map(|r| w.user_of(r.id)).collect();
    assert!(!imported.is_empty(), "the manager's reports were imported");
    for user in &imported {
        assert_eq!(user.manager_id, Some(existing), "{} reports to the adopted manager", user.profile.display_name());
    }
    assert!(
        !report.issues.iter().any(|i| i.message.contains(&format!("supervisor `{}`", manager.id))),
        "no report was left without their manager: {:?}",
        report.issues
    );
}

fn profile(email: &str, first: &str, last: &str) -> Profile {
    Profile::new(Email::parse(email).unwrap(), first, last)
}

#[tokio::test]
async fn duplicate_emails_cycles_and_dangling_supervisors_are_reported_not_applied() {
    let w = World::new(50, ALL).await;
    w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    let employees = w.sandbox.employees();
    let with_email: Vec<&Employee> = employees.iter().filter(|e| has_email(e) && e.supervisor.is_some()).collect();
    // A reports to B; now B is set to report to A: a cycle.
    let a = with_email.iter().find(|e| with_email.iter().any(|b| b.supervisor == Some(e.id))).unwrap();
    let b = with_email.iter().find(|x| x.supervisor == Some(a.id)).unwrap();
    w.sandbox.apply(a.id, Edit { supervisor_id: Some(Some(b.id)), ..Edit::default() }).unwrap();
    // Two people take one address.
    let others: Vec<u64> = with_email.iter().map(|e| e.id).filter(|id| ![a.id, b.id].contains(id)).take(3).collect();
    for id in &others[..2] {
        w.sandbox.apply(*id, Edit { email: Some("shared@acme.example".into()), ..Edit::default() }).unwrap();
    }
    // A supervisor that does not exist.
    w.sandbox.apply(others[2], Edit { supervisor_id: Some(Some(999_999)), ..Edit::default() }).unwrap();
    let before: HashMap<u64, _> =
        [a.id, others[0], others[1], others[2]].iter().map(|id| (*id, w.user_of(*id).unwrap())).collect();

    let report = w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    let issue = |sid: u64, needle: &str| {
        report.issues.iter().any(|i| i.source_id.as_deref() == Some(&sid.to_string()) && i.message.contains(needle))
    };
    assert!(issue(a.id, "reporting cycle"), "{:#?}", report.issues);
    assert_eq!(w.user_of(a.id).unwrap().manager_id, before[&a.id].manager_id, "the cycle was refused");
    for id in &others[..2] {
        assert!(issue(*id, "several people in the source have this email"), "{:#?}", report.issues);
        assert_eq!(w.user_of(*id).unwrap().profile.email, before[id].profile.email);
    }
    assert!(issue(others[2], "is not in the directory"), "{:#?}", report.issues);
    assert_eq!(w.user_of(others[2]).unwrap().manager_id, before[&others[2]].manager_id);
}

#[tokio::test]
async fn mass_deactivation_is_blocked_for_automatic_runs_and_needs_an_override() {
    let w = World::new(60, ALL).await;
    w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    let active: Vec<u64> = w
        .sandbox
        .employees()
        .iter()
        .filter(|e| has_email(e) && e.status == Status::Active)
        .map(|e| e.id)
        .take(20)
        .collect();
    for id in &active {
        w.sandbox.apply(*id, Edit { status: Some(Status::Inactive), ..Edit::default() }).unwrap();
    }
    let before = w.users();
    let automatic = RunRequest { automatic: true, override_safeguard: true, ..RunRequest::manual(w.integration) };
    let err = w.engine.import(&automatic).await.unwrap_err();
    let SyncError::Blocked { run, reason, .. } = &err else { panic!("{err:?}") };
    assert!(reason.contains("deactivate 20 of"), "{reason}");
    assert_eq!(w.store.run(*run).unwrap().state, RunState::Blocked, "listed in history as blocked");
    assert_eq!(w.users(), before, "an automatic run never applies past the safeguard, override or not");

    let manual = w.engine.import(&RunRequest::manual(w.integration)).await.unwrap_err();
    assert!(matches!(manual, SyncError::Blocked { .. }));
    assert_eq!(w.users(), before);

    let forced =
        w.engine.import(&RunRequest { override_safeguard: true, ..RunRequest::manual(w.integration) }).await.unwrap();
    assert_eq!(forced.run.counts.deactivated, 20);
}

#[tokio::test]
async fn a_failure_while_applying_leaves_directory_and_history_as_before() {
    let w = World::new(60, ALL).await;
    w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    let employees: Vec<Employee> = w.sandbox.employees().into_iter().filter(has_email).collect();
    for (i, e) in employees.iter().take(10).enumerate() {
        let last = if i == 7 { "BOOM".to_string() } else { format!("Changed{i}") };
        w.sandbox.apply(e.id, Edit { last_name: Some(last), ..Edit::default() }).unwrap();
    }
    w.sandbox.hire(Hire {
        first_name: "Late".into(),
        last_name: "Hire".into(),
        email: Some("late@acme.example".into()),
        ..Hire::default()
    });
    // A database-level fault in the middle of the writes.
    let conn = rusqlite::Connection::open(&w.db).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER boom BEFORE UPDATE ON users WHEN NEW.last_name = 'BOOM' BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    )
    .unwrap();
    let before = w.users();
    let runs_before = w.store.runs(None, 0, 100).unwrap().len();

    let err = w.engine.import(&RunRequest::manual(w.integration)).await.unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert_eq!(w.users(), before, "nothing half-applied");
    let runs = w.store.runs(None, 0, 100).unwrap();
    assert_eq!(runs.len(), runs_before + 1);
    assert_eq!(runs[0].state, RunState::Failed);
    assert!(w.store.run_changes(runs[0].id, None).unwrap().is_empty(), "no history of changes that did not happen");
}

#[tokio::test]
async fn a_connector_error_mid_fetch_changes_nothing() {
    let w = World::new(350, ALL).await;
    w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    let first = w.sandbox.employees().into_iter().find(has_email).unwrap().id;
    w.sandbox.apply(first, Edit { last_name: Some("Changed".into()), ..Edit::default() }).unwrap();
    w.sandbox.inject([Fault::Slow { millis: 0 }, Fault::Slow { millis: 0 }, Fault::Malformed]);
    let before = w.users();
    let err = w.engine.import(&RunRequest::manual(w.integration)).await.unwrap_err();
    assert!(matches!(err, SyncError::Fetch { .. }), "{err:?}");
    assert!(err.to_string().contains("malformed JSON"), "{err}");
    assert_eq!(w.users(), before);
    let run = w.store.run(err.run().unwrap()).unwrap();
    assert_eq!(run.state, RunState::Failed);
    assert!(run.error.unwrap().contains("malformed JSON"));
}

#[tokio::test]
async fn an_import_reports_drift_from_its_preview() {
    let w = World::new(30, ALL).await;
    let preview = w.engine.preview(&RunRequest::manual(w.integration)).await.unwrap();
    w.sandbox.hire(Hire {
        first_name: "Drift".into(),
        last_name: "Er".into(),
        email: Some("drift@acme.example".into()),
        ..Hire::default()
    });
    let request = RunRequest { from_preview: Some(preview.run.id), ..RunRequest::manual(w.integration) };
    let err = w.engine.import(&request).await.unwrap_err();
    assert!(matches!(err, SyncError::Drift { .. }), "{err:?}");
    assert!(w.users().is_empty());
    let applied = w.engine.import(&RunRequest { accept_drift: true, ..request }).await.unwrap();
    assert_eq!(applied.run.counts.created, preview.run.counts.created + 1);
}

#[tokio::test]
async fn a_person_missing_twice_is_deactivated() {
    let w = World::new(30, ALL).await;
    w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    let gone = w.sandbox.employees().into_iter().find(|e| has_email(e) && e.status == Status::Active).unwrap().id;
    w.sandbox.remove(gone);
    w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    assert_eq!(w.user_of(gone).unwrap().profile.status, UserStatus::Active);
    let second = w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    assert_eq!(second.run.counts.deactivated, 1);
    assert_eq!(w.user_of(gone).unwrap().profile.status, UserStatus::Inactive);
}

#[tokio::test]
async fn secrets_never_reach_the_database_in_clear() {
    let w = World::new(5, ALL).await;
    let bytes = std::fs::read(&w.db).unwrap();
    let needle = hrsync::sandbox::DEMO_CLIENT_SECRET.as_bytes();
    assert!(!bytes.windows(needle.len()).any(|win| win == needle));
    let config = w.store.integration(w.integration).unwrap().config;
    assert_eq!(config.settings["client-secret"], hrsync::sandbox::DEMO_CLIENT_SECRET);
}

#[tokio::test(flavor = "multi_thread")]
async fn background_imports_answer_at_once_and_refuse_a_second_run() {
    let w = World::new(400, ALL).await;
    // Slow pages keep the first run busy while the second is asked for.
    w.sandbox.inject([Fault::Slow { millis: 300 }, Fault::Slow { millis: 300 }]);
    let engine = std::sync::Arc::new(w.engine);
    let run = engine.start_import(RunRequest::manual(w.integration)).unwrap();
    assert_eq!(w.store.run(run).unwrap().state, RunState::Running);
    let second = engine.start_import(RunRequest::manual(w.integration)).unwrap_err();
    assert!(second.to_string().contains(&format!("is busy: run {run} (manual import")), "{second}");
    let preview = engine.start_preview(RunRequest::manual(w.integration)).unwrap_err();
    assert!(preview.to_string().contains(&format!("is busy: run {run}")), "a preview waits too: {preview}");
    let state = loop {
        let state = w.store.run(run).unwrap().state;
        if state != RunState::Running {
            break state;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(state, RunState::Succeeded);
    assert!(w.store.run(run).unwrap().counts.created > 300);
}

#[tokio::test]
async fn revert_and_keep_survives_the_next_imports_until_the_override_is_removed() {
    let w = World::new(40, "active").await;
    w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    let people = w.sandbox.employees();
    let boss = people.iter().find(|e| has_email(e)).unwrap().id;
    let someone = people.iter().find(|e| has_email(e) && e.supervisor.is_some_and(|s| s != boss) && e.id != boss);
    let someone = someone.expect("someone reporting to another manager").id;
    let before = w.user_of(someone).unwrap();
    w.sandbox
        .apply(
            someone,
            Edit { position: Some("Chief Kept Officer".into()), supervisor_id: Some(Some(boss)), ..Edit::default() },
        )
        .unwrap();
    let changed = w.engine.import(&RunRequest::manual(w.integration)).await.unwrap();
    assert_eq!(w.user_of(someone).unwrap().profile.job_title.as_deref(), Some("Chief Kept Officer"));

    // Revert and keep: the old title and manager come back, and stay.
    let keep =
        RevertRequest { user: Some(before.id), keep: true, ..RevertRequest::new(changed.run.id, Some("ann".into())) };
    let (_, revert) = w.engine.revert(keep).await.unwrap();
    assert_eq!(revert.run.counts.manager_changes, 1, "a restored manager is a manager change");
    let kept = w.store.overrides(Some(before.id)).unwrap();
    let fields: Vec<String> = kept.iter().map(|o| o.field.to_string()).collect();
    assert_eq!(fields, ["job-title", "manager"]);
    assert!(kept.iter().all(|o| o.kept_by.as_deref() == Some("ann")));

    let automatic = RunRequest { automatic: true, ..RunRequest::manual(w.integration) };
    let next = w.engine.import(&automatic).await.unwrap();
    let user = w.user_of(someone).unwrap();
    assert_eq!(user.profile.job_title, before.profile.job_title, "the automatic import left the kept title");
    assert_eq!(user.manager_id, before.manager_id, "and the kept manager");
    assert!(next.changes.iter().all(|c| c.user_id != Some(before.id)), "{:?}", next.changes);
    assert_eq!(next.run.counts.kept, 2);
    let kept_title = next.kept.iter().find(|k| k.field.to_string() == "job-title").unwrap();
    assert_eq!(kept_title.source.as_deref(), Some("Chief Kept Officer"));
    assert_eq!(kept_title.kept, before.profile.job_title);
    let boss_name = w.user_of(boss).unwrap().profile.display_name();
    let kept_manager = next.kept.iter().find(|k| k.field.to_string() == "manager").unwrap();
    assert_eq!(kept_manager.source.as_deref(), Some(boss_name.as_str()), "managers by name");
    // The override list shows the drift.
    let drift = w.store.overrides(Some(before.id)).unwrap();
    let title = drift.iter().find(|o| o.field.to_string() == "job-title").unwrap();
    let says = title.source.as_ref().expect("the run recorded what the source says");
    assert!(says.differs && says.value.as_deref() == Some("Chief Kept Officer"));

    // The status is never kept.
    let refused = w.store.keep(before.id, &hrsync::directory::Field::Status, Some("ann"), None).unwrap_err();
    assert!(refused.to_string().contains("HR system"), "{refused}");

    // Removed, the source applies again — the title; the manager stays kept.
    assert!(w.store.unkeep(before.id, &hrsync::directory::Field::JobTitle).unwrap());
    w.engine.import(&automatic).await.unwrap();
    let user = w.user_of(someone).unwrap();
    assert_eq!(user.profile.job_title.as_deref(), Some("Chief Kept Officer"));
    assert_eq!(user.manager_id, before.manager_id);
    // When the source comes round to the kept value, the drift is gone.
    let old_boss = before.manager_id.map(|m| w.store.user(m).unwrap()).unwrap();
    let old_boss_source = old_boss.managed_by.unwrap().1.parse::<u64>().unwrap();
    w.sandbox.apply(someone, Edit { supervisor_id: Some(Some(old_boss_source)), ..Edit::default() }).unwrap();
    let settled = w.engine.import(&automatic).await.unwrap();
    assert_eq!(settled.run.counts.kept, 0);
    let manager = w.store.overrides(Some(before.id)).unwrap().pop().unwrap();
    assert!(!manager.source.unwrap().differs, "the source agrees with the kept manager");
}
