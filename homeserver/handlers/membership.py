"""Joining, inviting, leaving, kicking, banning, unbanning and knocking.

Each action is one `m.room.member` event; the spec's authorization rules decide whether it is
allowed, so the messages users see are those rules' reasons. Restricted rooms (v8+) are joined
through a local member who may invite, as `join_authorised_via_users_server` requires.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.events.event import StateMap
from homeserver.events.power_levels import user_power_level
from homeserver.handlers.event_sender import SentEvent
from homeserver.http.errors import MatrixError, forbidden, not_found
from homeserver.identifiers import UserIdentifierError, split_user_id

if TYPE_CHECKING:
    from homeserver.server import HomeServer

logger = logging.getLogger(__name__)

RESTRICTED_RULES = ("restricted", "knock_restricted")


class MembershipHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store
        self._sender = hs.event_sender

    async def resolve_room(self, room_id_or_alias: str) -> str:
        """A room ID from a room ID or a local alias; 404 if unknown."""
        if room_id_or_alias.startswith("#"):
            room_id = await self._store.aliases.get_alias(room_id_or_alias)
            if room_id is None:
                raise not_found(f"Room alias {room_id_or_alias} not found.")
            return room_id
        if not room_id_or_alias.startswith("!"):
            raise MatrixError(HTTPStatus.BAD_REQUEST, "M_INVALID_PARAM", "Expected a room ID (!...) or alias (#...).")
        return room_id_or_alias

    async def _member_content(self, user_id: str, membership: str) -> dict[str, Any]:
        content: dict[str, Any] = {"membership": membership}
        if membership in ("join", "invite", "knock"):
            content.update(await self._hs.profile_for_member_event(user_id))
        return content

    async def send_membership(self, room_id: str, sender: str, target: str, membership: str, *,
                              reason: str | None = None, is_direct: bool = False,
                              txn_key: tuple[str, str, str] | None = None) -> SentEvent:
        """Send `target`'s member event with `membership`, authored by `sender`."""
        try:
            split_user_id(target)
        except UserIdentifierError as e:
            raise MatrixError(HTTPStatus.BAD_REQUEST, "M_INVALID_PARAM", str(e)) from None
        content = await self._member_content(target, membership)
        if reason is not None:
            content["reason"] = reason
        if is_direct and membership == "invite":
            content["is_direct"] = True

        async def pre_send(state: StateMap) -> None:
            if membership == "join" and sender == target:
                await self._authorise_restricted_join(room_id, target, state, content)

        return await self._sender.send(room_id, sender=sender, event_type="m.room.member", state_key=target,
                                       content=content, txn_key=txn_key, pre_send=pre_send)

    async def join(self, room_id_or_alias: str, user_id: str, *, reason: str | None = None) -> str:
        room_id = await self.resolve_room(room_id_or_alias)
        self._hs.ratelimiters.joins_local.ratelimit(user_id)
        await self.send_membership(room_id, user_id, user_id, "join", reason=reason)
        return room_id

    async def knock(self, room_id_or_alias: str, user_id: str, *, reason: str | None = None) -> str:
        room_id = await self.resolve_room(room_id_or_alias)
        version = await self._sender.room_version(room_id)
        if not version.knock_join_rule:
            raise forbidden(f"Room version {version.identifier} does not support knocking.")
        await self.send_membership(room_id, user_id, user_id, "knock", reason=reason)
        return room_id

    async def invite(self, room_id: str, inviter: str, invitee: str, *, reason: str | None = None,
                     is_direct: bool = False) -> None:
        limits = self._hs.ratelimiters
        limits.invites_per_room.ratelimit(room_id)
        limits.invites_per_user.ratelimit(invitee)
        limits.invites_per_issuer.ratelimit(inviter)
        _, server = split_user_id(invitee)
        if server == self._hs.hostname and await self._store.users.get_user(invitee) is None:
            raise not_found(f"User {invitee} does not exist.")
        await self.send_membership(room_id, inviter, invitee, "invite", reason=reason, is_direct=is_direct)

    async def leave(self, room_id: str, user_id: str, *, reason: str | None = None) -> None:
        await self.send_membership(room_id, user_id, user_id, "leave", reason=reason)

    async def kick(self, room_id: str, sender: str, target: str, *, reason: str | None = None) -> None:
        await self._require_membership_of(room_id, target, ("join", "invite", "knock"), "is not in the room")
        await self.send_membership(room_id, sender, target, "leave", reason=reason)

    async def ban(self, room_id: str, sender: str, target: str, *, reason: str | None = None) -> None:
        await self.send_membership(room_id, sender, target, "ban", reason=reason)

    async def unban(self, room_id: str, sender: str, target: str, *, reason: str | None = None) -> None:
        await self._require_membership_of(room_id, target, ("ban",), "is not banned")
        await self.send_membership(room_id, sender, target, "leave", reason=reason)

    async def on_profile_changed(self, user_id: str, profile: dict[str, Any]) -> None:
        """Carry a new display name or avatar into the user's member event in every room they are in."""
        for room_id, *_ in await self._store.events.get_rooms_for_user(user_id, memberships=("join",)):
            current = await self._store.state.get_current_state_events(room_id, [("m.room.member", user_id)])
            member = current.get(("m.room.member", user_id))
            if member is None:
                continue
            content = {k: v for k, v in member.event.content.items() if k not in ("displayname", "avatar_url")}
            content.update({k: v for k, v in profile.items() if k in ("displayname", "avatar_url") and v is not None})
            if content == member.event.content:
                continue
            try:
                await self._sender.send(room_id, sender=user_id, event_type="m.room.member", state_key=user_id,
                                        content=content)
            except MatrixError as e:  # e.g. a room whose power levels forbid it: the others still get it
                logger.info("Profile change not sent to %s: %s", room_id, e.msg)

    async def forget(self, room_id: str, user_id: str) -> None:
        """Hide a room the user has left from their lists; refused while they are still in it."""
        membership = await self.current_membership(room_id, user_id)
        if membership in ("join", "invite", "knock"):
            raise MatrixError(HTTPStatus.BAD_REQUEST, "M_UNKNOWN", "Leave the room before forgetting it.")
        # Like Synapse, forgetting a room one was never in succeeds and does nothing (the spec
        # lists no 404 here).
        await self._store.events.forget_room(user_id, room_id)

    async def _require_membership_of(self, room_id: str, user_id: str, memberships: tuple[str, ...], what: str) -> None:
        current = await self.current_membership(room_id, user_id)
        if current not in memberships:
            raise forbidden(f"{user_id} {what}.")

    async def current_membership(self, room_id: str, user_id: str) -> str | None:
        state = await self._store.state.get_current_state_events(room_id, [("m.room.member", user_id)])
        stored = state.get(("m.room.member", user_id))
        return stored.event.membership if stored is not None else None

    async def _authorise_restricted_join(self, room_id: str, user_id: str, state: StateMap,
                                         content: dict[str, Any]) -> None:
        """For restricted join rules, name a local member who may invite, if the user qualifies."""
        keys = [("m.room.join_rules", ""), ("m.room.member", user_id), ("m.room.power_levels", "")]
        stored = await self._store.events.get_events([state[k] for k in keys if k in state])
        by_key = {k: stored[state[k]].event for k in keys if k in state and state[k] in stored}
        rules = by_key.get(("m.room.join_rules", ""))
        if rules is None or rules.content.get("join_rule") not in RESTRICTED_RULES:
            return
        member = by_key.get(("m.room.member", user_id))
        if member is not None and member.membership in ("join", "invite"):
            return  # already in or invited: no authorisation needed
        allowed_rooms = [a.get("room_id") for a in rules.content.get("allow", [])
                         if isinstance(a, dict) and a.get("type") == "m.room_membership"]
        my_rooms = {r[0] for r in await self._store.events.get_rooms_for_user(user_id)}
        if not any(r in my_rooms for r in allowed_rooms):
            return  # the auth rules will refuse the join with their own reason
        authoriser = await self._local_member_who_can_invite(room_id, state)
        if authoriser is not None:
            content["join_authorised_via_users_server"] = authoriser

    async def _local_member_who_can_invite(self, room_id: str, state: StateMap) -> str | None:
        suffix = ":" + self._hs.hostname
        member_keys = [k for k in state if k[0] == "m.room.member" and k[1].endswith(suffix)]
        auth_keys = [("m.room.create", ""), ("m.room.power_levels", "")]
        stored = await self._store.events.get_events([state[k] for k in member_keys + auth_keys if k in state])
        auth_state = {k: stored[state[k]].event for k in auth_keys if k in state and state[k] in stored}
        version = await self._sender.room_version(room_id)
        power = auth_state.get(("m.room.power_levels", ""))
        invite_level = power.content.get("invite", 0) if power is not None else 0
        for key in sorted(member_keys):
            member = stored.get(state[key])
            if member is None or member.event.membership != "join":
                continue
            if user_power_level(key[1], auth_state, version) >= invite_level:
                return key[1]
        return None
