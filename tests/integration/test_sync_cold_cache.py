"""An initial /sync on a cold cache (just after a restart) costs a bounded number of database
transactions whatever the number of rooms: no query per room (the "no N+1" rule of DESIGN.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_twisted

from tests.integration.harness import V3, TestServer, create_room, q, send
from tests.integration.test_privacy_policy import start_server

NO_LIMITS = {name: {"per_second": 1000, "burst_count": 1000} for name in ("rc_message",)}
NO_LIMITS["rc_joins"] = {"local": {"per_second": 1000, "burst_count": 1000}}


async def _log_in(server: TestServer, username: str) -> Any:
    resp = await server.client().post(f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": username},
        "password": "correct horse battery"})
    assert resp.code == 200, resp
    return server.client(resp.json["access_token"])


def _transactions(server: TestServer) -> dict[str, float]:
    """Database transactions so far by kind (`desc`), from the server's own metrics."""
    return {sample.labels["desc"]: sample.value
            for family in server.hs.metrics_registry.collect() for sample in family.samples
            if sample.name == "piman_db_transaction_seconds_count"}


async def _cold_initial_sync(reactor: Any, tmp_path: Path, database_config: dict[str, Any]) -> tuple[dict[str, float], int]:
    """(transactions, joined rooms) of carol's first /sync on a new device, on a freshly started server."""
    server = await start_server(reactor, tmp_path, database_config, NO_LIMITS)
    try:
        carol = await _log_in(server, "carol")
        await carol.get(f"{V3}/account/whoami")  # the token and device are read: not the sync's cost
        before = _transactions(server)
        body = (await carol.get(f"{V3}/sync")).json
        after = _transactions(server)
        return {desc: n - before.get(desc, 0) for desc, n in after.items() if n > before.get(desc, 0)}, \
            len(body["rooms"]["join"])
    finally:
        await server.stop()


async def _add_rooms(reactor: Any, tmp_path: Path, database_config: dict[str, Any], count: int,
                     *, first: bool = False) -> None:
    """alice creates `count` rooms with a message each, and carol joins them."""
    server = await start_server(reactor, tmp_path, database_config, NO_LIMITS)
    try:
        if first:
            await server.register("alice")
            await server.register("carol")
        alice, carol = await _log_in(server, "alice"), await _log_in(server, "carol")
        for i in range(count):
            room_id = await create_room(alice, preset="public_chat", name=f"room {i}")
            assert (await carol.post(f"{V3}/join/{q(room_id)}", {})).code == 200
            await send(alice, room_id, f"hello {i}", f"t{i}")
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_cold_initial_sync_costs_the_same_for_3_or_15_rooms(reactor: Any, tmp_path: Path,
                                                                   database_config: dict[str, Any]) -> None:
    await _add_rooms(reactor, tmp_path, database_config, 3, first=True)
    few, rooms = await _cold_initial_sync(reactor, tmp_path, database_config)
    assert rooms == 3
    await _add_rooms(reactor, tmp_path, database_config, 12)
    many, rooms = await _cold_initial_sync(reactor, tmp_path, database_config)
    assert rooms == 15
    # Each kind of read once, whatever the rooms (presence may or may not need writing: not per room).
    repeated = {desc: n for desc, n in many.items() if n > 1}
    assert not repeated, f"run more than once for 15 rooms (a query per room?): {repeated}"
    assert sum(many.values()) <= sum(few.values()), (few, many)
