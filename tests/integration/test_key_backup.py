"""Server-side key backup over real HTTP: versions, keys, the replacement rules, etag and count."""

from __future__ import annotations

import os
from typing import Any

import pytest
import pytest_twisted
from unpaddedbase64 import encode_base64

from tests.integration.harness import V3, Client, TestServer

ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
ROOM = "!room:test.local"
KEYS = f"{V3}/room_keys/keys"


def auth_data(**extra: Any) -> dict[str, Any]:
    return {"public_key": encode_base64(os.urandom(32)), **extra}


def key(marker: str, *, verified: bool = False, index: int = 0, forwarded: int = 0) -> dict[str, Any]:
    return {"first_message_index": index, "forwarded_count": forwarded, "is_verified": verified,
            "session_data": {"ephemeral": "eph", "ciphertext": marker, "mac": "mac"}}


async def create_version(client: Client, data: dict[str, Any] | None = None) -> str:
    resp = await client.post(f"{V3}/room_keys/version", {"algorithm": ALGORITHM, "auth_data": data or auth_data()})
    assert resp.code == 200, resp
    return resp.json["version"]


async def put_session(client: Client, version: str, session: str, data: dict[str, Any],
                      room: str = ROOM) -> dict[str, Any]:
    resp = await client.put(f"{KEYS}/{room}/{session}?version={version}", data)
    assert resp.code == 200, resp
    return resp.json


async def get_session(client: Client, version: str, session: str, room: str = ROOM) -> dict[str, Any]:
    resp = await client.get(f"{KEYS}/{room}/{session}?version={version}")
    assert resp.code == 200, resp
    return resp.json


def error(resp: Any) -> tuple[int, str]:
    return resp.code, resp.json["errcode"]


@pytest_twisted.ensureDeferred
async def test_version_lifecycle(server: TestServer) -> None:
    alice = await server.register("alice")
    assert error(await alice.get(f"{V3}/room_keys/version")) == (404, "M_NOT_FOUND")
    data = auth_data(signatures={alice.user_id: {f"ed25519:{alice.device_id}": "sig"}})
    first = await create_version(alice, data)
    current = (await alice.get(f"{V3}/room_keys/version")).json
    assert current == {"algorithm": ALGORITHM, "auth_data": data, "count": 0, "etag": current["etag"],
                       "version": first}
    assert (await alice.get(f"{V3}/room_keys/version/{first}")).json == current

    new_data = auth_data()
    ok = await alice.put(f"{V3}/room_keys/version/{first}",
                         {"algorithm": ALGORITHM, "auth_data": new_data, "version": first})
    assert (ok.code, ok.json) == (200, {})
    assert (await alice.get(f"{V3}/room_keys/version/{first}")).json["auth_data"] == new_data

    second = await create_version(alice)
    assert second != first
    assert (await alice.get(f"{V3}/room_keys/version")).json["version"] == second
    # Deleting twice succeeds; the deleted version is gone and the older one is current again.
    for _ in range(2):
        resp = await alice.delete(f"{V3}/room_keys/version/{second}")
        assert (resp.code, resp.json) == (200, {})
    assert error(await alice.get(f"{V3}/room_keys/version/{second}")) == (404, "M_NOT_FOUND")
    assert (await alice.get(f"{V3}/room_keys/version")).json["version"] == first
    third = await create_version(alice)
    assert third not in (first, second)  # a deleted version's number is never reused


@pytest_twisted.ensureDeferred
async def test_version_errors(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    version = await create_version(alice)
    # Someone else's version, and versions that never existed.
    for who, name in ((bob, version), (alice, "999999"), (alice, "abc"), (alice, f"0{version}")):
        assert error(await who.get(f"{V3}/room_keys/version/{name}")) == (404, "M_NOT_FOUND"), name
        assert error(await who.delete(f"{V3}/room_keys/version/{name}")) == (404, "M_NOT_FOUND"), name
        put = await who.put(f"{V3}/room_keys/version/{name}", {"algorithm": ALGORITHM, "auth_data": auth_data()})
        assert error(put) == (404, "M_NOT_FOUND"), name
    assert error(await bob.get(f"{V3}/room_keys/version")) == (404, "M_NOT_FOUND")
    wrong_version = await alice.put(f"{V3}/room_keys/version/{version}",
                                    {"algorithm": ALGORITHM, "auth_data": auth_data(), "version": "other"})
    assert error(wrong_version) == (400, "M_INVALID_PARAM")
    other_algorithm = await alice.put(f"{V3}/room_keys/version/{version}",
                                      {"algorithm": "m.other", "auth_data": auth_data()})
    assert error(other_algorithm) == (400, "M_INVALID_PARAM")
    assert error(await alice.get(f"{V3}/room_keys/version", token="")) == (401, "M_MISSING_TOKEN")


@pytest.mark.parametrize("body, errcode", [
    ({"auth_data": auth_data()}, "M_MISSING_PARAM"),
    ({"algorithm": ALGORITHM}, "M_MISSING_PARAM"),
    ({"algorithm": "m.unknown.algorithm", "auth_data": auth_data()}, "M_INVALID_PARAM"),
    ({"algorithm": ALGORITHM, "auth_data": {}}, "M_BAD_JSON"),
    ({"algorithm": ALGORITHM, "auth_data": {"public_key": 5}}, "M_BAD_JSON"),
    ({"algorithm": ALGORITHM, "auth_data": {"public_key": "abcdefg"}}, "M_INVALID_PARAM"),
    ({"algorithm": ALGORITHM, "auth_data": auth_data(signatures=["sig"])}, "M_BAD_JSON"),
    ({"algorithm": ALGORITHM, "auth_data": auth_data(signatures={"@a:b": {"ed25519:X": 1}})}, "M_BAD_JSON"),
])
@pytest_twisted.ensureDeferred
async def test_create_validates_auth_data(server: TestServer, body: dict[str, Any], errcode: str) -> None:
    alice = await server.register("alice")
    assert error(await alice.post(f"{V3}/room_keys/version", body)) == (400, errcode)
    assert error(await alice.get(f"{V3}/room_keys/version")) == (404, "M_NOT_FOUND")


@pytest_twisted.ensureDeferred
async def test_keys_at_every_level_with_etag_and_count(server: TestServer) -> None:
    alice = await server.register("alice")
    version = await create_version(alice)
    etags = [(await alice.get(f"{V3}/room_keys/version")).json["etag"]]
    assert (await alice.get(f"{KEYS}?version={version}")).json == {"rooms": {}}
    assert (await alice.get(f"{KEYS}/{ROOM}?version={version}")).json == {"sessions": {}}
    assert error(await alice.get(f"{KEYS}/{ROOM}/s1?version={version}")) == (404, "M_NOT_FOUND")

    one = await put_session(alice, version, "s1", key("one"))
    assert one["count"] == 1 and one["etag"] not in etags
    etags.append(one["etag"])
    assert await get_session(alice, version, "s1") == key("one")

    room = await alice.put(f"{KEYS}/{ROOM}?version={version}", {"sessions": {"s2": key("two"), "s3": key("three")}})
    assert room.code == 200 and room.json["count"] == 3 and room.json["etag"] not in etags
    etags.append(room.json["etag"])
    other_room = "!other:test.local"
    everything = await alice.put(f"{KEYS}?version={version}",
                                 {"rooms": {other_room: {"sessions": {"s4": key("four")}}}})
    assert everything.json["count"] == 4 and everything.json["etag"] not in etags
    etags.append(everything.json["etag"])

    assert (await alice.get(f"{KEYS}?version={version}")).json == {"rooms": {
        ROOM: {"sessions": {"s1": key("one"), "s2": key("two"), "s3": key("three")}},
        other_room: {"sessions": {"s4": key("four")}},
    }}
    assert (await alice.get(f"{KEYS}/{ROOM}?version={version}")).json == {
        "sessions": {"s1": key("one"), "s2": key("two"), "s3": key("three")}}
    described = (await alice.get(f"{V3}/room_keys/version/{version}")).json
    assert (described["count"], described["etag"]) == (4, etags[-1])

    # An upload that changes nothing leaves the etag alone.
    same = await put_session(alice, version, "s1", key("one again"))
    assert same == {"etag": etags[-1], "count": 4}
    assert (await get_session(alice, version, "s1"))["session_data"]["ciphertext"] == "one"

    deleted = await alice.delete(f"{KEYS}/{ROOM}/s1?version={version}")
    assert deleted.json["count"] == 3 and deleted.json["etag"] not in etags
    etags.append(deleted.json["etag"])
    assert error(await alice.get(f"{KEYS}/{ROOM}/s1?version={version}")) == (404, "M_NOT_FOUND")
    nothing = await alice.delete(f"{KEYS}/{ROOM}/s1?version={version}")
    assert nothing.json == {"etag": etags[-1], "count": 3}
    room_gone = await alice.delete(f"{KEYS}/{ROOM}?version={version}")
    assert room_gone.json["count"] == 1 and room_gone.json["etag"] not in etags
    etags.append(room_gone.json["etag"])
    all_gone = await alice.delete(f"{KEYS}?version={version}")
    assert all_gone.json["count"] == 0 and all_gone.json["etag"] not in etags
    assert (await alice.get(f"{KEYS}?version={version}")).json == {"rooms": {}}


# (stored, uploaded, replaced?) with keys as (is_verified, first_message_index, forwarded_count).
REPLACEMENT_RULES = [
    ((False, 5, 0), (True, 10, 5), True),    # a verified key beats an unverified one...
    ((True, 0, 0), (False, 0, 0), False),    # ...whatever its indexes
    ((False, 5, 1), (False, 3, 9), True),    # same verification: the lower first message index wins
    ((False, 3, 0), (False, 5, 0), False),
    ((True, 5, 0), (True, 3, 4), True),      # the index counts before the forwarded count
    ((True, 3, 2), (True, 3, 1), True),      # same index: the lower forwarded count wins
    ((True, 3, 1), (True, 3, 2), False),
    ((False, 3, 1), (False, 3, 1), False),   # a tie keeps the stored key
]


@pytest.mark.parametrize("stored, uploaded, replaced", REPLACEMENT_RULES)
@pytest_twisted.ensureDeferred
async def test_replacement_rules(server: TestServer, stored: tuple[bool, int, int], uploaded: tuple[bool, int, int],
                                 replaced: bool) -> None:
    alice = await server.register("alice")
    version = await create_version(alice)
    old = key("stored", verified=stored[0], index=stored[1], forwarded=stored[2])
    new = key("uploaded", verified=uploaded[0], index=uploaded[1], forwarded=uploaded[2])
    before = await put_session(alice, version, "s", old)
    # Through the bulk endpoint too: the rule is the same whichever endpoint is used.
    resp = await alice.put(f"{KEYS}?version={version}", {"rooms": {ROOM: {"sessions": {"s": new}}}})
    assert resp.json["count"] == 1
    assert (resp.json["etag"] != before["etag"]) is replaced
    assert await get_session(alice, version, "s") == (new if replaced else old)


@pytest_twisted.ensureDeferred
async def test_only_the_current_version_takes_keys(server: TestServer) -> None:
    alice = await server.register("alice")
    assert error(await alice.put(f"{KEYS}/{ROOM}/s?version=1", key("k"))) == (404, "M_NOT_FOUND")
    old = await create_version(alice)
    await put_session(alice, old, "s", key("old"))
    current = await create_version(alice)
    for path, body in ((f"{KEYS}/{ROOM}/s", key("k")), (f"{KEYS}/{ROOM}", {"sessions": {"s": key("k")}}),
                       (KEYS, {"rooms": {ROOM: {"sessions": {"s": key("k")}}}})):
        for version in (old, "nonsense"):
            resp = await alice.put(f"{path}?version={version}", body)
            assert error(resp) == (403, "M_WRONG_ROOM_KEYS_VERSION"), path
            assert resp.json["current_version"] == current
    # The old version can still be read.
    assert (await get_session(alice, old, "s"))["session_data"]["ciphertext"] == "old"
    # Deleting the version deletes its keys, and they can't be read any more.
    assert (await alice.delete(f"{V3}/room_keys/version/{old}")).code == 200
    rows = await server.hs.store.db.execute("test_keys", "SELECT session_id FROM room_key_backup_keys"
                                            " WHERE version = ?", int(old))
    assert rows == []
    for method in ("get", "delete"):
        resp = await getattr(alice, method)(f"{KEYS}/{ROOM}/s?version={old}")
        assert error(resp) == (404, "M_NOT_FOUND"), method
        assert error(await getattr(alice, method)(f"{KEYS}?version={old}")) == (404, "M_NOT_FOUND"), method
    # Once no version is left, an upload is told there is none.
    assert (await alice.delete(f"{V3}/room_keys/version/{current}")).code == 200
    assert error(await alice.put(f"{KEYS}/{ROOM}/s?version={current}", key("k"))) == (404, "M_NOT_FOUND")


@pytest.mark.parametrize("body, errcode", [
    ({k: v for k, v in key("k").items() if k != "is_verified"}, "M_MISSING_PARAM"),
    ({**key("k"), "first_message_index": -1}, "M_INVALID_PARAM"),
    ({**key("k"), "forwarded_count": "0"}, "M_BAD_JSON"),
    ({**key("k"), "is_verified": "yes"}, "M_BAD_JSON"),
    ({**key("k"), "session_data": "opaque"}, "M_BAD_JSON"),
])
@pytest_twisted.ensureDeferred
async def test_key_data_is_validated(server: TestServer, body: dict[str, Any], errcode: str) -> None:
    alice = await server.register("alice")
    version = await create_version(alice)
    assert error(await alice.put(f"{KEYS}/{ROOM}/s?version={version}", body)) == (400, errcode)
    bulk = await alice.put(f"{KEYS}?version={version}", {"rooms": {ROOM: {"sessions": {"s": body}}}})
    assert error(bulk) == (400, errcode)
    assert (await alice.get(f"{V3}/room_keys/version")).json["count"] == 0


@pytest_twisted.ensureDeferred
async def test_request_shape_errors(server: TestServer) -> None:
    alice = await server.register("alice")
    version = await create_version(alice)
    for method, path in (("put", f"{KEYS}/{ROOM}/s"), ("get", f"{KEYS}/{ROOM}/s"), ("get", KEYS),
                         ("delete", f"{KEYS}/{ROOM}")):
        resp = await getattr(alice, method)(path, **({"body": key("k")} if method == "put" else {}))
        assert error(resp) == (400, "M_MISSING_PARAM"), (method, path)
    assert error(await alice.put(f"{KEYS}?version={version}", {"room": {}})) == (400, "M_MISSING_PARAM")
    assert error(await alice.put(f"{KEYS}/{ROOM}?version={version}", {"sessions": []})) == (400, "M_BAD_JSON")
    # Another user can't see or touch alice's keys through her version number.
    bob = await server.register("bob")
    await put_session(alice, version, "s", key("k"))
    assert error(await bob.get(f"{KEYS}/{ROOM}/s?version={version}")) == (404, "M_NOT_FOUND")
    assert error(await bob.put(f"{KEYS}/{ROOM}/s?version={version}", key("x"))) == (404, "M_NOT_FOUND")


@pytest_twisted.ensureDeferred
async def test_auth_data_and_session_data_are_sealed_at_rest(server: TestServer) -> None:
    alice = await server.register("alice")
    data = auth_data()
    version = await create_version(alice, data)
    await put_session(alice, version, "s", key("SecretCiphertextMarker"))
    [(sealed_auth,)] = await server.hs.store.db.execute(
        "test_versions", "SELECT auth_data FROM room_key_backup_versions WHERE version = ?", int(version))
    [(sealed_session,)] = await server.hs.store.db.execute(
        "test_keys", "SELECT session_data FROM room_key_backup_keys WHERE version = ?", int(version))
    assert data["public_key"].encode() not in bytes(sealed_auth)
    assert b"SecretCiphertextMarker" not in bytes(sealed_session) and b"ephemeral" not in bytes(sealed_session)
    assert server.hs.sealer.open_json(bytes(sealed_session))["ciphertext"] == "SecretCiphertextMarker"
