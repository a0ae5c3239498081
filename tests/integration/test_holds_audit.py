"""Legal holds (admin API and CLI) and the append-only admin audit log, on both engines."""

from __future__ import annotations

import getpass
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import yaml

from storage.sealed_columns import SEALED_TABLES
from storage.sealing import add_key_to_file, key_id_of, load_sealer
from synapse_compat.admin_register import registration_mac
from tests.integration.harness import SERVER_NAME, SHARED_SECRET, TestServer, base_config, create_room, q

HOLDS = "/_piman/admin/v1/holds"
AUDIT = "/_piman/admin/v1/audit_log"
CANARY = "case-canary-7f3a9c"



def cli_actor() -> str:
    return f"cli:{getpass.getuser()}"


def piman(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from homeserver.cli import main; main()", *args, "--config", str(config_path)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )


def write_config(tmp_path: Path, database_config: dict[str, Any]) -> Path:
    path = tmp_path / "homeserver.yaml"
    path.write_text(yaml.safe_dump(base_config(tmp_path, database_config)))
    return path


@pytest_twisted.ensureDeferred
async def test_room_hold_placed_listed_and_released(server: TestServer) -> None:
    admin = await server.register_admin("dpo")
    alice = await server.register("alice")
    room_id = await create_room(alice)

    placed = await admin.post(HOLDS, {"target_type": "room", "target_id": room_id, "reason": CANARY})
    assert placed.code == 200, placed
    hold = placed.json
    assert (hold["target_type"], hold["target_id"], hold["reason"], hold["created_by"], hold["active"]) == (
        "room", room_id, CANARY, admin.user_id, True)
    assert await server.hs.store.holds.held_rooms() == {room_id}
    assert await server.hs.store.holds.is_room_held(room_id)
    # Placing it again is idempotent: the same active hold.
    again = await admin.post(HOLDS, {"target_type": "room", "target_id": room_id})
    assert again.code == 200 and again.json["id"] == hold["id"] and again.json["reason"] == CANARY

    listed = await admin.get(HOLDS)
    assert [h["id"] for h in listed.json["holds"]] == [hold["id"]]

    released = await admin.delete(f"{HOLDS}/room/{q(room_id)}")
    assert released.code == 200, released
    assert released.json["active"] is False and released.json["released_by"] == admin.user_id
    assert released.json["released_ts"] >= hold["created_ts"]
    assert await server.hs.store.holds.held_rooms() == set()
    assert (await admin.get(HOLDS)).json["holds"] == []
    with_released = await admin.get(f"{HOLDS}?include_released=true")
    assert [(h["id"], h["active"]) for h in with_released.json["holds"]] == [(hold["id"], False)]
    # Nothing left to release.
    gone = await admin.delete(f"{HOLDS}/room/{q(room_id)}")
    assert (gone.code, gone.json["errcode"]) == (404, "M_NOT_FOUND")
    # A new hold on the same room after release is a new hold.
    renewed = await admin.post(HOLDS, {"target_type": "room", "target_id": room_id})
    assert renewed.code == 200 and renewed.json["id"] != hold["id"]


@pytest_twisted.ensureDeferred
async def test_user_hold_and_bad_requests(server: TestServer) -> None:
    admin = await server.register_admin("dpo")
    alice = await server.register("alice")

    placed = await admin.post(HOLDS, {"target_type": "user", "target_id": alice.user_id})
    assert placed.code == 200, placed
    assert placed.json["reason"] is None
    assert await server.hs.store.holds.is_user_held(alice.user_id)
    assert await server.hs.store.holds.held_users() == {alice.user_id}
    # A remote user's events in our rooms can be held too.
    remote = await admin.post(HOLDS, {"target_type": "user", "target_id": "@carol:elsewhere.example"})
    assert remote.code == 200, remote

    cases = [
        ({"target_type": "room", "target_id": f"!nosuchroom:{SERVER_NAME}"}, 404, "M_NOT_FOUND"),
        ({"target_type": "user", "target_id": f"@nobody:{SERVER_NAME}"}, 404, "M_NOT_FOUND"),
        ({"target_type": "room", "target_id": "not-a-room"}, 400, "M_INVALID_PARAM"),
        ({"target_type": "user", "target_id": "alice"}, 400, "M_INVALID_PARAM"),
        ({"target_type": "server", "target_id": SERVER_NAME}, 400, "M_INVALID_PARAM"),
        ({"target_type": "room"}, 400, "M_MISSING_PARAM"),
        ({"target_type": "room", "target_id": 5}, 400, "M_BAD_JSON"),
    ]
    for body, code, errcode in cases:
        resp = await admin.post(HOLDS, body)
        assert (resp.code, resp.json["errcode"]) == (code, errcode), (body, resp)
    bad_type = await admin.delete(f"{HOLDS}/server/{SERVER_NAME}")
    assert (bad_type.code, bad_type.json["errcode"]) == (400, "M_INVALID_PARAM")

    # Non-admins get 403, no token 401; nothing changes.
    for method, path, body in (("POST", HOLDS, {"target_type": "user", "target_id": alice.user_id}),
                               ("GET", HOLDS, None), ("DELETE", f"{HOLDS}/user/{q(alice.user_id)}", None),
                               ("GET", AUDIT, None)):
        resp = await alice.request(method, path, body)
        assert (resp.code, resp.json["errcode"]) == (403, "M_FORBIDDEN"), (method, path, resp)
        anonymous = await server.client().request(method, path, body)
        assert anonymous.code == 401, (method, path, anonymous)
    assert await server.hs.store.holds.is_user_held(alice.user_id)


@pytest_twisted.ensureDeferred
async def test_audit_log_records_who_what_when_and_outcome(server: TestServer) -> None:
    admin = await server.register_admin("dpo")
    alice = await server.register("alice")
    room_id = await create_room(alice)
    before = server.hs.clock.time_msec()

    assert (await admin.post(HOLDS, {"target_type": "room", "target_id": room_id, "reason": CANARY})).code == 200
    assert (await admin.post(HOLDS, {"target_type": "room", "target_id": f"!missing:{SERVER_NAME}"})).code == 404
    assert (await admin.delete(f"{HOLDS}/room/{q(room_id)}")).code == 200

    resp = await admin.get(AUDIT)
    assert resp.code == 200, resp
    entries = resp.json["entries"]
    assert "next_token" not in resp.json
    # Newest first.
    assert [(e["actor"], e["action"], e["target"], e["outcome"]) for e in entries] == [
        (admin.user_id, "hold.release", room_id, "ok"),
        (admin.user_id, "hold.place", f"!missing:{SERVER_NAME}", "M_NOT_FOUND"),
        (admin.user_id, "hold.place", room_id, "ok"),
    ]
    assert all(e["ts"] >= before for e in entries)
    assert entries[2]["details"]["reason"] == CANARY
    assert "Unknown room" in entries[1]["details"]["error"]

    # Pages of one, following next_token, give the same entries.
    paged, token = [], None
    while True:
        page = await admin.get(f"{AUDIT}?limit=1" + (f"&from={token}" if token else ""))
        assert page.code == 200, page
        paged.extend(page.json["entries"])
        token = page.json.get("next_token")
        if token is None:
            break
    assert [e["id"] for e in paged] == [e["id"] for e in entries]
    by_target = await admin.get(f"{AUDIT}?target={q(room_id)}")
    assert [e["action"] for e in by_target.json["entries"]] == ["hold.release", "hold.place"]
    for bad in ("limit=0", "limit=5000", "limit=x", "from=-1"):
        wrong = await admin.get(f"{AUDIT}?{bad}")
        assert (wrong.code, wrong.json["errcode"]) == (400, "M_INVALID_PARAM"), bad


@pytest_twisted.ensureDeferred
async def test_audit_log_is_append_only_and_sealed(server: TestServer) -> None:
    admin = await server.register_admin("dpo")
    alice = await server.register("alice")
    room_id = await create_room(alice)
    assert (await admin.post(HOLDS, {"target_type": "room", "target_id": room_id, "reason": CANARY})).code == 200
    db = server.hs.store.db
    before = await db.execute("audit_rows", "SELECT id, ts, actor, action, target, outcome, details FROM admin_audit_log")
    assert len(before) == 1

    statements = ["UPDATE admin_audit_log SET actor = 'someone else'",
                  "UPDATE admin_audit_log SET details = NULL WHERE id = 1",
                  "DELETE FROM admin_audit_log",
                  "DELETE FROM admin_audit_log WHERE id = 1"]
    if db.engine.name == "psycopg2":
        statements.append("TRUNCATE admin_audit_log")
    for sql in statements:
        with pytest.raises(Exception, match="append-only") as refused:
            await db.execute("tamper", sql)
        if db.engine.name == "psycopg2":
            assert f"{sql.split()[0]} refused" in str(refused.value)
    assert await db.execute("audit_rows", "SELECT id, ts, actor, action, target, outcome, details FROM admin_audit_log") \
        == before
    # The store offers no way to change an entry.
    assert not [name for name in dir(server.hs.store.audit_log) if name.startswith(("update", "delete", "remove"))]
    # Reasons and details are sealed: the canary is in neither table in clear.
    for table in ("admin_audit_log", "legal_holds"):
        rows = await db.execute("raw", f"SELECT * FROM {table}")
        assert rows and CANARY.encode() not in repr(rows).encode()
        assert all(CANARY.encode() not in bytes(v) for row in rows for v in row if isinstance(v, (bytes, memoryview)))
    # Holds, unlike the log, can be released (their row is updated): the guard is the log's only.
    assert (await admin.delete(f"{HOLDS}/room/{q(room_id)}")).code == 200


@pytest_twisted.ensureDeferred
async def test_key_rotation_may_reseal_the_log_and_nothing_else(server: TestServer) -> None:
    admin = await server.register_admin("dpo")
    alice = await server.register("alice")
    room_id = await create_room(alice)
    assert (await admin.post(HOLDS, {"target_type": "room", "target_id": room_id, "reason": CANARY})).code == 200
    store, db = server.hs.store, server.hs.store.db
    [(entry_id, old_blob)] = await db.execute("t", "SELECT id, details FROM admin_audit_log")
    add_key_to_file(server.hs.config.data_key_path)
    new = load_sealer(server.hs.config.data_key_path)
    await store.sealing_keys.start_reseal(new.current_key_id, 0)

    # Even while a re-seal pass is under way, clear columns can't change and nothing can be deleted.
    for sql in ("UPDATE admin_audit_log SET actor = 'someone else'", "UPDATE admin_audit_log SET details = NULL",
                "DELETE FROM admin_audit_log"):
        with pytest.raises(Exception, match="append-only"):
            await db.execute("tamper", sql)
    [audit_table] = [t for t in SEALED_TABLES if t.table == "admin_audit_log"]
    progress = await store.sealing_keys.reseal_batch(audit_table, new)
    assert progress.finished and progress.resealed == 1
    [(new_blob,)] = await db.execute("t", "SELECT details FROM admin_audit_log WHERE id = ?", entry_id)
    assert key_id_of(bytes(new_blob)) == new.current_key_id != key_id_of(bytes(old_blob))
    assert new.open_json(bytes(new_blob)) == server.hs.sealer.open_json(bytes(old_blob))
    # The pass is over: the sealed column is frozen again.
    with pytest.raises(Exception, match="append-only"):
        await db.execute("tamper", "UPDATE admin_audit_log SET details = ?", bytes(old_blob))


@pytest_twisted.ensureDeferred
async def test_shared_secret_registration_is_audited(server: TestServer) -> None:
    client = server.client()
    path = "/_synapse/admin/v1/register"
    nonce = (await client.get(path)).json["nonce"]
    mac = registration_mac(SHARED_SECRET, nonce, "root", "pw-root-123", True)
    resp = await client.post(path, {"nonce": nonce, "username": "root", "password": "pw-root-123", "admin": True,
                                    "mac": mac})
    assert resp.code == 200, resp
    [entry] = await server.hs.audit_log.entries(limit=10)
    assert (entry.actor, entry.action, entry.target, entry.outcome) == (
        "shared_secret", "user.register", f"@root:{SERVER_NAME}", "ok")
    assert entry.details["admin"] is True and entry.details["client_ip"] == "127.0.0.1"


@pytest_twisted.ensureDeferred
async def test_cli_holds_audit_and_existing_admin_commands(server: TestServer, tmp_path: Path,
                                                           database_config: dict[str, Any]) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    config = write_config(tmp_path, database_config)

    placed = piman(config, "admin", "hold", "place", "--room", room_id, "--reason", CANARY)
    assert placed.returncode == 0, placed.stderr
    assert await server.hs.store.holds.held_rooms() == {room_id}
    user_hold = piman(config, "admin", "hold", "place", "--user", alice.user_id)
    assert user_hold.returncode == 0, user_hold.stderr
    listed = piman(config, "admin", "hold", "list")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        ("room", room_id, "active", cli_actor()), ("user", alice.user_id, "active", cli_actor())]
    assert rows[0][6] == CANARY

    unknown = piman(config, "admin", "hold", "place", "--room", f"!nope:{SERVER_NAME}")
    assert unknown.returncode == 1 and unknown.stderr.strip() == f"piman: Unknown room !nope:{SERVER_NAME}."
    malformed = piman(config, "admin", "hold", "place", "--user", "alice")
    assert malformed.returncode == 1 and "is not a user ID" in malformed.stderr

    released = piman(config, "admin", "hold", "release", "--room", room_id)
    assert released.returncode == 0, released.stderr
    assert await server.hs.store.holds.held_rooms() == set()
    again = piman(config, "admin", "hold", "release", "--room", room_id)
    assert again.returncode == 1 and "no active hold" in again.stderr
    with_released = piman(config, "admin", "hold", "list", "--include-released")
    assert with_released.stdout.count("released by") == 1

    # The admin commands that already existed are audit-logged too.
    registered = piman(config, "register", "--user", "ops", "--password", "pw-ops-12345", "--admin")
    assert registered.returncode == 0, registered.stderr
    deleted = piman(config, "admin", "media", "delete", "--user", alice.user_id)
    assert deleted.returncode == 0, deleted.stderr

    audit = piman(config, "admin", "audit", "list", "--limit", "20")
    assert audit.returncode == 0, audit.stderr
    entries = [line.split("\t") for line in audit.stdout.splitlines()]
    assert [(e[2], e[3], e[4], e[5]) for e in entries] == [
        (cli_actor(), "media.delete", alice.user_id, "ok"),
        (cli_actor(), "user.register", f"@ops:{SERVER_NAME}", "ok"),
        (cli_actor(), "hold.release", room_id, "M_NOT_FOUND"),
        (cli_actor(), "hold.release", room_id, "ok"),
        (cli_actor(), "hold.place", "alice", "M_INVALID_PARAM"),
        (cli_actor(), "hold.place", f"!nope:{SERVER_NAME}", "M_NOT_FOUND"),
        (cli_actor(), "hold.place", alice.user_id, "ok"),
        (cli_actor(), "hold.place", room_id, "ok"),
    ]
    assert '"admin": true' in entries[1][6]
    latest = piman(config, "admin", "audit", "list", "--limit", "1")
    assert len(latest.stdout.splitlines()) == 1 and "media.delete" in latest.stdout
    for_room = piman(config, "admin", "audit", "list", "--target", room_id)
    assert len(for_room.stdout.splitlines()) == 3
