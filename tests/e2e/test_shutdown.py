"""SIGTERM stops the server cleanly without cutting off a request in flight.

Admins restart servers during the day; a client whose sign-up was being
processed at that moment must still get its answer.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import requests

from tests.e2e.server_process import ServerProcess, init_data_dir
from tests.openapi import validate_response

PASSWORD = "a slow password to check"
SLOW_BCRYPT_ROUNDS = 14  # about a second per hash here: still hashing at SIGTERM
SEND_HEAD_START = 0.3  # seconds between sending the request and SIGTERM


def test_sigterm_lets_the_request_in_flight_finish(tmp_path: Path, database_config: dict[str, Any]) -> None:
    config_path = init_data_dir(tmp_path / "data", database_config, bcrypt_rounds=SLOW_BCRYPT_ROUNDS)
    server = ServerProcess(config_path)
    server.start()
    outcome: dict[str, Any] = {}

    def register() -> None:
        # Hashing the password takes about a second, then the account is written to the
        # database: SIGTERM lands in the middle, and the pool must outlive the request.
        try:
            outcome["response"] = requests.post(
                f"{server.base_url}/_matrix/client/v3/register",
                json={"username": "erin", "password": PASSWORD, "auth": {"type": "m.login.dummy"}},
                timeout=60,
            )
        except requests.RequestException as error:
            outcome["error"] = error
        outcome["answered_at"] = time.monotonic()

    try:
        client = threading.Thread(target=register)
        client.start()
        time.sleep(SEND_HEAD_START)
        sigterm_at = time.monotonic()
        code = server.stop()
        client.join(60)
    finally:
        server.stop()
        print(f"--- piman run output ---\n{server.output}")

    assert "error" not in outcome, f"the in-flight registration was cut off: {outcome['error']!r}"
    assert outcome["answered_at"] > sigterm_at, "the registration finished before SIGTERM: the test proved nothing"
    response = outcome["response"]
    assert response.status_code == 200, response.text
    validate_response("client-server", "POST", "/_matrix/client/v3/register", 200, response.json())
    assert code == 0, f"piman run exited {code} after SIGTERM"
