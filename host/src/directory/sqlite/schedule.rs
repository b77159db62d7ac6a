//! The scheduler's state per integration.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, sql};
use crate::directory::*;

impl ScheduleStore for SqliteStore {
    fn schedule(&self, integration: IntegrationId) -> Result<Option<Schedule>, StoreError> {
        self.conn()
            .query_row(
                "SELECT integration_id, next_run_at, last_success_at, last_full_at, failures, alerted, last_error \
                 FROM schedules WHERE integration_id = ?1",
                [integration.0],
                |r| {
                    Ok(Schedule {
                        integration_id: IntegrationId(r.get("integration_id")?),
                        next_run_at: r.get("next_run_at")?,
                        last_success_at: r.get("last_success_at")?,
                        last_full_at: r.get("last_full_at")?,
                        failures: r.get("failures")?,
                        alerted: r.get("alerted")?,
                        last_error: r.get("last_error")?,
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
                 next_run_at = ?2, last_success_at = ?3, last_full_at = ?4, failures = ?5, alerted = ?6, last_error = ?7, \
                 claimed = 0",
                params![s.integration_id.0, s.next_run_at, s.last_success_at, s.last_full_at, s.failures, s.alerted, s.last_error],
            )
            .map_err(sql)?;
        Ok(())
    }

    fn claim_schedule(
        &self,
        integration: IntegrationId,
        seen: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute(
                "UPDATE schedules SET next_run_at = ?3, claimed = 1 WHERE integration_id = ?1 AND next_run_at = ?2",
                params![integration.0, seen, until],
            )
            .map_err(sql)?;
        Ok(n == 1)
    }

    fn shorten_schedule(
        &self,
        integration: IntegrationId,
        seen: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute(
                "UPDATE schedules SET next_run_at = ?3 WHERE integration_id = ?1 AND next_run_at = ?2 AND claimed = 0",
                params![integration.0, seen, to],
            )
            .map_err(sql)?;
        Ok(n == 1)
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
}
