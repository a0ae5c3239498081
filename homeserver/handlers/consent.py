"""Privacy policy consent: what registration asks users to accept, recording their acceptance,
`require_consent`'s refusal of writes from users who haven't accepted the current version, and
telling every user about the current version in a server notice.

Refused users are sent to the consent page (/_matrix/consent) by a link signed as Synapse signs
it, `?u=<localpart>&h=<hex HMAC-SHA256 of u keyed with form_secret>`, so Element's handling of
M_CONSENT_NOT_GIVEN (open `consent_uri` in a browser) works: the link is the user's credential
there, as the browser has no access token.

Whether a user accepted the current version is asked on every message send when consent is
required, so the answer is kept in memory; this process is the only writer of consents, and
accepting updates the memory at once, so a refused user is unblocked by their next request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import urllib.parse
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall

from homeserver.auth import Requester
from homeserver.http.errors import MatrixError, invalid_param
from homeserver.identifiers import UserIdentifierError, make_user_id, split_user_id

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
# How often accounts made since the announcement without accepting the policy (made by admins,
# e.g. with `piman register` beside the running server) are looked for and told.
CATCH_UP_INTERVAL_S = 600
# Accounts younger than this are left to the next look: a registration through the client API may
# still be recording the consent its user gave at m.login.terms.
CATCH_UP_GRACE_MS = 60_000
CONSENT_PATH = "_matrix/consent"


def consent_mac(form_secret: str, u: str) -> str:
    """The `h` of a consent link for `u` (a localpart or a full user ID, signed as given)."""
    return hmac.new(form_secret.encode("utf-8"), u.encode("utf-8"), hashlib.sha256).hexdigest()


def consent_not_given(policy_url: str, consent_uri: str) -> MatrixError:
    return MatrixError(
        HTTPStatus.FORBIDDEN, "M_CONSENT_NOT_GIVEN",
        f"You must accept this server's privacy policy before you can do this: read it at {policy_url} "
        f"and accept it at {consent_uri}",
        consent_uri=consent_uri,
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
        self._paused = False  # while a reloaded policy replaces this one
        self._reload_lock = defer.DeferredLock()
        self._running: defer.Deferred[None] | None = None
        self._retry: IDelayedCall | None = None
        self._catch_up: LoopingCall | None = None

    @property
    def version(self) -> str | None:
        return self.policy.version if self.policy is not None else None

    @property
    def _halting(self) -> bool:
        """Whether background runs must stop after their current notice (shutdown, or a reload)."""
        return self._stopping or self._paused

    # -- the consent page's links ----------------------------------------------

    def consent_uri(self, user_id: str) -> str | None:
        """`user_id`'s signed link to the consent page; None without a form_secret."""
        secret = self._hs.config.form_secret
        if secret is None:
            return None
        localpart, _ = split_user_id(user_id)
        query = urllib.parse.urlencode({"u": localpart, "h": consent_mac(secret, localpart)})
        return f"{self._hs.public_baseurl}{CONSENT_PATH}?{query}"

    def user_of_consent_link(self, u: str, h: str) -> str | None:
        """The local user a consent link's `u` names, if `h` is its MAC; None for a bad or foreign link."""
        secret = self._hs.config.form_secret
        if secret is None or not u:
            return None
        if not hmac.compare_digest(consent_mac(secret, u).encode("ascii"), h.lower().encode("utf-8")):
            return None
        user_id = u if u.startswith("@") else make_user_id(u, self._hs.hostname)
        try:
            _, server = split_user_id(user_id)
        except UserIdentifierError:
            return None
        return user_id if server == self._hs.hostname else None

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
        # The config requires a form_secret with require_consent, so there is always a link.
        raise consent_not_given(self.policy.url, self.consent_uri(requester.user_id) or self.policy.url)

    # -- announcing a new version ----------------------------------------------

    def start_announcing(self) -> None:
        """From start-up: announce the current version in the background (a failed run is tried
        again later), then look every CATCH_UP_INTERVAL_S for accounts made without seeing it."""
        if self.policy is None or self._stopping:
            return
        self._running = defer.ensureDeferred(self._announce_in_background())
        if self._catch_up is None:
            self._catch_up = self._clock.looping_call(CATCH_UP_INTERVAL_S, self._periodic_catch_up)

    async def _announce_in_background(self) -> None:
        try:
            await self.announce_current_version()
            await self.tell_accounts_that_missed_it()
        except Exception:
            logger.exception("Announcing the privacy policy failed; trying again in %d s", ANNOUNCE_RETRY_S)
            if not self._stopping:
                self._retry = self._clock.call_later(ANNOUNCE_RETRY_S, self.start_announcing)

    def _periodic_catch_up(self) -> "defer.Deferred[None] | None":
        """One catch-up run, unless the announcement (or a catch-up) is still running."""
        if not self._announced or self._halting or (self._running is not None and not self._running.called):
            return None
        self._running = defer.ensureDeferred(self._catch_up_in_background())
        return self._running

    async def _catch_up_in_background(self) -> None:
        try:
            await self.tell_accounts_that_missed_it()
        except Exception:  # the next run tries again; the looping call must not stop
            logger.exception("Telling new accounts about the privacy policy failed")

    async def wait_for_announcement(self) -> None:
        """Wait until the background run (announcement or catch-up), if any, ends."""
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
        if self._catch_up is not None and self._catch_up.running:
            self._catch_up.stop()
        await self.wait_for_announcement()

    async def reload_policy(self, config: Any) -> bool:
        """Apply the privacy_policy of a re-read config (`piman run` does on SIGHUP): a new version is
        announced at once, without a restart. Returns whether a new policy now applies.

        Only the policy itself (version, url, name, lang) is taken. Adding or removing it, or changing
        require_consent or form_secret, changes what registration asks and which writes are refused:
        that needs a restart, and is logged as such.
        """
        current = self._hs.config
        if ((config.privacy_policy is None) != (self.policy is None)
                or (config.require_consent, config.form_secret) != (current.require_consent, current.form_secret)):
            logger.warning("Config reloaded: adding or removing privacy_policy, or changing require_consent or "
                           "form_secret, takes a restart; the privacy policy in use is unchanged")
            return False
        if config.privacy_policy == self.policy:
            logger.info("Config reloaded: the privacy policy is unchanged")
            return False
        await self._reload_lock.acquire()
        try:
            # Let the running announcement (or catch-up) stop after its current notice, then switch.
            self._paused = True
            if self._retry is not None and self._retry.active():
                self._retry.cancel()
            await self.wait_for_announcement()
            self._paused = False
            if self._stopping:
                return False
            self.policy = config.privacy_policy
            self._accepted.clear()
            self._announced = False
            logger.info("Config reloaded: privacy policy version %s now applies; announcing it", self.policy.version)
            self.start_announcing()
            return True
        finally:
            self._reload_lock.release()

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
        while not job.finished and not self._halting:
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
                if self._halting:
                    return False
                await self.notify_user(user_id)
            cursor, batches = users[-1], batches + 1
            await self._store.advance_announcement(version, cursor)
            await self._clock.sleep(0)  # let requests run between batches
        self._announced = not self._halting
        return self._announced

    async def notify_user(self, user_id: str) -> None:
        """Send `user_id` the notice about the current version, unless they had it already."""
        assert self.policy is not None
        version, url = self.policy.version, self.policy.url
        if await self._store.was_notified(user_id, version):
            return
        consent_uri = self.consent_uri(user_id)
        action = " You need to accept it before you can send messages again." if self._required else ""
        accept = f" Accept it at {consent_uri}" if consent_uri is not None else ""
        body = (f"The privacy policy of {self._hs.hostname} has changed: version {version} now applies. "
                f"Read it at {url}.{action}{accept}")
        details = {"version": version, "url": url}
        if consent_uri is not None:
            details["consent_uri"] = consent_uri
        content = {
            "msgtype": "m.server_notice",
            "server_notice_type": NOTICE_TYPE,
            "body": body,
            NOTICE_TYPE: details,
        }
        sent = await self._hs.server_notices.send_notice(user_id, content, txn_id=f"privacy_policy/{version}/{user_id}")
        await self._store.record_notice(user_id, version, sent.event.event_id, self._clock.time_msec())

    async def tell_new_account(self, user_id: str) -> None:
        """Tell an account made by an admin (no m.login.terms: its user saw no policy) about the current
        version at once. A failure doesn't undo the account: the periodic catch-up tells it later."""
        if self.policy is None or await self.has_accepted(user_id):
            return
        try:
            await self.notify_user(user_id)
        except Exception:
            logger.exception("Could not send the privacy policy notice to a new account; the catch-up will")

    async def tell_accounts_that_missed_it(self, *, now_ms: int | None = None,
                                           batch_size: int = ANNOUNCE_BATCH) -> int:
        """Tell the current version to accounts made since its announcement began that neither accepted
        it nor were told: accounts made by admins (`/_synapse/admin/v1/register`, `piman register`),
        which skip m.login.terms. Returns how many were told; runs once the announcement finished.
        """
        if self.policy is None or not self._announced:
            return 0
        now_ms = self._clock.time_msec() if now_ms is None else now_ms
        version = self.policy.version
        job = await self._store.get_or_start_announcement(version, now_ms)
        cursor, told = "", 0
        while not self._halting:
            users = await self._store.users_to_announce(
                version, after_user_id=cursor, created_after_ts=job.started_ts,
                created_before_ts=now_ms - CATCH_UP_GRACE_MS,
                exclude_user_id=self._hs.server_notices.system_user_id, limit=batch_size)
            if not users:
                break
            for user_id in users:
                if self._halting:
                    break
                await self.notify_user(user_id)
                told += 1
            cursor = users[-1]
            await self._clock.sleep(0)  # let requests run between batches
        if told:
            logger.info("Told %d account(s) made since its announcement about privacy policy version %s",
                        told, version)
        return told
