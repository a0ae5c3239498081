"""Privacy policy consent: what registration asks users to accept, recording their acceptance, and
`require_consent`'s refusal of writes from users who haven't accepted the current version.

Whether a user accepted the current version is asked on every message send when consent is
required, so the answer is kept in memory; this process is the only writer of consents, and
accepting updates the memory at once, so a refused user is unblocked by their next request.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall

from homeserver.auth import Requester
from homeserver.http.errors import MatrixError, invalid_param

if TYPE_CHECKING:
    from homeserver.server import HomeServer

logger = logging.getLogger(__name__)

TERMS_STAGE = "m.login.terms"
POLICY_ID = "privacy_policy"
NOTICE_TYPE = "org.piman.privacy_policy"
# Users told per batch of the announcement job; each notice is its own transactions.
ANNOUNCE_BATCH = 50
# After a failed run (say, the database was unreachable), the announcement is tried again.
ANNOUNCE_RETRY_S = 600


def consent_not_given(url: str) -> MatrixError:
    return MatrixError(
        HTTPStatus.FORBIDDEN, "M_CONSENT_NOT_GIVEN",
        f"You must accept this server's privacy policy before you can do this: read it at {url} and "
        "accept it in your client (or POST {\"version\": ...} to /_matrix/client/unstable/org.piman.consent).",
        consent_uri=url,
    )


class ConsentHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store.consent
        self._clock = hs.clock
        self.policy = hs.config.privacy_policy
        self._required = hs.config.require_consent and self.policy is not None
        # user ID -> whether they accepted the current version.
        self._accepted: dict[str, bool] = {}
        self._announced = self.policy is None
        self._stopping = False
        self._running: defer.Deferred[None] | None = None
        self._retry: IDelayedCall | None = None

    @property
    def version(self) -> str | None:
        return self.policy.version if self.policy is not None else None

    def terms_params(self) -> dict[str, Any]:
        """The `m.login.terms` UIA params (spec: "Terms of service at registration")."""
        if self.policy is None:
            return {}
        return {"policies": {POLICY_ID: {
            "version": self.policy.version,
            self.policy.lang: {"name": self.policy.name, "url": self.policy.url},
        }}}

    async def accept(self, user_id: str, version: str) -> int:
        """Record that `user_id` accepted `version` (the current one); returns when they first did."""
        if self.policy is None:
            raise MatrixError(HTTPStatus.NOT_FOUND, "M_NOT_FOUND", "This server has no privacy policy to accept.")
        if version != self.policy.version:
            raise invalid_param(f"Version '{version}' is not the current privacy policy: the current version is "
                                f"'{self.policy.version}', at {self.policy.url}.")
        return await self.record(user_id, version)

    async def record(self, user_id: str, version: str) -> int:
        """Record an acceptance of `version` as given (at registration, the version shown then)."""
        accepted_ts = await self._store.record_consent(user_id, version, self._clock.time_msec())
        if self.policy is not None and version == self.policy.version:
            self._accepted[user_id] = True
        return accepted_ts

    async def accepted_ts(self, user_id: str) -> int | None:
        """When `user_id` accepted the current version, or None."""
        if self.policy is None:
            return None
        return await self._store.get_consent_ts(user_id, self.policy.version)

    async def has_accepted(self, user_id: str) -> bool:
        accepted = self._accepted.get(user_id)
        if accepted is None:
            accepted = await self.accepted_ts(user_id) is not None
            self._accepted[user_id] = accepted
        return accepted

    async def require_consent(self, requester: Requester, room_id: str | None = None) -> None:
        """With `require_consent`, refuse a write by a user who hasn't accepted the current version.

        Called by the client API's room writes (send, state, join, invite, create...), not by the
        admin API nor by the server's own notices. Joining one's server-notices room stays possible:
        that is where the user reads about the policy.
        """
        if not self._required or await self.has_accepted(requester.user_id):
            return
        notices = self._hs.server_notices
        if requester.user_id == notices.system_user_id:
            return
        if room_id is not None and room_id.startswith("!") and await notices.is_notices_room(room_id):
            return
        assert self.policy is not None
        raise consent_not_given(self.policy.url)

    # -- announcing a new version ----------------------------------------------

    def start_announcing(self) -> None:
        """Announce the current version in the background (from start-up); a failed run is retried later."""
        if not self._announced and not self._stopping:
            self._running = defer.ensureDeferred(self._announce_in_background())

    async def _announce_in_background(self) -> None:
        try:
            await self.announce_current_version()
        except Exception:
            logger.exception("Announcing the privacy policy failed; trying again in %d s", ANNOUNCE_RETRY_S)
            if not self._stopping:
                self._retry = self._clock.call_later(ANNOUNCE_RETRY_S, self.start_announcing)

    async def wait_for_announcement(self) -> None:
        """Wait until the background announcement run (if any) ends."""
        if self._running is None:
            return
        ended: defer.Deferred[None] = defer.Deferred()

        def passthrough(result: Any) -> Any:
            ended.callback(None)
            return result

        self._running.addBoth(passthrough)
        await ended

    async def stop_announcing(self) -> None:
        """At shutdown: stop the announcement after its current notice (a restart resumes it)."""
        self._stopping = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        await self.wait_for_announcement()

    async def announce_current_version(self, *, batch_size: int = ANNOUNCE_BATCH,
                                       max_batches: int | None = None) -> bool:
        """Tell every local user about the current version in a server notice; True once all were told.

        Runs in the background from start-up: users are walked in batches, each notice in its own
        transactions, progress stored after every batch, so a restart resumes where this stopped.
        Users who accepted this version already (e.g. at registration) or were told already are
        skipped, so a version is announced to a user at most once. `max_batches` bounds one run.
        """
        if self._announced:
            return True
        assert self.policy is not None
        version = self.policy.version
        job = await self._store.get_or_start_announcement(version, self._clock.time_msec())
        cursor, batches = job.last_user_id, 0
        while not job.finished and not self._stopping:
            if max_batches is not None and batches >= max_batches:
                return False
            users = await self._store.users_to_announce(
                version, after_user_id=cursor, created_before_ts=job.started_ts,
                exclude_user_id=self._hs.server_notices.system_user_id, limit=batch_size)
            if not users:
                await self._store.finish_announcement(version, self._clock.time_msec())
                logger.info("Privacy policy version %s announced to every user", version)
                break
            for user_id in users:
                if self._stopping:
                    return False
                await self.notify_user(user_id)
            cursor, batches = users[-1], batches + 1
            await self._store.advance_announcement(version, cursor)
            await self._clock.sleep(0)  # let requests run between batches
        self._announced = not self._stopping
        return self._announced

    async def notify_user(self, user_id: str) -> None:
        """Send `user_id` the notice about the current version, unless they had it already."""
        assert self.policy is not None
        version, url = self.policy.version, self.policy.url
        if await self._store.was_notified(user_id, version):
            return
        action = " You need to accept it before you can send messages again." if self._required else ""
        body = (f"The privacy policy of {self._hs.hostname} has changed: version {version} now applies. "
                f"Read it at {url}.{action}")
        content = {
            "msgtype": "m.server_notice",
            "server_notice_type": NOTICE_TYPE,
            "body": body,
            NOTICE_TYPE: {"version": version, "url": url},
        }
        sent = await self._hs.server_notices.send_notice(user_id, content, txn_id=f"privacy_policy/{version}/{user_id}")
        await self._store.record_notice(user_id, version, sent.event.event_id, self._clock.time_msec())
