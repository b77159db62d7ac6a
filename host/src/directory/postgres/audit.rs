//! One tenant's audit log on PostgreSQL; a trigger refuses changes and
//! removals.

use chrono::{DateTime, Utc};

use super::{PgStore, sql};
use crate::audit::{Action, AuditStore, Entry, Event, Query};

impl AuditStore for PgStore {
    fn append(&self, at: DateTime<Utc>, event: &Event) -> anyhow::Result<()> {
        Ok(self.block(async {
            let c = self.client().await?;
            c.execute(
                "INSERT INTO audit (tenant_id, at, actor, address, action, target, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&self.tenant.0, &at, &event.actor, &event.address, &event.action.as_str(), &event.target, &event.detail],
            )
            .await
            .map_err(sql)?;
            Ok(())
        })?)
    }

    fn entries(&self, q: &Query) -> anyhow::Result<(Vec<Entry>, u64)> {
        let filter = "tenant_id = $1 AND ($2::text IS NULL OR actor = $2) AND ($3::text IS NULL OR action = $3) \
                      AND ($4::timestamptz IS NULL OR at >= $4) AND ($5::timestamptz IS NULL OR at < $5)";
        let action = q.action.map(Action::as_str);
        let limit = i64::try_from(q.limit.max(1)).unwrap_or(i64::MAX);
        let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
        Ok(self.block(async {
            let c = self.client().await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                [&self.tenant.0, &q.actor, &action, &q.since, &q.until];
            let total: i64 =
                c.query_one(&format!("SELECT COUNT(*) FROM audit WHERE {filter}"), &params).await.map_err(sql)?.get(0);
            let mut page = params.to_vec();
            page.extend([&limit as &(dyn tokio_postgres::types::ToSql + Sync), &offset]);
            let rows = c
                .query(
                    &format!(
                        "SELECT id, at, actor, address, action, target, detail FROM audit WHERE {filter} \
                         ORDER BY id DESC LIMIT $6 OFFSET $7"
                    ),
                    &page,
                )
                .await
                .map_err(sql)?;
            let entries = rows
                .iter()
                .map(|r| Entry {
                    id: r.get("id"),
                    at: r.get("at"),
                    actor: r.get("actor"),
                    address: r.get("address"),
                    action: r.get("action"),
                    target: r.get("target"),
                    detail: r.get("detail"),
                })
                .collect();
            Ok((entries, u64::try_from(total).unwrap_or(0)))
        })?)
    }
}
