"""Metrics and logs: useful to the admin, and free of secrets."""

from __future__ import annotations

import logging

import pytest
import pytest_twisted

from tests.integration.harness import TestServer


@pytest_twisted.ensureDeferred
async def test_metrics_count_requests_and_db_transactions(server: TestServer) -> None:
    await server.register("alice")
    resp = await server.client().get("/_synapse/metrics")
    assert resp.code == 200
    text = resp.raw.decode()
    assert 'piman_http_requests_total{code="200",method="POST",servlet="RegisterServlet"} 1.0' in text
    assert 'piman_http_request_seconds_bucket{le="0.001",method="POST",servlet="RegisterServlet"}' in text
    assert "piman_db_transaction_seconds" in text
    assert "process_resident_memory_bytes" in text


@pytest_twisted.ensureDeferred
async def test_logs_hold_no_tokens_or_passwords(server: TestServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    alice = await server.register("alice", "very-secret-pw-1")
    assert alice.token
    await server.client().get(f"/_matrix/client/v3/account/whoami?access_token={alice.token}")
    await server.client().post("/_matrix/client/v3/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "wrong-pw-2"})
    await server.client().post("/_matrix/client/v3/login", raw=b"{broken json very-secret-pw-1")
    text = caplog.text
    assert "whoami" in text  # the access log did record the requests
    for secret in (alice.token, "very-secret-pw-1", "wrong-pw-2"):
        assert secret not in text
    assert "access_token=<redacted>" in text
