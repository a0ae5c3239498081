"""Transactions on a private thread pool, with retries and per-transaction metrics.

Stores never touch connections: they write a synchronous ``_txn(txn, ...)``
function and hand it to `Database.run_interaction`, which runs it in one of
our own pool threads (not the reactor's shared pool, so database work can't
starve DNS look-ups and the like), inside one transaction, committed on
success and rolled back on any exception. Serialisation failures, deadlocks
and SQLite lock time-outs re-run the whole function after a short random
back-off, so transaction functions must not have side effects outside the
database — those go in `Transaction.call_after`, run on the reactor thread
once the commit is durable.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from twisted.internet import defer, task, threads
from twisted.python.threadpool import ThreadPool

from storage.engines import BaseEngine
from storage.errors import DatabaseClosedError

logger = logging.getLogger(__name__)

R = TypeVar("R")

MAX_RETRIES = 5
_BACKOFF_BASE_S = 0.01

_Hook = tuple[Callable[..., None], tuple[Any, ...]]


class Transaction:
    """A cursor in an open transaction, speaking ``?`` placeholders on both engines."""

    __slots__ = ("engine", "desc", "_cursor", "_opening", "_after_commit", "_after_rollback")

    def __init__(self, engine: BaseEngine, cursor: Any, desc: str, opening: str | None = None) -> None:
        self.engine = engine
        self.desc = desc
        self._cursor = cursor
        # The statement opening the transaction, until it goes out with the first statement.
        self._opening = opening
        self._after_commit: list[_Hook] = []
        self._after_rollback: list[_Hook] = []

    @property
    def opened(self) -> bool:
        """Whether the transaction is open on the server (so there is something to commit)."""
        return self._opening is None

    def replace_opening(self, opening: str) -> bool:
        """Open the transaction with `opening` instead; False if it is open already."""
        if self._opening is None:
            return False
        self._opening = opening
        return True

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        sql = self.engine.convert_sql(sql)
        if self._opening is not None:
            sql = f"{self._opening};\n{sql}"
            self._opening = None
        self._cursor.execute(sql, tuple(args))

    def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        if self._opening is not None:
            self._cursor.execute(self._opening)
            self._opening = None
        self.engine.execute_many(self._cursor, self.engine.convert_sql(sql), rows)

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall()

    def set_read_committed(self) -> None:
        """Run this transaction at READ COMMITTED; call it before any other statement.

        For a transaction that is one atomic ``UPDATE ... WHERE`` on a hot row
        (a counter): PostgreSQL then waits for a concurrent writer and re-checks
        the WHERE clause on the newest row version, instead of failing with a
        serialisation error, so N concurrent callers don't exhaust the retries.
        SQLite runs writers one at a time anyway.
        """
        self.engine.set_read_committed(self)

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def returns_rows(self) -> bool:
        """Whether the last statement produced a result set (SELECT, RETURNING)."""
        return self._cursor.description is not None

    def call_after(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` on the reactor thread once this transaction has committed.

        Not run if the transaction rolls back (including an attempt that is retried).
        """
        self._after_commit.append((fn, args))

    def call_on_rollback(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` on the reactor thread if this attempt rolls back."""
        self._after_rollback.append((fn, args))


@dataclass
class _Outcome:
    result: Any = None
    error: BaseException | None = None
    hooks: list[_Hook] = field(default_factory=list)


class _Metrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.seconds = Histogram(
            "piman_db_transaction_seconds",
            "Time spent running each database transaction attempt, by description",
            ["db", "desc"],
            registry=registry,
        )
        self.retries = Counter(
            "piman_db_transaction_retries",
            "Transactions re-run after a serialisation failure, deadlock or lock time-out",
            ["db", "desc"],
            registry=registry,
        )
        self.errors = Counter(
            "piman_db_transaction_errors",
            "Transactions that failed (after any retries)",
            ["db", "desc"],
            registry=registry,
        )


# A registry can hold each metric name once; every Database sharing it shares these.
_metrics_by_registry: "weakref.WeakKeyDictionary[CollectorRegistry, _Metrics]" = (
    weakref.WeakKeyDictionary()
)
_metrics_lock = threading.Lock()


def _metrics_for(registry: CollectorRegistry | None) -> _Metrics:
    if registry is None:
        return _Metrics(None)
    with _metrics_lock:
        metrics = _metrics_by_registry.get(registry)
        if metrics is None:
            metrics = _metrics_by_registry[registry] = _Metrics(registry)
        return metrics


class Database:
    """A pool of connections to one database, each owned by one pool thread."""

    def __init__(
        self,
        engine: BaseEngine,
        reactor: Any,
        *,
        metrics_registry: CollectorRegistry | None = None,
        name: str = "main",
    ) -> None:
        self.engine = engine
        self.reactor = reactor
        self.name = name
        self._metrics = _metrics_for(metrics_registry)
        min_threads, max_threads = engine.pool_size
        self._pool = ThreadPool(min_threads, max_threads, name=f"piman-db-{name}")
        self._local = threading.local()
        self._connections: list[Any] = []
        self._connections_lock = threading.Lock()
        self._running = 0
        self._idle: list[defer.Deferred[None]] = []
        self._closed = False
        self._pool.start()
        # If nobody calls close() the non-daemon pool threads would keep the process alive.
        self._shutdown_trigger = reactor.addSystemEventTrigger(
            "during", "shutdown", self._shut_down
        )

    async def run_interaction(
        self, desc: str, func: Callable[..., R], *args: Any, **kwargs: Any
    ) -> R:
        """Run ``func(txn, *args, **kwargs)`` in a pool thread, in one transaction."""
        if self._closed:
            raise DatabaseClosedError(f"database {self.name!r} is closed (transaction {desc!r})")
        self._running += 1
        try:
            for attempt in range(MAX_RETRIES + 1):
                outcome: _Outcome = await threads.deferToThreadPool(
                    self.reactor, self._pool, self._attempt, desc, func, args, kwargs
                )
                self._run_hooks(desc, outcome.hooks)
                if outcome.error is None:
                    return outcome.result
                if attempt < MAX_RETRIES and self.engine.is_retryable(outcome.error):
                    self._metrics.retries.labels(self.name, desc).inc()
                    delay = _BACKOFF_BASE_S * (2**attempt) * random.uniform(0.5, 1.5)
                    logger.info(
                        "transaction %s: retrying in %.0f ms after %s",
                        desc,
                        delay * 1000,
                        type(outcome.error).__name__,
                    )
                    await task.deferLater(self.reactor, delay, lambda: None)
                    continue
                self._metrics.errors.labels(self.name, desc).inc()
                raise outcome.error
            raise AssertionError("unreachable")  # the loop always returns or raises
        finally:
            self._running -= 1
            if self._running == 0:
                idle, self._idle = self._idle, []
                for d in idle:
                    d.callback(None)

    async def execute(self, desc: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run one statement in its own transaction and return its rows (if any)."""

        def _execute_txn(txn: Transaction) -> list[tuple[Any, ...]]:
            txn.execute(sql, args)
            return txn.fetchall() if txn.returns_rows else []

        return await self.run_interaction(desc, _execute_txn)

    async def close(self) -> None:
        """Refuse new transactions, let running ones finish, then stop the pool."""
        if self._closed:
            return
        self._closed = True
        if self._running:
            d: defer.Deferred[None] = defer.Deferred()
            self._idle.append(d)
            await d
        self.reactor.removeSystemEventTrigger(self._shutdown_trigger)
        self._shut_down()

    def _shut_down(self) -> None:
        self._closed = True
        self._pool.stop()
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            _close_quietly(conn)

    def _run_hooks(self, desc: str, hooks: list[_Hook]) -> None:
        for fn, args in hooks:
            try:
                fn(*args)
            except Exception:
                logger.exception("transaction %s: callback %r failed", desc, fn)

    # -- in pool threads -------------------------------------------------

    def _attempt(
        self, desc: str, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> _Outcome:
        started = time.perf_counter()
        txn: Transaction | None = None
        conn = None
        try:
            conn = self._connection()
            txn = Transaction(self.engine, conn.cursor(), desc, self.engine.begin(conn))
            result = func(txn, *args, **kwargs)
            if txn.opened:
                self.engine.commit(conn)
            return _Outcome(result=result, hooks=txn._after_commit)
        except Exception as e:
            if conn is not None and (txn is None or txn.opened):
                self._roll_back(conn, desc)
            return _Outcome(error=e, hooks=txn._after_rollback if txn is not None else [])
        finally:
            if txn is not None:
                _close_quietly(txn._cursor)
            self._metrics.seconds.labels(self.name, desc).observe(time.perf_counter() - started)

    def _roll_back(self, conn: Any, desc: str) -> None:
        try:
            self.engine.rollback(conn)
        except Exception:
            logger.warning("transaction %s: rollback failed; dropping the connection", desc)
            self._drop_connection()
            return
        if self.engine.is_connection_broken(conn):
            self._drop_connection()

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.engine.connect()
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def _drop_connection(self) -> None:
        conn = self._local.conn
        self._local.conn = None
        with self._connections_lock:
            if conn in self._connections:
                self._connections.remove(conn)
        _close_quietly(conn)


def _close_quietly(closeable: Any) -> None:
    try:
        closeable.close()
    except Exception:
        pass
