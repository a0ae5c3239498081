"""To-device messages: `PUT /sendToDevice` into sealed per-device inboxes, read back by /sync.

Messages wait in the inbox of each recipient device until that device syncs with a token past
them: that is the device's acknowledgement, and they are deleted then (and with the device).
Only local recipients are served for now: messages for users on other servers are dropped with
a log line until federation exists.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from homeserver.auth import Requester
from homeserver.events.user_ids import is_valid_user_id, server_of
from homeserver.http.errors import bad_json, invalid_param
from storage.stores.cache import LruCache

if TYPE_CHECKING:
    from homeserver.server import HomeServer

logger = logging.getLogger(__name__)

STREAM = "to_device"
# Messages per device per /sync; the rest come with the next one.
SYNC_LIMIT = 100
# Devices whose acknowledged messages this process knows to be gone.
_ACKNOWLEDGED_CACHE_SIZE = 100_000


class ToDeviceHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store.to_device
        self._clock = hs.clock
        self._notifier = hs.notifier
        # (user_id, device_id) -> stream position up to which its inbox is known to be empty:
        # a long-polling device then doesn't ask the database to delete nothing on every sync.
        # Rows at or below it never reappear, as new messages get higher positions.
        self._cleared_up_to: LruCache[tuple[str, str], int] = LruCache(_ACKNOWLEDGED_CACHE_SIZE)

    def current_position(self) -> int:
        return self._store.stream.get_current_token()

    async def send(self, requester: Requester, message_type: str, txn_id: str, messages: dict[str, Any]) -> None:
        """Queue `messages` ({user_id: {device_id or "*": content}}) for their devices; a repeated
        `txn_id` from the same device is accepted and ignored."""
        local: dict[str, dict[str, dict[str, Any]]] = {}
        remote_servers: set[str] = set()
        for user_id, by_device in messages.items():
            if not is_valid_user_id(user_id):
                raise invalid_param(f"'{user_id}' in 'messages' is not a valid user ID.")
            if not isinstance(by_device, dict):
                raise bad_json(f"Field 'messages.{user_id}' must be an object.")
            for device_id, content in by_device.items():
                if not isinstance(content, dict):
                    raise bad_json(f"Field 'messages.{user_id}.{device_id}' must be an object.")
            server = server_of(user_id)
            if server == self._hs.hostname:
                local[user_id] = by_device
            else:
                remote_servers.add(server)
        if remote_servers:
            logger.info("Dropping to-device messages for users on %d other server(s): no federation yet",
                        len(remote_servers))
        result = await self._store.add_messages(
            requester.user_id, requester.device_id or "", txn_id, message_type, local, self._clock.time_msec()
        )
        if result.position is not None:
            self._notifier.notify(STREAM, result.position, users=result.recipients)

    async def get_for_sync(self, user_id: str, device_id: str, since: int,
                           now: int) -> tuple[list[dict[str, Any]], int]:
        """The device's messages after `since` (at most SYNC_LIMIT), deleting those it has
        acknowledged by syncing from `since`. Returns (events, position the next token must
        carry): `now`, or the last message's position if more are waiting."""
        key = (user_id, device_id)
        drop = since > (self._cleared_up_to.get(key) or 0)
        if not drop and since >= now:
            return [], now
        messages = await self._store.get_for_sync(user_id, device_id, since=since, up_to=now, limit=SYNC_LIMIT,
                                                  drop_acknowledged=drop)
        if drop:
            self._cleared_up_to.set(key, since)
        events = [{"type": m.message_type, "sender": m.sender, "content": m.content} for m in messages]
        position = messages[-1].stream_id if len(messages) == SYNC_LIMIT else now
        return events, position
