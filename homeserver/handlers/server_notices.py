"""Server notices: messages from the organisation's administrators, in a room per user.

As Synapse's `server_notices` does: a system account (@notices:<server>, created by the server
with no password, so no one can log in as it) creates the room and invites the user; clients
show it as a notice because the room carries the `m.server_notice` tag in the user's room account
data, and each notice is an `m.room.message` with msgtype `m.server_notice`.

The room is not end-to-end encrypted, whatever `e2ee.required` says (see e2ee_policy): the server
writes the notices itself and can't encrypt them. It says so in its topic and in its
`org.piman.server_notices` state event. Users can read and leave it, not post in it (power
levels). A notice for a user who left re-invites them into the same room: one room per user,
recorded in `server_notice_rooms`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from config import ConfigError
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.handlers.event_sender import SentEvent
from homeserver.handlers.room_creation import RoomSpec
from homeserver.identifiers import make_user_id
from homeserver.util.locks import KeyedLock

if TYPE_CHECKING:
    from homeserver.server import HomeServer

logger = logging.getLogger(__name__)

SERVER_NOTICE_TAG = "m.server_notice"
MARKER_EVENT = "org.piman.server_notices"

# Only the system account may post, change the room or invite; users keep the right to leave.
NOTICE_ROOM_POWER_LEVELS = {
    "users_default": 0,
    "events_default": 100,
    "state_default": 100,
    "invite": 100,
    "kick": 100,
    "ban": 100,
    "redact": 100,
}


class ServerNoticesHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store.server_notices
        self._clock = hs.clock
        self._config = hs.config.server_notices
        self.system_user_id = make_user_id(self._config.system_mxid_localpart, hs.hostname)
        self._system_ready = False
        self._locks = KeyedLock()
        self._known_rooms: set[str] = set()

    async def ensure_system_user(self) -> None:
        """Create the system account if needed; refuse a configured localpart that is a person's account."""
        if self._system_ready:
            return
        user_id = self.system_user_id
        if not await self._store.create_system_user(user_id, self._clock.time_msec()) \
                and not await self._store.is_system_user(user_id):
            raise ConfigError(
                self._hs.config.config_path or "<config>", "server_notices.system_mxid_localpart",
                f"{user_id} is an existing account, not one the server created for server notices: "
                "choose another localpart")
        name = self._config.system_mxid_display_name

        def set_name(profile: dict[str, Any]) -> dict[str, Any]:
            profile["displayname"] = name
            return profile

        if (await self._hs.store.profiles.get_profile(user_id)).get("displayname") != name:
            await self._hs.store.profiles.update_profile(user_id, set_name)
        self._system_ready = True

    async def is_notices_room(self, room_id: str) -> bool:
        if room_id in self._known_rooms:
            return True
        if await self._store.is_notice_room(room_id):
            self._known_rooms.add(room_id)
            return True
        return False

    async def send_notice(self, user_id: str, content: dict[str, Any], *, txn_id: str) -> SentEvent:
        """Post `content` (an `m.server_notice` message) in `user_id`'s server-notices room.

        `txn_id` makes the send idempotent: the same one never posts a second notice.
        """
        await self.ensure_system_user()
        async with self._locks.hold(user_id):
            room_id = await self._room_with_user(user_id)
        return await self._hs.event_sender.send(
            room_id, sender=self.system_user_id, event_type="m.room.message", content=content,
            txn_key=(self.system_user_id, "", txn_id))

    async def _room_with_user(self, user_id: str) -> str:
        """The user's notices room, created (or the user re-invited) so that they are in it or invited."""
        room_id = await self._store.get_room_for_user(user_id)
        if room_id is None:
            room_id = await self._create_room(user_id)
        else:
            membership = await self._hs.membership_handler.current_membership(room_id, user_id)
            if membership in ("join", "invite"):
                return room_id
            await self._hs.membership_handler.send_membership(room_id, self.system_user_id, user_id, "invite")
        await self._hs.account_data_handler.add_tag(user_id, room_id, SERVER_NOTICE_TAG, {"order": 0})
        return room_id

    async def _create_room(self, user_id: str) -> str:
        hostname = self._hs.hostname
        spec = RoomSpec(
            version=KNOWN_ROOM_VERSIONS[self._hs.config.default_room_version],
            preset="private_chat",
            is_public=False,
            name=self._config.room_name,
            topic=f"Notices from the administrators of {hostname}. Not end-to-end encrypted: the server "
                  "writes these messages itself. You can read and leave this room, not post in it.",
            invites=[user_id],
            initial_state=[(MARKER_EVENT, "", {"server_notices": True, "end_to_end_encrypted": False})],
            power_level_override=dict(NOTICE_ROOM_POWER_LEVELS),
        )
        room_id, _ = await self._hs.room_creation_handler.create(self.system_user_id, spec)
        await self._store.add_room_for_user(user_id, room_id, self._clock.time_msec())
        self._known_rooms.add(room_id)
        logger.info("Created a server-notices room for a user")
        return room_id
