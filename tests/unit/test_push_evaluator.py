"""Push rule evaluation against the spec's default rules and conditions (homeserver/push/evaluator.py)."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.push import rules as push_rules
from homeserver.push.evaluator import condition_matches, evaluate, glob_matches, is_highlight, notifies
from homeserver.push.evaluator import _Context as Context
from homeserver.push.rules import PushRuleset

ME = "@me:example.org"
OTHER = "@other:example.org"
ROOM = "!room:example.org"
DEFAULTS = PushRuleset.build(ME, None)


def message(body: str = "hello", sender: str = OTHER, **content: Any) -> dict[str, Any]:
    return {"type": "m.room.message", "sender": sender, "room_id": ROOM, "event_id": "$e",
            "content": {"msgtype": "m.text", "body": body, **content}}


def run(event: dict[str, Any], ruleset: PushRuleset = DEFAULTS, *, members: int = 5, display_name: str | None = "Me",
        power_levels: dict[str, Any] | None = None, sender_level: int = 0) -> list[Any]:
    return evaluate(ruleset, event, user_id=ME, display_name=display_name, room_member_count=members,
                    power_levels=power_levels, sender_power_level=sender_level)


def test_plain_message_in_a_group_notifies_without_highlight() -> None:
    actions = run(message())
    assert actions == ["notify"] and notifies(actions) and not is_highlight(actions)


def test_one_to_one_message_rings_default_sound() -> None:
    assert run(message(), members=2) == ["notify", {"set_tweak": "sound", "value": "default"}]
    encrypted = {"type": "m.room.encrypted", "sender": OTHER, "room_id": ROOM, "content": {"ciphertext": "x"}}
    assert run(encrypted, members=2) == ["notify", {"set_tweak": "sound", "value": "default"}]
    assert run(encrypted, members=3) == ["notify"]


def test_own_events_never_notify() -> None:
    assert run(message(sender=ME), members=2) == []


def test_notices_edits_reactions_and_member_events_are_silent() -> None:
    assert run(message(msgtype="m.notice")) == []
    assert run(message(**{"m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}})) == []
    assert run({"type": "m.reaction", "sender": OTHER, "room_id": ROOM, "content": {}}) == []
    join = {"type": "m.room.member", "sender": OTHER, "state_key": OTHER, "room_id": ROOM,
            "content": {"membership": "join"}}
    assert run(join) == []


def test_invite_for_me_notifies_but_not_invites_for_others() -> None:
    invite = {"type": "m.room.member", "sender": OTHER, "state_key": ME, "room_id": ROOM,
              "content": {"membership": "invite"}}
    assert run(invite) == ["notify", {"set_tweak": "sound", "value": "default"}]
    assert run({**invite, "state_key": "@third:example.org"}) == []


def test_user_mention_highlights() -> None:
    actions = run(message(**{"m.mentions": {"user_ids": [ME]}}))
    assert is_highlight(actions) and notifies(actions)
    assert not is_highlight(run(message(**{"m.mentions": {"user_ids": [OTHER]}})))


def test_room_mention_needs_the_senders_notification_power() -> None:
    event = message(**{"m.mentions": {"room": True}})
    assert not is_highlight(run(event, sender_level=0))
    assert is_highlight(run(event, sender_level=50))
    assert is_highlight(run(event, sender_level=10, power_levels={"notifications": {"room": 10}}))
    assert not is_highlight(run(event, sender_level=10, power_levels={"notifications": {"room": "20"}}))
    # "true" as a string is not true.
    assert not is_highlight(run(message(**{"m.mentions": {"room": "true"}}), sender_level=100))


def test_tombstone_needs_empty_state_key() -> None:
    tombstone = {"type": "m.room.tombstone", "sender": OTHER, "state_key": "", "room_id": ROOM, "content": {}}
    assert is_highlight(run(tombstone))
    assert run({**tombstone, "state_key": "x"}) == []
    assert run({k: v for k, v in tombstone.items() if k != "state_key"}) == []


def test_master_rule_silences_everything_when_enabled() -> None:
    doc = push_rules.set_attribute(None, ME, "override", ".m.rule.master", "enabled", True)
    assert run(message(**{"m.mentions": {"user_ids": [ME]}}), PushRuleset.build(ME, doc)) == []


def test_disabled_default_and_changed_actions() -> None:
    doc = push_rules.set_attribute(None, ME, "underride", ".m.rule.message", "enabled", False)
    assert run(message(), PushRuleset.build(ME, doc)) == []
    doc = push_rules.set_attribute(None, ME, "underride", ".m.rule.message", "actions", ["notify", {"set_tweak": "highlight"}])
    assert is_highlight(run(message(), PushRuleset.build(ME, doc)))


def test_user_rules_rank_above_defaults_but_below_master() -> None:
    room_rule = push_rules.validate_new_rule("room", ROOM, {"actions": []})
    doc = push_rules.put_rule(None, "room", room_rule)
    muted = PushRuleset.build(ME, doc)
    assert run(message(), muted) == []
    # Override defaults (mentions) still rank above room rules.
    assert is_highlight(run(message(**{"m.mentions": {"user_ids": [ME]}}), muted))
    sender_rule = push_rules.validate_new_rule("sender", OTHER, {"actions": ["notify", {"set_tweak": "sound", "value": "x"}]})
    assert run(message(), PushRuleset.build(ME, push_rules.put_rule(None, "sender", sender_rule)))[1]["value"] == "x"
    content_rule = push_rules.validate_new_rule("content", "cake", {"pattern": "cake*lie", "actions": ["notify", {"set_tweak": "highlight"}]})
    cake = PushRuleset.build(ME, push_rules.put_rule(None, "content", content_rule))
    assert is_highlight(run(message("the CAKE is a lie!"), cake))
    assert not is_highlight(run(message("pancake is a lie"), cake))


def test_historical_actions_are_stripped() -> None:
    rule = push_rules.validate_new_rule("override", "quiet", {"actions": ["dont_notify", "coalesce"], "conditions": []})
    assert rule["actions"] == []
    raw = PushRuleset.build(ME, {"rules": {"override": [{"rule_id": "old", "actions": ["dont_notify"], "conditions": []}]}})
    assert run(message(), raw) == []


@pytest.mark.parametrize(("pattern", "value", "expected"), [
    ("lunc?*", "Lunch plans", True),
    ("lunc?*", "LUNCH", True),
    ("lunc?*", " lunch", False),
    ("lunc?*", "lunc", False),
    ("m.notice", "m.notice", True),
    ("m.notice", "mXnotice", False),  # '.' is literal
    ("*", "", True),
    ("a[b]c", "a[b]c", True),  # regex characters are literal
])
def test_glob_on_whole_values(pattern: str, value: str, expected: bool) -> None:
    assert glob_matches(pattern, value) is expected


@pytest.mark.parametrize(("pattern", "body", "expected"), [
    ("ex*ple", "An example event.", True),
    ("ex*ple", "exple", True),
    ("ex*ple", "An exciting triple-whammy", True),
    ("ex*ple", "Anexample", False),
    ("cake", "cakes", False),
    ("cake", "I like cake_", False),  # '_' is a word character
    ("cake", "(cake)", True),
    ("cake", "CAKE", True),
])
def test_glob_on_body_words(pattern: str, body: str, expected: bool) -> None:
    assert glob_matches(pattern, body, word_boundary=True) is expected


def ctx(event: dict[str, Any], **kw: Any) -> Context:
    return Context(event, kw.get("display_name"), kw.get("members", 3), kw.get("power_levels", {}), kw.get("level", 0))


def test_event_match_requires_a_string() -> None:
    assert not condition_matches({"kind": "event_match", "key": "content.topic", "pattern": "*"}, ctx({"content": {}}))
    assert not condition_matches({"kind": "event_match", "key": "content.topic", "pattern": "*"},
                                 ctx({"content": {"topic": None}}))
    assert not condition_matches({"kind": "event_match", "key": "content.n", "pattern": "1"}, ctx({"content": {"n": 1}}))


def test_event_property_is_compares_without_casting() -> None:
    event = {"content": {"m.federate": True, "n": 1, "s": "1", "z": None, "f": 1.5, "obj": {}}}
    def is_(key: str, value: Any) -> bool:
        return condition_matches({"kind": "event_property_is", "key": key, "value": value}, ctx(event))
    assert is_("content.m\\.federate", True)
    assert not is_("content.m\\.federate", "true") and not is_("content.m\\.federate", 1)
    assert is_("content.n", 1) and not is_("content.n", True) and not is_("content.s", 1) and is_("content.s", "1")
    assert is_("content.z", None) and not is_("content.absent", None)
    assert not is_("content.f", 1.5) and not is_("content.obj", {})


def test_event_property_contains() -> None:
    event = {"content": {"alt_aliases": ["#somewhere:example.org", "#myroom:example.com", 3, {"x": 1}]}}
    def contains(value: Any, key: str = "content.alt_aliases") -> bool:
        return condition_matches({"kind": "event_property_contains", "key": key, "value": value}, ctx(event))
    assert contains("#myroom:example.com") and contains(3)
    assert not contains(":example.com") and not contains("3") and not contains("x", "content.absent")
    assert not contains("#myroom:example.com", "content")  # not an array


@pytest.mark.parametrize(("spec", "members", "expected"), [
    ("2", 2, True), ("==2", 3, False), ("<10", 9, True), ("<10", 10, False), ("<=10", 10, True),
    (">2", 3, True), (">=3", 2, False), ("two", 2, False), ("!=2", 3, False), (" 2", 2, False),
])
def test_room_member_count(spec: str, members: int, expected: bool) -> None:
    assert condition_matches({"kind": "room_member_count", "is": spec}, ctx({}, members=members)) is expected


def test_contains_display_name_matches_whole_words() -> None:
    cond = {"kind": "contains_display_name"}
    assert condition_matches(cond, ctx({"content": {"body": "hey Alice Smith!"}}, display_name="alice smith"))
    assert not condition_matches(cond, ctx({"content": {"body": "Alicesmith"}}, display_name="Alice"))
    assert not condition_matches(cond, ctx({"content": {"body": "hey"}}, display_name=None))
    assert condition_matches(cond, ctx({"content": {"body": "ping a.b*c"}}, display_name="a.b*c"))


def test_unknown_conditions_disable_the_rule() -> None:
    assert not condition_matches({"kind": "org.example.future"}, ctx({}))
    rule = push_rules.validate_new_rule("override", "future", {"actions": ["notify", {"set_tweak": "highlight"}],
                                                                "conditions": [{"kind": "org.example.future"}]})
    assert not is_highlight(run(message(), PushRuleset.build(ME, push_rules.put_rule(None, "override", rule))))


def test_highlight_tweak_values() -> None:
    assert is_highlight([{"set_tweak": "highlight"}])
    assert not is_highlight([{"set_tweak": "highlight", "value": False}])
    assert not is_highlight(["notify", {"set_tweak": "sound", "value": "default"}])
