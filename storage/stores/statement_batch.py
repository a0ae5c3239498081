"""Several writes sent to the database as one round trip.

On PostgreSQL each statement is a network round trip (~0.1–0.25 ms here), which would
dominate persisting an event; psycopg2 accepts several statements in one `execute`, so
the writes of a transaction are joined and sent together. SQLite runs in-process, where
a statement costs microseconds, so they simply run one after the other. Each statement
is still portable SQL; only the sending differs.
"""

from __future__ import annotations

from typing import Any, Sequence

from storage.database import Transaction

Statement = tuple[str, Sequence[Any]]


class StatementBatch:
    def __init__(self) -> None:
        self._statements: list[Statement] = []

    def add(self, sql: str, args: Sequence[Any] = ()) -> None:
        self._statements.append((sql, tuple(args)))

    def extend(self, statements: Sequence[Statement]) -> None:
        for sql, args in statements:
            self.add(sql, args)

    def add_rows(self, insert: str, rows: Sequence[Sequence[Any]], suffix: str = "") -> None:
        """One multi-row ``INSERT``: `insert` ends before ``VALUES``; nothing if no rows."""
        if not rows:
            return
        row_marks = "(" + ", ".join("?" * len(rows[0])) + ")"
        self.add(
            f"{insert} VALUES {', '.join([row_marks] * len(rows))}{suffix}",
            [value for row in rows for value in row],
        )

    def run(self, txn: Transaction) -> None:
        """Execute everything added, in order; the batch is empty afterwards."""
        statements, self._statements = self._statements, []
        if not statements:
            return
        if txn.engine.name == "psycopg2":
            txn.execute(
                ";\n".join(sql for sql, _ in statements),
                [value for _, args in statements for value in args],
            )
            return
        for sql, args in statements:
            txn.execute(sql, args)
