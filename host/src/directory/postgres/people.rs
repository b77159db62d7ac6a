//! Users of one tenant: profiles, reporting lines, who manages them.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{PgStore, count, sql, unsigned};
use crate::directory::*;

pub(super) const USER_COLUMNS: &str = "id, email, first_name, last_name, preferred_name, gender, status, manager_id, \
     start_date, termination_date, job_title, employee_id, department, office, team, custom, integration_id, source_id, \
     missing_runs, profile_url, informed_at, created_at, updated_at";

fn stored(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(anyhow::anyhow!("a stored user's {what} cannot be read: {e}"))
}

pub(super) fn user_from_row(row: &Row) -> Result<User, StoreError> {
    let integration: Option<i64> = row.get("integration_id");
    let source: Option<String> = row.get("source_id");
    Ok(User {
        id: UserId(row.get("id")),
        profile: Profile {
            email: Email::parse(row.get("email")).map_err(|e| stored("email", e))?,
            first_name: row.get("first_name"),
            last_name: row.get("last_name"),
            preferred_name: row.get("preferred_name"),
            gender: row
                .get::<_, Option<&str>>("gender")
                .map(Gender::parse)
                .transpose()
                .map_err(|e| stored("gender", e))?,
            status: UserStatus::parse(row.get("status")).map_err(|e| stored("status", e))?,
            start_date: row.get("start_date"),
            termination_date: row.get("termination_date"),
            job_title: row.get("job_title"),
            employee_id: row.get("employee_id"),
            department: row.get("department"),
            office: row.get("office"),
            team: row.get("team"),
            custom: serde_json::from_str(row.get("custom")).map_err(|e| stored("custom attributes", e))?,
            profile_url: row.get("profile_url"),
        },
        manager_id: row.get::<_, Option<i64>>("manager_id").map(UserId),
        managed_by: integration.zip(source).map(|(i, s)| (IntegrationId(i), s)),
        missing_runs: count(row.get("missing_runs")),
        informed_at: row.get("informed_at"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

/// A profile as the values of `users`' profile columns, in the order of
/// `email, first_name, …, profile_url` (15 values).
pub(super) struct ProfileValues<'a> {
    profile: &'a Profile,
    email: &'a str,
    gender: Option<&'static str>,
    status: &'static str,
    custom: String,
}

impl<'a> ProfileValues<'a> {
    pub(super) fn of(profile: &'a Profile) -> Self {
        ProfileValues {
            profile,
            email: profile.email.as_str(),
            gender: profile.gender.map(Gender::as_str),
            status: profile.status.as_str(),
            custom: serde_json::to_string(&profile.custom).expect("a map of strings serialises"),
        }
    }

    pub(super) fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let p = self.profile;
        vec![
            &self.email,
            &p.first_name,
            &p.last_name,
            &p.preferred_name,
            &self.gender,
            &self.status,
            &p.start_date,
            &p.termination_date,
            &p.job_title,
            &p.employee_id,
            &p.department,
            &p.office,
            &p.team,
            &self.custom,
            &p.profile_url,
        ]
    }
}

/// Inserts a user of `tenant`.
pub(super) async fn insert_user(
    tx: &impl GenericClient,
    tenant: TenantId,
    p: &Profile,
    managed_by: &Option<(IntegrationId, String)>,
    missing: u32,
    now: DateTime<Utc>,
) -> Result<UserId, StoreError> {
    let values = ProfileValues::of(p);
    let (integration, source) = (managed_by.as_ref().map(|m| m.0.0), managed_by.as_ref().map(|m| m.1.clone()));
    let missing = unsigned(missing);
    let mut params = values.params();
    params.extend([&integration as &(dyn ToSql + Sync), &source, &missing, &now, &tenant.0]);
    let row = tx
        .query_one(
            "INSERT INTO users (email, first_name, last_name, preferred_name, gender, status, start_date, termination_date, \
             job_title, employee_id, department, office, team, custom, profile_url, integration_id, source_id, \
             missing_runs, created_at, updated_at, tenant_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             $13, $14, $15, $16, $17, $18, $19, $19, $20) RETURNING id",
            &params,
        )
        .await
        .map_err(sql)?;
    Ok(UserId(row.get(0)))
}

/// Escapes `\`, `%` and `_` for a LIKE pattern with `ESCAPE '\'`.
pub(super) fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// The manager of `user` in `tenant`: `None` if there is no such user,
/// `Some(None)` if they have no manager.
async fn manager_of(
    tx: &impl GenericClient,
    tenant: TenantId,
    user: UserId,
) -> Result<Option<Option<UserId>>, StoreError> {
    let row = tx
        .query_opt("SELECT manager_id FROM users WHERE id = $1 AND tenant_id = $2", &[&user.0, &tenant.0])
        .await
        .map_err(sql)?;
    Ok(row.map(|r| r.get::<_, Option<i64>>(0).map(UserId)))
}

/// Refuses a manager who does not exist (in the tenant) or who reports,
/// directly or indirectly, to `user`.
async fn check_manager(
    tx: &impl GenericClient,
    tenant: TenantId,
    user: Option<UserId>,
    manager: UserId,
) -> Result<(), StoreError> {
    let mut next = Some(manager);
    let mut steps = 0;
    while let Some(m) = next {
        if Some(m) == user {
            return Err(StoreError::reporting_cycle(manager));
        }
        steps += 1;
        if steps > MAX_REPORTING_DEPTH {
            break;
        }
        next = manager_of(tx, tenant, m).await?.ok_or_else(|| StoreError::no_such_manager(m))?;
    }
    Ok(())
}

/// Writes an unmanaged user's profile and manager.
async fn edit_tx(tx: &impl GenericClient, tenant: TenantId, id: UserId, user: &NewUser) -> Result<(), StoreError> {
    let managed = tx
        .query_opt("SELECT integration_id FROM users WHERE id = $1 AND tenant_id = $2", &[&id.0, &tenant.0])
        .await
        .map_err(sql)?
        .map(|r| r.get::<_, Option<i64>>(0));
    match managed {
        None => return Err(StoreError::NoUser(id)),
        Some(Some(_)) => return Err(StoreError::Managed(id)),
        Some(None) => {}
    }
    if let Some(m) = user.manager_id {
        check_manager(tx, tenant, Some(id), m).await?;
    }
    let values = ProfileValues::of(&user.profile);
    let (manager, now) = (user.manager_id.map(|m| m.0), Utc::now());
    let mut params = values.params();
    params.extend([&manager as &(dyn ToSql + Sync), &now, &id.0]);
    tx.execute(
        "UPDATE users SET email = $1, first_name = $2, last_name = $3, preferred_name = $4, gender = $5, status = $6, \
         start_date = $7, termination_date = $8, job_title = $9, employee_id = $10, department = $11, office = $12, \
         team = $13, custom = $14, profile_url = $15, manager_id = $16, updated_at = $17 WHERE id = $18",
        &params,
    )
    .await
    .map_err(sql)?;
    Ok(())
}

async fn create_tx(tx: &impl GenericClient, tenant: TenantId, user: &NewUser) -> Result<UserId, StoreError> {
    if let Some(m) = user.manager_id {
        check_manager(tx, tenant, None, m).await?;
    }
    let id = insert_user(tx, tenant, &user.profile, &None, 0, Utc::now()).await?;
    if let Some(m) = user.manager_id {
        set_manager(tx, id, m).await?;
    }
    Ok(id)
}

async fn set_manager(tx: &impl GenericClient, id: UserId, manager: UserId) -> Result<(), StoreError> {
    tx.execute("UPDATE users SET manager_id = $2 WHERE id = $1", &[&id.0, &manager.0]).await.map_err(sql)?;
    Ok(())
}

impl PeopleStore for PgStore {
    fn create_user(&self, user: &NewUser) -> Result<UserId, StoreError> {
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(sql)?;
            let id = create_tx(&tx, self.tenant, user).await?;
            tx.commit().await.map_err(sql)?;
            Ok(id)
        })
    }

    fn edit_user(&self, id: UserId, user: &NewUser) -> Result<(), StoreError> {
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(sql)?;
            edit_tx(&tx, self.tenant, id, user).await?;
            tx.commit().await.map_err(sql)
        })
    }

    fn write_roster(&self, rows: &[RosterRow]) -> Result<Vec<UserId>, StoreError> {
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(sql)?;
            // Everyone first, without managers: a row's manager may be a later row.
            let mut ids = Vec::with_capacity(rows.len());
            for row in rows {
                let user = NewUser { profile: row.profile.clone(), manager_id: None };
                ids.push(match row.existing {
                    Some(id) => {
                        let keep = manager_of(&tx, self.tenant, id).await?.flatten();
                        edit_tx(&tx, self.tenant, id, &NewUser { manager_id: keep, ..user }).await?;
                        id
                    }
                    None => create_tx(&tx, self.tenant, &user).await?,
                });
            }
            for (row, id) in rows.iter().zip(&ids) {
                let manager = match row.manager {
                    Some(RosterManager::User(m)) => m,
                    Some(RosterManager::Row(i)) => ids[i],
                    None => continue,
                };
                check_manager(&tx, self.tenant, Some(*id), manager).await?;
                set_manager(&tx, *id, manager).await?;
            }
            tx.commit().await.map_err(sql)?;
            Ok(ids)
        })
    }

    fn user(&self, id: UserId) -> Result<User, StoreError> {
        let row = self.block(async {
            self.client()
                .await?
                .query_opt(
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND tenant_id = $2"),
                    &[&id.0, &self.tenant.0],
                )
                .await
                .map_err(sql)
        })?;
        user_from_row(&row.ok_or(StoreError::NoUser(id))?)
    }

    fn users(&self, query: &UserQuery) -> Result<(Vec<User>, u64), StoreError> {
        let pattern = query.search.as_ref().map(|s| format!("%{}%", like_escape(s)));
        let integration = query.integration.map(|i| i.0);
        let status = query.status.map(UserStatus::as_str);
        let manager = query.manager.map(|m| m.0);
        let limit = i64::try_from(query.limit.max(1)).unwrap_or(i64::MAX);
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        // ILIKE: SQLite's LIKE ignores ASCII case too.
        let filter = "tenant_id = $7 AND ($1::text IS NULL OR (first_name || ' ' || last_name) ILIKE $1 ESCAPE '\\' \
             OR email ILIKE $1 ESCAPE '\\' OR department ILIKE $1 ESCAPE '\\' OR employee_id ILIKE $1 ESCAPE '\\') \
             AND ($2::bigint IS NULL OR integration_id = $2) AND ($3::text IS NULL OR status = $3) \
             AND ($4::text IS NULL OR department = $4) AND ($5::bigint IS NULL OR manager_id = $5) \
             AND ($6::boolean IS NULL OR (informed_at IS NOT NULL) = $6)";
        let filters: [&(dyn ToSql + Sync); 7] =
            [&pattern, &integration, &status, &query.department, &manager, &query.informed, &self.tenant.0];
        let (total, rows) = self.block(async {
            let client = self.client().await?;
            let total: i64 = client
                .query_one(&format!("SELECT COUNT(*) FROM users WHERE {filter}"), &filters)
                .await
                .map_err(sql)?
                .get(0);
            let mut params = filters.to_vec();
            params.extend([&limit as &(dyn ToSql + Sync), &offset]);
            let rows = client
                .query(
                    &format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE {filter} ORDER BY last_name, first_name, id LIMIT $8 OFFSET $9"
                    ),
                    &params,
                )
                .await
                .map_err(sql)?;
            Ok((total, rows))
        })?;
        let users = rows.iter().map(user_from_row).collect::<Result<_, _>>()?;
        Ok((users, u64::try_from(total).unwrap_or(0)))
    }

    fn facets(&self) -> Result<Facets, StoreError> {
        let (departments, managers) = self.block(async {
            let client = self.client().await?;
            let departments = client
                .query(
                    "SELECT DISTINCT department FROM users WHERE tenant_id = $1 AND department IS NOT NULL \
                     AND department <> '' ORDER BY department",
                    &[&self.tenant.0],
                )
                .await
                .map_err(sql)?;
            let managers = client
                .query(
                    "SELECT id, first_name, last_name, preferred_name FROM users WHERE tenant_id = $1 \
                     AND id IN (SELECT manager_id FROM users WHERE manager_id IS NOT NULL) ORDER BY last_name, first_name, id",
                    &[&self.tenant.0],
                )
                .await
                .map_err(sql)?;
            Ok((departments, managers))
        })?;
        Ok(Facets {
            departments: departments.iter().map(|r| r.get(0)).collect(),
            managers: managers
                .iter()
                .map(|r| (UserId(r.get(0)), display_name(r.get(1), r.get(2), r.get::<_, Option<&str>>(3))))
                .collect(),
        })
    }

    fn users_for_sync(&self, integration: IntegrationId) -> Result<Vec<User>, StoreError> {
        let rows = self.block(async {
            self.client()
                .await?
                .query(
                    &format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $2 \
                         AND (integration_id = $1 OR integration_id IS NULL) ORDER BY id"
                    ),
                    &[&integration.0, &self.tenant.0],
                )
                .await
                .map_err(sql)
        })?;
        rows.iter().map(user_from_row).collect()
    }

    fn index(&self) -> Result<Vec<IndexEntry>, StoreError> {
        let rows = self.block(async {
            self.client()
                .await?
                .query(
                    "SELECT id, manager_id, email, first_name, last_name, preferred_name FROM users WHERE tenant_id = $1",
                    &[&self.tenant.0],
                )
                .await
                .map_err(sql)
        })?;
        rows.iter()
            .map(|r| {
                Ok(IndexEntry {
                    id: UserId(r.get(0)),
                    manager_id: r.get::<_, Option<i64>>(1).map(UserId),
                    email: Email::parse(r.get(2)).map_err(|e| stored("email", e))?,
                    name: display_name(r.get(3), r.get(4), r.get::<_, Option<&str>>(5)),
                })
            })
            .collect()
    }
}
