//! The scheduler's state per integration.

use chrono::NaiveDate;

use super::{PgStore, count, sql, unsigned};
use crate::directory::*;

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
                     last_full_at = $4, failures = $5, alerted = $6, last_error = $7",
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
