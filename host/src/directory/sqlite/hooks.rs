//! Webhook subscriptions and stored deliveries.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, sql};
use crate::directory::hooks::{EventEnd, HookSubscription, NewEvent, PendingEvent, Waiting};
use crate::directory::*;

const SUBSCRIPTION_COLUMNS: &str =
    "integration_id, hook, token_hash, source_id, description, created_at, last_delivery_at";

fn subscription_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HookSubscription> {
    Ok(HookSubscription {
        integration: IntegrationId(r.get(0)?),
        hook: r.get(1)?,
        token_hash: r.get(2)?,
        source_id: r.get(3)?,
        description: r.get(4)?,
        created_at: r.get(5)?,
        last_delivery_at: r.get(6)?,
    })
}

impl HookStore for SqliteStore {
    fn subscription(&self, integration: IntegrationId) -> Result<Option<HookSubscription>, StoreError> {
        self.conn()
            .query_row(
                &format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE integration_id = ?1"),
                [integration.0],
                subscription_from_row,
            )
            .optional()
            .map_err(sql)
    }

    fn subscription_by_hook(&self, hook: &str) -> Result<Option<HookSubscription>, StoreError> {
        self.conn()
            .query_row(
                &format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE hook = ?1"),
                [hook],
                subscription_from_row,
            )
            .optional()
            .map_err(sql)
    }

    fn save_subscription(&self, s: &HookSubscription) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO subscriptions (integration_id, hook, token_hash, source_id, description, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![s.integration.0, s.hook, s.token_hash, s.source_id, s.description, s.created_at],
            )
            .map_err(sql)?;
        Ok(())
    }

    fn remove_subscription(&self, integration: IntegrationId) -> Result<bool, StoreError> {
        let n =
            self.conn().execute("DELETE FROM subscriptions WHERE integration_id = ?1", [integration.0]).map_err(sql)?;
        Ok(n > 0)
    }

    fn receive_event(&self, event: &NewEvent) -> Result<i64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        let headers = serde_json::to_string(&event.headers).map_err(|e| StoreError::Invalid(e.to_string()))?;
        tx.execute(
            "INSERT INTO events (integration_id, received_at, headers, body) VALUES (?1, ?2, ?3, ?4)",
            params![event.integration.0, event.received_at, headers, event.body],
        )
        .map_err(sql)?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "UPDATE subscriptions SET last_delivery_at = ?2 WHERE integration_id = ?1",
            params![event.integration.0, event.received_at],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(id)
    }

    fn claim_events(
        &self,
        integration: IntegrationId,
        limit: u64,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<PendingEvent>, StoreError> {
        // One statement: another process's claim cannot come in between.
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "UPDATE events SET claimed_until = ?4 WHERE id IN (SELECT id FROM events \
                 WHERE integration_id = ?1 AND state = 'pending' AND (claimed_until IS NULL OR claimed_until <= ?3) \
                 ORDER BY id LIMIT ?2) RETURNING id, received_at, headers, body",
            )
            .map_err(sql)?;
        let mut claimed: Vec<PendingEvent> = stmt
            .query_map(params![integration.0, limit, now, until], |r| {
                let headers: String = r.get(2)?;
                Ok(PendingEvent {
                    id: r.get(0)?,
                    event: NewEvent {
                        integration,
                        received_at: r.get(1)?,
                        headers: serde_json::from_str(&headers).unwrap_or_default(),
                        body: r.get(3)?,
                    },
                })
            })
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        claimed.sort_by_key(|p| p.id);
        Ok(claimed)
    }

    fn release_events(&self, ids: &[i64]) -> Result<(), StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("UPDATE events SET claimed_until = NULL WHERE id = ?1 AND state = 'pending'")
            .map_err(sql)?;
        for id in ids {
            stmt.execute([id]).map_err(sql)?;
        }
        Ok(())
    }

    fn pending_integrations(&self, now: DateTime<Utc>) -> Result<Vec<Waiting>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT integration_id, MIN(received_at), MAX(received_at) FROM events WHERE state = 'pending' \
                 AND (claimed_until IS NULL OR claimed_until <= ?1) GROUP BY integration_id ORDER BY MIN(received_at)",
            )
            .map_err(sql)?;
        stmt.query_map([now], |r| {
            Ok(Waiting { integration: IntegrationId(r.get(0)?), oldest: r.get(1)?, newest: r.get(2)? })
        })
        .map_err(sql)?
        .collect::<Result<_, _>>()
        .map_err(sql)
    }

    fn finish_events(&self, ends: &[EventEnd], now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE events SET state = ?2, outcome = ?3, run_id = ?4, processed_at = ?5 WHERE id = ?1",
                )
                .map_err(sql)?;
            for end in ends {
                stmt.execute(params![end.id, end.state.as_str(), end.outcome, end.run.map(|r| r.0), now])
                    .map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)?;
        Ok(())
    }
}
