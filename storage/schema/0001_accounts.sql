-- Accounts: users, devices, access and refresh tokens, registration tokens,
-- user-interactive auth sessions, and the SQLite stand-in for sequences.
--
-- Portable SQL in SQLite spelling; storage/migrations.py maps BLOB -> BYTEA
-- and INTEGER PRIMARY KEY AUTOINCREMENT -> an identity column for PostgreSQL.
-- Columns marked SEALED hold blobs sealed with the organisation's data key
-- (storage/sealing.py): a dump of the database shows metadata only.

CREATE TABLE users (
    user_id TEXT NOT NULL PRIMARY KEY,
    password_hash TEXT,
    creation_ts BIGINT NOT NULL,
    admin BOOLEAN NOT NULL DEFAULT FALSE,
    is_guest BOOLEAN NOT NULL DEFAULT FALSE,
    deactivated BOOLEAN NOT NULL DEFAULT FALSE,
    user_type TEXT,
    locked BOOLEAN NOT NULL DEFAULT FALSE
);

-- Registration refuses IDs that differ from an existing one only by case.
CREATE INDEX users_lower_user_id ON users (lower(user_id));

CREATE TABLE devices (
    user_id TEXT NOT NULL REFERENCES users (user_id),
    device_id TEXT NOT NULL,
    display_name BLOB,              -- SEALED
    last_seen_ts BIGINT,
    last_seen_ip BLOB,              -- SEALED
    last_seen_user_agent BLOB,      -- SEALED
    hidden BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_id, device_id)
);

-- Tokens are stored as SHA-256 hashes only; ids come from the database so
-- that several processes can share it.
CREATE TABLE refresh_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash BLOB NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    -- The token issued when this one was used; this one stays valid until that one is used.
    next_token_id BIGINT REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    created_ts BIGINT NOT NULL,
    expiry_ts BIGINT,
    ultimate_session_expiry_ts BIGINT,
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id)
);

CREATE INDEX refresh_tokens_device ON refresh_tokens (user_id, device_id);
CREATE INDEX refresh_tokens_next ON refresh_tokens (next_token_id);

CREATE TABLE access_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash BLOB NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    -- NULL for tokens not bound to a device (e.g. made by an admin tool).
    device_id TEXT,
    created_ts BIGINT NOT NULL,
    valid_until_ms BIGINT,
    refresh_token_id BIGINT REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    last_used_ts BIGINT,
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id)
);

CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);
CREATE INDEX access_tokens_refresh ON access_tokens (refresh_token_id);

CREATE TABLE registration_tokens (
    token TEXT NOT NULL PRIMARY KEY,
    uses_allowed INTEGER,           -- NULL: unlimited
    pending INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    expiry_time BIGINT              -- ms since the epoch; NULL: never
);

CREATE TABLE ui_auth_sessions (
    session_id TEXT NOT NULL PRIMARY KEY,
    creation_time BIGINT NOT NULL,
    uri TEXT NOT NULL,
    method TEXT NOT NULL,
    description TEXT NOT NULL,
    clientdict BLOB NOT NULL        -- SEALED JSON (holds e.g. the new password)
);

CREATE INDEX ui_auth_sessions_creation ON ui_auth_sessions (creation_time);

CREATE TABLE ui_auth_sessions_credentials (
    session_id TEXT NOT NULL REFERENCES ui_auth_sessions (session_id) ON DELETE CASCADE,
    stage_type TEXT NOT NULL,
    result BLOB NOT NULL,           -- SEALED JSON
    PRIMARY KEY (session_id, stage_type)
);

-- SQLite has no sequences: one row per stream, bumped inside the writing transaction.
CREATE TABLE stream_positions (
    stream_name TEXT NOT NULL PRIMARY KEY,
    last_id BIGINT NOT NULL
);
