"""`/pushrules/` over real HTTP: defaults, user rules with ordering, enabled/actions, errors, and m.push_rules."""

from __future__ import annotations

import urllib.parse

import pytest_twisted

from tests.integration.harness import V3, TestServer

RULES = f"{V3}/pushrules/global"


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


@pytest_twisted.ensureDeferred
async def test_default_rules(server: TestServer) -> None:
    alice = await server.register("alice")
    everything = await alice.get(f"{V3}/pushrules/")
    assert everything.code == 200
    ruleset = everything.json["global"]
    assert (await alice.get(f"{RULES}/")).json == ruleset
    assert ruleset["content"] == [] and ruleset["room"] == [] and ruleset["sender"] == []
    assert ruleset["override"][0] == {"rule_id": ".m.rule.master", "default": True, "enabled": False,
                                      "conditions": [], "actions": []}
    invite = (await alice.get(f"{RULES}/override/.m.rule.invite_for_me")).json
    assert invite["conditions"][2] == {"key": "state_key", "kind": "event_match", "pattern": alice.user_id}
    assert (await alice.get(f"{RULES}/underride/.m.rule.message/enabled")).json == {"enabled": True}
    assert (await alice.get(f"{RULES}/underride/.m.rule.message/actions")).json == {"actions": ["notify"]}


@pytest_twisted.ensureDeferred
async def test_user_rules_with_before_and_after(server: TestServer) -> None:
    alice = await server.register("alice")
    cake = {"pattern": "cake", "actions": ["notify", {"set_tweak": "sound", "value": "cakealarm.wav"}]}
    assert (await alice.put(f"{RULES}/content/nocake", cake)).code == 200
    assert (await alice.put(f"{RULES}/content/lie?before=nocake", {"pattern": "cake*lie", "actions": ["notify"]})).code == 200
    assert (await alice.put(f"{RULES}/content/last?after=nocake", {"pattern": "x", "actions": []})).code == 200
    content = (await alice.get(f"{RULES}/")).json["content"]
    assert [r["rule_id"] for r in content] == ["lie", "nocake", "last"]
    assert content[1] == {"rule_id": "nocake", "default": False, "enabled": True, **cake}
    room = "!dj234r78wl45Gh4D:test.local"
    assert (await alice.put(f"{RULES}/room/{q(room)}", {"actions": []})).code == 200
    assert (await alice.get(f"{RULES}/room/{q(room)}")).json == {"rule_id": room, "default": False, "enabled": True,
                                                                  "actions": []}
    beer = {"conditions": [{"kind": "event_match", "key": "content.body", "pattern": "beer"},
                           {"kind": "room_member_count", "is": "<=10"}],
            "actions": ["notify", {"set_tweak": "sound", "value": "beeroclock.wav"}]}
    assert (await alice.put(f"{RULES}/override/beer", beer)).code == 200
    override = (await alice.get(f"{RULES}/")).json["override"]
    assert [r["rule_id"] for r in override[:3]] == [".m.rule.master", "beer", ".m.rule.suppress_notices"]
    # Enable/disable and change actions of user rules and of defaults.
    assert (await alice.put(f"{RULES}/override/beer/enabled", {"enabled": False})).code == 200
    assert (await alice.get(f"{RULES}/override/beer/enabled")).json == {"enabled": False}
    assert (await alice.put(f"{RULES}/override/.m.rule.master/enabled", {"enabled": True})).code == 200
    assert (await alice.get(f"{RULES}/override/.m.rule.master")).json["enabled"] is True
    new_actions = {"actions": ["notify", {"set_tweak": "highlight"}]}
    assert (await alice.put(f"{RULES}/underride/.m.rule.message/actions", new_actions)).code == 200
    assert (await alice.get(f"{RULES}/underride/.m.rule.message/actions")).json == new_actions
    # Replacing a rule keeps its place and its enabled state.
    assert (await alice.put(f"{RULES}/override/beer", {**beer, "actions": []})).code == 200
    beer_now = (await alice.get(f"{RULES}/override/beer")).json
    assert beer_now["enabled"] is False and beer_now["actions"] == []
    assert (await alice.delete(f"{RULES}/content/nocake")).code == 200
    assert [r["rule_id"] for r in (await alice.get(f"{RULES}/")).json["content"]] == ["lie", "last"]
    # Other users are not affected.
    bob = await server.register("bob")
    assert (await bob.get(f"{RULES}/")).json["content"] == []


@pytest_twisted.ensureDeferred
async def test_push_rule_errors(server: TestServer) -> None:
    alice = await server.register("alice")
    cases = [
        ("GET", f"{RULES}/override/nope", None, 404, "M_NOT_FOUND"),
        ("DELETE", f"{RULES}/override/nope", None, 404, "M_NOT_FOUND"),
        ("GET", f"{RULES}/override/nope/enabled", None, 404, "M_NOT_FOUND"),
        ("PUT", f"{RULES}/override/nope/enabled", {"enabled": True}, 404, "M_NOT_FOUND"),
        ("PUT", f"{RULES}/override/nope/actions", {"actions": []}, 404, "M_NOT_FOUND"),
        ("PUT", f"{RULES}/override/.m.rule.nope/enabled", {"enabled": True}, 404, "M_NOT_FOUND"),
        ("DELETE", f"{RULES}/override/.m.rule.master", None, 400, "M_INVALID_PARAM"),
        ("PUT", f"{RULES}/override/.mine", {"actions": []}, 400, "M_INVALID_PARAM"),
        ("PUT", f"{RULES}/override/x?before=missing", {"actions": []}, 400, "M_UNKNOWN"),
        ("PUT", f"{RULES}/override/x?after=.m.rule.master", {"actions": []}, 400, "M_INVALID_PARAM"),
        ("PUT", f"{RULES}/override/x", {"conditions": []}, 400, "M_MISSING_PARAM"),
        ("PUT", f"{RULES}/override/x", {"actions": ["sing"]}, 400, "M_INVALID_PARAM"),
        ("PUT", f"{RULES}/content/x", {"actions": []}, 400, "M_MISSING_PARAM"),
        ("PUT", f"{RULES}/room/not-a-room", {"actions": []}, 400, "M_INVALID_PARAM"),
        ("PUT", f"{RULES}/override/.m.rule.master/enabled", {"enabled": "yes"}, 400, "M_BAD_JSON"),
        ("PUT", f"{RULES}/override/.m.rule.master/actions", {"actions": "notify"}, 400, "M_BAD_JSON"),
    ]
    for method, path, body, code, errcode in cases:
        resp = await alice.request(method, path, body)
        assert (resp.code, resp.json["errcode"]) == (code, errcode), (method, path, resp)
    # Kinds and scopes outside the spec are refused before anything else.
    for path in (f"{V3}/pushrules/device/override/x", f"{RULES}/weird/x"):
        resp = await alice.request("GET", path, raw=b"", headers={})
        assert resp.code == 400
    # None of the failed requests changed anything.
    assert [r["rule_id"] for r in (await alice.get(f"{RULES}/")).json["override"] if not r["default"]] == []
    assert (await server.client().get(f"{V3}/pushrules/")).code == 401


@pytest_twisted.ensureDeferred
async def test_changes_reach_sync_as_account_data(server: TestServer) -> None:
    alice = await server.register("alice")
    account_data = server.hs.account_data_handler
    await alice.put(f"{V3}/user/{q(alice.user_id)}/account_data/org.example.x", {})
    start = account_data.current_position()  # > 0: position 0 means an initial sync
    assert await account_data.get_sync_account_data(alice.user_id, start, start, initial=False) == ([], {})
    await alice.put(f"{RULES}/sender/{q('@spammer:test.local')}", {"actions": []})
    now = account_data.current_position()
    assert now > start and server.hs.notifier.positions["account_data"] == now
    global_events, _ = await account_data.get_sync_account_data(alice.user_id, start, now, initial=False)
    [push] = [e for e in global_events if e["type"] == "m.push_rules"]
    assert [r["rule_id"] for r in push["content"]["global"]["sender"]] == ["@spammer:test.local"]
    # Unchanged rules are not sent again on an incremental sync.
    assert await account_data.get_sync_account_data(alice.user_id, now, now, initial=False) == ([], {})
    via_api = await alice.get(f"{V3}/user/{q(alice.user_id)}/account_data/m.push_rules")
    assert via_api.json == push["content"]
