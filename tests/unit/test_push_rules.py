"""The push-rule document: defaults, ordering with before/after, and what can't be changed."""

from __future__ import annotations

import pytest

from homeserver.push import rules as push_rules
from homeserver.push.default_rules import DEFAULT_RULES, KINDS
from homeserver.push.rules import PushRuleError, PushRuleset

ME = "@me:example.org"


def ids(doc: dict | None, kind: str) -> list[str]:
    return [r.rule_id for r in PushRuleset.build(ME, doc).rules[kind]]


def rule(kind: str, rule_id: str, **body: object) -> dict:
    return push_rules.validate_new_rule(kind, rule_id, {"actions": ["notify"], **body})


def test_defaults_follow_the_spec_and_name_the_owner() -> None:
    ruleset = PushRuleset.build(ME, None).to_json()
    assert list(ruleset) == list(KINDS)
    assert [r["rule_id"] for r in ruleset["override"]] == [
        ".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me", ".m.rule.member_event",
        ".m.rule.is_user_mention", ".m.rule.is_room_mention", ".m.rule.tombstone", ".m.rule.reaction",
        ".m.rule.room.server_acl", ".m.rule.suppress_edits"]
    assert [r["rule_id"] for r in ruleset["underride"]] == [
        ".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one", ".m.rule.message",
        ".m.rule.encrypted"]
    assert all(r["default"] for kind in KINDS for r in ruleset[kind])
    assert ruleset["override"][0]["enabled"] is False
    invite = next(r for r in ruleset["override"] if r["rule_id"] == ".m.rule.invite_for_me")
    assert {"key": "state_key", "kind": "event_match", "pattern": ME} in invite["conditions"]
    mention = next(r for r in ruleset["override"] if r["rule_id"] == ".m.rule.is_user_mention")
    assert mention["conditions"][0]["value"] == ME
    assert "[the user's Matrix ID]" in str(DEFAULT_RULES)  # the template itself is untouched


def test_new_rules_go_first_and_before_after_place_them() -> None:
    doc = push_rules.put_rule(None, "override", rule("override", "a", conditions=[]))
    doc = push_rules.put_rule(doc, "override", rule("override", "b", conditions=[]))
    assert ids(doc, "override")[:3] == [".m.rule.master", "b", "a"]
    doc = push_rules.put_rule(doc, "override", rule("override", "c", conditions=[]), after="a")
    assert ids(doc, "override")[1:4] == ["b", "a", "c"]
    doc = push_rules.put_rule(doc, "override", rule("override", "c", conditions=[]), before="b")
    assert ids(doc, "override")[1:4] == ["c", "b", "a"]
    # before wins when both are given
    doc = push_rules.put_rule(doc, "override", rule("override", "d", conditions=[]), before="a", after="c")
    assert ids(doc, "override")[1:5] == ["c", "b", "d", "a"]
    assert ids(doc, "override")[5] == ".m.rule.suppress_notices"


def test_updating_keeps_position_and_enabled_state() -> None:
    doc = push_rules.put_rule(None, "content", rule("content", "x", pattern="one"))
    doc = push_rules.put_rule(doc, "content", rule("content", "y", pattern="two"))
    doc = push_rules.set_attribute(doc, ME, "content", "x", "enabled", False)
    doc = push_rules.put_rule(doc, "content", rule("content", "x", pattern="three"))
    ruleset = PushRuleset.build(ME, doc)
    assert ids(doc, "content") == ["y", "x"]
    x = ruleset.find("content", "x")
    assert x is not None and x.pattern == "three" and x.enabled is False
    assert x.to_json() == {"rule_id": "x", "default": False, "enabled": False, "actions": ["notify"], "pattern": "three"}


def test_put_rule_does_not_change_the_input_document() -> None:
    doc = push_rules.put_rule(None, "sender", rule("sender", "@a:x"))
    before = repr(doc)
    push_rules.put_rule(doc, "sender", rule("sender", "@b:x"))
    push_rules.delete_rule(doc, "sender", "@a:x")
    assert repr(doc) == before


@pytest.mark.parametrize(("kind", "rule_id", "body", "errcode"), [
    ("override", ".m.rule.mine", {"actions": []}, "M_INVALID_PARAM"),
    ("override", "a\\b", {"actions": []}, "M_INVALID_PARAM"),
    ("override", "a/b", {"actions": []}, "M_INVALID_PARAM"),
    ("override", "x", {}, "M_MISSING_PARAM"),
    ("override", "x", {"actions": "notify"}, "M_BAD_JSON"),
    ("override", "x", {"actions": ["shout"]}, "M_INVALID_PARAM"),
    ("override", "x", {"actions": [{"value": 1}]}, "M_INVALID_PARAM"),
    ("override", "x", {"actions": [], "conditions": [{"key": "type"}]}, "M_BAD_JSON"),
    ("content", "x", {"actions": []}, "M_MISSING_PARAM"),
    ("content", "x", {"actions": [], "pattern": 5}, "M_BAD_JSON"),
    ("room", "not-a-room", {"actions": []}, "M_INVALID_PARAM"),
    ("sender", "not-a-user", {"actions": []}, "M_INVALID_PARAM"),
])
def test_invalid_rules(kind: str, rule_id: str, body: dict, errcode: str) -> None:
    with pytest.raises(PushRuleError) as e:
        push_rules.validate_new_rule(kind, rule_id, body)
    assert e.value.errcode == errcode and e.value.code == 400


def test_anchors_must_be_user_rules_that_exist() -> None:
    doc = push_rules.put_rule(None, "underride", rule("underride", "a", conditions=[]))
    with pytest.raises(PushRuleError) as e:
        push_rules.put_rule(doc, "underride", rule("underride", "b", conditions=[]), before="nope")
    assert e.value.code == 400
    with pytest.raises(PushRuleError) as e:
        push_rules.put_rule(doc, "underride", rule("underride", "b", conditions=[]), after=".m.rule.message")
    assert e.value.code == 400


def test_defaults_can_be_disabled_but_not_deleted() -> None:
    doc = push_rules.set_attribute(None, ME, "underride", ".m.rule.message", "actions", [])
    assert PushRuleset.build(ME, doc).find("underride", ".m.rule.message").actions == []  # type: ignore[union-attr]
    with pytest.raises(PushRuleError) as e:
        push_rules.delete_rule(doc, "underride", ".m.rule.message")
    assert e.value.code == 400
    for call in (lambda: push_rules.set_attribute(None, ME, "override", ".m.rule.nope", "enabled", True),
                 lambda: push_rules.set_attribute(None, ME, "content", ".m.rule.message", "enabled", True),
                 lambda: push_rules.set_attribute(None, ME, "room", "!x:y", "enabled", True),
                 lambda: push_rules.delete_rule(None, "room", "!x:y")):
        with pytest.raises(PushRuleError) as e:
            call()
        assert e.value.code == 404
