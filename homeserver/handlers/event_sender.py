"""Creating, authorising and persisting a local event: the send path every room write goes through.

One writer per room at a time (a keyed lock), so local events form a line: the new event's
`prev_events` are the room's forward extremities, its state is the state after them, and it is
checked against the spec's authorization rules, and its push rules are evaluated, before one
transaction persists it with its notification rows. After the commit, the notifier wakes the
syncs of the room's members.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from homeserver.events.auth import AuthError, auth_types_for_event, check_auth_rules
from homeserver.events.builder import build_event
from homeserver.events.event import Event, EventFormatError, StateKey, StateMap
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.events.state_res import resolve_state
from homeserver.http.errors import MatrixError, forbidden, not_found
from homeserver.util.locks import KeyedLock
from storage.stores.events import TxnIdInUseError

if TYPE_CHECKING:
    from homeserver.server import HomeServer

MAX_PREV_EVENTS = 10
MAX_RECENT_TXNS = 10_000
CREATE_KEY: StateKey = ("m.room.create", "")


@dataclass(frozen=True)
class SentEvent:
    event: Event
    stream_ordering: int


@dataclass(frozen=True)
class RoomPosition:
    """Where a new event attaches: its prev events, depth, and the state before it."""

    prev_event_ids: list[str]
    depth: int
    state_group: int | None
    state: StateMap


# A check the caller runs under the room lock with the state the event will be authorised against.
PreSendCheck = Callable[[StateMap], Awaitable[None]]


class _StoredEvents:
    """The event look-up state resolution needs, over the events store."""

    def __init__(self, store: Any) -> None:
        self._store = store

    async def get_events(self, event_ids: Any) -> dict[str, Event]:
        stored = await self._store.events.get_events(list(event_ids))
        return {event_id: s.event for event_id, s in stored.items()}


def event_too_large() -> MatrixError:
    return MatrixError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "M_TOO_LARGE", "Event is larger than 65536 bytes.")


class EventSender:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store
        self._clock = hs.clock
        self._notifier = hs.notifier
        self._locks = KeyedLock()
        self._room_versions: dict[str, RoomVersion] = {}
        # Client transaction IDs of recent sends, so a retry costs no query; the database's
        # unique key catches older ones.
        self._recent_txns: OrderedDict[tuple[str, str, str], str] = OrderedDict()

    async def room_version(self, room_id: str) -> RoomVersion:
        """The room's version (immutable, so cached); 404 if the server doesn't know the room."""
        version = self._room_versions.get(room_id)
        if version is None:
            room = await self._store.rooms.get_room(room_id)
            if room is None:
                raise not_found(f"Unknown room {room_id}.")
            version = KNOWN_ROOM_VERSIONS[room.room_version]
            self._room_versions[room_id] = version
        return version

    async def _existing(self, event_id: str) -> SentEvent:
        stored = await self._store.events.get_event(event_id)
        if stored is None:
            raise not_found("The event this transaction ID was used for no longer exists.")
        return SentEvent(stored.event, stored.stream_ordering)

    async def position(self, room_id: str) -> RoomPosition:
        """The current end of the room: forward extremities and the (resolved) state after them."""
        extremities = await self._store.events.get_forward_extremities(room_id)
        if not extremities:
            raise not_found(f"Unknown room {room_id}.")
        prev_ids = sorted(extremities)[:MAX_PREV_EVENTS]
        depth = await self._store.events.get_max_depth(prev_ids) + 1
        groups = await self._store.state.get_state_groups_for_events(prev_ids)
        distinct = sorted({g for g in groups.values() if g is not None})
        if len(distinct) == 1:
            group = distinct[0]
            return RoomPosition(prev_ids, depth, group, await self._store.state.get_state_for_group(group))
        # Several branches (only federation makes them): resolve, and remember the result as a group.
        state_sets = [await self._store.state.get_state_for_group(g) for g in distinct]
        version = await self.room_version(room_id)
        resolved = await resolve_state(version, state_sets, _StoredEvents(self._store), self._clock)
        group = await self._store.state.store_state_group(room_id, None, None, None, resolved)
        return RoomPosition(prev_ids, depth, group, resolved)

    async def auth_events_for(self, auth_keys: list[StateKey], state: StateMap) -> dict[StateKey, Event]:
        # The rules always need the create event, even where v12 leaves it out of auth_events.
        wanted = {k: state[k] for k in {*auth_keys, CREATE_KEY} if k in state}
        stored = await self._store.events.get_events(list(wanted.values()))
        return {k: stored[eid].event for k, eid in wanted.items() if eid in stored}

    async def send(
        self,
        room_id: str,
        *,
        sender: str,
        event_type: str,
        content: dict[str, Any],
        state_key: str | None = None,
        redacts: str | None = None,
        txn_key: tuple[str, str, str] | None = None,
        pre_send: PreSendCheck | None = None,
    ) -> SentEvent:
        """Build, authorise and persist one event; 403 with the rule's reason if not allowed."""
        version = await self.room_version(room_id)
        async with self._locks.hold(room_id):
            if txn_key is not None and txn_key in self._recent_txns:
                return await self._existing(self._recent_txns[txn_key])
            pos = await self.position(room_id)
            if pre_send is not None:
                await pre_send(pos.state)
            auth_keys = auth_types_for_event(version, event_type, state_key, sender, content)
            auth_events = await self.auth_events_for(auth_keys, pos.state)
            auth_ids = [auth_events[k].event_id for k in auth_keys if k in auth_events]
            event = self._build(version, room_id, event_type, state_key, sender, content, pos, auth_ids, redacts)
            try:
                check_auth_rules(event, auth_events)
            except AuthError as e:
                raise forbidden(str(e)) from None
            push_actions = await self._hs.push_actions_handler.actions_for(event, pos.state_group, pos.state)
            try:
                persisted = await self._store.events.persist_event(event, prev_state_group=pos.state_group,
                                                                   txn_key=txn_key, push_actions=push_actions)
            except TxnIdInUseError as e:  # a retry from before this process remembered it
                return await self._existing(e.event_id)
            self._hs.push_actions_handler.on_event_persisted(event, persisted.stream_ordering, push_actions)
            if txn_key is not None:
                self._recent_txns[txn_key] = event.event_id
                if len(self._recent_txns) > MAX_RECENT_TXNS:
                    self._recent_txns.popitem(last=False)
        self._notify(event, persisted.stream_ordering)
        return SentEvent(event, persisted.stream_ordering)

    def _build(self, version: RoomVersion, room_id: str | None, event_type: str, state_key: str | None, sender: str,
               content: dict[str, Any], pos: RoomPosition, auth_ids: list[str], redacts: str | None) -> Event:
        try:
            return build_event(
                version, room_id=room_id, type=event_type, state_key=state_key, sender=sender, content=content,
                prev_event_ids=pos.prev_event_ids, auth_event_ids=auth_ids, depth=pos.depth,
                origin_server_ts=self._clock.time_msec(), server_name=self._hs.hostname,
                signing_key=self._hs.signing_key, redacts=redacts,
            )
        except EventFormatError as e:
            if "too large" in str(e):
                raise event_too_large() from None
            raise MatrixError(HTTPStatus.BAD_REQUEST, "M_BAD_JSON", f"Invalid event: {e}") from None

    async def create_room(self, version: RoomVersion, *, sender: str, create_content: dict[str, Any],
                          is_public: bool) -> SentEvent:
        """Persist a new room's create event (its ID makes the room ID from v12 on)."""
        room_id = None if version.hydra else f"!{secrets.token_urlsafe(18)}:{self._hs.hostname}"
        pos = RoomPosition([], 1, None, {})
        event = self._build(version, room_id, "m.room.create", "", sender, create_content, pos, [], None)
        try:
            check_auth_rules(event, {})
        except AuthError as e:
            raise MatrixError(HTTPStatus.BAD_REQUEST, "M_INVALID_ROOM_STATE", f"Invalid create event: {e}") from None
        await self._store.rooms.store_room(event.room_id, version.identifier, sender, is_public, self._clock.time_msec())
        self._room_versions[event.room_id] = version
        persisted = await self._store.events.persist_event(event, prev_state_group=None)
        self._notify(event, persisted.stream_ordering)
        return SentEvent(event, persisted.stream_ordering)

    def _notify(self, event: Event, stream_ordering: int) -> None:
        users = [event.state_key] if event.type == "m.room.member" and event.state_key else []
        self._notifier.notify("events", stream_ordering, rooms=[event.room_id], users=users)
