//! Webhook subscriptions and stored deliveries. A delivery arrives at an
//! endpoint that names no tenant: [`HookStore::subscription_by_hook`] finds
//! the subscription whatever its tenant; everything else is scoped.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::{PgStore, sql};
use crate::directory::hooks::{EventEnd, HookSubscription, NewEvent, PendingEvent, Waiting};
use crate::directory::*;

const SUBSCRIPTION_COLUMNS: &str =
    "s.integration_id, s.hook, s.token_hash, s.source_id, s.description, s.created_at, s.last_delivery_at";

fn subscription_from_row(r: &Row) -> HookSubscription {
    HookSubscription {
        integration: IntegrationId(r.get(0)),
        hook: r.get(1),
        token_hash: r.get(2),
        source_id: r.get(3),
        description: r.get(4),
        created_at: r.get(5),
        last_delivery_at: r.get(6),
    }
}

impl PgStore {
    /// The tenant whose subscription has the endpoint `hook`, if any: a
    /// delivery names no tenant.
    pub fn tenant_of_hook(&self, hook: &str) -> Result<Option<TenantId>, StoreError> {
        let row = self.block(async {
            self.client()
                .await?
                .query_opt(
                    "SELECT i.tenant_id FROM subscriptions s JOIN integrations i ON i.id = s.integration_id \
                     WHERE s.hook = $1",
                    &[&hook],
                )
                .await
                .map_err(sql)
        })?;
        Ok(row.map(|r| TenantId(r.get(0))))
    }

    /// The enabled tenants with deliveries waiting that nobody holds.
    pub fn tenants_with_pending_events(&self) -> Result<Vec<TenantId>, StoreError> {
        let rows = self.block(async {
            self.client()
                .await?
                .query(
                    "SELECT DISTINCT i.tenant_id FROM events e JOIN integrations i ON i.id = e.integration_id \
                     JOIN tenants t ON t.id = i.tenant_id WHERE e.state = 'pending' AND t.disabled_at IS NULL \
                     AND (e.claimed_until IS NULL OR e.claimed_until <= now()) ORDER BY 1",
                    &[],
                )
                .await
                .map_err(sql)
        })?;
        Ok(rows.iter().map(|r| TenantId(r.get(0))).collect())
    }
}

impl HookStore for PgStore {
    fn subscription(&self, integration: IntegrationId) -> Result<Option<HookSubscription>, StoreError> {
        let row = self.block(async {
            self.client()
                .await?
                .query_opt(
                    &format!(
                        "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s JOIN integrations i ON i.id = s.integration_id \
                         WHERE s.integration_id = $1 AND i.tenant_id = $2"
                    ),
                    &[&integration.0, &self.tenant.0],
                )
                .await
                .map_err(sql)
        })?;
        Ok(row.as_ref().map(subscription_from_row))
    }

    fn subscription_by_hook(&self, hook: &str) -> Result<Option<HookSubscription>, StoreError> {
        let row = self.block(async {
            self.client()
                .await?
                .query_opt(&format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE s.hook = $1"), &[&hook])
                .await
                .map_err(sql)
        })?;
        Ok(row.as_ref().map(subscription_from_row))
    }

    fn save_subscription(&self, s: &HookSubscription) -> Result<(), StoreError> {
        let n = self.block(async {
            self.client()
                .await?
                .execute(
                    "INSERT INTO subscriptions (integration_id, hook, token_hash, source_id, description, created_at) \
                     SELECT id, $2, $3, $4, $5, $6 FROM integrations WHERE id = $1 AND tenant_id = $7 \
                     ON CONFLICT (integration_id) DO UPDATE SET hook = $2, token_hash = $3, source_id = $4, \
                     description = $5, created_at = $6, last_delivery_at = NULL",
                    &[
                        &s.integration.0,
                        &s.hook,
                        &s.token_hash,
                        &s.source_id,
                        &s.description,
                        &s.created_at,
                        &self.tenant.0,
                    ],
                )
                .await
                .map_err(sql)
        })?;
        if n == 0 { Err(StoreError::NoIntegration(s.integration)) } else { Ok(()) }
    }

    fn remove_subscription(&self, integration: IntegrationId) -> Result<bool, StoreError> {
        let n = self.block(async {
            self.client()
                .await?
                .execute(
                    "DELETE FROM subscriptions s USING integrations i \
                     WHERE s.integration_id = $1 AND i.id = s.integration_id AND i.tenant_id = $2",
                    &[&integration.0, &self.tenant.0],
                )
                .await
                .map_err(sql)
        })?;
        Ok(n > 0)
    }

    fn receive_event(&self, event: &NewEvent) -> Result<i64, StoreError> {
        let headers = serde_json::to_string(&event.headers).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(sql)?;
            let row = tx
                .query_opt(
                    "INSERT INTO events (integration_id, received_at, headers, body) \
                     SELECT id, $2, $3, $4 FROM integrations WHERE id = $1 AND tenant_id = $5 RETURNING id",
                    &[&event.integration.0, &event.received_at, &headers, &event.body, &self.tenant.0],
                )
                .await
                .map_err(sql)?
                .ok_or(StoreError::NoIntegration(event.integration))?;
            tx.execute(
                "UPDATE subscriptions SET last_delivery_at = $2 WHERE integration_id = $1",
                &[&event.integration.0, &event.received_at],
            )
            .await
            .map_err(sql)?;
            tx.commit().await.map_err(sql)?;
            Ok(row.get(0))
        })
    }

    fn claim_events(
        &self,
        integration: IntegrationId,
        limit: u64,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<PendingEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.block(async {
            // Rows another replica is claiming are skipped, not waited for.
            self.client()
                .await?
                .query(
                    "UPDATE events SET claimed_until = $5 WHERE id IN (SELECT e.id FROM events e \
                     JOIN integrations i ON i.id = e.integration_id WHERE e.integration_id = $1 AND i.tenant_id = $2 \
                     AND e.state = 'pending' AND (e.claimed_until IS NULL OR e.claimed_until <= $4) \
                     ORDER BY e.id LIMIT $3 FOR UPDATE OF e SKIP LOCKED) RETURNING id, received_at, headers, body",
                    &[&integration.0, &self.tenant.0, &limit, &now, &until],
                )
                .await
                .map_err(sql)
        })?;
        let mut claimed: Vec<PendingEvent> = rows
            .iter()
            .map(|r| PendingEvent {
                id: r.get(0),
                event: NewEvent {
                    integration,
                    received_at: r.get(1),
                    headers: serde_json::from_str(r.get(2)).unwrap_or_default(),
                    body: r.get(3),
                },
            })
            .collect();
        claimed.sort_by_key(|p| p.id);
        Ok(claimed)
    }

    fn release_events(&self, ids: &[i64]) -> Result<(), StoreError> {
        self.block(async {
            self.client()
                .await?
                .execute(
                    "UPDATE events e SET claimed_until = NULL FROM integrations i \
                     WHERE e.id = ANY($1) AND e.state = 'pending' AND i.id = e.integration_id AND i.tenant_id = $2",
                    &[&ids, &self.tenant.0],
                )
                .await
                .map_err(sql)?;
            Ok(())
        })
    }

    fn pending_integrations(&self, now: DateTime<Utc>) -> Result<Vec<Waiting>, StoreError> {
        let rows = self.block(async {
            self.client()
                .await?
                .query(
                    "SELECT e.integration_id, MIN(e.received_at), MAX(e.received_at) FROM events e \
                     JOIN integrations i ON i.id = e.integration_id WHERE e.state = 'pending' AND i.tenant_id = $1 \
                     AND (e.claimed_until IS NULL OR e.claimed_until <= $2) \
                     GROUP BY e.integration_id ORDER BY MIN(e.received_at)",
                    &[&self.tenant.0, &now],
                )
                .await
                .map_err(sql)
        })?;
        Ok(rows
            .iter()
            .map(|r| Waiting { integration: IntegrationId(r.get(0)), oldest: r.get(1), newest: r.get(2) })
            .collect())
    }

    fn finish_events(&self, ends: &[EventEnd], now: DateTime<Utc>) -> Result<(), StoreError> {
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(sql)?;
            let update = tx
                .prepare(
                    "UPDATE events e SET state = $2, outcome = $3, run_id = $4, processed_at = $5 FROM integrations i \
                     WHERE e.id = $1 AND i.id = e.integration_id AND i.tenant_id = $6",
                )
                .await
                .map_err(sql)?;
            for end in ends {
                let run = end.run.map(|r| r.0);
                tx.execute(&update, &[&end.id, &end.state.as_str(), &end.outcome, &run, &now, &self.tenant.0])
                    .await
                    .map_err(sql)?;
            }
            tx.commit().await.map_err(sql)
        })
    }
}
