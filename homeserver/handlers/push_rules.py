"""Push rules per user: reading the effective ruleset (cached, as every sent event evaluates the
rules of each member) and the `/pushrules` changes, which reach clients as `m.push_rules`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from homeserver.http.errors import MatrixError
from homeserver.push import rules as push_rules
from homeserver.push.rules import Document, PushRule, PushRuleError, PushRuleset

if TYPE_CHECKING:
    from homeserver.server import HomeServer


def _matrix_error(e: PushRuleError) -> MatrixError:
    return MatrixError(e.code, e.errcode, e.msg)


class PushRulesHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store.push_rules
        # user_id -> (ruleset, stream position of the stored document, 0 if none)
        self._cache: dict[str, tuple[PushRuleset, int]] = {}

    async def _load(self, user_id: str) -> tuple[PushRuleset, int]:
        cached = self._cache.get(user_id)
        if cached is None:
            stored = await self._store.get_rules(user_id)
            document, position = stored if stored is not None else (None, 0)
            cached = self._cache[user_id] = (PushRuleset.build(user_id, document), position)
        return cached

    async def get_ruleset(self, user_id: str) -> PushRuleset:
        return (await self._load(user_id))[0]

    async def get_ruleset_if_changed(self, user_id: str, from_pos: int, to_pos: int, *,
                                     initial: bool) -> PushRuleset | None:
        """The ruleset if a sync from `from_pos` to `to_pos` must send it (always on an initial sync)."""
        ruleset, position = await self._load(user_id)
        if initial or from_pos < position <= to_pos:
            return ruleset
        return None

    async def get_rule(self, user_id: str, kind: str, rule_id: str) -> PushRule:
        rule = (await self.get_ruleset(user_id)).find(kind, rule_id)
        if rule is None:
            raise MatrixError(404, "M_NOT_FOUND", "The push rule was not found.")
        return rule

    async def _update(self, user_id: str, mutate: Callable[[Document | None], Document]) -> None:
        try:
            position, document = await self._store.update_rules(user_id, mutate)
        except PushRuleError as e:
            raise _matrix_error(e) from None
        self._cache[user_id] = (PushRuleset.build(user_id, document), position)
        self._hs.account_data_handler.push_rules_changed(user_id, position)

    async def put_rule(self, user_id: str, kind: str, rule_id: str, body: dict[str, Any], *,
                       before: str | None, after: str | None) -> None:
        try:
            rule = push_rules.validate_new_rule(kind, rule_id, body)
        except PushRuleError as e:
            raise _matrix_error(e) from None
        await self._update(user_id, lambda doc: push_rules.put_rule(doc, kind, rule, before=before, after=after))

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> None:
        await self._update(user_id, lambda doc: push_rules.delete_rule(doc, kind, rule_id))

    async def set_enabled(self, user_id: str, kind: str, rule_id: str, enabled: bool) -> None:
        await self._update(user_id, lambda doc: push_rules.set_attribute(doc, user_id, kind, rule_id, "enabled", enabled))

    async def set_actions(self, user_id: str, kind: str, rule_id: str, actions: Any) -> None:
        try:
            checked = push_rules.validate_actions(actions)
        except PushRuleError as e:
            raise _matrix_error(e) from None
        await self._update(user_id, lambda doc: push_rules.set_attribute(doc, user_id, kind, rule_id, "actions", checked))
