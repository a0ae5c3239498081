"""What clients and peers read first: versions, capabilities, .well-known, server keys."""

from __future__ import annotations

import pytest
import pytest_twisted
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import verify_signed_json
from unpaddedbase64 import decode_base64

from tests.integration.harness import SERVER_NAME, TestServer


@pytest_twisted.ensureDeferred
async def test_versions(server: TestServer) -> None:
    resp = await server.client().get("/_matrix/client/versions")
    assert resp.code == 200
    assert "v1.1" in resp.json["versions"]
    assert resp.json["unstable_features"] == {}


@pytest_twisted.ensureDeferred
async def test_capabilities_need_auth_and_say_what_works(server: TestServer) -> None:
    assert (await server.client().get("/_matrix/client/v3/capabilities")).code == 401
    alice = await server.register("alice")
    caps = (await alice.get("/_matrix/client/v3/capabilities")).json["capabilities"]
    assert caps["m.change_password"] == {"enabled": True}


@pytest_twisted.ensureDeferred
async def test_client_well_known(server: TestServer) -> None:
    resp = await server.client().get("/.well-known/matrix/client")
    assert resp.json == {"m.homeserver": {"base_url": "http://127.0.0.1:8008"}}


@pytest_twisted.ensureDeferred
async def test_server_well_known_off_by_default(server: TestServer) -> None:
    resp = await server.client().get("/.well-known/matrix/server")
    assert (resp.code, resp.json["errcode"]) == (404, "M_NOT_FOUND")


@pytest.mark.hs_config({"serve_server_wellknown": True, "public_baseurl": "https://matrix.acme.example/"})
@pytest_twisted.ensureDeferred
async def test_server_well_known_when_enabled(server: TestServer) -> None:
    resp = await server.client().get("/.well-known/matrix/server")
    assert resp.json == {"m.server": "matrix.acme.example:443"}


@pytest_twisted.ensureDeferred
async def test_server_keys_are_signed_and_verify(server: TestServer) -> None:
    resp = await server.client().get("/_matrix/key/v2/server")
    assert resp.code == 200
    body = resp.json
    assert body["server_name"] == SERVER_NAME
    now_ms = server.hs.clock.time_msec()
    assert now_ms < body["valid_until_ts"] <= now_ms + server.hs.config.key_refresh_interval + 1000
    (key_id, key), = body["verify_keys"].items()
    algorithm, version = key_id.split(":")
    verify_key = decode_verify_key_bytes(key_id, decode_base64(key["key"]))
    verify_signed_json(body, SERVER_NAME, verify_key)  # raises if the signature is wrong
    body["valid_until_ts"] += 1
    with pytest.raises(Exception):
        verify_signed_json(body, SERVER_NAME, verify_key)


@pytest_twisted.ensureDeferred
async def test_federation_version(server: TestServer) -> None:
    resp = await server.client().get("/_matrix/federation/v1/version")
    assert resp.json["server"]["name"] == "piman-homeserver"
    assert resp.json["server"]["version"] == server.hs.version
