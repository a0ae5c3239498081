"""Sending push notifications to the push gateways of users' http pushers.

The send path hands each persisted event's push actions to `on_event_persisted` in its commit's
reactor turn; everything after that runs in the background, so a slow or dead gateway never
delays a send. A gateway is a third party: only those the admin allowed (`push.gateways`) are
contacted, and a notification says no more than the `event_id_only` shape (event ID, room ID,
unread count, priority) unless the admin set `push.include_content` — and even then never the
content of an encrypted event. A failed delivery is retried with exponential backoff (in memory:
a restart forgets pending retries, which is acceptable for notifications that are soon stale);
a gateway answering that it rejected the pushkey gets the pusher deleted, as the spec asks.
Logs name pushers by their row id, never by pushkey.
"""

from __future__ import annotations

import itertools
import json
import logging
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import treq
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall
from twisted.web.client import Agent, HTTPConnectionPool

from homeserver.events.event import Event
from storage.stores.push_actions import EventPushActions
from storage.stores.pushers import Pusher

if TYPE_CHECKING:
    from homeserver.server import HomeServer

logger = logging.getLogger(__name__)

HTTP_KIND = "http"
EVENT_ID_ONLY = "event_id_only"
ENCRYPTED = "m.room.encrypted"
# Event types whose notifications wake the phone at once; the rest may wait (battery).
HIGH_PRIORITY_TYPES = frozenset({"m.room.message", ENCRYPTED, "m.call.invite", "m.room.member"})
REQUEST_TIMEOUT_S = 20
# Retries: 1 s, 2 s, 4 s ... capped at 10 min, given up after MAX_ATTEMPTS sends in all.
INITIAL_BACKOFF_S = 1.0
MAX_BACKOFF_S = 600.0
MAX_ATTEMPTS = 10
# Pending retries kept at most; beyond that the oldest are dropped (a dead gateway must not
# grow memory without bound).
MAX_PENDING_RETRIES = 10_000


@dataclass
class _Retry:
    pusher: Pusher
    body: dict[str, Any]
    attempts: int  # sends made so far
    due_ms: int
    call: IDelayedCall | None


class PusherPool:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store.pushers
        self._clock = hs.clock
        self._gateways: tuple[str, ...] = tuple(hs.config.push.gateways)
        self._include_content: bool = hs.config.push.include_content
        self._connections = HTTPConnectionPool(hs.reactor)  # kept open: a busy gateway gets many
        self._agent = Agent(hs.reactor, pool=self._connections)
        self._retries: dict[int, _Retry] = {}
        self._retry_ids = itertools.count(1)
        self._stopped = False

    # -- which gateways ----------------------------------------------------

    @property
    def gateways(self) -> tuple[str, ...]:
        return self._gateways

    def gateway_allowed(self, url: str) -> bool:
        return any(url.startswith(prefix) for prefix in self._gateways)

    # -- sending -------------------------------------------------------------

    def on_event_persisted(self, event: Event, actions: EventPushActions | None) -> None:
        """Notify the users the event's push actions notify (never its sender: the push actions
        leave them out), in the background."""
        if actions is None or not self._gateways or self._stopped:
            return
        users = [user_id for user_id, notify, _ in actions.notified if notify and user_id != event.sender]
        if not users:
            return
        highlighted = {user_id for user_id, _, highlight in actions.notified if highlight}
        d = defer.ensureDeferred(self._notify(event, users, highlighted))
        d.addErrback(lambda f: logger.error("Sending push notifications for %s failed: %s", event.event_id,
                                            f.getErrorMessage()))

    async def _notify(self, event: Event, users: list[str], highlighted: set[str]) -> None:
        by_user = await self._store.get_pushers_for_users(users, HTTP_KIND)
        for user_id, pushers in by_user.items():
            unread = await self._unread_count(user_id)
            for pusher in pushers:
                url = pusher.data.get("url")
                if not isinstance(url, str) or not self.gateway_allowed(url):
                    continue  # the admin removed the gateway since the pusher was set
                body = self.notification(event, pusher, unread, highlight=user_id in highlighted)
                self._send_in_background(pusher, body, attempts=0)

    async def _unread_count(self, user_id: str) -> int:
        """The user's notification count across their joined rooms (the spec's `counts.unread`)."""
        rooms = await self._hs.store.events.get_rooms_for_user(user_id, memberships=("join",))
        counts = await self._hs.push_actions_handler.get_counts(user_id, [r.room_id for r in rooms])
        return sum(c["unread_notifications"]["notification_count"] for c in counts.values())

    def notification(self, event: Event, pusher: Pusher, unread: int, *, highlight: bool) -> dict[str, Any]:
        """The push gateway request body: `event_id_only` unless the admin allows content and
        the pusher didn't ask for `event_id_only`; never an encrypted event's content."""
        device: dict[str, Any] = {
            "app_id": pusher.app_id,
            "pushkey": pusher.pushkey,
            "pushkey_ts": pusher.created_ts // 1000,
            "data": {k: v for k, v in pusher.data.items() if k != "url"},
            "tweaks": {"highlight": True} if highlight else {},
        }
        notification: dict[str, Any] = {
            "event_id": event.event_id,
            "room_id": event.room_id,
            "counts": {"unread": unread},
            "prio": "high" if event.type in HIGH_PRIORITY_TYPES else "low",
            "devices": [device],
        }
        if self._include_content and pusher.data.get("format") != EVENT_ID_ONLY:
            notification["type"] = event.type
            notification["sender"] = event.sender
            if event.type == "m.room.member":
                notification["user_is_target"] = event.state_key == pusher.user_id
            if event.type != ENCRYPTED:
                notification["content"] = event.content
        return {"notification": notification}

    def _send_in_background(self, pusher: Pusher, body: dict[str, Any], attempts: int) -> None:
        d = defer.ensureDeferred(self._send(pusher, body, attempts))
        d.addErrback(lambda f: logger.error("Push to pusher %d failed: %s", pusher.id, f.getErrorMessage()))

    async def _send(self, pusher: Pusher, body: dict[str, Any], attempts: int) -> None:
        if self._stopped:
            return
        url = pusher.data["url"]
        host = urllib.parse.urlsplit(url).hostname
        attempts += 1
        try:
            response = await treq.post(url, json=body, agent=self._agent, allow_redirects=False,
                                       timeout=REQUEST_TIMEOUT_S)
            content = await response.content()
        except Exception as e:  # network errors, timeouts
            logger.info("Push gateway %s unreachable for pusher %d (attempt %d): %s", host, pusher.id, attempts,
                        type(e).__name__)
            self._retry_later(pusher, body, attempts)
            return
        if 200 <= response.code < 300:
            await self._handle_rejected(pusher, content)
        elif response.code == 429 or response.code >= 500:
            logger.info("Push gateway %s answered %d for pusher %d (attempt %d)", host, response.code, pusher.id,
                        attempts)
            self._retry_later(pusher, body, attempts)
        else:  # the gateway refuses this request: sending it again won't help
            logger.warning("Push gateway %s refused a notification for pusher %d with %d", host, pusher.id,
                           response.code)

    async def _handle_rejected(self, pusher: Pusher, content: bytes) -> None:
        try:
            rejected = json.loads(content).get("rejected", [])
        except (ValueError, AttributeError):
            return
        if isinstance(rejected, list) and pusher.pushkey in rejected:
            logger.info("Push gateway rejected the pushkey of pusher %d (user %s): deleting the pusher",
                        pusher.id, pusher.user_id)
            await self._store.delete_pusher_by_id(pusher.id)
            for retry_id in [i for i, r in self._retries.items() if r.pusher.id == pusher.id]:
                self._cancel(retry_id)

    # -- retries -----------------------------------------------------------

    def _retry_later(self, pusher: Pusher, body: dict[str, Any], attempts: int) -> None:
        if attempts >= MAX_ATTEMPTS or self._stopped:
            logger.warning("Giving up a notification for pusher %d after %d attempts", pusher.id, attempts)
            return
        while len(self._retries) >= MAX_PENDING_RETRIES:
            self._cancel(next(iter(self._retries)))
        delay_s = min(INITIAL_BACKOFF_S * 2 ** (attempts - 1), MAX_BACKOFF_S)
        retry_id = next(self._retry_ids)
        call = self._clock.call_later(delay_s, self._run_retry, retry_id)
        self._retries[retry_id] = _Retry(pusher, body, attempts, self._clock.time_msec() + int(delay_s * 1000), call)

    def _run_retry(self, retry_id: int) -> None:
        retry = self._retries.pop(retry_id, None)
        if retry is not None:
            self._send_in_background(retry.pusher, retry.body, retry.attempts)

    def _cancel(self, retry_id: int) -> None:
        retry = self._retries.pop(retry_id)
        if retry.call is not None and retry.call.active():
            retry.call.cancel()

    def pending_retries(self) -> int:
        return len(self._retries)

    async def retry_due(self, now_ms: int | None = None) -> None:
        """Send now every retry due at `now_ms` (default: now), and wait for those sends; lets a
        test (or an admin tool) drive the backoff without waiting for it."""
        now_ms = self._clock.time_msec() if now_ms is None else now_ms
        due = [i for i, r in self._retries.items() if r.due_ms <= now_ms]
        sends = []
        for retry_id in due:
            retry = self._retries[retry_id]
            self._cancel(retry_id)
            sends.append(self._send(retry.pusher, retry.body, retry.attempts))
        for send in sends:
            await send

    def stop(self) -> None:
        """Shutting down: pending retries are dropped, nothing new is sent."""
        self._stopped = True
        for retry_id in list(self._retries):
            self._cancel(retry_id)
        self._connections.closeCachedConnections()
