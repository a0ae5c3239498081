"""Pushers and push notifications, on both engines, against a real push gateway on loopback.

The gateway is a twisted.web resource serving `/_matrix/push/v1/notify`, allowed in the test
server's `push.gateways`; it records every notification and answers from a script of responses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.web import resource, server as web_server

from config import ConfigError, load_config_dict
from tests.integration.harness import V3, Client, TestServer, base_config, create_room, merge, q, send
from tests.integration.test_sealed_everywhere import canary_hits, canary_token, database_bytes

NOTIFY_PATH = "/_matrix/push/v1/notify"
PASSWORD = "correct horse battery"


class Gateway(resource.Resource):
    """A push gateway that records the notifications and answers from `answers` (then 200)."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.received: list[dict[str, Any]] = []
        self.answers: list[tuple[int, dict[str, Any]]] = []
        self._waiters: list[tuple[int, defer.Deferred[None]]] = []

    def render_POST(self, request: Any) -> bytes:
        assert request.path == NOTIFY_PATH.encode()
        self.received.append(json.loads(request.content.read()))
        code, body = self.answers.pop(0) if self.answers else (200, {"rejected": []})
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"application/json")
        for n, d in [w for w in self._waiters if len(self.received) >= w[0]]:
            self._waiters.remove((n, d))
            d.callback(None)
        return json.dumps(body).encode()

    async def wait_for(self, count: int, reactor: Any) -> list[dict[str, Any]]:
        """The first `count` notifications, once received (fails after 10 s)."""
        if len(self.received) < count:
            d: defer.Deferred[None] = defer.Deferred()
            self._waiters.append((count, d))
            d.addTimeout(10, reactor)
            await d
        return self.received[:count]


class Pushing:
    def __init__(self, server: TestServer, gateway: Gateway, url: str, reactor: Any) -> None:
        self.server, self.gateway, self.url, self.reactor = server, gateway, url, reactor


async def start_pushing(reactor: Any, tmp_path: Path, database_config: dict[str, Any],
                        **push: Any) -> tuple[Pushing, Any]:
    """A test server allowing a loopback gateway (plus `push` config keys); stop with `stop_pushing`."""
    gateway = Gateway()
    port = reactor.listenTCP(0, web_server.Site(gateway), interface="127.0.0.1")
    prefix = f"http://127.0.0.1:{port.getHost().port}/"
    srv = await TestServer.start(reactor, tmp_path, database_config, {"push": {"gateways": [prefix], **push}})
    return Pushing(srv, gateway, prefix.rstrip("/") + NOTIFY_PATH, reactor), port


async def stop_pushing(pushing: Pushing, port: Any) -> None:
    await pushing.server.stop()
    await port.stopListening()


@pytest_twisted.async_yield_fixture
async def pushing(reactor: Any, tmp_path: Path, database_config: dict[str, Any]) -> AsyncIterator[Pushing]:
    started, port = await start_pushing(reactor, tmp_path, database_config)
    try:
        yield started
    finally:
        await stop_pushing(started, port)


def pusher_body(url: str, pushkey: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "http", "app_id": "im.vector.app.android", "pushkey": pushkey,
            "app_display_name": "Element", "device_display_name": "Phone", "lang": "en",
            "data": {"url": url, "format": "event_id_only"}, **extra}


async def set_pusher(client: Client, url: str, pushkey: str, **extra: Any) -> None:
    resp = await client.post(f"{V3}/pushers/set", pusher_body(url, pushkey, **extra))
    assert resp.code == 200, resp


async def pushers_of(client: Client) -> list[dict[str, Any]]:
    resp = await client.get(f"{V3}/pushers")
    assert resp.code == 200, resp
    return resp.json["pushers"]


async def two_member_room(alice: Client, bob: Client) -> str:
    room_id = await create_room(alice, invite=[bob.user_id])
    assert (await bob.post(f"{V3}/join/{q(room_id)}", {})).code == 200
    return room_id


async def login(server: TestServer, username: str) -> Client:
    client = server.client()
    resp = await client.post(f"{V3}/login", {"type": "m.login.password", "password": PASSWORD,
                                             "identifier": {"type": "m.id.user", "user": username}})
    assert resp.code == 200, resp
    client.token, client.user_id, client.device_id = (
        resp.json["access_token"], resp.json["user_id"], resp.json["device_id"])
    return client


@pytest_twisted.ensureDeferred
async def test_message_notifies_the_other_member_with_ids_and_counts_only(pushing: Pushing) -> None:
    token = canary_token()
    alice = await pushing.server.register("alice")
    bob = await pushing.server.register("bob")
    room_id = await two_member_room(alice, bob)
    await set_pusher(bob, pushing.url, "bob-pushkey", data={"url": pushing.url, "format": "event_id_only",
                                                             "custom": "kept"})
    await set_pusher(alice, pushing.url, "alice-pushkey")
    event_id = await send(alice, room_id, f"{token}-body", "m1")

    [first] = await pushing.gateway.wait_for(1, pushing.reactor)
    [device] = first["notification"]["devices"]
    assert isinstance(device.pop("pushkey_ts"), int)
    assert first == {"notification": {
        "event_id": event_id, "room_id": room_id, "counts": {"unread": 1}, "prio": "high",
        "devices": [{"app_id": "im.vector.app.android", "pushkey": "bob-pushkey",
                     "data": {"format": "event_id_only", "custom": "kept"}, "tweaks": {}}],
    }}
    assert not canary_hits(json.dumps(first).encode(), token)

    # The sender is never notified of their own event: the next notification is alice's, for bob's reply.
    reply_id = await send(bob, room_id, "hi", "m2")
    second = (await pushing.gateway.wait_for(2, pushing.reactor))[1]["notification"]
    assert (second["event_id"], second["devices"][0]["pushkey"]) == (reply_id, "alice-pushkey")
    assert len(pushing.gateway.received) == 2


@pytest_twisted.ensureDeferred
async def test_content_only_if_the_admin_allows_and_never_of_encrypted_events(
        reactor: Any, tmp_path: Path, database_config: dict[str, Any]) -> None:
    pushing, port = await start_pushing(reactor, tmp_path, database_config, include_content=True)
    try:
        alice = await pushing.server.register("alice")
        bob = await pushing.server.register("bob")
        room_id = await two_member_room(alice, bob)
        await set_pusher(bob, pushing.url, "full", data={"url": pushing.url})  # no format: the full shape
        await set_pusher(bob, pushing.url, "ids", data={"url": pushing.url, "format": "event_id_only"})
        await send(alice, room_id, "lunch?", "m1")
        encrypted = {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "opaque", "session_id": "s",
                     "sender_key": "k", "device_id": "D"}
        resp = await alice.put(f"{V3}/rooms/{q(room_id)}/send/m.room.encrypted/m2", encrypted)
        assert resp.code == 200, resp
        received = await pushing.gateway.wait_for(4, pushing.reactor)
        by_key = {(n["notification"]["devices"][0]["pushkey"], n["notification"]["event_id"]): n["notification"]
                  for n in received}
        [(_, message_id)] = [k for k, n in by_key.items() if k[0] == "full" and n["type"] == "m.room.message"]
        full = by_key[("full", message_id)]
        assert (full["sender"], full["content"]) == (alice.user_id, {"msgtype": "m.text", "body": "lunch?"})
        assert "content" not in by_key[("ids", message_id)] and "sender" not in by_key[("ids", message_id)]
        [encrypted_full] = [n for k, n in by_key.items() if k[0] == "full" and k[1] != message_id]
        assert encrypted_full["type"] == "m.room.encrypted" and "content" not in encrypted_full
    finally:
        await stop_pushing(pushing, port)


@pytest.mark.hs_config({"push": {"gateways": ["https://push.example.org/"]}})
@pytest_twisted.ensureDeferred
async def test_only_gateways_the_admin_allowed_are_accepted(server: TestServer) -> None:
    alice = await server.register("alice")
    refused = await alice.post(f"{V3}/pushers/set",
                               pusher_body("https://evil.example.com/_matrix/push/v1/notify", "k"))
    assert refused.code == 400 and refused.json["errcode"] == "M_INVALID_PARAM"
    assert refused.json["error"].startswith(
        "this server only sends notifications to push gateways its admin allowed: https://push.example.org/")
    await set_pusher(alice, "https://push.example.org/_matrix/push/v1/notify", "k")
    assert [p["pushkey"] for p in await pushers_of(alice)] == ["k"]


@pytest_twisted.ensureDeferred
async def test_no_gateway_is_allowed_by_default(server: TestServer) -> None:
    alice = await server.register("alice")
    refused = await alice.post(f"{V3}/pushers/set", pusher_body("https://matrix.org/_matrix/push/v1/notify", "k"))
    assert refused.code == 400 and refused.json["errcode"] == "M_INVALID_PARAM"
    assert "none are configured" in refused.json["error"]
    assert await pushers_of(alice) == []


@pytest_twisted.ensureDeferred
async def test_set_validation_errors(pushing: Pushing) -> None:
    alice = await pushing.server.register("alice")
    url = pushing.url

    async def error(body: dict[str, Any]) -> tuple[int, str, str]:
        resp = await alice.post(f"{V3}/pushers/set", body)
        return resp.code, resp.json["errcode"], resp.json["error"]

    assert await error({"app_id": "a", "pushkey": "k"}) == (400, "M_MISSING_PARAM", "Missing parameters: kind")
    code, errcode, message = await error({"kind": "http", "app_id": "a", "pushkey": "k",
                                          "app_display_name": "E", "device_display_name": "P"})
    assert (code, errcode, message) == (400, "M_MISSING_PARAM", "Missing parameters: lang, data")
    assert (await error(pusher_body(url, "k", data={"format": "event_id_only"})))[1] == "M_MISSING_PARAM"
    assert (await error(pusher_body(url, "k", kind="email")))[1] == "M_INVALID_PARAM"
    assert (await error(pusher_body(url, "k", app_id="x" * 65)))[1] == "M_INVALID_PARAM"
    assert (await error(pusher_body(url, "k" * 513)))[1] == "M_INVALID_PARAM"
    assert (await error(pusher_body(url.replace("/notify", "/other"), "k")))[1] == "M_INVALID_PARAM"
    assert (await error(pusher_body(url, "k", data={"url": url, "format": "full"})))[1] == "M_INVALID_PARAM"
    assert (await error(pusher_body(url, "k", append="yes")))[1] == "M_INVALID_PARAM"
    assert await pushers_of(alice) == []


@pytest_twisted.ensureDeferred
async def test_get_lists_and_kind_null_deletes(pushing: Pushing) -> None:
    alice = await pushing.server.register("alice")
    await set_pusher(alice, pushing.url, "k1", profile_tag="tag")
    await set_pusher(alice, pushing.url, "k2")
    await set_pusher(alice, pushing.url, "k1", lang="fr", profile_tag="tag")  # replaces, doesn't add
    listed = await pushers_of(alice)
    assert listed == [
        {"pushkey": "k1", "kind": "http", "app_id": "im.vector.app.android", "app_display_name": "Element",
         "device_display_name": "Phone", "lang": "fr", "profile_tag": "tag",
         "data": {"url": pushing.url, "format": "event_id_only"}},
        {"pushkey": "k2", "kind": "http", "app_id": "im.vector.app.android", "app_display_name": "Element",
         "device_display_name": "Phone", "lang": "en", "data": {"url": pushing.url, "format": "event_id_only"}},
    ]
    resp = await alice.post(f"{V3}/pushers/set", {"kind": None, "app_id": "im.vector.app.android", "pushkey": "k1"})
    assert resp.code == 200, resp
    assert [p["pushkey"] for p in await pushers_of(alice)] == ["k2"]


@pytest_twisted.ensureDeferred
async def test_same_pushkey_moves_to_the_new_user_unless_append(pushing: Pushing) -> None:
    alice = await pushing.server.register("alice")
    bob = await pushing.server.register("bob")
    await set_pusher(alice, pushing.url, "shared")
    await set_pusher(bob, pushing.url, "shared", append=True)
    assert len(await pushers_of(alice)) == 1
    await set_pusher(bob, pushing.url, "shared")
    assert await pushers_of(alice) == []
    assert len(await pushers_of(bob)) == 1


@pytest_twisted.ensureDeferred
async def test_deleting_the_device_deletes_its_pushers(pushing: Pushing) -> None:
    alice = await pushing.server.register("alice")
    phone = await login(pushing.server, "alice")
    await set_pusher(alice, pushing.url, "laptop-key")
    await set_pusher(phone, pushing.url, "phone-key")
    first = await alice.delete(f"{V3}/devices/{phone.device_id}", {})
    auth = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
            "password": PASSWORD, "session": first.json["session"]}
    assert (await alice.delete(f"{V3}/devices/{phone.device_id}", {"auth": auth})).code == 200
    assert [p["pushkey"] for p in await pushers_of(alice)] == ["laptop-key"]


@pytest_twisted.ensureDeferred
async def test_rejected_pushkey_deletes_the_pusher(pushing: Pushing) -> None:
    alice = await pushing.server.register("alice")
    bob = await pushing.server.register("bob")
    room_id = await two_member_room(alice, bob)
    await set_pusher(bob, pushing.url, "stale-key")
    pushing.gateway.answers.append((200, {"rejected": ["stale-key"]}))
    await send(alice, room_id, "hello", "m1")
    await pushing.gateway.wait_for(1, pushing.reactor)
    for _ in range(100):  # the deletion follows the gateway's answer
        if not await pushers_of(bob):
            break
        await pushing.server.hs.clock.sleep(0.02)
    assert await pushers_of(bob) == []


@pytest_twisted.ensureDeferred
async def test_failing_gateway_is_retried_with_backoff(pushing: Pushing) -> None:
    alice = await pushing.server.register("alice")
    bob = await pushing.server.register("bob")
    room_id = await two_member_room(alice, bob)
    await set_pusher(bob, pushing.url, "bob-key")
    pushing.gateway.answers.append((503, {"error": "try later"}))
    event_id = await send(alice, room_id, "hello", "m1")
    [failed] = await pushing.gateway.wait_for(1, pushing.reactor)
    pool = pushing.server.hs.pusher_pool
    for _ in range(100):  # the retry is scheduled once the 503 is read
        if pool.pending_retries() or len(pushing.gateway.received) > 1:
            break
        await pushing.server.hs.clock.sleep(0.02)
    await pool.retry_due(now_ms=pushing.server.hs.clock.time_msec() + 3_600_000)
    retried = (await pushing.gateway.wait_for(2, pushing.reactor))[1]
    assert retried == failed and retried["notification"]["event_id"] == event_id
    assert pool.pending_retries() == 0
    assert [p["pushkey"] for p in await pushers_of(bob)] == ["bob-key"]  # a failure doesn't drop the pusher


@pytest_twisted.ensureDeferred
async def test_pushers_table_holds_no_pushkey_or_names_in_clear(pushing: Pushing,
                                                                 database_config: dict[str, Any]) -> None:
    token = canary_token()
    alice = await pushing.server.register("alice")
    await set_pusher(alice, pushing.url, f"{token}-pushkey", app_display_name=f"{token}-app_name",
                     device_display_name=f"{token}-device_name", profile_tag=f"{token}-profile_tag")
    assert (await pushers_of(alice))[0]["pushkey"] == f"{token}-pushkey"  # the write happened
    leaks = {where: found for where, data in database_bytes(database_config).items()
             if (found := canary_hits(data, token))}
    assert not leaks, f"found in clear at rest: {leaks}"


def test_a_gateway_prefix_without_host_stops_start_up(tmp_path: Path, database_config: dict[str, Any]) -> None:
    config = merge(base_config(tmp_path, database_config), {"push": {"gateways": ["https://"]}})
    with pytest.raises(ConfigError) as e:
        load_config_dict(config, source="homeserver.yaml", base_dir=str(tmp_path))
    assert "push.gateways" in str(e.value) and "homeserver.yaml" in str(e.value)
