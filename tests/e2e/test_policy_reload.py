"""`kill -HUP` a running `piman run`: a new privacy policy version reaches users without a restart.

The integration tests cover what the reload does (tests/integration/test_privacy_policy.py); this
one checks the signal is wired: the real process, its config file, a client's /sync.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.e2e.server_process import SHARED_SECRET, init_data_dir, running_server

POLICY_1 = {"version": "2026-05", "url": "https://acme.example/privacy/2026-05"}
POLICY_2 = {"version": "2026-11", "url": "https://acme.example/privacy"}
PASSWORD = "correct horse battery"
DEADLINE_S = 30.0


def admin_register(base_url: str, username: str) -> str:
    """An account made with the shared secret (as register_new_matrix_user does); its access token."""
    path = f"{base_url}/_synapse/admin/v1/register"
    nonce = requests.get(path, timeout=10).json()["nonce"]
    mac = hmac.new(SHARED_SECRET.encode(), b"\x00".join([nonce.encode(), username.encode(), PASSWORD.encode(),
                                                          b"notadmin"]), hashlib.sha1).hexdigest()
    resp = requests.post(path, json={"nonce": nonce, "username": username, "password": PASSWORD, "mac": mac},
                         timeout=10)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def policy_notices(body: dict[str, Any]) -> list[str]:
    """The policy versions announced in a /sync response's joined rooms."""
    return [event["content"]["org.piman.privacy_policy"]["version"]
            for room in body.get("rooms", {}).get("join", {}).values()
            for event in room["timeline"]["events"]
            if "org.piman.privacy_policy" in event.get("content", {})]


def test_sighup_announces_a_new_policy_version(tmp_path: Path, database_config: dict[str, Any]) -> None:
    config_path = init_data_dir(tmp_path / "data", database_config, privacy_policy=POLICY_1)
    with running_server(config_path) as server:
        auth = {"Authorization": f"Bearer {admin_register(server.base_url, 'alice')}"}
        sync_url = f"{server.base_url}/_matrix/client/v3/sync"
        first = requests.get(sync_url, headers=auth, timeout=10).json()
        [room_id] = first["rooms"]["invite"]
        joined = requests.post(f"{server.base_url}/_matrix/client/v3/join/{room_id}", json={}, headers=auth,
                               timeout=10)
        assert joined.status_code == 200, joined.text
        body = requests.get(sync_url, headers=auth, timeout=10).json()
        assert policy_notices(body) == ["2026-05"]

        # A config with an error is not taken: the server says so and keeps its policy.
        config = yaml.safe_load(config_path.read_text())
        config_path.write_text(yaml.safe_dump({**config, "privacy_policy": {"version": "2026-11"}}))
        os.kill(server.pid, signal.SIGHUP)
        deadline = time.monotonic() + DEADLINE_S
        while "config not reloaded, it has an error" not in server.output and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "privacy_policy.url" in server.output, server.output

        config_path.write_text(yaml.safe_dump({**config, "privacy_policy": POLICY_2}))
        os.kill(server.pid, signal.SIGHUP)
        since, seen = body["next_batch"], []
        while not seen and time.monotonic() < deadline:
            body = requests.get(sync_url, params={"since": since, "timeout": "5000"}, headers=auth, timeout=30).json()
            since, seen = body["next_batch"], policy_notices(body)
        assert seen == ["2026-11"], server.output
        assert server.returncode is None  # still serving
