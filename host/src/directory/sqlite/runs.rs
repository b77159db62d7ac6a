//! Runs: leases across processes, their end, the history they record, and
//! applying a run's writes in one transaction.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::outbox::invite_tx;
use super::overrides::{record_kept, set_overrides};
use super::people::{insert_user, like_escape, profile_params};
use super::{SqliteStore, conversion, enum_text, json_text, parse_enum, sql, text_error};
use crate::directory::*;

const RUN_COLUMNS: &str = "id, integration_id, kind, trigger, actor, state, preview_id, reverts_id, started_at, \
     finished_at, counts, error, fingerprint, since, owner, heartbeat_at, cancel_requested_by";

/// A run as stored, and as it is ([`Run::seen_at`]).
fn run_from_row(row: &Row<'_>) -> rusqlite::Result<Run> {
    let counts: String = row.get("counts")?;
    let run = Run {
        id: RunId(row.get("id")?),
        integration_id: IntegrationId(row.get("integration_id")?),
        kind: parse_enum(row.get("kind")?)?,
        trigger: parse_enum(row.get("trigger")?)?,
        actor: row.get("actor")?,
        state: parse_enum(row.get("state")?)?,
        preview_id: row.get::<_, Option<i64>>("preview_id")?.map(RunId),
        reverts_id: row.get::<_, Option<i64>>("reverts_id")?.map(RunId),
        started_at: row.get("started_at")?,
        finished_at: row.get("finished_at")?,
        counts: serde_json::from_str(&counts).map_err(conversion)?,
        error: row.get("error")?,
        fingerprint: row.get("fingerprint")?,
        since: row.get("since")?,
        owner: row.get("owner")?,
        cancel_requested_by: row.get("cancel_requested_by")?,
    };
    Ok(run.seen_at(row.get("heartbeat_at")?, Utc::now()))
}

fn change_from_row(row: &Row<'_>) -> rusqlite::Result<ChangeRecord> {
    let fields: String = row.get("fields")?;
    Ok(ChangeRecord {
        user_id: row.get::<_, Option<i64>>("user_id")?.map(UserId),
        source_id: row.get("source_id")?,
        name: row.get("name")?,
        kind: ChangeKind::parse(&row.get::<_, String>("kind")?).map_err(text_error)?,
        fields: serde_json::from_str(&fields).map_err(conversion)?,
    })
}

fn write_history<'a>(
    tx: &Transaction<'_>,
    run: RunId,
    changes: impl Iterator<Item = (Option<UserId>, &'a ChangeRecord)>,
    issues: &[IssueRecord],
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO run_changes (run_id, seq, user_id, source_id, name, kind, fields) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (seq, (user, c)) in changes.enumerate() {
        insert.execute(params![
            run.0,
            seq,
            user.map(|u| u.0),
            c.source_id,
            c.name,
            c.kind.as_str(),
            json_text(&c.fields)
        ])?;
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO run_issues (run_id, seq, source_id, name, field, severity, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (seq, i) in issues.iter().enumerate() {
        insert.execute(params![run.0, seq, i.source_id, i.name, i.field, i.severity.as_str(), i.message])?;
    }
    Ok(())
}

impl SqliteStore {
    /// Records a run's end — only while this handle owns the run, so a
    /// process that lost its lease cannot overwrite what another recorded.
    /// An import refuses to end once someone asked to cancel it.
    fn end_run(
        &self,
        tx: &Transaction<'_>,
        id: RunId,
        state: RunState,
        counts: &Counts,
        error: Option<&str>,
        fingerprint: Option<&str>,
    ) -> Result<(), StoreError> {
        let refuse_cancelled = state != RunState::Cancelled;
        let n = tx
            .execute(
                "UPDATE runs SET state = ?2, counts = ?3, error = ?4, fingerprint = ?5, finished_at = ?6 \
                 WHERE id = ?1 AND owner = ?7 AND state = 'running' AND (?8 = 0 OR cancel_requested_at IS NULL)",
                params![
                    id.0,
                    enum_text(&state),
                    json_text(counts),
                    error,
                    fingerprint,
                    Utc::now(),
                    self.owner,
                    refuse_cancelled
                ],
            )
            .map_err(sql)?;
        if n == 1 {
            return Ok(());
        }
        let (state_now, owner, cancel): (String, Option<String>, Option<DateTime<Utc>>) = tx
            .query_row("SELECT state, owner, cancel_requested_at FROM runs WHERE id = ?1", [id.0], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(sql)?
            .ok_or(StoreError::NoRun(id))?;
        if state_now == "running" && owner.as_deref() == Some(self.owner.as_str()) && cancel.is_some() {
            Err(StoreError::Cancelled(id))
        } else {
            Err(StoreError::LeaseLost(id))
        }
    }
}

impl RunStore for SqliteStore {
    fn owner(&self) -> &str {
        &self.owner
    }

    fn begin_run(&self, run: &NewRun) -> Result<RunId, StoreError> {
        let mut conn = self.conn();
        // IMMEDIATE: the check and the insert happen under the write lock, so
        // two processes cannot both see the integration free.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql)?;
        let exists: bool = tx
            .query_row("SELECT EXISTS (SELECT 1 FROM integrations WHERE id = ?1)", [run.integration_id.0], |r| r.get(0))
            .map_err(sql)?;
        if !exists {
            return Err(StoreError::NoIntegration(run.integration_id));
        }
        let now = Utc::now();
        let live: Option<(Run, Option<DateTime<Utc>>)> = tx
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE integration_id = ?1 AND state IN ('queued', 'running')"),
                [run.integration_id.0],
                |r| Ok((run_from_row(r)?, r.get("heartbeat_at")?)),
            )
            .optional()
            .map_err(sql)?;
        if let Some((holder, heartbeat)) = live {
            if !lease_expired(heartbeat, now) {
                return Err(StoreError::AlreadyRunning(Box::new(Holder::of(holder))));
            }
            tx.execute(
                "UPDATE runs SET state = 'interrupted', finished_at = ?2, error = ?3 WHERE id = ?1",
                params![holder.id.0, now, interrupted_message(holder.owner.as_deref())],
            )
            .map_err(sql)?;
        }
        tx.execute(
            "INSERT INTO runs (integration_id, kind, trigger, actor, state, preview_id, reverts_id, started_at, since, \
             owner, heartbeat_at) VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7, ?8, ?9, ?7)",
            params![
                run.integration_id.0,
                enum_text(&run.kind),
                enum_text(&run.trigger),
                run.actor,
                run.preview_id.map(|r| r.0),
                run.reverts_id.map(|r| r.0),
                now,
                run.since,
                self.owner,
            ],
        )
        .map_err(sql)?;
        let id = RunId(tx.last_insert_rowid());
        tx.commit().map_err(sql)?;
        Ok(id)
    }

    fn heartbeat(&self, run: RunId) -> Result<Lease, StoreError> {
        let row: Option<Option<String>> = self
            .conn()
            .query_row(
                "UPDATE runs SET heartbeat_at = ?3 WHERE id = ?1 AND owner = ?2 AND state = 'running' \
                 RETURNING CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE COALESCE(cancel_requested_by, '') END",
                params![run.0, self.owner, Utc::now()],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        Ok(match row {
            None => Lease::Lost,
            Some(None) => Lease::Held,
            Some(Some(by)) => Lease::CancelRequested { by: Some(by).filter(|b| !b.is_empty()) },
        })
    }

    fn request_cancel(&self, id: RunId, by: Option<&str>) -> Result<Run, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql)?;
        let (stored, heartbeat): (String, Option<DateTime<Utc>>) = tx
            .query_row("SELECT state, heartbeat_at FROM runs WHERE id = ?1", [id.0], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(sql)?
            .ok_or(StoreError::NoRun(id))?;
        let state: RunState = parse_enum(stored).map_err(sql)?;
        let now = Utc::now();
        if !state.is_live() {
            return Err(StoreError::NotRunning { run: id, state });
        }
        if lease_expired(heartbeat, now) {
            // Nobody is left to stop it: record it cancelled now.
            let who = by.map_or(String::new(), |b| format!(" by {b}"));
            tx.execute(
                "UPDATE runs SET state = 'cancelled', finished_at = ?2, cancel_requested_at = ?2, \
                 cancel_requested_by = ?3, error = ?4 WHERE id = ?1",
                params![id.0, now, by, format!("cancelled{who}; its process had already stopped; nothing was applied")],
            )
            .map_err(sql)?;
        } else {
            tx.execute(
                "UPDATE runs SET cancel_requested_at = ?2, cancel_requested_by = ?3 WHERE id = ?1",
                params![id.0, now, by],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        drop(conn);
        self.run(id)
    }

    fn finish_run(&self, id: RunId, outcome: &RunOutcome) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        write_history(&tx, id, outcome.changes.iter().map(|c| (c.user_id, c)), &outcome.issues).map_err(sql)?;
        record_kept(&tx, id, &outcome.kept, Utc::now()).map_err(sql)?;
        self.end_run(
            &tx,
            id,
            outcome.state,
            &outcome.counts,
            outcome.error.as_deref(),
            outcome.fingerprint.as_deref(),
        )?;
        tx.commit().map_err(sql)
    }

    fn apply(&self, id: RunId, apply: &Apply, fingerprint: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        let now = Utc::now();
        // Emails may move between users within one run (A takes B's old
        // address): park changing addresses first so UNIQUE holds throughout.
        {
            let mut park = tx
                .prepare_cached("UPDATE users SET email = '~' || id || '@parked.invalid' WHERE id = ?1 AND email != ?2")
                .map_err(sql)?;
            for u in &apply.updates {
                if let Target::Existing(uid) = u.target {
                    park.execute(params![uid.0, u.profile.email.as_str()]).map_err(sql)?;
                }
            }
        }
        let mut ids: Vec<UserId> = Vec::with_capacity(apply.creates.len());
        for u in &apply.creates {
            ids.push(insert_user(&tx, &u.profile, &u.managed_by, u.missing_runs, now).map_err(sql)?);
        }
        let resolve = |t: Target| match t {
            Target::Existing(id) => id,
            Target::New(i) => ids[i],
        };
        {
            let mut update = tx
                .prepare_cached(
                    "UPDATE users SET email = ?1, first_name = ?2, last_name = ?3, preferred_name = ?4, gender = ?5, \
                     status = ?6, start_date = ?7, termination_date = ?8, job_title = ?9, employee_id = ?10, \
                     department = ?11, office = ?12, team = ?13, custom = ?14, profile_url = ?15, integration_id = ?16, \
                     source_id = ?17, missing_runs = ?18, updated_at = ?19 WHERE id = ?20",
                )
                .map_err(sql)?;
            for u in &apply.updates {
                let mut values: Vec<Box<dyn rusqlite::ToSql + '_>> = profile_params(&u.profile).into_iter().collect();
                values.push(Box::new(u.managed_by.as_ref().map(|m| m.0.0)));
                values.push(Box::new(u.managed_by.as_ref().map(|m| m.1.clone())));
                values.push(Box::new(u.missing_runs));
                values.push(Box::new(now));
                values.push(Box::new(resolve(u.target).0));
                update.execute(rusqlite::params_from_iter(values.iter().map(|b| b.as_ref()))).map_err(sql)?;
            }
            // Managers last: every user of the run exists now.
            let mut manager = tx.prepare_cached("UPDATE users SET manager_id = ?2 WHERE id = ?1").map_err(sql)?;
            for u in apply.creates.iter().chain(&apply.updates) {
                manager.execute(params![resolve(u.target).0, u.manager.map(|m| resolve(m).0)]).map_err(sql)?;
            }
        }
        // History rows are written straight from the plan: no second copy of
        // every change in memory.
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO run_changes (run_id, seq, user_id, source_id, name, kind, fields) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(sql)?;
            for (seq, c) in apply.changes.iter().enumerate() {
                let fields = c.fields.iter().map(|f| {
                    if f.field == Field::Manager {
                        FieldChange { after_id: c.manager_after.map(resolve), ..f.clone() }
                    } else {
                        f.clone()
                    }
                });
                let fields = json_text(&fields.collect::<Vec<_>>());
                insert
                    .execute(params![id.0, seq, resolve(c.target).0, c.source_id, c.name, c.kind.as_str(), fields])
                    .map_err(sql)?;
            }
        }
        write_history(&tx, id, std::iter::empty(), &apply.issues).map_err(sql)?;
        set_overrides(&tx, &apply.keep, now).map_err(sql)?;
        record_kept(&tx, id, &apply.kept, now).map_err(sql)?;
        if let Some(invite) = &apply.invite {
            let invitees: Vec<UserId> = apply.invitees.iter().map(|t| resolve(*t)).collect();
            invite_tx(&tx, &invitees, invite, Some(id), true, now).map_err(sql)?;
        }
        // Last, and fenced: a run that lost its lease or was cancelled rolls
        // everything above back.
        self.end_run(&tx, id, RunState::Succeeded, &apply.counts, None, Some(fingerprint))?;
        tx.commit().map_err(sql)
    }

    fn run(&self, id: RunId) -> Result<Run, StoreError> {
        self.conn()
            .query_row(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"), [id.0], run_from_row)
            .optional()
            .map_err(sql)?
            .ok_or(StoreError::NoRun(id))
    }

    fn history(
        &self,
        integration: Option<IntegrationId>,
        filter: RunFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Run>, StoreError> {
        let conn = self.conn();
        // A run changed something when any count but `unchanged` and
        // `issues` is above zero.
        let changed = ["created", "updated", "manager_changes", "deactivated", "reactivated", "linked", "missing"]
            .map(|c| format!("COALESCE(json_extract(counts, '$.{c}'), 0)"))
            .join(" + ");
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR integration_id = ?1) \
                 AND (?4 OR kind != 'preview') \
                 AND (?5 OR state IN ('queued', 'running', 'succeeded')) \
                 AND (?6 OR state != 'succeeded' OR ({changed}) > 0) \
                 ORDER BY id DESC LIMIT ?2 OFFSET ?3"
            ))
            .map_err(sql)?;
        let query =
            params![integration.map(|i| i.0), limit, offset, filter.previews, filter.unapplied, filter.unchanged];
        stmt.query_map(query, run_from_row).map_err(sql)?.collect::<Result<_, _>>().map_err(sql)
    }

    fn run_changes(&self, id: RunId, user: Option<UserId>) -> Result<Vec<ChangeRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT user_id, source_id, name, kind, fields FROM run_changes \
                 WHERE run_id = ?1 AND (?2 IS NULL OR user_id = ?2) ORDER BY seq",
            )
            .map_err(sql)?;
        stmt.query_map(params![id.0, user.map(|u| u.0)], change_from_row)
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)
    }

    fn run_changes_page(&self, id: RunId, filter: &ChangeFilter) -> Result<(Vec<ChangeRecord>, u64), StoreError> {
        let conn = self.conn();
        let pattern = filter.search.as_ref().map(|s| format!("%{}%", like_escape(s)));
        let kind = filter.kind.map(|k| k.as_str());
        let user = filter.user.map(|u| u.0);
        let condition = "run_id = ?1 AND (?2 IS NULL OR user_id = ?2) AND (?3 IS NULL OR kind = ?3) \
             AND (?4 IS NULL OR name LIKE ?4 ESCAPE '\\')";
        let total: u64 = conn
            .query_row(
                &format!("SELECT COUNT(*) FROM run_changes WHERE {condition}"),
                params![id.0, user, kind, pattern],
                |r| r.get(0),
            )
            .map_err(sql)?;
        let mut stmt = conn
            .prepare(&format!(
                "SELECT user_id, source_id, name, kind, fields FROM run_changes WHERE {condition} ORDER BY seq LIMIT ?5 OFFSET ?6"
            ))
            .map_err(sql)?;
        let page = stmt
            .query_map(params![id.0, user, kind, pattern, filter.limit.max(1), filter.offset], change_from_row)
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        Ok((page, total))
    }

    fn run_issues(&self, id: RunId) -> Result<Vec<IssueRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT source_id, name, field, severity, message FROM run_issues WHERE run_id = ?1 ORDER BY seq")
            .map_err(sql)?;
        stmt.query_map([id.0], |r| {
            Ok(IssueRecord {
                source_id: r.get("source_id")?,
                name: r.get("name")?,
                field: r.get("field")?,
                severity: Severity::parse(&r.get::<_, String>("severity")?).map_err(text_error)?,
                message: r.get("message")?,
            })
        })
        .map_err(sql)?
        .collect::<Result<_, _>>()
        .map_err(sql)
    }

    fn user_history(&self, user: UserId) -> Result<Vec<(RunId, ChangeRecord)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT c.user_id, c.source_id, c.name, c.kind, c.fields, c.run_id FROM run_changes c \
                 JOIN runs r ON r.id = c.run_id WHERE c.user_id = ?1 AND r.kind != 'preview' AND r.state = 'succeeded' ORDER BY c.run_id DESC",
            )
            .map_err(sql)?;
        stmt.query_map([user.0], |r| Ok((RunId(r.get("run_id")?), change_from_row(r)?)))
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)
    }

    fn run_stats(&self) -> Result<Vec<RunStat>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT kind, state, COUNT(*) AS runs, \
                 COALESCE(SUM((julianday(finished_at) - julianday(started_at)) * 86400.0), 0.0) AS seconds, \
                 COALESCE(SUM(COALESCE(json_extract(counts, '$.created'), 0) + COALESCE(json_extract(counts, '$.updated'), 0) \
                   + COALESCE(json_extract(counts, '$.deactivated'), 0) + COALESCE(json_extract(counts, '$.reactivated'), 0) \
                   + COALESCE(json_extract(counts, '$.linked'), 0)), 0) AS people_changed \
                 FROM runs GROUP BY kind, state ORDER BY kind, state",
            )
            .map_err(sql)?;
        stmt.query_map([], |r| {
            Ok(RunStat {
                kind: parse_enum(r.get("kind")?)?,
                state: parse_enum(r.get("state")?)?,
                runs: r.get("runs")?,
                seconds: r.get("seconds")?,
                people_changed: r.get("people_changed")?,
            })
        })
        .map_err(sql)?
        .collect::<Result<_, _>>()
        .map_err(sql)
    }
}
