//! Runs of one tenant: leases across replicas, their end, the history they
//! record, and applying a run's writes in one transaction.
//!
//! A run begins under a row lock on its integration, so replicas starting
//! one at once take turns; the unique index on live runs backs that up. A
//! replica that dies stops renewing its lease, and after [`LEASE_TTL`]
//! the next run of the integration — on any replica — records it
//! interrupted and starts afresh; nothing of it was applied.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::outbox::{Rendered, queue_invitations, render};
use super::overrides::{record_kept, set_overrides};
use super::people::{ProfileValues, USER_COLUMNS, insert_user, user_from_row};
use super::{PgStore, parse_enum, sql, unsigned};
use crate::directory::*;

const RUN_COLUMNS: &str = "id, integration_id, kind, trigger, actor, state, preview_id, reverts_id, started_at, \
     finished_at, counts, error, fingerprint, since, owner, heartbeat_at, cancel_requested_by";

fn stored(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(anyhow::anyhow!("a stored run's {what} cannot be read: {e}"))
}

/// A run as stored, and as it is ([`Run::seen_at`]).
fn run_from_row(row: &Row) -> Result<Run, StoreError> {
    let run = Run {
        id: RunId(row.get("id")),
        integration_id: IntegrationId(row.get("integration_id")),
        kind: parse_enum(row, "kind")?,
        trigger: parse_enum(row, "trigger")?,
        actor: row.get("actor"),
        state: parse_enum(row, "state")?,
        preview_id: row.get::<_, Option<i64>>("preview_id").map(RunId),
        reverts_id: row.get::<_, Option<i64>>("reverts_id").map(RunId),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
        counts: serde_json::from_str(row.get("counts")).map_err(|e| stored("counts", e))?,
        error: row.get("error"),
        fingerprint: row.get("fingerprint"),
        since: row.get("since"),
        owner: row.get("owner"),
        cancel_requested_by: row.get("cancel_requested_by"),
    };
    Ok(run.seen_at(row.get("heartbeat_at"), Utc::now()))
}

fn change_from_row(row: &Row) -> Result<ChangeRecord, StoreError> {
    Ok(ChangeRecord {
        user_id: row.get::<_, Option<i64>>("user_id").map(UserId),
        source_id: row.get("source_id"),
        name: row.get("name"),
        kind: ChangeKind::parse(row.get("kind")).map_err(|e| stored("change", e))?,
        fields: serde_json::from_str(row.get("fields")).map_err(|e| stored("change", e))?,
    })
}

fn seq(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

async fn write_changes(
    tx: &impl GenericClient,
    run: RunId,
    changes: impl Iterator<Item = (Option<UserId>, &ChangeRecord)>,
) -> Result<(), StoreError> {
    let insert = tx
        .prepare(
            "INSERT INTO run_changes (run_id, seq, user_id, source_id, name, kind, fields) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await
        .map_err(sql)?;
    for (i, (user, c)) in changes.enumerate() {
        let fields = serde_json::to_string(&c.fields).expect("field changes serialise");
        tx.execute(&insert, &[&run.0, &seq(i), &user.map(|u| u.0), &c.source_id, &c.name, &c.kind.as_str(), &fields])
            .await
            .map_err(sql)?;
    }
    Ok(())
}

async fn write_issues(tx: &impl GenericClient, run: RunId, issues: &[IssueRecord]) -> Result<(), StoreError> {
    let insert = tx
        .prepare(
            "INSERT INTO run_issues (run_id, seq, source_id, name, field, severity, message) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await
        .map_err(sql)?;
    for (i, issue) in issues.iter().enumerate() {
        tx.execute(
            &insert,
            &[&run.0, &seq(i), &issue.source_id, &issue.name, &issue.field, &issue.severity.as_str(), &issue.message],
        )
        .await
        .map_err(sql)?;
    }
    Ok(())
}

impl PgStore {
    /// Records a run's end — only while this handle owns the run, so a
    /// replica that lost its lease cannot overwrite what another recorded.
    /// An import refuses to end once someone asked to cancel it.
    async fn end_run(
        &self,
        tx: &impl GenericClient,
        id: RunId,
        state: RunState,
        counts: &Counts,
        error: Option<&str>,
        fingerprint: Option<&str>,
    ) -> Result<(), StoreError> {
        let refuse_cancelled = state != RunState::Cancelled;
        let counts = serde_json::to_string(counts).expect("counts serialise");
        let n = tx
            .execute(
                "UPDATE runs SET state = $2, counts = $3, error = $4, fingerprint = $5, finished_at = $6 \
                 WHERE id = $1 AND owner = $7 AND state = 'running' AND (NOT $8 OR cancel_requested_at IS NULL)",
                &[
                    &id.0,
                    &enum_name(&state),
                    &counts,
                    &error,
                    &fingerprint,
                    &Utc::now(),
                    &&*self.owner,
                    &refuse_cancelled,
                ],
            )
            .await
            .map_err(sql)?;
        if n == 1 {
            return Ok(());
        }
        let row = tx
            .query_opt("SELECT state, owner, cancel_requested_at FROM runs WHERE id = $1", &[&id.0])
            .await
            .map_err(sql)?
            .ok_or(StoreError::NoRun(id))?;
        let (state_now, owner, cancel): (String, Option<String>, Option<DateTime<Utc>>) =
            (row.get(0), row.get(1), row.get(2));
        if state_now == "running" && owner.as_deref() == Some(&*self.owner) && cancel.is_some() {
            Err(StoreError::Cancelled(id))
        } else {
            Err(StoreError::LeaseLost(id))
        }
    }

    /// Renders the invitations an import sends, before its transaction:
    /// for the people it creates or updates, with the profile it writes;
    /// for anyone else, as stored.
    fn render_invitations(&self, apply: &Apply, now: DateTime<Utc>) -> Result<Vec<(Target, Rendered)>, StoreError> {
        let Some(writer) = &apply.invite else { return Ok(Vec::new()) };
        let planned =
            |t: Target| apply.creates.iter().chain(&apply.updates).find(|u| u.target == t).map(|u| &u.profile);
        let unplanned: Vec<i64> = apply
            .invitees
            .iter()
            .filter(|t| planned(**t).is_none())
            .filter_map(|t| match t {
                Target::Existing(id) => Some(id.0),
                Target::New(_) => None,
            })
            .collect();
        let rows = if unplanned.is_empty() {
            Vec::new()
        } else {
            self.block(async {
                self.client()
                    .await?
                    .query(
                        &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ANY($1) AND tenant_id = $2"),
                        &[&unplanned, &self.tenant.0],
                    )
                    .await
                    .map_err(sql)
            })?
        };
        let stored: Vec<User> = rows.iter().map(user_from_row).collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for &target in &apply.invitees {
            let profile = planned(target).or_else(|| match target {
                Target::Existing(id) => stored.iter().find(|u| u.id == id).map(|u| &u.profile),
                Target::New(_) => None,
            });
            if let Some(profile) = profile {
                let rendered = render([(UserId(0), profile)], writer, now).pop().expect("one rendered");
                out.push((target, rendered));
            }
        }
        Ok(out)
    }
}

impl RunStore for PgStore {
    fn owner(&self) -> &str {
        &self.owner
    }

    fn begin_run(&self, run: &NewRun) -> Result<RunId, StoreError> {
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(sql)?;
            // The integration's row lock: replicas beginning a run of it take turns.
            tx.query_opt(
                "SELECT id FROM integrations WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
                &[&run.integration_id.0, &self.tenant.0],
            )
            .await
            .map_err(sql)?
            .ok_or(StoreError::NoIntegration(run.integration_id))?;
            let now = Utc::now();
            let live = tx
                .query_opt(
                    &format!("SELECT {RUN_COLUMNS} FROM runs WHERE integration_id = $1 AND state IN ('queued', 'running')"),
                    &[&run.integration_id.0],
                )
                .await
                .map_err(sql)?;
            if let Some(row) = live {
                let holder = run_from_row(&row)?;
                let heartbeat: Option<DateTime<Utc>> = row.get("heartbeat_at");
                if !lease_expired(heartbeat, now) {
                    return Err(StoreError::AlreadyRunning(Box::new(Holder::of(holder))));
                }
                tx.execute(
                    "UPDATE runs SET state = 'interrupted', finished_at = $2, error = $3 WHERE id = $1",
                    &[&holder.id.0, &now, &interrupted_message(holder.owner.as_deref())],
                )
                .await
                .map_err(sql)?;
            }
            let row = tx
                .query_one(
                    "INSERT INTO runs (tenant_id, integration_id, kind, trigger, actor, state, preview_id, reverts_id, \
                     started_at, since, owner, heartbeat_at) VALUES ($1, $2, $3, $4, $5, 'running', $6, $7, $8, $9, $10, $8) \
                     RETURNING id",
                    &[
                        &self.tenant.0,
                        &run.integration_id.0,
                        &enum_name(&run.kind),
                        &enum_name(&run.trigger),
                        &run.actor,
                        &run.preview_id.map(|r| r.0),
                        &run.reverts_id.map(|r| r.0),
                        &now,
                        &run.since,
                        &&*self.owner,
                    ],
                )
                .await
                .map_err(sql)?;
            tx.commit().await.map_err(sql)?;
            Ok(RunId(row.get(0)))
        })
    }

    fn heartbeat(&self, run: RunId) -> Result<Lease, StoreError> {
        let row = self.block(async {
            self.client()
                .await?
                .query_opt(
                    "UPDATE runs SET heartbeat_at = $3 WHERE id = $1 AND owner = $2 AND state = 'running' \
                     RETURNING CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE COALESCE(cancel_requested_by, '') END",
                    &[&run.0, &&*self.owner, &Utc::now()],
                )
                .await
                .map_err(sql)
        })?;
        Ok(match row.map(|r| r.get::<_, Option<String>>(0)) {
            None => Lease::Lost,
            Some(None) => Lease::Held,
            Some(Some(by)) => Lease::CancelRequested { by: Some(by).filter(|b| !b.is_empty()) },
        })
    }

    fn request_cancel(&self, id: RunId, by: Option<&str>) -> Result<Run, StoreError> {
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(sql)?;
            let row = tx
                .query_opt(
                    "SELECT state, heartbeat_at FROM runs WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
                    &[&id.0, &self.tenant.0],
                )
                .await
                .map_err(sql)?
                .ok_or(StoreError::NoRun(id))?;
            let state: RunState = parse_enum(&row, "state")?;
            let heartbeat: Option<DateTime<Utc>> = row.get("heartbeat_at");
            let now = Utc::now();
            if !state.is_live() {
                return Err(StoreError::NotRunning { run: id, state });
            }
            if lease_expired(heartbeat, now) {
                // Nobody is left to stop it: record it cancelled now.
                let who = by.map_or(String::new(), |b| format!(" by {b}"));
                let error = format!("cancelled{who}; its process had already stopped; nothing was applied");
                tx.execute(
                    "UPDATE runs SET state = 'cancelled', finished_at = $2, cancel_requested_at = $2, \
                     cancel_requested_by = $3, error = $4 WHERE id = $1",
                    &[&id.0, &now, &by, &error],
                )
                .await
                .map_err(sql)?;
            } else {
                tx.execute(
                    "UPDATE runs SET cancel_requested_at = $2, cancel_requested_by = $3 WHERE id = $1",
                    &[&id.0, &now, &by],
                )
                .await
                .map_err(sql)?;
            }
            tx.commit().await.map_err(sql)
        })?;
        self.run(id)
    }

    fn finish_run(&self, id: RunId, outcome: &RunOutcome) -> Result<(), StoreError> {
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(sql)?;
            write_changes(&tx, id, outcome.changes.iter().map(|c| (c.user_id, c))).await?;
            write_issues(&tx, id, &outcome.issues).await?;
            record_kept(&tx, id, &outcome.kept, Utc::now()).await?;
            self.end_run(
                &tx,
                id,
                outcome.state,
                &outcome.counts,
                outcome.error.as_deref(),
                outcome.fingerprint.as_deref(),
            )
            .await?;
            tx.commit().await.map_err(sql)
        })
    }

    fn apply(&self, id: RunId, apply: &Apply, fingerprint: &str) -> Result<(), StoreError> {
        let now = Utc::now();
        let mut invitations = self.render_invitations(apply, now)?;
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(sql)?;
            // Emails may move between users within one run (A takes B's old
            // address): park changing addresses first so UNIQUE holds throughout.
            let park = tx
                .prepare("UPDATE users SET email = '~' || id || '@parked.invalid' WHERE id = $1 AND email <> $2")
                .await
                .map_err(sql)?;
            for u in &apply.updates {
                if let Target::Existing(uid) = u.target {
                    tx.execute(&park, &[&uid.0, &u.profile.email.as_str()]).await.map_err(sql)?;
                }
            }
            let mut ids: Vec<UserId> = Vec::with_capacity(apply.creates.len());
            for u in &apply.creates {
                ids.push(insert_user(&tx, self.tenant, &u.profile, &u.managed_by, u.missing_runs, now).await?);
            }
            let resolve = |t: Target| match t {
                Target::Existing(id) => id,
                Target::New(i) => ids[i],
            };
            let update = tx
                .prepare(
                    "UPDATE users SET email = $1, first_name = $2, last_name = $3, preferred_name = $4, gender = $5, \
                     status = $6, start_date = $7, termination_date = $8, job_title = $9, employee_id = $10, \
                     department = $11, office = $12, team = $13, custom = $14, profile_url = $15, integration_id = $16, \
                     source_id = $17, missing_runs = $18, updated_at = $19 WHERE id = $20 AND tenant_id = $21",
                )
                .await
                .map_err(sql)?;
            for u in &apply.updates {
                let values = ProfileValues::of(&u.profile);
                let integration = u.managed_by.as_ref().map(|m| m.0.0);
                let source = u.managed_by.as_ref().map(|m| m.1.clone());
                let (missing, user) = (unsigned(u.missing_runs), resolve(u.target).0);
                let mut params = values.params();
                params.extend([
                    &integration as &(dyn ToSql + Sync),
                    &source,
                    &missing,
                    &now,
                    &user,
                    &self.tenant.0,
                ]);
                if tx.execute(&update, &params).await.map_err(sql)? == 0 {
                    return Err(StoreError::NoUser(UserId(user)));
                }
            }
            // Managers last: every user of the run exists now.
            let manager = tx.prepare("UPDATE users SET manager_id = $2 WHERE id = $1").await.map_err(sql)?;
            for u in apply.creates.iter().chain(&apply.updates) {
                tx.execute(&manager, &[&resolve(u.target).0, &u.manager.map(|m| resolve(m).0)]).await.map_err(sql)?;
            }
            let history: Vec<(Option<UserId>, ChangeRecord)> = apply
                .changes
                .iter()
                .map(|c| {
                    let fields = c
                        .fields
                        .iter()
                        .map(|f| {
                            if f.field == Field::Manager {
                                FieldChange { after_id: c.manager_after.map(resolve), ..f.clone() }
                            } else {
                                f.clone()
                            }
                        })
                        .collect();
                    let user = resolve(c.target);
                    let record = ChangeRecord {
                        user_id: Some(user),
                        source_id: c.source_id.clone(),
                        name: c.name.clone(),
                        kind: c.kind,
                        fields,
                    };
                    (Some(user), record)
                })
                .collect();
            write_changes(&tx, id, history.iter().map(|(u, c)| (*u, c))).await?;
            write_issues(&tx, id, &apply.issues).await?;
            set_overrides(&tx, &apply.keep, now).await?;
            record_kept(&tx, id, &apply.kept, now).await?;
            let rendered: Vec<Rendered> = invitations
                .drain(..)
                .map(|(target, mut r)| {
                    r.user = resolve(target);
                    r
                })
                .collect();
            queue_invitations(&tx, self.tenant, &rendered, Some(id), true, now).await?;
            // Last, and fenced: a run that lost its lease or was cancelled
            // rolls everything above back.
            self.end_run(&tx, id, RunState::Succeeded, &apply.counts, None, Some(fingerprint)).await?;
            tx.commit().await.map_err(sql)
        })
    }

    fn run(&self, id: RunId) -> Result<Run, StoreError> {
        let row = self.block(async {
            self.client()
                .await?
                .query_opt(
                    &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1 AND tenant_id = $2"),
                    &[&id.0, &self.tenant.0],
                )
                .await
                .map_err(sql)
        })?;
        run_from_row(&row.ok_or(StoreError::NoRun(id))?)
    }

    fn history(
        &self,
        integration: Option<IntegrationId>,
        filter: RunFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Run>, StoreError> {
        // A run changed something when any count but `unchanged` and
        // `issues` is above zero.
        let changed = ["created", "updated", "manager_changes", "deactivated", "reactivated", "linked", "missing"]
            .map(|c| format!("COALESCE((counts::jsonb ->> '{c}')::bigint, 0)"))
            .join(" + ");
        let integration = integration.map(|i| i.0);
        let (limit, offset) = (i64::try_from(limit).unwrap_or(i64::MAX), i64::try_from(offset).unwrap_or(i64::MAX));
        let rows = self.block(async {
            self.client()
                .await?
                .query(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM runs WHERE tenant_id = $7 AND ($1::bigint IS NULL OR integration_id = $1) \
                         AND ($4 OR kind <> 'preview') AND ($5 OR state IN ('queued', 'running', 'succeeded')) \
                         AND ($6 OR state <> 'succeeded' OR ({changed}) > 0) ORDER BY id DESC LIMIT $2 OFFSET $3"
                    ),
                    &[
                        &integration,
                        &limit,
                        &offset,
                        &filter.previews,
                        &filter.unapplied,
                        &filter.unchanged,
                        &self.tenant.0,
                    ],
                )
                .await
                .map_err(sql)
        })?;
        rows.iter().map(run_from_row).collect()
    }

    fn run_changes(&self, id: RunId, user: Option<UserId>) -> Result<Vec<ChangeRecord>, StoreError> {
        let user = user.map(|u| u.0);
        let rows = self.block(async {
            self.client()
                .await?
                .query(
                    "SELECT c.user_id, c.source_id, c.name, c.kind, c.fields FROM run_changes c JOIN runs r ON r.id = c.run_id \
                     WHERE c.run_id = $1 AND r.tenant_id = $3 AND ($2::bigint IS NULL OR c.user_id = $2) ORDER BY c.seq",
                    &[&id.0, &user, &self.tenant.0],
                )
                .await
                .map_err(sql)
        })?;
        rows.iter().map(change_from_row).collect()
    }

    fn run_changes_page(&self, id: RunId, filter: &ChangeFilter) -> Result<(Vec<ChangeRecord>, u64), StoreError> {
        let pattern = filter.search.as_ref().map(|s| format!("%{}%", super::people::like_escape(s)));
        let kind = filter.kind.map(|k| k.as_str());
        let user = filter.user.map(|u| u.0);
        let limit = i64::try_from(filter.limit.max(1)).unwrap_or(i64::MAX);
        let offset = i64::try_from(filter.offset).unwrap_or(i64::MAX);
        let condition = "c.run_id = $1 AND r.tenant_id = $5 AND ($2::bigint IS NULL OR c.user_id = $2) \
             AND ($3::text IS NULL OR c.kind = $3) AND ($4::text IS NULL OR c.name ILIKE $4 ESCAPE '\\')";
        let (total, rows) = self.block(async {
            let client = self.client().await?;
            let params: [&(dyn ToSql + Sync); 5] = [&id.0, &user, &kind, &pattern, &self.tenant.0];
            let total: i64 = client
                .query_one(
                    &format!("SELECT COUNT(*) FROM run_changes c JOIN runs r ON r.id = c.run_id WHERE {condition}"),
                    &params,
                )
                .await
                .map_err(sql)?
                .get(0);
            let mut paged = params.to_vec();
            paged.extend([&limit as &(dyn ToSql + Sync), &offset]);
            let rows = client
                .query(
                    &format!(
                        "SELECT c.user_id, c.source_id, c.name, c.kind, c.fields FROM run_changes c \
                         JOIN runs r ON r.id = c.run_id WHERE {condition} ORDER BY c.seq LIMIT $6 OFFSET $7"
                    ),
                    &paged,
                )
                .await
                .map_err(sql)?;
            Ok((total, rows))
        })?;
        let page = rows.iter().map(change_from_row).collect::<Result<_, _>>()?;
        Ok((page, u64::try_from(total).unwrap_or(0)))
    }

    fn run_issues(&self, id: RunId) -> Result<Vec<IssueRecord>, StoreError> {
        let rows = self.block(async {
            self.client()
                .await?
                .query(
                    "SELECT i.source_id, i.name, i.field, i.severity, i.message FROM run_issues i \
                     JOIN runs r ON r.id = i.run_id WHERE i.run_id = $1 AND r.tenant_id = $2 ORDER BY i.seq",
                    &[&id.0, &self.tenant.0],
                )
                .await
                .map_err(sql)
        })?;
        rows.iter()
            .map(|r| {
                Ok(IssueRecord {
                    source_id: r.get("source_id"),
                    name: r.get("name"),
                    field: r.get("field"),
                    severity: Severity::parse(r.get("severity")).map_err(|e| stored("issue", e))?,
                    message: r.get("message"),
                })
            })
            .collect()
    }

    fn user_history(&self, user: UserId) -> Result<Vec<(RunId, ChangeRecord)>, StoreError> {
        let rows = self.block(async {
            self.client()
                .await?
                .query(
                    "SELECT c.user_id, c.source_id, c.name, c.kind, c.fields, c.run_id FROM run_changes c \
                     JOIN runs r ON r.id = c.run_id WHERE c.user_id = $1 AND r.tenant_id = $2 AND r.kind <> 'preview' \
                     AND r.state = 'succeeded' ORDER BY c.run_id DESC, c.seq",
                    &[&user.0, &self.tenant.0],
                )
                .await
                .map_err(sql)
        })?;
        rows.iter().map(|r| Ok((RunId(r.get("run_id")), change_from_row(r)?))).collect()
    }

    fn run_stats(&self) -> Result<Vec<RunStat>, StoreError> {
        let count = |c: &str| format!("COALESCE((counts::jsonb ->> '{c}')::bigint, 0)");
        let people = ["created", "updated", "deactivated", "reactivated", "linked"].map(count).join(" + ");
        let rows = self.block(async {
            self.client()
                .await?
                .query(
                    &format!(
                        "SELECT kind, state, COUNT(*) AS runs, \
                         COALESCE(SUM(EXTRACT(EPOCH FROM finished_at - started_at)), 0)::float8 AS seconds, \
                         COALESCE(SUM({people}), 0)::bigint AS people_changed \
                         FROM runs WHERE (tenant_id = $1 OR $1 = $2) GROUP BY kind, state ORDER BY kind, state"
                    ),
                    &[&self.tenant.0, &super::EVERY_TENANT.0],
                )
                .await
                .map_err(sql)
        })?;
        rows.iter()
            .map(|r| {
                Ok(RunStat {
                    kind: parse_enum(r, "kind")?,
                    state: parse_enum(r, "state")?,
                    runs: u64::try_from(r.get::<_, i64>("runs")).unwrap_or(0),
                    seconds: r.get("seconds"),
                    people_changed: u64::try_from(r.get::<_, i64>("people_changed")).unwrap_or(0),
                })
            })
            .collect()
    }
}
