"""Data key rotation on both engines: the sealed-column registry, re-sealing that resumes after a
crash, the start-up check for a key file lacking a key the data needs, and media file keys."""

from __future__ import annotations

import io
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from homeserver.key_rotation import run_reseal, scan_key_usage
from homeserver.media.sealed_files import SealedReader, reseal_file_key, sealed_file_key_id, write_sealed
from storage.datastore import DataStore, open_datastore
from storage.sealed_columns import SEALED_TABLES
from storage.sealing import (
    DataKeyError,
    Sealer,
    add_key_to_file,
    generate_data_key_file,
    load_sealer,
    remove_keys_from_file,
)

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "storage" / "schema"
USERS = [f"@user{i}:example.org" for i in range(5)]


# -- the registry ---------------------------------------------------------------


def _schema_markers() -> tuple[set[tuple[str, str]], dict[str, tuple[str, ...]]]:
    """(table, column) of every `-- SEALED` column in the migrations, and each table's primary key."""
    sealed: set[tuple[str, str]] = set()
    keys: dict[str, tuple[str, ...]] = {}
    for path in sorted(SCHEMA_DIR.glob("*.sql")):
        text = path.read_text()
        for match in re.finditer(r"CREATE TABLE (\w+) \((.*?)\n\);", text, re.DOTALL):
            table, body = match.group(1), match.group(2)
            for line in body.splitlines():
                column = re.match(r"\s*(\w+)\s", line)
                if column and "-- SEALED" in line:
                    sealed.add((table, column.group(1)))
                if column and re.search(r"\bPRIMARY KEY\b", line.split("--")[0]) and column.group(1) != "PRIMARY":
                    keys[table] = (column.group(1),)
            composite = re.search(r"^\s*PRIMARY KEY \(([^)]*)\)", body, re.MULTILINE)
            if composite:
                keys[table] = tuple(c.strip() for c in composite.group(1).split(","))
        for match in re.finditer(r"ALTER TABLE (\w+) ADD COLUMN (\w+)[^\n]*-- SEALED", text):
            sealed.add((match.group(1), match.group(2)))
    return sealed, keys


def test_registry_lists_exactly_the_sealed_columns_of_the_schema() -> None:
    marked, primary_keys = _schema_markers()
    registered = {(t.table, column) for t in SEALED_TABLES for column in t.columns}
    assert marked, "no -- SEALED marker found: is the parser broken?"
    assert marked - registered == set(), "sealed columns missing from storage/sealed_columns.py"
    assert registered - marked == set(), "registered columns without a -- SEALED marker in the schema"
    for table in SEALED_TABLES:
        assert table.key == primary_keys[table.table], f"{table.table}: the re-seal walks by its primary key"
    assert len({t.table for t in SEALED_TABLES}) == len(SEALED_TABLES), "one entry per table"


# -- the key file ---------------------------------------------------------------


def test_adding_a_key_keeps_the_old_ones_and_the_file_private(data_key_path: Path) -> None:
    old = load_sealer(str(data_key_path))
    before = data_key_path.read_text()
    new_id = add_key_to_file(str(data_key_path))
    after = data_key_path.read_text()
    assert after.startswith(before), "the old keys and comments stay as they were"
    assert stat.S_IMODE(data_key_path.stat().st_mode) == 0o600
    assert not [p for p in data_key_path.parent.iterdir() if p.name.endswith(".tmp")], "no temporary file left"
    sealer = load_sealer(str(data_key_path))
    assert sealer.key_ids == (old.current_key_id, new_id) and sealer.current_key_id == new_id
    blob = old.seal(b"sealed before the rotation")
    assert sealer.open(blob) == b"sealed before the rotation"
    resealed = sealer.reseal(blob)
    assert resealed is not None and sealer.reseal(resealed) is None
    with pytest.raises(DataKeyError, match="seals new data"):
        remove_keys_from_file(str(data_key_path), {new_id})
    remove_keys_from_file(str(data_key_path), {old.current_key_id})
    assert load_sealer(str(data_key_path)).key_ids == (new_id,)
    assert stat.S_IMODE(data_key_path.stat().st_mode) == 0o600


# -- re-sealing -----------------------------------------------------------------


async def _write_sealed_rows(store: DataStore) -> None:
    for i, user in enumerate(USERS):
        await store.account_data.put(user, None, "org.example.note", {"n": i, "text": f"note {i}"})
        await store.filters.add_filter(user, {"room": {"timeline": {"limit": i + 1}}})
    await store.reports.add_report(reporter=USERS[0], received_ts=1, reason="report reason", room_id="!r:x")
    await store.holds.place_hold("room", "!r:x", reason="hold reason", created_by=USERS[1], now_ms=2)


async def _read_back(store: DataStore) -> Any:
    return (
        [await store.account_data.get(user, None, "org.example.note") for user in USERS],
        [(await store.filters.get_filter(user, 1 + i)) for i, user in enumerate(USERS)],
        [r.reason for r in await store.reports.get_reports()],
        [h.reason for h in await store.holds.list_holds()],
    )


class _Crash(Exception):
    pass


class _CrashingKeys:
    """The store's sealing keys, dying after `batches` re-seal batches of account_data (a crash mid-pass)."""

    def __init__(self, inner: Any, batches: int) -> None:
        self._inner = inner
        self._left = batches

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def reseal_batch(self, table: Any, sealer: Sealer, batch: int = 2) -> Any:
        if table.table == "account_data":
            if self._left == 0:
                raise _Crash()
            self._left -= 1
        return await self._inner.reseal_batch(table, sealer, batch)


class _Crashing:
    def __init__(self, store: DataStore, batches: int) -> None:
        self.sealing_keys = _CrashingKeys(store.sealing_keys, batches)


@pytest_twisted.ensureDeferred
async def test_rotation_reseals_everything_and_resumes_after_a_crash(
    database_config: dict[str, Any], reactor: Any, data_key_path: Path, tmp_path: Path
) -> None:
    old = load_sealer(str(data_key_path))
    store = await open_datastore(database_config, reactor, old)
    try:
        await _write_sealed_rows(store)
        expected = await _read_back(store)
    finally:
        await store.close()
    new_id = add_key_to_file(str(data_key_path))
    sealer = load_sealer(str(data_key_path))

    store = await open_datastore(database_config, reactor, sealer)
    try:
        await store.sealing_keys.start_reseal(new_id, now_ms=3)
        with pytest.raises(_Crash):  # two batches of two rows, then the process dies
            await run_reseal(_Crashing(store, 2), sealer, str(tmp_path / "media"), reactor, io.StringIO())
        progress = {p.table: p for p in await store.sealing_keys.get_reseal_progress()}
        assert (progress["account_data"].rows_done, progress["account_data"].finished) == (4, False)
        assert progress["account_data"].rows_total == len(USERS)
    finally:
        await store.close()

    # A new process resumes after the last batch done, and finishes the pass.
    store = await open_datastore(database_config, reactor, sealer)
    try:
        out = io.StringIO()
        await run_reseal(store, sealer, str(tmp_path / "media"), reactor, out)
        progress = {p.table: p for p in await store.sealing_keys.get_reseal_progress()}
        assert all(p.finished for p in progress.values())
        assert (progress["account_data"].rows_done, progress["account_data"].resealed) == (5, 5)
        assert progress["user_filters"].resealed == len(USERS)
        assert re.search(r"^account_data +\[#+\] 5/5 rows \(5 re-sealed\)$", out.getvalue(), re.MULTILINE), out.getvalue()
        usage = await scan_key_usage(store, str(tmp_path / "media"), reactor)
        assert set(usage.by_key) == {new_id}, usage.by_key
        assert usage.by_key[new_id]["account_data"] == len(USERS)
        assert await store.sealing_keys.recorded_key_ids() == {old.current_key_id, new_id}
    finally:
        await store.close()

    # Retired (as `piman keys retire` does), everything opens with the new key alone, unchanged.
    store = await open_datastore(database_config, reactor, sealer)
    await store.sealing_keys.forget_key_ids([old.current_key_id])
    await store.close()
    remove_keys_from_file(str(data_key_path), {old.current_key_id})
    store = await open_datastore(database_config, reactor, load_sealer(str(data_key_path)))
    try:
        assert await _read_back(store) == expected
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_the_admin_audit_log_is_resealed_too(
    database_config: dict[str, Any], reactor: Any, data_key_path: Path, tmp_path: Path
) -> None:
    store = await open_datastore(database_config, reactor, load_sealer(str(data_key_path)))
    try:
        await store.audit_log.append(ts=1, actor="cli:root", action="hold.place", target="!r:x", outcome="ok",
                                     details={"reason": "a case"})
    finally:
        await store.close()
    new_id = add_key_to_file(str(data_key_path))
    sealer = load_sealer(str(data_key_path))
    store = await open_datastore(database_config, reactor, sealer)
    try:
        await store.sealing_keys.start_reseal(new_id, now_ms=3)
        await run_reseal(store, sealer, str(tmp_path / "media"), reactor, io.StringIO())
        usage = await scan_key_usage(store, str(tmp_path / "media"), reactor)
        assert set(usage.by_key) == {new_id}
        [entry] = await store.audit_log.list_entries(limit=10)
        assert entry.details == {"reason": "a case"}
    finally:
        await store.close()


# -- the start-up check ----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_key_file_lacking_a_key_the_data_uses_is_refused_at_open(
    database_config: dict[str, Any], reactor: Any, data_key_path: Path, tmp_path: Path
) -> None:
    old = load_sealer(str(data_key_path))
    other_path = tmp_path / "other.key"
    generate_data_key_file(str(other_path))
    other = load_sealer(str(other_path))
    message = (f"data key file {other_path}: key id '{old.current_key_id}' used by stored data is not in this "
               f"file: restore the key file from your backup")

    # No sealed row yet: the key recorded when the data was first opened is enough.
    store = await open_datastore(database_config, reactor, old)
    await store.close()
    with pytest.raises(DataKeyError) as refused:
        await open_datastore(database_config, reactor, other)
    assert str(refused.value) == message

    # A database the table knows nothing about (restored, or older than it): the sample catches it.
    store = await open_datastore(database_config, reactor, old)
    try:
        await _write_sealed_rows(store)
        await store.db.execute("forget", "DELETE FROM sealing_key_ids")
    finally:
        await store.close()
    with pytest.raises(DataKeyError) as refused:
        await open_datastore(database_config, reactor, other)
    assert str(refused.value) == message

    # A file holding both keys opens, and records the key it seals with.
    both = Sealer({old.current_key_id: _key(data_key_path), other.current_key_id: _key(other_path)},
                  other.current_key_id)
    store = await open_datastore(database_config, reactor, both)
    try:
        assert await store.sealing_keys.recorded_key_ids() == {old.current_key_id, other.current_key_id}
    finally:
        await store.close()


def _key(path: Path) -> bytes:
    from unpaddedbase64 import decode_base64

    line = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")][-1]
    return decode_base64(line.split()[1])


# -- media files --------------------------------------------------------------------


def test_a_media_file_key_is_resealed_without_touching_the_content(data_key_path: Path, tmp_path: Path) -> None:
    old = load_sealer(str(data_key_path))
    content = os.urandom(200_000)  # several chunks
    path = str(tmp_path / "media" / "ab" / "cd" / "file")
    write_sealed(old, io.BytesIO(content), path)
    body_before = Path(path).read_bytes()[-150_000:]
    new_id = add_key_to_file(str(data_key_path))
    sealer = load_sealer(str(data_key_path))
    assert reseal_file_key(sealer, path) is True
    assert sealed_file_key_id(path) == new_id
    assert Path(path).read_bytes()[-150_000:] == body_before, "the content is not re-encrypted"
    assert reseal_file_key(sealer, path) is False
    remove_keys_from_file(str(data_key_path), {old.current_key_id})
    assert b"".join(SealedReader(load_sealer(str(data_key_path)), path)) == content
    assert os.listdir(os.path.dirname(path)) == ["file"], "no temporary file left"
