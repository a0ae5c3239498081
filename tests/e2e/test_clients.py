"""Real clients against `piman run`: matrix-nio and Synapse's admin script.

These are the programs users and admins will point at the server, unchanged;
if they work here over loopback they work in a deployment.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from nio import (
    AsyncClient,
    DevicesResponse,
    LoginResponse,
    LogoutResponse,
    RegisterResponse,
    WhoamiResponse,
)

from tests.e2e.server_process import SERVER_NAME, SHARED_SECRET, ServerProcess
from tests.openapi import validate_response

CS = "client-server"
SS = "server-server"
PASSWORD = "correct horse battery staple 42"


def _get(server: ServerProcess, path: str, token: str | None = None, base: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{base or server.base_url}{path}", headers=headers, timeout=30)


def _post(server: ServerProcess, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{server.base_url}{path}", json=body, timeout=30)


def _checked(api: str, method: str, path: str, response: requests.Response, status: int) -> Any:
    """The JSON body of `response`, after checking its status and its shape against the spec."""
    assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
    body = response.json()
    validate_response(api, method, path, status, body)
    return body


async def _nio_flow(base_url: str) -> dict[str, Any]:
    """Register (UIA), log in, whoami, list devices and log out with matrix-nio."""
    user_id = f"@bob:{SERVER_NAME}"
    # First stage of user-interactive auth by hand, to see the flows and session.
    first = requests.post(f"{base_url}/_matrix/client/v3/register",
                          json={"username": "bob", "password": PASSWORD}, timeout=30)
    body = _checked(CS, "POST", "/_matrix/client/v3/register", first, 401)
    assert ["m.login.dummy"] in [flow["stages"] for flow in body["flows"]], body
    assert body.get("session"), body

    client = AsyncClient(base_url)
    try:
        registered = await client.register("bob", PASSWORD, device_name="nio phone",
                                           session_token=body["session"])
        assert isinstance(registered, RegisterResponse), registered
        assert registered.user_id == user_id
        # nio's plain register sends m.login.dummy with no session: servers must accept it.
        carol = await client.register("carol", PASSWORD)
        assert isinstance(carol, RegisterResponse), carol
        assert carol.user_id == f"@carol:{SERVER_NAME}"
    finally:
        await client.close()

    client = AsyncClient(base_url, user_id)
    try:
        login = await client.login(PASSWORD, device_name="nio laptop")
        assert isinstance(login, LoginResponse), login
        assert login.user_id == user_id
        assert login.device_id != registered.device_id

        whoami = await client.whoami()
        assert isinstance(whoami, WhoamiResponse), whoami
        assert (whoami.user_id, whoami.device_id) == (user_id, login.device_id)

        devices = await client.devices()
        assert isinstance(devices, DevicesResponse), devices
        names = {device.id: device.display_name for device in devices.devices}
        assert names == {registered.device_id: "nio phone", login.device_id: "nio laptop"}

        logout = await client.logout()
        assert isinstance(logout, LogoutResponse), logout
    finally:
        await client.close()
    return {"registered": registered, "carol": carol, "login": login}


def test_matrix_nio_account_flow(homeserver: ServerProcess) -> None:
    result = asyncio.run(_nio_flow(homeserver.base_url))
    registered, login = result["registered"], result["login"]
    whoami = "/_matrix/client/v3/account/whoami"

    gone = _checked(CS, "GET", whoami, _get(homeserver, whoami, login.access_token), 401)
    assert gone["errcode"] == "M_UNKNOWN_TOKEN", gone
    # Logging out one device leaves the others signed in.
    still = _checked(CS, "GET", whoami, _get(homeserver, whoami, registered.access_token), 200)
    assert still["device_id"] == registered.device_id
    # A token in the query string (legacy) must not end up in the access log either.
    requests.get(f"{homeserver.base_url}{whoami}?access_token={registered.access_token}", timeout=30)

    assert homeserver.stop() == 0, homeserver.output
    secrets = {
        "password": PASSWORD,
        "registration token": registered.access_token,
        "second user's token": result["carol"].access_token,
        "login token": login.access_token,
    }
    log = homeserver.output
    assert whoami in log, "the server logged no request at all, so the leak check below proves nothing"
    leaked = [name for name, secret in secrets.items() if secret and secret in log]
    assert not leaked, f"server output contains the {', '.join(leaked)}"


def test_responses_match_spec(homeserver: ServerProcess) -> None:
    """The implemented endpoints answer as the spec's OpenAPI schemas say."""
    _checked(CS, "GET", "/_matrix/client/versions", _get(homeserver, "/_matrix/client/versions"), 200)
    _checked(CS, "GET", "/.well-known/matrix/client", _get(homeserver, "/.well-known/matrix/client"), 200)
    flows = _checked(CS, "GET", "/_matrix/client/v3/login", _get(homeserver, "/_matrix/client/v3/login"), 200)
    assert {"type": "m.login.password"} in flows["flows"]

    register = "/_matrix/client/v3/register"
    body = {"username": "dave", "password": PASSWORD, "auth": {"type": "m.login.dummy"}, "inhibit_login": True}
    registered = _checked(CS, "POST", register, _post(homeserver, register, body), 200)
    assert "access_token" not in registered, "inhibit_login must not create a device"
    login = "/_matrix/client/v3/login"
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "dave"},
            "password": PASSWORD, "initial_device_display_name": "spec check"}
    token = _checked(CS, "POST", login, _post(homeserver, login, body), 200)["access_token"]
    wrong = {**body, "password": "not the password"}
    _checked(CS, "POST", login, _post(homeserver, login, wrong), 403)

    whoami = _checked(CS, "GET", "/_matrix/client/v3/account/whoami",
                      _get(homeserver, "/_matrix/client/v3/account/whoami", token), 200)
    devices = _checked(CS, "GET", "/_matrix/client/v3/devices",
                       _get(homeserver, "/_matrix/client/v3/devices", token), 200)
    assert [d["device_id"] for d in devices["devices"]] == [whoami["device_id"]]
    device_path = f"/_matrix/client/v3/devices/{whoami['device_id']}"
    device = _checked(CS, "GET", device_path, _get(homeserver, device_path, token), 200)
    assert device["display_name"] == "spec check"
    missing = _checked(CS, "GET", "/_matrix/client/v3/account/whoami",
                       _get(homeserver, "/_matrix/client/v3/account/whoami"), 401)
    assert missing["errcode"] == "M_MISSING_TOKEN"

    federation = _federation_url(homeserver)
    keys = _checked(SS, "GET", "/_matrix/key/v2/server",
                    _get(homeserver, "/_matrix/key/v2/server", base=federation), 200)
    assert keys["server_name"] == SERVER_NAME
    _checked(SS, "GET", "/_matrix/federation/v1/version",
             _get(homeserver, "/_matrix/federation/v1/version", base=federation), 200)


def _federation_url(server: ServerProcess) -> str:
    for url in server.urls:
        try:
            if requests.get(f"{url}/_matrix/federation/v1/version", timeout=5).status_code == 200:
                return url
        except requests.RequestException:
            continue
    raise AssertionError(f"no listener of {server.urls} serves the federation API")


def test_synapse_register_new_matrix_user(homeserver: ServerProcess) -> None:
    """Synapse's admin script creates an admin through /_synapse/admin/v1/register."""
    venv = os.environ.get("PIMAN_SYNAPSE_VENV")
    if not venv:
        pytest.fail("PIMAN_SYNAPSE_VENV is not set: it must name a virtualenv with matrix-synapse "
                    "installed (`make test` creates .venv-synapse and sets it)")
    script = Path(venv) / "bin" / "register_new_matrix_user"
    assert script.exists(), f"{script} does not exist: is matrix-synapse installed in {venv}?"

    def register(user: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), "-u", user, "-p", PASSWORD, "--admin", "-k", SHARED_SECRET, homeserver.base_url],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )

    result = register("alice")
    assert result.returncode == 0, f"register_new_matrix_user failed:\n{result.stdout}\n{result.stderr}"
    again = register("alice")
    assert again.returncode != 0, "registering the same user twice must fail"

    login = "/_matrix/client/v3/login"
    legacy = {"type": "m.login.password", "user": "alice", "password": PASSWORD}
    body = _checked(CS, "POST", login, _post(homeserver, login, legacy), 200)
    assert body["user_id"] == f"@alice:{SERVER_NAME}"
    whoami = _checked(CS, "GET", "/_matrix/client/v3/account/whoami",
                      _get(homeserver, "/_matrix/client/v3/account/whoami", body["access_token"]), 200)
    assert whoami["user_id"] == f"@alice:{SERVER_NAME}"
