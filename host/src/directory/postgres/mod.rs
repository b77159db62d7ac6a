//! The PostgreSQL directory store: for deployments that outgrow one
//! machine, several `hrsync serve` replicas on one database. The same
//! store traits as [`super::sqlite`], with the same behaviour, and the same
//! store tests run against both.
//!
//! The traits are synchronous (SQLite's calls block their caller, briefly);
//! this store keeps an async driver — tokio-postgres with a deadpool pool —
//! on a small runtime of its own, and each call blocks its caller until its
//! query is done, as SQLite's do. Its own runtime because the caller may be
//! a single-threaded runtime that cannot drive the driver while it waits.
//!
//! Every row a tenant owns carries its `tenant_id`; a store handle serves
//! one tenant ([`PgStore::tenant`]), the single-tenant install's by default.
//!
//! Every store trait is implemented; the store is not yet selectable by
//! configuration, and the accounts and audit log still live in SQLite
//! (issue 15 continues).

mod accounts;
mod audit;
mod hooks;
mod integrations;
mod outbox;
mod overrides;
mod people;
mod runs;
mod schedule;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::*;
use crate::secrets::SecretBox;

/// Versioned migrations, applied in order, each in its own transaction.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_schema.sql"),
    include_str!("../../../migrations/postgres/0002_wakeups.sql"),
    include_str!("../../../migrations/postgres/0003_sign_in_failures.sql"),
    include_str!("../../../migrations/postgres/0004_claims.sql"),
    include_str!("../../../migrations/postgres/0005_event_claims.sql"),
];

/// Subscribes to the channel on which the database says a run may be due
/// sooner (migration 0002).
const LISTEN_SCHEDULES: &str = "LISTEN hrsync_schedules";

/// The tenant id of [`PgStore::every_tenant`]; no tenant has it.
const EVERY_TENANT: TenantId = TenantId(0);

/// Connections per replica: runs, the scheduler, the courier and page
/// requests share them.
const POOL_SIZE: usize = 16;

/// PostgreSQL storage; clones share the pool and the runtime.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// For connections of their own (`LISTEN`), outside the pool.
    config: Arc<tokio_postgres::Config>,
    runtime: Arc<StoreRuntime>,
    secrets: Arc<SecretBox>,
    tenant: TenantId,
    /// This handle's name in the runs it owns: every replica opens its own.
    owner: Arc<str>,
}

/// The store's runtime, shut down without waiting when the last handle
/// goes (a runtime may not be dropped, blocking, inside another).
struct StoreRuntime(Option<tokio::runtime::Runtime>);

impl Drop for StoreRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`) and applies
    /// pending migrations; replicas starting together take turns.
    pub fn connect(url: &str, secrets: SecretBox) -> anyhow::Result<Self> {
        let config: tokio_postgres::Config =
            url.parse().with_context(|| format!("`{}` is not a PostgreSQL URL", redacted(url)))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("hrsync-postgres")
            .enable_all()
            .build()
            .context("starting the database runtime")?;
        let manager =
            Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = {
            let _entered = runtime.enter();
            Pool::builder(manager).max_size(POOL_SIZE).build().context("making the connection pool")?
        };
        let store = PgStore {
            pool,
            config: Arc::new(config),
            runtime: Arc::new(StoreRuntime(Some(runtime))),
            secrets: Arc::new(secrets),
            tenant: TenantId::DEFAULT,
            owner: super::sqlite::process_owner().into(),
        };
        store.migrate().with_context(|| format!("preparing the database at {}", redacted(url)))?;
        Ok(store)
    }

    /// A handle on the same database serving `tenant`.
    pub fn tenant(&self, tenant: TenantId) -> Self {
        PgStore { tenant, ..self.clone() }
    }

    /// A handle on every tenant at once, for a replica's own work: its
    /// courier delivers every tenant's mail (`claim_mail`, `mail_sent`,
    /// `mail_failed`), `/metrics` counts every tenant's runs (`run_stats`);
    /// every other call of it finds nothing, as no tenant has its id.
    pub fn every_tenant(&self) -> Self {
        PgStore { tenant: EVERY_TENANT, ..self.clone() }
    }

    /// Adds a tenant: `slug` is the operator's handle for it (lower case
    /// letters, digits and dashes), `name` the company's name.
    pub fn create_tenant(&self, slug: &str, name: &str) -> Result<TenantId, StoreError> {
        let name = Tenant::check_new(slug, name).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.block(async {
            let row = self
                .client()
                .await?
                .query_opt(
                    "INSERT INTO tenants (slug, name) VALUES ($1, $2) ON CONFLICT (slug) DO NOTHING RETURNING id",
                    &[&slug, &name],
                )
                .await
                .map_err(sql)?;
            row.map(|r| TenantId(r.get(0)))
                .ok_or_else(|| StoreError::Invalid(TenantError::Taken(slug.into()).to_string()))
        })
    }

    /// Adds a tenant and its first admin (`password_hash` a PHC string) in
    /// one transaction: when either is refused — the slug or the username
    /// is taken — nothing is added.
    pub fn create_tenant_with_admin(
        &self,
        slug: &str,
        name: &str,
        admin: &str,
        password_hash: &str,
    ) -> Result<Tenant, TenantError> {
        let name = Tenant::check_new(slug, name)?;
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(sql)?;
            let Some(row) = tx
                .query_opt(
                    "INSERT INTO tenants (slug, name) VALUES ($1, $2) ON CONFLICT (slug) DO NOTHING \
                     RETURNING id, slug, name, disabled_at, created_at",
                    &[&slug, &name],
                )
                .await
                .map_err(sql)?
            else {
                return Ok(Err(TenantError::Taken(slug.into())));
            };
            let tenant = tenant_from_row(&row);
            let inserted = tx
                .execute(
                    "INSERT INTO admins (tenant_id, username, password_hash, role, created_at, password_changed_at) \
                     VALUES ($1, $2, $3, 'admin', now(), now()) ON CONFLICT ((lower(username))) DO NOTHING",
                    &[&tenant.id.0, &admin, &password_hash],
                )
                .await
                .map_err(sql)?;
            if inserted == 0 {
                // Usernames are unique across tenants, so sign-in needs none.
                return Ok(Err(TenantError::Admin(crate::accounts::AccountError::Taken(admin.into()))));
            }
            tx.commit().await.map_err(sql)?;
            Ok(Ok(tenant))
        })?
    }

    /// Every tenant, by slug.
    pub fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.block(async {
            let rows = self
                .client()
                .await?
                .query("SELECT id, slug, name, disabled_at, created_at FROM tenants ORDER BY slug", &[])
                .await
                .map_err(sql)?;
            Ok(rows.iter().map(tenant_from_row).collect())
        })
    }

    /// The tenant with this slug, if there is one.
    pub fn find_tenant(&self, slug: &str) -> Result<Option<Tenant>, StoreError> {
        self.block(async {
            let row = self
                .client()
                .await?
                .query_opt("SELECT id, slug, name, disabled_at, created_at FROM tenants WHERE slug = $1", &[&slug])
                .await
                .map_err(sql)?;
            Ok(row.as_ref().map(tenant_from_row))
        })
    }

    /// The tenant with this slug.
    pub fn tenant_by_slug(&self, slug: &str) -> Result<Tenant, StoreError> {
        self.find_tenant(slug)?.ok_or_else(|| StoreError::Invalid(TenantError::Unknown(slug.into()).to_string()))
    }

    /// Disables a tenant (its accounts cannot sign in, its sessions and
    /// tokens stop, its integrations are not scheduled) or enables it again;
    /// the tenant after the change, if it exists.
    pub fn set_tenant_disabled(&self, tenant: TenantId, disabled: bool) -> Result<Option<Tenant>, StoreError> {
        self.block(async {
            let row = self
                .client()
                .await?
                .query_opt(
                    "UPDATE tenants SET disabled_at = CASE WHEN $2 THEN COALESCE(disabled_at, now()) END WHERE id = $1 \
                     RETURNING id, slug, name, disabled_at, created_at",
                    &[&tenant.0, &disabled],
                )
                .await
                .map_err(sql)?;
            Ok(row.as_ref().map(tenant_from_row))
        })
    }

    /// How many tenants are enabled and how many disabled.
    pub fn tenant_counts(&self) -> Result<(u64, u64), StoreError> {
        self.block(async {
            let row = self
                .client()
                .await?
                .query_one(
                    "SELECT COUNT(*) FILTER (WHERE disabled_at IS NULL), COUNT(*) FILTER (WHERE disabled_at IS NOT NULL) \
                     FROM tenants",
                    &[],
                )
                .await
                .map_err(sql)?;
            let n = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
            Ok((n(0), n(1)))
        })
    }

    /// Notified when, in any replica, an automatic run may have come due
    /// sooner than a scheduler sleeping now knows (`LISTEN`, on a connection
    /// of its own that reconnects after a failure; a scheduler still looks
    /// at least once a minute).
    pub fn schedule_changes(&self) -> Arc<tokio::sync::Notify> {
        let notify = Arc::new(tokio::sync::Notify::new());
        let (config, wake) = (self.config.clone(), notify.clone());
        let runtime = self.runtime.0.as_ref().expect("the runtime lives as long as the store");
        runtime.spawn(async move {
            loop {
                if let Err(e) = listen(&config, &wake).await {
                    tracing::warn!("listening for schedule changes: {e}; trying again in 5 s");
                }
                // Whatever was missed while not listening: look again.
                wake.notify_one();
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        });
        notify
    }

    /// The database's size on disk, in bytes.
    pub fn database_bytes(&self) -> Result<i64, StoreError> {
        self.block(async {
            let row = self
                .client()
                .await?
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await
                .map_err(sql)?;
            Ok(row.get(0))
        })
    }

    /// Runs a statement as it is, for tests of what the schema refuses.
    #[cfg(test)]
    pub(crate) fn raw_execute(&self, statement: &str) -> Result<u64, StoreError> {
        self.block(async { self.client().await?.execute(statement, &[]).await.map_err(sql) })
    }

    /// Runs `work` on the store's runtime and waits for it. A scoped thread
    /// waits, so that `work` may borrow and the caller may itself be on a
    /// runtime (whose thread would otherwise refuse to block).
    fn block<T: Send>(&self, work: impl Future<Output = Result<T, StoreError>> + Send) -> Result<T, StoreError> {
        let runtime = self.runtime.0.as_ref().expect("the runtime lives as long as the store");
        std::thread::scope(|scope| scope.spawn(|| runtime.block_on(work)).join())
            .map_err(|_| StoreError::Other(anyhow::anyhow!("a database call panicked")))?
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Other(anyhow::anyhow!("no database connection: {e}")))
    }

    fn migrate(&self) -> Result<(), StoreError> {
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(sql)?;
            // One replica migrates at a time; the others then find nothing to do.
            tx.execute("SELECT pg_advisory_xact_lock(7033001)", &[]).await.map_err(sql)?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await
            .map_err(sql)?;
            let applied: i32 =
                tx.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await.map_err(sql)?.get(0);
            for (i, migration) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
                tx.batch_execute(migration).await.map_err(sql)?;
                tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&(i as i32 + 1)])
                    .await
                    .map_err(sql)?;
            }
            tx.commit().await.map_err(sql)
        })
    }
}

fn tenant_from_row(row: &tokio_postgres::Row) -> Tenant {
    Tenant {
        id: TenantId(row.get("id")),
        slug: row.get("slug"),
        name: row.get("name"),
        disabled_at: row.get("disabled_at"),
        created_at: row.get("created_at"),
    }
}

/// Listens for schedule changes until the connection fails.
async fn listen(config: &tokio_postgres::Config, wake: &tokio::sync::Notify) -> Result<(), tokio_postgres::Error> {
    use futures::StreamExt;
    let (client, mut connection) = config.connect(NoTls).await?;
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    let listening = client.batch_execute(LISTEN_SCHEDULES);
    tokio::pin!(listening);
    // The connection is driven by polling its messages; the LISTEN
    // completes while they are polled.
    let mut listening_done = false;
    loop {
        tokio::select! {
            done = &mut listening, if !listening_done => {
                done?;
                listening_done = true;
            }
            message = messages.next() => match message {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => wake.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
        }
    }
}

/// A URL without its password, for messages.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

fn sql(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error()
        && db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION
        && db.constraint() == Some("users_email")
    {
        return StoreError::EmailTaken(db.message().to_string());
    }
    StoreError::Other(anyhow::Error::new(e).context("the database refused a query"))
}

/// A unit enum stored as its serde name (`interrupted`, `invitation`).
fn parse_enum<T: serde::de::DeserializeOwned>(row: &tokio_postgres::Row, column: &str) -> Result<T, StoreError> {
    let text: String = row.get(column);
    serde_json::from_value(serde_json::Value::String(text))
        .map_err(|e| StoreError::Other(anyhow::anyhow!("a stored `{column}` cannot be read: {e}")))
}

fn unsigned(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(redacted("postgres://hrsync:pw@db:5432/hrsync"), "postgres://hrsync:***@db:5432/hrsync");
        assert_eq!(redacted("postgres://hrsync@db/hrsync"), "postgres://hrsync@db/hrsync");
    }
}
