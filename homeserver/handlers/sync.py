"""`/sync`: initial and incremental sync, long-polling on the notifier.

The rooms part (timelines, state, memberships, typing) is built here with a bounded number of
queries whatever the number of rooms: the last events of every room come from one query, the
current state of every room from another. Other streams (account data, receipts, presence,
to-device, device lists) plug in as `SyncExtension`s, each owning its token field, so adding a
stream doesn't touch this file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet import defer

from homeserver.auth import Requester
from homeserver.filtering import Filter
from homeserver.handlers.aggregations import add_bundled_aggregations
from homeserver.handlers.client_format import client_event
from homeserver.handlers.pagination import before, point_token
from homeserver.handlers.prev_content import add_prev_content
from homeserver.handlers.sync_token import SyncToken

if TYPE_CHECKING:
    from homeserver.server import HomeServer

DEFAULT_TIMELINE_LIMIT = 10
MAX_TIMELINE_LIMIT = 100
STRIPPED_STATE_TYPES = ("m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar",
                        "m.room.canonical_alias", "m.room.encryption", "m.room.topic")
MEMBERSHIPS = ("join", "invite", "leave", "ban", "knock")


@dataclass
class SyncContext:
    """One sync computation: what the client had, what exists now, and the response being built."""

    requester: Requester
    since: SyncToken | None
    now: SyncToken
    filter: Filter
    full_state: bool
    use_state_after: bool = False
    ignored_users: frozenset[str] = frozenset()
    joined_room_ids: list[str] = field(default_factory=list)
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def user_id(self) -> str:
        return self.requester.user_id


class SyncExtension(Protocol):
    """A stream that contributes to /sync. `token_field` names its SyncToken field."""

    token_field: str

    def current_position(self) -> int: ...

    async def fill(self, ctx: SyncContext) -> bool:
        """Add this stream's part of the response; True if it added anything."""
        ...


def cut_to_event_fields(sync_filter: Filter, rooms: dict[str, dict[str, Any]]) -> None:
    """The filter's `event_fields`: keep only the listed fields of timeline and state events."""
    for section in ("join", "leave"):
        for room in rooms[section].values():
            for part in ("timeline", "state", "state_after"):
                if part in room:
                    room[part]["events"] = [sync_filter.apply_event_fields(e) for e in room[part]["events"]]


def is_ignored(ctx: SyncContext, stored: Any) -> bool:
    """Messages from users the syncing user ignores are left out; their state changes are not."""
    return stored.event.sender in ctx.ignored_users and not stored.event.is_state()


class SyncHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store
        self._clock = hs.clock
        self._notifier = hs.notifier
        self._extensions: list[SyncExtension] = []

    def register_extension(self, extension: SyncExtension) -> None:
        self._extensions.append(extension)

    def current_token(self) -> SyncToken:
        positions = {"events": self._store.events_stream.get_current_token(),
                     "typing": self._hs.typing_handler.position}
        for ext in self._extensions:
            positions[ext.token_field] = ext.current_position()
        return SyncToken(**positions)

    async def sync(self, requester: Requester, *, since: SyncToken | None, timeout_ms: int, sync_filter: Filter,
                   full_state: bool, use_state_after: bool = False) -> dict[str, Any]:
        options = {"full_state": full_state, "use_state_after": use_state_after}
        now = self.current_token()
        ctx = await self._compute(requester, since, now, sync_filter, **options)
        if since is None or full_state or timeout_ms <= 0 or self._has_data(ctx):
            return ctx.response
        # Nothing new: sleep until this user or one of their rooms is notified, then look again.
        await self._notifier.wait(requester.user_id, ctx.joined_room_ids, timeout_ms, now.positions())
        now = self.current_token()
        ctx = await self._compute(requester, since, now, sync_filter, **options)
        return ctx.response

    def _has_data(self, ctx: SyncContext) -> bool:
        return bool(ctx.response.pop("_has_data", False))

    async def _compute(self, requester: Requester, since: SyncToken | None, now: SyncToken, sync_filter: Filter,
                       full_state: bool, use_state_after: bool) -> SyncContext:
        ctx = SyncContext(requester, since, now, sync_filter, full_state, use_state_after,
                          await self._hs.account_data_handler.get_ignored_users(requester.user_id))
        rooms: dict[str, dict[str, Any]] = {"join": {}, "invite": {}, "leave": {}, "knock": {}}
        ctx.response = {"next_batch": now.serialize(), "rooms": rooms}
        # Unread counts of every joined room, read while the timelines are read (two pool
        # connections, one round trip of waiting instead of two).
        memberships = await self._store.events.get_rooms_for_user(ctx.user_id, memberships=MEMBERSHIPS)
        joined = [r.room_id for r in memberships if r.membership == "join"]
        counts_read = defer.ensureDeferred(self._hs.push_actions_handler.get_counts(
            ctx.user_id, joined, up_to=now.events, threads=sync_filter.timeline.unread_thread_notifications))
        try:
            has_data = await self._fill_rooms(ctx, rooms, memberships)
            for ext in self._extensions:
                has_data = await ext.fill(ctx) or has_data
        except Exception:
            counts_read.addErrback(lambda _: None)  # the sync's own error is the one to report
            raise
        if sync_filter.event_fields is not None:
            cut_to_event_fields(sync_filter, rooms)
        counts = await counts_read
        # After the extensions, which add rooms too (a new receipt): every joined entry needs its counts.
        for room_id, entry in rooms["join"].items():
            entry.update(counts.get(room_id, {}))
        ctx.response["_has_data"] = has_data
        return ctx

    async def _fill_rooms(self, ctx: SyncContext, rooms: dict[str, dict[str, Any]], memberships: list[Any]) -> bool:
        user_id = ctx.user_id
        since_events = ctx.since.events if ctx.since is not None else None
        joined: list[str] = []
        newly_joined: set[str] = set()
        others: list[tuple[str, str, str, int]] = []
        for room_id, membership, event_id, stream in memberships:
            if not ctx.filter.room_allowed(room_id) or stream > ctx.now.events:
                continue
            if membership == "join":
                joined.append(room_id)
                if since_events is not None and stream > since_events:
                    newly_joined.add(room_id)
            elif since_events is None or stream > since_events:
                others.append((room_id, membership, event_id, stream))
        ctx.joined_room_ids = joined
        has_data = await self._fill_joined(ctx, rooms["join"], joined, newly_joined)
        for room_id, membership, event_id, stream in others:
            if membership == "invite":
                invite_state = await self._stripped_state(room_id, event_id)
                if any(e["type"] == "m.room.member" and e["state_key"] == user_id and e["sender"] in ctx.ignored_users
                       for e in invite_state):
                    continue  # invites from ignored users never reach the ignorer
                rooms["invite"][room_id] = {"invite_state": {"events": invite_state}}
            elif membership == "knock":
                rooms["knock"][room_id] = {"knock_state": {"events": await self._stripped_state(room_id, event_id)}}
            elif ctx.since is not None or ctx.filter.include_leave:
                rooms["leave"][room_id] = await self._left_room(ctx, room_id, stream)
            else:
                continue
            has_data = True
        return has_data

    def _timeline_limit(self, ctx: SyncContext) -> int:
        return ctx.filter.timeline.limit_or(DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT)

    async def _fill_joined(self, ctx: SyncContext, out: dict[str, Any], joined: list[str],
                           newly_joined: set[str]) -> bool:
        if not joined:
            return False
        limit = self._timeline_limit(ctx)
        since_events = ctx.since.events if ctx.since is not None else None
        full = set(joined) if since_events is None or ctx.full_state else newly_joined
        incremental = [r for r in joined if r not in full]
        latest: dict[str, tuple[list[Any], bool]] = {}
        if full:
            latest.update(await self._store.events.get_latest_events_for_rooms(
                sorted(full), limit=limit, before_stream=ctx.now.events + 1))
        if incremental:
            latest.update(await self._store.events.get_latest_events_for_rooms(
                sorted(incremental), limit=limit, before_stream=ctx.now.events + 1, after_stream=since_events))
        state_rooms = sorted(full | {r for r, (_, limited) in latest.items() if limited})
        current_state = await self._store.state.get_current_state_events_for_rooms(state_rooms) if state_rooms else {}
        now_ms = self._clock.time_msec()
        txn_ids = await self._txn_ids_for(ctx, [s for evs, _ in latest.values() for s in evs])
        has_data = False
        with_prev: list[tuple[Any, dict[str, Any]]] = []
        to_bundle: list[tuple[Any, dict[str, Any]]] = []  # limited timelines get bundled aggregations (spec)
        visible = await self._hs.visibility.filter_rooms(
            ctx.user_id, {room_id: evs for room_id, (evs, _) in latest.items() if evs}, current_membership="join")
        for room_id in joined:
            limited = latest.get(room_id, ([], False))[1]
            events = visible.get(room_id, [])
            timeline_events = [s for s in events if ctx.filter.timeline.matches(s.event.pdu, room_id)
                               and not is_ignored(ctx, s)]
            typing_changed = ctx.since is None or self._hs.typing_handler.changed_since(room_id, ctx.since.typing)
            if room_id not in full and not timeline_events and not limited and not typing_changed:
                continue
            state = self._state_section(ctx, room_id, current_state.get(room_id, {}), timeline_events,
                                        room_id in full, since_events)
            state_field = "state_after" if ctx.use_state_after else "state"
            room: dict[str, Any] = {
                "timeline": {
                    "events": [client_event(s, now_ms, txn_id=txn_ids.get(s.event.event_id), include_room_id=False)
                               for s in timeline_events],
                    "limited": limited,
                },
                state_field: {"events": [client_event(s, now_ms, include_room_id=False) for s in state]},
                "ephemeral": {"events": self._typing_events(room_id) if typing_changed else []},
                "account_data": {"events": []},
                "unread_notifications": {},
            }
            if timeline_events:
                first = timeline_events[0]
                room["timeline"]["prev_batch"] = point_token(before(first))
            else:
                room["timeline"]["prev_batch"] = ctx.now.serialize()
            if room_id in full:
                room["summary"] = self._summary(ctx.user_id, current_state.get(room_id, {}))
            out[room_id] = room
            if limited:
                to_bundle.extend(zip(timeline_events, room["timeline"]["events"]))
            with_prev.extend(zip(timeline_events, room["timeline"]["events"]))
            has_data = has_data or bool(timeline_events) or room_id in full or limited or typing_changed
        await add_bundled_aggregations(self._hs, ctx.user_id, to_bundle, include_room_id=False)
        await add_prev_content(self._hs, with_prev)
        return has_data

    def _state_section(self, ctx: SyncContext, room_id: str, current: dict[Any, Any], timeline: list[Any],
                       full: bool, since_events: int | None) -> list[Any]:
        """State the client needs besides the timeline: current state minus what the timeline carries.

        For a gappy incremental sync only the state that changed since the last sync is sent. With
        `use_state_after` (MSC4222) it is the state at the end of the timeline, timeline included.
        """
        in_timeline = set() if ctx.use_state_after else {s.event.event_id for s in timeline}
        lazy = ctx.filter.lazy_load_members
        senders = {s.event.sender for s in timeline} | {ctx.user_id}
        chosen = []
        for key, stored in current.items():
            if stored.event.event_id in in_timeline:
                continue
            if not full and since_events is not None and stored.stream_ordering <= since_events:
                continue
            if lazy and key[0] == "m.room.member" and key[1] not in senders:
                continue
            chosen.append(stored)
        chosen.sort(key=lambda s: s.stream_ordering)
        return chosen

    def _summary(self, user_id: str, current: dict[Any, Any]) -> dict[str, Any]:
        members = [(k[1], s.event.membership) for k, s in current.items() if k[0] == "m.room.member"]
        joined = [u for u, m in members if m == "join"]
        invited = [u for u, m in members if m == "invite"]
        summary: dict[str, Any] = {"m.joined_member_count": len(joined), "m.invited_member_count": len(invited)}
        has_name = ("m.room.name", "") in current or ("m.room.canonical_alias", "") in current
        if not has_name:
            summary["m.heroes"] = sorted(u for u in joined + invited if u != user_id)[:5]
        return summary

    def _typing_events(self, room_id: str) -> list[dict[str, Any]]:
        return [{"type": "m.typing", "content": {"user_ids": self._hs.typing_handler.typing_users(room_id)}}]

    async def _stripped_state(self, room_id: str, membership_event_id: str) -> list[dict[str, Any]]:
        keys = [(t, "") for t in STRIPPED_STATE_TYPES]
        state = await self._store.state.get_current_state_events(room_id, keys)
        member = await self._store.events.get_event(membership_event_id)
        events = list(state.values()) + ([member] if member is not None else [])
        return [{"type": s.event.type, "state_key": s.event.state_key, "content": s.event.content,
                 "sender": s.event.sender} for s in events]

    async def _left_room(self, ctx: SyncContext, room_id: str, leave_stream: int) -> dict[str, Any]:
        limit = self._timeline_limit(ctx)
        since_events = ctx.since.events if ctx.since is not None else None
        latest = await self._store.events.get_latest_events_for_rooms(
            [room_id], limit=limit, before_stream=leave_stream + 1, after_stream=since_events)
        events, limited = latest.get(room_id, ([], False))
        events = await self._hs.visibility.filter_events(ctx.user_id, events, current_membership="leave")
        now_ms = self._clock.time_msec()
        room = {
            "timeline": {"events": [client_event(s, now_ms, include_room_id=False) for s in events], "limited": limited},
            "state": {"events": []},
            "account_data": {"events": []},
        }
        if events:
            room["timeline"]["prev_batch"] = point_token(before(events[0]))
        return room

    async def _txn_ids_for(self, ctx: SyncContext, events: list[Any]) -> dict[str, str]:
        """Transaction IDs of this device's own events, for its local echo."""
        own = [s.event.event_id for s in events if s.event.sender == ctx.user_id]
        if not own or ctx.requester.device_id is None:
            return {}
        return await self._store.events.get_txn_ids_for_events(ctx.user_id, ctx.requester.device_id, own)

