"""Sending messages, state and redactions, and reading room state and single events."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.auth import Requester
from homeserver.events.power_levels import can_user_redact, power_levels_content_error, room_creators
from homeserver.handlers import e2ee_policy
from homeserver.handlers.event_sender import SentEvent
from homeserver.http.errors import MatrixError, forbidden, not_found

MEMBERSHIPS = ("join", "invite", "leave", "ban", "knock")

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class MessageHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store
        self._sender = hs.event_sender

    async def send_message(self, requester: Requester, room_id: str, event_type: str, content: dict[str, Any],
                           *, txn_id: str | None = None) -> SentEvent:
        self._hs.ratelimiters.message.ratelimit(requester.user_id)
        if self._hs.config.e2ee.required:
            e2ee_policy.check_message(event_type)
        txn_key = (requester.user_id, requester.device_id or "", txn_id) if txn_id is not None else None
        sent = await self._sender.send(room_id, sender=requester.user_id, event_type=event_type, content=content,
                                       txn_key=txn_key)
        await self._hs.presence_handler.bump_last_active(requester.user_id)
        return sent

    async def send_state(self, requester: Requester, room_id: str, event_type: str, state_key: str,
                         content: dict[str, Any]) -> SentEvent:
        if event_type == e2ee_policy.ENCRYPTION_EVENT and self._hs.config.e2ee.required:
            e2ee_policy.check_encryption_change(content)
        if event_type == "m.room.member":
            membership = content.get("membership")
            if membership not in MEMBERSHIPS:
                raise MatrixError(HTTPStatus.BAD_REQUEST, "M_BAD_JSON",
                                  f"m.room.member content needs 'membership', one of {', '.join(MEMBERSHIPS)}.")
        elif event_type == "m.room.retention" and state_key == "":
            self._hs.retention.check_content(content)  # the organisation's bounds
        elif event_type == "m.room.power_levels":
            version = await self._sender.room_version(room_id)
            create = await self._store.state.get_current_state_events(room_id, [("m.room.create", "")])
            creators = room_creators(create[("m.room.create", "")].event) if create else frozenset()
            problem = power_levels_content_error(content, version, creators=frozenset(creators), require_integers=True)
            if problem is not None:
                raise MatrixError(HTTPStatus.BAD_REQUEST, "M_BAD_JSON", f"Invalid power levels: {problem}.")
        return await self._sender.send(room_id, sender=requester.user_id, event_type=event_type, state_key=state_key,
                                       content=content)

    async def redact(self, requester: Requester, room_id: str, event_id: str, *, reason: str | None,
                     txn_id: str) -> SentEvent:
        """Redact an event: its sender may, and so may anyone with the room's `redact` power."""
        self._hs.ratelimiters.message.ratelimit(requester.user_id)
        target = await self._store.events.get_event(event_id)
        if target is None or target.event.room_id != room_id:
            raise not_found("No such event in this room.")
        version = await self._sender.room_version(room_id)
        auth = await self._store.state.get_current_state_events(room_id, [("m.room.create", ""), ("m.room.power_levels", "")])
        auth_state = {k: v.event for k, v in auth.items()}
        if not can_user_redact(requester.user_id, target.event.sender, auth_state, version):
            raise forbidden("You may only redact your own events here; redacting others' needs the room's redact power.")
        content: dict[str, Any] = {}
        if reason is not None:
            content["reason"] = reason
        if version.updated_redaction_rules:
            content["redacts"] = event_id
        txn_key = (requester.user_id, requester.device_id or "", "redact:" + txn_id)
        return await self._sender.send(room_id, sender=requester.user_id, event_type="m.room.redaction",
                                       content=content, redacts=event_id, txn_key=txn_key)

    async def get_state_content(self, user_id: str, room_id: str, event_type: str, state_key: str) -> dict[str, Any]:
        stored = await self.get_state_event(user_id, room_id, event_type, state_key)
        return stored.event.content

    async def get_state_event(self, user_id: str, room_id: str, event_type: str, state_key: str) -> Any:
        state = await self.visible_state(user_id, room_id, [(event_type, state_key)])
        stored = state.get((event_type, state_key))
        if stored is None:
            raise not_found(f"No {event_type} state with key '{state_key}' in this room.")
        return stored

    async def visible_state(self, user_id: str, room_id: str, keys: list[tuple[str, str]] | None = None) -> dict[Any, Any]:
        """Current state for members; the state when they left for former members."""
        membership = await self._hs.visibility.require_can_read_room(room_id, user_id)
        if membership in ("leave", "ban"):
            member = await self._store.state.get_current_state_events(room_id, [("m.room.member", user_id)])
            left_event = member[("m.room.member", user_id)].event.event_id
            group = (await self._store.state.get_state_groups_for_events([left_event])).get(left_event)
            if group is None:
                return {}
            state = await self._store.state.get_state_for_group(group)
            if keys is not None:
                state = {k: v for k, v in state.items() if k in keys}
            stored = await self._store.events.get_events(list(state.values()))
            return {k: stored[eid] for k, eid in state.items() if eid in stored}
        return await self._store.state.get_current_state_events(room_id, keys)
