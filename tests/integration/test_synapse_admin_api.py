"""Synapse's user (v2) and room (v1) admin API over real HTTP, on both engines."""

from __future__ import annotations

import pytest_twisted

from tests.integration.harness import SERVER_NAME, V3, TestServer, create_room, q

USERS = "/_synapse/admin/v2/users"
ROOMS = "/_synapse/admin/v1/rooms"



async def login(server: TestServer, user_id: str, password: str) -> int:
    resp = await server.client().post(f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user_id}, "password": password})
    return resp.code


async def audit_actions(server: TestServer, target: str) -> list[tuple[str, str, str]]:
    entries = await server.hs.audit_log.entries(limit=50, target=target)
    return [(e.actor, e.action, e.outcome) for e in reversed(entries)]


@pytest_twisted.ensureDeferred
async def test_non_admin_is_refused_everywhere(server: TestServer) -> None:
    alice = await server.register("alice")
    room_id = await create_room(alice)
    for path in (USERS, f"{USERS}/{q(alice.user_id)}", ROOMS, f"{ROOMS}/{q(room_id)}",
                 f"{ROOMS}/{q(room_id)}/members"):
        resp = await alice.get(path, check_spec=False)
        assert (resp.code, resp.json["errcode"]) == (403, "M_FORBIDDEN"), path
    resp = await alice.put(f"{USERS}/{q('@mallory:' + SERVER_NAME)}", {"password": "pw-mallory-1"}, check_spec=False)
    assert resp.code == 403
    assert await server.hs.store.users.get_user(f"@mallory:{SERVER_NAME}") is None


@pytest_twisted.ensureDeferred
async def test_user_list_paginates_filters_and_sorts(server: TestServer) -> None:
    admin = await server.register_admin("root")
    for name in ("bob", "carol", "dave", "erin"):
        await server.register(name)
    await server.hs.account_handler.deactivate(f"@erin:{SERVER_NAME}")

    first = await admin.get(f"{USERS}?limit=2", check_spec=False)
    assert first.code == 200, first
    assert first.json["total"] == 4  # erin is deactivated: hidden by default
    assert [u["name"] for u in first.json["users"]] == [f"@bob:{SERVER_NAME}", f"@carol:{SERVER_NAME}"]
    second = await admin.get(f"{USERS}?limit=2&from={first.json['next_token']}", check_spec=False)
    assert [u["name"] for u in second.json["users"]] == [f"@dave:{SERVER_NAME}", f"@root:{SERVER_NAME}"]
    assert "next_token" not in second.json
    root = second.json["users"][1]
    assert (root["admin"], root["deactivated"], root["erased"], root["is_guest"]) == (True, False, False, False)
    assert isinstance(root["creation_ts"], int)

    everyone = await admin.get(f"{USERS}?deactivated=true&dir=b", check_spec=False)
    assert [u["name"].split(":")[0] for u in everyone.json["users"]] == ["@root", "@erin", "@dave", "@carol", "@bob"]
    assert everyone.json["total"] == 5
    named = await admin.get(f"{USERS}?name=AR", check_spec=False)
    assert [u["name"] for u in named.json["users"]] == [f"@carol:{SERVER_NAME}"]
    bad = await admin.get(f"{USERS}?order_by=displayname", check_spec=False)
    assert (bad.code, bad.json["errcode"]) == (400, "M_INVALID_PARAM")


@pytest_twisted.ensureDeferred
async def test_create_modify_deactivate_and_audit(server: TestServer) -> None:
    admin = await server.register_admin("root")
    frank = f"@frank:{SERVER_NAME}"
    missing = await admin.get(f"{USERS}/{q(frank)}", check_spec=False)
    assert (missing.code, missing.json["errcode"]) == (404, "M_NOT_FOUND")

    created = await admin.put(f"{USERS}/{q(frank)}", {"password": "first-pass-1", "displayname": "Frank"},
                              check_spec=False)
    assert created.code == 201, created
    assert (created.json["name"], created.json["displayname"], created.json["admin"]) == (frank, "Frank", False)
    assert created.json["threepids"] == []
    assert await login(server, frank, "first-pass-1") == 200

    changed = await admin.put(f"{USERS}/{q(frank)}", {"password": "second-pass-2", "admin": True}, check_spec=False)
    assert changed.code == 200, changed
    assert changed.json["admin"] is True
    assert await login(server, frank, "first-pass-1") == 403
    assert await login(server, frank, "second-pass-2") == 200
    details = await admin.get(f"{USERS}/{q(frank)}", check_spec=False)
    assert (details.json["displayname"], details.json["admin"], details.json["deactivated"]) == ("Frank", True, False)

    weak = await admin.put(f"{USERS}/{q(frank)}", {"password": "x" * 600, "admin": False}, check_spec=False)
    assert weak.code == 400
    assert (await server.hs.store.users.get_user(frank)).admin is True  # nothing half-written

    gone = await admin.put(f"{USERS}/{q(frank)}", {"deactivated": True}, check_spec=False)
    assert (gone.code, gone.json["deactivated"]) == (200, True)
    assert await login(server, frank, "second-pass-2") == 403
    no_password = await admin.put(f"{USERS}/{q(frank)}", {"deactivated": False}, check_spec=False)
    assert (no_password.code, no_password.json["errcode"]) == (400, "M_MISSING_PARAM")
    back = await admin.put(f"{USERS}/{q(frank)}", {"deactivated": False, "password": "third-pass-3"},
                           check_spec=False)
    assert (back.code, back.json["deactivated"]) == (200, False)
    assert await login(server, frank, "third-pass-3") == 200

    assert await audit_actions(server, frank) == [
        (admin.user_id, "user.create", "ok"), (admin.user_id, "user.modify", "ok"),
        (admin.user_id, "user.modify", "ok"), (admin.user_id, "user.modify", "ok")]
    entries = await server.hs.audit_log.entries(limit=1, target=frank)
    assert entries[0].details["changed"] == ["reactivated", "password"]
    assert "third-pass-3" not in repr([e.details for e in await server.hs.audit_log.entries(limit=50)])


@pytest_twisted.ensureDeferred
async def test_registration_rules_and_erased_tombstone(server: TestServer) -> None:
    admin = await server.register_admin("root")
    bad = await admin.put(f"{USERS}/{q('@Bad Name:' + SERVER_NAME)}", {"password": "pw-bad-name-1"},
                          check_spec=False)
    assert (bad.code, bad.json["errcode"]) == (400, "M_INVALID_USERNAME")
    remote = await admin.put(f"{USERS}/{q('@someone:elsewhere.example')}", {}, check_spec=False)
    assert remote.code == 400

    grace = await server.register("grace")
    erased = await admin.post(f"/_synapse/admin/v1/deactivate/{q(grace.user_id)}", {"erase": True},
                              check_spec=False)
    assert erased.code == 200, erased
    listed = await admin.get(f"{USERS}?deactivated=true&name=grace", check_spec=False)
    assert [(u["deactivated"], u["erased"]) for u in listed.json["users"]] == [(True, True)]

    revive = await admin.put(f"{USERS}/{q(grace.user_id)}", {"deactivated": False, "password": "pw-grace-22"},
                             check_spec=False)
    assert (revive.code, revive.json["errcode"]) == (400, "M_FORBIDDEN")
    assert "erased" in revive.json["error"]
    user = await server.hs.store.users.get_user(grace.user_id)
    assert (user.deactivated, user.password_hash) == (True, None)
    assert (admin.user_id, "user.modify", "M_FORBIDDEN") in await audit_actions(server, grace.user_id)

    # Not even under another case: the ID stays retired.
    again = await admin.put(f"{USERS}/{q('@GRACE:' + SERVER_NAME)}", {"password": "pw-grace-22"}, check_spec=False)
    assert again.code == 400


@pytest_twisted.ensureDeferred
async def test_rooms_list_details_and_members(server: TestServer) -> None:
    admin = await server.register_admin("root")
    alice = await server.register("alice")
    bob = await server.register("bob")
    big = await create_room(alice, name="Zebra crossing", preset="public_chat")
    assert (await bob.post(f"{V3}/join/{q(big)}", {})).code == 200
    small = await create_room(alice, name="Aardvark den")
    unnamed = await create_room(bob)

    listed = await admin.get(ROOMS, check_spec=False)
    assert listed.code == 200, listed
    assert listed.json["total_rooms"] == 3 and listed.json["offset"] == 0
    assert [r["room_id"] for r in listed.json["rooms"]] == [small, big, unnamed]  # by name, unnamed last
    zebra = listed.json["rooms"][1]
    assert (zebra["name"], zebra["joined_members"], zebra["joined_local_members"], zebra["creator"]) == (
        "Zebra crossing", 2, 2, alice.user_id)
    assert (zebra["join_rules"], zebra["federatable"], zebra["public"]) == ("public", True, False)
    assert zebra["state_events"] == await _state_count(server, big)

    page = await admin.get(f"{ROOMS}?order_by=joined_members&limit=1", check_spec=False)
    assert [r["room_id"] for r in page.json["rooms"]] == [big]
    assert page.json["next_batch"] == 1
    rest = await admin.get(f"{ROOMS}?order_by=joined_members&limit=5&from=1", check_spec=False)
    assert sorted(r["room_id"] for r in rest.json["rooms"]) == sorted([small, unnamed])
    assert "next_batch" not in rest.json and rest.json["prev_batch"] == 0

    found = await admin.get(f"{ROOMS}?search_term=aardV", check_spec=False)
    assert [r["room_id"] for r in found.json["rooms"]] == [small] and found.json["total_rooms"] == 1

    details = await admin.get(f"{ROOMS}/{q(big)}", check_spec=False)
    assert (details.json["name"], details.json["joined_members"], details.json["version"]) == (
        "Zebra crossing", 2, zebra["version"])
    members = await admin.get(f"{ROOMS}/{q(big)}/members", check_spec=False)
    assert members.json == {"members": sorted([alice.user_id, bob.user_id]), "total": 2}
    unknown = await admin.get(f"{ROOMS}/{q('!nope:' + SERVER_NAME)}", check_spec=False)
    assert (unknown.code, unknown.json["errcode"]) == (404, "M_NOT_FOUND")


async def _state_count(server: TestServer, room_id: str) -> int:
    return len(await server.hs.store.state.get_current_state(room_id))
