-- What the push rules said about each event, for each local member it notifies: the source of
-- /sync's unread notification counts and of /notifications. Ids and flags only, no content.
-- thread_id is 'main' for the main timeline, else the thread root's event ID (as in receipts).
-- Rows are written in the event's own transaction, and pruned once they are behind the
-- user's read receipt (see PushActionStore.prune_read).
CREATE TABLE event_push_actions (
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    notify BOOLEAN NOT NULL,
    highlight BOOLEAN NOT NULL,
    thread_id TEXT NOT NULL,
    PRIMARY KEY (user_id, room_id, stream_ordering)
);
