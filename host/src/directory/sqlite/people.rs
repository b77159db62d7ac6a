//! Users: profiles, reporting lines, who manages them.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::{SqliteStore, conversion, json_text, sql, text_error};
use crate::directory::*;

/// The columns [`user_from_row`] reads, in `SELECT` order.
pub(super) const USER_COLUMN_LIST: [&str; 23] = [
    "id",
    "email",
    "first_name",
    "last_name",
    "preferred_name",
    "gender",
    "status",
    "manager_id",
    "start_date",
    "termination_date",
    "job_title",
    "employee_id",
    "department",
    "office",
    "team",
    "custom",
    "integration_id",
    "source_id",
    "missing_runs",
    "profile_url",
    "informed_at",
    "created_at",
    "updated_at",
];
pub(super) const USER_COLUMNS: &str = "id, email, first_name, last_name, preferred_name, gender, status, manager_id, start_date, \
     termination_date, job_title, employee_id, department, office, team, custom, integration_id, source_id, \
     missing_runs, profile_url, informed_at, created_at, updated_at";

/// Where `name` is in `columns`, for `col!` at compile time.
const fn position(columns: &[&str], name: &str) -> usize {
    let mut i = 0;
    while i < columns.len() {
        let (a, b) = (columns[i].as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("not one of the columns")
}

/// A user column by name, resolved at compile time: rusqlite's lookup by
/// name scans the statement's column names on every read, which over the
/// ~20 reads of each of 10,000 rows a sync reads costs more than the reads.
macro_rules! col {
    ($name:literal) => {
        col!(USER_COLUMN_LIST, $name)
    };
    ($columns:expr, $name:literal) => {{
        const AT: usize = position(&$columns, $name);
        AT
    }};
}

pub(super) fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    let date = |column: usize| -> rusqlite::Result<Option<NaiveDate>> {
        row.get::<_, Option<String>>(column)?
            .map(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(conversion))
            .transpose()
    };
    let custom: String = row.get(col!("custom"))?;
    let integration: Option<i64> = row.get(col!("integration_id"))?;
    let source: Option<String> = row.get(col!("source_id"))?;
    Ok(User {
        id: UserId(row.get(col!("id"))?),
        profile: Profile {
            email: Email::parse(&row.get::<_, String>(col!("email"))?).map_err(text_error)?,
            first_name: row.get(col!("first_name"))?,
            last_name: row.get(col!("last_name"))?,
            preferred_name: row.get(col!("preferred_name"))?,
            gender: row
                .get::<_, Option<String>>(col!("gender"))?
                .as_deref()
                .map(Gender::parse)
                .transpose()
                .map_err(text_error)?,
            status: UserStatus::parse(&row.get::<_, String>(col!("status"))?).map_err(text_error)?,
            start_date: date(col!("start_date"))?,
            termination_date: date(col!("termination_date"))?,
            job_title: row.get(col!("job_title"))?,
            employee_id: row.get(col!("employee_id"))?,
            department: row.get(col!("department"))?,
            office: row.get(col!("office"))?,
            team: row.get(col!("team"))?,
            custom: serde_json::from_str(&custom).map_err(conversion)?,
            profile_url: row.get(col!("profile_url"))?,
        },
        manager_id: row.get::<_, Option<i64>>(col!("manager_id"))?.map(UserId),
        managed_by: integration.zip(source).map(|(i, s)| (IntegrationId(i), s)),
        missing_runs: row.get(col!("missing_runs"))?,
        informed_at: row.get(col!("informed_at"))?,
        created_at: row.get(col!("created_at"))?,
        updated_at: row.get(col!("updated_at"))?,
    })
}

/// Writes a profile into the columns of `users`, `?1`..`?15` in this order.
pub(super) fn profile_params(p: &Profile) -> [Box<dyn rusqlite::ToSql + '_>; 15] {
    let date = |d: &Option<NaiveDate>| d.map(|d| d.to_string());
    [
        Box::new(p.email.as_str()),
        Box::new(&p.first_name),
        Box::new(&p.last_name),
        Box::new(&p.preferred_name),
        Box::new(p.gender.map(Gender::as_str)),
        Box::new(p.status.as_str()),
        Box::new(date(&p.start_date)),
        Box::new(date(&p.termination_date)),
        Box::new(&p.job_title),
        Box::new(&p.employee_id),
        Box::new(&p.department),
        Box::new(&p.office),
        Box::new(&p.team),
        Box::new(json_text(&p.custom)),
        Box::new(&p.profile_url),
    ]
}

pub(super) fn insert_user(
    tx: &Transaction<'_>,
    p: &Profile,
    managed_by: &Option<(IntegrationId, String)>,
    missing: u32,
    now: DateTime<Utc>,
) -> rusqlite::Result<UserId> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO users (email, first_name, last_name, preferred_name, gender, status, start_date, termination_date, \
         job_title, employee_id, department, office, team, custom, profile_url, integration_id, source_id, missing_runs, \
         created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?19)",
    )?;
    let mut values: Vec<Box<dyn rusqlite::ToSql + '_>> = profile_params(p).into_iter().collect();
    values.push(Box::new(managed_by.as_ref().map(|m| m.0.0)));
    values.push(Box::new(managed_by.as_ref().map(|m| m.1.clone())));
    values.push(Box::new(missing));
    values.push(Box::new(now));
    stmt.execute(rusqlite::params_from_iter(values.iter().map(|b| b.as_ref())))?;
    Ok(UserId(tx.last_insert_rowid()))
}

/// Escapes `\`, `%` and `_` for a LIKE pattern with `ESCAPE '\'`.
pub(super) fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Refuses a manager who does not exist or who reports, directly or
/// indirectly, to `user`.
fn check_manager(tx: &Transaction<'_>, user: Option<UserId>, manager: UserId) -> Result<(), StoreError> {
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
        next = tx
            .query_row("SELECT manager_id FROM users WHERE id = ?1", [m.0], |r| r.get::<_, Option<i64>>(0))
            .optional()
            .map_err(sql)?
            .ok_or_else(|| StoreError::no_such_manager(m))?
            .map(UserId);
    }
    Ok(())
}

/// Writes an unmanaged user's profile and manager.
fn edit_tx(tx: &Transaction<'_>, id: UserId, user: &NewUser) -> Result<(), StoreError> {
    let managed: Option<Option<i64>> =
        tx.query_row("SELECT integration_id FROM users WHERE id = ?1", [id.0], |r| r.get(0)).optional().map_err(sql)?;
    match managed {
        None => return Err(StoreError::NoUser(id)),
        Some(Some(_)) => return Err(StoreError::Managed(id)),
        Some(None) => {}
    }
    if let Some(m) = user.manager_id {
        check_manager(tx, Some(id), m)?;
    }
    let mut values: Vec<Box<dyn rusqlite::ToSql + '_>> = profile_params(&user.profile).into_iter().collect();
    values.push(Box::new(user.manager_id.map(|m| m.0)));
    values.push(Box::new(Utc::now()));
    values.push(Box::new(id.0));
    tx.execute(
        "UPDATE users SET email = ?1, first_name = ?2, last_name = ?3, preferred_name = ?4, gender = ?5, status = ?6, \
         start_date = ?7, termination_date = ?8, job_title = ?9, employee_id = ?10, department = ?11, office = ?12, \
         team = ?13, custom = ?14, profile_url = ?15, manager_id = ?16, updated_at = ?17 WHERE id = ?18",
        rusqlite::params_from_iter(values.iter().map(|b| b.as_ref())),
    )
    .map_err(sql)?;
    Ok(())
}

fn create_tx(tx: &Transaction<'_>, user: &NewUser) -> Result<UserId, StoreError> {
    if let Some(m) = user.manager_id {
        check_manager(tx, None, m)?;
    }
    let id = insert_user(tx, &user.profile, &None, 0, Utc::now()).map_err(sql)?;
    if let Some(m) = user.manager_id {
        tx.execute("UPDATE users SET manager_id = ?2 WHERE id = ?1", params![id.0, m.0]).map_err(sql)?;
    }
    Ok(id)
}

impl PeopleStore for SqliteStore {
    fn create_user(&self, user: &NewUser) -> Result<UserId, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        let id = create_tx(&tx, user)?;
        tx.commit().map_err(sql)?;
        Ok(id)
    }

    fn edit_user(&self, id: UserId, user: &NewUser) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        edit_tx(&tx, id, user)?;
        tx.commit().map_err(sql)
    }

    fn write_roster(&self, rows: &[RosterRow]) -> Result<Vec<UserId>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        // Everyone first, without managers: a row's manager may be a later row.
        let mut ids = Vec::with_capacity(rows.len());
        for row in rows {
            let user = NewUser { profile: row.profile.clone(), manager_id: None };
            ids.push(match row.existing {
                Some(id) => {
                    let keep = tx
                        .query_row("SELECT manager_id FROM users WHERE id = ?1", [id.0], |r| r.get::<_, Option<i64>>(0))
                        .optional()
                        .map_err(sql)?
                        .flatten()
                        .map(UserId);
                    edit_tx(&tx, id, &NewUser { manager_id: keep, ..user })?;
                    id
                }
                None => create_tx(&tx, &user)?,
            });
        }
        for (row, id) in rows.iter().zip(&ids) {
            let manager = match row.manager {
                Some(RosterManager::User(m)) => m,
                Some(RosterManager::Row(i)) => ids[i],
                None => continue,
            };
            check_manager(&tx, Some(*id), manager)?;
            tx.execute("UPDATE users SET manager_id = ?2 WHERE id = ?1", params![id.0, manager.0]).map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        Ok(ids)
    }

    fn user(&self, id: UserId) -> Result<User, StoreError> {
        self.conn()
            .query_row(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"), [id.0], user_from_row)
            .optional()
            .map_err(sql)?
            .ok_or(StoreError::NoUser(id))
    }

    fn users(&self, query: &UserQuery) -> Result<(Vec<User>, u64), StoreError> {
        let conn = self.conn();
        let pattern = query.search.as_ref().map(|s| format!("%{}%", like_escape(s)));
        let filter = "(?1 IS NULL OR (first_name || ' ' || last_name) LIKE ?1 ESCAPE '\\' OR email LIKE ?1 ESCAPE '\\' \
             OR department LIKE ?1 ESCAPE '\\' OR employee_id LIKE ?1 ESCAPE '\\') AND (?2 IS NULL OR integration_id = ?2) \
             AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR department = ?4) AND (?5 IS NULL OR manager_id = ?5) \
             AND (?6 IS NULL OR (informed_at IS NOT NULL) = ?6)";
        let filters = params![
            pattern,
            query.integration.map(|i| i.0),
            query.status.map(UserStatus::as_str),
            query.department,
            query.manager.map(|m| m.0),
            query.informed,
        ];
        let total: u64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM users WHERE {filter}"), filters, |r| r.get(0))
            .map_err(sql)?;
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE {filter} ORDER BY last_name, first_name, id LIMIT ?7 OFFSET ?8"
            ))
            .map_err(sql)?;
        let page = params![query.limit.max(1), query.offset];
        let all: Vec<&dyn rusqlite::ToSql> = filters.iter().chain(page.iter()).copied().collect();
        let users =
            stmt.query_map(all.as_slice(), user_from_row).map_err(sql)?.collect::<Result<_, _>>().map_err(sql)?;
        Ok((users, total))
    }

    fn facets(&self) -> Result<Facets, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT DISTINCT department FROM users WHERE department IS NOT NULL AND department <> '' ORDER BY department")
            .map_err(sql)?;
        let departments = stmt.query_map([], |r| r.get(0)).map_err(sql)?.collect::<Result<_, _>>().map_err(sql)?;
        let mut stmt = conn
            .prepare(
                "SELECT id, first_name, last_name, preferred_name FROM users \
                 WHERE id IN (SELECT manager_id FROM users WHERE manager_id IS NOT NULL) ORDER BY last_name, first_name, id",
            )
            .map_err(sql)?;
        let managers = stmt
            .query_map([], |r| {
                let (first, last, preferred): (String, String, Option<String>) = (r.get(1)?, r.get(2)?, r.get(3)?);
                Ok((UserId(r.get(0)?), display_name(&first, &last, preferred.as_deref())))
            })
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        Ok(Facets { departments, managers })
    }

    fn users_for_sync(&self, integration: IntegrationId) -> Result<Vec<User>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE integration_id = ?1 OR integration_id IS NULL ORDER BY id"
            ))
            .map_err(sql)?;
        stmt.query_map([integration.0], user_from_row).map_err(sql)?.collect::<Result<_, _>>().map_err(sql)
    }

    fn index(&self) -> Result<Vec<IndexEntry>, StoreError> {
        const INDEX_COLUMNS: [&str; 6] = ["id", "manager_id", "email", "first_name", "last_name", "preferred_name"];
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {} FROM users", INDEX_COLUMNS.join(", "))).map_err(sql)?;
        stmt.query_map([], |r| {
            let (first, last, preferred): (String, String, Option<String>) = (
                r.get(col!(INDEX_COLUMNS, "first_name"))?,
                r.get(col!(INDEX_COLUMNS, "last_name"))?,
                r.get(col!(INDEX_COLUMNS, "preferred_name"))?,
            );
            Ok(IndexEntry {
                id: UserId(r.get(col!(INDEX_COLUMNS, "id"))?),
                manager_id: r.get::<_, Option<i64>>(col!(INDEX_COLUMNS, "manager_id"))?.map(UserId),
                email: Email::parse(&r.get::<_, String>(col!(INDEX_COLUMNS, "email"))?).map_err(text_error)?,
                name: display_name(&first, &last, preferred.as_deref()),
            })
        })
        .map_err(sql)?
        .collect::<Result<_, _>>()
        .map_err(sql)
    }
}
