"""Relations and threads recorded by the event writer, and read for /relations and /threads."""

from __future__ import annotations

import pytest_twisted

from homeserver.events.event import Event
from storage.datastore import DataStore
from storage.stores.event_fetch import StoredEvent
from storage.stores.relations import ThreadSummary
from tests.storage.room_builder import ALICE, BOB, CAROL, RoomBuilder


def _ids(stored: list[StoredEvent]) -> list[str]:
    return [s.event.event_id for s in stored]


def _thread(root: str) -> dict:
    return {"m.relates_to": {"rel_type": "m.thread", "event_id": root}}


@pytest_twisted.ensureDeferred
async def test_relations_and_threads(datastore: DataStore) -> None:
    relations = datastore.relations
    room = RoomBuilder(datastore)
    await room.create()
    root = await room.message("root", sender=ALICE)
    other_root = await room.message("another root", sender=CAROL)
    reply1 = await room.send("m.room.message", {"body": "r1", **_thread(root.event_id)}, sender=BOB)
    like = await room.send(
        "m.reaction",
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": root.event_id, "key": "👍"}},
        sender=BOB,
    )
    edit = await room.send(
        "m.room.message",
        {"body": "* root", "m.relates_to": {"rel_type": "m.replace", "event_id": root.event_id}},
    )
    other_reply = await room.send("m.room.message", {"body": "o", **_thread(other_root.event_id)}, sender=CAROL)
    reply2 = await room.send("m.room.message", {"body": "r2", **_thread(root.event_id)}, sender=BOB)
    reply3 = await room.send("m.room.encrypted", {"ciphertext": "x", **_thread(root.event_id)}, sender=CAROL)
    # Malformed relations are ignored.
    await room.send("m.room.message", {"body": "bad", "m.relates_to": {"rel_type": 5, "event_id": "$x"}})

    assert _ids(await relations.get_relations(root.event_id)) == [
        reply3.event_id, reply2.event_id, edit.event_id, like.event_id, reply1.event_id
    ]
    assert _ids(await relations.get_relations(root.event_id, rel_type="m.thread", direction="f")) == [
        reply1.event_id, reply2.event_id, reply3.event_id
    ]
    assert _ids(
        await relations.get_relations(root.event_id, rel_type="m.thread", event_type="m.room.message")
    ) == [reply2.event_id, reply1.event_id]
    assert _ids(await relations.get_relations(root.event_id, room_id="!other:x")) == []
    # Paging by stream position.
    first = await relations.get_relations(root.event_id, limit=2)
    rest = await relations.get_relations(root.event_id, from_stream=first[-1].stream_ordering - 1, limit=10)
    assert _ids(first + rest) == _ids(await relations.get_relations(root.event_id))
    bounded = await relations.get_relations(
        root.event_id, from_stream=first[-1].stream_ordering, to_stream=rest[-1].stream_ordering, direction="f"
    )
    assert _ids(bounded) == []
    bounded = await relations.get_relations(
        root.event_id, from_stream=rest[-1].stream_ordering, to_stream=first[-1].stream_ordering, direction="f"
    )
    assert _ids(bounded) == [like.event_id, edit.event_id, reply2.event_id]

    async def position(event: Event) -> int:
        stored = await datastore.events.get_event(event.event_id)
        assert stored is not None
        return stored.stream_ordering

    assert await relations.get_thread_roots(room.room_id) == [
        (root.event_id, await position(reply3)),
        (other_root.event_id, await position(other_reply)),
    ]
    older = await relations.get_thread_roots(room.room_id, from_stream=await position(reply3) - 1)
    assert [r for r, _ in older] == [other_root.event_id]
    assert [r for r, _ in await relations.get_thread_roots(room.room_id, include="participated", user_id=ALICE)] == [
        root.event_id
    ]
    assert [r for r, _ in await relations.get_thread_roots(room.room_id, include="participated", user_id=BOB)] == [
        root.event_id
    ]
    assert await relations.get_thread_roots(room.room_id, include="participated", user_id="@x:y") == []
    assert [r for r, _ in await relations.get_thread_roots(room.room_id, limit=1)] == [root.event_id]

    summaries = await relations.get_thread_summaries([root.event_id, other_root.event_id, reply1.event_id], BOB)
    assert summaries == {
        root.event_id: ThreadSummary(3, reply3.event_id, await position(reply3), True),
        other_root.event_id: ThreadSummary(1, other_reply.event_id, await position(other_reply), False),
    }
    assert (await relations.get_thread_summaries([other_root.event_id], CAROL))[other_root.event_id].participated

    # Redacting the latest reply takes it out of the thread and its relation away.
    await room.send("m.room.redaction", {}, redacts=reply3.event_id)
    summary = (await relations.get_thread_summaries([root.event_id]))[root.event_id]
    assert summary == ThreadSummary(2, reply2.event_id, await position(reply2), False)
    assert reply3.event_id not in _ids(await relations.get_relations(root.event_id))
    # Redacting the only reply of a thread removes the thread.
    await room.send("m.room.redaction", {}, redacts=other_reply.event_id)
    assert [r for r, _ in await relations.get_thread_roots(room.room_id)] == [root.event_id]

