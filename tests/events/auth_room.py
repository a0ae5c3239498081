"""A small in-memory room for the auth-rule tests: builds real signed events and keeps the state they make.

`Room.send` authorises each event with `check_auth_rules` against the current state before applying it, so a
test sets a room up through the same rules it then probes; `Room.build` only builds (for events expected to
fail). Auth events are chosen with `auth_types_for_event`, as a server would.
"""

from __future__ import annotations

import itertools
from typing import Any

from signedjson.key import SigningKey, generate_signing_key

from homeserver.events.auth import auth_types_for_event, check_auth_rules
from homeserver.events.builder import build_event
from homeserver.events.event import Event, StateKey
from homeserver.events.hashing import add_content_hash
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.events.signing import sign_pdu
from homeserver.events.user_ids import server_of

VERSIONS = list(KNOWN_ROOM_VERSIONS.values())
ALICE = "@alice:a.test"  # the creator in every room here
BOB = "@bob:b.test"
CAROL = "@carol:a.test"
DAVE = "@dave:d.test"

_KEYS: dict[str, SigningKey] = {}
_room_numbers = itertools.count()


def signing_key(server_name: str) -> SigningKey:
    if server_name not in _KEYS:
        _KEYS[server_name] = generate_signing_key("t1")
    return _KEYS[server_name]


def vid(version: RoomVersion) -> str:
    return f"v{version.identifier}"


class Room:
    def __init__(
        self, version: RoomVersion, creator: str = ALICE, create_content: dict[str, Any] | None = None
    ):
        self.version = version
        self.state: dict[StateKey, Event] = {}
        self.events: dict[str, Event] = {}
        self.last: list[str] = []
        self.depth = 0
        content = dict(create_content) if create_content is not None else {}
        if not version.implicit_room_creator:
            content.setdefault("creator", creator)
        content.setdefault("room_version", version.identifier)
        self.room_id: str | None = (
            None if version.hydra else f"!room{next(_room_numbers)}:{server_of(creator)}"
        )
        self.create = self.send(creator, "m.room.create", content, state_key="")
        self.room_id = self.create.room_id

    def build(
        self,
        sender: str,
        type: str,
        content: dict[str, Any],
        *,
        state_key: str | None = None,
        prev: list[str] | None = None,
        auth: list[str] | None = None,
        redacts: str | None = None,
        room_id: str | None = None,
        also_signed_by: tuple[str, ...] = (),
    ) -> Event:
        if auth is None:
            keys = auth_types_for_event(self.version, type, state_key, sender, content)
            auth = [self.state[k].event_id for k in keys if k in self.state]
        hashes = {eid: dict(e.pdu["hashes"]) for eid, e in self.events.items()}
        server = server_of(sender)
        event = build_event(
            self.version,
            room_id=room_id if room_id is not None else self.room_id,
            type=type,
            state_key=state_key,
            sender=sender,
            content=content,
            prev_event_ids=list(self.last) if prev is None else prev,
            auth_event_ids=auth,
            depth=self.depth + 1,
            origin_server_ts=1_700_000_000_000 + self.depth,
            server_name=server,
            signing_key=signing_key(server),
            redacts=redacts,
            prev_event_hashes=hashes,
        )
        for other in also_signed_by:
            event = Event.from_pdu(
                sign_pdu(event.pdu, self.version, other, signing_key(other)),
                self.version,
                event_id=event.event_id,
            )
        return event

    def apply(self, event: Event) -> Event:
        self.events[event.event_id] = event
        self.last = [event.event_id]
        self.depth += 1
        if event.state_key is not None:
            self.state[event.state_tuple()] = event
        return event

    def send(self, sender: str, type: str, content: dict[str, Any], **kwargs: Any) -> Event:
        event = self.build(sender, type, content, **kwargs)
        check_auth_rules(event, self.state)
        return self.apply(event)

    def check(self, event: Event) -> None:
        check_auth_rules(event, self.state)

    # Shorthands for the usual steps.
    def member(self, sender: str, target: str, membership: str, **content: Any) -> Event:
        return self.build(sender, "m.room.member", {"membership": membership, **content}, state_key=target)

    def set_member(self, sender: str, target: str, membership: str, **content: Any) -> Event:
        return self.apply(self.member(sender, target, membership, **content))

    def power_levels(self, sender: str, content: dict[str, Any]) -> Event:
        return self.build(sender, "m.room.power_levels", content, state_key="")


def standard_room(
    version: RoomVersion,
    join_rule: str = "public",
    users: dict[str, int] | None = None,
    power_levels: dict[str, Any] | None = None,
    create_content: dict[str, Any] | None = None,
) -> Room:
    """A room created by ALICE as `createRoom` would: create, creator's join, power levels, join rules."""
    room = Room(version, create_content=create_content)
    room.send(ALICE, "m.room.member", {"membership": "join"}, state_key=ALICE)
    content: dict[str, Any] = {"users": dict(users or {})}
    if not version.hydra:
        content["users"].setdefault(ALICE, 100)
    content.update(power_levels or {})
    room.send(ALICE, "m.room.power_levels", content, state_key="")
    room.send(ALICE, "m.room.join_rules", {"join_rule": join_rule}, state_key="")
    return room


def altered(event: Event, **changes: Any) -> Event:
    """`event` with top-level PDU keys replaced (None deletes one), re-hashed and re-signed by its sender."""
    pdu = {k: v for k, v in event.pdu.items() if k not in ("signatures", "hashes")}
    if event.room_version.event_format != 1:
        pdu.pop("event_id", None)
    for key, value in changes.items():
        if value is None:
            pdu.pop(key, None)
        else:
            pdu[key] = value
    server = server_of(event.sender)
    signed = sign_pdu(add_content_hash(pdu), event.room_version, server, signing_key(server))
    return Event.from_pdu(signed, event.room_version)
