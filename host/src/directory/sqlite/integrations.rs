//! Integrations: settings with secrets sealed at rest.

use chrono::Utc;
use rusqlite::{OptionalExtension, Row};

use super::{SqliteStore, conversion, json_text, sql, text_error};
use crate::directory::sealing::{open_settings, seal_settings};
use crate::directory::*;

impl SqliteStore {
    const INTEGRATION_COLUMNS: &str = "id, connector_id, name, settings, grants, auto_import, send_emails, \
         interval_minutes, missing_after, max_deactivate_share, max_email_share, max_pages, max_records, max_run_minutes, \
         secrets_for";

    fn integration_from_row(&self, row: &Row<'_>) -> rusqlite::Result<Integration> {
        let mut config = IntegrationConfig::new(&row.get::<_, String>("connector_id")?, &row.get::<_, String>("name")?);
        open_settings(&self.secrets, &row.get::<_, String>("settings")?, &mut config).map_err(text_error)?;
        config.grants = serde_json::from_str(&row.get::<_, String>("grants")?).map_err(conversion)?;
        config.auto_import = row.get("auto_import")?;
        config.send_emails = row.get("send_emails")?;
        config.interval_minutes = row.get("interval_minutes")?;
        config.missing_after = row.get("missing_after")?;
        config.max_deactivate_share = row.get("max_deactivate_share")?;
        config.max_email_share = row.get("max_email_share")?;
        config.limits = RunLimits {
            max_pages: row.get("max_pages")?,
            max_records: row.get("max_records")?,
            max_minutes: row.get("max_run_minutes")?,
        };
        let bound: Option<String> = row.get("secrets_for")?;
        config.secrets_for =
            bound.map(|b| serde_json::from_str(&b)).transpose().map_err(conversion)?.unwrap_or_default();
        Ok(Integration { id: IntegrationId(row.get("id")?), config })
    }

    /// `?1`..`?14` of every integration write, secrets sealed.
    fn integration_values<'a>(&self, c: &'a IntegrationConfig) -> Vec<Box<dyn rusqlite::ToSql + 'a>> {
        vec![
            Box::new(&c.connector_id),
            Box::new(&c.name),
            Box::new(seal_settings(&self.secrets, c)),
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
}

impl IntegrationStore for SqliteStore {
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

    fn company_name(&self) -> Result<Option<String>, StoreError> {
        self.conn().query_row("SELECT name FROM company WHERE id = 1", [], |r| r.get(0)).optional().map_err(sql)
    }

    fn set_company_name(&self, name: &str) -> Result<(), StoreError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::Invalid("the company name is empty: enter the name people know it by".into()));
        }
        self.conn()
            .execute(
                "INSERT INTO company (id, name, updated_at) VALUES (1, ?1, ?2) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at",
                rusqlite::params![name, Utc::now()],
            )
            .map_err(sql)?;
        Ok(())
    }
}
