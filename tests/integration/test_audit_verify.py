"""Verifying the admin audit log's hash chain over the admin API and with `piman admin audit`, on
both engines, before and after the database's owner tampers with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_twisted

from tests.integration.harness import TestServer, create_room, q
from tests.integration.test_holds_audit import HOLDS, piman, write_config
from tests.storage.test_audit_chain import drop_guards

AUDIT = "/_piman/admin/v1/audit_log"
VERIFY = f"{AUDIT}/verify"


async def some_admin_actions(server: TestServer) -> tuple[Any, str]:
    admin = await server.register_admin("dpo")
    alice = await server.register("alice")
    room_id = await create_room(alice)
    assert (await admin.post(HOLDS, {"target_type": "room", "target_id": room_id, "reason": "case 12"})).code == 200
    assert (await admin.delete(f"{HOLDS}/room/{q(room_id)}")).code == 200
    assert (await admin.post(HOLDS, {"target_type": "user", "target_id": alice.user_id})).code == 200
    return admin, room_id


@pytest_twisted.ensureDeferred
async def test_verify_over_the_admin_api(server: TestServer) -> None:
    admin, _ = await some_admin_actions(server)
    listed = (await admin.get(AUDIT)).json["entries"]
    assert [e["id"] for e in listed] == [3, 2, 1] and all(len(e["hash"]) == 64 for e in listed)

    ok = await admin.get(f"{VERIFY}?anchor={listed[1]['hash']}")
    assert ok.code == 200, ok
    assert ok.json == {"valid": True, "entries": 3, "head": {"id": 3, "ts": listed[0]["ts"], "hash": listed[0]["hash"]},
                       "problems": [], "more_problems": 0}

    alice = await server.register("bob")
    assert (await alice.get(VERIFY)).code == 403
    assert (await server.client().get(VERIFY)).code == 401
    for bad in ("anchor=abc", f"anchor={'zz' * 32}", f"anchor={listed[0]['hash']}&anchor=12"):
        wrong = await admin.get(f"{VERIFY}?{bad}")
        assert (wrong.code, wrong.json["errcode"]) == (400, "M_INVALID_PARAM"), bad
        assert "is not an audit log hash" in wrong.json["error"]

    db = server.hs.store.db
    await drop_guards(db)
    await db.execute("tamper", "UPDATE admin_audit_log SET target = NULL WHERE id = 2")
    await db.execute("tamper", "DELETE FROM admin_audit_log WHERE id = 1")
    failed = await admin.get(f"{VERIFY}?anchor={listed[2]['hash']}")
    assert failed.code == 200, failed
    assert failed.json["valid"] is False
    assert failed.json["problems"] == [
        "entry #1 missing: deleted from the log",
        "entry #2: edited, its content no longer matches its hash",
        f"anchor {listed[2]['hash']} is not in the chain: the entry it named was deleted or rewritten",
    ]


@pytest_twisted.ensureDeferred
async def test_head_and_verify_from_the_cli(server: TestServer, tmp_path: Path,
                                            database_config: dict[str, Any]) -> None:
    config = write_config(tmp_path, database_config)
    empty = piman(config, "admin", "audit", "head")
    assert empty.returncode == 1 and "the audit log is empty" in empty.stderr

    await some_admin_actions(server)
    head = piman(config, "admin", "audit", "head")
    assert head.returncode == 0, head.stderr
    head_id, head_ts, head_hash = head.stdout.strip().split("\t")
    stored = await server.hs.store.audit_log.head()
    assert (int(head_id), int(head_ts), head_hash) == (3, stored.ts, stored.hash.hex())  # type: ignore[union-attr]

    verified = piman(config, "admin", "audit", "verify", "--expect-head", head_hash)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("audit log OK: 3 entries checked; head #3 (")
    assert verified.stdout.rstrip().endswith(f"{head_hash}, 1 anchor(s) found")
    bad = piman(config, "admin", "audit", "verify", "--anchor", "not-a-hash")
    assert bad.returncode == 1 and bad.stderr.startswith("piman: --anchor: 'not-a-hash' is not an audit log hash")

    db = server.hs.store.db
    await drop_guards(db)
    await db.execute("tamper", "UPDATE admin_audit_log SET actor = 'cli:nobody' WHERE id = 3")
    failed = piman(config, "admin", "audit", "verify", "--anchor", head_hash)
    assert failed.returncode == 1
    lines = failed.stdout.splitlines()
    assert lines[0] == "entry #3: edited, its content no longer matches its hash"
    assert lines[1].startswith("audit log FAILED verification: 3 entries checked; head #3")
    assert len(lines) == 2
