"""One process at a time may write to a database with in-memory caches: the exclusive lock.

A running server keeps current state, recent events and memberships in memory, kept exact because it
is the only writer. An admin command that writes events (erasing an account leaves rooms) must not
run beside it, and two servers on one database would corrupt each other's view. Both take this lock:
on PostgreSQL a session-level advisory lock (scoped to the database, released if the process dies),
on SQLite an exclusive `flock` on a file next to the database.
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

from storage.engines import BaseEngine, PostgresEngine, Sqlite3Engine
from storage.errors import DatabaseInUseError

# "piman-x" in ASCII: distinct from the schema-migration advisory lock.
_ADVISORY_KEY = 112105109097110120


class ExclusiveLock:
    """Held until `release`; `acquire` raises `DatabaseInUseError` if another process has it."""

    def __init__(self, engine: BaseEngine) -> None:
        self._engine = engine
        self._handle: Any = None

    def acquire(self) -> None:
        if isinstance(self._engine, Sqlite3Engine):
            self._handle = self._lock_file(self._engine.path)
        elif isinstance(self._engine, PostgresEngine):
            self._handle = self._advisory_lock(self._engine)
        else:  # pragma: no cover - only two engines exist
            raise TypeError(f"no exclusive lock for {type(self._engine).__name__}")

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()  # closing the file or the session releases the lock

    @staticmethod
    def _lock_file(db_path: str) -> Any:
        path = f"{db_path}.lock"
        handle = open(path, "a")  # noqa: SIM115 - held open for the process's lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise DatabaseInUseError(
                f"another piman process is using the SQLite database {db_path} (lock file {path})"
            ) from None
        os.chmod(path, 0o600)
        return handle

    @staticmethod
    def _advisory_lock(engine: PostgresEngine) -> Any:
        conn = engine.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (_ADVISORY_KEY,))
                (locked,) = cur.fetchone()
        except BaseException:
            conn.close()
            raise
        if not locked:
            conn.close()
            raise DatabaseInUseError("another piman process is using this PostgreSQL database")
        return conn
