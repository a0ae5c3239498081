"""A real client's day in a room: matrix-nio against `piman run`, on both engines.

Two users chat the way a matrix-nio bot or client does, unchanged: create a
room, invite, join, 200 messages, back-pagination to the very start,
incremental sync, typing, receipts, a redaction, a topic change, leave and
rejoin. The same scenario passes against Synapse, so a failure here is the
server's, not the scenario's.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    FullyReadEvent,
    JoinResponse,
    MessageDirection,
    ReceiptEvent,
    RegisterResponse,
    RoomCreateResponse,
    RoomGetEventResponse,
    RoomInviteResponse,
    RoomLeaveResponse,
    RoomMessagesResponse,
    RoomPreset,
    RoomPutStateResponse,
    RoomReadMarkersResponse,
    RoomRedactResponse,
    RoomSendResponse,
    RoomTypingResponse,
    SyncResponse,
    TypingNoticeEvent,
    UpdateReceiptMarkerResponse,
)
from nio.api import ReceiptType

from tests.e2e.e2ee_clients import ok
from tests.e2e.server_process import ServerProcess, init_data_dir, running_server

PASSWORD = "correct horse battery staple 42"
MESSAGES = 200
PAGE = 30  # not a divisor of 200, so the last page is a partial one
SYNC_WAIT = 10.0  # seconds a client waits for something to show up in /sync
SYNC_ANSWERS = 5  # /sync answers it accepts before that something
GENEROUS = {"per_second": 1000, "burst_count": 1000}
# The rate limits a chat of 200 quick messages needs, and plaintext: issue 3 is about
# rooms and sync; encryption is required from issue 4 on, so it is switched off here.
SERVER_OVERRIDES: dict[str, Any] = {
    "e2ee": {"required": False},
    "rc_message": GENEROUS,
    "rc_joins": {"local": GENEROUS, "remote": GENEROUS},
    "rc_invites": {"per_room": GENEROUS, "per_user": GENEROUS, "per_issuer": GENEROUS},
}
# Only the timeline's latest few events, so the 200 messages are a gap to page through.
SYNC_FILTER = {"room": {"timeline": {"limit": 10}}}


@pytest.fixture
def chat_server(tmp_path: Path, database_config: dict[str, Any]) -> Iterator[ServerProcess]:
    """`piman run` on each engine, with plaintext allowed and chat-sized rate limits."""
    config_path = init_data_dir(tmp_path / "data", database_config, **SERVER_OVERRIDES)
    with running_server(config_path) as server:
        yield server


def test_matrix_nio_room_scenario(chat_server: ServerProcess) -> None:
    asyncio.run(scenario(chat_server.base_url))


def _client(base_url: str) -> AsyncClient:
    return AsyncClient(base_url, config=AsyncClientConfig(encryption_enabled=False))


async def _register(base_url: str, name: str) -> AsyncClient:
    client = _client(base_url)
    response = await client.register(name, PASSWORD, device_name=f"{name}'s nio")
    assert isinstance(response, RegisterResponse), response
    return client


async def _sync_until(
    client: AsyncClient, found: Callable[[SyncResponse], Any], what: str
) -> tuple[SyncResponse, Any]:
    """Long-poll /sync (as nio does, from its last next_batch) until `found` says yes.

    A long-poll returns when something happened, so a few answers are enough; a
    server that answers at once with nothing new (busy polling) fails here.
    """
    deadline = time.monotonic() + SYNC_WAIT
    for _ in range(SYNC_ANSWERS):
        response = await client.sync(timeout=int(SYNC_WAIT * 1000), sync_filter=SYNC_FILTER)
        ok(response, SyncResponse)
        result = found(response)
        if result:
            return response, result
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"{client.user_id}'s /sync did not show {what} within {SYNC_WAIT}s "
                         f"and {SYNC_ANSWERS} answers")


async def _while_syncing(
    client: AsyncClient, found: Callable[[SyncResponse], Any], what: str, action: Awaitable[Any]
) -> tuple[Any, Any]:
    """Start `client` long-polling, then do `action`: the waiting /sync must be woken by it."""
    waiter = asyncio.create_task(_sync_until(client, found, what))
    await asyncio.sleep(0.2)  # the /sync request is parked on the server by now
    done = await action
    (_, result) = await waiter
    return done, result


def _timeline(response: SyncResponse, room_id: str) -> list[Any]:
    room = response.rooms.join.get(room_id)
    return room.timeline.events if room else []


def _ephemeral(response: SyncResponse, room_id: str) -> list[Any]:
    room = response.rooms.join.get(room_id)
    return room.ephemeral if room else []


async def scenario(base_url: str) -> None:
    alice = await _register(base_url, "alice")
    bob = await _register(base_url, "bob")
    try:
        await _chat(alice, bob)
    finally:
        await alice.close()
        await bob.close()


async def _chat(alice: AsyncClient, bob: AsyncClient) -> None:
    # Alice creates a private room and invites bob, who sees the invite in /sync and joins.
    created = ok(await alice.room_create(name="nio room", preset=RoomPreset.private_chat), RoomCreateResponse)
    room_id = created.room_id
    ok(await bob.sync(timeout=0, sync_filter=SYNC_FILTER), SyncResponse)
    ok(await alice.room_invite(room_id, bob.user_id), RoomInviteResponse)
    await _sync_until(bob, lambda r: room_id in r.rooms.invite, "the invite")
    ok(await bob.join(room_id), JoinResponse)
    await _sync_until(bob, lambda r: room_id in r.rooms.join, "the joined room")

    # 200 messages; bob's next sync shows the latest few and a gap to fill by paginating back.
    sent = []
    for i in range(MESSAGES):
        response = ok(await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"message {i}"}),
                       RoomSendResponse)
        sent.append(response.event_id)
    assert len(set(sent)) == MESSAGES, "every send must create its own event"
    response, _ = await _sync_until(bob, lambda r: _timeline(r, room_id), "the new messages")
    timeline = response.rooms.join[room_id].timeline
    assert timeline.limited, "200 new messages with a timeline limit of 10 must be a limited timeline"
    assert timeline.prev_batch, "a limited timeline needs a prev_batch token to page back from"
    recent = [e.event_id for e in timeline.events]
    assert recent == sent[-len(recent):], "the sync timeline must end with the latest messages, in order"

    older = await _paginate_back(bob, room_id, timeline.prev_batch)
    assert older[-1].source["type"] == "m.room.create", "back-pagination must reach the room's start"
    messages = [e for e in reversed(older) if e.source["type"] == "m.room.message"]
    bodies = [e.source["content"]["body"] for e in messages] + [e.source["content"]["body"] for e in timeline.events]
    assert bodies == [f"message {i}" for i in range(MESSAGES)], "history must hold every message once, in order"
    assert [e.event_id for e in messages] + recent == sent

    # Incremental sync: a waiting /sync of bob's is woken by alice's next message.
    sent_live, _ = await _while_syncing(
        bob, lambda r: [e for e in _timeline(r, room_id) if e.source["content"].get("body") == "live"],
        "the live message",
        alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "live"}),
    )
    live_id = ok(sent_live, RoomSendResponse).event_id

    # Typing, on and off.
    def typing(users: list[str]) -> Callable[[SyncResponse], bool]:
        return lambda r: any(isinstance(e, TypingNoticeEvent) and e.users == users for e in _ephemeral(r, room_id))

    done, _ = await _while_syncing(bob, typing([alice.user_id]), "alice typing",
                                   alice.room_typing(room_id, True, timeout=30000))
    ok(done, RoomTypingResponse)
    done, _ = await _while_syncing(bob, typing([]), "alice no longer typing", alice.room_typing(room_id, False))
    ok(done, RoomTypingResponse)

    # Receipts: bob's read marker and read receipt, then a threaded receipt; alice sees both.
    def receipt(event_id: str, thread_id: str | None) -> Callable[[SyncResponse], bool]:
        return lambda r: any(
            isinstance(e, ReceiptEvent) and any(
                (rc.user_id, rc.event_id, rc.receipt_type, rc.thread_id) == (bob.user_id, event_id, "m.read", thread_id)
                for rc in e.receipts)
            for e in _ephemeral(r, room_id))

    ok(await alice.sync(timeout=0, sync_filter=SYNC_FILTER), SyncResponse)
    done, _ = await _while_syncing(alice, receipt(sent[-1], None), "bob's read receipt",
                                   bob.room_read_markers(room_id, fully_read_event=sent[-1], read_event=sent[-1]))
    ok(done, RoomReadMarkersResponse)
    done, _ = await _while_syncing(alice, receipt(live_id, "main"), "bob's threaded receipt",
                                   bob.update_receipt_marker(room_id, live_id, ReceiptType.read, thread_id="main"))
    ok(done, UpdateReceiptMarkerResponse)

    def fully_read(r: SyncResponse) -> list[str]:
        room = r.rooms.join.get(room_id)
        return [e.event_id for e in (room.account_data if room else []) if isinstance(e, FullyReadEvent)]

    _, markers = await _sync_until(bob, fully_read, "bob's m.fully_read marker in his room account data")
    assert markers == [sent[-1]], markers

    # A redaction: bob sees the redaction event, and the message itself stripped.
    victim = sent[5]
    done, redactions = await _while_syncing(
        bob, lambda r: [e for e in _timeline(r, room_id) if e.source["type"] == "m.room.redaction"],
        "the redaction", alice.room_redact(room_id, victim, reason="typo"),
    )
    ok(done, RoomRedactResponse)
    redaction = redactions[0].source
    assert victim in (redaction.get("redacts"), redaction["content"].get("redacts")), redaction
    history = await _paginate_back(bob, room_id, timeline.prev_batch)
    fetched = ok(await bob.room_get_event(room_id, victim), RoomGetEventResponse).event.source
    for redacted in [e.source for e in history if e.event_id == victim] + [fetched]:
        assert redacted["content"] == {}, f"a redacted message keeps no content: {redacted}"
        assert "redacted_because" in redacted.get("unsigned", {}), redacted
    assert len(history) == len(older), "a redaction adds no event to the history before the gap"

    # A state change: alice sets the topic; bob sees the event and nio's room state follows.
    done, _ = await _while_syncing(
        bob, lambda r: [e for e in _timeline(r, room_id) if e.source["type"] == "m.room.topic"],
        "the topic change", alice.room_put_state(room_id, "m.room.topic", {"topic": "the new topic"}),
    )
    ok(done, RoomPutStateResponse)
    assert bob.rooms[room_id].topic == "the new topic"

    # Leave and rejoin: the room moves to "leave", then (private room: a new invite) back to "join".
    done, _ = await _while_syncing(bob, lambda r: room_id in r.rooms.leave, "the room under leave",
                                   bob.room_leave(room_id))
    ok(done, RoomLeaveResponse)
    ok(await alice.room_invite(room_id, bob.user_id), RoomInviteResponse)
    await _sync_until(bob, lambda r: room_id in r.rooms.invite, "the second invite")
    ok(await bob.join(room_id), JoinResponse)
    response, _ = await _sync_until(bob, lambda r: room_id in r.rooms.join, "the room back under join")
    assert room_id not in response.rooms.leave
    memberships = [e.source["content"]["membership"] for e in _timeline(response, room_id)
                   if e.source["type"] == "m.room.member" and e.source["state_key"] == bob.user_id]
    assert memberships[-1:] == ["join"], memberships


async def _paginate_back(client: AsyncClient, room_id: str, token: str) -> list[Any]:
    """Every event before `token`, newest first, by /messages pages until the room's start."""
    events: list[Any] = []
    for _ in range(MESSAGES):  # far more pages than needed: a server that never ends fails
        page = ok(await client.room_messages(room_id, start=token, direction=MessageDirection.back, limit=PAGE),
                   RoomMessagesResponse)
        events.extend(page.chunk)
        if not page.chunk or not page.end:
            return events
        token = page.end
    raise AssertionError(f"/messages still had more after {MESSAGES} pages of {PAGE}")
