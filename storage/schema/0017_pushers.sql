-- Pushers: where to send a user's push notifications (a push gateway and a device token).
-- The pushkey (a device token) and everything the client wrote (data, display names, lang,
-- profile tag) are sealed in `sealed`; `pushkey_digest` (hex SHA-256 of the pushkey) keeps
-- (user, app_id, pushkey) unique and lets a gateway's "rejected" answer find the row.
-- A pusher belongs to the device of the access token that set it: deleting the device deletes it.
CREATE TABLE pushers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    device_id TEXT,
    app_id TEXT NOT NULL,
    pushkey_digest TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    sealed BLOB NOT NULL,           -- SEALED
    UNIQUE (user_id, app_id, pushkey_digest)
);
CREATE INDEX pushers_app_pushkey ON pushers (app_id, pushkey_digest);
CREATE INDEX pushers_device ON pushers (user_id, device_id);
