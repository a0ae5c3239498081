"""`/rooms/{roomId}/upgrade`: replace a room by a new one in another room version.

Following the spec's server behaviour: the requester must be able to send `m.room.tombstone`; the new
room's create event names its `predecessor` (and copies the room `type`); the transferable state is
copied (membership is not, except bans, which the upgrader re-issues); local aliases, the canonical
alias and the directory listing move over; the old room gets the tombstone, and its power levels are
raised so that ordinary members can no longer talk or invite there. Beyond the spec's list, the
room's retention policy (`m.room.retention`) is copied too: a rule the organisation set outlives the
room version (a room without one gets the default policy, as any new room does).

Power levels across room versions: from v12 the creators (the upgrader plus `additional_creators`)
have unlimited power and must not be listed in `users`; creators of an old v12 room who are not
creators of the new one keep an explicit top level instead, so no one loses their admin rights.
"""

from __future__ import annotations

import copy
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Mapping

from homeserver.auth import Requester
from homeserver.events.event import Event, StateKey
from homeserver.events.power_levels import LEVEL_KEYS, PowerLevels, parse_level, room_creators
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.events.user_ids import is_valid_user_id
from homeserver.handlers.room_creation import unsupported_version
from homeserver.http.errors import MatrixError, forbidden, invalid_param
from homeserver.retention.policy import EVENT_TYPE as RETENTION_EVENT
from homeserver.util.locks import KeyedLock

if TYPE_CHECKING:
    from homeserver.server import HomeServer

CREATE_KEY: StateKey = ("m.room.create", "")
POWER_LEVELS_KEY: StateKey = ("m.room.power_levels", "")
CANONICAL_ALIAS_KEY: StateKey = ("m.room.canonical_alias", "")
JOIN_RULES_KEY: StateKey = ("m.room.join_rules", "")
RETENTION_KEY: StateKey = (RETENTION_EVENT, "")
# Sent in this order; power levels come first (apart from the creator's join) so the rest is authorised.
TRANSFERRED_STATE = (
    "m.room.join_rules", "m.room.history_visibility", "m.room.guest_access", "m.room.name", "m.room.topic",
    "m.room.avatar", "m.room.encryption", "m.room.server_acl",
)
ADMIN_LEVEL = 100


def _levels_as_ints(content: Mapping[str, Any], version: RoomVersion) -> dict[str, Any]:
    """Power-levels content with every level as an integer (older versions allow strings and floats)."""
    out: dict[str, Any] = {}
    for key, value in content.items():
        if key in LEVEL_KEYS:
            level = parse_level(value, version)
            if level is not None:
                out[key] = level
        elif key in ("users", "events", "notifications") and isinstance(value, dict):
            levels = {name: parse_level(v, version) for name, v in value.items()}
            out[key] = {name: level for name, level in levels.items() if level is not None}
        else:
            out[key] = copy.deepcopy(value)
    return out


def _all_levels(content: Mapping[str, Any]) -> list[int]:
    levels = [v for k, v in content.items() if k in LEVEL_KEYS and isinstance(v, int)]
    for key in ("users", "events", "notifications"):
        levels.extend(v for v in content.get(key, {}).values() if isinstance(v, int))
    return levels


def new_power_levels(old_content: Mapping[str, Any] | None, old_version: RoomVersion, old_creators: frozenset[str],
                     new_version: RoomVersion, new_creators: frozenset[str]) -> dict[str, Any]:
    """The new room's power levels: the old room's, adapted to who the creators are in each version."""
    if old_content is None:  # a room without power levels: its creators had 100 (v12: unlimited)
        content: dict[str, Any] = {"users": {c: ADMIN_LEVEL for c in old_creators}}
    else:
        content = _levels_as_ints(old_content, old_version)
    users: dict[str, int] = dict(content.get("users", {}))
    # The nearest thing to a v12 creator's unlimited power: every level the room uses.
    top = max([ADMIN_LEVEL, *_all_levels(content)])
    if old_version.hydra:
        for creator in old_creators - new_creators:
            users[creator] = top
    if new_version.hydra:
        for creator in new_creators:
            users.pop(creator, None)
    content["users"] = users
    return content


def restricted_old_levels(content: Mapping[str, Any], version: RoomVersion) -> dict[str, Any] | None:
    """The old room's power levels with talking and inviting reserved to moderators; None if already so."""
    levels = PowerLevels(version, content, frozenset())
    needed = max(50, levels.level("users_default") + 1)
    updated = dict(content)
    for key in ("events_default", "invite"):
        if levels.level(key) < needed:
            updated[key] = needed
    return updated if updated != content else None


def supported_join_rules(content: Mapping[str, Any], version: RoomVersion) -> dict[str, Any]:
    """Join rules the new version knows; an unknown one falls back to invite-only (the safe side)."""
    rule = content.get("join_rule")
    unsupported = ((rule == "knock" and not version.knock_join_rule)
                   or (rule == "restricted" and not version.restricted_join_rule)
                   or (rule == "knock_restricted" and not version.knock_restricted_join_rule))
    return {"join_rule": "invite"} if unsupported else dict(content)


class RoomUpgradeHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store
        self._sender = hs.event_sender
        self._locks = KeyedLock()  # one upgrade of a room at a time

    async def upgrade(self, requester: Requester, room_id: str, new_version_id: str,
                      additional_creators: list[str]) -> str:
        """Upgrade `room_id` to `new_version_id`; returns the replacement room's ID."""
        new_version = KNOWN_ROOM_VERSIONS.get(new_version_id)
        if new_version is None:
            raise unsupported_version(new_version_id)
        for user_id in additional_creators:
            if not is_valid_user_id(user_id):
                raise invalid_param(f"additional_creators: '{user_id}' is not a user ID.")
        old_version = await self._sender.room_version(room_id)
        user_id = requester.user_id
        async with self._locks.hold(room_id):
            stored = await self._store.state.get_current_state_events(room_id)
            state = {key: s.event for key, s in stored.items()}
            self._check_may_upgrade(user_id, state, old_version)
            new_creators = frozenset([user_id, *additional_creators]) if new_version.hydra else frozenset()
            new_room_id = await self._create_replacement(requester, room_id, state, old_version, new_version,
                                                         new_creators)
            await self._retire_old_room(user_id, room_id, new_room_id, state, old_version)
        return new_room_id

    @staticmethod
    def _check_may_upgrade(user_id: str, state: Mapping[StateKey, Event], version: RoomVersion) -> None:
        member = state.get(("m.room.member", user_id))
        if member is None or member.membership != "join":
            raise forbidden("You must be in the room to upgrade it.")
        levels = PowerLevels.from_state(state, version)
        if levels.user_level(user_id) < levels.event_level("m.room.tombstone", True):
            raise forbidden("You don't have the power to upgrade this room (it needs the power to send "
                            "m.room.tombstone).")

    async def _create_replacement(self, requester: Requester, old_room_id: str, state: Mapping[StateKey, Event],
                                  old_version: RoomVersion, new_version: RoomVersion,
                                  new_creators: frozenset[str]) -> str:
        user_id = requester.user_id
        old_create = state[CREATE_KEY]
        predecessor: dict[str, Any] = {"room_id": old_room_id}
        if not new_version.hydra:  # deprecated, and optional from v12; older clients still read it
            predecessor["event_id"] = await self._last_event_id(old_room_id)
        create_content: dict[str, Any] = {"room_version": new_version.identifier, "predecessor": predecessor}
        if not new_version.implicit_room_creator:
            create_content["creator"] = user_id
        for key in ("type", "m.federate"):
            if key in old_create.content:
                create_content[key] = copy.deepcopy(old_create.content[key])
        if new_version.hydra and len(new_creators) > 1:
            create_content["additional_creators"] = sorted(new_creators - {user_id})

        old_pl = state.get(POWER_LEVELS_KEY)
        final_pl = new_power_levels(old_pl.content if old_pl is not None else None, old_version,
                                    room_creators(old_create), new_version, new_creators)
        initial_pl = final_pl
        if not new_version.hydra:
            # The upgrader sends all the copied state, so until the end they hold every level the room uses.
            initial_pl = copy.deepcopy(final_pl)
            initial_pl["users"][user_id] = max([ADMIN_LEVEL, *_all_levels(final_pl)])

        created = await self._sender.create_room(new_version, sender=user_id, create_content=create_content,
                                                 is_public=False)
        new_room_id = created.event.room_id

        async def send_state(event_type: str, content: dict[str, Any], state_key: str = "") -> None:
            await self._sender.send(new_room_id, sender=user_id, event_type=event_type, state_key=state_key,
                                    content=content)

        membership = self._hs.membership_handler
        await membership.send_membership(new_room_id, user_id, user_id, "join")
        await send_state("m.room.power_levels", initial_pl)
        for event_type in TRANSFERRED_STATE:
            event = state.get((event_type, ""))
            if event is None or not event.content:
                continue  # absent, or emptied (e.g. redacted)
            content = dict(event.content)
            if event_type == "m.room.join_rules":
                content = supported_join_rules(content, new_version)
            await send_state(event_type, content)
        retention = state.get(RETENTION_KEY)
        if retention is not None and retention.content:
            await send_state(RETENTION_EVENT, dict(retention.content))
        elif (default := self._hs.retention.rules.initial_state_content()) is not None:
            await send_state(RETENTION_EVENT, default)  # as in any new room
        if old_create.content.get("type") == "m.space":
            for (event_type, state_key), event in sorted(state.items()):
                if event_type == "m.space.child" and event.content:
                    await send_state(event_type, dict(event.content), state_key)
        for (event_type, target), event in sorted(state.items()):
            if event_type == "m.room.member" and event.membership == "ban" and target not in new_creators:
                reason = event.content.get("reason")
                await membership.send_membership(new_room_id, user_id, target, "ban",
                                                 reason=reason if isinstance(reason, str) else None)
        await self._move_aliases(old_room_id, new_room_id)
        canonical = state.get(CANONICAL_ALIAS_KEY)
        if canonical is not None and canonical.content:
            await send_state("m.room.canonical_alias", dict(canonical.content))
        if initial_pl != final_pl:
            await send_state("m.room.power_levels", final_pl)
        return new_room_id

    async def _last_event_id(self, room_id: str) -> str:
        extremities = await self._store.events.get_forward_extremities(room_id)
        events = await self._store.events.get_events(extremities)
        return max(events.values(), key=lambda s: s.stream_ordering).event.event_id

    async def _move_aliases(self, old_room_id: str, new_room_id: str) -> None:
        aliases = self._store.aliases
        for alias in await aliases.get_aliases_for_room(old_room_id):
            creator = await aliases.get_alias_creator(alias)
            if creator is None or await aliases.delete_alias(alias) is None:
                continue  # removed meanwhile
            await aliases.create_alias(alias, new_room_id, creator)

    async def _retire_old_room(self, user_id: str, room_id: str, new_room_id: str,
                               state: Mapping[StateKey, Event], version: RoomVersion) -> None:
        await self._sender.send(room_id, sender=user_id, event_type="m.room.tombstone", state_key="",
                                content={"body": "This room has been replaced", "replacement_room": new_room_id})
        canonical = state.get(CANONICAL_ALIAS_KEY)
        if canonical is not None and canonical.content:
            await self._best_effort(room_id, user_id, "m.room.canonical_alias", {})
        old_pl = state.get(POWER_LEVELS_KEY)
        if old_pl is not None:
            restricted = restricted_old_levels(old_pl.content, version)
            if restricted is not None:
                await self._best_effort(room_id, user_id, "m.room.power_levels", restricted)
        room = await self._store.rooms.get_room(room_id)
        if room is not None and room.is_public:
            await self._store.rooms.set_room_is_public(new_room_id, True)
            await self._store.rooms.set_room_is_public(room_id, False)

    async def _best_effort(self, room_id: str, sender: str, event_type: str, content: dict[str, Any]) -> None:
        """Tidy the old room as far as the upgrader's power there allows (the spec's 'if possible')."""
        try:
            await self._sender.send(room_id, sender=sender, event_type=event_type, state_key="", content=content)
        except MatrixError as e:
            if e.code != HTTPStatus.FORBIDDEN:
                raise
