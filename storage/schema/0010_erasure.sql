-- Account erasure (issue 6): one tombstone row per erased user.
--
-- The `users` row stays too (deactivated, no password), so the ID can never be registered again.
-- This row says the account's data was erased: when, by whom, and the "events" stream position
-- of the erasure, which decides who keeps seeing the user's past events in full (those in the
-- room then) and who gets them pruned (those who join later). completed_ts stays NULL while the
-- erasure is under way, or while a legal hold keeps some of it back; the resumer finishes it.
CREATE TABLE erased_users (
    user_id TEXT NOT NULL PRIMARY KEY,
    erased_ts BIGINT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    requested_by TEXT NOT NULL,
    completed_ts BIGINT
);

CREATE INDEX erased_users_pending ON erased_users (erased_ts) WHERE completed_ts IS NULL;
