//! The embedded directory store: one SQLite file in the data directory,
//! WAL mode, foreign keys on, versioned migrations applied at open. One
//! module per aggregate of [`super::store`]; every row is read by column
//! name.

mod accounts;
mod audit;
mod hooks;
mod integrations;
mod outbox;
mod overrides;
mod people;
mod runs;
mod schedule;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use anyhow::Context;
use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

pub use accounts::SqliteAccounts;
pub use audit::SqliteAudit;

use super::*;
use crate::secrets::SecretBox;

const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/0001_directory.sql"),
    include_str!("../../../migrations/0002_accounts.sql"),
    include_str!("../../../migrations/0003_automation.sql"),
    include_str!("../../../migrations/0004_leases.sql"),
    include_str!("../../../migrations/0005_security.sql"),
    include_str!("../../../migrations/0006_overrides.sql"),
    include_str!("../../../migrations/0007_company.sql"),
    include_str!("../../../migrations/0008_webhooks.sql"),
    include_str!("../../../migrations/0009_claims.sql"),
    include_str!("../../../migrations/0010_event_claims.sql"),
];

/// SQLite storage. Operations are short; one connection behind a mutex keeps
/// every write serialised, which SQLite wants anyway.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    secrets: SecretBox,
    /// This handle's name in the runs it owns: every process opens its own.
    owner: String,
}

impl SqliteStore {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub fn open(path: &Path, secrets: SecretBox) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            crate::data_dir::create(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // Owner-only before SQLite first writes it (its -wal and -shm follow).
        crate::data_dir::create_private_file(path).with_context(|| format!("creating {}", path.display()))?;
        let conn =
            Connection::open(path).with_context(|| format!("opening the directory database {}", path.display()))?;
        Self::init(conn, secrets).with_context(|| format!("preparing {}", path.display()))
    }

    /// An in-memory database, for tests.
    pub fn in_memory(secrets: SecretBox) -> anyhow::Result<Self> {
        Self::init(Connection::open_in_memory()?, secrets)
    }

    fn init(mut conn: Connection, secrets: SecretBox) -> anyhow::Result<Self> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Long enough for another process's largest import to commit.
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        // Migrations that rebuild a table need foreign keys off (SQLite's
        // documented procedure); every reference is checked afterwards.
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        let migrations = Migrations::new(MIGRATIONS.iter().map(|m| M::up(m).foreign_key_check()).collect());
        migrations.to_latest(&mut conn).context("applying database migrations")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(SqliteStore { conn: Mutex::new(conn), secrets, owner: process_owner() })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().expect("database connection")
    }
}

fn sql(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, Some(message)) = &e
        && f.code == rusqlite::ErrorCode::ConstraintViolation
        && message.contains("users.email")
    {
        return StoreError::EmailTaken(message.clone());
    }
    StoreError::Other(e.into())
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("serialisable")
}

fn enum_text<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value).expect("serialisable") {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

fn parse_enum<T: serde::de::DeserializeOwned>(text: String) -> rusqlite::Result<T> {
    serde_json::from_value(serde_json::Value::String(text))
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

fn conversion(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

fn text_error(message: String) -> rusqlite::Error {
    conversion(std::io::Error::other(message))
}

/// `host:pid:nonce`: unique per open handle, readable in "who holds it".
pub(in crate::directory) fn process_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}:{:08x}", std::process::id(), rand::random::<u32>())
}

#[cfg(test)]
mod tests {
    use rusqlite::params;

    use super::*;

    fn store() -> SqliteStore {
        SqliteStore::in_memory(SecretBox::from_key(&[3; 32])).unwrap()
    }

    fn profile(email: &str) -> Profile {
        Profile::new(Email::parse(email).unwrap(), "Ada", "Lovelace")
    }

    #[test]
    fn secrets_are_encrypted_at_rest_and_decrypted_on_read() {
        let s = store();
        let mut config = IntegrationConfig::new("personio", "Acme");
        config.settings.insert("client-id".into(), "id-1".into());
        config.settings.insert("client-secret".into(), "papi-super-secret".into());
        config.secret_keys.insert("client-secret".into());
        let id = s.create_integration(&config).unwrap();
        let raw: String =
            s.conn().query_row("SELECT settings FROM integrations WHERE id = ?1", [id.0], |r| r.get(0)).unwrap();
        assert!(!raw.contains("papi-super-secret") && raw.contains("enc:v1:") && raw.contains("id-1"), "{raw}");
        assert_eq!(s.integration(id).unwrap().config, config);
    }

    #[test]
    fn the_user_column_list_is_the_select_list() {
        assert_eq!(people::USER_COLUMN_LIST.join(", "), people::USER_COLUMNS);
    }

    #[test]
    fn emails_are_unique_regardless_of_case() {
        let s = store();
        s.create_user(&NewUser { profile: profile("ada@x.io"), manager_id: None }).unwrap();
        let err = s.create_user(&NewUser { profile: profile("ADA@X.IO"), manager_id: None }).unwrap_err();
        assert!(matches!(err, StoreError::EmailTaken(_)), "{err:?}");
    }

    fn new_run(integration: IntegrationId, kind: RunKind) -> NewRun {
        NewRun {
            integration_id: integration,
            kind,
            trigger: Trigger::Manual,
            actor: Some("ann".into()),
            preview_id: None,
            reverts_id: None,
            since: None,
        }
    }

    /// Two handles on one file, as two processes would open it.
    fn two_processes() -> (SqliteStore, SqliteStore, IntegrationId, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("hrsync-lease-{}-{}", std::process::id(), rand::random::<u32>()));
        let path = dir.join("hrsync.db");
        let a = SqliteStore::open(&path, SecretBox::from_key(&[3; 32])).unwrap();
        let b = SqliteStore::open(&path, SecretBox::from_key(&[3; 32])).unwrap();
        let id = a.create_integration(&IntegrationConfig::new("personio", "Acme")).unwrap();
        (a, b, id, dir)
    }

    fn age_lease(s: &SqliteStore, run: RunId) {
        let old = Utc::now() - LEASE_TTL - chrono::Duration::seconds(1);
        s.conn().execute("UPDATE runs SET heartbeat_at = ?2 WHERE id = ?1", params![run.0, old]).unwrap();
    }

    fn done() -> RunOutcome {
        RunOutcome {
            state: RunState::Succeeded,
            counts: Counts::default(),
            error: None,
            fingerprint: None,
            changes: vec![],
            issues: vec![],
            kept: vec![],
        }
    }

    #[test]
    fn history_shows_what_changed_the_directory_unless_asked_for_more() {
        let s = store();
        let id = s.create_integration(&IntegrationConfig::new("personio", "Acme")).unwrap();
        let changed = Counts { created: 3, ..Counts::default() };
        let mut ids = std::collections::HashMap::new();
        for (name, kind, state, counts) in [
            ("preview", RunKind::Preview, RunState::Succeeded, changed.clone()),
            ("import", RunKind::Import, RunState::Succeeded, changed.clone()),
            ("nothing", RunKind::Import, RunState::Succeeded, Counts { unchanged: 9, issues: 1, ..Counts::default() }),
            ("failed", RunKind::Import, RunState::Failed, Counts::default()),
            ("blocked", RunKind::Import, RunState::Blocked, changed.clone()),
            ("revert", RunKind::Revert, RunState::Succeeded, Counts { reactivated: 1, ..Counts::default() }),
        ] {
            let run = s.begin_run(&new_run(id, kind)).unwrap();
            s.finish_run(run, &RunOutcome { state, counts, ..done() }).unwrap();
            ids.insert(run, name);
        }
        let running = s.begin_run(&new_run(id, RunKind::Import)).unwrap();
        ids.insert(running, "running");
        let shown = |filter: RunFilter| -> Vec<&str> {
            s.history(Some(id), filter, 0, 50).unwrap().iter().map(|r| ids[&r.id]).collect()
        };
        assert_eq!(shown(RunFilter::default()), ["running", "revert", "import"]);
        assert_eq!(
            shown(RunFilter { previews: true, ..RunFilter::default() }),
            ["running", "revert", "import", "preview"]
        );
        assert_eq!(
            shown(RunFilter { unapplied: true, ..RunFilter::default() }),
            ["running", "revert", "blocked", "failed", "import"]
        );
        assert_eq!(
            shown(RunFilter { unchanged: true, ..RunFilter::default() }),
            ["running", "revert", "nothing", "import"]
        );
        assert_eq!(shown(RunFilter::ALL).len(), 7);
        assert_eq!(s.runs(Some(id), 0, 50).unwrap().len(), 7, "runs is every run");
    }

    #[test]
    fn one_run_of_any_kind_holds_an_integration_and_says_who() {
        let s = store();
        let id = s.create_integration(&IntegrationConfig::new("personio", "Acme")).unwrap();
        let first = s.begin_run(&new_run(id, RunKind::Preview)).unwrap();
        for kind in [RunKind::Preview, RunKind::Import, RunKind::Revert] {
            match s.begin_run(&new_run(id, kind)) {
                Err(StoreError::AlreadyRunning(h)) => {
                    assert_eq!(h.run, first);
                    let text = StoreError::AlreadyRunning(h).to_string();
                    assert!(text.contains(&format!("run {first} (manual preview by ann")), "{text}");
                    assert!(text.contains(s.owner()), "{text}");
                }
                other => panic!("{kind:?}: {other:?}"),
            }
        }
        s.finish_run(first, &done()).unwrap();
        s.begin_run(&new_run(id, RunKind::Import)).expect("free again");
    }

    #[test]
    fn another_process_waits_for_a_fresh_lease_and_takes_over_an_expired_one() {
        let (a, b, id, dir) = two_processes();
        let run = a.begin_run(&new_run(id, RunKind::Import)).unwrap();
        assert!(matches!(b.begin_run(&new_run(id, RunKind::Import)), Err(StoreError::AlreadyRunning(_))));
        assert_eq!(a.heartbeat(run).unwrap(), Lease::Held);
        assert_eq!(b.heartbeat(run).unwrap(), Lease::Lost, "only the owner renews");
        assert_eq!(b.run(run).unwrap().state, RunState::Running, "a fresh lease reads as running");

        age_lease(&a, run);
        assert_eq!(b.run(run).unwrap().state, RunState::Interrupted, "an expired lease reads as interrupted");
        let stored: String = b.conn().query_row("SELECT state FROM runs WHERE id = ?1", [run.0], |r| r.get(0)).unwrap();
        assert_eq!(stored, "running", "reading never writes");

        let second = b.begin_run(&new_run(id, RunKind::Import)).expect("the expired run no longer holds it");
        assert_eq!(a.heartbeat(run).unwrap(), Lease::Lost);
        let late = a.apply(run, &Apply::default(), "f").unwrap_err();
        assert!(matches!(late, StoreError::LeaseLost(r) if r == run), "{late:?}");
        assert!(matches!(a.finish_run(run, &done()), Err(StoreError::LeaseLost(_))));
        let old = b.run(run).unwrap();
        assert_eq!(old.state, RunState::Interrupted);
        assert!(old.error.unwrap().contains(a.owner()));
        b.finish_run(second, &done()).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_cancel_request_reaches_the_owner_and_refuses_the_apply() {
        let (a, b, id, dir) = two_processes();
        let run = a.begin_run(&new_run(id, RunKind::Import)).unwrap();
        let asked = b.request_cancel(run, Some("bob")).unwrap();
        assert_eq!(asked.cancel_requested_by.as_deref(), Some("bob"));
        assert_eq!(a.heartbeat(run).unwrap(), Lease::CancelRequested { by: Some("bob".into()) });
        assert!(matches!(a.apply(run, &Apply::default(), "f"), Err(StoreError::Cancelled(_))));
        let cancelled = RunOutcome { state: RunState::Cancelled, error: Some("cancelled by bob".into()), ..done() };
        a.finish_run(run, &cancelled).unwrap();
        assert_eq!(b.run(run).unwrap().state, RunState::Cancelled);
        let again = b.request_cancel(run, None).unwrap_err();
        assert!(matches!(again, StoreError::NotRunning { state: RunState::Cancelled, .. }), "{again:?}");
        assert!(again.to_string().contains("it is cancelled"), "{again}");

        // A run whose process is gone is cancelled at once.
        let orphan = a.begin_run(&new_run(id, RunKind::Preview)).unwrap();
        age_lease(&a, orphan);
        assert_eq!(b.request_cancel(orphan, Some("bob")).unwrap().state, RunState::Cancelled);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn search_escapes_like_wildcards() {
        let s = store();
        s.create_user(&NewUser { profile: profile("a_b@x.io"), manager_id: None }).unwrap();
        s.create_user(&NewUser { profile: profile("axb@x.io"), manager_id: None }).unwrap();
        let (found, total) =
            s.users(&UserQuery { search: Some("a_b".into()), limit: 10, ..UserQuery::default() }).unwrap();
        assert_eq!((found.len(), total), (1, 1));
    }

    #[test]
    fn users_are_filtered_by_status_department_manager_and_informed() {
        let s = store();
        let with = |email: &str, department: Option<&str>, status: UserStatus, manager: Option<UserId>| {
            let mut p = profile(email);
            p.department = department.map(String::from);
            p.status = status;
            s.create_user(&NewUser { profile: p, manager_id: manager }).unwrap()
        };
        let boss = with("boss@x.io", Some("Board"), UserStatus::Active, None);
        let dev = with("dev@x.io", Some("Engineering"), UserStatus::Active, Some(boss));
        let gone = with("gone@x.io", Some("Engineering"), UserStatus::Inactive, Some(boss));
        s.conn().execute("UPDATE users SET informed_at = '2026-01-01T00:00:00Z' WHERE id = ?1", [boss.0]).unwrap();
        let ids = |q: UserQuery| -> Vec<UserId> {
            let (users, total) = s.users(&UserQuery { limit: 10, ..q }).unwrap();
            assert_eq!(users.len() as u64, total);
            let mut ids: Vec<UserId> = users.into_iter().map(|u| u.id).collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(UserQuery { status: Some(UserStatus::Active), ..UserQuery::default() }), vec![boss, dev]);
        assert_eq!(ids(UserQuery { department: Some("Engineering".into()), ..UserQuery::default() }), vec![dev, gone]);
        assert_eq!(ids(UserQuery { manager: Some(boss), ..UserQuery::default() }), vec![dev, gone]);
        assert_eq!(ids(UserQuery { informed: Some(true), ..UserQuery::default() }), vec![boss]);
        assert_eq!(ids(UserQuery { informed: Some(false), ..UserQuery::default() }), vec![dev, gone]);
        assert_eq!(
            ids(UserQuery {
                status: Some(UserStatus::Active),
                informed: Some(false),
                department: Some("Engineering".into()),
                ..UserQuery::default()
            }),
            vec![dev]
        );
        let facets = s.facets().unwrap();
        assert_eq!(facets.departments, vec!["Board".to_string(), "Engineering".into()]);
        assert_eq!(facets.managers, vec![(boss, "Ada Lovelace".to_string())]);
    }
}
