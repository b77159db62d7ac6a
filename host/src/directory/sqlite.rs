//! The embedded [`DirectoryStore`]: one SQLite file in the data directory,
//! WAL mode, foreign keys on, versioned migrations applied at open.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use rusqlite_migration::{M, Migrations};

use super::*;
use crate::secrets::SecretBox;

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_directory.sql"),
    include_str!("../../migrations/0002_accounts.sql"),
    include_str!("../../migrations/0003_automation.sql"),
    include_str!("../../migrations/0004_leases.sql"),
    include_str!("../../migrations/0005_security.sql"),
];

/// SQLite storage. Operations are short; one connection behind a mutex keeps
/// every write serialised, which SQLite wants anyway.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    secrets: SecretBox,
    /// This handle's name in the runs it owns: every process opens its own.
    owner: String,
}

const USER_COLUMNS: &str = "id, email, first_name, last_name, preferred_name, gender, status, manager_id, start_date, \
     termination_date, job_title, employee_id, department, office, team, custom, integration_id, source_id, \
     missing_runs, profile_url, informed_at, created_at, updated_at";

const RUN_COLUMNS: &str = "id, integration_id, kind, trigger, actor, state, preview_id, reverts_id, started_at, \
     finished_at, counts, error, fingerprint, since, owner, heartbeat_at, cancel_requested_by";

const MAIL_COLUMNS: &str = "id, kind, recipient, subject, text_body, html_body, message_id, state, attempts, \
     last_error, created_at, sent_at";

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

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    let date = |i: usize| -> rusqlite::Result<Option<NaiveDate>> {
        row.get::<_, Option<String>>(i)?
            .map(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(conversion))
            .transpose()
    };
    let custom: String = row.get(15)?;
    let integration: Option<i64> = row.get(16)?;
    let source: Option<String> = row.get(17)?;
    Ok(User {
        id: UserId(row.get(0)?),
        profile: Profile {
            email: Email::parse(&row.get::<_, String>(1)?).map_err(text_error)?,
            first_name: row.get(2)?,
            last_name: row.get(3)?,
            preferred_name: row.get(4)?,
            gender: row.get(5)?,
            status: UserStatus::parse(&row.get::<_, String>(6)?).map_err(text_error)?,
            start_date: date(8)?,
            termination_date: date(9)?,
            job_title: row.get(10)?,
            employee_id: row.get(11)?,
            department: row.get(12)?,
            office: row.get(13)?,
            team: row.get(14)?,
            custom: serde_json::from_str(&custom).map_err(conversion)?,
            profile_url: row.get(19)?,
        },
        manager_id: row.get::<_, Option<i64>>(7)?.map(UserId),
        managed_by: integration.zip(source).map(|(i, s)| (IntegrationId(i), s)),
        missing_runs: row.get(18)?,
        informed_at: row.get(20)?,
        created_at: row.get(21)?,
        updated_at: row.get(22)?,
    })
}

/// A run as stored. A live run whose lease expired is shown as what it is —
/// interrupted — even before a writer records it so: reading never writes.
fn run_from_row(row: &Row<'_>) -> rusqlite::Result<Run> {
    let counts: String = row.get(10)?;
    let mut run = Run {
        id: RunId(row.get(0)?),
        integration_id: IntegrationId(row.get(1)?),
        kind: parse_enum(row.get(2)?)?,
        trigger: parse_enum(row.get(3)?)?,
        actor: row.get(4)?,
        state: parse_enum(row.get(5)?)?,
        preview_id: row.get::<_, Option<i64>>(6)?.map(RunId),
        reverts_id: row.get::<_, Option<i64>>(7)?.map(RunId),
        started_at: row.get(8)?,
        finished_at: row.get(9)?,
        counts: serde_json::from_str(&counts).map_err(conversion)?,
        error: row.get(11)?,
        fingerprint: row.get(12)?,
        since: row.get(13)?,
        owner: row.get(14)?,
        cancel_requested_by: row.get(16)?,
    };
    let heartbeat: Option<DateTime<Utc>> = row.get(15)?;
    if run.state.is_live() && lease_expired(heartbeat, Utc::now()) {
        run.state = RunState::Interrupted;
        run.error = Some(interrupted_message(run.owner.as_deref()));
    }
    Ok(run)
}

fn lease_expired(heartbeat: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    heartbeat.is_none_or(|h| now - h > LEASE_TTL)
}

fn interrupted_message(owner: Option<&str>) -> String {
    format!(
        "interrupted: the process running it ({}) stopped renewing its lease — it crashed, was killed or lost the database; nothing was applied",
        owner.unwrap_or("unknown")
    )
}

/// `host:pid:nonce`: unique per open handle, readable in "who holds it".
fn process_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}:{:08x}", std::process::id(), rand::random::<u32>())
}

fn mail_from_row(row: &Row<'_>) -> rusqlite::Result<MailRecord> {
    Ok(MailRecord {
        id: row.get(0)?,
        kind: parse_enum(row.get(1)?)?,
        recipient: row.get(2)?,
        subject: row.get(3)?,
        text: row.get(4)?,
        html: row.get(5)?,
        message_id: row.get(6)?,
        state: parse_enum(row.get(7)?)?,
        attempts: row.get(8)?,
        last_error: row.get(9)?,
        created_at: row.get(10)?,
        sent_at: row.get(11)?,
    })
}

fn insert_mail(
    tx: &rusqlite::Connection,
    m: &Message,
    user: Option<UserId>,
    run: Option<RunId>,
    now: DateTime<Utc>,
) -> rusqlite::Result<i64> {
    // One Message-ID for every attempt: a re-send is recognisably the same message.
    let message_id = format!("<{}@hrsync>", &crate::accounts::random_token("")[..32]);
    tx.prepare_cached(
        "INSERT INTO outbox (kind, recipient, subject, text_body, html_body, message_id, user_id, run_id, next_attempt_at, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
    )?
    .execute(params![enum_text(&m.kind), m.to.as_str(), m.subject, m.text, m.html, message_id, user.map(|u| u.0), run.map(|r| r.0), now])?;
    Ok(tx.last_insert_rowid())
}

/// Queues invitations for the active users among `users`; with `only_new`,
/// only for those never informed. Marks them informed.
fn invite_tx(
    tx: &rusqlite::Connection,
    users: &[UserId],
    invite: &Invite,
    run: Option<RunId>,
    only_new: bool,
    now: DateTime<Utc>,
) -> rusqlite::Result<Vec<UserId>> {
    let mut invited = Vec::new();
    let mut find = tx.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id = ?1 AND status = 'active' AND (?2 = 0 OR informed_at IS NULL)"
    ))?;
    for &id in users {
        let Some(user) = find.query_row(params![id.0, only_new], user_from_row).optional()? else { continue };
        let token = crate::accounts::random_token("");
        let expires = now + invite.valid_for;
        tx.prepare_cached("DELETE FROM invitations WHERE user_id = ?1 AND used_at IS NULL")?.execute([id.0])?;
        tx.prepare_cached(
            "INSERT INTO invitations (user_id, token_hash, expires_at, created_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![id.0, crate::accounts::token_hash(&token), expires, now])?;
        insert_mail(tx, &crate::mail::invitation(&user.profile, invite, &token, expires), Some(id), run, now)?;
        tx.prepare_cached("UPDATE users SET informed_at = ?2 WHERE id = ?1")?.execute(params![id.0, now])?;
        invited.push(id);
    }
    Ok(invited)
}

fn change_from_row(row: &Row<'_>) -> rusqlite::Result<ChangeRecord> {
    let fields: String = row.get(4)?;
    Ok(ChangeRecord {
        user_id: row.get::<_, Option<i64>>(0)?.map(UserId),
        source_id: row.get(1)?,
        name: row.get(2)?,
        kind: ChangeKind::parse(&row.get::<_, String>(3)?).map_err(text_error)?,
        fields: serde_json::from_str(&fields).map_err(conversion)?,
    })
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

    fn seal_settings(&self, config: &IntegrationConfig) -> String {
        let sealed: BTreeMap<&String, String> = config
            .settings
            .iter()
            .map(|(k, v)| {
                let value =
                    if config.secret_keys.contains(k) && !v.is_empty() { self.secrets.seal(v) } else { v.clone() };
                (k, value)
            })
            .collect();
        json_text(&sealed)
    }

    fn integration_from_row(&self, row: &Row<'_>) -> rusqlite::Result<Integration> {
        let settings: BTreeMap<String, String> = serde_json::from_str(&row.get::<_, String>(3)?).map_err(conversion)?;
        let mut config = IntegrationConfig::new(&row.get::<_, String>(1)?, &row.get::<_, String>(2)?);
        for (key, value) in settings {
            if SecretBox::is_sealed(&value) {
                let plain =
                    self.secrets.open_sealed(&value).map_err(|e| text_error(format!("setting `{key}`: {e}")))?;
                config.secret_keys.insert(key.clone());
                config.settings.insert(key, plain);
            } else {
                config.settings.insert(key, value);
            }
        }
        config.grants = serde_json::from_str(&row.get::<_, String>(4)?).map_err(conversion)?;
        config.auto_import = row.get(5)?;
        config.send_emails = row.get(6)?;
        config.interval_minutes = row.get(7)?;
        config.missing_after = row.get(8)?;
        config.max_deactivate_share = row.get(9)?;
        config.max_email_share = row.get(10)?;
        config.limits = RunLimits { max_pages: row.get(11)?, max_records: row.get(12)?, max_minutes: row.get(13)? };
        let bound: Option<String> = row.get(14)?;
        config.secrets_for =
            bound.map(|b| serde_json::from_str(&b)).transpose().map_err(conversion)?.unwrap_or_default();
        Ok(Integration { id: IntegrationId(row.get(0)?), config })
    }

    /// `?1`..`?14` of every integration write, secrets sealed.
    fn integration_values<'a>(&self, c: &'a IntegrationConfig) -> Vec<Box<dyn rusqlite::ToSql + 'a>> {
        vec![
            Box::new(&c.connector_id),
            Box::new(&c.name),
            Box::new(self.seal_settings(c)),
            Box::new(json_text(&c.grants)),
            Box::new(c.auto_import),
            Box::new(c.send_emails),
            Box::new(c.interval_minutes),
            Box::new(c.missing_after),
            Box::new(c.max_deactivate_share),
            Box::new(c.max_email_share),
            Box::new(c.limits.max_pages),
            Box::new(c.limits.max_records),
            Box::new(c.limits.max_minutes),
            Box::new(json_text(&c.secrets_for)),
        ]
    }

    /// Records a run's end — only while this handle owns the run, so a
    /// process that lost its lease cannot overwrite what another recorded.
    /// An import refuses to end once someone asked to cancel it.
    fn end_run(
        &self,
        tx: &Transaction<'_>,
        id: RunId,
        state: RunState,
        counts: &Counts,
        error: Option<&str>,
        fingerprint: Option<&str>,
    ) -> Result<(), StoreError> {
        let refuse_cancelled = state != RunState::Cancelled;
        let n = tx
            .execute(
                "UPDATE runs SET state = ?2, counts = ?3, error = ?4, fingerprint = ?5, finished_at = ?6 \
                 WHERE id = ?1 AND owner = ?7 AND state = 'running' AND (?8 = 0 OR cancel_requested_at IS NULL)",
                params![
                    id.0,
                    enum_text(&state),
                    json_text(counts),
                    error,
                    fingerprint,
                    Utc::now(),
                    self.owner,
                    refuse_cancelled
                ],
            )
            .map_err(sql)?;
        if n == 1 {
            return Ok(());
        }
        let (state_now, owner, cancel): (String, Option<String>, Option<DateTime<Utc>>) = tx
            .query_row("SELECT state, owner, cancel_requested_at FROM runs WHERE id = ?1", [id.0], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(sql)?
            .ok_or(StoreError::NoRun(id))?;
        if state_now == "running" && owner.as_deref() == Some(self.owner.as_str()) && cancel.is_some() {
            Err(StoreError::Cancelled(id))
        } else {
            Err(StoreError::LeaseLost(id))
        }
    }

    const INTEGRATION_COLUMNS: &str = "id, connector_id, name, settings, grants, auto_import, send_emails, \
         interval_minutes, missing_after, max_deactivate_share, max_email_share, max_pages, max_records, max_run_minutes, \
         secrets_for";
}

/// Writes a profile into the columns of `users`, `?1`..`?15` in this order.
fn profile_params(p: &Profile) -> [Box<dyn rusqlite::ToSql + '_>; 15] {
    let date = |d: &Option<NaiveDate>| d.map(|d| d.to_string());
    [
        Box::new(p.email.as_str()),
        Box::new(&p.first_name),
        Box::new(&p.last_name),
        Box::new(&p.preferred_name),
        Box::new(&p.gender),
        Box::new(p.status.as_str()),
        Box::new(date(&p.start_date)),
        Box::new(date(&p.termination_date)),
        Box::new(&p.job_title),
        Box::new(&p.employee_id),
        Box::new(&p.department),
        Box::new(&p.office),
        Box::new(&p.team),
        Box::new(json_text(&p.custom)),
        Box::new(&p.profile_url),
    ]
}

fn insert_user(
    tx: &Transaction<'_>,
    p: &Profile,
    managed_by: &Option<(IntegrationId, String)>,
    missing: u32,
    now: DateTime<Utc>,
) -> rusqlite::Result<UserId> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO users (email, first_name, last_name, preferred_name, gender, status, start_date, termination_date, \
         job_title, employee_id, department, office, team, custom, profile_url, integration_id, source_id, missing_runs, \
         created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?19)",
    )?;
    let mut values: Vec<Box<dyn rusqlite::ToSql + '_>> = profile_params(p).into_iter().collect();
    values.push(Box::new(managed_by.as_ref().map(|m| m.0.0)));
    values.push(Box::new(managed_by.as_ref().map(|m| m.1.clone())));
    values.push(Box::new(missing));
    values.push(Box::new(now));
    stmt.execute(rusqlite::params_from_iter(values.iter().map(|b| b.as_ref())))?;
    Ok(UserId(tx.last_insert_rowid()))
}

impl DirectoryStore for SqliteStore {
    fn create_integration(&self, config: &IntegrationConfig) -> Result<IntegrationId, StoreError> {
        // A new integration's secrets were entered with its first grants.
        let mut config = config.clone();
        if config.secrets_for.is_empty() {
            config.secrets_for = config.grants.clone();
        }
        let config = &config;
        let conn = self.conn();
        let mut values = self.integration_values(config);
        values.push(Box::new(Utc::now()));
        conn.execute(
            "INSERT INTO integrations (connector_id, name, settings, grants, auto_import, send_emails, interval_minutes, \
             missing_after, max_deactivate_share, max_email_share, max_pages, max_records, max_run_minutes, secrets_for, \
             created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15)",
            rusqlite::params_from_iter(values.iter().map(|b| b.as_ref())),
        )
        .map_err(sql)?;
        Ok(IntegrationId(conn.last_insert_rowid()))
    }

    fn update_integration(&self, id: IntegrationId, config: &IntegrationConfig) -> Result<(), StoreError> {
        let mut values = self.integration_values(config);
        values.push(Box::new(Utc::now()));
        values.push(Box::new(id.0));
        let n = self
            .conn()
            .execute(
                "UPDATE integrations SET connector_id = ?1, name = ?2, settings = ?3, grants = ?4, auto_import = ?5, \
                 send_emails = ?6, interval_minutes = ?7, missing_after = ?8, max_deactivate_share = ?9, \
                 max_email_share = ?10, max_pages = ?11, max_records = ?12, max_run_minutes = ?13, secrets_for = ?14, \
                 updated_at = ?15 WHERE id = ?16",
                rusqlite::params_from_iter(values.iter().map(|b| b.as_ref())),
            )
            .map_err(sql)?;
        if n == 0 { Err(StoreError::NoIntegration(id)) } else { Ok(()) }
    }

    fn integration(&self, id: IntegrationId) -> Result<Integration, StoreError> {
        let conn = self.conn();
        conn.query_row(
            &format!("SELECT {} FROM integrations WHERE id = ?1", Self::INTEGRATION_COLUMNS),
            [id.0],
            |row| self.integration_from_row(row),
        )
        .optional()
        .map_err(sql)?
        .ok_or(StoreError::NoIntegration(id))
    }

    fn integrations(&self) -> Result<Vec<Integration>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!("SELECT {} FROM integrations ORDER BY id", Self::INTEGRATION_COLUMNS))
            .map_err(sql)?;
        let rows = stmt.query_map([], |row| self.integration_from_row(row)).map_err(sql)?;
        rows.collect::<Result<_, _>>().map_err(sql)
    }

    fn create_user(&self, user: &NewUser) -> Result<UserId, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        let id = insert_user(&tx, &user.profile, &None, 0, Utc::now()).map_err(sql)?;
        if let Some(m) = user.manager_id {
            tx.execute("UPDATE users SET manager_id = ?2 WHERE id = ?1", params![id.0, m.0]).map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        Ok(id)
    }

    fn user(&self, id: UserId) -> Result<User, StoreError> {
        self.conn()
            .query_row(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"), [id.0], user_from_row)
            .optional()
            .map_err(sql)?
            .ok_or(StoreError::NoUser(id))
    }

    fn users(&self, query: &UserQuery) -> Result<(Vec<User>, u64), StoreError> {
        let conn = self.conn();
        let pattern = query.search.as_ref().map(|s| format!("%{}%", like_escape(s)));
        let filter = "(?1 IS NULL OR (first_name || ' ' || last_name) LIKE ?1 ESCAPE '\\' OR email LIKE ?1 ESCAPE '\\' \
             OR department LIKE ?1 ESCAPE '\\' OR employee_id LIKE ?1 ESCAPE '\\') AND (?2 IS NULL OR integration_id = ?2)";
        let integration = query.integration.map(|i| i.0);
        let total: u64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM users WHERE {filter}"), params![pattern, integration], |r| {
                r.get(0)
            })
            .map_err(sql)?;
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE {filter} ORDER BY last_name, first_name, id LIMIT ?3 OFFSET ?4"
            ))
            .map_err(sql)?;
        let users = stmt
            .query_map(params![pattern, integration, query.limit.max(1), query.offset], user_from_row)
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        Ok((users, total))
    }

    fn users_for_sync(&self, integration: IntegrationId) -> Result<Vec<User>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE integration_id = ?1 OR integration_id IS NULL ORDER BY id"
            ))
            .map_err(sql)?;
        stmt.query_map([integration.0], user_from_row).map_err(sql)?.collect::<Result<_, _>>().map_err(sql)
    }

    fn index(&self) -> Result<Vec<IndexEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id, manager_id, email, first_name, last_name, preferred_name FROM users")
            .map_err(sql)?;
        stmt.query_map([], |r| {
            let (first, last, preferred): (String, String, Option<String>) = (r.get(3)?, r.get(4)?, r.get(5)?);
            Ok(IndexEntry {
                id: UserId(r.get(0)?),
                manager_id: r.get::<_, Option<i64>>(1)?.map(UserId),
                email: Email::parse(&r.get::<_, String>(2)?).map_err(text_error)?,
                name: display_name(&first, &last, preferred.as_deref()),
            })
        })
        .map_err(sql)?
        .collect::<Result<_, _>>()
        .map_err(sql)
    }

    fn owner(&self) -> &str {
        &self.owner
    }

    fn begin_run(&self, run: &NewRun) -> Result<RunId, StoreError> {
        let mut conn = self.conn();
        // IMMEDIATE: the check and the insert happen under the write lock, so
        // two processes cannot both see the integration free.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql)?;
        let exists: bool = tx
            .query_row("SELECT EXISTS (SELECT 1 FROM integrations WHERE id = ?1)", [run.integration_id.0], |r| r.get(0))
            .map_err(sql)?;
        if !exists {
            return Err(StoreError::NoIntegration(run.integration_id));
        }
        let now = Utc::now();
        let live: Option<(Run, Option<DateTime<Utc>>)> = tx
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE integration_id = ?1 AND state IN ('queued', 'running')"),
                [run.integration_id.0],
                |r| Ok((run_from_row(r)?, r.get(15)?)),
            )
            .optional()
            .map_err(sql)?;
        if let Some((holder, heartbeat)) = live {
            if !lease_expired(heartbeat, now) {
                return Err(StoreError::AlreadyRunning(Box::new(Holder {
                    run: holder.id,
                    integration: holder.integration_id,
                    kind: holder.kind,
                    trigger: holder.trigger,
                    actor: holder.actor,
                    owner: holder.owner.clone(),
                    started_at: holder.started_at,
                })));
            }
            tx.execute(
                "UPDATE runs SET state = 'interrupted', finished_at = ?2, error = ?3 WHERE id = ?1",
                params![holder.id.0, now, interrupted_message(holder.owner.as_deref())],
            )
            .map_err(sql)?;
        }
        tx.execute(
            "INSERT INTO runs (integration_id, kind, trigger, actor, state, preview_id, reverts_id, started_at, since, \
             owner, heartbeat_at) VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7, ?8, ?9, ?7)",
            params![
                run.integration_id.0,
                enum_text(&run.kind),
                enum_text(&run.trigger),
                run.actor,
                run.preview_id.map(|r| r.0),
                run.reverts_id.map(|r| r.0),
                now,
                run.since,
                self.owner,
            ],
        )
        .map_err(sql)?;
        let id = RunId(tx.last_insert_rowid());
        tx.commit().map_err(sql)?;
        Ok(id)
    }

    fn heartbeat(&self, run: RunId) -> Result<Lease, StoreError> {
        let row: Option<Option<String>> = self
            .conn()
            .query_row(
                "UPDATE runs SET heartbeat_at = ?3 WHERE id = ?1 AND owner = ?2 AND state = 'running' \
                 RETURNING CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE COALESCE(cancel_requested_by, '') END",
                params![run.0, self.owner, Utc::now()],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        Ok(match row {
            None => Lease::Lost,
            Some(None) => Lease::Held,
            Some(Some(by)) => Lease::CancelRequested { by: Some(by).filter(|b| !b.is_empty()) },
        })
    }

    fn request_cancel(&self, id: RunId, by: Option<&str>) -> Result<Run, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql)?;
        let (stored, heartbeat): (String, Option<DateTime<Utc>>) = tx
            .query_row("SELECT state, heartbeat_at FROM runs WHERE id = ?1", [id.0], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(sql)?
            .ok_or(StoreError::NoRun(id))?;
        let state: RunState = parse_enum(stored).map_err(sql)?;
        let now = Utc::now();
        if !state.is_live() {
            return Err(StoreError::NotRunning { run: id, state });
        }
        if lease_expired(heartbeat, now) {
            // Nobody is left to stop it: record it cancelled now.
            let who = by.map_or(String::new(), |b| format!(" by {b}"));
            tx.execute(
                "UPDATE runs SET state = 'cancelled', finished_at = ?2, cancel_requested_at = ?2, \
                 cancel_requested_by = ?3, error = ?4 WHERE id = ?1",
                params![id.0, now, by, format!("cancelled{who}; its process had already stopped; nothing was applied")],
            )
            .map_err(sql)?;
        } else {
            tx.execute(
                "UPDATE runs SET cancel_requested_at = ?2, cancel_requested_by = ?3 WHERE id = ?1",
                params![id.0, now, by],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        drop(conn);
        self.run(id)
    }

    fn finish_run(&self, id: RunId, outcome: &RunOutcome) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        write_history(&tx, id, outcome.changes.iter().map(|c| (c.user_id, c)), &outcome.issues).map_err(sql)?;
        self.end_run(
            &tx,
            id,
            outcome.state,
            &outcome.counts,
            outcome.error.as_deref(),
            outcome.fingerprint.as_deref(),
        )?;
        tx.commit().map_err(sql)
    }

    fn apply(&self, id: RunId, apply: &Apply, fingerprint: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        let now = Utc::now();
        // Emails may move between users within one run (A takes B's old
        // address): park changing addresses first so UNIQUE holds throughout.
        {
            let mut park = tx
                .prepare_cached("UPDATE users SET email = '~' || id || '@parked.invalid' WHERE id = ?1 AND email != ?2")
                .map_err(sql)?;
            for u in &apply.updates {
                if let Target::Existing(uid) = u.target {
                    park.execute(params![uid.0, u.profile.email.as_str()]).map_err(sql)?;
                }
            }
        }
        let mut ids: Vec<UserId> = Vec::with_capacity(apply.creates.len());
        for u in &apply.creates {
            ids.push(insert_user(&tx, &u.profile, &u.managed_by, u.missing_runs, now).map_err(sql)?);
        }
        let resolve = |t: Target| match t {
            Target::Existing(id) => id,
            Target::New(i) => ids[i],
        };
        {
            let mut update = tx
                .prepare_cached(
                    "UPDATE users SET email = ?1, first_name = ?2, last_name = ?3, preferred_name = ?4, gender = ?5, \
                     status = ?6, start_date = ?7, termination_date = ?8, job_title = ?9, employee_id = ?10, \
                     department = ?11, office = ?12, team = ?13, custom = ?14, profile_url = ?15, integration_id = ?16, \
                     source_id = ?17, missing_runs = ?18, updated_at = ?19 WHERE id = ?20",
                )
                .map_err(sql)?;
            for u in &apply.updates {
                let mut values: Vec<Box<dyn rusqlite::ToSql + '_>> = profile_params(&u.profile).into_iter().collect();
                values.push(Box::new(u.managed_by.as_ref().map(|m| m.0.0)));
                values.push(Box::new(u.managed_by.as_ref().map(|m| m.1.clone())));
                values.push(Box::new(u.missing_runs));
                values.push(Box::new(now));
                values.push(Box::new(resolve(u.target).0));
                update.execute(rusqlite::params_from_iter(values.iter().map(|b| b.as_ref()))).map_err(sql)?;
            }
            // Managers last: every user of the run exists now.
            let mut manager = tx.prepare_cached("UPDATE users SET manager_id = ?2 WHERE id = ?1").map_err(sql)?;
            for u in apply.creates.iter().chain(&apply.updates) {
                manager.execute(params![resolve(u.target).0, u.manager.map(|m| resolve(m).0)]).map_err(sql)?;
            }
        }
        // History rows are written straight from the plan: no second copy of
        // every change in memory.
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO run_changes (run_id, seq, user_id, source_id, name, kind, fields) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(sql)?;
            for (seq, c) in apply.changes.iter().enumerate() {
                let fields = c.fields.iter().map(|f| {
                    if f.field == MANAGER_FIELD {
                        FieldChange { after_id: c.manager_after.map(resolve), ..f.clone() }
                    } else {
                        f.clone()
                    }
                });
                let fields = json_text(&fields.collect::<Vec<_>>());
                insert
                    .execute(params![id.0, seq, resolve(c.target).0, c.source_id, c.name, c.kind.as_str(), fields])
                    .map_err(sql)?;
            }
        }
        write_history(&tx, id, std::iter::empty(), &apply.issues).map_err(sql)?;
        if let Some(invite) = &apply.invite {
            let invitees: Vec<UserId> = apply.invitees.iter().map(|t| resolve(*t)).collect();
            invite_tx(&tx, &invitees, invite, Some(id), true, now).map_err(sql)?;
        }
        // Last, and fenced: a run that lost its lease or was cancelled rolls
        // everything above back.
        self.end_run(&tx, id, RunState::Succeeded, &apply.counts, None, Some(fingerprint))?;
        tx.commit().map_err(sql)
    }

    fn schedule(&self, integration: IntegrationId) -> Result<Option<Schedule>, StoreError> {
        self.conn()
            .query_row(
                "SELECT integration_id, next_run_at, last_success_at, last_full_at, failures, alerted, last_error \
                 FROM schedules WHERE integration_id = ?1",
                [integration.0],
                |r| {
                    Ok(Schedule {
                        integration_id: IntegrationId(r.get(0)?),
                        next_run_at: r.get(1)?,
                        last_success_at: r.get(2)?,
                        last_full_at: r.get(3)?,
                        failures: r.get(4)?,
                        alerted: r.get(5)?,
                        last_error: r.get(6)?,
                    })
                },
            )
            .optional()
            .map_err(sql)
    }

    fn save_schedule(&self, s: &Schedule) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO schedules (integration_id, next_run_at, last_success_at, last_full_at, failures, alerted, last_error) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (integration_id) DO UPDATE SET \
                 next_run_at = ?2, last_success_at = ?3, last_full_at = ?4, failures = ?5, alerted = ?6, last_error = ?7",
                params![s.integration_id.0, s.next_run_at, s.last_success_at, s.last_full_at, s.failures, s.alerted, s.last_error],
            )
            .map_err(sql)?;
        Ok(())
    }

    fn starts_due(&self, integration: IntegrationId, today: NaiveDate) -> Result<u64, StoreError> {
        self.conn()
            .query_row(
                "SELECT COUNT(*) FROM users WHERE integration_id = ?1 AND status = 'pending-start' \
                 AND start_date IS NOT NULL AND start_date <= ?2",
                params![integration.0, today],
                |r| r.get(0),
            )
            .map_err(sql)
    }

    fn invite(&self, users: &[UserId], invite: &Invite, now: DateTime<Utc>) -> Result<Vec<UserId>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        let invited = invite_tx(&tx, users, invite, None, false, now).map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(invited)
    }

    fn enqueue_mail(&self, message: &Message, run: Option<RunId>, now: DateTime<Utc>) -> Result<i64, StoreError> {
        insert_mail(&self.conn(), message, None, run, now).map_err(sql)
    }

    fn claim_mail(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> Result<Vec<MailRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql)?;
        // Due: queued and its time has come, or claimed by a worker whose
        // lease ran out (it crashed before recording the outcome).
        let due: Vec<MailRecord> = tx
            .prepare(&format!(
                "SELECT {MAIL_COLUMNS} FROM outbox WHERE (state = 'queued' AND next_attempt_at <= ?1) \
                 OR (state = 'sending' AND lease_until <= ?1) ORDER BY id LIMIT ?2"
            ))
            .map_err(sql)?
            .query_map(params![now, limit], mail_from_row)
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        let mut claim =
            tx.prepare_cached("UPDATE outbox SET state = 'sending', lease_until = ?2 WHERE id = ?1").map_err(sql)?;
        for m in &due {
            claim.execute(params![m.id, now + lease]).map_err(sql)?;
        }
        drop(claim);
        tx.commit().map_err(sql)?;
        Ok(due)
    }

    fn mail_sent(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE outbox SET state = 'sent', sent_at = ?2, attempts = attempts + 1, lease_until = NULL, last_error = NULL WHERE id = ?1",
                params![id, at],
            )
            .map_err(sql)?;
        Ok(())
    }

    fn mail_failed(&self, id: i64, error: &str, retry_at: Option<DateTime<Utc>>) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE outbox SET state = CASE WHEN ?3 IS NULL THEN 'failed' ELSE 'queued' END, \
                 next_attempt_at = COALESCE(?3, next_attempt_at), attempts = attempts + 1, lease_until = NULL, \
                 last_error = ?2 WHERE id = ?1",
                params![id, error, retry_at],
            )
            .map_err(sql)?;
        Ok(())
    }

    fn mails(&self, offset: u64, limit: u64) -> Result<(Vec<MailRecord>, u64), StoreError> {
        let conn = self.conn();
        let total: u64 = conn.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0)).map_err(sql)?;
        let mails = conn
            .prepare(&format!("SELECT {MAIL_COLUMNS} FROM outbox ORDER BY id DESC LIMIT ?1 OFFSET ?2"))
            .map_err(sql)?
            .query_map(params![limit, offset], mail_from_row)
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        Ok((mails, total))
    }

    fn invitation_user(&self, token: &str, now: DateTime<Utc>) -> Result<Option<User>, StoreError> {
        let conn = self.conn();
        let user: Option<i64> = conn
            .query_row(
                "SELECT user_id FROM invitations WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
                params![crate::accounts::token_hash(token), now],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        drop(conn);
        user.map(|u| self.user(UserId(u))).transpose()
    }

    fn redeem_invitation(
        &self,
        token: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql)?;
        let found: Option<(i64, i64)> = tx
            .query_row(
                "SELECT id, user_id FROM invitations WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
                params![crate::accounts::token_hash(token), now],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql)?;
        let Some((invitation, user)) = found else { return Ok(None) };
        tx.execute("UPDATE invitations SET used_at = ?2 WHERE id = ?1", params![invitation, now]).map_err(sql)?;
        tx.execute("UPDATE users SET password_hash = ?2 WHERE id = ?1", params![user, password_hash]).map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(Some(UserId(user)))
    }

    fn run(&self, id: RunId) -> Result<Run, StoreError> {
        self.conn()
            .query_row(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"), [id.0], run_from_row)
            .optional()
            .map_err(sql)?
            .ok_or(StoreError::NoRun(id))
    }

    fn runs(&self, integration: Option<IntegrationId>, offset: u64, limit: u64) -> Result<Vec<Run>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE ?1 IS NULL OR integration_id = ?1 ORDER BY id DESC LIMIT ?2 OFFSET ?3"
            ))
            .map_err(sql)?;
        stmt.query_map(params![integration.map(|i| i.0), limit, offset], run_from_row)
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)
    }

    fn run_changes(&self, id: RunId, user: Option<UserId>) -> Result<Vec<ChangeRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT user_id, source_id, name, kind, fields FROM run_changes \
                 WHERE run_id = ?1 AND (?2 IS NULL OR user_id = ?2) ORDER BY seq",
            )
            .map_err(sql)?;
        stmt.query_map(params![id.0, user.map(|u| u.0)], change_from_row)
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)
    }

    fn run_changes_page(&self, id: RunId, filter: &ChangeFilter) -> Result<(Vec<ChangeRecord>, u64), StoreError> {
        let conn = self.conn();
        let pattern = filter.search.as_ref().map(|s| format!("%{}%", like_escape(s)));
        let kind = filter.kind.map(|k| k.as_str());
        let user = filter.user.map(|u| u.0);
        let condition = "run_id = ?1 AND (?2 IS NULL OR user_id = ?2) AND (?3 IS NULL OR kind = ?3) \
             AND (?4 IS NULL OR name LIKE ?4 ESCAPE '\\')";
        let total: u64 = conn
            .query_row(
                &format!("SELECT COUNT(*) FROM run_changes WHERE {condition}"),
                params![id.0, user, kind, pattern],
                |r| r.get(0),
            )
            .map_err(sql)?;
        let mut stmt = conn
            .prepare(&format!(
                "SELECT user_id, source_id, name, kind, fields FROM run_changes WHERE {condition} ORDER BY seq LIMIT ?5 OFFSET ?6"
            ))
            .map_err(sql)?;
        let page = stmt
            .query_map(params![id.0, user, kind, pattern, filter.limit.max(1), filter.offset], change_from_row)
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        Ok((page, total))
    }

    fn run_issues(&self, id: RunId) -> Result<Vec<IssueRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT source_id, name, field, severity, message FROM run_issues WHERE run_id = ?1 ORDER BY seq")
            .map_err(sql)?;
        stmt.query_map([id.0], |r| {
            Ok(IssueRecord {
                source_id: r.get(0)?,
                name: r.get(1)?,
                field: r.get(2)?,
                severity: r.get(3)?,
                message: r.get(4)?,
            })
        })
        .map_err(sql)?
        .collect::<Result<_, _>>()
        .map_err(sql)
    }

    fn user_history(&self, user: UserId) -> Result<Vec<(RunId, ChangeRecord)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT c.user_id, c.source_id, c.name, c.kind, c.fields, c.run_id FROM run_changes c \
                 JOIN runs r ON r.id = c.run_id WHERE c.user_id = ?1 AND r.kind != 'preview' ORDER BY c.run_id DESC",
            )
            .map_err(sql)?;
        stmt.query_map([user.0], |r| Ok((RunId(r.get(5)?), change_from_row(r)?)))
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)
    }

    fn run_stats(&self) -> Result<Vec<RunStat>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT kind, state, COUNT(*), \
                 COALESCE(SUM((julianday(finished_at) - julianday(started_at)) * 86400.0), 0.0), \
                 COALESCE(SUM(COALESCE(json_extract(counts, '$.created'), 0) + COALESCE(json_extract(counts, '$.updated'), 0) \
                   + COALESCE(json_extract(counts, '$.deactivated'), 0) + COALESCE(json_extract(counts, '$.reactivated'), 0) \
                   + COALESCE(json_extract(counts, '$.linked'), 0)), 0) \
                 FROM runs GROUP BY kind, state ORDER BY kind, state",
            )
            .map_err(sql)?;
        stmt.query_map([], |r| {
            Ok(RunStat {
                kind: parse_enum(r.get(0)?)?,
                state: parse_enum(r.get(1)?)?,
                runs: r.get(2)?,
                seconds: r.get(3)?,
                people_changed: r.get(4)?,
            })
        })
        .map_err(sql)?
        .collect::<Result<_, _>>()
        .map_err(sql)
    }
}

/// Escapes `\`, `%` and `_` for a LIKE pattern with `ESCAPE '\'`.
fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

fn write_history<'a>(
    tx: &Transaction<'_>,
    run: RunId,
    changes: impl Iterator<Item = (Option<UserId>, &'a ChangeRecord)>,
    issues: &[IssueRecord],
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO run_changes (run_id, seq, user_id, source_id, name, kind, fields) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (seq, (user, c)) in changes.enumerate() {
        insert.execute(params![
            run.0,
            seq,
            user.map(|u| u.0),
            c.source_id,
            c.name,
            c.kind.as_str(),
            json_text(&c.fields)
        ])?;
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO run_issues (run_id, seq, source_id, name, field, severity, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (seq, i) in issues.iter().enumerate() {
        insert.execute(params![run.0, seq, i.source_id, i.name, i.field, i.severity, i.message])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
        }
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
}
