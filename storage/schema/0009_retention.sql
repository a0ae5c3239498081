-- Message retention (issue 6): how far the purge job has got in each room, the expired events
-- it had to keep for now, and when each purge job last went through every room.

-- In each room, the events up to (purged_ts, purged_stream) in (origin_server_ts,
-- stream_ordering) order have been purged or set aside in retention_kept: a pass (or a restart)
-- continues after them instead of walking the room again.
CREATE TABLE retention_purge_progress (
    room_id TEXT NOT NULL PRIMARY KEY,
    purged_ts BIGINT NOT NULL,
    purged_stream BIGINT NOT NULL
);

-- Expired events the purge could not delete yet, looked at again on every pass: 'current_state'
-- (kept whole while it is the room's state), 'extremity' (a forward extremity, kept as a pruned
-- stub while new events attach to it), 'held' (its sender is under a legal hold).
CREATE TABLE retention_kept (
    event_id TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL,
    reason TEXT NOT NULL
);

CREATE INDEX retention_kept_room ON retention_kept (room_id, event_id);

-- When each purge job (named by its max_lifetime range) last started and finished a pass over
-- all its rooms: every event that had expired when a finished pass started is gone.
CREATE TABLE retention_purge_jobs (
    job TEXT NOT NULL PRIMARY KEY,
    pass_started_ts BIGINT NOT NULL,
    pass_finished_ts BIGINT NOT NULL
);

-- Finding the rows of purged events without a scan.
CREATE INDEX event_push_actions_event ON event_push_actions (event_id);
CREATE INDEX event_txn_ids_event ON event_txn_ids (event_id);

-- Media expire by age since upload.
CREATE INDEX local_media_created ON local_media (created_ts);
