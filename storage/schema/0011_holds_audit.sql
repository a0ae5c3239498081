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

CREATE INDEX legal_holds_active ON legal_holds (target_type, target_id) WHERE released_ts IS NULL;
