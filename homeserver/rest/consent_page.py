"""`/_matrix/consent`: the page where a user reads about the privacy policy and accepts it.

Element (like other clients) shows M_CONSENT_NOT_GIVEN's `consent_uri` as a link the user opens in
a browser, which has no access token: as in Synapse, the link itself authenticates its reader,
`?u=<localpart or user ID>&h=<hex HMAC-SHA256 of u keyed with form_secret>`. Without `u`, the
page shows the policy to anyone (say, before registering), without a form. The policy's text is
not hosted here: the page names it and links to `privacy_policy.url`. Works without JavaScript.
"""

from __future__ import annotations

import time
import urllib.parse
from html import escape
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.html import respond_html
from homeserver.http.router import Servlet
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer


def _first(values: dict[bytes, list[bytes]], name: str) -> str:
    found = values.get(name.encode("ascii"))
    return found[0].decode("utf-8", "replace") if found else ""


def _when(ts_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts_ms / 1000))


class ConsentPageServlet(Servlet):
    PATTERNS = ["/_matrix/consent"]

    def _page(self, request: PimanRequest, code: int, title: str, body: str) -> tuple[int, None]:
        policy = self.hs.consent_handler.policy
        respond_html(request, code, title, f"<h1>{escape(title)}</h1>{body}",
                     lang=policy.lang if policy is not None else "en")
        return code, None

    def _policy_html(self, policy: Any) -> str:
        return (
            f"<p>Version <strong>{escape(policy.version)}</strong> of the {escape(policy.name)} of "
            f"{escape(self.hs.hostname)} applies.</p>"
            f'<p><a href="{escape(policy.url)}" target="_blank" rel="noopener noreferrer">'
            f"Read the {escape(policy.name)}</a> (opens {escape(policy.url)}).</p>"
        )

    def _refused(self, request: PimanRequest) -> tuple[int, None]:
        return self._page(request, HTTPStatus.FORBIDDEN, "This link is not valid",
                          "<p>The link to this page is incomplete or was changed. Open the link your Matrix "
                          "client or server notice gave you once more, in full.</p>")

    async def _user(self, request: PimanRequest, u: str, h: str) -> str | tuple[int, None]:
        """The user the link names, or the error page already sent."""
        user_id = self.hs.consent_handler.user_of_consent_link(u, h)
        if user_id is None:
            return self._refused(request)
        user = await self.hs.store.users.get_user(user_id)
        if user is None or user.deactivated:
            return self._page(request, HTTPStatus.NOT_FOUND, "No such account",
                              "<p>This link is for an account that doesn't exist (any more).</p>")
        return user_id

    def _no_policy(self, request: PimanRequest) -> tuple[int, None]:
        return self._page(request, HTTPStatus.NOT_FOUND, "No privacy policy",
                          "<p>This server has no privacy policy to accept.</p>")

    async def on_GET(self, request: PimanRequest) -> tuple[int, None]:
        consent = self.hs.consent_handler
        policy = consent.policy
        if policy is None:
            return self._no_policy(request)
        assert request.args is not None
        u, h = _first(request.args, "u"), _first(request.args, "h")
        if not u:  # anyone may read which policy applies; accepting needs a user's link
            return self._page(request, HTTPStatus.OK, policy.name, self._policy_html(policy))
        user_id = await self._user(request, u, h)
        if not isinstance(user_id, str):
            return user_id
        accepted_ts = await consent.accepted_ts(user_id)
        if accepted_ts is not None:
            action = (f'<p class="note">{escape(user_id)} accepted this version on {_when(accepted_ts)}. '
                      "There is nothing more to do.</p>")
        else:
            action = (
                '<form method="post" action="consent">'
                f'<input type="hidden" name="u" value="{escape(u)}">'
                f'<input type="hidden" name="h" value="{escape(h)}">'
                f'<input type="hidden" name="v" value="{escape(policy.version)}">'
                f"<p>Accepting as <strong>{escape(user_id)}</strong>.</p>"
                '<button type="submit">I accept</button></form>'
            )
        return self._page(request, HTTPStatus.OK, policy.name, self._policy_html(policy) + action)

    async def on_POST(self, request: PimanRequest) -> tuple[int, None]:
        consent = self.hs.consent_handler
        policy = consent.policy
        if policy is None:
            return self._no_policy(request)
        assert request.content is not None
        request.content.seek(0)
        form = urllib.parse.parse_qs(request.content.read())  # the form's fields, not the query string
        u, h, version = _first(form, "u"), _first(form, "h"), _first(form, "v")
        user_id = await self._user(request, u, h)
        if not isinstance(user_id, str):
            return user_id
        if version != policy.version:
            again = "consent?" + urllib.parse.urlencode({"u": u, "h": h})
            return self._page(request, HTTPStatus.CONFLICT, "The policy has changed",
                              f"<p>Version {escape(policy.version)} applies now, not the one you accepted. "
                              f'<a href="{escape(again)}">Read it and accept it</a>.</p>')
        accepted_ts = await consent.accept(user_id, version)
        return self._page(request, HTTPStatus.OK, "Thank you",
                          f"<p>{escape(user_id)} accepted version {escape(policy.version)} of the "
                          f"{escape(policy.name)} of {escape(self.hs.hostname)} on {_when(accepted_ts)}.</p>"
                          "<p>You can close this page and go back to your Matrix client.</p>")


def servlets(hs: "HomeServer") -> list[Any]:
    return [ConsentPageServlet(hs)]
