"""`GET /_matrix/key/v2/server`: our signed verify keys, which peers use to check our signatures."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from signedjson.key import encode_verify_key_base64, get_verify_key
from signedjson.sign import sign_json

from homeserver.http.router import Servlet
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer


def format_key_id(key: Any) -> str:
    return f"{key.alg}:{key.version}"


class LocalKeyServlet(Servlet):
    PATTERNS = ["/_matrix/key/v2/server", "/_matrix/key/v2/server/(?P<key_id>[^/]*)"]


    def response(self) -> dict[str, Any]:
        key = self.hs.signing_key
        body = {
            "server_name": self.hs.hostname,
            "valid_until_ts": self.hs.clock.time_msec() + self.hs.config.key_refresh_interval,
            "verify_keys": {format_key_id(key): {"key": encode_verify_key_base64(get_verify_key(key))}},
            "old_verify_keys": {},
        }
        return sign_json(body, self.hs.hostname, key)

    async def on_GET(self, request: PimanRequest, key_id: str | None = None) -> tuple[int, Any]:
        # The {keyId} form is deprecated: the whole key set is returned whatever is asked.
        return HTTPStatus.OK, self.response()


class FederationVersionServlet(Servlet):
    PATTERNS = ["/_matrix/federation/v1/version"]


    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        return HTTPStatus.OK, {"server": {"name": "piman-homeserver", "version": self.hs.version}}


def servlets(hs: "HomeServer") -> list[Any]:
    return [LocalKeyServlet(hs), FederationVersionServlet(hs)]
