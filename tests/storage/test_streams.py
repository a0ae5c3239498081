"""Stream ids from the database: unique, increasing, and never reported ahead of a commit."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, threads

from storage.database import Database, Transaction
from storage.engines import create_engine
from storage.migrations import prepare_database
from storage.streams import StreamIdGenerator


async def _generator(db: Database, name: str = "events") -> StreamIdGenerator:
    await prepare_database(db)
    gen = StreamIdGenerator(db, name)
    await gen.setup()
    return gen


@pytest_twisted.ensureDeferred
async def test_concurrent_allocations_are_unique_and_increasing(db: Database) -> None:
    gen = await _generator(db)
    assert gen.get_current_token() == 0

    def allocate(txn: Transaction, count: int) -> list[int]:
        return [gen.get_next_txn(txn) for _ in range(count)]

    batches = await defer.gatherResults(
        [defer.ensureDeferred(db.run_interaction("alloc", allocate, 1 + i % 3)) for i in range(30)]
    )
    for batch in batches:
        assert batch == sorted(batch)
    ids = [i for batch in batches for i in batch]
    assert len(set(ids)) == len(ids) == sum(1 + i % 3 for i in range(30))
    assert gen.get_current_token() == max(ids)


@pytest_twisted.ensureDeferred
async def test_current_token_never_ahead_of_an_uncommitted_id(db: Database) -> None:
    gen = await _generator(db)
    allocated, release = threading.Event(), threading.Event()
    held: list[int] = []

    def slow_writer(txn: Transaction) -> int:
        held.append(gen.get_next_txn(txn))
        allocated.set()
        assert release.wait(10)
        return held[0]

    def quick_writer(txn: Transaction) -> int:
        return gen.get_next_txn(txn)

    before = gen.get_current_token()
    slow = defer.ensureDeferred(db.run_interaction("slow", slow_writer))
    assert await threads.deferToThread(allocated.wait, 10)
    assert gen.get_current_token() == before < held[0]

    if db.engine.pool_size[1] > 1:
        # PostgreSQL: a later id commits first; the token must still wait for the held one.
        quick_id = await db.run_interaction("quick", quick_writer)
        assert quick_id > held[0]
        assert gen.get_current_token() == held[0] - 1 == before
        release.set()
        await slow
        assert gen.get_current_token() == quick_id
    else:
        # SQLite runs one transaction at a time: the next writer queues behind.
        quick = defer.ensureDeferred(db.run_interaction("quick", quick_writer))
        assert gen.get_current_token() == before
        release.set()
        assert await slow == held[0]
        assert await quick > held[0]
        assert gen.get_current_token() == await quick


@pytest_twisted.ensureDeferred
async def test_rolled_back_id_is_abandoned(db: Database) -> None:
    gen = await _generator(db)

    def allocate_then_fail(txn: Transaction) -> None:
        gen.get_next_txn(txn)
        raise RuntimeError("abandon")

    committed = await db.run_interaction("ok", lambda txn: gen.get_next_txn(txn))
    with pytest.raises(RuntimeError):
        await db.run_interaction("fail", allocate_then_fail)
    assert gen.get_current_token() == committed
    later = await db.run_interaction("ok", lambda txn: gen.get_next_txn(txn))
    assert later > committed
    assert gen.get_current_token() == later


@pytest_twisted.ensureDeferred
async def test_positions_survive_reopening(database_config: dict[str, Any], reactor: Any) -> None:
    first = Database(create_engine(database_config), reactor)
    gen = await _generator(first)
    for _ in range(5):
        last = await first.run_interaction("alloc", lambda txn: gen.get_next_txn(txn))
    await first.close()

    second = Database(create_engine(database_config), reactor)
    try:
        reopened = await _generator(second)
        assert reopened.get_current_token() == last
        assert (
            await second.run_interaction("alloc", lambda txn: reopened.get_next_txn(txn))
            == last + 1
        )
        # Streams are independent.
        other = await _generator(second, "to_device")
        assert other.get_current_token() == 0
    finally:
        await second.close()


def test_stream_names_are_checked() -> None:
    with pytest.raises(ValueError):
        StreamIdGenerator(None, "events; DROP TABLE users")  # type: ignore[arg-type]
