"""Database: transactions, retries, metrics and shutdown, on both engines."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import uuid
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, threads

from storage.database import Database, Transaction
from storage.engines import create_engine
from storage.errors import DatabaseClosedError, DatabaseConfigError, IncompatibleDatabaseError
from storage.migrations import convert_statement
from tests.conftest import ENGINES


async def _make_table(db: Database) -> None:
    await db.execute("create_table", "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")


async def _rows(db: Database) -> list[tuple[Any, ...]]:
    return await db.execute("read_t", "SELECT k, v FROM t ORDER BY k")


def _sample(registry: Any, name: str, desc: str) -> float:
    return registry.get_sample_value(name, {"db": "main", "desc": desc}) or 0.0


@pytest_twisted.ensureDeferred
async def test_commit_and_rollback(db: Database, registry: Any) -> None:
    await _make_table(db)

    def insert(txn: Transaction, k: int, fail: bool) -> int:
        txn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (k, f"row {k}"))
        if fail:
            raise ValueError("boom")
        return k

    assert await db.run_interaction("insert", insert, 1, fail=False) == 1
    with pytest.raises(ValueError, match="boom"):
        await db.run_interaction("insert_fail", insert, 2, fail=True)
    assert await _rows(db) == [(1, "row 1")]
    assert _sample(registry, "piman_db_transaction_errors_total", "insert_fail") == 1
    assert _sample(registry, "piman_db_transaction_retries_total", "insert_fail") == 0
    assert _sample(registry, "piman_db_transaction_seconds_count", "insert") == 1


@pytest_twisted.ensureDeferred
async def test_placeholders_and_percent_signs(db: Database) -> None:
    """'?' works on both engines and a literal '%' survives psycopg2's pyformat."""
    assert await db.execute("q", "SELECT 'a%b', ?", 5) == [("a%b", 5)]
    assert await db.execute("q", "SELECT '100%'") == [("100%",)]
    postgres = create_engine({"name": "psycopg2", "args": {}})  # does not connect
    assert postgres.convert_sql("x LIKE '%a' AND y = ?") == "x LIKE '%%a' AND y = %s"


@pytest_twisted.ensureDeferred
async def test_execute_many_and_bytes(db: Database) -> None:
    await db.execute(
        "create",
        convert_statement("CREATE TABLE b (k INTEGER PRIMARY KEY, data BLOB)", db.engine.name),
    )

    def insert_many(txn: Transaction) -> None:
        rows = ((i, bytes([i, 0, 255])) for i in range(50))
        txn.execute_many("INSERT INTO b (k, data) VALUES (?, ?)", rows)

    await db.run_interaction("insert_many", insert_many)
    rows = await db.execute("read", "SELECT k, data FROM b ORDER BY k")
    assert len(rows) == 50
    assert rows[7] == (7, b"\x07\x00\xff")
    assert type(rows[7][1]) is bytes  # not memoryview on PostgreSQL


@pytest_twisted.ensureDeferred
async def test_hooks_run_on_reactor_thread_after_commit_only(db: Database) -> None:
    await _make_table(db)
    reactor_thread = threading.get_ident()
    events: list[tuple[str, int]] = []

    def txn_func(txn: Transaction, fail: bool) -> None:
        txn.execute("INSERT INTO t (k, v) VALUES (1, 'x')")
        txn.call_after(lambda: events.append(("committed", threading.get_ident())))
        txn.call_on_rollback(lambda: events.append(("rolled back", threading.get_ident())))
        assert threading.get_ident() != reactor_thread
        if fail:
            raise KeyError("no")

    with pytest.raises(KeyError):
        await db.run_interaction("hooks", txn_func, True)
    assert events == [("rolled back", reactor_thread)]
    events.clear()
    await db.run_interaction("hooks", txn_func, False)
    assert events == [("committed", reactor_thread)]


@pytest_twisted.ensureDeferred
async def test_non_retryable_error_is_not_retried(db: Database, registry: Any) -> None:
    await _make_table(db)
    await db.execute("insert", "INSERT INTO t (k, v) VALUES (1, 'a')")
    attempts = []

    def duplicate(txn: Transaction) -> None:
        attempts.append(1)
        txn.execute("INSERT INTO t (k, v) VALUES (1, 'b')")

    with pytest.raises(Exception) as info:
        await db.run_interaction("duplicate", duplicate)
    assert type(info.value).__name__ in ("IntegrityError", "UniqueViolation")
    assert len(attempts) == 1
    assert _sample(registry, "piman_db_transaction_retries_total", "duplicate") == 0


async def _provoke_serialization_failure(db: Database) -> list[int]:
    """Two real concurrent PostgreSQL transactions updating one row at REPEATABLE READ."""
    a_has_snapshot, b_committed = threading.Event(), threading.Event()
    attempts: list[int] = []

    def txn_a(txn: Transaction) -> None:
        attempts.append(1)
        txn.execute("SELECT v FROM t WHERE k = 1")  # takes the snapshot
        if len(attempts) == 1:
            a_has_snapshot.set()
            assert b_committed.wait(10)
        txn.execute("UPDATE t SET v = v || 'a' WHERE k = 1")

    def txn_b(txn: Transaction) -> None:
        txn.execute("UPDATE t SET v = v || 'b' WHERE k = 1")
        txn.call_after(b_committed.set)

    a_done = defer.ensureDeferred(db.run_interaction("txn_a", txn_a))
    assert await threads.deferToThread(a_has_snapshot.wait, 10)
    await db.run_interaction("txn_b", txn_b)
    await a_done
    return attempts


@pytest_twisted.ensureDeferred
async def test_retry_on_real_conflict(
    db: Database, database_config: dict[str, Any], reactor: Any, registry: Any
) -> None:
    """A serialisation failure (PostgreSQL) or a lock time-out (SQLite) is retried."""
    await _make_table(db)
    await db.execute("insert", "INSERT INTO t (k, v) VALUES (1, '')")
    if db.engine.name == "psycopg2":
        attempts = await _provoke_serialization_failure(db)
        assert len(attempts) == 2
        assert await _rows(db) == [(1, "ba")]
        assert _sample(registry, "piman_db_transaction_retries_total", "txn_a") == 1
        return

    # SQLite: another process-like connection holds the write lock for a while.
    config = {"name": "sqlite3", "args": {**database_config["args"], "timeout": 0.05}}
    impatient = Database(
        create_engine(config), reactor, metrics_registry=registry, name="impatient"
    )
    blocker = sqlite3.connect(database_config["args"]["database"], isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        reactor.callLater(0.3, blocker.execute, "ROLLBACK")
        await impatient.execute("write", "UPDATE t SET v = 'written' WHERE k = 1")
    finally:
        blocker.close()
        await impatient.close()
    assert await _rows(db) == [(1, "written")]
    retries = registry.get_sample_value(
        "piman_db_transaction_retries_total", {"db": "impatient", "desc": "write"}
    )
    assert retries and retries >= 1


@pytest_twisted.ensureDeferred
async def test_close_waits_for_running_transactions(db: Database) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(txn: Transaction) -> str:
        started.set()
        assert release.wait(10)
        txn.execute("SELECT 1")
        return "finished"

    running = defer.ensureDeferred(db.run_interaction("slow", slow))
    assert await threads.deferToThread(started.wait, 10)
    closing = defer.ensureDeferred(db.close())
    assert not closing.called
    with pytest.raises(DatabaseClosedError):
        await db.run_interaction("late", slow)
    release.set()
    assert await running == "finished"
    await closing


def test_engine_config_errors(tmp_path: Any) -> None:
    with pytest.raises(DatabaseConfigError, match="expected 'sqlite3' or 'psycopg2'"):
        create_engine({"name": "mysql", "args": {}})
    with pytest.raises(DatabaseConfigError, match="args.database"):
        create_engine({"name": "sqlite3", "args": {}})
    with pytest.raises(DatabaseConfigError, match="cp_min"):
        create_engine({"name": "psycopg2", "args": {"cp_min": 5, "cp_max": 2}})


def test_sqlite_needs_no_psycopg2(tmp_path: Any) -> None:
    """SQLite works with psycopg2 unimportable; asking for PostgreSQL says what to install."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["psycopg2"] = None  # any import of it now fails
        from twisted.internet import defer, task
        from storage.datastore import open_datastore
        from storage.engines import create_engine
        from storage.errors import DatabaseConfigError
        from storage.sealing import generate_data_key_file, load_sealer

        async def main(reactor):
            generate_data_key_file({str(tmp_path / "key")!r})
            store = await open_datastore(
                {{"name": "sqlite3", "args": {{"database": {str(tmp_path / "h.db")!r}}}}},
                reactor, load_sealer({str(tmp_path / "key")!r}))
            assert await store.users.register_user("@a:x", None, 1)
            await store.close()
            try:
                create_engine({{"name": "psycopg2", "args": {{}}}})
            except DatabaseConfigError as e:
                print("ERROR:", e)

        task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "install piman-homeserver[postgres]" in result.stdout


if "postgres" in ENGINES:

    def test_postgres_refuses_unsafe_locale(postgres_server: Any) -> None:
        name = f"piman_locale_{uuid.uuid4().hex}"
        postgres_server.execute_admin(
            f"CREATE DATABASE {name} ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' "
            "TEMPLATE template0"
        )
        try:
            args = {**postgres_server.connect_args, "database": name}
            with pytest.raises(IncompatibleDatabaseError, match="allow_unsafe_locale") as info:
                create_engine({"name": "psycopg2", "args": args}).connect()
            assert "LC_COLLATE='C.UTF-8'" in str(info.value)
            engine = create_engine({"name": "psycopg2", "args": args, "allow_unsafe_locale": True})
            engine.connect().close()
        finally:
            postgres_server.drop_database(name)

    @pytest_twisted.ensureDeferred
    async def test_postgres_reconnects_after_losing_its_connection(
        reactor: Any, postgres_server: Any
    ) -> None:
        name = postgres_server.create_database()
        args = {**postgres_server.connect_args, "database": name, "cp_min": 1, "cp_max": 1}
        db = Database(create_engine({"name": "psycopg2", "args": args}), reactor)
        try:
            assert db.engine.pool_size == (1, 1)
            [(pid,)] = await db.execute("pid", "SELECT pg_backend_pid()")
            postgres_server.execute_admin(f"SELECT pg_terminate_backend({pid})")
            with pytest.raises(Exception, match="terminat|closed"):
                await db.execute("pid", "SELECT pg_backend_pid()")
            [(new_pid,)] = await db.execute("pid", "SELECT pg_backend_pid()")
            assert new_pid != pid
        finally:
            await db.close()
            postgres_server.drop_database(name)

    @pytest_twisted.ensureDeferred
    async def test_postgres_transactions_open_with_their_first_statement(
        reactor: Any, postgres_server: Any
    ) -> None:
        """BEGIN travels with the first statement; the isolation level is still the one asked for,
        every statement of a transaction shares one snapshot, and a failure rolls everything back."""
        name = postgres_server.create_database()
        args = {**postgres_server.connect_args, "database": name, "cp_min": 1, "cp_max": 1}
        db = Database(create_engine({"name": "psycopg2", "args": args}), reactor)
        try:
            await _make_table(db)

            def isolation(txn: Transaction, read_committed: bool) -> str:
                if read_committed:
                    txn.set_read_committed()
                txn.execute("SHOW transaction_isolation")
                return txn.fetchone()[0]  # type: ignore[index]

            assert await db.run_interaction("iso", isolation, False) == "repeatable read"
            assert await db.run_interaction("iso", isolation, True) == "read committed"

            def two_statements(txn: Transaction) -> tuple[Any, Any]:
                txn.execute("SELECT txid_current()")
                first = txn.fetchone()
                txn.execute_many("INSERT INTO t (k, v) VALUES (?, ?)", [(1, "a")])
                txn.execute("SELECT txid_current()")
                return first, txn.fetchone()

            first, second = await db.run_interaction("two", two_statements)
            assert first == second  # one transaction, not autocommitted statements

            def fails_after_writing(txn: Transaction) -> None:
                txn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (2, "b"))
                raise ValueError("boom")

            with pytest.raises(ValueError):
                await db.run_interaction("fail", fails_after_writing)
            assert await _rows(db) == [(1, "a")]
            assert await db.run_interaction("nothing", lambda txn: 42) == 42  # no statement, nothing to commit
            [(state,)] = await db.execute("state", "SELECT state FROM pg_stat_activity WHERE pid = pg_backend_pid()")
            assert state == "active"
        finally:
            await db.close()
            postgres_server.drop_database(name)
