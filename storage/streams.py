"""Stream positions handed out by the database.

Events, to-device messages, device-list changes... are each numbered on a
stream, and clients page through a stream by position. Positions come from
the database — a sequence on PostgreSQL, a row of ``stream_positions`` bumped
inside the writing transaction on SQLite — so that later several processes
sharing one PostgreSQL can write to the same stream.

Transactions commit out of order, so the generator also tracks which
positions are still in flight: `get_current_token` is the highest position
at or below which nothing is still uncommitted, i.e. what a reader may
safely claim to have seen everything up to.
"""

from __future__ import annotations

import collections
import re
import threading

from storage.database import Database, Transaction

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


class StreamIdGenerator:
    def __init__(self, db: Database, stream_name: str) -> None:
        if not _NAME_RE.match(stream_name):
            raise ValueError(f"invalid stream name {stream_name!r}")
        self._db = db
        self.stream_name = stream_name
        self._sequence = f"stream_seq_{stream_name}"
        # Allocation happens in pool threads, completion on the reactor thread.
        self._lock = threading.Lock()
        # A multiset: on SQLite a rolled-back position is handed out again.
        self._in_flight: collections.Counter[int] = collections.Counter()
        self._max_committed = 0
        self._ready = False

    async def setup(self) -> None:
        """Create the stream's counter if needed and start from its current value."""
        position = await self._db.run_interaction(
            f"stream_setup_{self.stream_name}", self._setup_txn
        )
        with self._lock:
            self._max_committed = position
            self._ready = True

    def _setup_txn(self, txn: Transaction) -> int:
        if txn.engine.supports_sequences:
            txn.engine.lock_schema(txn)  # two processes creating the sequence at once
            txn.execute(f"CREATE SEQUENCE IF NOT EXISTS {self._sequence}")
            txn.execute(f"SELECT last_value, is_called FROM {self._sequence}")
            last_value, is_called = txn.fetchone()  # type: ignore[misc]
            return int(last_value) if is_called else int(last_value) - 1
        txn.execute(
            "INSERT INTO stream_positions (stream_name, last_id) VALUES (?, 0)"
            " ON CONFLICT (stream_name) DO NOTHING",
            (self.stream_name,),
        )
        txn.execute(
            "SELECT last_id FROM stream_positions WHERE stream_name = ?", (self.stream_name,)
        )
        return int(txn.fetchone()[0])  # type: ignore[index]

    def get_next_txn(self, txn: Transaction) -> int:
        """Allocate the next position inside the caller's transaction."""
        if not self._ready:
            raise RuntimeError(f"stream {self.stream_name!r}: setup() was not awaited")
        if txn.engine.supports_sequences:
            txn.execute(f"SELECT nextval('{self._sequence}')")
        else:
            txn.execute(
                "UPDATE stream_positions SET last_id = last_id + 1 WHERE stream_name = ?"
                " RETURNING last_id",
                (self.stream_name,),
            )
        return self.track_allocated(txn, int(txn.fetchone()[0]))  # type: ignore[index]

    def allocation_sql(self, txn: Transaction) -> str | None:
        """An SQL expression that allocates the next position, for a caller to fold into a query
        it makes anyway (one round trip less per write); None where allocating is a statement
        of its own (SQLite, whose calls cost no round trip). Pass the value to `track_allocated`."""
        if not self._ready:
            raise RuntimeError(f"stream {self.stream_name!r}: setup() was not awaited")
        return f"nextval('{self._sequence}')" if txn.engine.supports_sequences else None

    def track_allocated(self, txn: Transaction, position: int) -> int:
        """Hold `get_current_token` below `position` until the caller's transaction ends."""
        with self._lock:
            self._in_flight[position] += 1
        txn.call_after(self._finish, position, True)
        txn.call_on_rollback(self._finish, position, False)
        return position

    def _finish(self, position: int, committed: bool) -> None:
        with self._lock:
            self._in_flight[position] -= 1
            if self._in_flight[position] <= 0:
                del self._in_flight[position]
            if committed and position > self._max_committed:
                self._max_committed = position

    def get_current_token(self) -> int:
        """Highest position such that every allocated one at or below it is finished."""
        with self._lock:
            if self._in_flight:
                return min(self._in_flight) - 1
            return self._max_committed
