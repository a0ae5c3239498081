"""`/createRoom`: the create event, the creator's join, power levels, presets, initial state, invites.

Everything the request asks for is validated before the first event is written, so a refused
request leaves no half-made room behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.handlers import e2ee_policy
from homeserver.http.errors import MatrixError, invalid_param
from homeserver.identifiers import UserIdentifierError, split_user_id

if TYPE_CHECKING:
    from homeserver.server import HomeServer

PRESETS = ("private_chat", "trusted_private_chat", "public_chat")


@dataclass
class RoomSpec:
    """A validated `/createRoom` request."""

    version: RoomVersion
    preset: str
    is_public: bool
    name: str | None = None
    topic: str | None = None
    alias_localpart: str | None = None
    invites: list[str] = field(default_factory=list)
    is_direct: bool = False
    creation_content: dict[str, Any] = field(default_factory=dict)
    initial_state: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    power_level_override: dict[str, Any] | None = None


def unsupported_version(version: str) -> MatrixError:
    return MatrixError(HTTPStatus.BAD_REQUEST, "M_UNSUPPORTED_ROOM_VERSION",
                       f"Room version '{version}' is not supported; supported: {', '.join(sorted(KNOWN_ROOM_VERSIONS, key=int))}.")


def default_power_levels(spec: RoomSpec, creator: str) -> dict[str, Any]:
    """The spec's defaults for a new room; v12 creators have unbounded power and are not listed."""
    users: dict[str, int] = {} if spec.version.hydra else {creator: 100}
    if spec.preset == "trusted_private_chat" and not spec.version.hydra:
        users.update({invitee: 100 for invitee in spec.invites})
    content: dict[str, Any] = {
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 150 if spec.version.hydra else 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0,
        "historical": 100,
        "notifications": {"room": 50},
    }
    if spec.power_level_override:
        content.update(spec.power_level_override)
    return content


class RoomCreationHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store

    def parse(self, body: Any) -> RoomSpec:
        """Validate the request body into a `RoomSpec`; 400 with the field at fault otherwise."""
        version_id = body.str("room_version", self._hs.config.default_room_version)
        version = KNOWN_ROOM_VERSIONS.get(version_id)
        if version is None:
            raise unsupported_version(version_id)
        visibility = body.str("visibility", "private")
        if visibility not in ("public", "private"):
            raise invalid_param("visibility must be 'public' or 'private'.")
        preset = body.str("preset", "public_chat" if visibility == "public" else "private_chat")
        if preset not in PRESETS:
            raise invalid_param(f"preset must be one of {', '.join(PRESETS)}.")
        invites = body.str_list("invite", [])
        for user_id in invites:
            try:
                split_user_id(user_id)
            except UserIdentifierError as e:
                raise invalid_param(f"invite: {e}") from None
        initial_state = []
        for i, item in enumerate(body.list("initial_state", [])):
            if not isinstance(item, dict) or not isinstance(item.get("type"), str) \
                    or not isinstance(item.get("content"), dict) or not isinstance(item.get("state_key", ""), str):
                raise MatrixError(HTTPStatus.BAD_REQUEST, "M_INVALID_ROOM_STATE",
                                  f"initial_state[{i}] must have a string 'type', an object 'content' and an optional string 'state_key'.")
            initial_state.append((item["type"], item.get("state_key", ""), item["content"]))
            if item["type"] == "m.room.retention" and item.get("state_key", "") == "":
                self._hs.retention.check_content(item["content"])  # the organisation's bounds
        creation = body.obj("creation_content", None)
        override = body.obj("power_level_content_override", None)
        return RoomSpec(
            version=version,
            preset=preset,
            is_public=visibility == "public",
            name=body.str("name", None, nullable=True),
            topic=body.str("topic", None, nullable=True),
            alias_localpart=body.str("room_alias_name", None, nullable=True),
            invites=invites,
            is_direct=body.bool("is_direct", False),
            creation_content=dict(creation.data) if creation is not None else {},
            initial_state=initial_state,
            power_level_override=dict(override.data) if override is not None else None,
        )

    async def create(self, creator: str, spec: RoomSpec) -> tuple[str, str | None]:
        """Create the room; returns (room_id, alias or None)."""
        alias = None
        if spec.alias_localpart is not None:
            alias = f"#{spec.alias_localpart}:{self._hs.hostname}"
            if not spec.alias_localpart or any(c in spec.alias_localpart for c in ":# "):
                raise invalid_param("room_alias_name must be a non-empty localpart without ':', '#' or spaces.")
            if await self._store.aliases.get_alias(alias) is not None:
                raise MatrixError(HTTPStatus.BAD_REQUEST, "M_ROOM_IN_USE", f"The alias {alias} is already in use.")

        sender = self._hs.event_sender
        create_content = {**spec.creation_content, "room_version": spec.version.identifier}
        if not spec.version.implicit_room_creator:
            create_content["creator"] = creator
        if spec.version.hydra and spec.preset == "trusted_private_chat" and spec.invites:
            create_content["additional_creators"] = list(spec.invites)
        created = await sender.create_room(spec.version, sender=creator, create_content=create_content,
                                           is_public=spec.is_public)
        room_id = created.event.room_id
        membership = self._hs.membership_handler

        async def state(event_type: str, content: dict[str, Any], state_key: str = "") -> None:
            await sender.send(room_id, sender=creator, event_type=event_type, state_key=state_key, content=content)

        await membership.send_membership(room_id, creator, creator, "join")
        await state("m.room.power_levels", default_power_levels(spec, creator))
        if alias is not None:
            if not await self._store.aliases.create_alias(alias, room_id, creator):
                raise MatrixError(HTTPStatus.BAD_REQUEST, "M_ROOM_IN_USE", f"The alias {alias} is already in use.")
            await state("m.room.canonical_alias", {"alias": alias})
        join_rule = "public" if spec.preset == "public_chat" else "invite"
        preset_state = {
            ("m.room.join_rules", ""): {"join_rule": join_rule},
            ("m.room.history_visibility", ""): {"history_visibility": "shared"},
        }
        if spec.preset != "public_chat":
            preset_state[("m.room.guest_access", "")] = {"guest_access": "can_join"}
        retention = self._hs.retention.rules.initial_state_content()
        if retention is not None:  # the organisation's default policy, shown in the room
            preset_state[("m.room.retention", "")] = retention
        for event_type, state_key, content in spec.initial_state:
            preset_state[(event_type, state_key)] = content  # initial_state overrides the preset
        if e2ee_policy.new_room_encrypted(self._hs.config.e2ee.required, creator, self._hs.server_notices.system_user_id):
            # Whatever the client asked: every room this server creates is encrypted.
            required = e2ee_policy.encryption_state()
            preset_state[(required["type"], required["state_key"])] = required["content"]
        for (event_type, state_key), content in preset_state.items():
            await state(event_type, content, state_key)
        if spec.name is not None:
            await state("m.room.name", {"name": spec.name})
        if spec.topic is not None:
            await state("m.room.topic", {"topic": spec.topic})
        for invitee in spec.invites:
            await membership.send_membership(room_id, creator, invitee, "invite", is_direct=spec.is_direct)
        return room_id, alias
