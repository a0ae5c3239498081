-- The "device_lists" stream is pruned: rows older than the last DEVICE_LIST_CHANGES_KEPT positions
-- go. A sync token from before `pruned_up_to` can't be answered exactly any more, so such a client
-- is told that everyone it shares a room with changed (it downloads their keys again: correct,
-- only more work).
CREATE TABLE device_lists_pruned (
    lock CHAR(1) NOT NULL DEFAULT 'X' PRIMARY KEY CHECK (lock = 'X'),
    pruned_up_to BIGINT NOT NULL
);
