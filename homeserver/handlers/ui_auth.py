"""User-interactive authentication (UIA), the spec's multi-stage auth for sensitive requests.

Sessions are kept in the database, so a restart doesn't break a registration half-way. A session
is bound to the endpoint (method + path) it started on: its completed stages can't be spent on a
different operation. The request body a client first sent is kept sealed, minus secrets, so that
clients which only resend `auth` on later rounds still get the operation they asked for.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from homeserver.auth import Requester
from homeserver.http.errors import MatrixError, bad_json
from homeserver.http.parse import JsonFields
from homeserver.http.site import PimanRequest
from homeserver.identifiers import UserIdentifierError, resolve_login_identifier

if TYPE_CHECKING:
    from homeserver.server import HomeServer

SESSION_LIFETIME_MS = 30 * 60 * 1000

# Never stored with the session: the client resends them when it needs them.
_SECRET_FIELDS = frozenset({"auth", "password", "new_password"})


class UIAIncomplete(MatrixError):
    """401 telling the client which flows exist and what it has done so far."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(HTTPStatus.UNAUTHORIZED, body.get("errcode", "M_FORBIDDEN"), body.get("error", ""))
        self.body = body

    def to_json(self) -> dict[str, Any]:
        return self.body


@dataclass(frozen=True)
class UIAResult:
    session_id: str
    completed: dict[str, Any]
    clientdict: dict[str, Any]


StageChecker = Callable[[JsonFields, "Requester | None", PimanRequest], Awaitable[Any]]


class UserInteractiveAuth:
    def __init__(self, hs: "HomeServer") -> None:
        self._store = hs.store
        self._clock = hs.clock
        self._hs = hs
        self._checkers: dict[str, StageChecker] = {
            "m.login.dummy": self._check_dummy,
            "m.login.password": self._check_password,
            "m.login.registration_token": self._check_registration_token,
            "m.login.terms": self._check_terms,
        }

    async def check(
        self,
        request: PimanRequest,
        body: JsonFields,
        *,
        flows: list[list[str]],
        description: str,
        requester: Requester | None = None,
        params: dict[str, Any] | None = None,
    ) -> UIAResult:
        """Return once a flow is complete; otherwise raise the spec's 401 with the flows."""
        auth = body.obj("auth", None)
        uri = request.path.decode("ascii", "replace")
        method = request.method.decode("ascii")
        now = self._clock.time_msec()
        session_id = auth.str("session", None) if auth is not None else None

        if session_id is None:
            session_id = secrets.token_urlsafe(18)
            clientdict = {k: v for k, v in body.data.items() if k not in _SECRET_FIELDS}
            await self._store.ui_auth.create_session(session_id, now, uri, method, description, clientdict)
            stored_clientdict: dict[str, Any] = clientdict
        else:
            session = await self._store.ui_auth.get_session(session_id)
            if session is None or session.creation_time < now - SESSION_LIFETIME_MS:
                raise MatrixError(HTTPStatus.BAD_REQUEST, "M_UNKNOWN",
                                  "Unknown or expired authentication session: start again without 'session'.")
            if session.uri != uri or session.method != method:
                raise MatrixError(HTTPStatus.FORBIDDEN, "M_FORBIDDEN",
                                  "This authentication session was started for a different request.")
            stored_clientdict = session.clientdict

        completed = await self._store.ui_auth.get_completed_stages(session_id)
        failure: MatrixError | None = None
        if auth is not None and auth.has("type"):
            stage = auth.str("type")
            allowed_stages = {s for flow in flows for s in flow}
            if stage not in allowed_stages:
                failure = MatrixError(HTTPStatus.BAD_REQUEST, "M_UNRECOGNIZED",
                                      f"Authentication type '{stage}' is not offered for this request.")
            else:
                try:
                    result = await self._checkers[stage](auth, requester, request)
                except UIAIncomplete:
                    raise
                except MatrixError as e:
                    if e.code == HTTPStatus.TOO_MANY_REQUESTS:
                        raise
                    failure = e
                else:
                    await self._store.ui_auth.mark_stage_complete(session_id, stage, result)
                    completed[stage] = result

        for flow in flows:
            if all(stage in completed for stage in flow):
                merged = {**stored_clientdict, **{k: v for k, v in body.data.items() if k != "auth"}}
                return UIAResult(session_id, completed, merged)

        response: dict[str, Any] = {
            "flows": [{"stages": flow} for flow in flows],
            "params": {**self._stage_params(flows), **(params or {})},
            "session": session_id,
        }
        if completed:
            response["completed"] = sorted(completed)
        if failure is not None:
            response["errcode"] = failure.errcode
            response["error"] = failure.msg
        raise UIAIncomplete(response)

    async def finish(self, session_id: str) -> None:
        """Forget a session whose operation went through: it can't be replayed."""
        await self._store.ui_auth.delete_session(session_id)

    async def expire_old_sessions(self) -> None:
        await self._store.ui_auth.delete_sessions_older_than(self._clock.time_msec() - SESSION_LIFETIME_MS)

    async def _check_dummy(self, auth: JsonFields, requester: Requester | None, request: PimanRequest) -> bool:
        return True

    async def _check_password(self, auth: JsonFields, requester: Requester | None, request: PimanRequest) -> str:
        password = auth.str("password")
        try:
            claimed = resolve_login_identifier(auth, self._hs.hostname)
        except UserIdentifierError as e:
            raise bad_json(str(e)) from None
        user_id = await self._hs.login_handler.check_password_login(claimed, password, request)
        if requester is not None and user_id != requester.user_id:
            raise MatrixError(HTTPStatus.FORBIDDEN, "M_FORBIDDEN", "You can only authenticate as yourself.")
        return user_id

    def _stage_params(self, flows: list[list[str]]) -> dict[str, Any]:
        """What clients need to show a stage: the policies to accept for `m.login.terms`."""
        if any("m.login.terms" in flow for flow in flows):
            return {"m.login.terms": self._hs.consent_handler.terms_params()}
        return {}

    async def _check_terms(self, auth: JsonFields, requester: Requester | None, request: PimanRequest) -> str:
        """The client says its user accepted the policies in `params`: the version, recorded once the
        operation (registration) has made the account."""
        version = self._hs.consent_handler.version
        if version is None:
            raise MatrixError(HTTPStatus.BAD_REQUEST, "M_UNRECOGNIZED", "This server has no terms to accept.")
        return version

    async def _check_registration_token(self, auth: JsonFields, requester: Requester | None,
                                        request: PimanRequest) -> str:
        """Reserve one use of the token; the registration completes or releases it."""
        token = auth.str("token")
        if not await self._store.registration_tokens.set_token_pending(token, self._clock.time_msec()):
            raise MatrixError(HTTPStatus.UNAUTHORIZED, "M_FORBIDDEN", "Invalid or exhausted registration token.")
        return token
