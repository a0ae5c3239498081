"""`Event`: a validated, immutable view of one PDU, whatever its room version's wire format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeserver.events.canonical import CanonicalJsonError, canonical_json, check_strict_canonical
from homeserver.events.hashing import compute_event_id
from homeserver.events.redaction import prune_event_dict
from homeserver.events.room_versions import RoomVersion

StateKey = tuple[str, str]
StateMap = dict[StateKey, str]  # (type, state_key) -> event_id

MAX_PDU_SIZE = 65536  # bytes of canonical JSON, signatures included (spec: size limits)
MAX_ID_BYTES = 255  # sender, room_id, type, state_key (spec: size limits)
MAX_PREV_EVENTS = 20
MAX_AUTH_EVENTS = 10
MAX_DEPTH = 2**63 - 1  # the v6+ 2**53-1 limit is covered by strict canonical JSON


class EventFormatError(ValueError):
    """A PDU that doesn't have the shape its room version requires; the message names the field."""


def _require_str(pdu: dict[str, Any], key: str, *, max_bytes: int | None = MAX_ID_BYTES) -> str:
    value = pdu.get(key)
    if not isinstance(value, str):
        raise EventFormatError(f"'{key}' must be a string")
    if max_bytes is not None and len(value.encode("utf-8")) > max_bytes:
        raise EventFormatError(f"'{key}' is longer than {max_bytes} bytes")
    return value


def _require_int(pdu: dict[str, Any], key: str) -> int:
    value = pdu.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventFormatError(f"'{key}' must be an integer")
    return value


def _event_refs(pdu: dict[str, Any], key: str, room_version: RoomVersion, limit: int) -> list[str]:
    """The event IDs of `prev_events`/`auth_events`: plain strings, or [id, {hashes}] pairs in v1–2."""
    refs = pdu.get(key)
    if not isinstance(refs, list):
        raise EventFormatError(f"'{key}' must be an array")
    if len(refs) > limit:
        raise EventFormatError(f"'{key}' holds more than {limit} events")
    ids: list[str] = []
    for ref in refs:
        if room_version.event_format == 1:
            if not (
                isinstance(ref, list)
                and len(ref) == 2
                and isinstance(ref[0], str)
                and isinstance(ref[1], dict)
            ):
                raise EventFormatError(f"'{key}' entries must be [event_id, {{hashes}}] pairs")
            ids.append(ref[0])
        else:
            if not isinstance(ref, str):
                raise EventFormatError(f"'{key}' entries must be event ID strings")
            ids.append(ref)
    return ids


def _check_signatures(pdu: dict[str, Any]) -> None:
    signatures = pdu.get("signatures")
    if not isinstance(signatures, dict):
        raise EventFormatError("'signatures' must be an object")
    for server_sigs in signatures.values():
        if not isinstance(server_sigs, dict) or not all(
            isinstance(s, str) for s in server_sigs.values()
        ):
            raise EventFormatError("'signatures' must map server names to objects of strings")


def _check_hashes(pdu: dict[str, Any]) -> None:
    hashes = pdu.get("hashes")
    if not isinstance(hashes, dict) or not isinstance(hashes.get("sha256"), str):
        raise EventFormatError("'hashes' must be an object with a 'sha256' string")


@dataclass(frozen=True, eq=False)
class Event:
    """One PDU, checked for shape. `pdu` is the dict as signed: never mutate it, copy before changing.

    Two events are equal when their event IDs are.
    """

    pdu: dict[str, Any]
    room_version: RoomVersion
    event_id: str
    room_id: str
    type: str
    state_key: str | None
    sender: str
    content: dict[str, Any]
    prev_event_ids: list[str]
    auth_event_ids: list[str]
    depth: int
    origin_server_ts: int
    redacts: str | None  # top-level before v11, content.redacts from v11
    unsigned: dict[str, Any]  # as received over federation; local additions live elsewhere
    membership: str | None  # content.membership of m.room.member events

    @classmethod
    def from_pdu(
        cls, pdu: dict[str, Any], room_version: RoomVersion, *, event_id: str | None = None
    ) -> "Event":
        """Validate `pdu` for `room_version` and wrap it.

        For v3+ the event ID is the reference hash unless the caller (who already knows it, e.g. from the
        database) passes `event_id`; for v1–2 it is taken from the PDU. Raises `EventFormatError`.
        """
        if not isinstance(pdu, dict):
            raise EventFormatError("a PDU must be a JSON object")
        try:
            encoded = canonical_json(pdu)
            if room_version.strict_canonicaljson:
                check_strict_canonical(pdu)
        except CanonicalJsonError as e:
            raise EventFormatError(str(e)) from None
        if len(encoded) > MAX_PDU_SIZE:
            raise EventFormatError("event too large")

        event_type = _require_str(pdu, "type")
        sender = _require_str(pdu, "sender")
        if not sender.startswith("@") or ":" not in sender:
            raise EventFormatError("'sender' must be a user ID")
        state_key = _require_str(pdu, "state_key") if "state_key" in pdu else None
        content = pdu.get("content")
        if not isinstance(content, dict):
            raise EventFormatError("'content' must be an object")
        prev_event_ids = _event_refs(pdu, "prev_events", room_version, MAX_PREV_EVENTS)
        auth_event_ids = _event_refs(pdu, "auth_events", room_version, MAX_AUTH_EVENTS)
        depth = _require_int(pdu, "depth")
        if not 0 <= depth <= MAX_DEPTH:
            raise EventFormatError("'depth' is out of range")
        origin_server_ts = _require_int(pdu, "origin_server_ts")
        _check_hashes(pdu)
        _check_signatures(pdu)
        unsigned = pdu.get("unsigned", {})
        if not isinstance(unsigned, dict):
            raise EventFormatError("'unsigned' must be an object")

        if room_version.updated_redaction_rules:
            redacts_value = content.get("redacts") if event_type == "m.room.redaction" else None
            redacts = redacts_value if isinstance(redacts_value, str) else None
        else:
            redacts = _require_str(pdu, "redacts", max_bytes=None) if "redacts" in pdu else None

        if room_version.event_format == 1:
            event_id = event_id or _require_str(pdu, "event_id")
        elif event_id is None:
            event_id = compute_event_id(pdu, room_version)

        if room_version.hydra and event_type == "m.room.create":
            # The room ID *is* the create event's ID; a room_id in the PDU is for the auth rules to reject.
            room_id = "!" + event_id[1:]
        else:
            room_id = _require_str(pdu, "room_id")
            if not room_id.startswith("!"):
                raise EventFormatError("'room_id' must be a room ID")

        membership_value = content.get("membership") if event_type == "m.room.member" else None
        return cls(
            pdu=pdu,
            room_version=room_version,
            event_id=event_id,
            room_id=room_id,
            type=event_type,
            state_key=state_key,
            sender=sender,
            content=content,
            prev_event_ids=prev_event_ids,
            auth_event_ids=auth_event_ids,
            depth=depth,
            origin_server_ts=origin_server_ts,
            redacts=redacts,
            unsigned=unsigned,
            membership=membership_value if isinstance(membership_value, str) else None,
        )

    def is_state(self) -> bool:
        return self.state_key is not None

    def state_tuple(self) -> StateKey:
        """(type, state_key); only meaningful for state events."""
        if self.state_key is None:
            raise ValueError(f"{self.event_id} is not a state event")
        return (self.type, self.state_key)

    def redacted(self) -> "Event":
        """This event as the redaction algorithm leaves it (same event ID, signatures still valid)."""
        return Event.from_pdu(
            prune_event_dict(self.room_version, self.pdu), self.room_version, event_id=self.event_id
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and other.event_id == self.event_id

    def __hash__(self) -> int:
        return hash(self.event_id)

    def __repr__(self) -> str:
        # Never the content: logs must not hold message text.
        return f"<Event {self.event_id} {self.type} state_key={self.state_key!r} sender={self.sender}>"
