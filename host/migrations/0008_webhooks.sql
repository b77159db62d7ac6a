-- Changes the source pushes (contract 0.4.0 `hr-events`): one subscription
-- per integration, reached at /hooks/<hook>, and every delivery stored
-- before it is answered, then processed into event-driven runs.
CREATE TABLE subscriptions (
    integration_id   INTEGER PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    -- The unguessable path segment of the webhook endpoint.
    hook             TEXT    NOT NULL UNIQUE,
    -- SHA-256 of the token the source sends; the token itself is not kept.
    token_hash       TEXT    NOT NULL,
    -- The source's id for the subscription, for unsubscribing.
    source_id        TEXT    NOT NULL,
    description      TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    last_delivery_at TEXT
);

CREATE TABLE events (
    id             INTEGER PRIMARY KEY,
    integration_id INTEGER NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    received_at    TEXT    NOT NULL,
    headers        TEXT    NOT NULL,
    body           TEXT    NOT NULL,
    state          TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'ignored', 'failed')),
    outcome        TEXT,
    run_id         INTEGER REFERENCES runs (id) ON DELETE SET NULL,
    processed_at   TEXT
);
CREATE INDEX events_pending ON events (integration_id, id) WHERE state = 'pending';

-- Runs started by an event. SQLite changes a CHECK constraint only by
-- rebuilding the table (see 0004).
CREATE TABLE runs_new (
    id                  INTEGER PRIMARY KEY,
    integration_id      INTEGER NOT NULL REFERENCES integrations (id),
    kind                TEXT    NOT NULL CHECK (kind IN ('preview', 'import', 'revert')),
    trigger             TEXT    NOT NULL CHECK (trigger IN ('manual', 'automatic', 'event')),
    actor               TEXT,
    state               TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'blocked', 'cancelled', 'interrupted')),
    preview_id          INTEGER REFERENCES runs (id),
    reverts_id          INTEGER REFERENCES runs (id),
    started_at          TEXT    NOT NULL,
    finished_at         TEXT,
    counts              TEXT    NOT NULL DEFAULT '{}',
    error               TEXT,
    fingerprint         TEXT,
    since               TEXT,
    owner               TEXT,
    heartbeat_at        TEXT,
    cancel_requested_at TEXT,
    cancel_requested_by TEXT
);
INSERT INTO runs_new SELECT id, integration_id, kind, trigger, actor, state, preview_id, reverts_id, started_at,
    finished_at, counts, error, fingerprint, since, owner, heartbeat_at, cancel_requested_at, cancel_requested_by
FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_integration ON runs (integration_id, id);
CREATE UNIQUE INDEX runs_one_live ON runs (integration_id) WHERE state IN ('queued', 'running');
