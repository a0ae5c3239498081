-- Rooms a user has forgotten (POST /rooms/{roomId}/forget). The row names the membership
-- that was forgotten by its stream ordering: once a newer membership of the user in the
-- room exists (an invite, a rejoin), the row no longer counts, so the writer never has to
-- clear it.
CREATE TABLE forgotten_rooms (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id)
);
