"""An in-process homeserver on a real loopback port, and a small Matrix client for tests.

The server is the production `HomeServer` started by `homeserver.app.start`, on the engine the
`database_config` fixture gives; the client speaks real HTTP to it with treq.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import urllib.parse

import treq

from tests.openapi import validate_response

from config import load_config_dict
from federation.signing_keys import generate_signing_key_file
from homeserver.app import start, stop
from homeserver.server import HomeServer
from storage.sealing import generate_data_key_file

SERVER_NAME = "test.local"

# Paths not described by the spec (Synapse's admin API) are checked by their own tests.
_SPEC_APIS = (("/_matrix/client/", "client-server"), ("/.well-known/matrix/client", "client-server"),
              ("/_matrix/federation/", "server-server"), ("/_matrix/key/", "server-server"),
              ("/.well-known/matrix/server", "server-server"))


# Keys the server sends as null for clients that require them (matrix-nio, like Synapse does),
# where the spec's schema only says "string"/"integer": dropped before validation.
_NULLABLE_FOR_CLIENTS = frozenset({"display_name", "last_seen_ip", "last_seen_ts"})


def _without_client_nulls(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: _without_client_nulls(v) for k, v in body.items()
                if not (v is None and k in _NULLABLE_FOR_CLIENTS)}
    if isinstance(body, list):
        return [_without_client_nulls(v) for v in body]
    return body


def check_against_spec(method: str, path: str, response: "Response") -> None:
    """Every successful response of an endpoint the spec describes must match its schema."""
    if method == "OPTIONS" or not 200 <= response.code < 300 or response.json is None:
        return
    for prefix, api in _SPEC_APIS:
        if path.startswith(prefix):
            validate_response(api, method, path, response.code, _without_client_nulls(response.json))
            return
SHARED_SECRET = "test-shared-secret"
GENEROUS = {"per_second": 1000, "burst_count": 1000}


def base_config(tmp_path: Path, database_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "server_name": SERVER_NAME,
        "public_baseurl": "http://127.0.0.1:8008/",
        "listeners": [{"port": 0, "bind_addresses": ["127.0.0.1"],
                       "resources": [{"names": ["client", "federation", "metrics"]}]}],
        "database": database_config,
        "signing_key_path": str(tmp_path / "signing.key"),
        "data_key_path": str(tmp_path / "data.key"),
        "media_store_path": str(tmp_path / "media"),
        "enable_registration": True,
        "registration_shared_secret": SHARED_SECRET,
        "bcrypt_rounds": 4,
        # Room semantics are tested with plaintext events; the encryption policy has its own tests
        # (test_e2ee_policy.py), with the production default (required) back on.
        "e2ee": {"required": False},
        "rc_message": GENEROUS,
        "rc_registration": GENEROUS,
        "rc_login": {"address": GENEROUS, "account": GENEROUS, "failed_attempts": GENEROUS},
    }


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if value is None:  # None removes a key, back to its default
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


class Response:
    def __init__(self, code: int, body: bytes, headers: Any) -> None:
        self.code = code
        self.raw = body
        self.headers = headers
        try:
            self.json: Any = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None

    def __repr__(self) -> str:
        return f"<Response {self.code} {self.raw[:300]!r}>"


class Client:
    """Raw HTTP against the test server; `token` is sent as a Bearer header."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url
        self.token = token
        self.user_id: str | None = None
        self.device_id: str | None = None

    async def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                      token: str | None = None, headers: dict[str, str] | None = None,
                      check_spec: bool = True) -> Response:
        hdrs = {"Content-Type": ["application/json"]}
        tok = token if token is not None else self.token
        if tok:
            hdrs["Authorization"] = [f"Bearer {tok}"]
        for k, v in (headers or {}).items():
            hdrs[k] = [v]
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        resp = await treq.request(method, self.base_url + path, data=data, headers=hdrs)
        content = await resp.content()
        response = Response(resp.code, content, resp.headers)
        if check_spec:
            check_against_spec(method, path, response)
        return response

    async def get(self, path: str, **kw: Any) -> Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Response:
        return await self.request("POST", path, body, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> Response:
        return await self.request("PUT", path, body, **kw)

    async def delete(self, path: str, body: Any = None, **kw: Any) -> Response:
        return await self.request("DELETE", path, body, **kw)


class TestServer:
    __test__ = False  # not a test class for pytest

    def __init__(self, hs: HomeServer, ports: list[Any], base_url: str) -> None:
        self.hs = hs
        self.ports = ports
        self.base_url = base_url

    @classmethod
    async def start(cls, reactor: Any, tmp_path: Path, database_config: dict[str, Any],
                    overrides: dict[str, Any] | None = None) -> "TestServer":
        generate_signing_key_file(str(tmp_path / "signing.key"))
        generate_data_key_file(str(tmp_path / "data.key"))
        config = load_config_dict(merge(base_config(tmp_path, database_config), overrides or {}),
                                  source="<test>", base_dir=str(tmp_path))
        hs = HomeServer(config, reactor)
        ports = await start(hs)
        port = ports[0].port.getHost().port
        return cls(hs, ports, f"http://127.0.0.1:{port}")

    async def stop(self) -> None:
        await stop(self.hs, self.ports)

    def client(self, token: str | None = None) -> Client:
        return Client(self.base_url, token)

    async def register_admin(self, username: str, password: str = "correct horse battery") -> Client:
        """A registered user made a server admin (as `piman register --admin` would)."""
        client = await self.register(username, password)
        await self.hs.store.users.set_admin(client.user_id, True)
        return client

    async def register(self, username: str, password: str = "correct horse battery", **extra: Any) -> Client:
        """Register through the real UIA flow (dummy stage) and return a logged-in client."""
        client = self.client()
        first = await client.post("/_matrix/client/v3/register", {"username": username, "password": password, **extra})
        assert first.code == 401, first
        resp = await client.post("/_matrix/client/v3/register", {
            "username": username, "password": password, **extra,
            "auth": {"type": "m.login.dummy", "session": first.json["session"]},
        })
        assert resp.code == 200, resp
        client.token = resp.json["access_token"]
        client.user_id = resp.json["user_id"]
        client.device_id = resp.json["device_id"]
        return client


V3 = "/_matrix/client/v3"


def q(value: str) -> str:
    """A path segment, percent-encoded (room IDs, aliases and user IDs hold '!', '#', ':')."""
    return urllib.parse.quote(value, safe="")


async def create_room(client: Client, **body: object) -> str:
    resp = await client.post(f"{V3}/createRoom", body)
    assert resp.code == 200, resp
    return resp.json["room_id"]


async def send(client: Client, room_id: str, body: str, txn: str) -> str:
    resp = await client.put(f"{V3}/rooms/{room_id}/send/m.room.message/{txn}", {"msgtype": "m.text", "body": body})
    assert resp.code == 200, resp
    return resp.json["event_id"]
