"""Which data keys the stored data needs, and re-sealing it with the newest one.

Start-up check (`check_keys`): a key file that lacks a key the data was sealed with would make
reads fail later, one request at a time, with errors nobody connects to the lost key. So opening
the store compares the key file with (a) `sealing_key_ids`, the table of key ids data may use,
kept by start-up (the key a server seals with) and rotation (the key it re-seals to), from which a
key id is removed only after a full scan proved it unused; and (b) the first and last row of each
sealed table, which catches data the table doesn't know about (a database restored next to the
wrong key file, rows older than the table). That is one small query plus two indexed look-ups per
sealed table, whatever the database size.

Re-sealing (`reseal_batch`) walks one sealed table in primary key order, a batch per
transaction, recording in `reseal_progress` how far it got so a restart resumes there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

from storage.database import Database, Transaction
from storage.sealed_columns import SEALED_TABLES, SealedTable
from storage.sealing import MAX_HEADER_SIZE, DataKeyError, Sealer, key_id_of

RESEAL_BATCH = 200
SCAN_BATCH = 2000
# The progress row of the media store's files (their file keys are sealed with the data key).
MEDIA_STORE = "media_store"


@dataclass(frozen=True)
class ResealProgress:
    table: str
    target_key_id: str
    rows_done: int
    rows_total: int
    resealed: int  # rows rewritten (the others were sealed with the target key already)
    finished: bool


def _key_order(table: SealedTable) -> str:
    return ", ".join(table.key)


def _after_clause(table: SealedTable, last_key: list[Any] | None) -> tuple[str, list[Any]]:
    if last_key is None:
        return "", []
    return f" WHERE ({_key_order(table)}) > ({', '.join('?' for _ in table.key)})", list(last_key)


def _header_columns(table: SealedTable) -> str:
    # Only a blob's first bytes name its key: a scan needn't read whole events.
    return ", ".join(f"substr({column}, 1, {MAX_HEADER_SIZE})" for column in table.columns)


class SealingKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- key ids in use --------------------------------------------------

    async def check_keys(self, sealer: Sealer, now_ms: int) -> None:
        """Refuse (DataKeyError) a key file lacking a key the stored data uses; then record the
        key this process seals with, and any in use the table didn't list."""

        def _check_txn(txn: Transaction) -> None:
            txn.execute("SELECT key_id FROM sealing_key_ids")
            recorded = {row[0] for row in txn.fetchall()}
            needed = set(recorded)
            for table in SEALED_TABLES:
                for direction in ("ASC", "DESC"):
                    order = ", ".join(f"{column} {direction}" for column in table.key)
                    txn.execute(f"SELECT {_header_columns(table)} FROM {table.table} ORDER BY {order} LIMIT 1")
                    needed |= {key_id_of(header) for row in txn.fetchall() for header in row if header is not None}
            missing = sorted(needed - set(sealer.key_ids))
            if missing:
                ids = ", ".join(repr(k) for k in missing)
                raise DataKeyError(
                    f"{sealer.source}: key id{'s' if len(missing) > 1 else ''} {ids} used by stored data "
                    f"{'are' if len(missing) > 1 else 'is'} not in this file: restore the key file from your backup"
                )
            new = (needed | {sealer.current_key_id}) - recorded
            if new:
                txn.execute_many(
                    "INSERT INTO sealing_key_ids (key_id, recorded_ts) VALUES (?, ?) ON CONFLICT (key_id) DO NOTHING",
                    [(key_id, now_ms) for key_id in sorted(new)],
                )

        await self._db.run_interaction("check_data_keys", _check_txn)

    async def recorded_key_ids(self) -> set[str]:
        rows = await self._db.execute("recorded_key_ids", "SELECT key_id FROM sealing_key_ids")
        return {row[0] for row in rows}

    async def forget_key_ids(self, key_ids: Iterable[str]) -> None:
        """Called once a full scan proved no sealed blob uses them (`piman keys retire`)."""
        ids = [(key_id,) for key_id in key_ids]

        def _forget_txn(txn: Transaction) -> None:
            txn.execute_many("DELETE FROM sealing_key_ids WHERE key_id = ?", ids)

        await self._db.run_interaction("forget_key_ids", _forget_txn)

    async def scan_key_usage(self, table: SealedTable, after: list[Any] | None) -> tuple[dict[str, int], list[Any] | None]:
        """Count the key ids of one batch of `table` after primary key `after`; returns the
        counts and the batch's last primary key (None when the table is done)."""

        def _scan_txn(txn: Transaction) -> tuple[dict[str, int], list[Any] | None]:
            where, args = _after_clause(table, after)
            txn.execute(
                f"SELECT {_key_order(table)}, {_header_columns(table)} FROM {table.table}{where}"
                f" ORDER BY {_key_order(table)} LIMIT ?",
                (*args, SCAN_BATCH),
            )
            rows = txn.fetchall()
            counts: dict[str, int] = {}
            width = len(table.key)
            for row in rows:
                for header in row[width:]:
                    if header is not None:
                        key_id = key_id_of(header)
                        counts[key_id] = counts.get(key_id, 0) + 1
            last = list(rows[-1][:width]) if len(rows) == SCAN_BATCH else None
            return counts, last

        return await self._db.run_interaction(f"scan_key_usage_{table.table}", _scan_txn)

    # -- re-sealing ------------------------------------------------------

    async def start_reseal(self, target_key_id: str, now_ms: int) -> None:
        """Begin a new pass over every sealed table towards `target_key_id`, forgetting any old one."""

        def _start_txn(txn: Transaction) -> None:
            txn.execute("DELETE FROM reseal_progress")
            rows = []
            for table in SEALED_TABLES:
                txn.execute(f"SELECT COUNT(*) FROM {table.table}")
                row = txn.fetchone()
                rows.append((table.table, target_key_id, int(row[0]) if row else 0))
            rows.append((MEDIA_STORE, target_key_id, 0))  # counted when the pass gets there
            txn.execute_many(
                "INSERT INTO reseal_progress (table_name, target_key_id, last_key, rows_done, rows_total,"
                " resealed, finished) VALUES (?, ?, NULL, 0, ?, 0, FALSE)",
                rows,
            )
            txn.execute(
                "INSERT INTO sealing_key_ids (key_id, recorded_ts) VALUES (?, ?) ON CONFLICT (key_id) DO NOTHING",
                (target_key_id, now_ms),
            )

        await self._db.run_interaction("start_reseal", _start_txn)

    async def get_reseal_progress(self) -> list[ResealProgress]:
        """The current (or last) pass, in the order it walks the tables; [] if none was started."""
        rows = await self._db.execute(
            "get_reseal_progress",
            "SELECT table_name, target_key_id, rows_done, rows_total, resealed, finished FROM reseal_progress",
        )
        by_table = {
            row[0]: ResealProgress(row[0], row[1], int(row[2]), int(row[3]), int(row[4]), bool(row[5]))
            for row in rows
        }
        order = [t.table for t in SEALED_TABLES] + [MEDIA_STORE]
        return [by_table[name] for name in order if name in by_table]

    async def set_media_progress(self, rows_done: int, rows_total: int, resealed: int, finished: bool) -> None:
        await self._db.execute(
            "set_media_reseal_progress",
            "UPDATE reseal_progress SET rows_done = ?, rows_total = ?, resealed = ?, finished = ? WHERE table_name = ?",
            rows_done, rows_total, resealed, finished, MEDIA_STORE,
        )

    async def reseal_batch(self, table: SealedTable, sealer: Sealer, batch: int = RESEAL_BATCH) -> ResealProgress:
        """Re-seal the next batch of `table` with `sealer`'s current key, in one transaction.

        Rows are read and rewritten in the same transaction, so a concurrent change to a row
        makes PostgreSQL fail the batch with a serialisation error and the retry reads it anew
        (SQLite runs writers one at a time).
        """

        def _batch_txn(txn: Transaction) -> ResealProgress:
            txn.execute(
                "SELECT target_key_id, last_key, rows_done, rows_total, resealed, finished"
                " FROM reseal_progress WHERE table_name = ?",
                (table.table,),
            )
            row = txn.fetchone()
            if row is None:
                raise ValueError(f"no re-seal pass is under way for {table.table}")
            target, last_json, done, total, resealed, finished = row
            if target != sealer.current_key_id:
                raise DataKeyError(
                    f"the re-seal pass seals with key {target!r}, but the newest key of {sealer.source} "
                    f"is {sealer.current_key_id!r}"
                )
            if finished:
                return ResealProgress(table.table, target, int(done), int(total), int(resealed), True)
            where, args = _after_clause(table, None if last_json is None else json.loads(last_json))
            columns = ", ".join(table.columns)
            txn.execute(
                f"SELECT {_key_order(table)}, {columns} FROM {table.table}{where}"
                f" ORDER BY {_key_order(table)} LIMIT ?",
                (*args, batch),
            )
            rows = txn.fetchall()
            width = len(table.key)
            updates = []
            for stored in rows:
                blobs = stored[width:]
                new = [None if blob is None else sealer.reseal(blob) for blob in blobs]
                if any(blob is not None for blob in new):
                    values = [old if fresh is None else fresh for old, fresh in zip(blobs, new)]
                    updates.append((*values, *stored[:width]))
            if updates:
                assignments = ", ".join(f"{column} = ?" for column in table.columns)
                match = " AND ".join(f"{column} = ?" for column in table.key)
                txn.execute_many(f"UPDATE {table.table} SET {assignments} WHERE {match}", updates)
            done_now = int(done) + len(rows)
            resealed_now = int(resealed) + len(updates)
            finished_now = len(rows) < batch
            last = json.dumps(list(rows[-1][:width])) if rows else last_json
            txn.execute(
                "UPDATE reseal_progress SET last_key = ?, rows_done = ?, resealed = ?, finished = ?"
                " WHERE table_name = ?",
                (last, done_now, resealed_now, finished_now, table.table),
            )
            return ResealProgress(table.table, target, done_now, int(total), resealed_now, finished_now)

        return await self._db.run_interaction(f"reseal_{table.table}", _batch_txn)
