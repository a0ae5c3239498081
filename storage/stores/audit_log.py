"""The admin audit log: an append-only, hash-chained record of every admin action.

There is deliberately no method to change or remove an entry, and the table itself refuses
UPDATE and DELETE (triggers installed by `ensure_append_only`), so neither a bug nor a stray
SQL session can rewrite what admins did. Details may name people or cases: they are sealed, and
the only update the triggers let through is a key rotation re-sealing them.

Whoever owns the database can drop triggers, so the entries also form a hash chain (migration
0015): each stores `prev_hash`, the previous entry's hash (GENESIS for the first), and

    entry_hash = SHA-256(prev_hash || canonical JSON of {id, ts, actor, action, target, outcome, details})

where `details` is the OPENED details (null when there are none): a key rotation re-seals the
blob but leaves its plaintext, so the chain survives it. `verify` walks the chain: an edited entry
no longer matches its hash, a deleted one leaves a gap in the ids (appends take consecutive ids
from `admin_audit_chain_head`, which also catches an entry deleted from the end), and a rewritten
one breaks the link to its successor. Rewriting the whole chain from some entry onwards is only
caught by a head hash written down elsewhere (`piman admin audit head`, then verify's anchors).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable

from canonicaljson import encode_canonical_json

from storage.database import Database, Transaction
from storage.sealing import DataKeyError, Sealer

GUARD_MESSAGE = "admin_audit_log is append-only"
GENESIS = bytes(32)  # the prev_hash of the first entry
HASH_SIZE = 32
CHAIN_BATCH = 500  # entries written before the chain existed, chained per transaction at start-up
VERIFY_BATCH = 1000
MAX_PROBLEMS = 50  # lines a verify reports; the rest are counted


@dataclass(frozen=True)
class AuditEntry:
    id: int
    ts: int
    actor: str
    action: str
    target: str | None
    outcome: str
    details: dict[str, Any]
    entry_hash: bytes | None = None


@dataclass(frozen=True)
class ChainHead:
    """The newest entry as appends recorded it; `hash` is None while the log is empty."""
    id: int
    hash: bytes | None
    ts: int | None  # None if the entry is no longer in the table


@dataclass
class ChainReport:
    entries: int  # entries checked
    head: ChainHead
    problems: list[str] = field(default_factory=list)  # one line each, in log order
    more_problems: int = 0  # found beyond MAX_PROBLEMS

    @property
    def valid(self) -> bool:
        return not self.problems


def entry_hash(prev_hash: bytes, *, id: int, ts: int, actor: str, action: str, target: str | None, outcome: str,
               details: Any) -> bytes:
    """The chain hash of one entry; `details` are the opened details, None when the column is NULL."""
    fields = {"id": id, "ts": ts, "actor": actor, "action": action, "target": target, "outcome": outcome,
              "details": details}
    return hashlib.sha256(bytes(prev_hash) + encode_canonical_json(fields)).digest()


class AuditLogStore:
    def __init__(self, db: Database, sealer: Sealer) -> None:
        self._db = db
        self._sealer = sealer

    async def append(self, *, ts: int, actor: str, action: str, target: str | None, outcome: str,
                     details: dict[str, Any] | None) -> int:
        sealed = self._sealer.seal_json(details) if details else None
        # Hash what verify will see: the details as they open from the stored blob.
        opened = self._sealer.open_json(sealed) if sealed is not None else None

        def _append_audit_txn(txn: Transaction) -> int:
            # Taking the next id locks the head row: a concurrent append waits for this one to
            # commit, then chains to it (READ COMMITTED re-reads the row it waited for).
            txn.set_read_committed()
            txn.execute("UPDATE admin_audit_chain_head SET last_id = last_id + 1 WHERE id = 1"
                        " RETURNING last_id, head_hash")
            new_id, head = txn.fetchone()  # type: ignore[misc]
            prev = GENESIS if head is None else bytes(head)
            digest = entry_hash(prev, id=new_id, ts=ts, actor=actor, action=action, target=target,
                                outcome=outcome, details=opened)
            txn.execute(
                "INSERT INTO admin_audit_log (id, ts, actor, action, target, outcome, details, prev_hash, entry_hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (new_id, ts, actor, action, target, outcome, sealed, prev, digest),
            )
            txn.execute("UPDATE admin_audit_chain_head SET head_hash = ? WHERE id = 1", (digest,))
            return int(new_id)

        return await self._db.run_interaction("append_audit", _append_audit_txn)

    async def list_entries(self, *, limit: int, before_id: int | None = None,
                           target: str | None = None) -> list[AuditEntry]:
        """Newest first; `before_id` continues a previous page; `target` keeps one room's, user's... entries."""
        where, args = "id < ?", [before_id if before_id is not None else 2**62]
        if target is not None:
            where += " AND target = ?"
            args.append(target)
        rows = await self._db.execute(
            "list_audit", f"SELECT {_COLUMNS}, entry_hash FROM admin_audit_log WHERE {where} ORDER BY id DESC LIMIT ?",
            *args, limit,
        )
        return [self._entry(row) for row in rows]

    async def ensure_append_only(self) -> None:
        """Install the triggers refusing UPDATE and DELETE on the log, if they are missing, and
        chain the entries written before the chain existed (the first start after migration 0015).

        Runs at every start-up (after migrations); cheap look-ups once both are done.
        """
        await self._db.run_interaction("audit_log_guard", _ensure_guard_txn)
        while not await self._db.run_interaction("audit_log_chain_legacy", self._chain_legacy_txn, CHAIN_BATCH):
            pass

    async def head(self) -> ChainHead:
        def _head_txn(txn: Transaction) -> ChainHead:
            return _read_head(txn)[0]

        return await self._db.run_interaction("audit_chain_head", _head_txn)

    async def verify(self, anchors: Iterable[bytes] = (), *, batch: int = VERIFY_BATCH) -> ChainReport:
        """Walk the whole chain, a batch per transaction, up to the head as it was when the walk
        began (later appends are left for the next verify); `anchors` are hashes written down
        earlier, which must still be in the chain."""

        def _start_txn(txn: Transaction) -> tuple[ChainHead, int, int]:
            head, legacy_through = _read_head(txn)
            txn.execute("SELECT MAX(id) FROM admin_audit_log")
            max_id = txn.fetchone()[0]  # type: ignore[index]
            return head, legacy_through, int(max_id or 0)

        head, legacy_through, max_id = await self._db.run_interaction("verify_audit_start", _start_txn)
        walker = _ChainWalker(self._sealer, head, legacy_through, anchors)

        def _batch_txn(txn: Transaction, after: int) -> int | None:
            txn.execute(
                f"SELECT {_COLUMNS}, prev_hash, entry_hash FROM admin_audit_log WHERE id > ? AND id <= ?"
                " ORDER BY id LIMIT ?",
                (after, head.id, batch),
            )
            rows = txn.fetchall()
            for row in rows:
                walker.check(row)
            return int(rows[-1][0]) if len(rows) == batch else None

        after: int | None = 0
        while after is not None:
            after = await self._db.run_interaction("verify_audit_batch", _batch_txn, after)
        return walker.finish(max_id)

    def _entry(self, row: tuple) -> AuditEntry:  # type: ignore[type-arg]
        details = self._sealer.open_json(row[6]) if row[6] is not None else {}
        digest = None if row[7] is None else bytes(row[7])
        return AuditEntry(int(row[0]), int(row[1]), row[2], row[3], row[4], row[5], details, digest)

    def _chain_legacy_txn(self, txn: Transaction, batch: int) -> bool:
        """Chain the next batch of entries written before migration 0015; True once there are none.

        Only until the pass is recorded as done: an unchained entry found after that was written
        behind piman's back, and chaining it would launder it, so verify reports it instead.
        """
        txn.set_read_committed()
        txn.execute("UPDATE admin_audit_chain_head SET last_id = last_id WHERE id = 1"  # locks the head row
                    " RETURNING last_id, head_hash, legacy_done")
        last_id, head, done = txn.fetchone()  # type: ignore[misc]
        if done:
            return True
        txn.execute(f"SELECT {_COLUMNS}, entry_hash FROM admin_audit_log WHERE id > ? ORDER BY id LIMIT ?",
                    (last_id, batch))
        prev = GENESIS if head is None else bytes(head)
        updates = []
        for row in txn.fetchall():
            if row[7] is not None:
                break  # not an entry from before the chain: leave it for verify to report
            try:
                details = None if row[6] is None else self._sealer.open_json(row[6])
            except DataKeyError as e:
                raise DataKeyError(f"admin audit log entry #{row[0]} can't be chained: {e}") from None
            digest = entry_hash(prev, id=row[0], ts=row[1], actor=row[2], action=row[3], target=row[4],
                                outcome=row[5], details=details)
            updates.append((prev, digest, row[0]))
            prev, last_id = digest, row[0]
        if updates:
            txn.execute_many("UPDATE admin_audit_log SET prev_hash = ?, entry_hash = ? WHERE id = ?", updates)
        finished = len(updates) < batch
        txn.execute(
            "UPDATE admin_audit_chain_head SET last_id = ?, head_hash = ?, legacy_through = ?, legacy_done = ?"
            " WHERE id = 1",
            (last_id, prev if updates else head, last_id, finished),
        )
        return finished


_COLUMNS = "id, ts, actor, action, target, outcome, details"


def _read_head(txn: Transaction) -> tuple[ChainHead, int]:
    txn.execute("SELECT h.last_id, h.head_hash, h.legacy_through, e.ts FROM admin_audit_chain_head h"
                " LEFT JOIN admin_audit_log e ON e.id = h.last_id WHERE h.id = 1")
    last_id, head, legacy_through, ts = txn.fetchone()  # type: ignore[misc]
    return ChainHead(int(last_id), None if head is None else bytes(head), None if ts is None else int(ts)), \
        int(legacy_through)


def _missing(first: int, last: int) -> str:
    return f"entry #{first}" if first == last else f"entries #{first} to #{last}"


class _ChainWalker:
    """Checks entries in id order, one batch at a time; collects one line per problem."""

    def __init__(self, sealer: Sealer, head: ChainHead, legacy_through: int, anchors: Iterable[bytes]) -> None:
        self._sealer = sealer
        self._head = head
        self._legacy_through = legacy_through
        self._anchors = {bytes(a) for a in anchors}
        self._found: set[bytes] = set()
        self._prev_id = 0
        self._prev_hash: bytes | None = GENESIS  # None after an entry without a hash
        self._checked = 0
        self._problems: list[str] = []
        self._more = 0

    def _report(self, line: str) -> None:
        if len(self._problems) < MAX_PROBLEMS:
            self._problems.append(line)
        else:
            self._more += 1

    def check(self, row: tuple[Any, ...]) -> None:
        entry_id, ts, actor, action, target, outcome, sealed, prev_hash, stored_hash = row
        entry_id = int(entry_id)
        self._checked += 1
        prev_hash = None if prev_hash is None else bytes(prev_hash)
        stored_hash = None if stored_hash is None else bytes(stored_hash)
        gap = entry_id != self._prev_id + 1
        # Entries written before the chain existed were chained as they were found; PostgreSQL may
        # have skipped ids then (a failed insert), which shows as a gap with an intact link.
        if gap and not (entry_id <= self._legacy_through and prev_hash == self._prev_hash):
            self._report(f"{_missing(self._prev_id + 1, entry_id - 1)} missing: deleted from the log")
        elif self._prev_hash is not None and prev_hash != self._prev_hash:
            self._report(f"entry #{entry_id}: broken link, its previous hash is not entry #{self._prev_id}'s hash"
                         " (an entry before it was rewritten)")
        if prev_hash is None or stored_hash is None:
            self._report(f"entry #{entry_id}: no chain hash (written behind piman's back)")
        else:
            try:
                details = None if sealed is None else self._sealer.open_json(sealed)
            except DataKeyError:
                self._report(f"entry #{entry_id}: edited, its sealed details were altered")
            else:
                expected = entry_hash(prev_hash, id=entry_id, ts=int(ts), actor=actor, action=action, target=target,
                                      outcome=outcome, details=details)
                if expected != stored_hash:
                    self._report(f"entry #{entry_id}: edited, its content no longer matches its hash")
            if stored_hash in self._anchors:
                self._found.add(stored_hash)
        self._prev_id, self._prev_hash = entry_id, stored_hash

    def finish(self, max_id: int) -> ChainReport:
        head = self._head
        if self._prev_id < head.id:
            self._report(f"{_missing(self._prev_id + 1, head.id)} missing: deleted from the end of the log")
        elif head.id and self._prev_hash != head.hash:
            self._report(f"entry #{head.id}: not the head hash recorded when it was appended (rewritten)")
        if max_id > head.id:
            self._report(f"{_missing(head.id + 1, max_id)} after the recorded head: written behind piman's back")
        for anchor in sorted(self._anchors - self._found):
            self._report(f"anchor {anchor.hex()} is not in the chain: the entry it named was deleted or rewritten")
        return ChainReport(self._checked, head, self._problems, self._more)


# The one change allowed: a key rotation's re-seal pass (storage/stores/sealing_keys.py) rewriting
# `details` under the new data key while its progress row for this table is unfinished; every
# clear column and the chain hashes must stay as they were, and a NULL stays NULL.
_RESEAL_UNDER_WAY = ("EXISTS (SELECT 1 FROM reseal_progress"
                     " WHERE table_name = 'admin_audit_log' AND NOT finished)")
# And, at the first start after migration 0015 only, chaining an entry written before it, once.
_LEGACY_UNDER_WAY = "EXISTS (SELECT 1 FROM admin_audit_chain_head WHERE NOT legacy_done)"

# Bump the suffix whenever a trigger's body changes: start-up installs what is missing by name.
_SQLITE_TRIGGERS = ("admin_audit_log_no_update_v2", "admin_audit_log_no_delete", "admin_audit_log_hashed_insert")
_SQLITE_OLD_TRIGGERS = ("admin_audit_log_no_update",)
_PG_FUNCTION = "piman_audit_log_guard_v2"
_PG_TRIGGERS = ("admin_audit_log_guard_v2", "admin_audit_log_no_truncate_v2")
_PG_OLD_TRIGGERS = ("admin_audit_log_no_change", "admin_audit_log_no_truncate")
_PG_OLD_FUNCTIONS = ("piman_audit_log_append_only",)


def _ensure_guard_txn(txn: Transaction) -> None:
    txn.engine.lock_schema(txn)  # two processes starting at once must not both create them
    if txn.engine.name == "psycopg2":
        _ensure_postgres_guard_txn(txn)
        return
    for name in _SQLITE_OLD_TRIGGERS:
        txn.execute(f"DROP TRIGGER IF EXISTS {name}")
    no_update, no_delete, hashed_insert = _SQLITE_TRIGGERS
    txn.execute(
        f"CREATE TRIGGER IF NOT EXISTS {no_update} BEFORE UPDATE ON admin_audit_log"
        " WHEN NOT (NEW.id = OLD.id AND NEW.ts = OLD.ts AND NEW.actor = OLD.actor AND NEW.action = OLD.action"
        " AND NEW.target IS OLD.target AND NEW.outcome = OLD.outcome AND ("
        "((NEW.details IS NULL) = (OLD.details IS NULL) AND NEW.prev_hash IS OLD.prev_hash"
        f" AND NEW.entry_hash IS OLD.entry_hash AND {_RESEAL_UNDER_WAY})"
        " OR (NEW.details IS OLD.details AND OLD.prev_hash IS NULL AND OLD.entry_hash IS NULL"
        f" AND NEW.prev_hash IS NOT NULL AND NEW.entry_hash IS NOT NULL AND {_LEGACY_UNDER_WAY})))"
        f" BEGIN SELECT RAISE(ABORT, '{GUARD_MESSAGE}'); END"
    )
    txn.execute(
        f"CREATE TRIGGER IF NOT EXISTS {no_delete} BEFORE DELETE ON admin_audit_log"
        f" BEGIN SELECT RAISE(ABORT, '{GUARD_MESSAGE}'); END"
    )
    txn.execute(
        f"CREATE TRIGGER IF NOT EXISTS {hashed_insert} BEFORE INSERT ON admin_audit_log"
        " WHEN NEW.prev_hash IS NULL OR NEW.entry_hash IS NULL"
        f" BEGIN SELECT RAISE(ABORT, '{GUARD_MESSAGE}: an entry needs its chain hashes'); END"
    )


def _ensure_postgres_guard_txn(txn: Transaction) -> None:
    names = ", ".join(f"'{name}'" for name in _PG_TRIGGERS)
    txn.execute(f"SELECT COUNT(*) FROM pg_trigger WHERE tgrelid = 'admin_audit_log'::regclass AND tgname IN ({names})")
    if txn.fetchone()[0] == len(_PG_TRIGGERS):  # type: ignore[index]
        return
    for name in _PG_OLD_TRIGGERS + _PG_TRIGGERS:
        txn.execute(f"DROP TRIGGER IF EXISTS {name} ON admin_audit_log")
    for function in _PG_OLD_FUNCTIONS:
        txn.execute(f"DROP FUNCTION IF EXISTS {function}()")
    txn.execute(
        f"CREATE OR REPLACE FUNCTION {_PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF TG_OP = 'INSERT' THEN"
        " IF NEW.prev_hash IS NULL OR NEW.entry_hash IS NULL THEN"
        f" RAISE EXCEPTION '{GUARD_MESSAGE}: an entry needs its chain hashes'; END IF;"
        " RETURN NEW; END IF;"
        " IF TG_OP = 'UPDATE'"
        " AND (NEW.id, NEW.ts, NEW.actor, NEW.action, NEW.outcome) = (OLD.id, OLD.ts, OLD.actor, OLD.action, OLD.outcome)"
        " AND NEW.target IS NOT DISTINCT FROM OLD.target AND ("
        "((NEW.details IS NULL) = (OLD.details IS NULL) AND NEW.prev_hash IS NOT DISTINCT FROM OLD.prev_hash"
        f" AND NEW.entry_hash IS NOT DISTINCT FROM OLD.entry_hash AND {_RESEAL_UNDER_WAY})"
        " OR (NEW.details IS NOT DISTINCT FROM OLD.details AND OLD.prev_hash IS NULL AND OLD.entry_hash IS NULL"
        f" AND NEW.prev_hash IS NOT NULL AND NEW.entry_hash IS NOT NULL AND {_LEGACY_UNDER_WAY}))"
        " THEN RETURN NEW; END IF;"
        f" RAISE EXCEPTION '{GUARD_MESSAGE}: % refused', TG_OP; END $$"
    )
    guard, no_truncate = _PG_TRIGGERS
    txn.execute(
        f"CREATE TRIGGER {guard} BEFORE INSERT OR UPDATE OR DELETE ON admin_audit_log"
        f" FOR EACH ROW EXECUTE FUNCTION {_PG_FUNCTION}()"
    )
    txn.execute(
        f"CREATE TRIGGER {no_truncate} BEFORE TRUNCATE ON admin_audit_log"
        f" FOR EACH STATEMENT EXECUTE FUNCTION {_PG_FUNCTION}()"
    )
