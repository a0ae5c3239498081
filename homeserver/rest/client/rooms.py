"""Room writes: `/createRoom`, joining and the other membership actions, sending and redacting.

With `require_consent`, every write but leaving, forgetting and redacting (users may always take
back what they wrote) first asks the consent handler; the admin API doesn't come through here.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import bad_json
from homeserver.http.parse import read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer

ROOM = "(?P<room_id>[^/]+)"


class CreateRoomServlet(Servlet):
    PATTERNS = client_patterns("/createRoom")

    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        await self.hs.consent_handler.require_consent(requester)
        body = read_json_object(request, allow_empty=True)
        spec = self.hs.room_creation_handler.parse(body)
        room_id, alias = await self.hs.room_creation_handler.create(requester.user_id, spec)
        result: dict[str, Any] = {"room_id": room_id}
        if alias is not None:
            result["room_alias"] = alias
        return HTTPStatus.OK, result


class JoinServlet(Servlet):
    PATTERNS = client_patterns("/join/(?P<room>[^/]+)") + client_patterns("/rooms/(?P<room>[^/]+)/join")

    async def on_POST(self, request: PimanRequest, room: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        await self.hs.consent_handler.require_consent(requester, room)  # one's notices room stays joinable
        body = read_json_object(request, allow_empty=True)
        room_id = await self.hs.membership_handler.join(room, requester.user_id,
                                                        reason=body.str("reason", None, nullable=True))
        return HTTPStatus.OK, {"room_id": room_id}


class KnockServlet(Servlet):
    PATTERNS = client_patterns("/knock/(?P<room>[^/]+)")

    async def on_POST(self, request: PimanRequest, room: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        await self.hs.consent_handler.require_consent(requester)
        body = read_json_object(request, allow_empty=True)
        room_id = await self.hs.membership_handler.knock(room, requester.user_id,
                                                         reason=body.str("reason", None, nullable=True))
        return HTTPStatus.OK, {"room_id": room_id}


class MembershipServlet(Servlet):
    """`/rooms/{roomId}/{invite,leave,kick,ban,unban,forget}`."""

    PATTERNS = client_patterns(f"/rooms/{ROOM}/(?P<action>invite|leave|kick|ban|unban|forget)")

    async def on_POST(self, request: PimanRequest, room_id: str, action: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=action in ("leave", "forget"))
        if action not in ("leave", "forget"):
            await self.hs.consent_handler.require_consent(requester)
        body = read_json_object(request, allow_empty=True)
        reason = body.str("reason", None, nullable=True)
        handler = self.hs.membership_handler
        me = requester.user_id
        if action == "leave":
            await handler.leave(room_id, me, reason=reason)
        elif action == "forget":
            await handler.forget(room_id, me)
        elif action == "invite":
            if body.has("id_server") or body.has("medium"):
                raise bad_json("Third-party invites (id_server/medium/address) are not supported here.")
            await handler.invite(room_id, me, body.str("user_id"), reason=reason)
        elif action == "kick":
            await handler.kick(room_id, me, body.str("user_id"), reason=reason)
        elif action == "ban":
            await handler.ban(room_id, me, body.str("user_id"), reason=reason)
        else:
            await handler.unban(room_id, me, body.str("user_id"), reason=reason)
        return HTTPStatus.OK, {}


class SendEventServlet(Servlet):
    PATTERNS = client_patterns(f"/rooms/{ROOM}/send/(?P<event_type>[^/]+)/(?P<txn_id>[^/]+)")

    async def on_PUT(self, request: PimanRequest, room_id: str, event_type: str, txn_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        await self.hs.consent_handler.require_consent(requester)
        content = read_json_object(request).data
        sent = await self.hs.message_handler.send_message(
            requester, room_id, event_type, content, txn_id=txn_id)
        return HTTPStatus.OK, {"event_id": sent.event.event_id}


class RedactServlet(Servlet):
    PATTERNS = client_patterns(f"/rooms/{ROOM}/redact/(?P<event_id>[^/]+)/(?P<txn_id>[^/]+)")

    async def on_PUT(self, request: PimanRequest, room_id: str, event_id: str, txn_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        body = read_json_object(request, allow_empty=True)
        reason = body.str("reason", None, nullable=True)
        sent = await self.hs.message_handler.redact(requester, room_id, event_id, reason=reason, txn_id=txn_id)
        return HTTPStatus.OK, {"event_id": sent.event.event_id}


class StateEventServlet(Servlet):
    """`GET`/`PUT /rooms/{roomId}/state/{eventType}[/{stateKey}]` (an empty state key may be left out)."""

    PATTERNS = client_patterns(f"/rooms/{ROOM}/state/(?P<event_type>[^/]+)(?:/(?P<state_key>[^/]*))?")

    async def on_GET(self, request: PimanRequest, room_id: str, event_type: str, state_key: str = "") -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        content = await self.hs.message_handler.get_state_content(requester.user_id, room_id, event_type, state_key)
        return HTTPStatus.OK, content

    async def on_PUT(self, request: PimanRequest, room_id: str, event_type: str, state_key: str = "") -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        await self.hs.consent_handler.require_consent(requester)
        content = read_json_object(request).data
        sent = await self.hs.message_handler.send_state(requester, room_id, event_type, state_key, content)
        return HTTPStatus.OK, {"event_id": sent.event.event_id}


def servlets(hs: "HomeServer") -> list[Any]:
    return [CreateRoomServlet(hs), JoinServlet(hs), KnockServlet(hs), MembershipServlet(hs), SendEventServlet(hs),
            RedactServlet(hs), StateEventServlet(hs)]
