"""What differs between SQLite and PostgreSQL, behind one small interface.

Everything above this module writes portable SQL with ``?`` placeholders and
calls `Database.run_interaction`; the engine supplies connections set up the
way we need them, the placeholder style, transaction start, and which errors
are worth retrying. psycopg2 is imported only when a PostgreSQL database is
configured, so the embedded SQLite default does not need it.
"""

from __future__ import annotations

import abc
import functools
import sqlite3
from typing import Any, Iterable, Sequence

from storage.errors import DatabaseConfigError, IncompatibleDatabaseError

# SQLite 3.35 brought RETURNING, which the stores use on both engines.
MIN_SQLITE_VERSION = (3, 35, 0)
MIN_POSTGRES_VERSION = 130000
_SAFE_POSTGRES_LOCALES = ("C", "POSIX")
_POOL_KEYS = ("cp_min", "cp_max")


class BaseEngine(abc.ABC):
    """One database engine; stateless apart from its connection arguments."""

    name: str
    # True when sequences exist (PostgreSQL); SQLite emulates them with a table.
    supports_sequences: bool

    @property
    @abc.abstractmethod
    def pool_size(self) -> tuple[int, int]:
        """(min, max) threads, each holding one connection."""

    @abc.abstractmethod
    def connect(self) -> Any:
        """A new DB-API connection, configured and checked for compatibility."""

    @abc.abstractmethod
    def begin(self, conn: Any) -> str | None:
        """Open a transaction on `conn`, or return the statement that opens it, which the
        `Transaction` sends together with its first statement (a round trip less)."""

    def commit(self, conn: Any) -> None:
        conn.commit()

    def rollback(self, conn: Any) -> None:
        conn.rollback()

    def convert_sql(self, sql: str) -> str:
        """Rewrite portable SQL (``?`` placeholders) into this driver's dialect."""
        return sql

    def execute_many(self, cursor: Any, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        cursor.executemany(sql, [tuple(r) for r in rows])

    @abc.abstractmethod
    def is_retryable(self, exc: BaseException) -> bool:
        """True if running the whole transaction again may well succeed."""

    def is_connection_broken(self, conn: Any) -> bool:
        return False

    @abc.abstractmethod
    def lock_schema(self, txn: Any) -> None:
        """Serialise schema changes across processes; must be a transaction's first statement.

        Statements after it see everything the previous holder committed.
        """

    def set_read_committed(self, txn: Any) -> None:  # noqa: B027 (a no-op unless overridden)
        """Lower this transaction's isolation to READ COMMITTED, where that means anything."""


class Sqlite3Engine(BaseEngine):
    """The embedded default.

    SQLite allows one writer at a time per file. We give it exactly one pool
    thread and one connection, so our own transactions queue in the pool
    instead of fighting over the file lock; ``BEGIN IMMEDIATE`` takes the write
    lock up front so another process (say ``piman register``) makes us wait
    for ``busy_timeout`` rather than fail half-way, and a lock that outlasts the
    timeout is retried like a serialisation failure.
    """

    name = "sqlite3"
    supports_sequences = False

    def __init__(self, args: dict[str, Any]) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
            raise IncompatibleDatabaseError(
                f"SQLite {sqlite3.sqlite_version} is too old: piman needs "
                f"{'.'.join(map(str, MIN_SQLITE_VERSION))} or newer (or use PostgreSQL)"
            )
        args = {k: v for k, v in args.items() if k not in _POOL_KEYS}
        try:
            self.path = str(args.pop("database"))
        except KeyError:
            raise DatabaseConfigError(
                "database.args.database: the SQLite file path is required"
            ) from None
        # Seconds to wait for another process's write lock before giving up.
        self._timeout = float(args.pop("timeout", 5.0))
        for forbidden in ("isolation_level", "check_same_thread"):
            if forbidden in args:
                raise DatabaseConfigError(
                    f"database.args.{forbidden} is managed by piman; remove it"
                )
        self._extra = args

    @property
    def pool_size(self) -> tuple[int, int]:
        return (1, 1)

    def connect(self) -> Any:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # used by one pool thread, closed by the reactor thread
                **self._extra,
            )
        except sqlite3.Error as e:
            raise DatabaseConfigError(f"cannot open SQLite database {self.path}: {e}") from e
        # WAL lets readers in other processes proceed during a write; NORMAL
        # sync is crash-safe in WAL mode (a power cut may lose the last commits).
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def begin(self, conn: Any) -> str | None:
        conn.execute("BEGIN IMMEDIATE")  # in-process: no round trip to save
        return None

    def commit(self, conn: Any) -> None:
        conn.execute("COMMIT")

    def rollback(self, conn: Any) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    def is_retryable(self, exc: BaseException) -> bool:
        if not isinstance(exc, sqlite3.OperationalError):
            return False
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        return "database is locked" in str(exc)

    def lock_schema(self, txn: Any) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already excludes other writers."""


@functools.lru_cache(maxsize=4096)
def _to_pyformat(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresEngine(BaseEngine):
    """PostgreSQL through psycopg2, for production.

    Transactions run at REPEATABLE READ: each sees one consistent snapshot
    (a handler reading a stream position and then rows never sees a half-made
    change), and two transactions updating the same row make one of them fail
    with a serialisation error that `Database` retries, instead of one
    silently overwriting the other as READ COMMITTED would allow. A
    transaction that is one atomic UPDATE of a hot row (a counter) may opt
    into READ COMMITTED with `Transaction.set_read_committed`.
    """

    name = "psycopg2"
    supports_sequences = True

    def __init__(self, args: dict[str, Any], *, allow_unsafe_locale: bool) -> None:
        try:
            import psycopg2
            import psycopg2.extensions
            import psycopg2.extras
        except ImportError as e:
            raise DatabaseConfigError(
                "database.name is psycopg2 but the psycopg2 module is not installed: "
                "install piman-homeserver[postgres] (pip install 'piman-homeserver[postgres]')"
            ) from e
        self._psycopg2 = psycopg2
        self._allow_unsafe_locale = allow_unsafe_locale
        args = dict(args)
        try:
            cp_min = int(args.pop("cp_min", 1))
            cp_max = int(args.pop("cp_max", 10))
        except (TypeError, ValueError):
            raise DatabaseConfigError("database.args.cp_min and cp_max must be integers") from None
        if not 1 <= cp_min <= cp_max:
            raise DatabaseConfigError(
                f"database.args: need 1 <= cp_min <= cp_max, got cp_min={cp_min}, cp_max={cp_max}"
            )
        self._pool_size = (cp_min, cp_max)
        self._connect_args = args
        # bytea arrives as memoryview by default; the rest of the code wants bytes.
        self._bytea = psycopg2.extensions.new_type(
            psycopg2.BINARY.values,
            "PIMAN_BYTEA",
            lambda value, cur: None if value is None else bytes(psycopg2.BINARY(value, cur)),
        )

    @property
    def pool_size(self) -> tuple[int, int]:
        return self._pool_size

    def connect(self) -> Any:
        psycopg2 = self._psycopg2
        try:
            conn = psycopg2.connect(**self._connect_args)
        except psycopg2.OperationalError as e:
            raise DatabaseConfigError(f"cannot connect to PostgreSQL: {str(e).strip()}") from e
        try:
            psycopg2.extensions.register_type(self._bytea, conn)
            conn.set_client_encoding("UTF8")
            # We send BEGIN ourselves, with the transaction's first statement: psycopg2's own
            # implicit BEGIN would cost a round trip of its own in every transaction.
            conn.set_session(autocommit=True)
            self._check_database(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_database(self, conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT current_database(), pg_encoding_to_char(encoding), datcollate, datctype"
                " FROM pg_database WHERE datname = current_database()"
            )
            dbname, encoding, collate, ctype = cur.fetchone()
        if conn.server_version < MIN_POSTGRES_VERSION:
            raise IncompatibleDatabaseError(
                f"PostgreSQL {conn.server_version // 10000} is too old: piman needs 13 or newer"
            )
        if encoding != "UTF8":
            raise IncompatibleDatabaseError(
                f"PostgreSQL database {dbname!r} has encoding {encoding}; piman needs UTF8. "
                f"Recreate it with: CREATE DATABASE ... ENCODING 'UTF8' LC_COLLATE 'C' "
                f"LC_CTYPE 'C' TEMPLATE template0"
            )
        if not self._allow_unsafe_locale and (
            collate not in _SAFE_POSTGRES_LOCALES or ctype not in _SAFE_POSTGRES_LOCALES
        ):
            raise IncompatibleDatabaseError(
                f"PostgreSQL database {dbname!r} has LC_COLLATE={collate!r} and "
                f"LC_CTYPE={ctype!r}; "
                f"piman needs 'C' so that text ordering matches SQLite and indexes stay valid "
                f"across OS locale upgrades. Recreate it with: CREATE DATABASE ... ENCODING 'UTF8' "
                f"LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0 — or set "
                f"`allow_unsafe_locale: true` in the database section to accept the risk."
            )

    def begin(self, conn: Any) -> str | None:
        return "BEGIN ISOLATION LEVEL REPEATABLE READ"

    def commit(self, conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute("COMMIT")

    def rollback(self, conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute("ROLLBACK")

    def convert_sql(self, sql: str) -> str:
        return _to_pyformat(sql)

    def execute_many(self, cursor: Any, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        # One round trip per page of rows rather than per row.
        self._psycopg2.extras.execute_batch(cursor, sql, [tuple(r) for r in rows], page_size=200)

    def is_retryable(self, exc: BaseException) -> bool:
        # Class 40: serialization_failure (40001) and deadlock_detected (40P01).
        return isinstance(exc, self._psycopg2.extensions.TransactionRollbackError)

    def is_connection_broken(self, conn: Any) -> bool:
        return bool(conn.closed)

    def set_read_committed(self, txn: Any) -> None:
        if not txn.replace_opening("BEGIN ISOLATION LEVEL READ COMMITTED"):
            txn.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")

    def lock_schema(self, txn: Any) -> None:
        # At REPEATABLE READ the snapshot would be taken by the locking
        # statement itself, before the wait, hiding what the previous holder
        # committed; READ COMMITTED gives each later statement a fresh one.
        self.set_read_committed(txn)
        # An arbitrary constant shared by every piman process ("piman" in ASCII).
        txn.execute("SELECT pg_advisory_xact_lock(112105109097110)")


def create_engine(database_config: dict[str, Any]) -> BaseEngine:
    """The engine for a `database` config section ``{"name": ..., "args": {...}}``."""
    name = database_config.get("name")
    args = dict(database_config.get("args") or {})
    if name == "sqlite3":
        return Sqlite3Engine(args)
    if name == "psycopg2":
        return PostgresEngine(
            args, allow_unsafe_locale=bool(database_config.get("allow_unsafe_locale", False))
        )
    raise DatabaseConfigError(f"database.name: expected 'sqlite3' or 'psycopg2', got {name!r}")
