-- The PostgreSQL schema: SQLite's, after its migrations 0001–0008, with
-- tenants. Every row a tenant owns carries its tenant_id, so every query
-- scopes by it without a join; the single-tenant install is tenant 1.
-- JSON is stored as text, written and read by the same serde code as in
-- SQLite; instants are timestamptz, days are date.

CREATE TABLE tenants (
    id          bigserial   PRIMARY KEY,
    -- The operator's handle for it: lower case, digits and dashes.
    slug        text        NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name        text        NOT NULL CHECK (length(trim(name)) > 0),
    disabled_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tenants (id, slug, name) VALUES (1, 'default', 'Default');
SELECT setval('tenants_id_seq', 1);

CREATE TABLE company (
    tenant_id  bigint      PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    name       text        NOT NULL CHECK (length(trim(name)) > 0),
    updated_at timestamptz NOT NULL
);

CREATE TABLE integrations (
    id                   bigserial        PRIMARY KEY,
    tenant_id            bigint           NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    connector_id         text             NOT NULL,
    name                 text             NOT NULL,
    -- JSON object of setting key -> value; secret values are sealed.
    settings             text             NOT NULL,
    -- JSON array of granted origins.
    grants               text             NOT NULL,
    auto_import          boolean          NOT NULL DEFAULT false,
    send_emails          boolean          NOT NULL DEFAULT false,
    interval_minutes     integer          NOT NULL DEFAULT 120,
    missing_after        integer          NOT NULL DEFAULT 2,
    max_deactivate_share double precision NOT NULL DEFAULT 0.2,
    max_email_share      double precision NOT NULL DEFAULT 0.2,
    max_pages            integer          NOT NULL DEFAULT 10000,
    max_records          integer          NOT NULL DEFAULT 500000,
    max_run_minutes      integer          NOT NULL DEFAULT 60,
    secrets_for          text,
    created_at           timestamptz      NOT NULL,
    updated_at           timestamptz      NOT NULL
);
CREATE INDEX integrations_tenant ON integrations (tenant_id, id);

CREATE TABLE users (
    id               bigserial   PRIMARY KEY,
    tenant_id        bigint      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email            text        NOT NULL,
    first_name       text        NOT NULL,
    last_name        text        NOT NULL,
    preferred_name   text,
    gender           text,
    status           text        NOT NULL CHECK (status IN ('active', 'inactive', 'pending-start')),
    manager_id       bigint      REFERENCES users (id) ON DELETE SET NULL,
    start_date       date,
    termination_date date,
    job_title        text,
    employee_id      text,
    department       text,
    office           text,
    team             text,
    -- JSON object of custom attribute key -> value.
    custom           text        NOT NULL DEFAULT '{}',
    integration_id   bigint      REFERENCES integrations (id),
    source_id        text,
    missing_runs     integer     NOT NULL DEFAULT 0,
    profile_url      text,
    informed_at      timestamptz,
    password_hash    text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    UNIQUE (integration_id, source_id),
    CHECK ((integration_id IS NULL) = (source_id IS NULL))
);
-- Emails are unique per tenant regardless of case, as SQLite's NOCASE.
CREATE UNIQUE INDEX users_email ON users (tenant_id, lower(email));
CREATE INDEX users_manager ON users (manager_id);
CREATE INDEX users_name ON users (tenant_id, last_name, first_name);

CREATE TABLE runs (
    id                  bigserial   PRIMARY KEY,
    tenant_id           bigint      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    integration_id      bigint      NOT NULL REFERENCES integrations (id),
    kind                text        NOT NULL CHECK (kind IN ('preview', 'import', 'revert')),
    trigger             text        NOT NULL CHECK (trigger IN ('manual', 'automatic', 'event')),
    actor               text,
    state               text        NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'blocked', 'cancelled', 'interrupted')),
    preview_id          bigint      REFERENCES runs (id),
    reverts_id          bigint      REFERENCES runs (id),
    started_at          timestamptz NOT NULL,
    finished_at         timestamptz,
    counts              text        NOT NULL DEFAULT '{}',
    error               text,
    fingerprint         text,
    since               timestamptz,
    owner               text,
    heartbeat_at        timestamptz,
    cancel_requested_at timestamptz,
    cancel_requested_by text
);
CREATE INDEX runs_integration ON runs (integration_id, id);
CREATE INDEX runs_tenant ON runs (tenant_id, id);
-- One live run per integration, whatever the number of replicas.
CREATE UNIQUE INDEX runs_one_live ON runs (integration_id) WHERE state IN ('queued', 'running');

CREATE TABLE run_changes (
    run_id    bigint  NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq       integer NOT NULL,
    user_id   bigint  REFERENCES users (id) ON DELETE SET NULL,
    source_id text,
    name      text    NOT NULL,
    kind      text    NOT NULL,
    -- JSON array of {field, before, after}.
    fields    text    NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX run_changes_user ON run_changes (user_id);

CREATE TABLE run_issues (
    run_id    bigint  NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq       integer NOT NULL,
    source_id text,
    name      text,
    field     text,
    severity  text    NOT NULL,
    message   text    NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE run_kept (
    run_id       bigint  NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq          integer NOT NULL,
    user_id      bigint  REFERENCES users (id) ON DELETE SET NULL,
    name         text    NOT NULL,
    field        text    NOT NULL,
    source_value text,
    kept_value   text,
    kept_by      text,
    until        date,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE overrides (
    user_id        bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- A field name (`job-title`, `custom:…`).
    field          text        NOT NULL,
    -- The kept value in the field's text form; for `manager` the user id.
    value          text,
    kept_by        text,
    until          date,
    created_at     timestamptz NOT NULL,
    source_value   text,
    source_differs boolean     NOT NULL DEFAULT false,
    source_seen_at timestamptz,
    PRIMARY KEY (user_id, field)
);

CREATE TABLE schedules (
    integration_id  bigint      PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    next_run_at     timestamptz NOT NULL,
    -- Start of the last successful run, full or incremental.
    last_success_at timestamptz,
    -- Start of the last successful complete run (deletions are only seen there).
    last_full_at    timestamptz,
    failures        integer     NOT NULL DEFAULT 0,
    alerted         boolean     NOT NULL DEFAULT false,
    last_error      text
);

CREATE TABLE invitations (
    id         bigserial   PRIMARY KEY,
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash text        NOT NULL UNIQUE,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL
);

CREATE TABLE outbox (
    id              bigserial   PRIMARY KEY,
    tenant_id       bigint      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind            text        NOT NULL CHECK (kind IN ('invitation', 'alert')),
    recipient       text        NOT NULL,
    subject         text        NOT NULL,
    text_body       text        NOT NULL,
    html_body       text,
    message_id      text        NOT NULL UNIQUE,
    user_id         bigint      REFERENCES users (id) ON DELETE SET NULL,
    run_id          bigint      REFERENCES runs (id) ON DELETE SET NULL,
    state           text        NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sending', 'sent', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    -- While `sending`: another replica must not take the row before this.
    lease_until     timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL,
    sent_at         timestamptz
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

CREATE TABLE subscriptions (
    integration_id   bigint      PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    -- The unguessable path segment of the webhook endpoint.
    hook             text        NOT NULL UNIQUE,
    -- SHA-256 of the token the source sends; the token itself is not kept.
    token_hash       text        NOT NULL,
    source_id        text        NOT NULL,
    description      text        NOT NULL,
    created_at       timestamptz NOT NULL,
    last_delivery_at timestamptz
);

CREATE TABLE events (
    id             bigserial   PRIMARY KEY,
    integration_id bigint      NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    received_at    timestamptz NOT NULL,
    headers        text        NOT NULL,
    body           text        NOT NULL,
    state          text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'ignored', 'failed')),
    outcome        text,
    run_id         bigint      REFERENCES runs (id) ON DELETE SET NULL,
    processed_at   timestamptz
);
CREATE INDEX events_pending ON events (integration_id, id) WHERE state = 'pending';

-- Accounts: platform operators have no tenant; everyone else one.
CREATE TABLE admins (
    id                  bigserial   PRIMARY KEY,
    tenant_id           bigint      REFERENCES tenants (id) ON DELETE CASCADE,
    username            text        NOT NULL,
    -- Argon2id PHC string.
    password_hash       text        NOT NULL,
    role                text        NOT NULL DEFAULT 'admin' CHECK (role IN ('admin', 'operator', 'viewer')),
    disabled_at         timestamptz,
    password_changed_at timestamptz,
    created_at          timestamptz NOT NULL
);
CREATE UNIQUE INDEX admins_username ON admins (lower(username));

CREATE TABLE api_tokens (
    id         bigserial   PRIMARY KEY,
    admin_id   bigint      NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    name       text        NOT NULL,
    token_hash text        NOT NULL UNIQUE,
    role       text        NOT NULL DEFAULT 'admin' CHECK (role IN ('admin', 'operator', 'viewer')),
    expires_at timestamptz,
    revoked_at timestamptz,
    last_used  timestamptz,
    created_at timestamptz NOT NULL
);

CREATE TABLE sessions (
    token_hash text        PRIMARY KEY,
    admin_id   bigint      NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    csrf_token text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE TABLE audit (
    id        bigserial   PRIMARY KEY,
    tenant_id bigint      REFERENCES tenants (id),
    at        timestamptz NOT NULL,
    actor     text        NOT NULL,
    -- The client address, or `cli` for commands run on the host.
    address   text        NOT NULL,
    action    text        NOT NULL,
    target    text,
    detail    text
);
CREATE INDEX audit_actor ON audit (actor, at);
CREATE INDEX audit_at ON audit (tenant_id, at);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END $$;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
