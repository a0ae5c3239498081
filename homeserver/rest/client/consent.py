"""`/_matrix/client/unstable/org.piman.consent`: the current privacy policy, and accepting it.

`GET` tells the user which version applies, where to read it and whether (and when) they
accepted it; `POST {"version": ...}` accepts it: JSON, so our clients can show the policy their
own way. Synapse's HTML page at `/_matrix/consent`, which Element opens from M_CONSENT_NOT_GIVEN,
is served beside it (homeserver/rest/consent_page.py).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import MatrixError
from homeserver.http.parse import read_json_object
from homeserver.http.router import Servlet
from homeserver.http.site import PimanRequest
from homeserver.rest import consent_page

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class ConsentServlet(Servlet):
    PATTERNS = ["/_matrix/client/unstable/org.piman.consent"]

    def _policy(self) -> Any:
        policy = self.hs.consent_handler.policy
        if policy is None:
            raise MatrixError(HTTPStatus.NOT_FOUND, "M_NOT_FOUND", "This server has no privacy policy.")
        return policy

    def _answer(self, policy: Any, accepted_ts: int | None) -> dict[str, Any]:
        return {
            "version": policy.version,
            "url": policy.url,
            "name": policy.name,
            "lang": policy.lang,
            "required": self.hs.config.require_consent,
            "accepted": accepted_ts is not None,
            "accepted_ts": accepted_ts,
        }

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        policy = self._policy()
        return HTTPStatus.OK, self._answer(policy, await self.hs.consent_handler.accepted_ts(requester.user_id))

    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request, allow_guest=True)
        policy = self._policy()
        version = read_json_object(request).str("version")
        accepted_ts = await self.hs.consent_handler.accept(requester.user_id, version)
        return HTTPStatus.OK, self._answer(policy, accepted_ts)


def servlets(hs: "HomeServer") -> list[Any]:
    return [ConsentServlet(hs), *consent_page.servlets(hs)]
