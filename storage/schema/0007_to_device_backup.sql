-- To-device messages and server-side room key backups.
--
-- Columns marked SEALED hold blobs sealed with the organisation's data key.

-- Undelivered (or delivered but not yet acknowledged) to-device messages, one row per
-- recipient device. `stream_id` is the "to_device" stream position of the send request that
-- wrote it (one request writes at most one message per device). A row is deleted once its
-- device syncs with a token past it, when the device is deleted, or when it is too old
-- (`created_ts`).
CREATE TABLE device_inbox (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    created_ts BIGINT NOT NULL,
    message BLOB NOT NULL,          -- SEALED JSON: sender, event type and content
    PRIMARY KEY (user_id, device_id, stream_id)
);

CREATE INDEX device_inbox_created ON device_inbox (created_ts);

-- Transaction IDs of `PUT /sendToDevice`, so that a retried request is not delivered twice.
CREATE TABLE to_device_txns (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);

CREATE INDEX to_device_txns_created ON to_device_txns (created_ts);

-- Backup versions of each user. The version string clients see is `version`. A deleted
-- version keeps its row (without keys) so that deleting it again succeeds and its number is
-- never handed out again. `etag` counts the changes to its keys.
CREATE TABLE room_key_backup_versions (
    version INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    auth_data BLOB NOT NULL,        -- SEALED JSON
    etag BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL
);

CREATE INDEX room_key_backup_versions_user ON room_key_backup_versions (user_id, version);

-- The backed-up Megolm sessions. The three metadata columns decide which of two uploads of
-- one session is kept; the (client-encrypted) key itself is sealed once more.
CREATE TABLE room_key_backup_keys (
    user_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    room_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    first_message_index BIGINT NOT NULL,
    forwarded_count BIGINT NOT NULL,
    is_verified BOOLEAN NOT NULL,
    session_data BLOB NOT NULL,     -- SEALED JSON
    PRIMARY KEY (user_id, version, room_id, session_id)
);
