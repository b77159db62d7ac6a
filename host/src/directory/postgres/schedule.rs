//! The scheduler's state per integration.

use chrono::{DateTime, NaiveDate, Utc};

use super::{PgStore, count, sql, unsigned};
use crate::directory::*;

/// An integration whose scheduler has something to do: automatic imports
/// on, in an enabled tenant, and never scheduled, due, or scheduled further
/// out than its interval allows (the interval was shortened).
const NEEDS_SCHEDULER: &str = "i.auto_import AND t.disabled_at IS NULL AND (s.integration_id IS NULL \
     OR s.next_run_at <= $1 OR (NOT s.claimed AND s.next_run_at > $1 + make_interval(mins => i.interval_minutes * 11 / 10)))";

impl PgStore {
    /// The tenants with an integration whose scheduler has something to do
    /// at `now`, across the whole database: one query, whatever the number
    /// of tenants.
    pub fn tenants_with_due_runs(&self, now: DateTime<Utc>) -> Result<Vec<TenantId>, StoreError> {
        self.block(async {
            let rows = self
                .client()
                .await?
                .query(
                    &format!(
                        "SELECT DISTINCT i.tenant_id FROM integrations i JOIN tenants t ON t.id = i.tenant_id \
                         LEFT JOIN schedules s ON s.integration_id = i.id WHERE {NEEDS_SCHEDULER} ORDER BY 1"
                    ),
                    &[&now],
                )
                .await
                .map_err(sql)?;
            Ok(rows.iter().map(|r| TenantId(r.get(0))).collect())
        })
    }

    /// When the next automatic run of any enabled tenant is due.
    pub fn next_scheduled_run(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.block(async {
            let row = self
                .client()
                .await?
                .query_one(
                    "SELECT MIN(COALESCE(s.next_run_at, now())) FROM integrations i \
                     JOIN tenants t ON t.id = i.tenant_id LEFT JOIN schedules s ON s.integration_id = i.id \
                     WHERE i.auto_import AND t.disabled_at IS NULL",
                    &[],
                )
                .await
                .map_err(sql)?;
            Ok(row.get(0))
        })
    }
}

impl ScheduleStore for PgStore {
    fn schedule(&self, integration: IntegrationId) -> Result<Option<Schedule>, StoreError> {
        let row = self.block(async {
            self.client()
                .await?
                .query_opt(
                    "SELECT s.integration_id, s.next_run_at, s.last_success_at, s.last_full_at, s.failures, s.alerted, \
                     s.last_error FROM schedules s JOIN integrations i ON i.id = s.integration_id \
                     WHERE s.integration_id = $1 AND i.tenant_id = $2",
                    &[&integration.0, &self.tenant.0],
                )
                .await
                .map_err(sql)
        })?;
        Ok(row.map(|r| Schedule {
            integration_id: IntegrationId(r.get("integration_id")),
            next_run_at: r.get("next_run_at"),
            last_success_at: r.get("last_success_at"),
            last_full_at: r.get("last_full_at"),
            failures: count(r.get("failures")),
            alerted: r.get("alerted"),
            last_error: r.get("last_error"),
        }))
    }

    fn save_schedule(&self, s: &Schedule) -> Result<(), StoreError> {
        let n = self.block(async {
            self.client()
                .await?
                .execute(
                    "INSERT INTO schedules (integration_id, next_run_at, last_success_at, last_full_at, failures, alerted, \
                     last_error) SELECT id, $2, $3, $4, $5, $6, $7 FROM integrations WHERE id = $1 AND tenant_id = $8 \
                     ON CONFLICT (integration_id) DO UPDATE SET next_run_at = $2, last_success_at = $3, \
                     last_full_at = $4, failures = $5, alerted = $6, last_error = $7, claimed = false",
                    &[
                        &s.integration_id.0,
                        &s.next_run_at,
                        &s.last_success_at,
                        &s.last_full_at,
                        &unsigned(s.failures),
                        &s.alerted,
                        &s.last_error,
                        &self.tenant.0,
                    ],
                )
                .await
                .map_err(sql)
        })?;
        if n == 0 { Err(StoreError::NoIntegration(s.integration_id)) } else { Ok(()) }
    }

    fn claim_schedule(
        &self,
        integration: IntegrationId,
        seen: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self.block(async {
            self.client()
                .await?
                .execute(
                    "UPDATE schedules s SET next_run_at = $3, claimed = true FROM integrations i WHERE i.id = s.integration_id \
                     AND s.integration_id = $1 AND s.next_run_at = $2 AND i.tenant_id = $4",
                    &[&integration.0, &seen, &until, &self.tenant.0],
                )
                .await
                .map_err(sql)
        })?;
        Ok(n == 1)
    }

    fn shorten_schedule(
        &self,
        integration: IntegrationId,
        seen: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self.block(async {
            self.client()
                .await?
                .execute(
                    "UPDATE schedules s SET next_run_at = $3 FROM integrations i WHERE i.id = s.integration_id \
                     AND s.integration_id = $1 AND s.next_run_at = $2 AND NOT s.claimed AND i.tenant_id = $4",
                    &[&integration.0, &seen, &to, &self.tenant.0],
                )
                .await
                .map_err(sql)
        })?;
        Ok(n == 1)
    }

    fn starts_due(&self, integration: IntegrationId, today: NaiveDate) -> Result<u64, StoreError> {
        self.block(async {
            let row = self
                .client()
                .await?
                .query_one(
                    "SELECT COUNT(*) FROM users WHERE integration_id = $1 AND tenant_id = $2 \
                     AND status = 'pending-start' AND start_date IS NOT NULL AND start_date <= $3",
                    &[&integration.0, &self.tenant.0, &today],
                )
                .await
                .map_err(sql)?;
            Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
        })
    }
}
