-- Scheduled imports, the transactional mail outbox and set-password links.

-- One row per integration the scheduler has seen; survives restarts so a
-- restart neither skips nor doubles a run.
CREATE TABLE schedules (
    integration_id  INTEGER PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    next_run_at     TEXT    NOT NULL,
    -- Start of the last successful run, full or incremental: the next
    -- incremental run asks for changes since then.
    last_success_at TEXT,
    -- Start of the last successful complete run (deletions are only seen there).
    last_full_at    TEXT,
    -- Automatic runs that failed in a row; the alert goes out once per streak.
    failures        INTEGER NOT NULL DEFAULT 0,
    alerted         INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT
);

-- Emails are written here in the transaction that causes them and sent by a
-- background worker: none is lost on a crash, and a row is sent at most once
-- per successful delivery (it keeps its Message-ID across attempts).
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    kind            TEXT    NOT NULL CHECK (kind IN ('invitation', 'alert')),
    recipient       TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    text_body       TEXT    NOT NULL,
    html_body       TEXT,
    message_id      TEXT    NOT NULL UNIQUE,
    user_id         INTEGER REFERENCES users (id) ON DELETE SET NULL,
    run_id          INTEGER REFERENCES runs (id) ON DELETE SET NULL,
    state           TEXT    NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'failed')) DEFAULT 'queued',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    -- While `sending`: another worker must not take the row before this.
    lease_until     TEXT,
    last_error      TEXT,
    created_at      TEXT    NOT NULL,
    sent_at         TEXT
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

-- Single-use, expiring set-password links; only a hash of the token is kept.
CREATE TABLE invitations (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT    NOT NULL UNIQUE,
    expires_at TEXT    NOT NULL,
    used_at    TEXT,
    created_at TEXT    NOT NULL
);

ALTER TABLE users ADD COLUMN password_hash TEXT;

-- Incremental runs fetch only people changed since this instant.
ALTER TABLE runs ADD COLUMN since TEXT;
