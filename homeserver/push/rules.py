"""A user's effective push rules: their own rules merged with the server defaults.

What is stored per user is a small document:

    {"rules": {kind: [rule, ...]},                     # the user's rules, most important first
     "defaults": {"kind/rule_id": {"enabled": bool, "actions": [...]}}}   # changes to defaults

The effective order per kind is: `.m.rule.master`, then the user's rules, then the other
defaults (spec: server-default rules rank below user rules, except the master rule). The
functions that change a document are pure, so they can run inside a retried transaction.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterator

from homeserver.push.default_rules import KINDS, MASTER_RULE_ID, for_user

Document = dict[str, Any]

# Actions from older spec versions that clients and servers must ignore.
HISTORICAL_ACTIONS = frozenset({"dont_notify", "coalesce"})


class PushRuleError(Exception):
    """A request on push rules that can't be done; `code`/`errcode` are the HTTP answer."""

    def __init__(self, code: int, errcode: str, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.errcode = errcode
        self.msg = msg


def _not_found() -> PushRuleError:
    return PushRuleError(404, "M_NOT_FOUND", "The push rule was not found.")


@dataclass(frozen=True)
class PushRule:
    kind: str
    rule_id: str
    default: bool
    enabled: bool
    actions: list[Any]
    conditions: list[dict[str, Any]] | None  # override/underride only
    pattern: str | None  # content only

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule_id": self.rule_id, "default": self.default, "enabled": self.enabled,
                               "actions": self.actions}
        if self.conditions is not None:
            out["conditions"] = self.conditions
        if self.pattern is not None:
            out["pattern"] = self.pattern
        return out


class PushRuleset:
    """The effective rules of one user, in evaluation order within each kind."""

    def __init__(self, rules: dict[str, list[PushRule]]) -> None:
        self.rules = rules

    @classmethod
    def build(cls, user_id: str, document: Document | None) -> "PushRuleset":
        document = document or {}
        user_rules = document.get("rules", {})
        changed_defaults = document.get("defaults", {})
        defaults = for_user(user_id)
        rules: dict[str, list[PushRule]] = {}
        for kind in KINDS:
            def default_rule(raw: dict[str, Any]) -> PushRule:
                change = changed_defaults.get(f"{kind}/{raw['rule_id']}", {})
                return _from_raw(kind, {**raw, **change}, default=True)

            own = [_from_raw(kind, raw, default=False) for raw in user_rules.get(kind, [])]
            kind_defaults = [default_rule(raw) for raw in defaults[kind]]
            master = [r for r in kind_defaults if r.rule_id == MASTER_RULE_ID]
            rest = [r for r in kind_defaults if r.rule_id != MASTER_RULE_ID]
            rules[kind] = master + own + rest
        return cls(rules)

    def ordered(self) -> Iterator[PushRule]:
        for kind in KINDS:
            yield from self.rules[kind]

    def find(self, kind: str, rule_id: str) -> PushRule | None:
        for rule in self.rules.get(kind, ()):
            if rule.rule_id == rule_id:
                return rule
        return None

    def to_json(self) -> dict[str, list[dict[str, Any]]]:
        return {kind: [r.to_json() for r in self.rules[kind]] for kind in KINDS}


def _from_raw(kind: str, raw: dict[str, Any], *, default: bool) -> PushRule:
    return PushRule(
        kind=kind,
        rule_id=raw["rule_id"],
        default=default,
        enabled=raw.get("enabled", True),
        actions=raw.get("actions", []),
        conditions=raw.get("conditions", []) if kind in ("override", "underride") else None,
        pattern=raw.get("pattern") if kind == "content" else None,
    )


def _is_default(rule_id: str) -> bool:
    return rule_id.startswith(".")


def _copy(document: Document | None) -> Document:
    doc = copy.deepcopy(document) if document else {}
    doc.setdefault("rules", {})
    doc.setdefault("defaults", {})
    return doc


def _default_exists(user_id: str, kind: str, rule_id: str) -> bool:
    return any(r["rule_id"] == rule_id for r in for_user(user_id)[kind])


def validate_actions(actions: Any) -> list[Any]:
    """Check an `actions` array; historical actions are dropped as the spec requires."""
    if not isinstance(actions, list):
        raise PushRuleError(400, "M_BAD_JSON", "'actions' must be an array.")
    out = []
    for action in actions:
        if isinstance(action, str):
            if action in HISTORICAL_ACTIONS:
                continue
            if action != "notify":
                raise PushRuleError(400, "M_INVALID_PARAM", f"Unknown push rule action '{action}'.")
        elif isinstance(action, dict):
            if not isinstance(action.get("set_tweak"), str):
                raise PushRuleError(400, "M_INVALID_PARAM", "An action object must have a string 'set_tweak'.")
        else:
            raise PushRuleError(400, "M_BAD_JSON", "Each action must be a string or an object.")
        out.append(action)
    return out


def validate_new_rule(kind: str, rule_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a user rule from a `PUT /pushrules/global/{kind}/{ruleId}` body."""
    if _is_default(rule_id):
        raise PushRuleError(400, "M_INVALID_PARAM", "Rule IDs starting with '.' are reserved for server-default rules.")
    if "/" in rule_id or "\\" in rule_id or not rule_id:
        raise PushRuleError(400, "M_INVALID_PARAM", "Rule IDs can't be empty or contain '/' or '\\'.")
    if "actions" not in body:
        raise PushRuleError(400, "M_MISSING_PARAM", "Missing 'actions'.")
    rule: dict[str, Any] = {"rule_id": rule_id, "actions": validate_actions(body["actions"])}
    if kind in ("override", "underride"):
        conditions = body.get("conditions", [])
        if not isinstance(conditions, list) or not all(
            isinstance(c, dict) and isinstance(c.get("kind"), str) for c in conditions
        ):
            raise PushRuleError(400, "M_BAD_JSON", "'conditions' must be an array of objects with a string 'kind'.")
        rule["conditions"] = conditions
    elif kind == "content":
        pattern = body.get("pattern")
        if pattern is None:
            raise PushRuleError(400, "M_MISSING_PARAM", "Content rules need a 'pattern'.")
        if not isinstance(pattern, str):
            raise PushRuleError(400, "M_BAD_JSON", "'pattern' must be a string.")
        rule["pattern"] = pattern
    elif kind == "room" and not rule_id.startswith("!"):
        raise PushRuleError(400, "M_INVALID_PARAM", "The rule ID of a room rule must be a room ID.")
    elif kind == "sender" and not rule_id.startswith("@"):
        raise PushRuleError(400, "M_INVALID_PARAM", "The rule ID of a sender rule must be a user ID.")
    return rule


def put_rule(document: Document | None, kind: str, rule: dict[str, Any], *, before: str | None = None,
             after: str | None = None) -> Document:
    """Add or replace a user rule (already validated), placed per `before`/`after`."""
    doc = _copy(document)
    rules: list[dict[str, Any]] = doc["rules"].setdefault(kind, [])
    index = next((i for i, r in enumerate(rules) if r["rule_id"] == rule["rule_id"]), None)
    if index is not None:
        rule = {**rule, "enabled": rules[index].get("enabled", True)}
    else:
        rule = {**rule, "enabled": True}
    anchor = before if before is not None else after
    if anchor is None:
        if index is not None:
            rules[index] = rule
        else:
            rules.insert(0, rule)
        return doc
    if _is_default(anchor):
        raise PushRuleError(400, "M_INVALID_PARAM", "Rules can't be placed relative to a server-default rule.")
    if index is not None:
        del rules[index]
    position = next((i for i, r in enumerate(rules) if r["rule_id"] == anchor), None)
    if position is None:
        raise PushRuleError(400, "M_UNKNOWN", f"before/after rule not found: {anchor}")
    rules.insert(position if before is not None else position + 1, rule)
    return doc


def delete_rule(document: Document | None, kind: str, rule_id: str) -> Document:
    if _is_default(rule_id):
        raise PushRuleError(400, "M_INVALID_PARAM", "Server-default rules can't be deleted; disable them instead.")
    doc = _copy(document)
    rules = doc["rules"].get(kind, [])
    remaining = [r for r in rules if r["rule_id"] != rule_id]
    if len(remaining) == len(rules):
        raise _not_found()
    doc["rules"][kind] = remaining
    return doc


def set_attribute(document: Document | None, user_id: str, kind: str, rule_id: str, attr: str, value: Any) -> Document:
    """Set `enabled` or `actions` of a user rule or of a server-default rule."""
    doc = _copy(document)
    if _is_default(rule_id):
        if not _default_exists(user_id, kind, rule_id):
            raise _not_found()
        doc["defaults"].setdefault(f"{kind}/{rule_id}", {})[attr] = value
        return doc
    for rule in doc["rules"].get(kind, []):
        if rule["rule_id"] == rule_id:
            rule[attr] = value
            return doc
    raise _not_found()
