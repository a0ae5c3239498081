-- Data key rotation (issue 6), and client transaction IDs kept out of clear text.

-- The key ids stored data may be sealed with: each key a server sealed with (recorded at start-up)
-- or a rotation re-sealed to. A key id leaves this table only when `piman keys retire` has proved,
-- by a full scan, that no sealed blob uses it. Start-up checks that each one is in the data key
-- file: one small query instead of a scan (see storage/stores/sealing_keys.py).
CREATE TABLE sealing_key_ids (
    key_id TEXT NOT NULL PRIMARY KEY,
    recorded_ts BIGINT NOT NULL
);

-- The re-seal pass `piman keys rotate` starts: one row per sealed table, walked in primary key
-- order in small batches. `last_key` (JSON array) is the primary key of the last row done, so an
-- interrupted pass resumes after it; rows_total is the count when the pass reached the table.
CREATE TABLE reseal_progress (
    table_name TEXT NOT NULL PRIMARY KEY,
    target_key_id TEXT NOT NULL,
    last_key TEXT,
    rows_done BIGINT NOT NULL,
    rows_total BIGINT NOT NULL,
    resealed BIGINT NOT NULL,
    finished BOOLEAN NOT NULL
);

-- Transaction IDs are chosen by clients, so they are kept as digests only (`txn_id` now holds the
-- hex SHA-256 of the client's ID), plus the ID itself sealed for `unsigned.transaction_id`.
-- Stored IDs only make retries of the last day idempotent and there is no production data yet:
-- they are dropped rather than converted.
DELETE FROM event_txn_ids;
ALTER TABLE event_txn_ids ADD COLUMN sealed_txn_id BLOB;  -- SEALED: the client's transaction ID
DELETE FROM to_device_txns;
