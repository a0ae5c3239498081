"""End-to-end keys over real HTTP: upload, query, claim (also concurrent), changes, device lists in
/sync, cross-signing keys and signatures. Keys are real ed25519 keys signed with signedjson."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest_twisted
from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json
from twisted.internet import defer

from tests.integration.harness import V3, Client, TestServer, create_room, q

PASSWORD = "correct horse battery"


def public(key: Any) -> str:
    return encode_verify_key_base64(get_verify_key(key))


def device_signing_key(device_id: str) -> Any:
    return generate_signing_key(device_id)


def cross_signing_key() -> Any:
    """A signing key whose key ID is `ed25519:<its public key>`, as cross-signing keys are named."""
    key = generate_signing_key("unnamed")
    key.version = public(key)
    return key


def device_keys(client: Client, key: Any) -> dict[str, Any]:
    assert client.user_id and client.device_id
    obj = {
        "user_id": client.user_id,
        "device_id": client.device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {f"curve25519:{client.device_id}": f"curve-{client.device_id}",
                 f"ed25519:{client.device_id}": public(key)},
    }
    return sign_json(obj, client.user_id, key)


def one_time_keys(client: Client, key: Any, count: int, prefix: str = "AAAA") -> dict[str, Any]:
    assert client.user_id
    return {f"signed_curve25519:{prefix}{i}": sign_json({"key": f"otk-{prefix}{i}"}, client.user_id, key)
            for i in range(count)}


def cs_key(client: Client, usage: str, key: Any, signer: Any | None = None) -> dict[str, Any]:
    assert client.user_id
    obj = {"user_id": client.user_id, "usage": [usage], "keys": {f"ed25519:{public(key)}": public(key)}}
    return sign_json(obj, client.user_id, signer) if signer is not None else obj


def password_auth(client: Client, session: str | None = None) -> dict[str, Any]:
    auth = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": client.user_id},
            "password": PASSWORD}
    return {**auth, "session": session} if session else auth


async def login(server: TestServer, user: Client) -> Client:
    resp = await server.client().post(f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user.user_id}, "password": PASSWORD})
    assert resp.code == 200, resp
    client = server.client(resp.json["access_token"])
    client.user_id, client.device_id = resp.json["user_id"], resp.json["device_id"]
    return client


async def upload(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post(f"{V3}/keys/upload", body)
    assert resp.code == 200, resp
    return resp.json


async def query(client: Client, *users: str) -> dict[str, Any]:
    resp = await client.post(f"{V3}/keys/query", {"device_keys": {u: [] for u in users}})
    assert resp.code == 200, resp
    return resp.json


async def sync(client: Client, since: str | None = None, timeout: int = 0) -> dict[str, Any]:
    path = f"{V3}/sync?timeout={timeout}" + (f"&since={since}" if since else "")
    resp = await client.get(path)
    assert resp.code == 200, resp
    return resp.json


async def shared_room(owner: Client, *others: Client) -> str:
    room_id = await create_room(owner, preset="public_chat")
    for other in others:
        assert (await other.post(f"{V3}/join/{q(room_id)}", {})).code == 200
    return room_id


@pytest_twisted.ensureDeferred
async def test_upload_then_query(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    key = device_signing_key(alice.device_id)
    assert (await alice.put(f"{V3}/devices/{alice.device_id}", {"display_name": "Alice's phone"})).code == 200
    counts = await upload(alice, {"device_keys": device_keys(alice, key), "one_time_keys": one_time_keys(alice, key, 5),
                                  "fallback_keys": {"signed_curve25519:FB1": sign_json(
                                      {"key": "fallback", "fallback": True}, alice.user_id, key)}})
    assert counts == {"one_time_key_counts": {"signed_curve25519": 5}}
    # Uploading the same keys again changes nothing.
    again = await upload(alice, {"one_time_keys": one_time_keys(alice, key, 5)})
    assert again["one_time_key_counts"] == {"signed_curve25519": 5}
    assert (await upload(bob, {}))["one_time_key_counts"] == {"signed_curve25519": 0}

    result = await query(bob, alice.user_id, bob.user_id, "@nobody:test.local", "@carol:other.example")
    device = result["device_keys"][alice.user_id][alice.device_id]
    assert device["keys"][f"ed25519:{alice.device_id}"] == public(key)
    assert device["signatures"] == device_keys(alice, key)["signatures"]
    assert device["unsigned"] == {"device_display_name": "Alice's phone"}
    assert result["device_keys"][bob.user_id] == {}  # known user without keys
    assert "@nobody:test.local" not in result["device_keys"]
    assert "@carol:other.example" not in result["device_keys"]
    assert set(result["failures"]) == {"other.example"}
    # Asking for one device by ID, and for an unknown one.
    resp = await bob.post(f"{V3}/keys/query", {"device_keys": {alice.user_id: ["NOPE", alice.device_id]}})
    assert list(resp.json["device_keys"][alice.user_id]) == [alice.device_id]


@pytest_twisted.ensureDeferred
async def test_upload_errors(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    key = device_signing_key(alice.device_id)

    async def rejected(body: dict[str, Any]) -> tuple[int, str]:
        resp = await alice.post(f"{V3}/keys/upload", body)
        return resp.code, resp.json["errcode"]

    wrong_user = device_keys(alice, key) | {"user_id": bob.user_id}
    assert await rejected({"device_keys": sign_json(
        {k: v for k, v in wrong_user.items() if k != "signatures"}, bob.user_id, key)}) == (400, "M_INVALID_PARAM")
    wrong_device = {k: v for k, v in device_keys(alice, key).items() if k != "signatures"} | {"device_id": "OTHER"}
    assert await rejected({"device_keys": sign_json(wrong_device, alice.user_id, key)}) == (400, "M_INVALID_PARAM")
    forged = device_keys(alice, key)
    forged["keys"][f"ed25519:{alice.device_id}"] = public(device_signing_key(alice.device_id))
    assert await rejected({"device_keys": forged}) == (400, "M_INVALID_SIGNATURE")
    tampered = device_keys(alice, key) | {"algorithms": ["m.olm.v1.curve25519-aes-sha2"]}
    assert await rejected({"device_keys": tampered}) == (400, "M_INVALID_SIGNATURE")
    unsigned = {k: v for k, v in device_keys(alice, key).items() if k != "signatures"}
    assert await rejected({"device_keys": unsigned}) == (400, "M_INVALID_SIGNATURE")
    no_signing_key = device_keys(alice, key)
    del no_signing_key["keys"][f"ed25519:{alice.device_id}"]
    assert await rejected({"device_keys": no_signing_key}) == (400, "M_INVALID_PARAM")
    assert await rejected({"one_time_keys": {"no_colon": "x"}}) == (400, "M_INVALID_PARAM")
    assert await rejected({"one_time_keys": {"curve25519:A": 5}}) == (400, "M_BAD_JSON")
    assert await rejected({"fallback_keys": {"signed_curve25519:A": {"key": "a"},
                                             "signed_curve25519:B": {"key": "b"}}}) == (400, "M_INVALID_PARAM")
    await upload(alice, {"one_time_keys": {"curve25519:K1": "first"}})
    assert await rejected({"one_time_keys": {"curve25519:K1": "second"}}) == (400, "M_INVALID_PARAM")
    # Nothing of the refused uploads was stored.
    assert (await query(bob, alice.user_id))["device_keys"][alice.user_id] == {}
    assert (await upload(alice, {}))["one_time_key_counts"] == {"signed_curve25519": 0, "curve25519": 1}


@pytest_twisted.ensureDeferred
async def test_concurrent_claims_hand_out_each_key_once_then_the_fallback(server: TestServer) -> None:
    alice = await server.register("alice")
    claimers = [await server.register(f"claimer{i}") for i in range(4)]
    key = device_signing_key(alice.device_id)
    fallback = sign_json({"key": "fallback", "fallback": True}, alice.user_id, key)
    await upload(alice, {"device_keys": device_keys(alice, key), "one_time_keys": one_time_keys(alice, key, 10),
                         "fallback_keys": {"signed_curve25519:FB": fallback}})
    assert (await sync(alice))["device_unused_fallback_key_types"] == ["signed_curve25519"]

    async def claim(client: Client) -> dict[str, Any]:
        resp = await client.post(f"{V3}/keys/claim",
                                 {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}})
        assert resp.code == 200, resp
        return resp.json["one_time_keys"][alice.user_id][alice.device_id]

    results = await defer.gatherResults(
        [defer.ensureDeferred(claim(claimers[i % len(claimers)])) for i in range(20)], consumeErrors=True)
    claimed = [key_id for result in results for key_id in result]
    one_time = [k for k in claimed if k != "signed_curve25519:FB"]
    assert sorted(one_time) == sorted(f"signed_curve25519:AAAA{i}" for i in range(10))  # each exactly once
    assert claimed.count("signed_curve25519:FB") == 10
    assert all(r.get("signed_curve25519:FB", fallback) == fallback for r in results)

    after = await sync(alice)
    assert after["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert after["device_unused_fallback_key_types"] == []
    # A new fallback key is unused again; claims for unknown devices and other servers.
    await upload(alice, {"fallback_keys": {"signed_curve25519:FB2": fallback}})
    assert (await sync(alice))["device_unused_fallback_key_types"] == ["signed_curve25519"]
    resp = await claimers[0].post(f"{V3}/keys/claim", {"one_time_keys": {
        alice.user_id: {"NOPE": "signed_curve25519"}, "@x:other.example": {"D": "signed_curve25519"}}})
    assert resp.code == 200 and resp.json["one_time_keys"] == {} and set(resp.json["failures"]) == {"other.example"}


@pytest_twisted.ensureDeferred
async def test_device_lists_in_sync_and_keys_changes(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    carol = await server.register("carol")
    await shared_room(alice, bob)
    since = (await sync(bob))["next_batch"]

    # A long-polling sync of bob's wakes when alice uploads device keys.
    started = time.monotonic()
    waiting = defer.ensureDeferred(sync(bob, since, timeout=10_000))
    await upload(alice, {"device_keys": device_keys(alice, device_signing_key(alice.device_id))})
    woken = await waiting
    assert time.monotonic() - started < 5
    assert woken["device_lists"]["changed"] == [alice.user_id]
    assert woken["device_one_time_keys_count"] == {"signed_curve25519": 0}
    changes = await bob.get(f"{V3}/keys/changes?from={since}&to={woken['next_batch']}")
    assert changes.json == {"changed": [alice.user_id], "left": []}
    # carol shares no room with bob: her keys are none of his business.
    since = woken["next_batch"]
    await upload(carol, {"device_keys": device_keys(carol, device_signing_key(carol.device_id))})
    assert "device_lists" not in await sync(bob, since)

    # A second device of alice's, with keys, then deleted: bob hears of both.
    phone = await login(server, alice)
    await upload(phone, {"device_keys": device_keys(phone, device_signing_key(phone.device_id))})
    after_upload = await sync(bob, since)
    assert after_upload["device_lists"]["changed"] == [alice.user_id]
    assert phone.device_id in (await query(bob, alice.user_id))["device_keys"][alice.user_id]
    since = after_upload["next_batch"]
    first = await alice.delete(f"{V3}/devices/{phone.device_id}", {})
    assert first.code == 401
    resp = await alice.delete(f"{V3}/devices/{phone.device_id}", {"auth": password_auth(alice, first.json["session"])})
    assert resp.code == 200, resp
    after_delete = await sync(bob, since)
    assert after_delete["device_lists"]["changed"] == [alice.user_id]
    assert list((await query(bob, alice.user_id))["device_keys"][alice.user_id]) == [alice.device_id]
    since = after_delete["next_batch"]
    # Logging out deletes a device with its keys too.
    phone2 = await login(server, alice)
    await upload(phone2, {"device_keys": device_keys(phone2, device_signing_key(phone2.device_id))})
    since = (await sync(bob, since))["next_batch"]
    assert (await phone2.post(f"{V3}/logout", {})).code == 200
    assert (await sync(bob, since))["device_lists"]["changed"] == [alice.user_id]
    assert list((await query(bob, alice.user_id))["device_keys"][alice.user_id]) == [alice.device_id]


@pytest_twisted.ensureDeferred
async def test_device_lists_joined_and_left(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    carol = await server.register("carol")
    room_id = await shared_room(alice, bob)
    other_room = await shared_room(alice, bob)
    since = (await sync(bob))["next_batch"]
    # carol joins a room of bob's: bob must fetch her keys.
    assert (await carol.post(f"{V3}/join/{q(room_id)}", {})).code == 200
    joined = await sync(bob, since)
    assert joined["device_lists"] == {"changed": [carol.user_id], "left": []}
    since = joined["next_batch"]
    # A message is no membership change.
    await alice.put(f"{V3}/rooms/{q(room_id)}/send/m.room.message/1", {"msgtype": "m.text", "body": "hi"})
    assert "device_lists" not in await sync(bob, since)
    # carol leaves: she shares no room with bob any more.
    assert (await carol.post(f"{V3}/rooms/{q(room_id)}/leave", {})).code == 200
    gone = await sync(bob, since)
    assert gone["device_lists"] == {"changed": [], "left": [carol.user_id]}
    since = gone["next_batch"]
    # bob leaves one of two rooms he shares with alice: she is still there; the other, and she is gone.
    assert (await bob.post(f"{V3}/rooms/{q(room_id)}/leave", {})).code == 200
    assert "device_lists" not in await sync(bob, since)
    assert (await bob.post(f"{V3}/rooms/{q(other_room)}/leave", {})).code == 200
    gone = await sync(bob, since)
    assert gone["device_lists"] == {"changed": [], "left": [alice.user_id]}
    changes = await bob.get(f"{V3}/keys/changes?from={since}&to={gone['next_batch']}")
    assert changes.json == {"changed": [], "left": [alice.user_id]}
    # bob joins again: alice is new to him.
    assert (await bob.post(f"{V3}/join/{q(room_id)}", {})).code == 200
    back = await sync(bob, gone["next_batch"])
    assert back["device_lists"] == {"changed": [alice.user_id], "left": []}
    bad = await bob.get(f"{V3}/keys/changes?from=nonsense&to={gone['next_batch']}")
    assert bad.code == 400 and bad.json["errcode"] == "M_INVALID_PARAM"


@pytest_twisted.ensureDeferred
async def test_cross_signing_upload_first_without_uia_then_with(server: TestServer) -> None:
    alice = await server.register("alice", password=PASSWORD)
    bob = await server.register("bob", password=PASSWORD)
    await shared_room(alice, bob)
    since = (await sync(bob))["next_batch"]
    master, self_signing, user_signing = cross_signing_key(), cross_signing_key(), cross_signing_key()
    keys = {"master_key": cs_key(alice, "master", master),
            "self_signing_key": cs_key(alice, "self_signing", self_signing, master),
            "user_signing_key": cs_key(alice, "user_signing", user_signing, master)}

    # Signed by something else than the master key, or no master key at all.
    bad = dict(keys, self_signing_key=cs_key(alice, "self_signing", self_signing, user_signing))
    resp = await alice.post(f"{V3}/keys/device_signing/upload", bad)
    assert (resp.code, resp.json["errcode"]) == (400, "M_INVALID_SIGNATURE")
    resp = await alice.post(f"{V3}/keys/device_signing/upload", {"self_signing_key": keys["self_signing_key"]})
    assert (resp.code, resp.json["errcode"]) == (400, "M_MISSING_PARAM")
    resp = await alice.post(f"{V3}/keys/device_signing/upload", dict(keys, master_key=cs_key(bob, "master", master)))
    assert (resp.code, resp.json["errcode"]) == (400, "M_INVALID_PARAM")

    # First upload: no UIA (spec). The same keys again: no UIA either.
    assert (await alice.post(f"{V3}/keys/device_signing/upload", keys)).code == 200
    assert (await alice.post(f"{V3}/keys/device_signing/upload", keys)).code == 200
    own = await query(alice, alice.user_id)
    assert own["master_keys"][alice.user_id] == keys["master_key"]
    assert own["self_signing_keys"][alice.user_id] == keys["self_signing_key"]
    assert own["user_signing_keys"][alice.user_id] == keys["user_signing_key"]
    seen_by_bob = await query(bob, alice.user_id)
    assert seen_by_bob["master_keys"][alice.user_id] == keys["master_key"]
    assert alice.user_id not in seen_by_bob["user_signing_keys"]  # only its owner sees it
    assert (await sync(bob, since))["device_lists"]["changed"] == [alice.user_id]

    # Replacing them needs UIA; the body sent first is what gets stored.
    new_master = cross_signing_key()
    replacement = {"master_key": cs_key(alice, "master", new_master),
                   "self_signing_key": cs_key(alice, "self_signing", self_signing, new_master)}
    challenge = await alice.post(f"{V3}/keys/device_signing/upload", replacement)
    assert challenge.code == 401 and challenge.json["flows"] == [{"stages": ["m.login.password"]}]
    assert (await query(alice, alice.user_id))["master_keys"][alice.user_id] == keys["master_key"]
    wrong = await alice.post(f"{V3}/keys/device_signing/upload", {
        "auth": {**password_auth(alice, challenge.json["session"]), "password": "wrong"}})
    assert wrong.code == 401 and wrong.json["errcode"] == "M_FORBIDDEN"
    done = await alice.post(f"{V3}/keys/device_signing/upload", {"auth": password_auth(alice, challenge.json["session"])})
    assert done.code == 200, done
    assert (await query(bob, alice.user_id))["master_keys"][alice.user_id] == replacement["master_key"]

    # A cross-signing public key may not be one of the user's device IDs.
    clash = cross_signing_key()
    phone = await server.client().post(f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": PASSWORD,
        "device_id": public(clash)})
    assert phone.code == 200
    resp = await alice.post(f"{V3}/keys/device_signing/upload", {
        "master_key": cs_key(alice, "master", clash), "auth": password_auth(alice)})
    assert (resp.code, resp.json["errcode"]) == (403, "M_FORBIDDEN")


@pytest_twisted.ensureDeferred
async def test_signatures_upload(server: TestServer) -> None:
    alice = await server.register("alice", password=PASSWORD)
    bob = await server.register("bob", password=PASSWORD)
    carol = await server.register("carol", password=PASSWORD)
    await shared_room(alice, bob, carol)
    alice_device_key = device_signing_key(alice.device_id)
    alice_device = device_keys(alice, alice_device_key)
    await upload(alice, {"device_keys": alice_device})
    a_master, a_ssk = cross_signing_key(), cross_signing_key()
    b_master, b_usk = cross_signing_key(), cross_signing_key()
    assert (await alice.post(f"{V3}/keys/device_signing/upload", {
        "master_key": cs_key(alice, "master", a_master),
        "self_signing_key": cs_key(alice, "self_signing", a_ssk, a_master)})).code == 200
    assert (await bob.post(f"{V3}/keys/device_signing/upload", {
        "master_key": cs_key(bob, "master", b_master),
        "user_signing_key": cs_key(bob, "user_signing", b_usk, b_master)})).code == 200
    bob_since = (await sync(bob))["next_batch"]
    carol_since = (await sync(carol))["next_batch"]

    def strip(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}

    # alice signs her device with her self-signing key, and her master key with her device.
    signed_device = sign_json(strip(alice_device), alice.user_id, a_ssk)
    signed_master = sign_json(cs_key(alice, "master", a_master), alice.user_id, alice_device_key)
    resp = await alice.post(f"{V3}/keys/signatures/upload", {
        alice.user_id: {alice.device_id: signed_device, public(a_master): signed_master}})
    assert resp.json == {"failures": {}}, resp
    # bob signs alice's master key with his user-signing key.
    bob_signed = sign_json(cs_key(alice, "master", a_master), bob.user_id, b_usk)
    resp = await bob.post(f"{V3}/keys/signatures/upload", {alice.user_id: {public(a_master): bob_signed}})
    assert resp.json == {"failures": {}}, resp

    for viewer in (alice, bob, carol):
        result = await query(viewer, alice.user_id)
        device_sigs = result["device_keys"][alice.user_id][alice.device_id]["signatures"][alice.user_id]
        assert device_sigs[f"ed25519:{public(a_ssk)}"] == signed_device["signatures"][alice.user_id][
            f"ed25519:{public(a_ssk)}"]
        master_sigs = result["master_keys"][alice.user_id]["signatures"]
        assert f"ed25519:{alice.device_id}" in master_sigs[alice.user_id]
        # bob's signature is for bob's eyes only.
        assert (bob.user_id in master_sigs) == (viewer is bob)
    assert (await sync(carol, carol_since))["device_lists"]["changed"] == [alice.user_id]
    bob_changes = await sync(bob, bob_since)
    assert bob_changes["device_lists"]["changed"] == [alice.user_id]

    # Failures are reported per key, and nothing of them is stored.
    forged = copy.deepcopy(signed_device)
    forged["signatures"][alice.user_id][f"ed25519:{public(a_ssk)}"] = \
        sign_json(strip(alice_device), alice.user_id, cross_signing_key())["signatures"][alice.user_id].popitem()[1]
    changed_object = sign_json(strip(alice_device) | {"algorithms": []}, alice.user_id, a_ssk)
    resp = await alice.post(f"{V3}/keys/signatures/upload", {
        alice.user_id: {alice.device_id: forged, "UNKNOWN": signed_device},
        "@x:other.example": {"KEY": signed_device}})
    assert resp.code == 200
    failures = resp.json["failures"]
    assert failures[alice.user_id][alice.device_id]["errcode"] == "M_INVALID_SIGNATURE"
    assert failures[alice.user_id]["UNKNOWN"]["errcode"] == "M_NOT_FOUND"
    assert "@x:other.example" in failures
    resp = await alice.post(f"{V3}/keys/signatures/upload", {alice.user_id: {alice.device_id: changed_object}})
    assert resp.json["failures"][alice.user_id][alice.device_id]["errcode"] == "M_INVALID_PARAM"
    # carol has no user-signing key to sign alice's master key with.
    resp = await carol.post(f"{V3}/keys/signatures/upload", {alice.user_id: {public(a_master): sign_json(
        cs_key(alice, "master", a_master), carol.user_id, cross_signing_key())}})
    assert resp.json["failures"][alice.user_id][public(a_master)]["errcode"] == "M_INVALID_SIGNATURE"
    assert carol.user_id not in (await query(carol, alice.user_id))["master_keys"][alice.user_id]["signatures"]


@pytest_twisted.ensureDeferred
async def test_key_counts_start_again_for_a_device_id_reused_after_logout(server: TestServer) -> None:
    """/sync keeps key counts in memory: deleting a device must not leave its counts to a new device of that ID."""
    alice = await server.register("alice", PASSWORD)

    async def log_in_as_phone() -> Client:
        resp = await server.client().post(f"{V3}/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": alice.user_id},
            "password": PASSWORD, "device_id": "PHONE"})
        assert resp.code == 200, resp
        phone = server.client(resp.json["access_token"])
        phone.user_id, phone.device_id = alice.user_id, "PHONE"
        return phone

    phone = await log_in_as_phone()
    key = device_signing_key("PHONE")
    await upload(phone, {"one_time_keys": one_time_keys(phone, key, 3)})
    assert (await sync(phone))["device_one_time_keys_count"] == {"signed_curve25519": 3}
    assert (await phone.post(f"{V3}/logout", {})).code == 200
    phone = await log_in_as_phone()
    assert (await sync(phone))["device_one_time_keys_count"] == {"signed_curve25519": 0}


@pytest_twisted.ensureDeferred
async def test_pruned_device_list_changes_answer_old_tokens_with_everyone(server: TestServer) -> None:
    """The device_lists stream keeps its recent positions only: a token from before the pruned part
    gets everyone sharing a room (they re-download keys), a recent one gets the exact changes."""
    alice = await server.register("alice")
    bob = await server.register("bob")
    carol = await server.register("carol")
    await shared_room(alice, bob, carol)
    old_since = (await sync(bob))["next_batch"]
    await upload(alice, {"device_keys": device_keys(alice, device_signing_key(alice.device_id))})
    await upload(carol, {"device_keys": device_keys(carol, device_signing_key(carol.device_id))})
    recent_since = (await sync(bob))["next_batch"]
    await upload(alice, {"device_keys": device_keys(alice, device_signing_key(alice.device_id))})  # new keys: a change
    store = server.hs.store
    rows = "SELECT COUNT(*) FROM device_lists_stream"
    assert (await store.db.execute("t", rows))[0][0] == 3
    assert await store.e2e_keys.prune_device_list_changes(keep=1) == 2  # alice's and carol's first uploads
    assert (await store.db.execute("t", rows))[0][0] == 1

    assert (await sync(bob, recent_since))["device_lists"]["changed"] == [alice.user_id]  # exact
    everyone = sorted([alice.user_id, bob.user_id, carol.user_id])
    assert (await sync(bob, old_since))["device_lists"]["changed"] == everyone  # can't tell: all of them
    changes = await bob.get(f"{V3}/keys/changes?from={old_since}&to={recent_since}")
    assert sorted(changes.json["changed"]) == everyone
