"""`/keys/upload`, `/keys/query`, `/keys/claim`, `/keys/changes` and the cross-signing uploads."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.events.user_ids import is_valid_user_id
from homeserver.handlers.sync_token import SyncToken
from homeserver.http.errors import bad_json, invalid_param
from homeserver.http.parse import JsonFields, query_str, read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer

PASSWORD_FLOWS = [["m.login.password"]]


def _user_map(body: JsonFields, field: str, value_type: type, value_name: str) -> dict[str, Any]:
    """A `{user_id: value}` request field, with user IDs and value types checked."""
    users = body.obj(field)
    for user_id, value in users.data.items():
        if not is_valid_user_id(user_id):
            raise invalid_param(f"'{user_id}' in '{field}' is not a user ID.")
        if not isinstance(value, value_type):
            raise bad_json(f"'{field}.{user_id}' must be {value_name}.")
    return users.data


class KeysUploadServlet(Servlet):
    PATTERNS = client_patterns("/keys/upload")

    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        body = read_json_object(request)
        return HTTPStatus.OK, await self.hs.e2e_keys_handler.upload_keys(requester, body.data)


class KeysQueryServlet(Servlet):
    PATTERNS = client_patterns("/keys/query")

    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        query = _user_map(read_json_object(request), "device_keys", list, "an array of device IDs")
        for user_id, device_ids in query.items():
            if not all(isinstance(d, str) for d in device_ids):
                raise bad_json(f"'device_keys.{user_id}' must be an array of device IDs.")
        return HTTPStatus.OK, await self.hs.e2e_keys_handler.query_keys(requester, query)


class KeysClaimServlet(Servlet):
    PATTERNS = client_patterns("/keys/claim")

    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        await self.hs.auth.get_user_by_req(request, allow_guest=True)
        wanted = _user_map(read_json_object(request), "one_time_keys", dict, "a map of device IDs to algorithms")
        for user_id, devices in wanted.items():
            if not all(isinstance(a, str) for a in devices.values()):
                raise bad_json(f"'one_time_keys.{user_id}' must map device IDs to algorithm names.")
        return HTTPStatus.OK, await self.hs.e2e_keys_handler.claim_keys(wanted)


class KeysChangesServlet(Servlet):
    PATTERNS = client_patterns("/keys/changes")

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        since = SyncToken.parse(query_str(request, "from"))
        now = SyncToken.parse(query_str(request, "to", None) or self.hs.sync_handler.current_token().serialize())
        changed, left = await self.hs.e2e_keys_handler.device_list_changes(requester.user_id, since, now)
        return HTTPStatus.OK, {"changed": sorted(changed), "left": sorted(left)}


class SigningKeyUploadServlet(Servlet):
    PATTERNS = client_patterns("/keys/device_signing/upload", unstable=True)

    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        body = read_json_object(request)
        handler = self.hs.e2e_keys_handler
        keys, session_id = body.data, None
        # A request carrying `auth` is a UIA round: its keys may be in the session's first body only.
        if body.has("auth") or await handler.cross_signing_upload_needs_auth(requester.user_id, body.data):
            result = await self.hs.ui_auth.check(request, body, flows=PASSWORD_FLOWS,
                                                  description="replace your cross-signing keys", requester=requester)
            keys, session_id = result.clientdict, result.session_id
        await handler.upload_cross_signing_keys(requester, keys)
        if session_id is not None:
            await self.hs.ui_auth.finish(session_id)
        return HTTPStatus.OK, {}


class SignaturesUploadServlet(Servlet):
    PATTERNS = client_patterns("/keys/signatures/upload", unstable=True)

    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        body = read_json_object(request)
        return HTTPStatus.OK, await self.hs.e2e_keys_handler.upload_signatures(requester, body.data)


def servlets(hs: "HomeServer") -> list[Any]:
    return [KeysUploadServlet(hs), KeysQueryServlet(hs), KeysClaimServlet(hs), KeysChangesServlet(hs),
            SigningKeyUploadServlet(hs), SignaturesUploadServlet(hs)]
