//! Overrides of one tenant's users, and what runs kept because of them.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::people::{USER_COLUMNS, user_from_row};
use super::{PgStore, sql};
use crate::directory::overrides::keepable;
use crate::directory::*;

const OVERRIDE_COLUMNS: &str =
    "o.user_id, o.field, o.value, o.kept_by, o.until, o.created_at, o.source_value, o.source_differs, o.source_seen_at";

fn field(row: &Row, column: &str) -> Result<Field, StoreError> {
    Field::parse(row.get(column)).map_err(|e| StoreError::Other(anyhow::anyhow!("a stored override's field: {e}")))
}

fn override_from_row(row: &Row) -> Result<Override, StoreError> {
    let seen: Option<DateTime<Utc>> = row.get("source_seen_at");
    Ok(Override {
        user_id: UserId(row.get("user_id")),
        field: field(row, "field")?,
        value: row.get("value"),
        kept_by: row.get("kept_by"),
        until: row.get("until"),
        created_at: row.get("created_at"),
        source: seen.map(|seen_at| SourceSays {
            value: row.get("source_value"),
            differs: row.get("source_differs"),
            seen_at,
        }),
    })
}

/// Sets overrides (of users the caller checked are the tenant's), e.g.
/// inside a run's transaction ("revert and keep").
pub(super) async fn set_overrides(
    tx: &impl GenericClient,
    keep: &[NewOverride],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let insert = tx
        .prepare(
            "INSERT INTO overrides (user_id, field, value, kept_by, until, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (user_id, field) DO UPDATE SET value = $3, kept_by = $4, until = $5, created_at = $6, \
             source_value = NULL, source_differs = false, source_seen_at = NULL",
        )
        .await
        .map_err(sql)?;
    for k in keep {
        tx.execute(&insert, &[&k.user_id.0, &k.field.name(), &k.value, &k.kept_by, &k.until, &now])
            .await
            .map_err(sql)?;
    }
    Ok(())
}

/// Records what a run's overrides kept: the source's value on each
/// override it saw (the drift), and the differing ones under the run.
pub(super) async fn record_kept(
    tx: &impl GenericClient,
    run: RunId,
    kept: &[KeptValue],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let seen = tx
        .prepare(
            "UPDATE overrides SET source_value = $3, source_differs = $4, source_seen_at = $5 \
             WHERE user_id = $1 AND field = $2",
        )
        .await
        .map_err(sql)?;
    let insert = tx
        .prepare(
            "INSERT INTO run_kept (run_id, seq, user_id, name, field, source_value, kept_value, kept_by, until) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .await
        .map_err(sql)?;
    for k in kept {
        tx.execute(&seen, &[&k.user_id.0, &k.field.name(), &k.source, &k.differs, &now]).await.map_err(sql)?;
    }
    for (seq, k) in kept.iter().filter(|k| k.differs).enumerate() {
        let seq = i32::try_from(seq).unwrap_or(i32::MAX);
        tx.execute(
            &insert,
            &[&run.0, &seq, &k.user_id.0, &k.name, &k.field.name(), &k.source, &k.kept, &k.kept_by, &k.until],
        )
        .await
        .map_err(sql)?;
    }
    Ok(())
}

impl OverrideStore for PgStore {
    fn keep(
        &self,
        user: UserId,
        field: &Field,
        by: Option<&str>,
        until: Option<chrono::NaiveDate>,
    ) -> Result<Override, StoreError> {
        keepable(field).map_err(StoreError::Invalid)?;
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(sql)?;
            let row = tx
                .query_opt(
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND tenant_id = $2 FOR UPDATE"),
                    &[&user.0, &self.tenant.0],
                )
                .await
                .map_err(sql)?
                .ok_or(StoreError::NoUser(user))?;
            let current = user_from_row(&row)?;
            let value = match field {
                Field::Manager => current.manager_id.map(|m| m.0.to_string()),
                other => current.profile.field(other),
            };
            let keep = NewOverride { user_id: user, field: field.clone(), value, kept_by: by.map(Into::into), until };
            set_overrides(&tx, std::slice::from_ref(&keep), Utc::now()).await?;
            let row = tx
                .query_one(
                    &format!("SELECT {OVERRIDE_COLUMNS} FROM overrides o WHERE o.user_id = $1 AND o.field = $2"),
                    &[&user.0, &field.name()],
                )
                .await
                .map_err(sql)?;
            let kept = override_from_row(&row)?;
            tx.commit().await.map_err(sql)?;
            Ok(kept)
        })
    }

    fn unkeep(&self, user: UserId, field: &Field) -> Result<bool, StoreError> {
        let removed = self.block(async {
            self.client()
                .await?
                .execute(
                    "DELETE FROM overrides o USING users u WHERE o.user_id = $1 AND o.field = $2 \
                     AND u.id = o.user_id AND u.tenant_id = $3",
                    &[&user.0, &field.name(), &self.tenant.0],
                )
                .await
                .map_err(sql)
        })?;
        Ok(removed > 0)
    }

    fn overrides(&self, user: Option<UserId>) -> Result<Vec<Override>, StoreError> {
        let user = user.map(|u| u.0);
        let rows = self.block(async {
            self.client()
                .await?
                .query(
                    &format!(
                        "SELECT {OVERRIDE_COLUMNS} FROM overrides o JOIN users u ON u.id = o.user_id \
                         WHERE u.tenant_id = $2 AND ($1::bigint IS NULL OR o.user_id = $1) ORDER BY o.user_id, o.field"
                    ),
                    &[&user, &self.tenant.0],
                )
                .await
                .map_err(sql)
        })?;
        rows.iter().map(override_from_row).collect()
    }

    fn run_kept(&self, run: RunId) -> Result<Vec<KeptValue>, StoreError> {
        let rows = self.block(async {
            self.client()
                .await?
                .query(
                    "SELECT k.user_id, k.name, k.field, k.source_value, k.kept_value, k.kept_by, k.until FROM run_kept k \
                     JOIN runs r ON r.id = k.run_id WHERE k.run_id = $1 AND r.tenant_id = $2 ORDER BY k.seq",
                    &[&run.0, &self.tenant.0],
                )
                .await
                .map_err(sql)
        })?;
        rows.iter()
            .map(|row| {
                Ok(KeptValue {
                    user_id: UserId(row.get::<_, Option<i64>>("user_id").unwrap_or_default()),
                    name: row.get("name"),
                    field: field(row, "field")?,
                    source: row.get("source_value"),
                    kept: row.get("kept_value"),
                    differs: true,
                    kept_by: row.get("kept_by"),
                    until: row.get("until"),
                })
            })
            .collect()
    }
}
