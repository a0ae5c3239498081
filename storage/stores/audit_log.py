"""The admin audit log: an append-only record of every admin action.

There is deliberately no method to change or remove an entry, and the table itself refuses
UPDATE and DELETE (triggers installed by `ensure_append_only`), so neither a bug nor a stray
SQL session can rewrite what admins did. Details may name people or cases: they are sealed, and
the only update the triggers let through is a key rotation re-sealing them. (The database's owner
can drop triggers: this guards against mistakes, not against whoever administers the database.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage.database import Database, Transaction
from storage.sealing import Sealer

GUARD_MESSAGE = "admin_audit_log is append-only"
_GUARD_FUNCTION = "piman_audit_log_append_only"


@dataclass(frozen=True)
class AuditEntry:
    id: int
    ts: int
    actor: str
    action: str
    target: str | None
    outcome: str
    details: dict[str, Any]


class AuditLogStore:
    def __init__(self, db: Database, sealer: Sealer) -> None:
        self._db = db
        self._sealer = sealer

    async def append(self, *, ts: int, actor: str, action: str, target: str | None, outcome: str,
                     details: dict[str, Any] | None) -> int:
        sealed = self._sealer.seal_json(details) if details else None

        def _append_audit_txn(txn: Transaction) -> int:
            txn.execute(
                "INSERT INTO admin_audit_log (ts, actor, action, target, outcome, details)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (ts, actor, action, target, outcome, sealed),
            )
            return int(txn.fetchone()[0])  # type: ignore[index]

        return await self._db.run_interaction("append_audit", _append_audit_txn)

    async def list_entries(self, *, limit: int, before_id: int | None = None,
                           target: str | None = None) -> list[AuditEntry]:
        """Newest first; `before_id` continues a previous page; `target` keeps one room's, user's... entries."""
        where, args = "id < ?", [before_id if before_id is not None else 2**62]
        if target is not None:
            where += " AND target = ?"
            args.append(target)
        rows = await self._db.execute(
            "list_audit", f"SELECT {_COLUMNS} FROM admin_audit_log WHERE {where} ORDER BY id DESC LIMIT ?",
            *args, limit,
        )
        return [self._entry(row) for row in rows]

    async def ensure_append_only(self) -> None:
        """Install the triggers refusing UPDATE and DELETE on the log, if they are missing.

        Runs at every start-up (after migrations); a cheap look-up once they are in place.
        """
        await self._db.run_interaction("audit_log_guard", _ensure_guard_txn)

    def _entry(self, row: tuple) -> AuditEntry:  # type: ignore[type-arg]
        details = self._sealer.open_json(row[6]) if row[6] is not None else {}
        return AuditEntry(int(row[0]), int(row[1]), row[2], row[3], row[4], row[5], details)


_COLUMNS = "id, ts, actor, action, target, outcome, details"


# The one change allowed: a key rotation's re-seal pass (storage/stores/sealing_keys.py) rewriting
# `details` under the new data key while its progress row for this table is unfinished; every
# clear column must stay as it was, and a NULL stays NULL.
_RESEAL_UNDER_WAY = ("EXISTS (SELECT 1 FROM reseal_progress"
                     " WHERE table_name = 'admin_audit_log' AND NOT finished)")


def _ensure_guard_txn(txn: Transaction) -> None:
    txn.engine.lock_schema(txn)  # two processes starting at once must not both create them
    if txn.engine.name == "psycopg2":
        _ensure_postgres_guard_txn(txn)
        return
    txn.execute(
        "CREATE TRIGGER IF NOT EXISTS admin_audit_log_no_update BEFORE UPDATE ON admin_audit_log"
        " WHEN NOT (NEW.id = OLD.id AND NEW.ts = OLD.ts AND NEW.actor = OLD.actor AND NEW.action = OLD.action"
        " AND NEW.target IS OLD.target AND NEW.outcome = OLD.outcome"
        f" AND (NEW.details IS NULL) = (OLD.details IS NULL) AND {_RESEAL_UNDER_WAY})"
        f" BEGIN SELECT RAISE(ABORT, '{GUARD_MESSAGE}'); END"
    )
    txn.execute(
        "CREATE TRIGGER IF NOT EXISTS admin_audit_log_no_delete BEFORE DELETE ON admin_audit_log"
        f" BEGIN SELECT RAISE(ABORT, '{GUARD_MESSAGE}'); END"
    )


def _ensure_postgres_guard_txn(txn: Transaction) -> None:
    txn.execute(
        "SELECT COUNT(*) FROM pg_trigger WHERE tgrelid = 'admin_audit_log'::regclass"
        " AND tgname IN ('admin_audit_log_no_change', 'admin_audit_log_no_truncate')"
    )
    if txn.fetchone()[0] == 2:  # type: ignore[index]
        return
    txn.execute(
        f"CREATE OR REPLACE FUNCTION {_GUARD_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF TG_OP = 'UPDATE'"
        " AND (NEW.id, NEW.ts, NEW.actor, NEW.action, NEW.outcome) = (OLD.id, OLD.ts, OLD.actor, OLD.action, OLD.outcome)"
        " AND NEW.target IS NOT DISTINCT FROM OLD.target AND (NEW.details IS NULL) = (OLD.details IS NULL)"
        f" AND {_RESEAL_UNDER_WAY} THEN RETURN NEW; END IF;"
        f" RAISE EXCEPTION '{GUARD_MESSAGE}: % refused', TG_OP; END $$"
    )
    txn.execute("DROP TRIGGER IF EXISTS admin_audit_log_no_change ON admin_audit_log")
    txn.execute("DROP TRIGGER IF EXISTS admin_audit_log_no_truncate ON admin_audit_log")
    txn.execute(
        "CREATE TRIGGER admin_audit_log_no_change BEFORE UPDATE OR DELETE ON admin_audit_log"
        f" FOR EACH ROW EXECUTE FUNCTION {_GUARD_FUNCTION}()"
    )
    txn.execute(
        "CREATE TRIGGER admin_audit_log_no_truncate BEFORE TRUNCATE ON admin_audit_log"
        f" FOR EACH STATEMENT EXECUTE FUNCTION {_GUARD_FUNCTION}()"
    )
