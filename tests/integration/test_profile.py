"""Profiles, capabilities and the user directory over real HTTP."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest_twisted

from tests.integration.harness import V3, TestServer


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


@pytest_twisted.ensureDeferred
async def test_display_name_and_avatar(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    base = f"{V3}/profile/{q(alice.user_id)}"
    assert (await bob.get(base)).json == {}
    missing = await bob.get(f"{base}/displayname")
    assert (missing.code, missing.json["errcode"]) == (404, "M_NOT_FOUND")
    assert (await alice.put(f"{base}/displayname", {"displayname": "Alice Liddell"})).code == 200
    assert (await alice.put(f"{base}/avatar_url", {"avatar_url": "mxc://test.local/abc"})).code == 200
    assert (await bob.get(f"{base}/displayname")).json == {"displayname": "Alice Liddell"}
    assert (await bob.get(f"{base}/avatar_url")).json == {"avatar_url": "mxc://test.local/abc"}
    assert (await bob.get(base)).json == {"displayname": "Alice Liddell", "avatar_url": "mxc://test.local/abc"}
    # An empty value (what clients send to remove an avatar) clears the field.
    assert (await alice.put(f"{base}/avatar_url", {"avatar_url": ""})).code == 200
    assert (await bob.get(base)).json == {"displayname": "Alice Liddell"}


@pytest_twisted.ensureDeferred
async def test_custom_fields_and_delete(server: TestServer) -> None:
    alice = await server.register("alice")
    base = f"{V3}/profile/{q(alice.user_id)}"
    assert (await alice.put(f"{base}/m.tz", {"m.tz": "Europe/Paris"})).code == 200
    assert (await alice.put(f"{base}/org.example.job", {"org.example.job": {"title": "Engineer", "level": 3}})).code == 200
    assert (await alice.get(base)).json == {"m.tz": "Europe/Paris", "org.example.job": {"title": "Engineer", "level": 3}}
    assert (await alice.delete(f"{base}/org.example.job")).code == 200
    assert (await alice.delete(f"{base}/org.example.never")).code == 200
    assert (await alice.get(base)).json == {"m.tz": "Europe/Paris"}


@pytest_twisted.ensureDeferred
async def test_profile_errors(server: TestServer) -> None:
    alice = await server.register("alice")
    bob = await server.register("bob")
    base = f"{V3}/profile/{q(alice.user_id)}"

    async def expect(resp: Any, code: int, errcode: str) -> None:
        assert (resp.code, resp.json["errcode"]) == (code, errcode), resp

    await expect(await bob.put(f"{base}/displayname", {"displayname": "Not Alice"}), 403, "M_FORBIDDEN")
    await expect(await bob.delete(f"{base}/m.tz"), 403, "M_FORBIDDEN")
    await expect(await alice.put(f"{base}/displayname", {"name": "x"}), 400, "M_MISSING_PARAM")
    await expect(await alice.put(f"{base}/displayname", {"displayname": 5}), 400, "M_BAD_JSON")
    await expect(await alice.put(f"{base}/displayname", {"displayname": "x" * 257}), 400, "M_BAD_JSON")
    await expect(await alice.put(f"{base}/avatar_url", {"avatar_url": "https://example.org/a.png"}), 400, "M_BAD_JSON")
    await expect(await alice.put(f"{base}/m.tz", {"m.tz": 1}), 400, "M_BAD_JSON")
    await expect(await alice.put(f"{base}/NotNamespaced", {"NotNamespaced": 1}), 400, "M_INVALID_PARAM")
    await expect(await alice.put(f"{base}/{'a.' + 'b' * 300}", {"a." + "b" * 300: 1}), 400, "M_KEY_TOO_LARGE")
    await expect(await alice.put(f"{base}/org.example.big", {"org.example.big": "x" * 70_000}), 400, "M_PROFILE_TOO_LARGE")
    await expect(await bob.get(f"{V3}/profile/{q('@nobody:test.local')}"), 404, "M_NOT_FOUND")
    await expect(await bob.get(f"{V3}/profile/{q('@someone:elsewhere.example')}"), 404, "M_NOT_FOUND")
    await expect(await bob.get(f"{V3}/profile/not-a-user-id"), 400, "M_INVALID_PARAM")
    # Profiles are for the organisation: an access token is needed.
    await expect(await server.client().get(base), 401, "M_MISSING_TOKEN")
    # Nothing was half-written.
    assert (await alice.get(base)).json == {}


@pytest_twisted.ensureDeferred
async def test_changes_reach_the_profile_hook_and_presence(server: TestServer) -> None:
    alice = await server.register("alice")
    seen: list[tuple[str, dict]] = []

    async def hook(user_id: str, profile: dict) -> None:
        seen.append((user_id, profile))

    server.hs.profile_handler.on_profile_changed.append(hook)
    base = f"{V3}/profile/{q(alice.user_id)}"
    await alice.put(f"{V3}/presence/{q(alice.user_id)}/status", {"presence": "online"})
    before = server.hs.presence_handler.current_position()
    await alice.put(f"{base}/displayname", {"displayname": "Alice"})
    await alice.put(f"{base}/displayname", {"displayname": "Alice"})  # unchanged: no announcement
    await alice.put(f"{base}/m.tz", {"m.tz": "UTC"})  # not in member events: no announcement
    await alice.put(f"{base}/avatar_url", {"avatar_url": "mxc://test.local/a"})
    await alice.delete(f"{base}/displayname")
    assert seen == [
        (alice.user_id, {"displayname": "Alice"}),
        (alice.user_id, {"displayname": "Alice", "avatar_url": "mxc://test.local/a"}),
        (alice.user_id, {"avatar_url": "mxc://test.local/a"}),
    ]
    assert await server.hs.profile_for_member_event(alice.user_id) == {"avatar_url": "mxc://test.local/a"}
    presence = await server.hs.presence_handler.get_sync_presence(alice.user_id, before, server.hs.presence_handler.current_position(), initial=False)
    assert presence[-1]["content"]["avatar_url"] == "mxc://test.local/a"
    assert "displayname" not in presence[-1]["content"]


@pytest_twisted.ensureDeferred
async def test_capabilities_allow_profile_changes(server: TestServer) -> None:
    alice = await server.register("alice")
    caps = (await alice.get(f"{V3}/capabilities")).json["capabilities"]
    assert caps["m.set_displayname"] == {"enabled": True}
    assert caps["m.set_avatar_url"] == {"enabled": True}
    assert caps["m.profile_fields"] == {"enabled": True}


@pytest_twisted.ensureDeferred
async def test_user_directory_finds_every_local_user(server: TestServer) -> None:
    searcher = await server.register("searcher")
    alice = await server.register("alice")
    bob = await server.register("bob")
    await server.register("alicia")
    await alice.put(f"{V3}/profile/{q(alice.user_id)}/displayname", {"displayname": "Alice Liddell"})
    await alice.put(f"{V3}/profile/{q(alice.user_id)}/avatar_url", {"avatar_url": "mxc://test.local/a"})
    await bob.put(f"{V3}/profile/{q(bob.user_id)}/displayname", {"displayname": "Robert (Bob) Smith"})

    async def search(term: str, **extra: Any) -> Any:
        resp = await searcher.post(f"{V3}/user_directory/search", {"search_term": term, **extra})
        assert resp.code == 200, resp
        return resp.json

    by_name = await search("liddell")
    assert by_name == {"results": [{"user_id": alice.user_id, "display_name": "Alice Liddell",
                                    "avatar_url": "mxc://test.local/a"}], "limited": False}
    assert [r["user_id"] for r in (await search("ali"))["results"]] == [alice.user_id, "@alicia:test.local"]
    assert [r["user_id"] for r in (await search("SMITH"))["results"]] == [bob.user_id]
    assert [r["user_id"] for r in (await search("@bob:test"))["results"]] == [bob.user_id]
    assert (await search("robert smith"))["results"][0]["user_id"] == bob.user_id
    assert (await search("nobody-like-this"))["results"] == []
    limited = await search("test.local", limit=2)
    assert len(limited["results"]) == 2 and limited["limited"] is True
    assert (await search("test.local", limit=10))["limited"] is False
    bad = await searcher.post(f"{V3}/user_directory/search", {"limit": 3})
    assert (bad.code, bad.json["errcode"]) == (400, "M_MISSING_PARAM")
    bad = await searcher.post(f"{V3}/user_directory/search", {"search_term": "x", "limit": "3"})
    assert (bad.code, bad.json["errcode"]) == (400, "M_BAD_JSON")
    assert (await server.client().post(f"{V3}/user_directory/search", {"search_term": "a"})).code == 401
