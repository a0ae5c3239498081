-- Legal holds and the admin audit log (issue 6).
--
-- A hold keeps a room's or a user's data from retention purges and account erasure until an
-- admin releases it. Released holds stay, with who released them and when, for the record.
CREATE TABLE legal_holds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target_type TEXT NOT NULL,      -- 'room' or 'user'
    target_id TEXT NOT NULL,        -- a room ID or a user ID
    reason BLOB,                    -- SEALED: it may name people or cases
    created_by TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    released_by TEXT,
    released_ts BIGINT
);

-- At most one active hold per target, even when two admins place one at the same moment.
CREATE UNIQUE INDEX legal_holds_active ON legal_holds (target_type, target_id) WHERE released_ts IS NULL;

-- Every admin action (API or CLI): who, what, when, on what, and how it ended. Append-only:
-- the store has no update or delete, and triggers refuse UPDATE and DELETE (and TRUNCATE on
-- PostgreSQL). Those triggers are installed by storage/stores/audit_log.py at start-up
-- (`AuditLogStore.ensure_append_only`), because their bodies are engine-specific and hold
-- semicolons, which this portable migration format can't express.
CREATE TABLE admin_audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts BIGINT NOT NULL,
    actor TEXT NOT NULL,            -- an admin's user ID, "cli:<os user>", or "shared_secret"
    action TEXT NOT NULL,           -- e.g. hold.place, hold.release, export.room, media.delete
    target TEXT,                    -- a room ID, user ID or media ID, when there is one
    outcome TEXT NOT NULL,          -- "ok", or why not ("failed", "not_held"...)
    details BLOB                    -- SEALED JSON: reasons, counts, paths, error text
);

CREATE INDEX admin_audit_log_target ON admin_audit_log (target, id);

-- A user's export reads their events by sender, in stream order, batch by batch.
CREATE INDEX IF NOT EXISTS events_sender_stream ON events (sender, stream_ordering);
