"""Undelivered messages are deleted after `undelivered_ttl` (30 days at most).

A to-device message that no device picked up must be gone, from the table and from the
recipient's /sync, once it is older than the TTL; a younger one must still be delivered.
Time is not waited for: the sweep is run with `now_ms` past the message's creation time.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families

from homeserver.handlers import undelivered
from tests.integration.harness import V3, Client, TestServer

DAY_MS = 86400 * 1000


async def send(client: Client, txn: str, messages: dict[str, Any]) -> None:
    resp = await client.put(f"{V3}/sendToDevice/m.test/{txn}", {"messages": messages})
    assert (resp.code, resp.json) == (200, {}), resp


async def inbox(server: TestServer) -> list[tuple[Any, ...]]:
    """(device_id, created_ts) of every row of device_inbox, oldest first."""
    return await server.hs.store.db.execute(
        "test_inbox", "SELECT device_id, created_ts FROM device_inbox ORDER BY created_ts, stream_id")


async def txn_ids(server: TestServer) -> list[Any]:
    """The remembered transaction IDs of /sendToDevice (as stored)."""
    return [row[0] for row in await server.hs.store.db.execute("test_txns", "SELECT txn_id FROM to_device_txns")]


async def to_device_in_sync(client: Client) -> list[dict[str, Any]]:
    resp = await client.get(f"{V3}/sync?timeout=0")
    assert resp.code == 200, resp
    return resp.json.get("to_device", {}).get("events", [])


async def deleted_metric(server: TestServer) -> float:
    text = (await server.client().get("/_synapse/metrics")).raw.decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "piman_undelivered_messages_deleted_total" and sample.labels == {"kind": "to_device"}:
                return sample.value
    raise AssertionError("piman_undelivered_messages_deleted_total{kind=\"to_device\"} is not exported")


def after(server: TestServer, created_ms: int) -> None:
    """Let the server's clock pass `created_ms`, so the next message is strictly younger.

    A millisecond at most: the messages need distinct creation times, not real waiting.
    """
    while server.hs.clock.time_msec() <= created_ms:
        pass


@pytest_twisted.ensureDeferred
async def test_message_older_than_ttl_is_swept_and_younger_one_stays(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    assert server.hs.config.undelivered_ttl == 30 * DAY_MS  # the default: the policy's 30 days

    await send(alice, "old", {bob.user_id: {bob.device_id: {"n": "old"}}})
    [(_, old_ts)] = await inbox(server)
    after(server, old_ts)
    await send(alice, "young", {bob.user_id: {bob.device_id: {"n": "young"}}})
    [_, (_, young_ts)] = await inbox(server)
    assert young_ts > old_ts
    assert await deleted_metric(server) == 0

    # Exactly 30 days old is not yet past the TTL.
    assert await server.hs.undelivered_sweeper.sweep(now_ms=old_ts + 30 * DAY_MS) == 0
    assert len(await inbox(server)) == 2

    assert await server.hs.undelivered_sweeper.sweep(now_ms=old_ts + 30 * DAY_MS + 1) == 1
    assert await inbox(server) == [(bob.device_id, young_ts)]
    assert len(await txn_ids(server)) == 1  # the old message's transaction ID went with it
    assert await deleted_metric(server) == 1
    events = await to_device_in_sync(bob)
    assert [event["content"] for event in events] == [{"n": "young"}]

    # Sweeping again deletes nothing more and counts nothing more.
    assert await server.hs.undelivered_sweeper.sweep(now_ms=old_ts + 30 * DAY_MS + 1) == 0
    assert await deleted_metric(server) == 1


@pytest_twisted.ensureDeferred
@pytest.mark.hs_config({"undelivered_ttl": "1h"})
async def test_shorter_ttl_from_config_is_used(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    await send(alice, "t1", {bob.user_id: {"*": {"n": 1}}})
    [(_, created)] = await inbox(server)
    assert await server.hs.undelivered_sweeper.sweep(now_ms=created + 3600 * 1000) == 0
    assert await server.hs.undelivered_sweeper.sweep(now_ms=created + 3600 * 1000 + 1) == 1
    assert await inbox(server) == []
    assert await to_device_in_sync(bob) == []


@pytest_twisted.ensureDeferred
async def test_sweep_works_in_batches(server: TestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many expired messages are deleted a few rows per transaction, and all of them in the end."""
    alice = await server.register("alice")
    bob = await server.register("bob")
    for index in range(7):
        await send(alice, f"t{index}", {bob.user_id: {bob.device_id: {"n": index}}})
    newest = max(created for _, created in await inbox(server))
    before = newest + 1

    # The store deletes at most `batch` rows per call, oldest first.
    first = await server.hs.store.to_device.delete_undelivered_before(before, 3)
    assert (first.messages, first.txn_ids) == (3, 3)
    assert len(await inbox(server)) == 4 and len(await txn_ids(server)) == 4

    calls: list[int] = []
    real = server.hs.store.to_device.delete_undelivered_before

    async def counting(before_ts: int, batch: int) -> Any:
        calls.append(batch)
        return await real(before_ts, batch)

    monkeypatch.setattr(undelivered, "BATCH_SIZE", 2)
    monkeypatch.setattr(server.hs.store.to_device, "delete_undelivered_before", counting)
    assert await server.hs.undelivered_sweeper.sweep(now_ms=before + server.hs.config.undelivered_ttl) == 4
    assert calls == [2, 2, 2]  # 2 + 2 + 0: the last batch, short, ends the sweep
    assert await inbox(server) == [] and await txn_ids(server) == []
    assert await deleted_metric(server) == 4


@pytest_twisted.ensureDeferred
@pytest.mark.hs_config({"undelivered_ttl": "1ms"})
async def test_background_jobs_include_the_sweep(server: TestServer) -> None:
    """Running the server's hourly jobs once (as their timers would) sweeps expired messages."""
    alice = await server.register("alice")
    bob = await server.register("bob")
    await send(alice, "t1", {bob.user_id: {bob.device_id: {"n": 1}}})
    [(_, created)] = await inbox(server)
    after(server, created + 1)
    jobs = [call for call in server.hs._background if call.running and call.interval == undelivered.SWEEP_INTERVAL_S]
    assert jobs
    for call in jobs:
        await call.f()
    assert await inbox(server) == []
    assert await deleted_metric(server) == 1


@pytest_twisted.ensureDeferred
async def test_failed_periodic_sweep_is_logged_not_raised(server: TestServer, monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """An exception escaping the job would stop its looping call for good."""

    async def broken(before_ts: int, batch: int) -> Any:
        raise RuntimeError("database went away")

    monkeypatch.setattr(server.hs.store.to_device, "delete_undelivered_before", broken)
    await server.hs.undelivered_sweeper.run()
    assert "Sweeping undelivered messages failed" in caplog.text
