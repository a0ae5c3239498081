"""`piman admin export`: a room's and a user's stored data in a bundle, ciphertext still ciphertext."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import stat
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import yaml

from homeserver.admin_cli import export
from homeserver.http.errors import MatrixError
from tests.integration.harness import SERVER_NAME, V3, Client, TestServer, base_config, create_room, q, send

CANARY = "export-canary-5d1e"
MEDIA_CANARY = b"MEDIA-CANARY-PLAINTEXT-0042"
MEDIA = "/_matrix/media/v3"


async def upload(client: Client, data: bytes) -> str:
    resp = await client.post(f"{MEDIA}/upload?filename={CANARY}.bin", raw=data,
                             headers={"Content-Type": "application/octet-stream"})
    assert resp.code == 200, resp
    return resp.json["content_uri"].rsplit("/", 1)[1]


async def send_image(client: Client, room_id: str, media_id: str, txn: str) -> str:
    resp = await client.put(f"{V3}/rooms/{room_id}/send/m.room.message/{txn}", {
        "msgtype": "m.image", "body": f"{CANARY} photo", "url": f"mxc://{SERVER_NAME}/{media_id}"})
    assert resp.code == 200, resp
    return resp.json["event_id"]


def read_bundle(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines()]


def assert_private(path: Path) -> None:
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    for p in path.rglob("*"):
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600), p


async def stored_events(server: TestServer, column: str, value: str) -> dict[str, bytes]:
    rows = await server.hs.store.db.execute("t", f"SELECT event_id, pdu FROM events WHERE {column} = ?", value)
    return {row[0]: bytes(row[1]) for row in rows}


@pytest_twisted.ensureDeferred
async def test_room_export_keeps_ciphertext_sealed(server: TestServer, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Small batches, so a handful of events crosses several of them.
    monkeypatch.setattr(export, "EVENT_BATCH", 4)
    batches: list[int] = []
    store = server.hs.store.export
    real_batch = store.events_batch

    async def counting_batch(**kwargs: Any) -> list[dict[str, Any]]:
        rows = await real_batch(**kwargs)
        batches.append(len(rows))
        return rows

    monkeypatch.setattr(store, "events_batch", counting_batch)

    alice = await server.register("alice")
    bob = await server.register("bob")
    room_id = await create_room(alice, preset="public_chat", name=f"{CANARY} room", topic=f"{CANARY} topic")
    assert (await bob.post(f"{V3}/join/{q(room_id)}", {})).code == 200
    for i in range(6):
        await send(alice if i % 2 else bob, room_id, f"{CANARY} message {i}", f"t{i}")
    media_id = await upload(alice, MEDIA_CANARY * 100)
    await send_image(alice, room_id, media_id, "img")
    unrelated = await upload(bob, b"not referenced by the room")

    progress = io.StringIO()
    result = await export.export_bundle(server.hs, "room", room_id, str(tmp_path / "exports"), actor="cli:test",
                                        progress=progress)
    bundle = Path(result.path)
    assert bundle.parent == tmp_path / "exports" and bundle.is_dir()
    assert not list(bundle.parent.glob("*.partial"))
    assert_private(bundle)
    files = read_bundle(bundle)

    # Ciphertext stays ciphertext: no canary in clear anywhere in the bundle.
    for name, data in files.items():
        assert CANARY.encode() not in data and MEDIA_CANARY not in data, name

    stored = await stored_events(server, "room_id", room_id)
    events = lines(files["events.jsonl"])
    assert len(events) == len(stored) == result.counts["events"]
    assert len(batches) > 2 and max(batches) <= 4  # read in batches, never the whole room at once
    assert [e["stream_ordering"] for e in events] == sorted(e["stream_ordering"] for e in events)
    for event in events:
        blob = base64.b64decode(event["pdu"])
        assert blob == stored[event["event_id"]]  # the stored blob, byte for byte
        assert event["room_id"] == room_id and isinstance(event["contains_url"], bool)
    opened = [server.hs.sealer.open_json(base64.b64decode(e["pdu"])) for e in events]
    assert sum(1 for pdu in opened if CANARY in pdu["content"].get("body", "")) == 7  # really the messages

    room = json.loads(files["room.json"])
    assert room["room"]["room_id"] == room_id and room["room"]["creator"] == alice.user_id
    assert {m["user_id"]: m["membership"] for m in room["memberships"]} == {alice.user_id: "join", bob.user_id: "join"}
    assert {(s["type"], s["state_key"]) for s in room["current_state"]} >= {("m.room.name", ""), ("m.room.topic", "")}

    # The media the room's events point at, as stored (sealed), and nothing else.
    media_path = Path(server.hs.media_repository.content_path(media_id))
    assert files[f"media/{media_id}"] == media_path.read_bytes()
    assert f"media/{unrelated}" not in files
    [media_row] = [row["media"] for row in lines(files["media.jsonl"]) if "media" in row]
    assert media_row["media_id"] == media_id and media_row["user_id"] == alice.user_id
    assert server.hs.sealer.open_str(base64.b64decode(media_row["upload_name"])) == f"{CANARY}.bin"

    metadata = json.loads(files["metadata.json"])
    assert (metadata["format"], metadata["format_version"], metadata["kind"], metadata["target"]) == (
        "piman-export", 1, "room", room_id)
    assert (metadata["server_name"], metadata["exported_by"], metadata["under_legal_hold"]) == (
        SERVER_NAME, "cli:test", False)
    assert metadata["counts"] == result.counts
    assert metadata["counts"]["media"] == metadata["counts"]["media_files"] == 1
    assert metadata["counts"]["members"] == 2
    assert re.search(r"^events +\[#+\] (\d+)/\1 events$", progress.getvalue(), re.MULTILINE), progress.getvalue()

    [entry] = await server.hs.audit_log.entries(limit=10, target=room_id)
    assert (entry.actor, entry.action, entry.outcome) == ("cli:test", "export.room", "ok")
    assert entry.details["bundle"] == result.path and entry.details["counts"]["events"] == len(stored)


@pytest_twisted.ensureDeferred
async def test_user_export_has_their_data_sealed(server: TestServer, tmp_path: Path) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    first = await create_room(alice)
    second = await create_room(bob, preset="public_chat")
    assert (await alice.post(f"{V3}/join/{q(second)}", {})).code == 200
    await send(alice, first, f"{CANARY} one", "a1")
    await send(alice, second, f"{CANARY} two", "a2")
    await send(bob, second, f"{CANARY} from bob", "b1")
    assert (await alice.put(f"{V3}/profile/{q(alice.user_id)}/displayname", {"displayname": f"{CANARY} Alice"})).code == 200
    assert (await alice.put(f"{V3}/user/{q(alice.user_id)}/account_data/org.example.notes",
                            {"text": CANARY})).code == 200
    mine = [await upload(alice, MEDIA_CANARY + b"-1"), await upload(alice, MEDIA_CANARY + b"-2")]
    bobs = await upload(bob, b"bob's file")
    await server.hs.store.holds.place_hold("user", alice.user_id, reason=None, created_by="test", now_ms=1)

    result = await export.export_bundle(server.hs, "user", alice.user_id, str(tmp_path / "out"), actor="cli:test")
    bundle = Path(result.path)
    assert_private(bundle)
    files = read_bundle(bundle)
    for name, data in files.items():
        assert CANARY.encode() not in data and MEDIA_CANARY not in data, name

    stored = await stored_events(server, "sender", alice.user_id)
    events = lines(files["events.jsonl"])
    assert {e["event_id"] for e in events} == set(stored) and len(events) == result.counts["events"]
    assert all(e["sender"] == alice.user_id for e in events)
    assert {e["room_id"] for e in events} == {first, second}

    user = json.loads(files["user.json"])
    assert user["account"]["user_id"] == alice.user_id and "password_hash" not in user["account"]
    assert user["account"]["admin"] is False
    assert [d["device_id"] for d in user["devices"]] == [alice.device_id]
    displayname = [p for p in user["profile"] if p["field"] == "displayname"]
    assert server.hs.sealer.open_json(base64.b64decode(displayname[0]["value"])) == f"{CANARY} Alice"
    assert {m["room_id"] for m in user["memberships"]} == {first, second}
    account_data = lines(files["account_data.jsonl"])
    [notes] = [row for row in account_data if row["data_type"] == "org.example.notes"]
    assert server.hs.sealer.open_json(base64.b64decode(notes["content"])) == {"text": CANARY}

    media_rows = [row["media"] for row in lines(files["media.jsonl"]) if "media" in row]
    assert sorted(row["media_id"] for row in media_rows) == sorted(mine)
    for media_id in mine:
        assert files[f"media/{media_id}"] == Path(server.hs.media_repository.content_path(media_id)).read_bytes()
    assert f"media/{bobs}" not in files

    metadata = json.loads(files["metadata.json"])
    assert metadata["kind"] == "user" and metadata["under_legal_hold"] is True
    counts = metadata["counts"]
    assert (counts["events"], counts["media"], counts["media_files"], counts["devices"]) == (len(stored), 2, 2, 1)
    assert counts["account_data"] == len(account_data) and counts["profile_fields"] == len(user["profile"])
    [entry] = await server.hs.audit_log.entries(limit=10, target=alice.user_id)
    assert (entry.action, entry.outcome) == ("export.user", "ok")


@pytest_twisted.ensureDeferred
async def test_tar_bundle_and_refusals(server: TestServer, tmp_path: Path) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    await send(alice, room_id, f"{CANARY} tarred", "t1")

    result = await export.export_bundle(server.hs, "room", room_id, str(tmp_path), actor="cli:test", tar=True)
    tar_path = Path(result.path)
    assert tar_path.suffix == ".tar" and stat.S_IMODE(tar_path.stat().st_mode) == 0o600
    assert CANARY.encode() not in tar_path.read_bytes()
    with tarfile.open(tar_path) as archive:
        names = archive.getnames()
        metadata = json.load(archive.extractfile(f"{tar_path.stem}/metadata.json"))  # type: ignore[arg-type]
    assert f"{tar_path.stem}/events.jsonl" in names and metadata["counts"]["events"] == result.counts["events"]
    assert [p for p in tmp_path.iterdir() if p.name.startswith("piman-export")] == [tar_path]

    for kind, target, code in (("room", f"!missing:{SERVER_NAME}", 404), ("user", f"@ghost:{SERVER_NAME}", 404),
                               ("room", "missing", 400)):
        with pytest.raises(MatrixError) as caught:
            await export.export_bundle(server.hs, kind, target, str(tmp_path / "never"), actor="cli:test")
        assert caught.value.code == code
    assert not (tmp_path / "never").exists()

    # An output directory that can't be written: a clear error, nothing left behind, audit-logged as failed.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(export.ExportError, match="cannot create the bundle in"):
        await export.export_bundle(server.hs, "room", room_id, str(blocker), actor="cli:test")
    [failed, ok] = await server.hs.audit_log.entries(limit=10, target=room_id)
    assert (failed.action, failed.outcome, ok.outcome) == ("export.room", "failed", "ok")
    assert "cannot create the bundle" in failed.details["error"]


def piman_export(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from homeserver.cli import main; main()", "admin", "export", "--config",
         str(config_path), *args],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )


@pytest_twisted.ensureDeferred
async def test_cli_export(server: TestServer, tmp_path: Path, database_config: dict[str, Any]) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    await send(alice, room_id, f"{CANARY} via cli", "c1")
    config = base_config(tmp_path, database_config)
    config_path = tmp_path / "homeserver.yaml"
    config_path.write_text(yaml.safe_dump(config))

    nowhere = piman_export(config_path, "--room", room_id)
    assert nowhere.returncode == 1
    assert nowhere.stderr.strip() == "piman: No output directory: pass --output DIR or set export_directory in the config."

    out = tmp_path / "by-cli"
    done = piman_export(config_path, "--room", room_id, "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert re.search(r"^events +\[#+\] (\d+)/\1 events$", done.stderr, re.MULTILINE), done.stderr  # the bar
    [bundle] = out.iterdir()
    assert done.stdout.startswith(f"Wrote {bundle} (")
    assert_private(bundle)
    assert CANARY.encode() not in b"".join(read_bundle(bundle).values())
    metadata = json.loads((bundle / "metadata.json").read_text())
    assert metadata["exported_by"].startswith("cli:") and metadata["counts"]["events"] == len(
        await stored_events(server, "room_id", room_id))

    # export_directory from the config is the default.
    configured = tmp_path / "configured"
    config_path.write_text(yaml.safe_dump({**config, "export_directory": str(configured)}))
    by_default = piman_export(config_path, "--user", alice.user_id)
    assert by_default.returncode == 0, by_default.stderr
    [user_bundle] = configured.iterdir()
    assert json.loads((user_bundle / "metadata.json").read_text())["kind"] == "user"
    bad = piman_export(config_path, "--user", "alice")
    assert bad.returncode == 1 and "is not a user ID" in bad.stderr
    actions = [(e.action, e.outcome) for e in await server.hs.audit_log.entries(limit=10)]
    assert actions == [("export.user", "M_INVALID_PARAM"), ("export.user", "ok"), ("export.room", "ok")]
    assert os.listdir(configured) == [user_bundle.name]
