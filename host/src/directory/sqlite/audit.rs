//! The audit log in SQLite, on its own connection to the hrsync database;
//! triggers (migration 0005) refuse changes and removals.

use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use crate::audit::{Action, AuditStore, Entry, Event, Query};

/// The [`AuditStore`] of a SQLite install.
pub struct SqliteAudit {
    conn: Mutex<Connection>,
}

impl SqliteAudit {
    /// Opens the database at `db`; the directory store has migrated it.
    pub fn open(db: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open(db).with_context(|| format!("opening {}", db.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        Ok(SqliteAudit { conn: Mutex::new(conn) })
    }
}

impl AuditStore for SqliteAudit {
    fn append(&self, at: DateTime<Utc>, event: &Event) -> anyhow::Result<()> {
        self.conn.lock().expect("audit connection").execute(
            "INSERT INTO audit (at, actor, address, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![at, event.actor, event.address, event.action.as_str(), event.target, event.detail],
        )?;
        Ok(())
    }

    fn entries(&self, q: &Query) -> anyhow::Result<(Vec<Entry>, u64)> {
        let conn = self.conn.lock().expect("audit connection");
        let filter = "(?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action = ?2) AND (?3 IS NULL OR at >= ?3) \
                      AND (?4 IS NULL OR at < ?4)";
        let action = q.action.map(Action::as_str);
        let total: u64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM audit WHERE {filter}"),
            params![q.actor, action, q.since, q.until],
            |r| r.get(0),
        )?;
        let mut stmt = conn.prepare(&format!(
            "SELECT id, at, actor, address, action, target, detail FROM audit WHERE {filter} \
             ORDER BY id DESC LIMIT ?5 OFFSET ?6"
        ))?;
        let entries = stmt
            .query_map(params![q.actor, action, q.since, q.until, q.limit.max(1), q.offset], |r| {
                Ok(Entry {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    address: r.get(3)?,
                    action: r.get(4)?,
                    target: r.get(5)?,
                    detail: r.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok((entries, total))
    }
}
