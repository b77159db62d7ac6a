-- Local values admins keep against the source, and what each run kept.

-- One kept field of one person. Syncs leave the field at `value` while the
-- override holds (until `until`, inclusive, or until removed). Each run that
-- sees the person records what the source said: the override list shows
-- that drift.
CREATE TABLE overrides (
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- A field name (`job-title`, `custom:…`).
    field          TEXT    NOT NULL,
    -- The kept value in the field's text form; for `manager` the user id.
    value          TEXT,
    kept_by        TEXT,
    until          TEXT,
    created_at     TEXT    NOT NULL,
    -- The source's value when a run last saw the person (the manager's name).
    source_value   TEXT,
    source_differs INTEGER NOT NULL DEFAULT 0,
    source_seen_at TEXT,
    PRIMARY KEY (user_id, field)
);

-- Per run: the fields an override kept although the source said otherwise.
CREATE TABLE run_kept (
    run_id       INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    user_id      INTEGER REFERENCES users (id) ON DELETE SET NULL,
    name         TEXT    NOT NULL,
    field        TEXT    NOT NULL,
    source_value TEXT,
    kept_value   TEXT,
    kept_by      TEXT,
    until        TEXT,
    PRIMARY KEY (run_id, seq)
);
