"""Synapse's shared-secret registration, as `register_new_matrix_user` speaks it."""

from __future__ import annotations

import pytest
import pytest_twisted

from synapse_compat.admin_register import registration_mac
from tests.integration.harness import SERVER_NAME, SHARED_SECRET, TestServer

PATH = "/_synapse/admin/v1/register"


@pytest_twisted.ensureDeferred
async def test_shared_secret_registration_creates_an_admin(server: TestServer) -> None:
    client = server.client()
    nonce = (await client.get(PATH)).json["nonce"]
    mac = registration_mac(SHARED_SECRET, nonce, "root", "pw-root-123", True)
    resp = await client.post(PATH, {"nonce": nonce, "username": "root", "password": "pw-root-123",
                                    "admin": True, "mac": mac})
    assert resp.code == 200, resp
    assert resp.json["user_id"] == f"@root:{SERVER_NAME}"
    user = await server.hs.store.users.get_user(f"@root:{SERVER_NAME}")
    assert user is not None and user.admin
    whoami = await server.client(resp.json["access_token"]).get("/_matrix/client/v3/account/whoami")
    assert whoami.json["user_id"] == f"@root:{SERVER_NAME}"
    # The nonce is spent.
    replay = await client.post(PATH, {"nonce": nonce, "username": "root2", "password": "pw-root-123",
                                      "admin": True, "mac": registration_mac(SHARED_SECRET, nonce, "root2", "pw-root-123", True)})
    assert replay.code == 400


@pytest_twisted.ensureDeferred
async def test_wrong_mac_refused_and_nothing_created(server: TestServer) -> None:
    client = server.client()
    nonce = (await client.get(PATH)).json["nonce"]
    mac = registration_mac("wrong secret", nonce, "mallory", "pw-mallory-1", True)
    resp = await client.post(PATH, {"nonce": nonce, "username": "mallory", "password": "pw-mallory-1",
                                    "admin": True, "mac": mac})
    assert (resp.code, resp.json["errcode"]) == (403, "M_FORBIDDEN")
    assert await server.hs.store.users.get_user(f"@mallory:{SERVER_NAME}") is None


@pytest_twisted.ensureDeferred
async def test_mac_covers_the_admin_flag(server: TestServer) -> None:
    client = server.client()
    nonce = (await client.get(PATH)).json["nonce"]
    mac = registration_mac(SHARED_SECRET, nonce, "eve", "pw-eve-1234", False)
    resp = await client.post(PATH, {"nonce": nonce, "username": "eve", "password": "pw-eve-1234",
                                    "admin": True, "mac": mac})
    assert resp.code == 403


@pytest.mark.hs_config({"registration_shared_secret": None})
@pytest_twisted.ensureDeferred
async def test_disabled_without_a_shared_secret(server: TestServer) -> None:
    resp = await server.client().get(PATH)
    assert resp.code == 400
    assert "not enabled" in resp.json["error"]
