-- Per-user data around rooms: account data (incl. tags and read markers), filters, profiles,
-- presence, receipts, push rules and content reports.
--
-- Columns marked SEALED hold blobs sealed with the organisation's data key. Streams feeding
-- /sync ("account_data", "presence", "receipts") number their rows with `stream_id`; a row is
-- rewritten with a new `stream_id` each time it changes, so "what changed after position P" is
-- a range scan and the tables hold the latest value only.

-- Global account data has room_id '' (room IDs never are empty).
CREATE TABLE account_data (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    data_type TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    content BLOB NOT NULL,          -- SEALED JSON
    PRIMARY KEY (user_id, room_id, data_type)
);

CREATE INDEX account_data_stream ON account_data (user_id, stream_id);

-- The user's own push rules and their changes to the server-default rules, as one document:
-- rules change rarely and are always read whole. Its stream_id is on the account_data stream,
-- as clients receive push rules as `m.push_rules` account data.
CREATE TABLE push_rules (
    user_id TEXT NOT NULL PRIMARY KEY,
    stream_id BIGINT NOT NULL,
    rules BLOB NOT NULL             -- SEALED JSON
);

CREATE INDEX push_rules_stream ON push_rules (stream_id);

CREATE TABLE user_filters (
    filter_id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    filter_json BLOB NOT NULL       -- SEALED JSON
);

CREATE INDEX user_filters_user ON user_filters (user_id);

-- One row per profile field (displayname, avatar_url, m.tz, custom keys).
CREATE TABLE profiles (
    user_id TEXT NOT NULL,
    field TEXT NOT NULL,
    value BLOB NOT NULL,            -- SEALED JSON
    PRIMARY KEY (user_id, field)
);

CREATE TABLE presence (
    user_id TEXT NOT NULL PRIMARY KEY,
    state TEXT NOT NULL,            -- online, unavailable, offline
    status_msg BLOB,                -- SEALED
    last_active_ts BIGINT NOT NULL,
    stream_id BIGINT NOT NULL
);

CREATE INDEX presence_stream ON presence (stream_id);

-- The latest receipt per (room, type, user, thread); thread_id '' is an unthreaded receipt.
CREATE TABLE receipts (
    room_id TEXT NOT NULL,
    receipt_type TEXT NOT NULL,
    user_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    ts BIGINT NOT NULL,
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
);

CREATE INDEX receipts_stream ON receipts (stream_id);
CREATE INDEX receipts_user ON receipts (user_id, room_id);

-- Reports of an event, a room or a user, for the organisation's moderators.
CREATE TABLE reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ts BIGINT NOT NULL,
    reporter TEXT NOT NULL,
    room_id TEXT,
    event_id TEXT,
    reported_user_id TEXT,
    reason BLOB                     -- SEALED
);

CREATE INDEX reports_received ON reports (received_ts);
