-- Rooms and the event graph: events (content sealed), prev/auth edges, forward extremities,
-- state as delta chains, current state, memberships, transaction ids, relations, aliases.
--
-- Metadata stays clear so the server can query it (ids, types, state keys, senders,
-- timestamps, depths, orderings, memberships); the PDU itself, which holds the content,
-- is SEALED with the organisation's data key.

CREATE TABLE rooms (
    room_id TEXT NOT NULL PRIMARY KEY,
    room_version TEXT NOT NULL,
    creator TEXT NOT NULL,
    is_public BOOLEAN NOT NULL DEFAULT FALSE,
    created_ts BIGINT NOT NULL
);

CREATE INDEX rooms_public ON rooms (is_public);

-- One row per event we hold, accepted, rejected or outlier. `stream_ordering` comes from
-- the "events" stream (the /sync order); (depth, stream_ordering) is the topological
-- order of /messages. `room_version` is here so an event parses without its room's row
-- (an invite to a room on another server arrives before we know the room).
CREATE TABLE events (
    stream_ordering BIGINT NOT NULL UNIQUE,
    event_id TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL,
    room_version TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT,
    sender TEXT NOT NULL,
    origin_server_ts BIGINT NOT NULL,
    depth BIGINT NOT NULL,
    membership TEXT,                -- content.membership of m.room.member events
    contains_url BOOLEAN NOT NULL DEFAULT FALSE,
    outlier BOOLEAN NOT NULL DEFAULT FALSE,
    rejected_reason TEXT,
    redacted_by TEXT,
    pdu BLOB NOT NULL               -- SEALED JSON; replaced by its pruned form on redaction
);

CREATE INDEX events_room_stream ON events (room_id, stream_ordering);
CREATE INDEX events_room_topological ON events (room_id, depth, stream_ordering);
CREATE INDEX events_room_ts ON events (room_id, origin_server_ts);

CREATE TABLE event_edges (
    event_id TEXT NOT NULL,
    prev_event_id TEXT NOT NULL,
    PRIMARY KEY (event_id, prev_event_id)
);

CREATE INDEX event_edges_prev ON event_edges (prev_event_id);

CREATE TABLE event_auth (
    event_id TEXT NOT NULL,
    auth_id TEXT NOT NULL,
    PRIMARY KEY (event_id, auth_id)
);

-- The events of a room that no other event points to yet: the next event's prev_events.
CREATE TABLE event_forward_extremities (
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);

-- State as chains of deltas: a group with no prev_group is a full snapshot; otherwise its
-- entries are the changes against prev_group (event_id NULL: the key was removed), and
-- delta_count says how many deltas lie between it and its snapshot, which bounds the chain.
CREATE TABLE state_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id TEXT NOT NULL,
    event_id TEXT,                  -- the event that made it; NULL for resolved state
    prev_group BIGINT REFERENCES state_groups (id),
    delta_count INTEGER NOT NULL
);

CREATE TABLE state_group_entries (
    state_group BIGINT NOT NULL REFERENCES state_groups (id),
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT,
    PRIMARY KEY (state_group, type, state_key)
);

-- The state *after* each event; non-state events share their predecessor's group.
CREATE TABLE event_to_state_groups (
    event_id TEXT NOT NULL PRIMARY KEY,
    state_group BIGINT NOT NULL REFERENCES state_groups (id)
);

CREATE TABLE current_state_events (
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    membership TEXT,
    PRIMARY KEY (room_id, type, state_key)
);

-- Every change of a user's current membership of a room, in stream order (incremental /sync).
CREATE TABLE room_memberships (
    event_id TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    membership TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL
);

CREATE INDEX room_memberships_user ON room_memberships (user_id, stream_ordering);

-- Each user's current membership of each room, local or remote, including invites
-- received out of band: "the rooms of a user" and "the members of a room" without
-- scanning current state.
CREATE TABLE current_memberships (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    membership TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

CREATE INDEX current_memberships_user ON current_memberships (user_id, membership);

-- PUT /send/{type}/{txnId} is idempotent per device.
CREATE TABLE event_txn_ids (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    inserted_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);

CREATE INDEX event_txn_ids_inserted ON event_txn_ids (inserted_ts);

-- content["m.relates_to"] of accepted events (kept clear for /relations and /threads; the
-- reaction key is content and stays sealed in the PDU).
CREATE TABLE event_relations (
    event_id TEXT NOT NULL PRIMARY KEY,
    relates_to_id TEXT NOT NULL,
    rel_type TEXT NOT NULL,
    event_type TEXT NOT NULL,
    room_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL
);

CREATE INDEX event_relations_target ON event_relations (relates_to_id, stream_ordering);

-- One row per thread root, kept up to date as replies come and go, for /threads.
CREATE TABLE threads (
    thread_id TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL,
    latest_event_id TEXT NOT NULL,
    latest_stream_ordering BIGINT NOT NULL,
    reply_count INTEGER NOT NULL
);

CREATE INDEX threads_room ON threads (room_id, latest_stream_ordering);

CREATE TABLE redactions (
    event_id TEXT NOT NULL PRIMARY KEY,
    redacts TEXT NOT NULL
);

CREATE INDEX redactions_redacts ON redactions (redacts);

CREATE TABLE room_aliases (
    alias TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL,
    creator TEXT NOT NULL
);

CREATE INDEX room_aliases_room ON room_aliases (room_id);
