"""Notification counts: push rules evaluated per event for each local member, in the send path.

`EventSender.send` asks `actions_for` after authorising an event and before persisting it, and
the rows are written in the event's own transaction: whoever sees the event (a /sync woken by
it) sees its rows, so `get_counts` never waits for anything. The room facts the rules need
(local members and their display names, member count, power levels) are cached per state group,
so in a linear room evaluating a message usually costs no read at all; a member or power levels
event is evaluated against the state after it, built (uncached) from the state before it.

Evaluation costs ~30 µs per local member, held under the room's send lock: ~3 ms for a room of
100 local members, which is acceptable in-line; the loop yields to the reactor every
MEMBERS_PER_SLICE members so a huge room doesn't stall other requests.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Collection

from homeserver.events.event import Event, StateMap
from homeserver.events.power_levels import CREATE_KEY, POWER_LEVELS_KEY, PowerLevels
from homeserver.events.room_versions import RoomVersion
from homeserver.handlers.client_format import client_event
from homeserver.handlers.receipts import RECEIPT_TYPES
from homeserver.http.errors import invalid_param
from homeserver.push.evaluator import evaluate, is_highlight, notifies
from homeserver.retention.policy import EVENT_TYPE as RETENTION_EVENT
from storage.stores.cache import LruCache
from storage.stores.push_actions import MAIN_THREAD, EventPushActions, UnreadCounts
from storage.stores.relations import THREAD, relation_of

if TYPE_CHECKING:
    from homeserver.server import HomeServer

logger = logging.getLogger(__name__)

# Room facts cached per state group, weighed by member count.
ROOM_CONTEXT_CACHE_WEIGHT = 100_000
# Members evaluated between two yields to the reactor, so a huge room doesn't stall requests.
MEMBERS_PER_SLICE = 200
# Relations followed to find an event's thread (the spec recommends at most 3 hops).
MAX_THREAD_HOPS = 3
PRUNE_INTERVAL_S = 3600
DEFAULT_NOTIFICATIONS_LIMIT = 20
MAX_NOTIFICATIONS_LIMIT = 100
HIGHLIGHT_ACTIONS: list[Any] = ["notify", {"set_tweak": "highlight"}]
NOTIFY_ACTIONS: list[Any] = ["notify"]


@dataclass(frozen=True)
class _RoomContext:
    local_members: dict[str, str | None]  # joined local user -> display name in the room
    member_count: int
    power_levels: PowerLevels


def _counts(notify: int, highlight: int) -> dict[str, int]:
    return {"notification_count": notify, "highlight_count": highlight}


class _CountsCache:
    """Unread counts per (user, room) kept exact in memory, so a sync woken by a message needs no
    query: each notifying event adds to the entries it concerns in its commit's reactor turn,
    receipts and the user's own sends drop the entry. An entry counts every event up to its
    position. A read from the database is kept only if nothing touched the key meanwhile
    (versions), and an entry serves any sync at or after its position.

    Retention: expired events don't count (`PushActionsHandler.get_counts`). An entry also holds
    the oldest origin_server_ts it counts (None: none that can expire), so it serves only while
    that event has not expired; a new m.room.retention policy drops the room's entries.
    """

    MAX_ENTRIES = 100_000

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], tuple[int, UnreadCounts, int | None]] = {}
        self._versions: dict[tuple[str, str], int] = {}
        self._room_versions: dict[str, int] = {}  # bumped by a room's new retention policy
        self._room_users: dict[str, set[str]] = {}  # the users with an entry, per room
        self._epoch = 0  # bumped when versions are cleared, so an old read can't match again

    def version(self, user_id: str, room_id: str) -> tuple[int, int, int]:
        return self._epoch, self._room_versions.get(room_id, 0), self._versions.get((user_id, room_id), 0)

    def _touch(self, key: tuple[str, str]) -> None:
        if len(self._versions) >= self.MAX_ENTRIES:
            self._versions.clear()
            self._room_versions.clear()
            self._entries.clear()
            self._room_users.clear()
            self._epoch += 1
        self._versions[key] = self._versions.get(key, 0) + 1

    def get(self, user_id: str, room_id: str, up_to: int | None) -> tuple[UnreadCounts, int | None] | None:
        """(counts, oldest counted timestamp) if an entry serves a sync at `up_to`."""
        entry = self._entries.get((user_id, room_id))
        if entry is None or up_to is None or entry[0] > up_to:
            return None
        return entry[1], entry[2]

    def put(self, user_id: str, room_id: str, position: int, counts: UnreadCounts, oldest_ts: int | None,
            version: tuple[int, int, int]) -> None:
        if self.version(user_id, room_id) == version and len(self._entries) < self.MAX_ENTRIES:
            self._entries[(user_id, room_id)] = (position, counts, oldest_ts)
            self._room_users.setdefault(room_id, set()).add(user_id)

    def add(self, user_id: str, room_id: str, position: int, thread_id: str, notify: bool, highlight: bool,
            ts: int) -> None:
        key = (user_id, room_id)
        self._touch(key)
        entry = self._entries.get(key)
        if entry is None:
            return
        (total_n, total_h, threads), oldest = entry[1], entry[2]
        n, h = threads.get(thread_id, (0, 0))
        threads = {**threads, thread_id: (n + notify, h + highlight)}
        oldest = ts if oldest is None else min(oldest, ts)
        self._entries[key] = (position, (total_n + notify, total_h + highlight, threads), oldest)

    def forget(self, user_id: str, room_id: str) -> None:
        key = (user_id, room_id)
        self._touch(key)
        if self._entries.pop(key, None) is not None:
            self._room_users.get(room_id, set()).discard(user_id)

    def forget_room(self, room_id: str) -> None:
        """Every user's entry of the room, and reads of it under way, are void."""
        self._room_versions[room_id] = self._room_versions.get(room_id, 0) + 1
        for user_id in self._room_users.pop(room_id, ()):
            self._entries.pop((user_id, room_id), None)


class PushActionsHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store.push_actions
        self._clock = hs.clock
        self._local_suffix = ":" + hs.hostname
        self._contexts: LruCache[tuple[str, int], _RoomContext] = LruCache(
            ROOM_CONTEXT_CACHE_WEIGHT, lambda c: len(c.local_members) + 1)
        self._prune_up_to = 0  # the events position seen at the previous prune
        self._counts = _CountsCache()

    # -- evaluating ------------------------------------------------------

    async def actions_for(self, event: Event, state_group: int | None, state: StateMap) -> EventPushActions | None:
        """What to store with a local event about to be persisted, given the state before it (and
        that state's group, None if it has none): the local members the rules notify (the sender
        excluded) and whether it reads the sender's room. None if nothing; an evaluation error is
        logged and costs the event its notifications, never the send."""
        try:
            return await self._evaluate(event, state_group, state)
        except Exception:
            logger.exception("Evaluating push rules failed for event %s", event.event_id)
            return None

    async def _evaluate(self, event: Event, state_group: int | None, state: StateMap) -> EventPushActions | None:
        room = await self._room_context(event, state_group, state)
        thread_id = await self._thread_of(event)
        # Sending reads up to the event (spec); state events don't: a display name change is
        # sent into every room of the user without them reading any.
        sender_reads = event.state_key is None and event.sender.endswith(self._local_suffix)
        candidates = [(u, name) for u, name in room.local_members.items() if u != event.sender]
        notified: list[tuple[str, bool, bool]] = []
        if candidates:
            as_client = _rule_input(event)
            sender_level = room.power_levels.user_level(event.sender)
            account_data = self._hs.account_data_handler
            rules = self._hs.push_rules_handler
            for i, (user_id, display_name) in enumerate(candidates):
                if i and i % MEMBERS_PER_SLICE == 0:
                    await self._clock.sleep(0)
                if event.sender in await account_data.get_ignored_users(user_id):
                    continue
                actions = evaluate(
                    await rules.get_ruleset(user_id), as_client, user_id=user_id, display_name=display_name,
                    room_member_count=room.member_count, power_levels=room.power_levels.content,
                    sender_power_level=sender_level,  # type: ignore[arg-type]  # creators' level is infinite
                )
                notify, highlight = notifies(actions), is_highlight(actions)
                if notify or highlight:
                    notified.append((user_id, notify, highlight))
        if not notified and not sender_reads:
            return None
        return EventPushActions(thread_id, notified, sender_reads)

    async def _room_context(self, event: Event, state_group: int | None, state: StateMap) -> _RoomContext:
        """Members, display names and power levels in the state after the event: those of the
        state before it (cached per group), unless the event changes them (a member or power
        levels event: not cached, as the group after it only exists once it is persisted)."""
        if event.state_key is not None and _changes_context(event):
            after = {**state, event.state_tuple(): event.event_id}
            return await self._build_context(event.room_version, after, event)
        if state_group is None:
            return await self._build_context(event.room_version, state, None)
        key = (event.room_id, state_group)
        context = self._contexts.get(key)
        if context is None:
            context = await self._build_context(event.room_version, state, None)
            self._contexts.set(key, context)
        return context

    async def _build_context(self, room_version: RoomVersion, state: StateMap,
                             unstored: Event | None) -> _RoomContext:
        """The facts of `state`, whose events are stored except `unstored` (the state event being sent)."""
        wanted = {k: e for k, e in state.items() if k[0] == "m.room.member" or k in (POWER_LEVELS_KEY, CREATE_KEY)}
        events = await self._hs.store.events.get_events(
            e for e in wanted.values() if unstored is None or e != unstored.event_id)
        by_key = {k: events[e].event for k, e in wanted.items() if e in events}
        if unstored is not None and unstored.state_tuple() in wanted:
            by_key[unstored.state_tuple()] = unstored
        joined = {k[1]: ev for k, ev in by_key.items() if k[0] == "m.room.member" and ev.membership == "join"}
        local_members: dict[str, str | None] = {}
        for user_id, member_event in joined.items():
            if user_id.endswith(self._local_suffix):
                name = member_event.content.get("displayname")
                local_members[user_id] = name if isinstance(name, str) else None
        return _RoomContext(local_members, len(joined), PowerLevels.from_state(by_key, room_version))

    async def _thread_of(self, event: Event) -> str:
        """The thread root the event belongs to, following relations (spec: up to 3 hops), or "main"."""
        relation = relation_of(event)
        for _ in range(MAX_THREAD_HOPS):
            if relation is None:
                break
            rel_type, target = relation
            if rel_type == THREAD:
                return target
            relation = (await self._store.get_relations([target])).get(target)
        return MAIN_THREAD

    # -- reading ---------------------------------------------------------

    async def _read_positions(self, user_id: str, room_ids: Collection[str]
                              ) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        """Where the user has read up to, per room (unthreaded) and per (room, thread): the later
        of their `m.read` and `m.read.private` receipts, as stream orderings."""
        receipts = await self._hs.receipts_handler.get_read_receipts(user_id, room_ids)
        events = await self._hs.store.events.get_events(r.event_id for r in receipts)
        rooms: dict[str, int] = {}
        threads: dict[tuple[str, str], int] = {}
        for receipt in receipts:
            stored = events.get(receipt.event_id)
            if stored is None:
                continue
            position = stored.stream_ordering
            if receipt.thread_id is None:
                rooms[receipt.room_id] = max(rooms.get(receipt.room_id, 0), position)
            else:
                key = (receipt.room_id, receipt.thread_id)
                threads[key] = max(threads.get(key, 0), position)
        return rooms, threads

    async def get_counts(self, user_id: str, room_ids: Collection[str], *, up_to: int | None = None,
                         threads: bool = False) -> dict[str, dict[str, Any]]:
        """room_id -> the /sync fields `unread_notifications` (and `unread_thread_notifications`
        if `threads`), for every room asked, counting events up to stream ordering `up_to` (None:
        all) against the user's current receipts; one query.

        Expired events (retention) are not counted, from the moment they expire rather than when
        the purge deletes their rows: the database read leaves out rows older than each room's
        cutoff, and a cached entry is used only while the oldest event it counts has not expired.
        That check needs no room's policy while that event is younger than any room's lifetime
        can be (a woken /sync looks nothing up); otherwise the policies of the rooms concerned
        are read in one go, from the current-state cache. (Having a job delete expired events'
        push actions early was the other way: it would count an expired event until the job's
        next run, so it could not keep the "hidden at once" promise.) With retention off none of
        this runs.
        """
        if not room_ids:
            return {}
        retention = self._hs.retention
        now_ms = retention.clock.time_msec()
        counts: dict[str, UnreadCounts] = {}
        missing = []
        to_check: dict[str, tuple[UnreadCounts, int]] = {}  # cached, but its oldest event may have expired
        for room_id in room_ids:
            cached = self._counts.get(user_id, room_id, up_to)
            if cached is None:
                missing.append(room_id)
            elif cached[1] is not None and retention.may_have_expired(cached[1], now_ms):
                to_check[room_id] = (cached[0], cached[1])
            else:
                counts[room_id] = cached[0]
        # Taken before the policies are read: a new policy meanwhile voids what is read with the old.
        versions = {room_id: self._counts.version(user_id, room_id) for room_id in [*missing, *to_check]}
        cutoffs = await retention.cutoffs([*missing, *to_check], now_ms) if retention.rules.enabled else None
        for room_id, (cached_counts, oldest) in to_check.items():
            if cutoffs is not None and room_id in cutoffs and oldest < cutoffs[room_id]:
                missing.append(room_id)
            else:
                counts[room_id] = cached_counts
        if missing:
            read, oldest_read = await self._store.get_unread_counts_since(
                user_id, missing, RECEIPT_TYPES, up_to=up_to, not_before=cutoffs)
            counts.update(read)
            if up_to is not None:
                for room_id in missing:
                    self._counts.put(user_id, room_id, up_to, read.get(room_id, (0, 0, {})),
                                     oldest_read.get(room_id), versions[room_id])
        out: dict[str, dict[str, Any]] = {}
        for room_id, (notify, highlight, per_thread) in counts.items():
            if not threads:
                out[room_id] = {"unread_notifications": _counts(notify, highlight)}
                continue
            out[room_id] = {
                "unread_notifications": _counts(*per_thread.get(MAIN_THREAD, (0, 0))),
                "unread_thread_notifications": {
                    thread_id: _counts(n, h) for thread_id, (n, h) in per_thread.items()
                    if thread_id != MAIN_THREAD and (n or h)
                },
            }
        return out
    def on_event_persisted(self, event: Event, stream_ordering: int, actions: EventPushActions | None) -> None:
        """Keep the cached counts exact; called in the reactor turn of the event's commit."""
        if event.type == RETENTION_EVENT and event.state_key == "":
            self._counts.forget_room(event.room_id)  # a new policy moves what has expired
        if actions is None:
            return
        for user_id, notify, highlight in actions.notified:
            self._counts.add(user_id, event.room_id, stream_ordering, actions.thread_id, notify, highlight,
                             event.origin_server_ts)
        if actions.sender_reads:
            self._counts.forget(event.sender, event.room_id)
        self._hs.pusher_pool.on_event_persisted(event, actions)  # push notifications, in the background

    def on_receipt(self, user_id: str, room_id: str) -> None:
        """A receipt moved: the user's counts in the room must be read again."""
        self._counts.forget(user_id, room_id)

    async def get_notifications(self, user_id: str, *, from_token: str | None, limit: int | None,
                                only: str | None) -> dict[str, Any]:
        """`GET /notifications`: the user's notifications, newest first, paged by stream ordering."""
        before = None
        if from_token is not None:
            if not from_token.isdigit():
                raise invalid_param("Unknown 'from' token.")
            before = int(from_token)
        limit = DEFAULT_NOTIFICATIONS_LIMIT if limit is None else max(1, min(limit, MAX_NOTIFICATIONS_LIMIT))
        rows = await self._store.get_notifications(user_id, before=before, limit=limit,
                                                   only_highlight=only == "highlight")
        events = await self._hs.store.events.get_events(r.event_id for r in rows)
        unexpired = await self._hs.retention.filter_expired(list(events.values()))  # retention: hidden at once
        events = {s.event.event_id: s for s in unexpired}
        rooms, threads = await self._read_positions(user_id, {r.room_id for r in rows})
        now_ms = self._clock.time_msec()
        notifications = []
        for row in rows:
            stored = events.get(row.event_id)
            if stored is None:
                continue
            read_up_to = max(rooms.get(row.room_id, 0), threads.get((row.room_id, row.thread_id), 0))
            notifications.append({
                "actions": HIGHLIGHT_ACTIONS if row.highlight else NOTIFY_ACTIONS,
                "event": client_event(stored, now_ms, include_room_id=False),
                "read": row.stream_ordering <= read_up_to,
                "room_id": row.room_id,
                "ts": stored.event.origin_server_ts,
            })
        out: dict[str, Any] = {"notifications": notifications}
        if len(rows) == limit:
            out["next_token"] = str(rows[-1].stream_ordering)
        return out

    # -- pruning ---------------------------------------------------------

    async def prune(self) -> None:
        """Delete rows that are read (or whose user left) and were already there at the previous
        run, so read notifications stay listed by /notifications for at least one interval."""
        up_to, self._prune_up_to = self._prune_up_to, self._hs.store.events_stream.get_current_token()
        if not up_to:
            return
        try:
            deleted = await self._store.prune_read(up_to, RECEIPT_TYPES)
        except Exception:
            logger.exception("Pruning read push actions failed")
            return
        logger.info("Pruned %d read push action row(s)", deleted)


def _changes_context(event: Event) -> bool:
    return event.type == "m.room.member" or event.state_tuple() in (POWER_LEVELS_KEY, CREATE_KEY)


def _rule_input(event: Event) -> dict[str, Any]:
    """The event as push rule conditions see it (client format, with `room_id`)."""
    out: dict[str, Any] = {"event_id": event.event_id, "room_id": event.room_id, "type": event.type,
                           "sender": event.sender, "origin_server_ts": event.origin_server_ts,
                           "content": event.content}
    if event.state_key is not None:
        out["state_key"] = event.state_key
    return out
