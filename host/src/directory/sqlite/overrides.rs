//! Overrides, and what runs kept because of them.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::people::USER_COLUMNS;
use super::people::user_from_row;
use super::{SqliteStore, conversion, sql, text_error};
use crate::directory::overrides::keepable;
use crate::directory::*;

const OVERRIDE_COLUMNS: &str =
    "user_id, field, value, kept_by, until, created_at, source_value, source_differs, source_seen_at";

fn date(text: Option<String>) -> rusqlite::Result<Option<NaiveDate>> {
    text.map(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(conversion)).transpose()
}

fn override_from_row(row: &Row<'_>) -> rusqlite::Result<Override> {
    let seen: Option<DateTime<Utc>> = row.get("source_seen_at")?;
    Ok(Override {
        user_id: UserId(row.get("user_id")?),
        field: Field::parse(&row.get::<_, String>("field")?).map_err(text_error)?,
        value: row.get("value")?,
        kept_by: row.get("kept_by")?,
        until: date(row.get("until")?)?,
        created_at: row.get("created_at")?,
        source: match seen {
            Some(seen_at) => {
                Some(SourceSays { value: row.get("source_value")?, differs: row.get("source_differs")?, seen_at })
            }
            None => None,
        },
    })
}

/// Sets overrides inside a run's transaction ("revert and keep").
pub(super) fn set_overrides(tx: &Transaction<'_>, keep: &[NewOverride], now: DateTime<Utc>) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT OR REPLACE INTO overrides (user_id, field, value, kept_by, until, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for k in keep {
        insert.execute(params![
            k.user_id.0,
            k.field.name(),
            k.value,
            k.kept_by,
            k.until.map(|d| d.to_string()),
            now
        ])?;
    }
    Ok(())
}

/// Records what a run's overrides kept: the source's value on each
/// override it saw (the drift), and the differing ones under the run.
pub(super) fn record_kept(
    tx: &Transaction<'_>,
    run: RunId,
    kept: &[KeptValue],
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let mut seen = tx.prepare_cached(
        "UPDATE overrides SET source_value = ?3, source_differs = ?4, source_seen_at = ?5 WHERE user_id = ?1 AND field = ?2",
    )?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO run_kept (run_id, seq, user_id, name, field, source_value, kept_value, kept_by, until) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for k in kept {
        seen.execute(params![k.user_id.0, k.field.name(), k.source, k.differs, now])?;
    }
    for (seq, k) in kept.iter().filter(|k| k.differs).enumerate() {
        insert.execute(params![
            run.0,
            seq,
            k.user_id.0,
            k.name,
            k.field.name(),
            k.source,
            k.kept,
            k.kept_by,
            k.until.map(|d| d.to_string())
        ])?;
    }
    Ok(())
}

impl OverrideStore for SqliteStore {
    fn keep(
        &self,
        user: UserId,
        field: &Field,
        by: Option<&str>,
        until: Option<NaiveDate>,
    ) -> Result<Override, StoreError> {
        keepable(field).map_err(StoreError::Invalid)?;
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        let current = tx
            .query_row(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"), [user.0], user_from_row)
            .optional()
            .map_err(sql)?
            .ok_or(StoreError::NoUser(user))?;
        let value = match field {
            Field::Manager => current.manager_id.map(|m| m.0.to_string()),
            other => current.profile.field(other),
        };
        let keep = NewOverride { user_id: user, field: field.clone(), value, kept_by: by.map(Into::into), until };
        set_overrides(&tx, std::slice::from_ref(&keep), Utc::now()).map_err(sql)?;
        let kept = tx
            .query_row(
                &format!("SELECT {OVERRIDE_COLUMNS} FROM overrides WHERE user_id = ?1 AND field = ?2"),
                params![user.0, field.name()],
                override_from_row,
            )
            .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(kept)
    }

    fn unkeep(&self, user: UserId, field: &Field) -> Result<bool, StoreError> {
        let removed = self
            .conn()
            .execute("DELETE FROM overrides WHERE user_id = ?1 AND field = ?2", params![user.0, field.name()])
            .map_err(sql)?;
        Ok(removed > 0)
    }

    fn overrides(&self, user: Option<UserId>) -> Result<Vec<Override>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {OVERRIDE_COLUMNS} FROM overrides WHERE ?1 IS NULL OR user_id = ?1 ORDER BY user_id, field"
            ))
            .map_err(sql)?;
        stmt.query_map([user.map(|u| u.0)], override_from_row).map_err(sql)?.collect::<Result<_, _>>().map_err(sql)
    }

    fn run_kept(&self, run: RunId) -> Result<Vec<KeptValue>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT user_id, name, field, source_value, kept_value, kept_by, until FROM run_kept \
                 WHERE run_id = ?1 ORDER BY seq",
            )
            .map_err(sql)?;
        stmt.query_map([run.0], |row| {
            Ok(KeptValue {
                user_id: UserId(row.get::<_, Option<i64>>("user_id")?.unwrap_or_default()),
                name: row.get("name")?,
                field: Field::parse(&row.get::<_, String>("field")?).map_err(text_error)?,
                source: row.get("source_value")?,
                kept: row.get("kept_value")?,
                differs: true,
                kept_by: row.get("kept_by")?,
                until: date(row.get("until")?)?,
            })
        })
        .map_err(sql)?
        .collect::<Result<_, _>>()
        .map_err(sql)
    }
}
