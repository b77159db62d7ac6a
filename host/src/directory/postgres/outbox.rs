//! The mail outbox and set-password invitations of one tenant. Replicas
//! drain it together: each claims due messages with `FOR UPDATE SKIP
//! LOCKED`, so a message goes to one replica at a time. A set-password
//! link names no tenant: the token alone finds its invitation.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::people::{USER_COLUMNS, user_from_row};
use super::{PgStore, count, parse_enum, sql};
use crate::directory::*;
use crate::mail::{MailRecord, Message};

const MAIL_COLUMNS: &str = "id, kind, recipient, subject, text_body, html_body, message_id, state, attempts, \
     last_error, created_at, sent_at";

fn mail_from_row(row: &Row) -> Result<MailRecord, StoreError> {
    Ok(MailRecord {
        id: row.get("id"),
        kind: parse_enum(row, "kind")?,
        recipient: row.get("recipient"),
        subject: row.get("subject"),
        text: row.get("text_body"),
        html: row.get("html_body"),
        message_id: row.get("message_id"),
        state: parse_enum(row, "state")?,
        attempts: count(row.get("attempts")),
        last_error: row.get("last_error"),
        created_at: row.get("created_at"),
        sent_at: row.get("sent_at"),
    })
}

async fn insert_mail(
    tx: &impl GenericClient,
    tenant: TenantId,
    m: &Message,
    user: Option<UserId>,
    run: Option<RunId>,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    // One Message-ID for every attempt: a re-send is recognisably the same message.
    let message_id = format!("<{}@hrsync>", &crate::accounts::random_token("")[..32]);
    let row = tx
        .query_one(
            "INSERT INTO outbox (tenant_id, kind, recipient, subject, text_body, html_body, message_id, user_id, run_id, \
             next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
            &[
                &tenant.0,
                &enum_name(&m.kind),
                &m.to.as_str(),
                &m.subject,
                &m.text,
                &m.html,
                &message_id,
                &user.map(|u| u.0),
                &run.map(|r| r.0),
                &now,
            ],
        )
        .await
        .map_err(sql)?;
    Ok(row.get(0))
}

/// An invitation rendered before its transaction: the writer need not be
/// `Sync`, and the store's runtime never calls it.
pub(super) struct Rendered {
    /// Whom it is for; set inside the transaction for people it creates.
    pub(super) user: UserId,
    token_hash: String,
    expires: DateTime<Utc>,
    message: Message,
}

/// Renders an invitation with a fresh token for each user and profile.
pub(super) fn render<'a>(
    people: impl IntoIterator<Item = (UserId, &'a Profile)>,
    writer: &dyn InvitationWriter,
    now: DateTime<Utc>,
) -> Vec<Rendered> {
    people
        .into_iter()
        .map(|(user, profile)| {
            let token = crate::accounts::random_token("");
            let expires = now + writer.valid_for();
            Rendered {
                user,
                token_hash: crate::accounts::token_hash(&token),
                expires,
                message: writer.write(profile, &token, expires),
            }
        })
        .collect()
}

/// Queues the rendered invitations of the tenant's users who are active
/// (with `only_new`, never informed) now, inside the caller's transaction;
/// an earlier unused link stops working. Marks them informed.
pub(super) async fn queue_invitations(
    tx: &impl GenericClient,
    tenant: TenantId,
    rendered: &[Rendered],
    run: Option<RunId>,
    only_new: bool,
    now: DateTime<Utc>,
) -> Result<Vec<UserId>, StoreError> {
    let mut invited = Vec::new();
    for r in rendered {
        let marked = tx
            .execute(
                "UPDATE users SET informed_at = $3 WHERE id = $1 AND tenant_id = $2 AND status = 'active' \
                 AND (NOT $4 OR informed_at IS NULL)",
                &[&r.user.0, &tenant.0, &now, &only_new],
            )
            .await
            .map_err(sql)?;
        if marked == 0 {
            continue;
        }
        tx.execute("DELETE FROM invitations WHERE user_id = $1 AND used_at IS NULL", &[&r.user.0])
            .await
            .map_err(sql)?;
        tx.execute(
            "INSERT INTO invitations (user_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4)",
            &[&r.user.0, &r.token_hash, &r.expires, &now],
        )
        .await
        .map_err(sql)?;
        insert_mail(tx, tenant, &r.message, Some(r.user), run, now).await?;
        invited.push(r.user);
    }
    Ok(invited)
}

impl OutboxStore for PgStore {
    fn invite(
        &self,
        users: &[UserId],
        writer: &dyn InvitationWriter,
        now: DateTime<Utc>,
    ) -> Result<Vec<UserId>, StoreError> {
        let ids: Vec<i64> = users.iter().map(|u| u.0).collect();
        let rows = self.block(async {
            self.client()
                .await?
                .query(
                    &format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE id = ANY($1) AND tenant_id = $2 AND status = 'active'"
                    ),
                    &[&ids, &self.tenant.0],
                )
                .await
                .map_err(sql)
        })?;
        let mut found: Vec<User> = rows.iter().map(user_from_row).collect::<Result<_, _>>()?;
        // In the order asked for, as SQLite's store invites them.
        found.sort_by_key(|u| users.iter().position(|id| *id == u.id));
        let rendered = render(found.iter().map(|u| (u.id, &u.profile)), writer, now);
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(sql)?;
            let invited = queue_invitations(&tx, self.tenant, &rendered, None, false, now).await?;
            tx.commit().await.map_err(sql)?;
            Ok(invited)
        })
    }

    fn enqueue_mail(&self, message: &Message, run: Option<RunId>, now: DateTime<Utc>) -> Result<i64, StoreError> {
        self.block(async {
            let client = self.client().await?;
            insert_mail(&client, self.tenant, message, None, run, now).await
        })
    }

    fn claim_mail(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> Result<Vec<MailRecord>, StoreError> {
        let limit = i64::from(limit);
        let until = now + lease;
        let rows = self.block(async {
            // Due: queued and its time has come, or claimed by a replica
            // whose lease ran out (it died before recording the outcome).
            // SKIP LOCKED: replicas claiming at once take different rows.
            self.client()
                .await?
                .query(
                    &format!(
                        "UPDATE outbox SET state = 'sending', lease_until = $2 WHERE id IN ( \
                         SELECT id FROM outbox WHERE (tenant_id = $4 OR $4 = 0) AND ((state = 'queued' AND next_attempt_at <= $1) \
                         OR (state = 'sending' AND lease_until <= $1)) ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                         RETURNING {MAIL_COLUMNS}"
                    ),
                    &[&now, &until, &limit, &self.tenant.0],
                )
                .await
                .map_err(sql)
        })?;
        let mut claimed: Vec<MailRecord> = rows.iter().map(mail_from_row).collect::<Result<_, _>>()?;
        claimed.sort_by_key(|m| m.id);
        Ok(claimed)
    }

    fn mail_sent(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.block(async {
            self.client()
                .await?
                .execute(
                    "UPDATE outbox SET state = 'sent', sent_at = $2, attempts = attempts + 1, lease_until = NULL, \
                     last_error = NULL WHERE id = $1 AND (tenant_id = $3 OR $3 = 0)",
                    &[&id, &at, &self.tenant.0],
                )
                .await
                .map_err(sql)?;
            Ok(())
        })
    }

    fn mail_failed(&self, id: i64, error: &str, retry_at: Option<DateTime<Utc>>) -> Result<(), StoreError> {
        self.block(async {
            self.client()
                .await?
                .execute(
                    "UPDATE outbox SET state = CASE WHEN $3::timestamptz IS NULL THEN 'failed' ELSE 'queued' END, \
                     next_attempt_at = COALESCE($3, next_attempt_at), attempts = attempts + 1, lease_until = NULL, \
                     last_error = $2 WHERE id = $1 AND (tenant_id = $4 OR $4 = 0)",
                    &[&id, &error, &retry_at, &self.tenant.0],
                )
                .await
                .map_err(sql)?;
            Ok(())
        })
    }

    fn mails(&self, offset: u64, limit: u64) -> Result<(Vec<MailRecord>, u64), StoreError> {
        let (limit, offset) = (i64::try_from(limit).unwrap_or(i64::MAX), i64::try_from(offset).unwrap_or(i64::MAX));
        let (total, rows) = self.block(async {
            let client = self.client().await?;
            let total: i64 = client
                .query_one("SELECT COUNT(*) FROM outbox WHERE tenant_id = $1", &[&self.tenant.0])
                .await
                .map_err(sql)?
                .get(0);
            let rows = client
                .query(
                    &format!(
                        "SELECT {MAIL_COLUMNS} FROM outbox WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
                    ),
                    &[&self.tenant.0, &limit, &offset],
                )
                .await
                .map_err(sql)?;
            Ok((total, rows))
        })?;
        let mails = rows.iter().map(mail_from_row).collect::<Result<_, _>>()?;
        Ok((mails, u64::try_from(total).unwrap_or(0)))
    }

    fn invitation_user(&self, token: &str, now: DateTime<Utc>) -> Result<Option<User>, StoreError> {
        let row = self.block(async {
            self.client()
                .await?
                .query_opt(
                    &format!(
                        "SELECT {} FROM invitations i JOIN users u ON u.id = i.user_id \
                         WHERE i.token_hash = $1 AND i.used_at IS NULL AND i.expires_at > $2",
                        USER_COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
                    ),
                    &[&crate::accounts::token_hash(token), &now],
                )
                .await
                .map_err(sql)
        })?;
        row.as_ref().map(user_from_row).transpose()
    }

    fn redeem_invitation(
        &self,
        token: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError> {
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(sql)?;
            // Used once: the row stays locked until this transaction ends.
            let found = tx
                .query_opt(
                    "UPDATE invitations SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
                     RETURNING user_id",
                    &[&crate::accounts::token_hash(token), &now],
                )
                .await
                .map_err(sql)?;
            let Some(user) = found.map(|r| r.get::<_, i64>(0)) else { return Ok(None) };
            tx.execute("UPDATE users SET password_hash = $2 WHERE id = $1", &[&user, &password_hash])
                .await
                .map_err(sql)?;
            tx.commit().await.map_err(sql)?;
            Ok(Some(UserId(user)))
        })
    }
}
