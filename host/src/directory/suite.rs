//! The store test suite, run against every backend: SQLite in memory and
//! PostgreSQL in a throwaway cluster (one per test binary while tests use
//! it, a database per test). A behaviour of the store traits is tested
//! here once, for both; what only one backend has is tested beside it.

use std::sync::{Arc, Mutex, Weak};

use chrono::{Duration, TimeZone, Timelike, Utc};
use hrsync_pg_cluster::Cluster;

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::*;
use crate::secrets::SecretBox;

fn secrets() -> SecretBox {
    SecretBox::from_key(&[5; 32])
}

fn sqlite() -> SqliteStore {
    SqliteStore::in_memory(secrets()).unwrap()
}

/// A fresh database in the shared cluster; hold the cluster while using it.
fn postgres() -> (Arc<Cluster>, PgStore) {
    static SHARED: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let cluster = {
        let mut shared = SHARED.lock().unwrap();
        shared.upgrade().unwrap_or_else(|| {
            let started = Arc::new(Cluster::start().expect("a PostgreSQL cluster (apt-get install postgresql)"));
            *shared = Arc::downgrade(&started);
            started
        })
    };
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let url = cluster.create_database(&format!("suite_{n}")).unwrap();
    let store = PgStore::connect(&url, secrets()).unwrap();
    (cluster, store)
}

/// One test per backend: `both!(name)` runs `name(&store)` on each.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(&super::sqlite());
            }

            #[test]
            fn postgres() {
                let (_cluster, store) = super::postgres();
                super::$name(&store);
            }
        }
    };
}

fn personio(name: &str) -> IntegrationConfig {
    let mut config = IntegrationConfig::new("personio", name);
    config.settings.insert("client-id".into(), "id-1".into());
    config.settings.insert("client-secret".into(), "papi-super-secret".into());
    config.secret_keys.insert("client-secret".into());
    config.grants = vec!["https://api.personio.de".into()];
    config
}

both!(integrations_are_stored_read_back_and_updated);
fn integrations_are_stored_read_back_and_updated(store: &dyn IntegrationStore) {
    let mut config = personio("Acme");
    config.auto_import = true;
    config.interval_minutes = 24 * 60;
    config.max_deactivate_share = 0.35;
    config.limits.max_pages = 7;
    let id = store.create_integration(&config).unwrap();
    let read = store.integration(id).unwrap();
    // A new integration's secrets are bound to its first grants.
    assert_eq!(read.config.secrets_for, config.grants);
    assert_eq!(read.config, IntegrationConfig { secrets_for: config.grants.clone(), ..config.clone() });

    let mut changed = read.config.clone();
    changed.name = "Acme GmbH".into();
    changed.settings.insert("client-secret".into(), "rotated".into());
    changed.send_emails = true;
    store.update_integration(id, &changed).unwrap();
    assert_eq!(store.integration(id).unwrap().config, changed);

    let second = store.create_integration(&personio("Other")).unwrap();
    let all: Vec<IntegrationId> = store.integrations().unwrap().iter().map(|i| i.id).collect();
    assert_eq!(all, vec![id, second], "in the order they were made");

    let missing = IntegrationId(id.0 + 100);
    assert!(matches!(store.integration(missing), Err(StoreError::NoIntegration(m)) if m == missing));
    assert!(matches!(store.update_integration(missing, &changed), Err(StoreError::NoIntegration(_))));
}

both!(the_company_name_is_set_trimmed_and_never_blank);
fn the_company_name_is_set_trimmed_and_never_blank(store: &dyn IntegrationStore) {
    assert_eq!(store.company_name().unwrap(), None);
    store.set_company_name("  Acme  ").unwrap();
    store.set_company_name("Acme GmbH").unwrap();
    assert_eq!(store.company_name().unwrap().as_deref(), Some("Acme GmbH"));
    assert!(matches!(store.set_company_name("  "), Err(StoreError::Invalid(_))));
    assert_eq!(store.company_name().unwrap().as_deref(), Some("Acme GmbH"), "unchanged by the refusal");
}

trait IntegrationsAndSchedules: IntegrationStore + ScheduleStore {}
impl<T: IntegrationStore + ScheduleStore> IntegrationsAndSchedules for T {}

both!(schedules_are_saved_and_replaced);
fn schedules_are_saved_and_replaced(store: &dyn IntegrationsAndSchedules) {
    let id = store.create_integration(&personio("Acme")).unwrap();
    assert_eq!(store.schedule(id).unwrap(), None);
    let at = Utc.with_ymd_and_hms(2026, 12, 3, 9, 30, 0).unwrap();
    let first = Schedule::first(id, at);
    store.save_schedule(&first).unwrap();
    assert_eq!(store.schedule(id).unwrap(), Some(first.clone()));
    let failing = Schedule {
        next_run_at: at + Duration::minutes(5),
        last_success_at: Some(at - Duration::hours(2)),
        last_full_at: Some(at - Duration::days(1)),
        failures: 3,
        alerted: true,
        last_error: Some("Personio answered HTTP 503".into()),
        ..first
    };
    store.save_schedule(&failing).unwrap();
    assert_eq!(store.schedule(id).unwrap(), Some(failing));
}

both!(a_due_run_is_claimed_once);
fn a_due_run_is_claimed_once(store: &dyn IntegrationsAndSchedules) {
    let id = store.create_integration(&personio("Acme")).unwrap();
    let due = Utc::now().with_nanosecond(123_456_000).unwrap();
    let schedule = Schedule::first(id, due);
    assert!(!store.claim_schedule(id, due, due).unwrap(), "nothing to claim before a schedule exists");
    store.save_schedule(&schedule).unwrap();
    let until = due + Duration::minutes(61);
    assert!(store.claim_schedule(id, due, until).unwrap(), "the first claimer takes it");
    assert!(
        !store.claim_schedule(id, due, due + Duration::minutes(99)).unwrap(),
        "a second, who saw the same, does not"
    );
    assert_eq!(store.schedule(id).unwrap().unwrap().next_run_at, until);
    // A claim's end is not a schedule to bring forward.
    assert!(!store.shorten_schedule(id, until, due).unwrap(), "a claim is not shortened");
    // Its claim lapsed: the one who sees that takes it again.
    let again = until + Duration::minutes(61);
    assert!(store.claim_schedule(id, until, again).unwrap());
    // Saving the schedule after the run ends the claim; then a schedule
    // too far out is brought forward, unless it changed since it was read.
    let far = due + Duration::days(1);
    store.save_schedule(&Schedule { next_run_at: far, ..schedule }).unwrap();
    assert!(!store.shorten_schedule(id, far - Duration::minutes(1), due).unwrap(), "changed since read");
    assert!(store.shorten_schedule(id, far, due).unwrap());
    assert_eq!(store.schedule(id).unwrap().unwrap().next_run_at, due);
}

#[test]
fn postgres_tenants_see_only_their_own_integrations_company_and_schedules() {
    let (_cluster, store) = postgres();
    let other = store.tenant(store.create_tenant("globex", "Globex").unwrap());
    let mine = store.create_integration(&personio("Acme")).unwrap();
    let theirs = other.create_integration(&personio("Globex")).unwrap();
    store.set_company_name("Acme").unwrap();

    assert_eq!(store.integrations().unwrap().iter().map(|i| i.id).collect::<Vec<_>>(), vec![mine]);
    assert_eq!(other.integrations().unwrap().iter().map(|i| i.id).collect::<Vec<_>>(), vec![theirs]);
    assert!(matches!(other.integration(mine), Err(StoreError::NoIntegration(_))), "no reading across tenants");
    assert!(matches!(other.update_integration(mine, &personio("x")), Err(StoreError::NoIntegration(_))));
    assert_eq!(store.integration(mine).unwrap().config.name, "Acme", "nor writing");
    assert_eq!(other.company_name().unwrap(), None);
    let schedule = Schedule::first(mine, Utc::now());
    assert!(matches!(other.save_schedule(&schedule), Err(StoreError::NoIntegration(_))));
    store.save_schedule(&schedule).unwrap();
    assert_eq!(other.schedule(mine).unwrap(), None);
}

#[test]
fn postgres_replicas_claiming_a_due_run_at_once_let_one_through() {
    let (_cluster, store) = postgres();
    let id = store.create_integration(&personio("Acme")).unwrap();
    let due = Utc::now();
    let schedule = Schedule::first(id, due);
    store.save_schedule(&schedule).unwrap();
    let seen = store.schedule(id).unwrap().unwrap().next_run_at;
    let won: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let replica = store.clone();
                scope.spawn(move || replica.claim_schedule(id, seen, seen + Duration::minutes(i + 1)).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let other = store.create_tenant("globex", "Globex").unwrap();
    let now = store.schedule(id).unwrap().unwrap().next_run_at;
    assert!(!store.tenant(other).claim_schedule(id, now, now).unwrap(), "not another tenant's");
}

#[test]
fn postgres_replicas_hear_when_a_run_may_come_due_sooner_and_only_then() {
    let (_cluster, store) = postgres();
    let wake = store.schedule_changes();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let woken = |within_ms: u64| {
        let wait = std::time::Duration::from_millis(within_ms);
        runtime.block_on(async { tokio::time::timeout(wait, wake.notified()).await }).is_ok()
    };
    std::thread::sleep(std::time::Duration::from_millis(500)); // the listener connects
    let id = store.create_integration(&personio("Acme")).unwrap();
    assert!(!woken(500), "no automatic imports, nothing to wake for");
    let now = Utc::now();
    let mut schedule = Schedule::first(id, now + Duration::minutes(10));
    store.save_schedule(&schedule).unwrap();
    assert!(woken(5000), "a new schedule");
    let seen = store.schedule(id).unwrap().unwrap().next_run_at;
    assert!(store.claim_schedule(id, seen, seen + Duration::minutes(61)).unwrap());
    assert!(!woken(500), "a claim moves the run later");
    schedule.next_run_at = now;
    store.save_schedule(&schedule).unwrap();
    assert!(woken(5000), "moved earlier");
    let mut config = store.integration(id).unwrap().config;
    config.auto_import = true;
    store.update_integration(id, &config).unwrap();
    assert!(woken(5000), "automatic imports turned on");
}

#[test]
fn postgres_replicas_count_sign_in_failures_together() {
    use crate::web::auth::{FailureCounts, Throttle};
    let (_cluster, store) = postgres();
    let (one, two) = (Throttle::counting_in(Box::new(store.clone())), Throttle::counting_in(Box::new(store.clone())));
    let guesser = Throttle::keys("admin", "203.0.113.9".parse().unwrap());
    for replica in [&one, &two, &one, &two] {
        replica.failed(&guesser).unwrap();
    }
    let wait = two.wait(&guesser).unwrap().expect("four failures over two replicas cost a delay");
    assert!(wait <= std::time::Duration::from_secs(1) && !wait.is_zero(), "{wait:?}");
    assert_eq!(one.wait(&Throttle::keys("admin", "198.51.100.4".parse().unwrap())).unwrap(), None);
    two.succeeded(&guesser).unwrap();
    let left = store.failures(&guesser).unwrap();
    assert_eq!(left.iter().map(|(k, n, _)| (k.as_str(), *n)).collect::<Vec<_>>(), [("ip:203.0.113.9", 4)]);
    // Failures older than the memory start over, and are removed.
    let now = Utc::now();
    store.fail(&guesser, now, Duration::hours(1)).unwrap();
    store.fail(&guesser[..1], now + Duration::hours(2), Duration::hours(1)).unwrap();
    let left = store.failures(&guesser).unwrap();
    assert_eq!(left.iter().map(|(k, n, _)| (k.as_str(), *n)).collect::<Vec<_>>(), [("user:admin@203.0.113.9", 1)]);
}

#[test]
fn postgres_tenant_slugs_are_checked() {
    let (_cluster, store) = postgres();
    store.create_tenant("globex", "Globex").unwrap();
    for (slug, name) in [("globex", "Again"), ("Not A Slug", "x"), ("ok", " ")] {
        let err = store.create_tenant(slug, name).unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{slug:?}: {err:?}");
    }
}

#[test]
fn postgres_replicas_starting_together_migrate_once() {
    let (cluster, store) = postgres();
    let url = cluster.create_database("racing").unwrap();
    let stores: Vec<PgStore> = std::thread::scope(|s| {
        let starts: Vec<_> = (0..3).map(|_| s.spawn(|| PgStore::connect(&url, secrets()).unwrap())).collect();
        starts.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let id = stores[0].create_integration(&personio("Acme")).unwrap();
    assert_eq!(stores[2].integration(id).unwrap().config.name, "Acme");
    drop(store);
}

trait IntegrationsAndHooks: IntegrationStore + HookStore {}
impl<T: IntegrationStore + HookStore> IntegrationsAndHooks for T {}

fn subscription(integration: IntegrationId, hook: &str) -> hooks::HookSubscription {
    hooks::HookSubscription {
        integration,
        hook: hook.into(),
        token_hash: "ab".repeat(32),
        source_id: "wh-1".into(),
        description: "Personio webhook".into(),
        created_at: Utc.with_ymd_and_hms(2026, 12, 3, 8, 0, 0).unwrap(),
        last_delivery_at: None,
    }
}

fn delivery(integration: IntegrationId, second: u32, body: &str) -> hooks::NewEvent {
    hooks::NewEvent {
        integration,
        received_at: Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, second).unwrap(),
        headers: vec![("authorization".into(), "t".into())],
        body: body.into(),
    }
}

both!(deliveries_wait_in_order_until_finished_and_subscriptions_are_replaced);
fn deliveries_wait_in_order_until_finished_and_subscriptions_are_replaced(store: &dyn IntegrationsAndHooks) {
    let id = store.create_integration(&personio("Acme")).unwrap();
    assert_eq!(store.subscription(id).unwrap(), None);
    store.save_subscription(&subscription(id, "hook-1")).unwrap();
    assert_eq!(store.subscription_by_hook("hook-1").unwrap(), Some(subscription(id, "hook-1")));

    let first = store.receive_event(&delivery(id, 1, "{\"a\":1}")).unwrap();
    let second = store.receive_event(&delivery(id, 4, "{\"a\":2}")).unwrap();
    let waiting = store.pending_integrations(Utc::now()).unwrap();
    assert_eq!(
        waiting,
        vec![hooks::Waiting {
            integration: id,
            oldest: delivery(id, 1, "").received_at,
            newest: delivery(id, 4, "").received_at
        }]
    );
    assert_eq!(store.subscription(id).unwrap().unwrap().last_delivery_at, Some(delivery(id, 4, "").received_at));

    // Claimed, oldest first and at most the limit; a claim held is not
    // claimed again (nor listed as waiting) until it lapses or is given back.
    let (now, later) = (Utc::now(), Utc::now() + chrono::Duration::minutes(10));
    let claimed = store.claim_events(id, 1, now, later).unwrap();
    assert_eq!(claimed.iter().map(|p| p.id).collect::<Vec<_>>(), vec![first]);
    assert_eq!(claimed[0].event, delivery(id, 1, "{\"a\":1}"), "headers and body as received");
    let rest = store.claim_events(id, 10, now, later).unwrap();
    assert_eq!(rest.iter().map(|p| p.id).collect::<Vec<_>>(), vec![second], "the first is held");
    assert!(store.claim_events(id, 10, now, later).unwrap().is_empty(), "both are held");
    assert!(store.pending_integrations(now).unwrap().is_empty(), "nothing waits for nobody");
    let lapsed = store.claim_events(id, 10, later, later + chrono::Duration::minutes(10)).unwrap();
    assert_eq!(lapsed.len(), 2, "a holder that died leaves them to others once the claims lapse");
    store.release_events(&[first, second]).unwrap();
    assert_eq!(store.pending_integrations(now).unwrap().len(), 1, "given back");

    let end = |id, state| hooks::EventEnd { id, state, outcome: "read".into(), run: None };
    store.finish_events(&[end(first, hooks::EventState::Done)], Utc::now()).unwrap();
    store.release_events(&[first]).unwrap();
    let left = store.claim_events(id, 10, now, later).unwrap();
    assert_eq!(left.iter().map(|p| p.id).collect::<Vec<_>>(), vec![second], "a finished one stays finished");
    store.finish_events(&[end(second, hooks::EventState::Ignored)], Utc::now()).unwrap();
    assert!(store.pending_integrations(later + chrono::Duration::hours(1)).unwrap().is_empty());

    // A new subscription replaces the old one, endpoint and all.
    store.save_subscription(&subscription(id, "hook-2")).unwrap();
    assert_eq!(store.subscription_by_hook("hook-1").unwrap(), None);
    assert_eq!(store.subscription(id).unwrap(), Some(subscription(id, "hook-2")));
    assert!(store.remove_subscription(id).unwrap());
    assert!(!store.remove_subscription(id).unwrap(), "there is none left");
}

#[test]
fn postgres_deliveries_find_their_tenant_by_endpoint_and_stay_within_it() {
    let (_cluster, store) = postgres();
    let other = store.tenant(store.create_tenant("globex", "Globex").unwrap());
    let mine = store.create_integration(&personio("Acme")).unwrap();
    store.save_subscription(&subscription(mine, "hook-acme")).unwrap();
    assert_eq!(
        other.subscription_by_hook("hook-acme").unwrap().map(|s| s.integration),
        Some(mine),
        "the endpoint names no tenant"
    );
    assert_eq!(other.subscription(mine).unwrap(), None);
    assert!(matches!(other.save_subscription(&subscription(mine, "hook-x")), Err(StoreError::NoIntegration(_))));
    assert!(!other.remove_subscription(mine).unwrap());
    assert!(matches!(other.receive_event(&delivery(mine, 1, "{}")), Err(StoreError::NoIntegration(_))));
    let event = store.receive_event(&delivery(mine, 1, "{}")).unwrap();
    let (now, later) = (Utc::now(), Utc::now() + chrono::Duration::minutes(10));
    assert!(other.pending_integrations(now).unwrap().is_empty());
    assert!(other.claim_events(mine, 10, now, later).unwrap().is_empty());
    let end = hooks::EventEnd { id: event, state: hooks::EventState::Done, outcome: "x".into(), run: None };
    other.finish_events(&[end], Utc::now()).unwrap();
    assert_eq!(store.claim_events(mine, 10, now, later).unwrap().len(), 1, "another tenant cannot finish it");
    other.release_events(&[event]).unwrap();
    assert!(store.claim_events(mine, 10, now, later).unwrap().is_empty(), "nor give back its claim");
}

fn person(email: &str, first: &str, department: Option<&str>) -> Profile {
    let mut p = Profile::new(Email::parse(email).unwrap(), first, "Lovelace");
    p.department = department.map(String::from);
    p
}

fn add(store: &dyn PeopleStore, profile: Profile, manager: Option<UserId>) -> UserId {
    store.create_user(&NewUser { profile, manager_id: manager }).unwrap()
}

both!(people_are_created_read_filtered_and_paged);
fn people_are_created_read_filtered_and_paged(store: &dyn PeopleStore) {
    let mut boss_profile = person("boss@acme.example", "Ada", Some("Board"));
    boss_profile.start_date = chrono::NaiveDate::from_ymd_opt(2020, 2, 29);
    boss_profile.custom.insert("cost-center".into(), "CC-7".into());
    boss_profile.gender = Some(Gender::Female);
    let boss = add(store, boss_profile.clone(), None);
    let dev = add(store, person("dev@acme.example", "Bob", Some("Engineering")), Some(boss));
    let mut gone = person("gone@acme.example", "Cy_100%", Some("Engineering"));
    gone.status = UserStatus::Inactive;
    let gone = add(store, gone, Some(boss));

    let read = store.user(boss).unwrap();
    assert_eq!((read.profile, read.manager_id, read.managed_by), (boss_profile, None, None));
    assert_eq!(store.user(dev).unwrap().manager_id, Some(boss));
    assert!(matches!(store.user(UserId(gone.0 + 100)), Err(StoreError::NoUser(_))));

    let ids = |q: UserQuery| -> (Vec<UserId>, u64) {
        let (users, total) = store.users(&UserQuery { limit: q.limit.max(10), ..q }).unwrap();
        (users.into_iter().map(|u| u.id).collect(), total)
    };
    let search = |s: &str| ids(UserQuery { search: Some(s.into()), ..UserQuery::default() }).0;
    assert_eq!(search("ADA"), vec![boss], "any case");
    assert_eq!(search("engineering"), vec![dev, gone], "by department, sorted by name");
    assert_eq!(search("100%"), vec![gone], "wildcards are literal");
    assert_eq!(search("_"), vec![gone]);
    let filtered = |q: UserQuery| ids(q).0;
    assert_eq!(filtered(UserQuery { status: Some(UserStatus::Active), ..UserQuery::default() }), vec![boss, dev]);
    assert_eq!(filtered(UserQuery { manager: Some(boss), ..UserQuery::default() }), vec![dev, gone]);
    assert_eq!(
        filtered(UserQuery {
            department: Some("Engineering".into()),
            status: Some(UserStatus::Inactive),
            ..UserQuery::default()
        }),
        vec![gone]
    );
    let (page, total) = store.users(&UserQuery { limit: 1, offset: 1, ..UserQuery::default() }).unwrap();
    assert_eq!((page.iter().map(|u| u.id).collect::<Vec<_>>(), total), (vec![dev], 3), "a page and the total");

    let facets = store.facets().unwrap();
    assert_eq!(facets.departments, vec!["Board".to_string(), "Engineering".into()]);
    assert_eq!(facets.managers, vec![(boss, "Ada Lovelace".to_string())]);
    let mut index: Vec<(UserId, Option<UserId>, String)> =
        store.index().unwrap().into_iter().map(|e| (e.id, e.manager_id, e.email.as_str().to_string())).collect();
    index.sort();
    assert_eq!(index[1], (dev, Some(boss), "dev@acme.example".to_string()));
    assert_eq!(
        store.users_for_sync(IntegrationId(1)).unwrap().len(),
        3,
        "unmanaged people are every integration's to adopt"
    );
}

both!(emails_are_unique_regardless_of_case);
fn emails_are_unique_regardless_of_case(store: &dyn PeopleStore) {
    add(store, person("ada@acme.example", "Ada", None), None);
    let err = store.create_user(&NewUser { profile: person("ADA@acme.example", "Ada", None), manager_id: None });
    assert!(matches!(err, Err(StoreError::EmailTaken(_))), "{err:?}");
}

both!(reporting_cycles_and_unknown_managers_are_refused_and_change_nothing);
fn reporting_cycles_and_unknown_managers_are_refused_and_change_nothing(store: &dyn PeopleStore) {
    let top = add(store, person("top@acme.example", "Top", None), None);
    let mid = add(store, person("mid@acme.example", "Mid", None), Some(top));
    let low = add(store, person("low@acme.example", "Low", None), Some(mid));
    let mut edit = NewUser { profile: store.user(top).unwrap().profile, manager_id: Some(low) };
    let err = store.edit_user(top, &edit).unwrap_err();
    assert!(matches!(&err, StoreError::Invalid(m) if m.contains("reporting cycle")), "{err:?}");
    edit.manager_id = Some(UserId(low.0 + 100));
    let err = store.edit_user(top, &edit).unwrap_err();
    assert!(matches!(&err, StoreError::Invalid(m) if m.contains("does not exist")), "{err:?}");
    assert_eq!(store.user(top).unwrap().manager_id, None, "unchanged");

    edit.manager_id = None;
    edit.profile.job_title = Some("CEO".into());
    store.edit_user(top, &edit).unwrap();
    assert_eq!(store.user(top).unwrap().profile.job_title.as_deref(), Some("CEO"));
    assert!(matches!(store.edit_user(UserId(low.0 + 100), &edit), Err(StoreError::NoUser(_))));
}

both!(a_roster_is_written_whole_or_not_at_all);
fn a_roster_is_written_whole_or_not_at_all(store: &dyn PeopleStore) {
    let existing = add(store, person("old@acme.example", "Old", None), None);
    let rows = vec![
        RosterRow {
            existing: Some(existing),
            profile: person("old@acme.example", "Olga", Some("Sales")),
            manager: Some(RosterManager::Row(1)),
        },
        RosterRow { existing: None, profile: person("new@acme.example", "New", None), manager: None },
    ];
    let ids = store.write_roster(&rows).unwrap();
    assert_eq!(ids[0], existing);
    let olga = store.user(existing).unwrap();
    assert_eq!((olga.profile.first_name.as_str(), olga.manager_id), ("Olga", Some(ids[1])), "a later row as manager");

    let broken = vec![
        RosterRow { existing: None, profile: person("third@acme.example", "Third", None), manager: None },
        RosterRow { existing: None, profile: person("NEW@acme.example", "Dup", None), manager: None },
    ];
    assert!(matches!(store.write_roster(&broken), Err(StoreError::EmailTaken(_))));
    let (_, total) = store.users(&UserQuery { limit: 10, ..UserQuery::default() }).unwrap();
    assert_eq!(total, 2, "the first row of the failed roster was not kept");
}

#[test]
fn postgres_tenants_have_their_own_people_and_emails() {
    let (_cluster, store) = postgres();
    let other = store.tenant(store.create_tenant("globex", "Globex").unwrap());
    let mine = add(&store, person("ada@acme.example", "Ada", Some("Board")), None);
    let theirs = add(&other, person("ada@acme.example", "Ada", Some("Labs")), None);
    assert_ne!(mine, theirs, "the same email in two companies");
    assert!(matches!(other.user(mine), Err(StoreError::NoUser(_))));
    let err =
        other.create_user(&NewUser { profile: person("bob@globex.example", "Bob", None), manager_id: Some(mine) });
    assert!(
        matches!(&err, Err(StoreError::Invalid(m)) if m.contains("does not exist")),
        "no manager across tenants: {err:?}"
    );
    let edit = NewUser { profile: person("x@acme.example", "X", None), manager_id: None };
    assert!(matches!(other.edit_user(mine, &edit), Err(StoreError::NoUser(_))));
    assert_eq!(store.user(mine).unwrap().profile.first_name, "Ada", "unchanged");
    let roster = vec![RosterRow { existing: Some(mine), profile: person("x@acme.example", "X", None), manager: None }];
    assert!(matches!(other.write_roster(&roster), Err(StoreError::NoUser(_))));
    let only = |s: &PgStore| s.users(&UserQuery { limit: 10, ..UserQuery::default() }).unwrap().0;
    assert_eq!(only(&other).iter().map(|u| u.id).collect::<Vec<_>>(), vec![theirs]);
    assert_eq!(other.facets().unwrap().departments, vec!["Labs".to_string()]);
    assert_eq!(other.index().unwrap().len(), 1);
    assert_eq!(other.users_for_sync(IntegrationId(1)).unwrap().len(), 1);
}

trait PeopleAndOverrides: PeopleStore + OverrideStore {}
impl<T: PeopleStore + OverrideStore> PeopleAndOverrides for T {}

both!(overrides_keep_the_current_value_until_removed);
fn overrides_keep_the_current_value_until_removed(store: &dyn PeopleAndOverrides) {
    let boss = add(store, person("boss@acme.example", "Ada", None), None);
    let mut titled = person("dev@acme.example", "Bob", Some("Engineering"));
    titled.job_title = Some("Engineer".into());
    let dev = add(store, titled, Some(boss));
    let until = chrono::NaiveDate::from_ymd_opt(2027, 1, 31);

    let title = store.keep(dev, &Field::JobTitle, Some("admin"), until).unwrap();
    assert_eq!(
        (title.user_id, title.value.as_deref(), title.kept_by.as_deref(), title.until, title.source),
        (dev, Some("Engineer"), Some("admin"), until, None),
        "the value the user has now"
    );
    let manager = store.keep(dev, &Field::Manager, None, None).unwrap();
    assert_eq!(manager.value, Some(boss.0.to_string()), "the manager as a user id");
    let err = store.keep(dev, &Field::Status, None, None).unwrap_err();
    assert!(matches!(&err, StoreError::Invalid(m) if m.contains("status cannot be kept")), "{err:?}");
    assert!(matches!(store.keep(UserId(dev.0 + 100), &Field::JobTitle, None, None), Err(StoreError::NoUser(_))));
    store.keep(boss, &Field::Department, None, None).unwrap();

    let fields = |user: Option<UserId>| -> Vec<(UserId, String)> {
        store.overrides(user).unwrap().into_iter().map(|o| (o.user_id, o.field.name().to_string())).collect()
    };
    assert_eq!(fields(Some(dev)).len(), 2);
    assert_eq!(fields(None).len(), 3);
    assert!(store.unkeep(dev, &Field::JobTitle).unwrap());
    assert!(!store.unkeep(dev, &Field::JobTitle).unwrap(), "gone already");
    assert_eq!(fields(Some(dev)), vec![(dev, Field::Manager.name().to_string())]);
    assert!(store.run_kept(RunId(1)).unwrap().is_empty());
}

#[test]
fn postgres_overrides_stay_within_their_tenant() {
    let (_cluster, store) = postgres();
    let other = store.tenant(store.create_tenant("globex", "Globex").unwrap());
    let mine = add(&store, person("ada@acme.example", "Ada", Some("Board")), None);
    store.keep(mine, &Field::Department, None, None).unwrap();
    assert!(matches!(other.keep(mine, &Field::JobTitle, None, None), Err(StoreError::NoUser(_))));
    assert!(other.overrides(None).unwrap().is_empty() && other.overrides(Some(mine)).unwrap().is_empty());
    assert!(!other.unkeep(mine, &Field::Department).unwrap());
    assert_eq!(store.overrides(Some(mine)).unwrap().len(), 1, "still kept");
}

trait PeopleAndOutbox: PeopleStore + OutboxStore {}
impl<T: PeopleStore + OutboxStore> PeopleAndOutbox for T {}

/// Writes the token as the message's whole text, so tests can follow the link.
struct TokenWriter;

impl InvitationWriter for TokenWriter {
    fn valid_for(&self) -> chrono::Duration {
        Duration::days(7)
    }

    fn write(&self, profile: &Profile, token: &str, _expires: chrono::DateTime<Utc>) -> crate::mail::Message {
        crate::mail::Message {
            kind: crate::mail::MailKind::Invitation,
            to: profile.email.clone(),
            subject: "Your account".into(),
            text: token.into(),
            html: None,
        }
    }
}

fn alert(to: &str) -> crate::mail::Message {
    crate::mail::Message {
        kind: crate::mail::MailKind::Alert,
        to: Email::parse(to).unwrap(),
        subject: "Imports are failing".into(),
        text: "Personio answered HTTP 503".into(),
        html: Some("<p>Personio answered HTTP 503</p>".into()),
    }
}

both!(invitations_go_to_active_people_and_each_link_works_once);
fn invitations_go_to_active_people_and_each_link_works_once(store: &dyn PeopleAndOutbox) {
    let now = Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap();
    let ada = add(store, person("ada@acme.example", "Ada", None), None);
    let mut left = person("left@acme.example", "Left", None);
    left.status = UserStatus::Inactive;
    let left = add(store, left, None);
    assert_eq!(store.invite(&[ada, left], &TokenWriter, now).unwrap(), vec![ada], "active people only");
    assert!(store.user(ada).unwrap().informed_at.is_some());
    let (mails, total) = store.mails(0, 10).unwrap();
    assert_eq!(
        (total, mails[0].recipient.as_str(), mails[0].state),
        (1, "ada@acme.example", crate::mail::MailState::Queued)
    );
    let token = mails[0].text.clone();

    assert_eq!(store.invitation_user(&token, now).unwrap().map(|u| u.id), Some(ada));
    assert_eq!(store.invitation_user(&token, now + Duration::days(8)).unwrap(), None, "expired");
    assert_eq!(store.redeem_invitation(&token, "$argon2id$hash", now).unwrap(), Some(ada));
    assert_eq!(store.redeem_invitation(&token, "$argon2id$other", now).unwrap(), None, "used once");
    assert_eq!(store.invitation_user(&token, now).unwrap(), None);

    // A new invitation makes an earlier unused link stop working.
    store.invite(&[ada], &TokenWriter, now).unwrap();
    let first = store.mails(0, 10).unwrap().0[0].text.clone();
    store.invite(&[ada], &TokenWriter, now).unwrap();
    assert_eq!(store.invitation_user(&first, now).unwrap(), None);
    assert_eq!(store.mails(0, 10).unwrap().1, 3);
}

both!(the_outbox_is_claimed_leased_sent_and_retried);
fn the_outbox_is_claimed_leased_sent_and_retried(store: &dyn PeopleAndOutbox) {
    use crate::mail::MailState;
    let now = Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap();
    let lease = Duration::minutes(5);
    let first = store.enqueue_mail(&alert("ops@acme.example"), None, now).unwrap();
    let second = store.enqueue_mail(&alert("ops@acme.example"), None, now).unwrap();
    assert!(store.claim_mail(now - Duration::seconds(1), lease, 10).unwrap().is_empty(), "not due yet");
    let claimed = store.claim_mail(now, lease, 10).unwrap();
    assert_eq!(claimed.iter().map(|m| m.id).collect::<Vec<_>>(), vec![first, second]);
    assert_eq!(claimed[0].html.as_deref(), Some("<p>Personio answered HTTP 503</p>"));
    assert!(claimed[0].message_id.starts_with('<') && claimed[0].message_id != claimed[1].message_id);
    assert!(store.claim_mail(now, lease, 10).unwrap().is_empty(), "leased to whoever claimed them");

    store.mail_failed(first, "relay refused", Some(now + Duration::minutes(1))).unwrap();
    let again = store.claim_mail(now + Duration::minutes(2), lease, 10).unwrap();
    assert_eq!(again.iter().map(|m| (m.id, m.attempts)).collect::<Vec<_>>(), vec![(first, 1)], "retried when due");
    let expired = store.claim_mail(now + Duration::minutes(6), lease, 10).unwrap();
    assert_eq!(expired.iter().map(|m| m.id).collect::<Vec<_>>(), vec![second], "a lease that ran out is taken over");
    assert_eq!(expired[0].message_id, claimed[1].message_id, "with its one Message-ID");

    store.mail_sent(first, now + Duration::minutes(3)).unwrap();
    store.mail_failed(second, "gave up", None).unwrap();
    let (mails, _) = store.mails(0, 10).unwrap();
    let state = |id: i64| mails.iter().find(|m| m.id == id).map(|m| (m.state, m.attempts, m.last_error.clone()));
    assert_eq!(state(first), Some((MailState::Sent, 2, None)));
    assert_eq!(state(second), Some((MailState::Failed, 1, Some("gave up".into()))));
    assert!(store.claim_mail(now + Duration::hours(1), lease, 10).unwrap().is_empty());
}

#[test]
fn postgres_replicas_claiming_at_once_take_each_message_once() {
    let (_cluster, store) = postgres();
    let now = Utc::now();
    for _ in 0..60 {
        store.enqueue_mail(&alert("ops@acme.example"), None, now).unwrap();
    }
    let claims: Vec<Vec<i64>> = std::thread::scope(|s| {
        let replicas: Vec<_> = (0..3)
            .map(|_| {
                let replica = store.clone();
                s.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let got = replica.claim_mail(now, Duration::minutes(5), 7).unwrap();
                        if got.is_empty() {
                            return mine;
                        }
                        mine.extend(got.iter().map(|m| m.id));
                    }
                })
            })
            .collect();
        replicas.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let mut all: Vec<i64> = claims.concat();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 60, "every message claimed");
    assert_eq!(claims.iter().map(Vec::len).sum::<usize>(), 60, "and none twice: {claims:?}");
}

#[test]
fn postgres_outboxes_are_per_tenant_and_links_find_their_tenant() {
    let (_cluster, store) = postgres();
    let other = store.tenant(store.create_tenant("globex", "Globex").unwrap());
    let now = Utc::now();
    let ada = add(&store, person("ada@acme.example", "Ada", None), None);
    assert!(other.invite(&[ada], &TokenWriter, now).unwrap().is_empty(), "not its user");
    store.invite(&[ada], &TokenWriter, now).unwrap();
    let mail = store.enqueue_mail(&alert("ops@acme.example"), None, now).unwrap();
    assert_eq!(other.mails(0, 10).unwrap().1, 0);
    assert!(other.claim_mail(now, Duration::minutes(5), 10).unwrap().is_empty());
    other.mail_sent(mail, now).unwrap();
    assert_eq!(
        store.mails(0, 10).unwrap().0.iter().find(|m| m.id == mail).unwrap().state,
        crate::mail::MailState::Queued
    );
    let token = store.mails(0, 10).unwrap().0.iter().find(|m| m.recipient == "ada@acme.example").unwrap().text.clone();
    assert_eq!(other.invitation_user(&token, now).unwrap().map(|u| u.id), Some(ada), "a link names no tenant");
}

#[test]
fn postgres_a_replicas_courier_delivers_every_tenants_mail_and_sees_nothing_else() {
    let (_cluster, store) = postgres();
    let other = store.tenant(store.create_tenant("globex", "Globex").unwrap());
    let now = Utc::now();
    let ours = store.enqueue_mail(&alert("ops@acme.example"), None, now).unwrap();
    let theirs = other.enqueue_mail(&alert("ops@globex.example"), None, now).unwrap();
    let courier = store.every_tenant();
    let claimed: Vec<i64> = courier.claim_mail(now, Duration::minutes(5), 10).unwrap().iter().map(|m| m.id).collect();
    assert_eq!(claimed, [ours, theirs]);
    courier.mail_sent(theirs, now).unwrap();
    courier.mail_failed(ours, "450 try later", Some(now + Duration::minutes(1))).unwrap();
    assert_eq!(other.mails(0, 10).unwrap().0[0].state, crate::mail::MailState::Sent);
    assert_eq!(store.mails(0, 10).unwrap().0[0].state, crate::mail::MailState::Queued);
    add(&store, person("ada@acme.example", "Ada", None), None);
    assert_eq!(courier.mails(0, 10).unwrap().1, 0, "no tenant's mail list");
    assert_eq!(courier.users(&UserQuery::default()).unwrap().1, 0, "no tenant's people");
    assert!(courier.integrations().unwrap().is_empty());
}

fn new_run(integration: IntegrationId, kind: RunKind) -> NewRun {
    NewRun {
        integration_id: integration,
        kind,
        trigger: Trigger::Manual,
        actor: Some("admin".into()),
        preview_id: None,
        reverts_id: None,
        since: None,
    }
}

fn ended(state: RunState) -> RunOutcome {
    RunOutcome {
        state,
        counts: Counts::default(),
        error: (state != RunState::Succeeded).then(|| "stopped".into()),
        fingerprint: None,
        changes: Vec::new(),
        issues: Vec::new(),
        kept: Vec::new(),
    }
}

both!(one_run_holds_an_integration_until_it_ends_and_a_cancel_reaches_it);
fn one_run_holds_an_integration_until_it_ends_and_a_cancel_reaches_it(store: &dyn DirectoryStore) {
    let id = store.create_integration(&personio("Acme")).unwrap();
    let first = store.begin_run(&new_run(id, RunKind::Preview)).unwrap();
    let busy = store.begin_run(&new_run(id, RunKind::Import)).unwrap_err();
    assert!(
        matches!(&busy, StoreError::AlreadyRunning(h) if h.run == first && h.owner.as_deref() == Some(store.owner())),
        "{busy:?}"
    );
    assert_eq!(store.heartbeat(first).unwrap(), Lease::Held);
    store.finish_run(first, &ended(RunState::Failed)).unwrap();
    assert_eq!(store.run(first).unwrap().state, RunState::Failed);
    assert!(matches!(store.finish_run(first, &ended(RunState::Failed)), Err(StoreError::LeaseLost(_))), "ends once");
    assert!(matches!(store.request_cancel(first, None), Err(StoreError::NotRunning { .. })));

    let second = store.begin_run(&new_run(id, RunKind::Import)).unwrap();
    let asked = store.request_cancel(second, Some("ops")).unwrap();
    assert_eq!(asked.cancel_requested_by.as_deref(), Some("ops"));
    assert_eq!(store.heartbeat(second).unwrap(), Lease::CancelRequested { by: Some("ops".into()) });
    let err = store.apply(second, &Apply::default(), "f").unwrap_err();
    assert!(matches!(err, StoreError::Cancelled(r) if r == second), "{err:?}");
    store.finish_run(second, &ended(RunState::Cancelled)).unwrap();
    assert_eq!(store.run(second).unwrap().state, RunState::Cancelled);
    assert!(matches!(
        store.begin_run(&new_run(IntegrationId(id.0 + 100), RunKind::Import)),
        Err(StoreError::NoIntegration(_))
    ));
    assert!(matches!(store.run(RunId(second.0 + 100)), Err(StoreError::NoRun(_))));
}

both!(an_import_writes_people_managers_history_and_invitations_together);
fn an_import_writes_people_managers_history_and_invitations_together(store: &dyn DirectoryStore) {
    let id = store.create_integration(&personio("Acme")).unwrap();
    let run = store.begin_run(&NewRun { trigger: Trigger::Automatic, ..new_run(id, RunKind::Import) }).unwrap();
    let planned = |email: &str, first: &str, source: &str, manager: Option<Target>| PlannedUser {
        target: Target::New(0),
        profile: person(email, first, Some("Engineering")),
        manager,
        managed_by: Some((id, source.into())),
        missing_runs: 0,
    };
    let boss = planned("boss@acme.example", "Ada", "1", None);
    let dev = PlannedUser { target: Target::New(1), ..planned("dev@acme.example", "Bob", "2", Some(Target::New(0))) };
    let change = |target: Target, name: &str, manager_after: Option<Target>| PlannedChange {
        target,
        source_id: Some(name.into()),
        name: name.into(),
        kind: ChangeKind::Create,
        fields: vec![FieldChange {
            field: Field::Manager,
            before: None,
            after: manager_after.map(|_| "Ada Lovelace".into()),
            before_id: None,
            after_id: None,
        }],
        manager_after,
    };
    let apply = Apply {
        creates: vec![boss, dev],
        changes: vec![
            change(Target::New(0), "Ada Lovelace", None),
            change(Target::New(1), "Bob Lovelace", Some(Target::New(0))),
        ],
        issues: vec![IssueRecord {
            source_id: Some("3".into()),
            name: Some("Cy".into()),
            field: Some("email".into()),
            severity: Severity::Warning,
            message: "no work email; skipped".into(),
        }],
        counts: Counts { created: 2, ..Counts::default() },
        invite: Some(crate::mail::Invite::default()),
        invitees: vec![Target::New(0), Target::New(1)],
        ..Apply::default()
    };
    store.apply(run, &apply, "fingerprint-1").unwrap();

    let done = store.run(run).unwrap();
    assert_eq!(
        (done.state, done.fingerprint.as_deref(), done.counts.created),
        (RunState::Succeeded, Some("fingerprint-1"), 2)
    );
    let (users, _) = store.users(&UserQuery { limit: 10, integration: Some(id), ..UserQuery::default() }).unwrap();
    let (ada, bob) = (&users[0], &users[1]);
    assert_eq!(
        (ada.profile.first_name.as_str(), bob.manager_id),
        ("Ada", Some(ada.id)),
        "a new manager of a new report"
    );
    assert_eq!(bob.managed_by, Some((id, "2".to_string())));
    let changes = store.run_changes(run, None).unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[1].fields[0].after_id, Some(ada.id), "the new manager's id in the history");
    assert_eq!(store.run_changes(run, Some(bob.id)).unwrap().len(), 1);
    let filter = ChangeFilter { search: Some("bob".into()), limit: 10, ..ChangeFilter::default() };
    let (page, total) = store.run_changes_page(run, &filter).unwrap();
    assert_eq!((page.len(), total, page[0].user_id), (1, 1, Some(bob.id)));
    assert_eq!(store.run_issues(run).unwrap()[0].message, "no work email; skipped");
    assert_eq!(store.user_history(bob.id).unwrap().iter().map(|(r, _)| *r).collect::<Vec<_>>(), vec![run]);
    assert_eq!(store.mails(0, 10).unwrap().1, 2, "both invited, in the import's transaction");
    assert!(store.user(ada.id).unwrap().informed_at.is_some());
    assert_eq!(
        store.history(Some(id), RunFilter::default(), 0, 10).unwrap().iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![run]
    );
    let stats = store.run_stats().unwrap();
    let import = stats.iter().find(|s| s.kind == RunKind::Import && s.state == RunState::Succeeded).unwrap();
    assert_eq!((import.runs, import.people_changed), (1, 2));

    // A run whose writes break a rule applies nothing, its history included.
    let next = store.begin_run(&new_run(id, RunKind::Import)).unwrap();
    let clash = Apply {
        creates: vec![
            planned("carol@acme.example", "Carol", "3", None),
            PlannedUser { target: Target::New(1), ..planned("BOSS@acme.example", "Ada2", "4", None) },
        ],
        changes: vec![change(Target::New(0), "Carol", None)],
        ..Apply::default()
    };
    assert!(matches!(store.apply(next, &clash, "f2"), Err(StoreError::EmailTaken(_))));
    assert_eq!(store.users(&UserQuery { limit: 10, ..UserQuery::default() }).unwrap().1, 2, "Carol was not kept");
    assert!(store.run_changes(next, None).unwrap().is_empty());
}

#[test]
fn postgres_replicas_beginning_a_run_at_once_let_one_through() {
    let (cluster, store) = postgres();
    let url = cluster.create_database("replicas").unwrap();
    let replicas: Vec<PgStore> = (0..3).map(|_| PgStore::connect(&url, secrets()).unwrap()).collect();
    assert_ne!(replicas[0].owner(), replicas[1].owner(), "each replica owns its runs");
    let id = replicas[0].create_integration(&personio("Acme")).unwrap();
    let began: Vec<Result<RunId, StoreError>> = std::thread::scope(|s| {
        let starts: Vec<_> =
            replicas.iter().map(|r| s.spawn(move || r.begin_run(&new_run(id, RunKind::Import)))).collect();
        starts.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(began.iter().filter(|b| b.is_ok()).count(), 1, "{began:?}");
    assert!(began.iter().filter_map(|b| b.as_ref().err()).all(|e| matches!(e, StoreError::AlreadyRunning(_))));
    let run = began.iter().find_map(|b| b.as_ref().ok()).copied().unwrap();
    let holder = replicas.iter().find(|r| r.heartbeat(run).unwrap() == Lease::Held).unwrap();
    assert!(replicas.iter().filter(|r| r.owner() != holder.owner()).all(|r| r.heartbeat(run).unwrap() == Lease::Lost));
    drop(store);
}

#[test]
fn postgres_runs_and_their_history_stay_within_their_tenant() {
    let (_cluster, store) = postgres();
    let other = store.tenant(store.create_tenant("globex", "Globex").unwrap());
    let id = store.create_integration(&personio("Acme")).unwrap();
    assert!(matches!(other.begin_run(&new_run(id, RunKind::Import)), Err(StoreError::NoIntegration(_))));
    let run = store.begin_run(&new_run(id, RunKind::Preview)).unwrap();
    assert!(matches!(other.run(run), Err(StoreError::NoRun(_))));
    assert!(matches!(other.request_cancel(run, None), Err(StoreError::NoRun(_))));
    store.finish_run(run, &ended(RunState::Failed)).unwrap();
    let all = RunFilter { previews: true, unapplied: true, unchanged: true };
    assert!(other.history(None, all, 0, 10).unwrap().is_empty());
    assert_eq!(store.history(None, all, 0, 10).unwrap().len(), 1);
    assert!(other.run_stats().unwrap().is_empty() && other.run_issues(run).unwrap().is_empty());
}

// Accounts, sessions, tokens and the audit log.

use crate::accounts::{AccountError, Accounts, Principal, Role};
use crate::audit::{Action, Audit, Event, Query};

/// A SQLite database file (accounts and the audit log open their own
/// connections to it) and a directory to remove after.
struct SqliteFile(std::path::PathBuf);

impl SqliteFile {
    fn new() -> (SqliteFile, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("hrsync-suite-{}-{}", std::process::id(), rand::random::<u32>()));
        let db = dir.join("hrsync.db");
        SqliteStore::open(&db, secrets()).unwrap();
        (SqliteFile(dir), db)
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `both_accounts!(name)` runs `name(&accounts, &audit)` on each backend.
macro_rules! both_accounts {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                let (_file, db) = super::SqliteFile::new();
                let accounts = super::Accounts::open(&db).unwrap();
                super::$name(&accounts, &super::Audit::open(&db).unwrap());
            }

            #[test]
            fn postgres() {
                let (_cluster, store) = super::postgres();
                let accounts = super::Accounts::new(Box::new(store.clone()));
                super::$name(&accounts, &super::Audit::new(Box::new(store)));
            }
        }
    };
}

fn signed_in(a: &Accounts, username: &str, password: &str) -> Principal {
    let id = a.verify(username, password).unwrap().expect("signed in");
    let s = a.create_session(id).unwrap();
    a.session(&s.token).unwrap().unwrap()
}

both_accounts!(the_first_admin_is_created_once_with_a_printed_or_given_password);
fn the_first_admin_is_created_once_with_a_printed_or_given_password(a: &Accounts, _: &Audit) {
    let generated = a.ensure_admin(None).unwrap().expect("a generated password");
    assert_eq!(a.ensure_admin(Some("another-password")).unwrap(), None, "only once");
    assert!(a.verify("admin", &generated).unwrap().is_some());
    assert!(a.verify("ADMIN", &generated).unwrap().is_some(), "usernames are case-insensitive");
    assert!(a.verify("admin", "wrong-password!").unwrap().is_none());
    assert!(a.verify("nobody", &generated).unwrap().is_none());
    assert_eq!(a.account("admin").unwrap().role, Role::Admin);
    assert!(matches!(a.create_account("Admin", "another long password", Role::Viewer), Err(AccountError::Taken(_))));
    assert!(matches!(a.create_account("short", "too short", Role::Viewer), Err(AccountError::ShortPassword)));
    assert!(matches!(a.account("nobody"), Err(AccountError::NoAccount(_))));
}

both_accounts!(sessions_and_tokens_work_until_they_end);
fn sessions_and_tokens_work_until_they_end(a: &Accounts, _: &Audit) {
    a.ensure_admin(Some("correct horse battery")).unwrap();
    let p = signed_in(a, "admin", "correct horse battery");
    assert_eq!((p.username.as_str(), p.role, p.tenant), ("admin", Role::Admin, TenantId::DEFAULT));
    assert!(p.csrf.is_some());
    let (id, t) = a.create_api_token(&p, "ci", None, None).unwrap();
    let by_token = a.api_token(&t).unwrap().unwrap();
    assert_eq!((by_token.csrf, by_token.token_id), (None, Some(id)));
    assert!(a.tokens(&p).unwrap()[0].last_used.is_some(), "a used token says when");
    assert!(a.api_token("hrs_forged").unwrap().is_none());
    let session = a.create_session(p.admin_id).unwrap();
    a.end_session(&session.token).unwrap();
    assert!(a.session(&session.token).unwrap().is_none(), "signed out");
}

both_accounts!(roles_order_and_tokens_never_outrank_their_creator);
fn roles_order_and_tokens_never_outrank_their_creator(a: &Accounts, _: &Audit) {
    a.ensure_admin(Some("correct horse battery")).unwrap();
    a.create_account("olga", "operator password", Role::Operator).unwrap();
    let olga = signed_in(a, "olga", "operator password");
    assert!(Role::Admin.allows(Role::Operator) && !Role::Viewer.allows(Role::Operator));
    let refused = a.create_api_token(&olga, "x", Some(Role::Admin), None).unwrap_err();
    assert!(refused.to_string().contains("operator accounts cannot create admin tokens"), "{refused}");
    let (id, viewer_token) = a.create_api_token(&olga, "read", Some(Role::Viewer), None).unwrap();
    assert_eq!(a.api_token(&viewer_token).unwrap().unwrap().role, Role::Viewer);
    // Demoting the account narrows its tokens too.
    let (_, op_token) = a.create_api_token(&olga, "ops", None, None).unwrap();
    a.set_role("olga", Role::Viewer).unwrap();
    assert_eq!(a.api_token(&op_token).unwrap().unwrap().role, Role::Viewer);
    // Each sees their own tokens; an admin sees everyone's.
    let admin = signed_in(a, "admin", "correct horse battery");
    let (admins_own, _) = a.create_api_token(&admin, "admin's", None, None).unwrap();
    let olga = signed_in(a, "olga", "operator password");
    assert!(a.tokens(&olga).unwrap().iter().all(|t| t.creator == "olga"));
    assert_eq!(a.tokens(&admin).unwrap().len(), 3);
    assert!(matches!(a.revoke_token(&olga, admins_own), Err(AccountError::NoToken(_))), "not someone else's");
    // Revoked, expired and disabled tokens stop working.
    let revoked = a.revoke_token(&olga, id).unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(a.revoke_token(&olga, id).unwrap().revoked_at, revoked.revoked_at, "revoking twice is fine");
    assert!(a.api_token(&viewer_token).unwrap().is_none());
    let soon = Utc::now() + Duration::milliseconds(50);
    let (_, short) = a.create_api_token(&olga, "short", None, Some(soon)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(80));
    assert!(a.api_token(&short).unwrap().is_none(), "expired");
    a.set_disabled("olga", true).unwrap();
    assert!(a.api_token(&op_token).unwrap().is_none(), "a disabled account's tokens stop");
    assert!(a.verify("olga", "operator password").unwrap().is_none(), "and it cannot sign in");
    a.set_disabled("olga", false).unwrap();
    assert!(a.verify("olga", "operator password").unwrap().is_some(), "enabled again");
}

both_accounts!(the_last_admin_cannot_be_disabled_or_demoted);
fn the_last_admin_cannot_be_disabled_or_demoted(a: &Accounts, _: &Audit) {
    a.ensure_admin(Some("correct horse battery")).unwrap();
    assert!(matches!(a.set_disabled("admin", true), Err(AccountError::LastAdmin(_))));
    assert!(matches!(a.set_role("admin", Role::Viewer), Err(AccountError::LastAdmin(_))));
    assert_eq!(a.account("admin").unwrap().role, Role::Admin, "unchanged by the refusal");
    a.create_account("second", "another admin password", Role::Admin).unwrap();
    a.set_disabled("admin", true).expect("another admin remains");
    assert!(matches!(a.set_role("second", Role::Operator), Err(AccountError::LastAdmin(_))));
}

both_accounts!(a_reset_password_ends_sessions_and_a_change_needs_the_current_one);
fn a_reset_password_ends_sessions_and_a_change_needs_the_current_one(a: &Accounts, _: &Audit) {
    a.ensure_admin(Some("correct horse battery")).unwrap();
    let id = a.verify("admin", "correct horse battery").unwrap().unwrap();
    let s = a.create_session(id).unwrap();
    assert!(matches!(
        a.change_password("admin", "wrong one here", "a new password!"),
        Err(AccountError::WrongPassword)
    ));
    assert!(a.session(&s.token).unwrap().is_some(), "a refused change ends nothing");
    a.change_password("admin", "correct horse battery", "a new password!").unwrap();
    assert!(a.session(&s.token).unwrap().is_none(), "sessions end with the old password");
    a.reset_password("admin", "from the command line").unwrap();
    assert!(a.verify("admin", "from the command line").unwrap().is_some());
    assert!(a.account("admin").unwrap().password_changed_at.is_some());
}

both_accounts!(audit_entries_are_kept_filtered_and_paged);
fn audit_entries_are_kept_filtered_and_paged(_: &Accounts, audit: &Audit) {
    for (actor, action) in [("ann", Action::SignIn), ("bob", Action::SignInFailed), ("ann", Action::Import)] {
        audit.record(Event {
            actor: actor.into(),
            address: "10.0.0.7".into(),
            action,
            target: Some("integration 1".into()),
            detail: None,
        });
    }
    let (all, total) = audit.entries(&Query { limit: 10, ..Query::default() }).unwrap();
    assert_eq!((all.len(), total), (3, 3));
    assert_eq!(all[0].action, "import", "newest first");
    let (ann, _) = audit.entries(&Query { actor: Some("ann".into()), limit: 10, ..Query::default() }).unwrap();
    assert_eq!(ann.len(), 2);
    let (failed, _) =
        audit.entries(&Query { action: Some(Action::SignInFailed), limit: 10, ..Query::default() }).unwrap();
    assert_eq!(failed[0].actor, "bob");
    let (page, total) = audit.entries(&Query { offset: 1, limit: 1, ..Query::default() }).unwrap();
    assert_eq!((page.len(), total, page[0].actor.as_str()), (1, 3, "bob"));
    let future = Utc::now() + Duration::hours(1);
    assert_eq!(audit.entries(&Query { since: Some(future), limit: 10, ..Query::default() }).unwrap().1, 0);
}

#[test]
fn postgres_accounts_tokens_and_audit_stay_within_their_tenant() {
    let (_cluster, store) = postgres();
    let other = store.create_tenant("globex", "Globex").unwrap();
    let (acme, globex) = (Accounts::new(Box::new(store.clone())), Accounts::new(Box::new(store.tenant(other))));
    acme.ensure_admin(Some("acme admin password")).unwrap();
    assert_eq!(
        globex.ensure_named_admin("admin@globex", Some("globex admin password")).unwrap(),
        None,
        "a password given is not printed"
    );
    assert!(globex.ensure_named_admin("again@globex", None).unwrap().is_none(), "globex has its admin");
    assert!(matches!(globex.create_account("ADMIN", "some long password", Role::Viewer), Err(AccountError::Taken(_))));

    // Signing in finds the account's tenant; each sees only its own.
    let g = signed_in(&globex, "admin@globex", "globex admin password");
    assert_eq!(g.tenant, other);
    let a = signed_in(&acme, "admin", "acme admin password");
    assert_eq!(a.tenant, TenantId::DEFAULT);
    assert_eq!(globex.accounts().unwrap().iter().map(|x| x.username.as_str()).collect::<Vec<_>>(), ["admin@globex"]);
    assert!(matches!(globex.account("admin"), Err(AccountError::NoAccount(_))));
    assert!(matches!(globex.set_disabled("admin", true), Err(AccountError::NoAccount(_))));
    assert!(matches!(globex.reset_password("admin", "taken over now!"), Err(AccountError::NoAccount(_))));
    // The last-admin rule counts the tenant's admins only.
    assert!(matches!(globex.set_role("admin@globex", Role::Viewer), Err(AccountError::LastAdmin(_))));

    let (acme_token, secret) = acme.create_api_token(&a, "acme ci", None, None).unwrap();
    assert!(globex.tokens(&g).unwrap().is_empty(), "no other tenant's tokens");
    assert!(matches!(globex.revoke_token(&g, acme_token), Err(AccountError::NoToken(_))));
    assert!(acme.api_token(&secret).unwrap().is_some(), "still live");
    // A principal of one tenant cannot mint tokens in another.
    assert!(globex.create_api_token(&a, "sneaky", None, None).is_err());

    let (acme_audit, globex_audit) = (Audit::new(Box::new(store.clone())), Audit::new(Box::new(store.tenant(other))));
    acme_audit.record(Event {
        actor: "admin".into(),
        address: "10.0.0.1".into(),
        action: Action::SignIn,
        target: None,
        detail: None,
    });
    assert_eq!(globex_audit.entries(&Query { limit: 10, ..Query::default() }).unwrap().1, 0);
    assert_eq!(acme_audit.entries(&Query { limit: 10, ..Query::default() }).unwrap().1, 1);
}

#[test]
fn postgres_a_disabled_tenant_cannot_sign_in_and_its_sessions_stop() {
    let (_cluster, store) = postgres();
    let other = store.create_tenant("initech", "Initech").unwrap();
    let accounts = Accounts::new(Box::new(store.tenant(other)));
    accounts.ensure_named_admin("bill@initech", Some("initech admin password")).unwrap();
    let p = signed_in(&accounts, "bill@initech", "initech admin password");
    let session = accounts.create_session(p.admin_id).unwrap();
    let (_, token) = accounts.create_api_token(&p, "ci", None, None).unwrap();
    store.set_tenant_disabled(other, true).unwrap();
    assert!(accounts.verify("bill@initech", "initech admin password").unwrap().is_none());
    assert!(accounts.session(&session.token).unwrap().is_none());
    assert!(accounts.api_token(&token).unwrap().is_none());
    store.set_tenant_disabled(other, false).unwrap();
    assert!(accounts.session(&session.token).unwrap().is_some(), "enabled again");
}

#[test]
fn postgres_the_audit_log_is_append_only() {
    let (_cluster, store) = postgres();
    let audit = Audit::new(Box::new(store.clone()));
    audit.record(Event {
        actor: "ann".into(),
        address: "cli".into(),
        action: Action::Import,
        target: None,
        detail: None,
    });
    let refused = store.raw_execute("UPDATE audit SET actor = 'mallory'").unwrap_err();
    assert!(format!("{refused:#}").contains("append-only"), "{refused:#}");
    let refused = store.raw_execute("DELETE FROM audit").unwrap_err();
    assert!(format!("{refused:#}").contains("append-only"), "{refused:#}");
}
