-- One run per integration, across processes: a run is owned by one process
-- (`owner`), which renews its lease (`heartbeat_at`) while it works; another
-- process treats it as running while the lease is fresh and as interrupted
-- once it expired. Cancelled and interrupted runs get states of their own.
--
-- SQLite changes a CHECK constraint only by rebuilding the table. Migrations
-- run with foreign keys off, so dropping the old table cascades nothing;
-- references to `runs` resolve to the new table once it is renamed.
CREATE TABLE runs_new (
    id                  INTEGER PRIMARY KEY,
    integration_id      INTEGER NOT NULL REFERENCES integrations (id),
    kind                TEXT    NOT NULL CHECK (kind IN ('preview', 'import', 'revert')),
    trigger             TEXT    NOT NULL CHECK (trigger IN ('manual', 'automatic')),
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
    -- The process running it, `host:pid:nonce`, and when it last renewed its lease.
    owner               TEXT,
    heartbeat_at        TEXT,
    -- Set by a cancel request; the owner stops and records the run cancelled.
    cancel_requested_at TEXT,
    cancel_requested_by TEXT
);
-- Runs left running by an older hrsync have no lease to renew.
INSERT INTO runs_new (id, integration_id, kind, trigger, actor, state, preview_id, reverts_id, started_at,
                      finished_at, counts, error, fingerprint, since)
SELECT id, integration_id, kind, trigger, actor,
       CASE WHEN state IN ('queued', 'running') THEN 'interrupted' ELSE state END,
       preview_id, reverts_id, started_at, finished_at, counts,
       CASE WHEN state IN ('queued', 'running')
            THEN 'interrupted: hrsync stopped while this run was in progress; nothing was applied' ELSE error END,
       fingerprint, since
FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_integration ON runs (integration_id, id);
-- The database itself refuses a second live run of one integration.
CREATE UNIQUE INDEX runs_one_live ON runs (integration_id) WHERE state IN ('queued', 'running');

-- Bounds of one run (see RunLimits).
ALTER TABLE integrations ADD COLUMN max_pages INTEGER NOT NULL DEFAULT 10000;
ALTER TABLE integrations ADD COLUMN max_records INTEGER NOT NULL DEFAULT 500000;
ALTER TABLE integrations ADD COLUMN max_run_minutes INTEGER NOT NULL DEFAULT 60;
