"""Real signed events for storage tests, and a replay of the state they should produce.

The store does not check auth rules (the handlers do), so these events carry only what
storage looks at; but they are built by the real event model, hashed and signed.
"""

from __future__ import annotations

import secrets
from typing import Any

from signedjson.key import generate_signing_key

from homeserver.events.builder import build_event
from homeserver.events.event import Event, StateMap
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from storage.datastore import DataStore
from storage.stores.events import EventStore, PersistedEvent

SERVER = "example.org"
ALICE = f"@alice:{SERVER}"
BOB = f"@bob:{SERVER}"
CAROL = "@carol:remote.example"


class RoomBuilder:
    """One room grown event by event through a real `EventStore`, with the expected state."""

    def __init__(self, datastore: DataStore, *, version: str = "12", events: EventStore | None = None):
        self.datastore = datastore
        self.events = events or datastore.events
        self.version = KNOWN_ROOM_VERSIONS[version]
        self.key = generate_signing_key("t1")
        self.room_id: str = ""
        # Distinct clocks keep the create events of different v12 rooms (and so the rooms) apart.
        self.clock = 1_000_000_000 + secrets.randbelow(10**9) * 1000
        self.last: Event | None = None
        self.last_group: int | None = None
        # event_id -> the state after it, replayed in Python.
        self.expected: dict[str, StateMap] = {}
        self.state: StateMap = {}

    def build(
        self,
        event_type: str,
        content: dict[str, Any],
        *,
        state_key: str | None = None,
        sender: str = ALICE,
        prev: list[Event] | None = None,
        redacts: str | None = None,
    ) -> Event:
        prev = prev if prev is not None else ([self.last] if self.last is not None else [])
        self.clock += 1000
        return build_event(
            self.version,
            room_id=self.room_id or None,
            type=event_type,
            state_key=state_key,
            sender=sender,
            content=content,
            prev_event_ids=[e.event_id for e in prev],
            auth_event_ids=[],
            depth=max((e.depth for e in prev), default=0) + 1,
            origin_server_ts=self.clock,
            server_name=sender.split(":", 1)[1],
            signing_key=self.key,
            redacts=redacts,
        )

    async def create(self, creator: str = ALICE, *, is_public: bool = False) -> Event:
        if not self.version.hydra:
            self.room_id = f"!{secrets.token_urlsafe(12)}:{SERVER}"
        create = self.build("m.room.create", {"room_version": self.version.identifier}, state_key="",
                            sender=creator)
        self.room_id = create.room_id
        await self.datastore.rooms.store_room(
            self.room_id, self.version.identifier, creator, is_public, self.clock
        )
        await self.persist(create)
        return create

    async def persist(self, event: Event, **kwargs: Any) -> PersistedEvent:
        """Persist after `self.last` (the linear case), tracking the expected state."""
        kwargs.setdefault("prev_state_group", self.last_group)
        persisted = await self.events.persist_event(event, **kwargs)
        accepted = kwargs.get("rejected_reason") is None
        if not kwargs.get("outlier"):
            if event.is_state() and accepted:
                self.state = {**self.state, event.state_tuple(): event.event_id}
            self.expected[event.event_id] = self.state
            self.last, self.last_group = event, persisted.state_group
        return persisted

    async def send(self, event_type: str, content: dict[str, Any], **kwargs: Any) -> Event:
        persist_args = {k: kwargs.pop(k) for k in ("txn_key", "rejected_reason") if k in kwargs}
        event = self.build(event_type, content, **kwargs)
        await self.persist(event, **persist_args)
        return event

    async def message(self, body: str, sender: str = ALICE, **content: Any) -> Event:
        return await self.send("m.room.message", {"msgtype": "m.text", "body": body, **content},
                               sender=sender)

    async def member(self, user_id: str, membership: str, *, sender: str | None = None,
                     **content: Any) -> Event:
        return await self.send("m.room.member", {"membership": membership, **content},
                               state_key=user_id, sender=sender or user_id)


async def count_rows(datastore: DataStore, table: str) -> int:
    rows = await datastore.db.execute("count", f"SELECT COUNT(*) FROM {table}")
    return int(rows[0][0])
