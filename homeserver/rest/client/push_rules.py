"""`/pushrules/`: reading and changing the requester's push rules (only the `global` scope exists)."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.push.default_rules import KINDS
from homeserver.http.errors import invalid_param
from homeserver.http.parse import query_str, read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer

_RULE = "/pushrules/(?P<scope>[^/]+)/(?P<kind>[^/]+)/(?P<rule_id>[^/]+)"


def check_path(scope: str, kind: str) -> None:
    if scope != "global":
        raise invalid_param("The only push rule scope is 'global'.")
    if kind not in KINDS:
        raise invalid_param(f"Unknown push rule kind '{kind}': expected one of {', '.join(KINDS)}.")


class PushRulesServlet(Servlet):
    PATTERNS = client_patterns("/pushrules/?")

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        ruleset = await self.hs.push_rules_handler.get_ruleset(requester.user_id)
        return HTTPStatus.OK, {"global": ruleset.to_json()}


class GlobalPushRulesServlet(Servlet):
    PATTERNS = client_patterns("/pushrules/global/?")

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        ruleset = await self.hs.push_rules_handler.get_ruleset(requester.user_id)
        return HTTPStatus.OK, ruleset.to_json()


class PushRuleServlet(Servlet):
    PATTERNS = client_patterns(_RULE)

    async def on_GET(self, request: PimanRequest, scope: str, kind: str, rule_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        check_path(scope, kind)
        rule = await self.hs.push_rules_handler.get_rule(requester.user_id, kind, rule_id)
        return HTTPStatus.OK, rule.to_json()

    async def on_PUT(self, request: PimanRequest, scope: str, kind: str, rule_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        check_path(scope, kind)
        body = read_json_object(request)
        await self.hs.push_rules_handler.put_rule(
            requester.user_id, kind, rule_id, body.data,
            before=query_str(request, "before", None), after=query_str(request, "after", None),
        )
        return HTTPStatus.OK, {}

    async def on_DELETE(self, request: PimanRequest, scope: str, kind: str, rule_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        check_path(scope, kind)
        await self.hs.push_rules_handler.delete_rule(requester.user_id, kind, rule_id)
        return HTTPStatus.OK, {}


class PushRuleEnabledServlet(Servlet):
    PATTERNS = client_patterns(_RULE + "/enabled")

    async def on_GET(self, request: PimanRequest, scope: str, kind: str, rule_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        check_path(scope, kind)
        rule = await self.hs.push_rules_handler.get_rule(requester.user_id, kind, rule_id)
        return HTTPStatus.OK, {"enabled": rule.enabled}

    async def on_PUT(self, request: PimanRequest, scope: str, kind: str, rule_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        check_path(scope, kind)
        enabled = read_json_object(request).bool("enabled")
        await self.hs.push_rules_handler.set_enabled(requester.user_id, kind, rule_id, enabled)
        return HTTPStatus.OK, {}


class PushRuleActionsServlet(Servlet):
    PATTERNS = client_patterns(_RULE + "/actions")

    async def on_GET(self, request: PimanRequest, scope: str, kind: str, rule_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        check_path(scope, kind)
        rule = await self.hs.push_rules_handler.get_rule(requester.user_id, kind, rule_id)
        return HTTPStatus.OK, {"actions": rule.actions}

    async def on_PUT(self, request: PimanRequest, scope: str, kind: str, rule_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        check_path(scope, kind)
        body = read_json_object(request)
        actions = body.list("actions")
        await self.hs.push_rules_handler.set_actions(requester.user_id, kind, rule_id, actions)
        return HTTPStatus.OK, {}


def servlets(hs: "HomeServer") -> list[Any]:
    return [PushRulesServlet(hs), GlobalPushRulesServlet(hs), PushRuleServlet(hs), PushRuleEnabledServlet(hs),
            PushRuleActionsServlet(hs)]
