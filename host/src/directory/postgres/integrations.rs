//! Integrations and the company name, per tenant.

use chrono::Utc;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{PgStore, count, sql, unsigned};
use crate::directory::sealing::{open_settings, seal_settings};
use crate::directory::*;

const COLUMNS: &str = "id, connector_id, name, settings, grants, auto_import, send_emails, interval_minutes, \
     missing_after, max_deactivate_share, max_email_share, max_pages, max_records, max_run_minutes, secrets_for";

impl PgStore {
    fn integration_from_row(&self, row: &Row) -> Result<Integration, StoreError> {
        let invalid = |what: &str, e: &dyn std::fmt::Display| StoreError::Other(anyhow::anyhow!("stored {what}: {e}"));
        let mut config = IntegrationConfig::new(row.get("connector_id"), row.get("name"));
        open_settings(&self.secrets, row.get("settings"), &mut config).map_err(|e| invalid("settings", &e))?;
        config.grants = serde_json::from_str(row.get("grants")).map_err(|e| invalid("grants", &e))?;
        config.auto_import = row.get("auto_import");
        config.send_emails = row.get("send_emails");
        config.interval_minutes = count(row.get("interval_minutes"));
        config.missing_after = count(row.get("missing_after"));
        config.max_deactivate_share = row.get("max_deactivate_share");
        config.max_email_share = row.get("max_email_share");
        config.limits = RunLimits {
            max_pages: count(row.get("max_pages")),
            max_records: count(row.get("max_records")),
            max_minutes: count(row.get("max_run_minutes")),
        };
        let bound: Option<&str> = row.get("secrets_for");
        config.secrets_for =
            bound.map(serde_json::from_str).transpose().map_err(|e| invalid("grants", &e))?.unwrap_or_default();
        Ok(Integration { id: IntegrationId(row.get("id")), config })
    }
}

/// The values of every integration write, `$1`..`$14` in the order of
/// [`WRITTEN`], secrets sealed.
struct Values<'a> {
    config: &'a IntegrationConfig,
    settings: String,
    grants: String,
    secrets_for: String,
    numbers: [i32; 5],
}

/// The columns [`Values`] writes, in order.
const WRITTEN: &str = "connector_id, name, settings, grants, auto_import, send_emails, interval_minutes, missing_after, \
     max_deactivate_share, max_email_share, max_pages, max_records, max_run_minutes, secrets_for";

impl<'a> Values<'a> {
    fn of(store: &PgStore, c: &'a IntegrationConfig) -> Self {
        Values {
            config: c,
            settings: seal_settings(&store.secrets, c),
            grants: serde_json::to_string(&c.grants).expect("strings serialise"),
            secrets_for: serde_json::to_string(&c.secrets_for).expect("strings serialise"),
            numbers: [
                unsigned(c.interval_minutes),
                unsigned(c.missing_after),
                unsigned(c.limits.max_pages),
                unsigned(c.limits.max_records),
                unsigned(c.limits.max_minutes),
            ],
        }
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let c = self.config;
        let [interval, missing, pages, records, minutes] = &self.numbers;
        vec![
            &c.connector_id,
            &c.name,
            &self.settings,
            &self.grants,
            &c.auto_import,
            &c.send_emails,
            interval,
            missing,
            &c.max_deactivate_share,
            &c.max_email_share,
            pages,
            records,
            minutes,
            &self.secrets_for,
        ]
    }
}

impl IntegrationStore for PgStore {
    fn create_integration(&self, config: &IntegrationConfig) -> Result<IntegrationId, StoreError> {
        // A new integration's secrets were entered with its first grants.
        let mut config = config.clone();
        if config.secrets_for.is_empty() {
            config.secrets_for = config.grants.clone();
        }
        let values = Values::of(self, &config);
        let now = Utc::now();
        let mut params = values.params();
        params.extend([&self.tenant.0 as &(dyn ToSql + Sync), &now]);
        self.block(async {
            let row = self
                .client()
                .await?
                .query_one(
                    &format!(
                        "INSERT INTO integrations ({WRITTEN}, tenant_id, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16) RETURNING id"
                    ),
                    &params,
                )
                .await
                .map_err(sql)?;
            Ok(IntegrationId(row.get(0)))
        })
    }

    fn update_integration(&self, id: IntegrationId, c: &IntegrationConfig) -> Result<(), StoreError> {
        let values = Values::of(self, c);
        let now = Utc::now();
        let mut params = values.params();
        params.extend([&now as &(dyn ToSql + Sync), &id.0, &self.tenant.0]);
        let n = self.block(async {
            self.client()
                .await?
                .execute(
                    &format!(
                        "UPDATE integrations SET ({WRITTEN}, updated_at) = \
                         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) WHERE id = $16 AND tenant_id = $17"
                    ),
                    &params,
                )
                .await
                .map_err(sql)
        })?;
        if n == 0 { Err(StoreError::NoIntegration(id)) } else { Ok(()) }
    }

    fn integration(&self, id: IntegrationId) -> Result<Integration, StoreError> {
        let row = self.block(async {
            self.client()
                .await?
                .query_opt(
                    &format!("SELECT {COLUMNS} FROM integrations WHERE id = $1 AND tenant_id = $2"),
                    &[&id.0, &self.tenant.0],
                )
                .await
                .map_err(sql)
        })?;
        self.integration_from_row(&row.ok_or(StoreError::NoIntegration(id))?)
    }

    fn integrations(&self) -> Result<Vec<Integration>, StoreError> {
        let rows = self.block(async {
            self.client()
                .await?
                .query(
                    &format!("SELECT {COLUMNS} FROM integrations WHERE tenant_id = $1 ORDER BY id"),
                    &[&self.tenant.0],
                )
                .await
                .map_err(sql)
        })?;
        rows.iter().map(|r| self.integration_from_row(r)).collect()
    }

    fn company_name(&self) -> Result<Option<String>, StoreError> {
        self.block(async {
            let row = self
                .client()
                .await?
                .query_opt("SELECT name FROM company WHERE tenant_id = $1", &[&self.tenant.0])
                .await
                .map_err(sql)?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn set_company_name(&self, name: &str) -> Result<(), StoreError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::Invalid("the company name is empty: enter the name people know it by".into()));
        }
        self.block(async {
            self.client()
                .await?
                .execute(
                    "INSERT INTO company (tenant_id, name, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (tenant_id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at",
                    &[&self.tenant.0, &name, &Utc::now()],
                )
                .await
                .map_err(sql)?;
            Ok(())
        })
    }
}
