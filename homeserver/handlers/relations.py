"""`/relations` (an event's children) and `/threads` (a room's thread roots).

Both page by stream ordering. A relations token `r{P}` is the stream position P, so a page
backwards from it holds orderings <= P and a page forwards orderings > P, as in the timeline
queries; /messages (`t…`) and /sync (`s…`) tokens are accepted as positions too, as the spec
allows. A threads token `h{P}` continues with the threads whose latest reply is at or before P.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.events.redaction import prune_event_dict
from homeserver.handlers.aggregations import bundle_aggregations
from homeserver.handlers.client_format import client_event
from homeserver.handlers.sync_token import SyncToken
from homeserver.http.errors import invalid_param, not_found

if TYPE_CHECKING:
    from homeserver.server import HomeServer

MAX_RECURSION_DEPTH = 3  # the spec asks for at least 3 levels when `recurse` is set


def _relations_position(token: str) -> int:
    if token.startswith("s"):
        return SyncToken.parse(token).events
    try:
        if token.startswith("r"):
            return int(token[1:])
        if token.startswith("t"):  # /messages: t{depth}_{stream}
            return int(token[1:].split("_")[1])
    except (ValueError, IndexError):
        pass
    raise invalid_param(f"Malformed pagination token '{token}'.")


def _threads_position(token: str) -> int:
    try:
        if token.startswith("h"):
            return int(token[1:])
    except ValueError:
        pass
    raise invalid_param(f"Unknown pagination token '{token}'.")


class RelationsHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store

    async def get_relations(self, user_id: str, room_id: str, event_id: str, *, rel_type: str | None,
                            event_type: str | None, from_token: str | None, to_token: str | None, limit: int,
                            direction: str, recurse: bool | None) -> dict[str, Any]:
        """The visible children of a visible event, newest first for "b"; 404 if the parent is hidden."""
        membership = await self._hs.visibility.require_can_read_room(room_id, user_id)
        parent = await self._store.events.get_event(event_id)
        if parent is None or parent.event.room_id != room_id or not await self._hs.visibility.filter_events(
                user_id, [parent], current_membership=membership):
            raise not_found("Event not found.")
        start = _relations_position(from_token) if from_token else None
        end = _relations_position(to_token) if to_token else None
        depth = MAX_RECURSION_DEPTH if recurse else 1
        # One row more than asked says whether there is a next page.
        fetched = await self._store.relations.get_relations(
            event_id, room_id=room_id, rel_type=rel_type, event_type=event_type, from_stream=start,
            to_stream=end, limit=limit + 1, direction="b" if direction == "b" else "f", max_depth=depth)
        page = fetched[:limit]
        visible = await self._hs.visibility.filter_events(user_id, page, current_membership=membership)
        ignored = await self._hs.account_data_handler.get_ignored_users(user_id)
        visible = [s for s in visible if s.event.sender not in ignored]
        bundled = await bundle_aggregations(self._hs, user_id, visible)
        now = self._hs.clock.time_msec()
        result: dict[str, Any] = {
            "chunk": [client_event(s, now, relations=bundled.get(s.event.event_id)) for s in visible],
        }
        if len(fetched) > limit and page:
            last = page[-1].stream_ordering
            result["next_batch"] = f"r{last - 1 if direction == 'b' else last}"
        if from_token:
            result["prev_batch"] = from_token
        if recurse is not None:
            result["recursion_depth"] = depth
        return result

    async def get_threads(self, user_id: str, room_id: str, *, include: str, from_token: str | None,
                          limit: int) -> dict[str, Any]:
        """Thread roots by latest activity, each with its bundled `m.thread` summary."""
        membership = await self._hs.visibility.require_can_read_room(room_id, user_id)
        start = _threads_position(from_token) if from_token else None
        roots = await self._store.relations.get_thread_roots(
            room_id, include="participated" if include == "participated" else "all", user_id=user_id,
            from_stream=start, limit=limit + 1)
        page = roots[:limit]
        fetched = await self._store.events.get_events(thread_id for thread_id, _ in page)
        events = [fetched[thread_id] for thread_id, _ in page if thread_id in fetched]
        visible = await self._hs.visibility.filter_events(user_id, events, current_membership=membership)
        bundled = await bundle_aggregations(self._hs, user_id, visible)
        ignored = await self._hs.account_data_handler.get_ignored_users(user_id)
        now = self._hs.clock.time_msec()
        chunk = []
        for stored in visible:
            out = client_event(stored, now, relations=bundled.get(stored.event.event_id))
            if stored.event.sender in ignored:
                # The spec: a root from an ignored user is shown redacted, as a client would see it.
                out["content"] = prune_event_dict(stored.event.room_version, stored.event.pdu).get("content", {})
            chunk.append(out)
        result: dict[str, Any] = {"chunk": chunk}
        if len(roots) > limit and page:
            result["next_batch"] = f"h{page[-1][1] - 1}"
        return result
