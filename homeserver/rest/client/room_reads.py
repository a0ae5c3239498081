"""Reading rooms: `/event`, `/state`, `/members`, `/joined_members`, `/joined_rooms`, `/messages`,
`/context`, and typing notifications."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.filtering import RoomEventFilter
from homeserver.handlers.aggregations import bundle_aggregations
from homeserver.handlers.client_format import client_event
from homeserver.http.errors import bad_json, forbidden, invalid_param, not_found
from homeserver.http.parse import query_int, query_str, read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer

ROOM = "(?P<room_id>[^/]+)"
MAX_LIMIT = 1000


def parse_room_filter(text: str | None) -> RoomEventFilter | None:
    if text is None:
        return None
    try:
        return RoomEventFilter(json.loads(text))
    except ValueError as e:
        raise bad_json(f"Invalid filter: {e}") from None


class EventServlet(Servlet):
    PATTERNS = client_patterns(f"/rooms/{ROOM}/event/(?P<event_id>[^/]+)")

    async def on_GET(self, request: PimanRequest, room_id: str, event_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        membership = await self.hs.visibility.require_can_read_room(room_id, requester.user_id)
        stored = await self.hs.store.events.get_event(event_id)
        if stored is None or stored.event.room_id != room_id:
            raise not_found("Event not found.")
        visible = await self.hs.visibility.filter_events(requester.user_id, [stored], current_membership=membership)
        if not visible:
            raise not_found("Event not found.")  # not 403: don't reveal that it exists
        stored = visible[0]  # as this user may have it (pruned if an erased user sent it)
        bundled = await bundle_aggregations(self.hs, requester.user_id, [stored])
        return HTTPStatus.OK, client_event(stored, self.hs.clock.time_msec(), relations=bundled.get(event_id))


class RoomStateServlet(Servlet):
    PATTERNS = client_patterns(f"/rooms/{ROOM}/state")

    async def on_GET(self, request: PimanRequest, room_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        state = await self.hs.message_handler.visible_state(requester.user_id, room_id)
        now = self.hs.clock.time_msec()
        return HTTPStatus.OK, [client_event(s, now) for s in sorted(state.values(), key=lambda s: s.stream_ordering)]


class MembersServlet(Servlet):
    PATTERNS = client_patterns(f"/rooms/{ROOM}/members")

    async def on_GET(self, request: PimanRequest, room_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        membership_filter = query_str(request, "membership", None)
        not_membership = query_str(request, "not_membership", None)
        at = query_str(request, "at", None)
        if at is not None:
            state = await self.hs.pagination_handler.state_at_token(requester.user_id, room_id, at)
        else:
            state = await self.hs.message_handler.visible_state(requester.user_id, room_id)
        now = self.hs.clock.time_msec()
        chunk = []
        for (event_type, _), stored in sorted(state.items()):
            if event_type != "m.room.member":
                continue
            m = stored.event.membership
            if (membership_filter and m != membership_filter) or (not_membership and m == not_membership):
                continue
            chunk.append(client_event(stored, now))
        return HTTPStatus.OK, {"chunk": chunk}


class JoinedMembersServlet(Servlet):
    PATTERNS = client_patterns(f"/rooms/{ROOM}/joined_members")

    async def on_GET(self, request: PimanRequest, room_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        membership = await self.hs.visibility.require_can_read_room(room_id, requester.user_id)
        if membership != "join":
            raise forbidden("You must be in the room to list its members.")
        members = await self.hs.store.events.get_joined_members_with_profiles(room_id)
        joined = {
            user_id: {k: v for k, v in (("display_name", p.display_name), ("avatar_url", p.avatar_url)) if v is not None}
            for user_id, p in members.items()
        }
        return HTTPStatus.OK, {"joined": joined}


class JoinedRoomsServlet(Servlet):
    PATTERNS = client_patterns("/joined_rooms")

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        rooms = await self.hs.store.events.get_rooms_for_user(requester.user_id, memberships=("join",))
        return HTTPStatus.OK, {"joined_rooms": sorted(r[0] for r in rooms)}


class MessagesServlet(Servlet):
    PATTERNS = client_patterns(f"/rooms/{ROOM}/messages")

    async def on_GET(self, request: PimanRequest, room_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        direction = query_str(request, "dir", "b")
        if direction not in ("b", "f"):
            raise invalid_param("dir must be 'b' or 'f'.")
        limit = query_int(request, "limit", 10)
        if limit < 0:
            raise invalid_param("limit must not be negative.")
        result = await self.hs.pagination_handler.paginate(
            requester.user_id, room_id,
            from_token=query_str(request, "from", None), to_token=query_str(request, "to", None),
            direction=direction, limit=min(limit, MAX_LIMIT),
            event_filter=parse_room_filter(query_str(request, "filter", None)),
        )
        return HTTPStatus.OK, result


class ContextServlet(Servlet):
    PATTERNS = client_patterns(f"/rooms/{ROOM}/context/(?P<event_id>[^/]+)")

    async def on_GET(self, request: PimanRequest, room_id: str, event_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        limit = query_int(request, "limit", 10)
        if limit < 0:
            raise invalid_param("limit must not be negative.")
        result = await self.hs.pagination_handler.context(
            requester.user_id, room_id, event_id, limit=min(limit, MAX_LIMIT),
            event_filter=parse_room_filter(query_str(request, "filter", None)))
        return HTTPStatus.OK, result


class TypingServlet(Servlet):
    PATTERNS = client_patterns(f"/rooms/{ROOM}/typing/(?P<user_id>[^/]+)")

    async def on_PUT(self, request: PimanRequest, room_id: str, user_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        if requester.user_id != user_id:
            raise forbidden("You can only set your own typing state.")
        body = read_json_object(request)
        typing = body.bool("typing")
        timeout = body.int("timeout", 30_000)
        if await self.hs.membership_handler.current_membership(room_id, user_id) != "join":
            raise forbidden("You are not in this room.")
        self.hs.typing_handler.set_typing(room_id, user_id, typing, timeout)
        return HTTPStatus.OK, {}


def servlets(hs: "HomeServer") -> list[Any]:
    return [EventServlet(hs), RoomStateServlet(hs), MembersServlet(hs), JoinedMembersServlet(hs),
            JoinedRoomsServlet(hs), MessagesServlet(hs), ContextServlet(hs), TypingServlet(hs)]


