"""The admin audit log's hash chain on both engines: an untouched chain verifies; what a database
owner does after dropping the triggers (edit, delete, rewrite) is reported; a key rotation keeps
it valid; concurrent appends don't fork it; a log written before the chain existed gets chained."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from homeserver.key_rotation import run_reseal
from storage.database import Database
from storage.datastore import DataStore, open_datastore
from storage.engines import create_engine
from storage.migrations import known_migrations, prepare_database
from storage.sealing import Sealer, add_key_to_file, load_sealer
from storage.stores.audit_log import GENESIS, entry_hash

CHAIN_MIGRATION = 15


async def append_some(store: DataStore, count: int = 5) -> list[int]:
    ids = []
    for i in range(count):
        ids.append(await store.audit_log.append(
            ts=1000 + i, actor="@dpo:example.org", action="hold.place", target=f"!room{i}:example.org",
            outcome="ok", details={"reason": f"case n° {i}", "count": i} if i % 2 == 0 else None))
    return ids


async def drop_guards(db: Database) -> None:
    """What the database's owner can always do: remove the append-only triggers."""
    if db.engine.name == "psycopg2":
        rows = await db.execute("t", "SELECT tgname FROM pg_trigger WHERE tgrelid = 'admin_audit_log'::regclass"
                                     " AND NOT tgisinternal")
        statements = [f"DROP TRIGGER {name} ON admin_audit_log" for (name,) in rows]
    else:
        rows = await db.execute("t", "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                                     " AND tbl_name = 'admin_audit_log'")
        statements = [f"DROP TRIGGER {name}" for (name,) in rows]
    assert statements, "no trigger to drop: is the guard installed?"
    for sql in statements:
        await db.execute("drop_guard", sql)


async def stored(db: Database, entry_id: int) -> tuple[Any, ...]:
    [row] = await db.execute("t", "SELECT id, ts, actor, action, target, outcome, details, prev_hash, entry_hash"
                                  " FROM admin_audit_log WHERE id = ?", entry_id)
    return row


def rehash(sealer: Sealer, row: tuple[Any, ...], prev: bytes) -> bytes:
    details = None if row[6] is None else sealer.open_json(row[6])
    return entry_hash(prev, id=row[0], ts=row[1], actor=row[2], action=row[3], target=row[4], outcome=row[5],
                      details=details)


@pytest_twisted.ensureDeferred
async def test_an_untouched_chain_verifies_and_its_head_anchors_it(datastore: DataStore, sealer: Sealer) -> None:
    empty = await datastore.audit_log.verify()
    assert empty.valid and empty.entries == 0 and empty.head.hash is None

    ids = await append_some(datastore)
    assert ids == [1, 2, 3, 4, 5]
    report = await datastore.audit_log.verify()
    assert report.valid, report.problems
    assert report.entries == 5
    # The hashes are the documented formula, recomputable by anyone with the data key.
    prev = GENESIS
    for entry_id in ids:
        row = await stored(datastore.db, entry_id)
        assert bytes(row[7]) == prev
        assert bytes(row[8]) == rehash(sealer, row, prev)
        prev = bytes(row[8])
    head = await datastore.audit_log.head()
    assert (head.id, head.hash, head.ts) == (5, prev, 1004)
    [newest] = await datastore.audit_log.list_entries(limit=1)
    assert newest.entry_hash == head.hash

    # Anchors: an old head stays in the chain as it grows; a hash it never held is reported.
    await append_some(datastore, 2)
    assert (await datastore.audit_log.verify([head.hash])).valid  # type: ignore[list-item]
    stranger = bytes(range(32))
    report = await datastore.audit_log.verify([head.hash, stranger])  # type: ignore[list-item]
    assert report.problems == [f"anchor {stranger.hex()} is not in the chain: the entry it named was deleted or"
                               " rewritten"]


@pytest_twisted.ensureDeferred
async def test_an_edited_entry_is_reported(datastore: DataStore, sealer: Sealer) -> None:
    await append_some(datastore)
    db = datastore.db
    with pytest.raises(Exception, match="append-only"):
        await db.execute("tamper", "UPDATE admin_audit_log SET actor = 'someone else' WHERE id = 2")
    await drop_guards(db)

    await db.execute("tamper", "UPDATE admin_audit_log SET actor = 'someone else' WHERE id = 2")
    report = await datastore.audit_log.verify()
    assert report.problems == ["entry #2: edited, its content no longer matches its hash"]

    # Sealed details swapped for another entry's (a valid blob, other content) or garbled.
    await db.execute("tamper", "UPDATE admin_audit_log SET actor = '@dpo:example.org' WHERE id = 2")
    [(blob,)] = await db.execute("t", "SELECT details FROM admin_audit_log WHERE id = 1")
    await db.execute("tamper", "UPDATE admin_audit_log SET details = ? WHERE id = 3", bytes(blob))
    garbled = bytearray(bytes(blob))
    garbled[-1] ^= 1
    await db.execute("tamper", "UPDATE admin_audit_log SET details = ? WHERE id = 5", bytes(garbled))
    report = await datastore.audit_log.verify()
    assert report.problems == ["entry #3: edited, its content no longer matches its hash",
                               "entry #5: edited, its sealed details were altered"]


@pytest_twisted.ensureDeferred
async def test_an_edit_with_its_hash_recomputed_breaks_the_link(datastore: DataStore, sealer: Sealer) -> None:
    await append_some(datastore)
    db = datastore.db
    await drop_guards(db)
    await db.execute("tamper", "UPDATE admin_audit_log SET outcome = 'M_FORBIDDEN' WHERE id = 3")
    row = await stored(db, 3)
    await db.execute("tamper", "UPDATE admin_audit_log SET entry_hash = ? WHERE id = 3",
                     rehash(sealer, row, bytes(row[7])))
    report = await datastore.audit_log.verify()
    assert report.problems == ["entry #4: broken link, its previous hash is not entry #3's hash (an entry before it"
                               " was rewritten)"]


@pytest_twisted.ensureDeferred
async def test_deleted_entries_are_reported(datastore: DataStore) -> None:
    await append_some(datastore, 6)
    db = datastore.db
    with pytest.raises(Exception, match="append-only"):
        await db.execute("tamper", "DELETE FROM admin_audit_log WHERE id = 2")
    await drop_guards(db)

    await db.execute("tamper", "DELETE FROM admin_audit_log WHERE id IN (2, 3)")
    await db.execute("tamper", "DELETE FROM admin_audit_log WHERE id = 6")
    report = await datastore.audit_log.verify()
    assert report.problems == ["entries #2 to #3 missing: deleted from the log",
                               "entry #6 missing: deleted from the end of the log"]
    # An append afterwards takes a fresh id, so the tail deletion stays visible as a gap.
    assert await datastore.audit_log.append(ts=9, actor="cli:root", action="a", target=None, outcome="ok",
                                            details=None) == 7
    report = await datastore.audit_log.verify()
    assert report.problems == ["entries #2 to #3 missing: deleted from the log",
                               "entry #6 missing: deleted from the log"]
    # Everything deleted: the head still says what there was.
    await db.execute("tamper", "DELETE FROM admin_audit_log")
    assert (await datastore.audit_log.verify()).problems == [
        "entries #1 to #7 missing: deleted from the end of the log"]


@pytest_twisted.ensureDeferred
async def test_a_rewritten_chain_is_caught_by_an_anchor_written_down_before(datastore: DataStore,
                                                                            sealer: Sealer) -> None:
    await append_some(datastore)
    anchor = (await datastore.audit_log.head()).hash
    assert anchor is not None
    db = datastore.db
    await drop_guards(db)
    # The owner deletes entry 2 and re-chains everything after it consistently, head row included.
    await db.execute("tamper", "DELETE FROM admin_audit_log WHERE id >= 2")
    prev = bytes((await stored(db, 1))[8])
    for new_id in range(2, 5):
        ts, details = 2000 + new_id, sealer.seal_json({"forged": new_id})
        digest = entry_hash(prev, id=new_id, ts=ts, actor="@dpo:example.org", action="hold.place", target=None,
                            outcome="ok", details={"forged": new_id})
        await db.execute("forge", "INSERT INTO admin_audit_log (id, ts, actor, action, target, outcome, details,"
                                  " prev_hash, entry_hash) VALUES (?, ?, '@dpo:example.org', 'hold.place', NULL,"
                                  " 'ok', ?, ?, ?)", new_id, ts, details, prev, digest)
        prev = digest
    await db.execute("forge", "UPDATE admin_audit_chain_head SET last_id = 4, head_hash = ?", prev)

    assert (await datastore.audit_log.verify()).valid, "a consistent rewrite passes without an anchor..."
    report = await datastore.audit_log.verify([anchor])
    assert report.problems == [f"anchor {anchor.hex()} is not in the chain: the entry it named was deleted or"
                               " rewritten"]


@pytest_twisted.ensureDeferred
async def test_entries_slipped_in_behind_pimans_back_are_reported_not_chained(
    database_config: dict[str, Any], reactor: Any, sealer: Sealer
) -> None:
    store = await open_datastore(database_config, reactor, sealer)
    try:
        await append_some(store, 2)
        with pytest.raises(Exception, match="append-only"):
            await store.db.execute("forge", "INSERT INTO admin_audit_log (ts, actor, action, outcome)"
                                            " VALUES (1, 'x', 'y', 'ok')")
        # Even with the log's triggers in place, the chaining update only ran at the upgrade.
        with pytest.raises(Exception, match="append-only"):
            await store.db.execute("tamper", "UPDATE admin_audit_log SET entry_hash = ? WHERE id = 1", bytes(32))
        await drop_guards(store.db)
        await store.db.execute("forge", "INSERT INTO admin_audit_log (id, ts, actor, action, outcome)"
                                        " VALUES (3, 1, 'x', 'y', 'ok')")
    finally:
        await store.close()
    store = await open_datastore(database_config, reactor, sealer)  # a restart: triggers back, nothing chained
    try:
        assert (await stored(store.db, 3))[8] is None
        report = await store.audit_log.verify()
        assert report.problems == ["entry #3 after the recorded head: written behind piman's back"]
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_a_key_rotation_keeps_the_chain_valid(
    database_config: dict[str, Any], reactor: Any, data_key_path: Path, tmp_path: Path
) -> None:
    store = await open_datastore(database_config, reactor, load_sealer(str(data_key_path)))
    try:
        await append_some(store)
        anchor = (await store.audit_log.head()).hash
        before = await store.db.execute("t", "SELECT id, details, entry_hash FROM admin_audit_log ORDER BY id")
    finally:
        await store.close()
    new_id = add_key_to_file(str(data_key_path))
    sealer = load_sealer(str(data_key_path))
    store = await open_datastore(database_config, reactor, sealer)
    try:
        await store.sealing_keys.start_reseal(new_id, now_ms=3)
        await run_reseal(store, sealer, str(tmp_path / "media"), reactor, io.StringIO())
        after = await store.db.execute("t", "SELECT id, details, entry_hash FROM admin_audit_log ORDER BY id")
        resealed = [(a[0], b[1]) for a, b in zip(before, after) if a[1] is not None]
        assert len(resealed) == 3 and all(bytes(old) != bytes(new) for old, new in resealed)
        assert [bytes(r[2]) for r in after] == [bytes(r[2]) for r in before]
        report = await store.audit_log.verify([anchor])  # type: ignore[list-item]
        assert report.valid, report.problems
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_concurrent_appends_chain_one_after_another(datastore: DataStore) -> None:
    results = await defer.gatherResults([
        defer.ensureDeferred(datastore.audit_log.append(ts=i, actor=f"@admin{i}:example.org", action="x",
                                                        target=None, outcome="ok", details={"n": i}))
        for i in range(24)
    ])
    assert sorted(results) == list(range(1, 25))
    report = await datastore.audit_log.verify()
    assert report.valid and report.entries == 24, report.problems


@pytest_twisted.ensureDeferred
async def test_a_log_written_before_the_chain_is_chained_at_the_first_start(
    database_config: dict[str, Any], reactor: Any, sealer: Sealer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database as the release before migration 0015 left it, with entries (and, as PostgreSQL's
    # identity may leave after a failed insert, a gap in their ids).
    db = Database(create_engine(database_config), reactor)
    try:
        await prepare_database(db, migrations=known_migrations()[:CHAIN_MIGRATION - 1])
        for entry_id, details in ((1, {"reason": "a"}), (2, None), (4, {"reason": "b"}), (5, {"n": 5})):
            await db.execute("legacy", "INSERT INTO admin_audit_log (id, ts, actor, action, target, outcome, details)"
                                       " VALUES (?, ?, 'cli:root', 'hold.place', NULL, 'ok', ?)",
                             entry_id, entry_id * 10, None if details is None else sealer.seal_json(details))
    finally:
        await db.close()

    monkeypatch.setattr("storage.stores.audit_log.CHAIN_BATCH", 2)  # several batches
    store = await open_datastore(database_config, reactor, sealer)
    try:
        rows = await store.db.execute("t", "SELECT id, prev_hash, entry_hash FROM admin_audit_log ORDER BY id")
        assert [r[0] for r in rows] == [1, 2, 4, 5] and all(r[1] is not None and r[2] is not None for r in rows)
        assert (await store.audit_log.verify()).valid
        assert await store.audit_log.append(ts=60, actor="cli:root", action="x", target=None, outcome="ok",
                                            details=None) == 6
        report = await store.audit_log.verify()
        assert report.valid and report.entries == 5, report.problems
        # Deleting a pre-chain entry is still caught: that gap, unlike the old one, breaks the link.
        await drop_guards(store.db)
        await store.db.execute("tamper", "DELETE FROM admin_audit_log WHERE id = 2")
        assert (await store.audit_log.verify()).problems == ["entries #2 to #3 missing: deleted from the log"]
    finally:
        await store.close()
