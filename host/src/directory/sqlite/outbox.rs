//! The mail outbox and set-password invitations: queued in the same
//! transaction as what caused them, delivered by the courier.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::people::{USER_COLUMNS, user_from_row};
use super::{SqliteStore, enum_text, parse_enum, sql};
use crate::directory::*;
use crate::mail::{MailRecord, Message};

const MAIL_COLUMNS: &str = "id, kind, recipient, subject, text_body, html_body, message_id, state, attempts, \
     last_error, created_at, sent_at";

fn mail_from_row(row: &Row<'_>) -> rusqlite::Result<MailRecord> {
    Ok(MailRecord {
        id: row.get("id")?,
        kind: parse_enum(row.get("kind")?)?,
        recipient: row.get("recipient")?,
        subject: row.get("subject")?,
        text: row.get("text_body")?,
        html: row.get("html_body")?,
        message_id: row.get("message_id")?,
        state: parse_enum(row.get("state")?)?,
        attempts: row.get("attempts")?,
        last_error: row.get("last_error")?,
        created_at: row.get("created_at")?,
        sent_at: row.get("sent_at")?,
    })
}

fn insert_mail(
    tx: &rusqlite::Connection,
    m: &Message,
    user: Option<UserId>,
    run: Option<RunId>,
    now: DateTime<Utc>,
) -> rusqlite::Result<i64> {
    // One Message-ID for every attempt: a re-send is recognisably the same message.
    let message_id = format!("<{}@hrsync>", &crate::accounts::random_token("")[..32]);
    tx.prepare_cached(
        "INSERT INTO outbox (kind, recipient, subject, text_body, html_body, message_id, user_id, run_id, next_attempt_at, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
    )?
    .execute(params![enum_text(&m.kind), m.to.as_str(), m.subject, m.text, m.html, message_id, user.map(|u| u.0), run.map(|r| r.0), now])?;
    Ok(tx.last_insert_rowid())
}

/// Queues invitations for the active users among `users`; with `only_new`,
/// only for those never informed. Marks them informed.
pub(super) fn invite_tx(
    tx: &rusqlite::Connection,
    users: &[UserId],
    writer: &dyn InvitationWriter,
    run: Option<RunId>,
    only_new: bool,
    now: DateTime<Utc>,
) -> rusqlite::Result<Vec<UserId>> {
    let mut invited = Vec::new();
    let mut find = tx.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id = ?1 AND status = 'active' AND (?2 = 0 OR informed_at IS NULL)"
    ))?;
    for &id in users {
        let Some(user) = find.query_row(params![id.0, only_new], user_from_row).optional()? else { continue };
        let token = crate::accounts::random_token("");
        let expires = now + writer.valid_for();
        tx.prepare_cached("DELETE FROM invitations WHERE user_id = ?1 AND used_at IS NULL")?.execute([id.0])?;
        tx.prepare_cached(
            "INSERT INTO invitations (user_id, token_hash, expires_at, created_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![id.0, crate::accounts::token_hash(&token), expires, now])?;
        insert_mail(tx, &writer.write(&user.profile, &token, expires), Some(id), run, now)?;
        tx.prepare_cached("UPDATE users SET informed_at = ?2 WHERE id = ?1")?.execute(params![id.0, now])?;
        invited.push(id);
    }
    Ok(invited)
}

impl OutboxStore for SqliteStore {
    fn invite(
        &self,
        users: &[UserId],
        writer: &dyn InvitationWriter,
        now: DateTime<Utc>,
    ) -> Result<Vec<UserId>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sql)?;
        let invited = invite_tx(&tx, users, writer, None, false, now).map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(invited)
    }

    fn enqueue_mail(&self, message: &Message, run: Option<RunId>, now: DateTime<Utc>) -> Result<i64, StoreError> {
        insert_mail(&self.conn(), message, None, run, now).map_err(sql)
    }

    fn claim_mail(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> Result<Vec<MailRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql)?;
        // Due: queued and its time has come, or claimed by a worker whose
        // lease ran out (it crashed before recording the outcome).
        let due: Vec<MailRecord> = tx
            .prepare(&format!(
                "SELECT {MAIL_COLUMNS} FROM outbox WHERE (state = 'queued' AND next_attempt_at <= ?1) \
                 OR (state = 'sending' AND lease_until <= ?1) ORDER BY id LIMIT ?2"
            ))
            .map_err(sql)?
            .query_map(params![now, limit], mail_from_row)
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        let mut claim =
            tx.prepare_cached("UPDATE outbox SET state = 'sending', lease_until = ?2 WHERE id = ?1").map_err(sql)?;
        for m in &due {
            claim.execute(params![m.id, now + lease]).map_err(sql)?;
        }
        drop(claim);
        tx.commit().map_err(sql)?;
        Ok(due)
    }

    fn mail_sent(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE outbox SET state = 'sent', sent_at = ?2, attempts = attempts + 1, lease_until = NULL, last_error = NULL WHERE id = ?1",
                params![id, at],
            )
            .map_err(sql)?;
        Ok(())
    }

    fn mail_failed(&self, id: i64, error: &str, retry_at: Option<DateTime<Utc>>) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE outbox SET state = CASE WHEN ?3 IS NULL THEN 'failed' ELSE 'queued' END, \
                 next_attempt_at = COALESCE(?3, next_attempt_at), attempts = attempts + 1, lease_until = NULL, \
                 last_error = ?2 WHERE id = ?1",
                params![id, error, retry_at],
            )
            .map_err(sql)?;
        Ok(())
    }

    fn mails(&self, offset: u64, limit: u64) -> Result<(Vec<MailRecord>, u64), StoreError> {
        let conn = self.conn();
        let total: u64 = conn.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0)).map_err(sql)?;
        let mails = conn
            .prepare(&format!("SELECT {MAIL_COLUMNS} FROM outbox ORDER BY id DESC LIMIT ?1 OFFSET ?2"))
            .map_err(sql)?
            .query_map(params![limit, offset], mail_from_row)
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        Ok((mails, total))
    }

    fn invitation_user(&self, token: &str, now: DateTime<Utc>) -> Result<Option<User>, StoreError> {
        let conn = self.conn();
        let user: Option<i64> = conn
            .query_row(
                "SELECT user_id FROM invitations WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
                params![crate::accounts::token_hash(token), now],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        drop(conn);
        user.map(|u| self.user(UserId(u))).transpose()
    }

    fn redeem_invitation(
        &self,
        token: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql)?;
        let found: Option<(i64, i64)> = tx
            .query_row(
                "SELECT id, user_id FROM invitations WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
                params![crate::accounts::token_hash(token), now],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql)?;
        let Some((invitation, user)) = found else { return Ok(None) };
        tx.execute("UPDATE invitations SET used_at = ?2 WHERE id = ?1", params![invitation, now]).map_err(sql)?;
        tx.execute("UPDATE users SET password_hash = ?2 WHERE id = ?1", params![user, password_hash]).map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(Some(UserId(user)))
    }
}
