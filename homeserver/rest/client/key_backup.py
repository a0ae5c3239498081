"""Server-side key backup: `/room_keys/version[/{version}]` and `/room_keys/keys[/{roomId}[/{sessionId}]]`."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.handlers.key_backup import key_json, parse_key, parse_sessions
from homeserver.http.errors import not_found
from homeserver.http.parse import query_str, read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class BackupVersionsServlet(Servlet):
    PATTERNS = client_patterns("/room_keys/version")

    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        version = await self.hs.key_backup_handler.create_version(requester.user_id, read_json_object(request))
        return HTTPStatus.OK, {"version": version}

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        return HTTPStatus.OK, await self.hs.key_backup_handler.get_version(requester.user_id, None)


class BackupVersionServlet(Servlet):
    PATTERNS = client_patterns("/room_keys/version/(?P<version>[^/]+)")

    async def on_GET(self, request: PimanRequest, version: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        return HTTPStatus.OK, await self.hs.key_backup_handler.get_version(requester.user_id, version)

    async def on_PUT(self, request: PimanRequest, version: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        await self.hs.key_backup_handler.update_version(requester.user_id, version, read_json_object(request))
        return HTTPStatus.OK, {}

    async def on_DELETE(self, request: PimanRequest, version: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        await self.hs.key_backup_handler.delete_version(requester.user_id, version)
        return HTTPStatus.OK, {}


class AllKeysServlet(Servlet):
    PATTERNS = client_patterns("/room_keys/keys")

    async def on_PUT(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        version = query_str(request, "version")
        rooms = read_json_object(request).obj("rooms")
        keys = [key for room_id in rooms.data for key in parse_sessions(room_id, rooms.obj(room_id))]
        return HTTPStatus.OK, await self.hs.key_backup_handler.put_keys(requester.user_id, version, keys)

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        keys = await self.hs.key_backup_handler.get_keys(requester.user_id, query_str(request, "version"))
        rooms: dict[str, Any] = {}
        for key in keys:
            rooms.setdefault(key.room_id, {"sessions": {}})["sessions"][key.session_id] = key_json(key)
        return HTTPStatus.OK, {"rooms": rooms}

    async def on_DELETE(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        return HTTPStatus.OK, await self.hs.key_backup_handler.delete_keys(
            requester.user_id, query_str(request, "version"))


class RoomKeysServlet(Servlet):
    PATTERNS = client_patterns("/room_keys/keys/(?P<room_id>[^/]+)")

    async def on_PUT(self, request: PimanRequest, room_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        version = query_str(request, "version")
        keys = parse_sessions(room_id, read_json_object(request))
        return HTTPStatus.OK, await self.hs.key_backup_handler.put_keys(requester.user_id, version, keys)

    async def on_GET(self, request: PimanRequest, room_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        keys = await self.hs.key_backup_handler.get_keys(requester.user_id, query_str(request, "version"), room_id)
        return HTTPStatus.OK, {"sessions": {key.session_id: key_json(key) for key in keys}}

    async def on_DELETE(self, request: PimanRequest, room_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        return HTTPStatus.OK, await self.hs.key_backup_handler.delete_keys(
            requester.user_id, query_str(request, "version"), room_id)


class SessionKeyServlet(Servlet):
    PATTERNS = client_patterns("/room_keys/keys/(?P<room_id>[^/]+)/(?P<session_id>[^/]+)")

    async def on_PUT(self, request: PimanRequest, room_id: str, session_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        version = query_str(request, "version")
        key = parse_key(room_id, session_id, read_json_object(request))
        return HTTPStatus.OK, await self.hs.key_backup_handler.put_keys(requester.user_id, version, [key])

    async def on_GET(self, request: PimanRequest, room_id: str, session_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        keys = await self.hs.key_backup_handler.get_keys(
            requester.user_id, query_str(request, "version"), room_id, session_id)
        if not keys:
            raise not_found("No backed-up key for this session.")
        return HTTPStatus.OK, key_json(keys[0])

    async def on_DELETE(self, request: PimanRequest, room_id: str, session_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        return HTTPStatus.OK, await self.hs.key_backup_handler.delete_keys(
            requester.user_id, query_str(request, "version"), room_id, session_id)


def servlets(hs: "HomeServer") -> list[Any]:
    return [BackupVersionsServlet(hs), BackupVersionServlet(hs), AllKeysServlet(hs), RoomKeysServlet(hs),
            SessionKeyServlet(hs)]
