"""Pushers: `GET /pushers` and `POST /pushers/set` (create, replace, or with `kind: null` delete).

A pusher belongs to the device of the access token that set it, and goes when that device is
deleted. Only `http` pushers are supported, and only towards the push gateways the admin allowed.
"""

from __future__ import annotations

import urllib.parse
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import invalid_param, missing_param
from homeserver.http.parse import read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest
from homeserver.push.pusher_pool import EVENT_ID_ONLY, HTTP_KIND
from storage.stores.pushers import Pusher, PusherSettings

if TYPE_CHECKING:
    from homeserver.server import HomeServer

MAX_APP_ID_LENGTH = 64
MAX_PUSHKEY_BYTES = 512
GATEWAY_PATH = "/_matrix/push/v1/notify"
_REQUIRED_FOR_HTTP = ("app_display_name", "device_display_name", "lang", "data")


def _pusher_json(pusher: Pusher) -> dict[str, Any]:
    out: dict[str, Any] = {
        "pushkey": pusher.pushkey,
        "kind": pusher.kind,
        "app_id": pusher.app_id,
        "app_display_name": pusher.app_display_name,
        "device_display_name": pusher.device_display_name,
        "lang": pusher.lang,
        "data": pusher.data,
    }
    if pusher.profile_tag is not None:
        out["profile_tag"] = pusher.profile_tag
    return out


def _string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise invalid_param(f"'{key}' must be a string.")
    return value


class PushersServlet(Servlet):
    PATTERNS = client_patterns("/pushers")

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        pushers = await self.hs.store.pushers.get_pushers(requester.user_id)
        return HTTPStatus.OK, {"pushers": [_pusher_json(p) for p in pushers]}


class SetPusherServlet(Servlet):
    PATTERNS = client_patterns("/pushers/set")

    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        body = read_json_object(request).data
        missing = [key for key in ("kind", "app_id", "pushkey") if key not in body]
        if missing:
            raise missing_param(f"Missing parameters: {', '.join(missing)}")
        app_id, pushkey = _string(body, "app_id"), _string(body, "pushkey")
        if not app_id or len(app_id) > MAX_APP_ID_LENGTH:
            raise invalid_param(f"'app_id' must be 1 to {MAX_APP_ID_LENGTH} characters.")
        if not pushkey or len(pushkey.encode("utf-8")) > MAX_PUSHKEY_BYTES:
            raise invalid_param(f"'pushkey' must be 1 to {MAX_PUSHKEY_BYTES} bytes.")
        kind = body["kind"]
        if kind is None:
            await self.hs.store.pushers.delete_pusher(requester.user_id, app_id, pushkey)
            return HTTPStatus.OK, {}
        if kind != HTTP_KIND:
            raise invalid_param(f"Unsupported pusher kind {kind!r}: this server supports only 'http' (or null).")
        settings = self._http_settings(body, app_id, pushkey)
        append = body.get("append", False)
        if not isinstance(append, bool):
            raise invalid_param("'append' must be a boolean.")
        await self.hs.store.pushers.set_pusher(requester.user_id, requester.device_id, settings, append=append,
                                               now_ms=self.hs.clock.time_msec())
        return HTTPStatus.OK, {}

    def _http_settings(self, body: dict[str, Any], app_id: str, pushkey: str) -> PusherSettings:
        missing = [key for key in _REQUIRED_FOR_HTTP if key not in body]
        if missing:
            raise missing_param(f"Missing parameters: {', '.join(missing)}")
        data = body["data"]
        if not isinstance(data, dict):
            raise invalid_param("'data' must be an object.")
        url = data.get("url")
        if url is None:
            raise missing_param("'data.url' is required for http pushers.")
        if not isinstance(url, str):
            raise invalid_param("'data.url' must be a string.")
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path != GATEWAY_PATH:
            raise invalid_param(f"'data.url' must be an https URL with the path {GATEWAY_PATH}.")
        pool = self.hs.pusher_pool
        if not pool.gateway_allowed(url):
            allowed = ", ".join(pool.gateways) if pool.gateways else "none are configured"
            raise invalid_param(
                f"this server only sends notifications to push gateways its admin allowed: {allowed}. "
                "Ask your server admin to add your app's push gateway to push.gateways.")
        if "format" in data and data["format"] != EVENT_ID_ONLY:
            raise invalid_param(f"'data.format' must be '{EVENT_ID_ONLY}' if given.")
        profile_tag = body.get("profile_tag")
        if profile_tag is not None and not isinstance(profile_tag, str):
            raise invalid_param("'profile_tag' must be a string.")
        return PusherSettings(
            kind=HTTP_KIND, app_id=app_id, pushkey=pushkey, data=data,
            app_display_name=_string(body, "app_display_name"),
            device_display_name=_string(body, "device_display_name"),
            profile_tag=profile_tag, lang=_string(body, "lang"),
        )


def servlets(hs: "HomeServer") -> list[Any]:
    return [PushersServlet(hs), SetPusherServlet(hs)]
