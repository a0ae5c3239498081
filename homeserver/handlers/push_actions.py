"""Notification counts: push rules evaluated per event for each local member, after the send.

`EventSender` calls `on_event_persisted` once an event is committed; the evaluation happens
later, on the reactor, so it adds nothing to the send request. Each member's rules are
evaluated and the rows of a burst of events are written in one transaction, FLUSH_DELAY_S
later at most. The room facts the rules need (local members and their display names, member
count, power levels) are cached per state group, so in a linear room evaluating usually costs
no read at all.

A /sync woken by an event would otherwise read the counts before that event's rows exist and
report a stale count with nothing to correct it later; `get_counts` therefore first waits for
(and hurries) the writing of the asked rooms' events up to the sync's position. A crash loses
the rows of the last FLUSH_DELAY_S: those events then never count as unread.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Collection, Iterable

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall

from homeserver.events.event import Event
from homeserver.events.power_levels import CREATE_KEY, POWER_LEVELS_KEY, PowerLevels
from homeserver.handlers.client_format import client_event
from homeserver.handlers.receipts import RECEIPT_TYPES
from homeserver.http.errors import invalid_param
from homeserver.push.evaluator import evaluate, is_highlight, notifies
from storage.stores.cache import LruCache
from storage.stores.push_actions import MAIN_THREAD, OwnEvent, PushActionRow
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
# Evaluated rows are written together after this delay or this many events, unless a reader
# (a /sync of a member) needs them sooner: one transaction per burst of sends, not per event.
FLUSH_DELAY_S = 0.05
FLUSH_EVENTS = 200
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


class PushActionsHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store.push_actions
        self._clock = hs.clock
        self._local_suffix = ":" + hs.hostname
        self._contexts: LruCache[tuple[str, int], _RoomContext] = LruCache(
            ROOM_CONTEXT_CACHE_WEIGHT, lambda c: len(c.local_members) + 1)
        self._queue: list[tuple[Event, int]] = []  # persisted, not evaluated yet
        self._unwritten: list[tuple[Event, int]] = []  # evaluated, rows not written yet
        self._rows: list[PushActionRow] = []
        self._own: list[OwnEvent] = []
        self._pending: dict[str, collections.deque[int]] = {}  # room -> orderings queued or unwritten, in order
        self._waiters: list[tuple[str, int, defer.Deferred[None]]] = []  # (room, up to position, reader)
        self._idle_waiters: list[defer.Deferred[None]] = []
        self._running = False
        self._start_scheduled = False
        self._flush_wanted = False
        self._flush_timer: IDelayedCall | None = None
        self._prune_up_to = 0  # the events position seen at the previous prune

    # -- writing ---------------------------------------------------------

    def on_event_persisted(self, event: Event, stream_ordering: int) -> None:
        """`EventSender.after_persist` callback: queue the event and return at once."""
        self._queue.append((event, stream_ordering))
        self._pending.setdefault(event.room_id, collections.deque()).append(stream_ordering)
        # The first event of a burst is evaluated at once (so that its rows are usually ready when
        # the members' syncs ask); the next ones wait for the flush timer the first one armed.
        if not self._running and not self._start_scheduled and self._flush_timer is None:
            self._start_scheduled = True
            # Two reactor turns: the first still runs before the reactor's next I/O pass, which
            # is the one that writes the send's response; the second comes after it.
            self._clock.call_later(0, self._clock.call_later, 0, self._start)

    def _start(self) -> None:
        self._start_scheduled = False
        if not self._running:
            self._running = True
            defer.ensureDeferred(self._run())

    def _want_flush(self) -> None:
        """Write the evaluated rows now: a reader waits for them, the delay is over, or we stop."""
        self._flush_wanted = True
        self._start()

    def _on_flush_timer(self) -> None:
        self._flush_timer = None
        self._want_flush()

    async def _run(self) -> None:
        """Evaluate what is queued; write when asked to or when enough has piled up."""
        try:
            while True:
                if self._queue:
                    batch, self._queue = self._queue, []
                    for event, stream_ordering in batch:
                        try:
                            await self._evaluate(event, stream_ordering, self._rows, self._own)
                        except Exception:
                            logger.exception("Evaluating push rules failed for event %s", event.event_id)
                    self._unwritten.extend(batch)
                elif self._unwritten and (self._flush_wanted or len(self._unwritten) >= FLUSH_EVENTS):
                    await self._write()
                else:
                    self._flush_wanted = False
                    break
        finally:
            self._running = False
            if (self._queue or self._unwritten) and self._flush_timer is None:
                self._flush_timer = self._clock.call_later(FLUSH_DELAY_S, self._on_flush_timer)

    async def _write(self) -> None:
        self._flush_wanted = False
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        batch, rows, own = self._unwritten, self._rows, self._own
        self._unwritten, self._rows, self._own = [], [], []
        own = list({(o.user_id, o.room_id, o.thread_id): o for o in own}.values())  # the latest of each
        try:
            await self._store.add_push_actions(rows, own)
        except Exception:
            logger.exception("Storing push actions failed for %d event(s)", len(batch))
        self._done(batch)

    def _done(self, batch: list[tuple[Event, int]]) -> None:
        for event, stream_ordering in batch:
            pending = self._pending.get(event.room_id)
            if pending is not None:
                pending.remove(stream_ordering)
                if not pending:
                    del self._pending[event.room_id]
        still: list[tuple[str, int, defer.Deferred[None]]] = []
        for room_id, up_to, d in self._waiters:
            if self._is_pending(room_id, up_to):
                still.append((room_id, up_to, d))
            else:
                d.callback(None)
        self._waiters = still
        if not self._pending:
            idle, self._idle_waiters = self._idle_waiters, []
            for d in idle:
                d.callback(None)

    def _is_pending(self, room_id: str, up_to: int | None) -> bool:
        pending = self._pending.get(room_id)
        return bool(pending) and (up_to is None or pending[0] <= up_to)

    async def wait_idle(self) -> None:
        """Until every queued event's rows are written (for a graceful stop)."""
        if self._pending:
            d: defer.Deferred[None] = defer.Deferred()
            self._idle_waiters.append(d)
            self._want_flush()
            await d

    async def _evaluate(self, event: Event, stream_ordering: int, rows: list[PushActionRow],
                        own: list[OwnEvent]) -> None:
        """Add the event's rows for every local member the rules notify (the sender excluded)."""
        room = await self._room_context(event)
        thread_id = await self._thread_of(event)
        if event.state_key is None and event.sender.endswith(self._local_suffix):
            # Sending reads up to the event (spec); state events don't: a display name change
            # is sent into every room of the user without them reading any.
            own.append(OwnEvent(event.sender, event.room_id, thread_id, stream_ordering))
        candidates = [(u, name) for u, name in room.local_members.items() if u != event.sender]
        if not candidates:
            return
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
                rows.append(PushActionRow(event.room_id, event.event_id, user_id, stream_ordering,
                                          notify, highlight, thread_id))

    async def _room_context(self, event: Event) -> _RoomContext:
        """Members, display names and power levels in the state after the event (as evaluation
        may run a little later, when the current state has moved on)."""
        state_store = self._hs.store.state
        group = await state_store.get_state_group_for_event(event.event_id)
        key = (event.room_id, group if group is not None else -1)
        cached = self._contexts.get(key) if group is not None else None
        if cached is not None:
            return cached
        if group is not None:
            state = await state_store.get_state_for_group(group)
        else:
            state = await state_store.get_current_state(event.room_id)
        wanted = {k: e for k, e in state.items() if k[0] == "m.room.member" or k in (POWER_LEVELS_KEY, CREATE_KEY)}
        events = await self._hs.store.events.get_events(wanted.values())
        by_key = {k: events[e].event for k, e in wanted.items() if e in events}
        joined = {k[1]: ev for k, ev in by_key.items() if k[0] == "m.room.member" and ev.membership == "join"}
        local_members: dict[str, str | None] = {}
        for user_id, member_event in joined.items():
            if user_id.endswith(self._local_suffix):
                name = member_event.content.get("displayname")
                local_members[user_id] = name if isinstance(name, str) else None
        context = _RoomContext(local_members, len(joined), PowerLevels.from_state(by_key, event.room_version))
        if group is not None:
            self._contexts.set(key, context)
        return context

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

    async def _wait_for_pending(self, room_ids: Iterable[str], up_to: int | None) -> None:
        """Until the rows of the rooms' events up to `up_to` (None: all so far) are written."""
        waits = []
        for room_id in room_ids:
            if self._is_pending(room_id, up_to):
                d: defer.Deferred[None] = defer.Deferred()
                self._waiters.append((room_id, up_to if up_to is not None else self._pending[room_id][-1], d))
                waits.append(d)
        if waits:
            self._want_flush()
        for d in waits:
            await d

    async def get_counts(self, user_id: str, room_ids: Collection[str], *, up_to: int | None = None,
                         threads: bool = False) -> dict[str, dict[str, Any]]:
        """room_id -> the /sync fields `unread_notifications` (and `unread_thread_notifications`
        if `threads`), for every room asked, once the rows of the rooms' events up to `up_to`
        (None: all sent so far) are written."""
        if not room_ids:
            return {}
        await self._wait_for_pending(room_ids, up_to)
        rooms, thread_positions = await self._read_positions(user_id, room_ids)
        counts = await self._store.get_unread_counts(user_id, room_ids, rooms, thread_positions)
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

    async def get_notifications(self, user_id: str, *, from_token: str | None, limit: int | None,
                                only: str | None) -> dict[str, Any]:
        """`GET /notifications`: the user's notifications, newest first, paged by stream ordering."""
        before = None
        if from_token is not None:
            if not from_token.isdigit():
                raise invalid_param("Unknown 'from' token.")
            before = int(from_token)
        limit = DEFAULT_NOTIFICATIONS_LIMIT if limit is None else max(1, min(limit, MAX_NOTIFICATIONS_LIMIT))
        await self._wait_for_pending(list(self._pending), None)
        rows = await self._store.get_notifications(user_id, before=before, limit=limit,
                                                   only_highlight=only == "highlight")
        events = await self._hs.store.events.get_events(r.event_id for r in rows)
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


def _rule_input(event: Event) -> dict[str, Any]:
    """The event as push rule conditions see it (client format, with `room_id`)."""
    out: dict[str, Any] = {"event_id": event.event_id, "room_id": event.room_id, "type": event.type,
                           "sender": event.sender, "origin_server_ts": event.origin_server_ts,
                           "content": event.content}
    if event.state_key is not None:
        out["state_key"] = event.state_key
    return out
