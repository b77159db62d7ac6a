//! The store test suite, run against every backend: SQLite in memory and
//! PostgreSQL in a throwaway cluster (one per test binary while tests use
//! it, a database per test). A behaviour of the store traits is tested
//! here once, for both; what only one backend has is tested beside it.

use std::sync::{Arc, Mutex, Weak};

use chrono::{Duration, TimeZone, Utc};
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
    let first = Schedule {
        integration_id: id,
        next_run_at: at,
        last_success_at: None,
        last_full_at: None,
        failures: 0,
        alerted: false,
        last_error: None,
    };
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
    let schedule = Schedule {
        integration_id: mine,
        next_run_at: Utc::now(),
        last_success_at: None,
        last_full_at: None,
        failures: 0,
        alerted: false,
        last_error: None,
    };
    assert!(matches!(other.save_schedule(&schedule), Err(StoreError::NoIntegration(_))));
    store.save_schedule(&schedule).unwrap();
    assert_eq!(other.schedule(mine).unwrap(), None);
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
    let pending = store.pending_events(id, 10).unwrap();
    assert_eq!(pending.iter().map(|p| p.id).collect::<Vec<_>>(), vec![first, second]);
    assert_eq!(pending[0].event, delivery(id, 1, "{\"a\":1}"), "headers and body as received");
    assert_eq!(store.pending_events(id, 1).unwrap().len(), 1, "at most the limit");
    let waiting = store.pending_integrations().unwrap();
    assert_eq!(
        waiting,
        vec![hooks::Waiting {
            integration: id,
            oldest: delivery(id, 1, "").received_at,
            newest: delivery(id, 4, "").received_at
        }]
    );
    assert_eq!(store.subscription(id).unwrap().unwrap().last_delivery_at, Some(delivery(id, 4, "").received_at));

    let end = |id, state| hooks::EventEnd { id, state, outcome: "read".into(), run: None };
    store.finish_events(&[end(first, hooks::EventState::Done)], Utc::now()).unwrap();
    assert_eq!(store.pending_events(id, 10).unwrap().iter().map(|p| p.id).collect::<Vec<_>>(), vec![second]);
    store.finish_events(&[end(second, hooks::EventState::Ignored)], Utc::now()).unwrap();
    assert!(store.pending_integrations().unwrap().is_empty());

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
    assert!(other.pending_integrations().unwrap().is_empty());
    assert!(other.pending_events(mine, 10).unwrap().is_empty());
    let end = hooks::EventEnd { id: event, state: hooks::EventState::Done, outcome: "x".into(), run: None };
    other.finish_events(&[end], Utc::now()).unwrap();
    assert_eq!(store.pending_events(mine, 10).unwrap().len(), 1, "another tenant cannot finish it");
}
