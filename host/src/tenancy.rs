//! Tenancy: which company a request or a worker acts for, and the handles
//! on that company's data — an engine over its slice of the directory
//! store, its accounts, audit log and webhooks.
//!
//! A single-company install (SQLite, the default) has one implicit tenant
//! and nothing to set up. A PostgreSQL deployment serves as many tenants
//! as operators create (`hrsync tenant add`); each request is scoped to
//! the tenant of the account that makes it, so nothing crosses tenants.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::accounts::Accounts;
use crate::audit::Audit;
use crate::directory::postgres::PgStore;
use crate::directory::sqlite::SqliteStore;
use crate::directory::{DirectoryStore, RunStat, RunStore, StoreError, Tenant, TenantError};
use crate::model::TenantId;
use crate::secrets::SecretBox;
use crate::sync::SyncEngine;
use crate::webhooks::Webhooks;

/// Environment variable with the PostgreSQL URL (over `database_url` in
/// the config file); without either, the data directory's SQLite file.
pub const DATABASE_URL_ENV: &str = "HRSYNC_DATABASE_URL";

/// Where a deployment keeps its data.
pub enum Database {
    /// The embedded default: `DATA_DIR/hrsync.db`, one company.
    Sqlite { store: Arc<SqliteStore>, path: PathBuf },
    /// A database several replicas share, with tenants.
    Postgres(PgStore),
}

impl Database {
    /// Connects to `url` (`postgres://…`) when given, else opens the SQLite
    /// file in `data_dir`; either way applies pending migrations.
    pub fn open(url: Option<&str>, data_dir: &Path, secrets: SecretBox) -> anyhow::Result<Database> {
        match url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Database::Postgres(PgStore::connect(url, secrets)?))
            }
            Some(other) => anyhow::bail!(
                "database_url must be a PostgreSQL URL (postgres://user:password@host:5432/hrsync), not `{}`; leave it out to use SQLite in the data directory",
                other.split('@').next_back().unwrap_or(other)
            ),
            None => {
                let path = data_dir.join("hrsync.db");
                Ok(Database::Sqlite { store: Arc::new(SqliteStore::open(&path, secrets)?), path })
            }
        }
    }

    /// The tenant with `slug`: the only one of a SQLite install (`default`).
    pub fn tenant(&self, slug: &str) -> anyhow::Result<TenantId> {
        match self {
            Database::Sqlite { .. } if slug == "default" => Ok(TenantId::DEFAULT),
            Database::Sqlite { .. } => anyhow::bail!(
                "tenant `{slug}` does not exist: a SQLite install serves one company; tenants need a PostgreSQL database_url"
            ),
            Database::Postgres(pg) => Ok(pg.tenant_by_slug(slug)?.id),
        }
    }

    /// `tenant`'s slice of the directory.
    pub fn store(&self, tenant: TenantId) -> Arc<dyn DirectoryStore> {
        match self {
            Database::Sqlite { store, .. } => store.clone(),
            Database::Postgres(pg) => Arc::new(pg.tenant(tenant)),
        }
    }

    /// What a courier delivers: every tenant's outbox.
    pub fn outbox(&self) -> Arc<dyn DirectoryStore> {
        match self {
            Database::Sqlite { store, .. } => store.clone(),
            Database::Postgres(pg) => Arc::new(pg.every_tenant()),
        }
    }

    /// `tenant`'s accounts and audit log.
    pub fn accounts_and_audit(&self, tenant: TenantId) -> anyhow::Result<(Accounts, Audit)> {
        match self {
            Database::Sqlite { path, .. } => Ok((Accounts::open(path)?, Audit::open(path)?)),
            Database::Postgres(pg) => {
                Ok((Accounts::new(Box::new(pg.tenant(tenant))), Audit::new(Box::new(pg.tenant(tenant)))))
            }
        }
    }

    /// The database whose tenants operators manage: PostgreSQL only.
    pub fn platform(&self) -> Result<&PgStore, TenantError> {
        match self {
            Database::Sqlite { .. } => Err(TenantError::SingleCompany),
            Database::Postgres(pg) => Ok(pg),
        }
    }

    /// What `hrsync serve` prints about where its data is.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite { path, .. } => format!("SQLite {}", path.display()),
            Database::Postgres(_) => "PostgreSQL (multi-tenant)".into(),
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// One tenant's handles.
pub struct Scope {
    pub tenant: TenantId,
    pub engine: Arc<SyncEngine>,
    pub accounts: Arc<Accounts>,
    pub audit: Arc<Audit>,
    pub webhooks: Arc<Webhooks>,
}

/// The tenants a process serves, and their handles (made on first use).
pub struct Tenancy {
    /// The single-company install's tenant, or a PostgreSQL deployment's
    /// first one; its engine is the template of the others'.
    default: Arc<Scope>,
    /// `None` for a single-company install.
    postgres: Option<PgStore>,
    others: Mutex<HashMap<TenantId, Arc<Scope>>>,
}

impl Tenancy {
    /// The tenancy of `database`, whose default tenant's handles are `default`.
    pub fn of(database: &Database, default: Scope) -> Self {
        match database {
            Database::Sqlite { .. } => Self::single(default),
            Database::Postgres(pg) => Self::postgres(pg.clone(), default),
        }
    }

    /// A single-company install: one tenant, these handles.
    pub fn single(scope: Scope) -> Self {
        Tenancy { default: Arc::new(scope), postgres: None, others: Mutex::default() }
    }

    /// Every tenant of a PostgreSQL database; `default` holds the default
    /// tenant's handles, over `store`.
    pub fn postgres(store: PgStore, default: Scope) -> Self {
        Tenancy { default: Arc::new(default), postgres: Some(store), others: Mutex::default() }
    }

    /// The database behind a multi-tenant deployment.
    pub fn database(&self) -> Option<&PgStore> {
        self.postgres.as_ref()
    }

    /// The database whose tenants operators manage: PostgreSQL only.
    pub fn platform(&self) -> Result<&PgStore, TenantError> {
        self.postgres.as_ref().ok_or(TenantError::SingleCompany)
    }

    pub fn default_scope(&self) -> &Arc<Scope> {
        &self.default
    }

    /// The handles of `tenant`. A single-company install knows only its
    /// own tenant.
    pub fn scope(&self, tenant: TenantId) -> Result<Arc<Scope>, StoreError> {
        if tenant == self.default.tenant {
            return Ok(self.default.clone());
        }
        let Some(store) = &self.postgres else {
            return Err(StoreError::Invalid(format!(
                "tenant {} does not exist: this install serves one company (tenants need a PostgreSQL database_url)",
                tenant.0
            )));
        };
        let mut others = self.others.lock().expect("tenant scopes");
        if let Some(scope) = others.get(&tenant) {
            return Ok(scope.clone());
        }
        let scoped = store.tenant(tenant);
        let engine = Arc::new(self.default.engine.for_store(Arc::new(scoped.clone())));
        let webhooks = Webhooks::new(engine.clone(), &engine.invite.public_url).sharing(&self.default.webhooks);
        let scope = Arc::new(Scope {
            tenant,
            engine,
            accounts: Arc::new(Accounts::new(Box::new(scoped.clone()))),
            audit: Arc::new(Audit::new(Box::new(scoped))),
            webhooks: Arc::new(webhooks),
        });
        others.insert(tenant, scope.clone());
        Ok(scope)
    }

    /// Every tenant's runs, counted by kind and outcome, for `/metrics`.
    pub fn run_stats(&self) -> Result<Vec<RunStat>, StoreError> {
        match &self.postgres {
            Some(store) => store.every_tenant().run_stats(),
            None => self.default.engine.store().run_stats(),
        }
    }

    /// How many tenants are enabled and how many disabled; `None` for a
    /// single-company install.
    pub fn tenant_counts(&self) -> Result<Option<(u64, u64)>, StoreError> {
        self.postgres.as_ref().map(PgStore::tenant_counts).transpose()
    }

    /// The tenant a webhook delivery to `/hooks/<hook>` is for: the
    /// endpoint names no tenant, the subscription does.
    pub fn tenant_of_hook(&self, hook: &str) -> Result<TenantId, StoreError> {
        match &self.postgres {
            Some(store) => Ok(store.tenant_of_hook(hook)?.unwrap_or(self.default.tenant)),
            None => Ok(self.default.tenant),
        }
    }

    /// The tenants with webhook deliveries waiting.
    pub fn tenants_with_pending_events(&self) -> Result<Vec<TenantId>, StoreError> {
        match &self.postgres {
            Some(store) => store.tenants_with_pending_events(),
            None => Ok(vec![self.default.tenant]),
        }
    }

    /// Turns every tenant's stored webhook deliveries into runs until
    /// `shutdown` completes: woken by any tenant's delivery, and at least
    /// once a second (deliveries another replica received).
    pub async fn process_deliveries_forever(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        use futures::StreamExt;
        tokio::pin!(shutdown);
        let wake = self.default.webhooks.wake_handle();
        loop {
            match self.tenants_with_pending_events() {
                Ok(tenants) => {
                    futures::stream::iter(tenants)
                        .for_each_concurrent(crate::schedule::PARALLEL_RUNS, |tenant| self.process_deliveries(tenant))
                        .await
                }
                Err(e) => tracing::warn!("finding webhook deliveries: {e}"),
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = &mut shutdown => return,
            }
        }
    }

    /// One tenant's waiting deliveries, as runs; failures are logged.
    async fn process_deliveries(&self, tenant: TenantId) {
        let processed = match self.scope(tenant) {
            Ok(scope) => scope.webhooks.process_due().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = processed {
            tracing::warn!(tenant = tenant.0, "processing webhook deliveries: {e}");
        }
    }
}

/// Adds tenant `slug` (the company `name`) with its first admin in one
/// transaction: when any part is refused, nothing is added. The CLI's
/// `hrsync tenant add` and the operator API add tenants through here.
pub fn add_tenant(pg: &PgStore, slug: &str, name: &str, admin: &str, password: &str) -> Result<Tenant, TenantError> {
    let (admin, password_hash) = crate::accounts::new_account(admin, password)?;
    pg.create_tenant_with_admin(slug.trim(), name, admin, &password_hash)
}

/// Disables tenant `slug` — its accounts cannot sign in, its sessions and
/// tokens stop, its integrations are not scheduled — or enables it again.
/// The default tenant, the platform's own, stays enabled.
pub fn set_tenant_disabled(pg: &PgStore, slug: &str, disabled: bool) -> Result<Tenant, TenantError> {
    let unknown = || TenantError::Unknown(slug.into());
    let tenant = pg.find_tenant(slug.trim())?.ok_or_else(unknown)?;
    if tenant.id == TenantId::DEFAULT {
        return Err(TenantError::Platform);
    }
    pg.set_tenant_disabled(tenant.id, disabled)?.ok_or_else(unknown)
}
