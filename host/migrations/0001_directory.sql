-- The directory, the configured integrations and the history of runs.

CREATE TABLE integrations (
    id                   INTEGER PRIMARY KEY,
    connector_id         TEXT    NOT NULL,
    name                 TEXT    NOT NULL,
    -- JSON object of setting key -> value; secret values are encrypted.
    settings             TEXT    NOT NULL,
    -- JSON array of granted origins.
    grants               TEXT    NOT NULL,
    auto_import          INTEGER NOT NULL DEFAULT 0,
    send_emails          INTEGER NOT NULL DEFAULT 0,
    interval_minutes     INTEGER NOT NULL DEFAULT 120,
    missing_after        INTEGER NOT NULL DEFAULT 2,
    max_deactivate_share REAL    NOT NULL DEFAULT 0.2,
    max_email_share      REAL    NOT NULL DEFAULT 0.2,
    created_at           TEXT    NOT NULL,
    updated_at           TEXT    NOT NULL
);

CREATE TABLE users (
    id               INTEGER PRIMARY KEY,
    email            TEXT    NOT NULL COLLATE NOCASE UNIQUE,
    first_name       TEXT    NOT NULL,
    last_name        TEXT    NOT NULL,
    preferred_name   TEXT,
    gender           TEXT,
    status           TEXT    NOT NULL CHECK (status IN ('active', 'inactive', 'pending-start')),
    manager_id       INTEGER REFERENCES users (id) ON DELETE SET NULL,
    start_date       TEXT,
    termination_date TEXT,
    job_title        TEXT,
    employee_id      TEXT,
    department       TEXT,
    office           TEXT,
    team             TEXT,
    -- JSON object of custom attribute key -> value.
    custom           TEXT    NOT NULL DEFAULT '{}',
    integration_id   INTEGER REFERENCES integrations (id),
    source_id        TEXT,
    missing_runs     INTEGER NOT NULL DEFAULT 0,
    profile_url      TEXT,
    informed_at      TEXT,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    UNIQUE (integration_id, source_id),
    CHECK ((integration_id IS NULL) = (source_id IS NULL))
);
CREATE INDEX users_manager ON users (manager_id);
CREATE INDEX users_name ON users (last_name, first_name);

CREATE TABLE runs (
    id             INTEGER PRIMARY KEY,
    integration_id INTEGER NOT NULL REFERENCES integrations (id),
    kind           TEXT    NOT NULL CHECK (kind IN ('preview', 'import', 'revert')),
    trigger        TEXT    NOT NULL CHECK (trigger IN ('manual', 'automatic')),
    actor          TEXT,
    state          TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'blocked')),
    -- An import of a stored preview, or the run a revert undoes.
    preview_id     INTEGER REFERENCES runs (id),
    reverts_id     INTEGER REFERENCES runs (id),
    started_at     TEXT    NOT NULL,
    finished_at    TEXT,
    -- JSON object of counts (created, updated, ...).
    counts         TEXT    NOT NULL DEFAULT '{}',
    error          TEXT,
    -- Hash of the planned changes: an import compares it with its preview's.
    fingerprint    TEXT
);
CREATE INDEX runs_integration ON runs (integration_id, id);

-- One row per person a run changes (or, for previews, would change).
CREATE TABLE run_changes (
    run_id    INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    user_id   INTEGER REFERENCES users (id) ON DELETE SET NULL,
    source_id TEXT,
    name      TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    -- JSON array of {field, before, after}.
    fields    TEXT    NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX run_changes_user ON run_changes (user_id);

CREATE TABLE run_issues (
    run_id    INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    source_id TEXT,
    name      TEXT,
    field     TEXT,
    severity  TEXT    NOT NULL,
    message   TEXT    NOT NULL,
    PRIMARY KEY (run_id, seq)
);
