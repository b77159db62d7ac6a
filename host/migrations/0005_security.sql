-- Accounts with roles, revocable and expiring API tokens, secrets bound to
-- the origins they were entered for, and an append-only audit log.

-- admin (everything), operator (preview, import, revert, cancel, invite;
-- no settings or secrets), viewer (read-only). A disabled account cannot
-- sign in; its sessions and tokens stop working.
ALTER TABLE admins ADD COLUMN role TEXT NOT NULL DEFAULT 'admin' CHECK (role IN ('admin', 'operator', 'viewer'));
ALTER TABLE admins ADD COLUMN disabled_at TEXT;
ALTER TABLE admins ADD COLUMN password_changed_at TEXT;

-- A token carries its creator's role or a narrower one, may expire, and
-- can be revoked.
ALTER TABLE api_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin' CHECK (role IN ('admin', 'operator', 'viewer'));
ALTER TABLE api_tokens ADD COLUMN expires_at TEXT;
ALTER TABLE api_tokens ADD COLUMN revoked_at TEXT;

-- The granted origins the integration's secrets were entered for (JSON
-- array): a stored secret is only ever sent there.
ALTER TABLE integrations ADD COLUMN secrets_for TEXT;
UPDATE integrations SET secrets_for = grants;

-- Who did what, when and from where. Never secret values.
CREATE TABLE audit (
    id       INTEGER PRIMARY KEY,
    at       TEXT NOT NULL,
    actor    TEXT NOT NULL,
    -- The client address, or `cli` for commands run on the host.
    address  TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT,
    detail   TEXT
);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_actor ON audit (actor, at);

-- Append-only: the app can add entries, never change or remove them.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
