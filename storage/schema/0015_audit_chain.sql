-- The admin audit log becomes a hash chain (issue 6): triggers stop mistakes, but whoever owns
-- the database can drop them; with a chain, an entry edited or deleted behind piman's back no
-- longer verifies (`piman admin audit verify`), and an anchored head hash written down elsewhere
-- catches even a rewrite of the whole chain.
--
--   entry_hash = SHA-256(prev_hash || canonical JSON {id, ts, actor, action, target, outcome, details})
--
-- with `details` the OPENED (plaintext) details, so a key rotation's re-seal keeps the chain valid,
-- and prev_hash the previous entry's entry_hash (32 zero bytes for the first entry). See
-- storage/stores/audit_log.py.
--
-- Entries written before this migration are chained at the first start after it, not here:
-- their hash covers their opened details, which only the data key can open, and migrations are
-- plain SQL without the key. Until then their two columns are NULL.
ALTER TABLE admin_audit_log ADD COLUMN prev_hash BLOB;
ALTER TABLE admin_audit_log ADD COLUMN entry_hash BLOB;

-- Two entries chained to the same predecessor would fork the chain: impossible by construction.
CREATE UNIQUE INDEX admin_audit_log_prev_hash ON admin_audit_log (prev_hash);

-- The chain's head, one row, updated by every append in the append's transaction. Appends lock
-- this row, so they are serialised (PostgreSQL) and take consecutive ids: a missing id is a
-- deleted entry, and an entry deleted from the end is caught by comparing with this row.
-- legacy_through: the last id chained by the first start after this migration (entries written
-- before it, whose ids PostgreSQL may have left gaps between); legacy_done: that pass finished, so
-- an unchained entry found later was written behind piman's back and is reported, never chained.
CREATE TABLE admin_audit_chain_head (
    id INTEGER NOT NULL PRIMARY KEY,  -- always 1
    last_id BIGINT NOT NULL,
    head_hash BLOB,                   -- NULL while the log is empty
    legacy_through BIGINT NOT NULL,
    legacy_done BOOLEAN NOT NULL
);

INSERT INTO admin_audit_chain_head (id, last_id, head_hash, legacy_through, legacy_done) VALUES (1, 0, NULL, 0, FALSE);
