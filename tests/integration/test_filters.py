"""Filters over real HTTP: upload, download, validation, and resolving /sync's `filter` parameter."""

from __future__ import annotations

import json
import urllib.parse

import pytest
import pytest_twisted

from homeserver.http.errors import MatrixError
from tests.integration.harness import V3, TestServer


ELEMENT_LIKE = {
    "room": {"state": {"lazy_load_members": True, "types": ["m.room.*"], "not_rooms": ["!726s6s6q:example.com"]},
             "timeline": {"limit": 20, "types": ["m.room.message"], "not_senders": ["@spam:example.com"]},
             "ephemeral": {"types": ["m.receipt", "m.typing"]}},
    "presence": {"types": ["m.presence"], "not_senders": ["@alice:example.com"]},
    "event_format": "client",
    "event_fields": ["type", "content", "sender"],
}


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


@pytest_twisted.ensureDeferred
async def test_upload_and_download(server: TestServer) -> None:
    alice = await server.register("alice")
    created = await alice.post(f"{V3}/user/{q(alice.user_id)}/filter", ELEMENT_LIKE)
    assert created.code == 200, created
    filter_id = created.json["filter_id"]
    assert not filter_id.startswith("{")
    got = await alice.get(f"{V3}/user/{q(alice.user_id)}/filter/{filter_id}")
    assert (got.code, got.json) == (200, ELEMENT_LIKE)
    # The same filter again gets the same ID; another gets another.
    assert (await alice.post(f"{V3}/user/{q(alice.user_id)}/filter", ELEMENT_LIKE)).json["filter_id"] == filter_id
    empty = await alice.post(f"{V3}/user/{q(alice.user_id)}/filter", {})
    assert empty.code == 200 and empty.json["filter_id"] != filter_id
    assert (await alice.get(f"{V3}/user/{q(alice.user_id)}/filter/{empty.json['filter_id']}")).json == {}


@pytest_twisted.ensureDeferred
async def test_filter_errors(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    filter_id = (await alice.post(f"{V3}/user/{q(alice.user_id)}/filter", ELEMENT_LIKE)).json["filter_id"]
    for resp in (await bob.get(f"{V3}/user/{q(alice.user_id)}/filter/{filter_id}"),
                 await bob.post(f"{V3}/user/{q(alice.user_id)}/filter", {})):
        assert (resp.code, resp.json["errcode"]) == (403, "M_FORBIDDEN")
    for missing in (filter_id + "0", "abc", "-1", "9" * 40):
        resp = await alice.get(f"{V3}/user/{q(alice.user_id)}/filter/{missing}")
        assert (resp.code, resp.json["errcode"]) == (404, "M_NOT_FOUND"), missing
    # Bob has no filter with Alice's ID.
    bobs_view = await bob.get(f"{V3}/user/{q(bob.user_id)}/filter/{filter_id}")
    assert (bobs_view.code, bobs_view.json["errcode"]) == (404, "M_NOT_FOUND")
    for body in ({"room": {"timeline": {"limit": "ten"}}}, {"event_format": "xml"},
                 {"presence": {"senders": ["not-a-user"]}}, {"room": []}):
        resp = await alice.post(f"{V3}/user/{q(alice.user_id)}/filter", body)
        assert (resp.code, resp.json["errcode"]) == (400, "M_BAD_JSON"), body
    not_json = await alice.post(f"{V3}/user/{q(alice.user_id)}/filter", raw=b"[]")
    assert (not_json.code, not_json.json["errcode"]) == (400, "M_NOT_JSON")


@pytest_twisted.ensureDeferred
async def test_resolving_the_sync_parameter(server: TestServer) -> None:
    alice = await server.register("alice")
    handler = server.hs.filter_handler
    filter_id = (await alice.post(f"{V3}/user/{q(alice.user_id)}/filter", ELEMENT_LIKE)).json["filter_id"]
    stored = await handler.resolve(alice.user_id, filter_id)
    assert stored.timeline.limit == 20 and stored.lazy_load_members
    assert not stored.timeline.matches({"type": "m.room.message", "sender": "@spam:example.com", "content": {}})
    inline = await handler.resolve(alice.user_id, json.dumps({"room": {"timeline": {"limit": 3}}}))
    assert inline.timeline.limit == 3
    assert (await handler.resolve(alice.user_id, None)).timeline.limit is None
    for param, errcode in (("{not json", "M_NOT_JSON"), ('{"room": 1}', "M_BAD_JSON"), ("12345", "M_NOT_FOUND")):
        with pytest.raises(MatrixError) as e:
            await handler.resolve(alice.user_id, param)
        assert e.value.errcode == errcode
