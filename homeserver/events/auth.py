"""The authorisation rules of room versions 1–12, as the spec's room version pages word them.

The spec checks a received event several times against different state (server-server API: checks performed
on receipt of a PDU): against its own auth events (else rejected), the state before it (else rejected) and the
current state (else soft-failed); state resolution re-checks events against partially resolved state. Hence
two entry points:

- `check_auth_events(event, auth_events_by_id, rejected_event_ids=…)`: the rules about the event's own
  `auth_events` list (duplicates, unexpected entries, rejected entries, missing create event, other rooms),
  then every other rule against those auth events. Receipt check 4.
- `check_auth_rules(event, state)`: every rule except those about the `auth_events` list, against a state map
  (which may hold more than the event needs). Checks 5 and 6, the client path and state resolution. The
  events in `state` are taken as accepted; in v12 `state` must also hold the create event, which auth events
  never list (the room ID implies it).

Both raise `AuthError` with a message a person can act on. `auth_types_for_event` is the spec's "auth events
selection": which state an event must cite.

The v8+ rule that a join with `join_authorised_via_users_server` is validly signed by that user's server is
split: here we require a signature entry from that server; the cryptographic check belongs with the other
signature checks at receipt, which must cover every server `required_signature_servers` returns.
"""

from __future__ import annotations

from typing import Any, Collection, Mapping

from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey
from unpaddedbase64 import decode_base64

from homeserver.events.canonical import CanonicalJsonError, canonical_json
from homeserver.events.event import Event, StateKey
from homeserver.events.power_levels import (
    CREATE_KEY,
    LEVEL_KEYS,
    POWER_LEVELS_KEY,
    PowerLevel,
    PowerLevels,
    format_level,
    parse_level,
    power_levels_content_error,
    room_creators,
)
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.events.user_ids import is_valid_user_id, server_of

CREATE = "m.room.create"
MEMBER = "m.room.member"
JOIN_RULES = "m.room.join_rules"
POWER_LEVELS = "m.room.power_levels"
THIRD_PARTY_INVITE = "m.room.third_party_invite"
REDACTION = "m.room.redaction"
ALIASES = "m.room.aliases"
JOIN_RULES_KEY: StateKey = (JOIN_RULES, "")

JOIN, INVITE, LEAVE, BAN, KNOCK = "join", "invite", "leave", "ban", "knock"
AUTHORISER = "join_authorised_via_users_server"


class AuthError(Exception):
    """The event is not allowed; `msg` says why in words a user (or admin) can act on (403 M_FORBIDDEN)."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg


def auth_types_for_event(
    room_version: RoomVersion, type: str, state_key: str | None, sender: str, content: Mapping[str, Any]
) -> list[StateKey]:
    """The (type, state_key) pairs of state an event must cite in `auth_events` (spec: auth events selection).

    Empty for a create event; v12 never includes the create event (its ID is the room ID).
    """
    if type == CREATE:
        return []
    keys: list[StateKey] = [] if room_version.hydra else [CREATE_KEY]
    keys += [POWER_LEVELS_KEY, (MEMBER, sender)]
    if type == MEMBER and state_key is not None:
        membership = content.get("membership")
        keys.append((MEMBER, state_key))
        if membership in (JOIN, INVITE, KNOCK):
            keys.append(JOIN_RULES_KEY)
        token = _third_party_invite_token(content) if membership == INVITE else None
        if token is not None:
            keys.append((THIRD_PARTY_INVITE, token))
        if membership == JOIN and room_version.restricted_join_rule:
            authoriser = content.get(AUTHORISER)
            if isinstance(authoriser, str):
                keys.append((MEMBER, authoriser))
    return list(dict.fromkeys(keys))


def _third_party_invite_token(content: Mapping[str, Any]) -> str | None:
    invite = content.get("third_party_invite")
    signed = invite.get("signed") if isinstance(invite, dict) else None
    token = signed.get("token") if isinstance(signed, dict) else None
    return token if isinstance(token, str) else None


def required_signature_servers(event: Event) -> set[str]:
    """The servers whose signatures on `event` must be verified at receipt for it (and its auth) to stand.

    The sender's server; in v1–2 also the event ID's server; from v8 the server of
    `content.join_authorised_via_users_server` on membership events.
    """
    servers = {server_of(event.sender)}
    if event.room_version.event_format == 1:
        servers.add(server_of(event.event_id))
    if event.type == MEMBER and event.room_version.restricted_join_rule:
        authoriser = event.content.get(AUTHORISER)
        if isinstance(authoriser, str):
            servers.add(server_of(authoriser))
    servers.discard("")
    return servers


def check_auth_events(
    event: Event,
    auth_events: Mapping[str, Event],
    *,
    rejected_event_ids: Collection[str] = frozenset(),
) -> None:
    """Authorise `event` against its own auth events (receipt check 4); `AuthError` means: reject it.

    `auth_events` maps event IDs to events and must hold every ID in `event.auth_event_ids` (in v12 also the
    create event, `'$' + room_id[1:]`); events whose IDs are in `rejected_event_ids` count as rejected.
    """
    version = event.room_version
    if event.type == CREATE:
        _check_create(event)
        return
    cited: list[Event] = []
    for event_id in event.auth_event_ids:
        auth_event = auth_events.get(event_id)
        if auth_event is None:
            raise AuthError(f"Auth event {event_id} of {event.event_id} is unknown.")
        cited.append(auth_event)

    by_key: dict[StateKey, Event] = {}
    for auth_event in cited:
        key = (auth_event.type, auth_event.state_key if auth_event.state_key is not None else "")
        if key in by_key:
            raise AuthError(f"{event.event_id} cites two auth events for {key[0]} '{key[1]}'.")
        by_key[key] = auth_event
    expected = set(auth_types_for_event(version, event.type, event.state_key, event.sender, event.content))
    for auth_event in cited:
        if auth_event.state_key is None or auth_event.state_tuple() not in expected:
            hint = (
                f" (room version {version.identifier} implies the create event from the room ID)"
                if version.hydra and auth_event.type == CREATE
                else ""
            )
            raise AuthError(
                f"{event.event_id} cites {auth_event.event_id} ({auth_event.type} "
                f"'{auth_event.state_key}'), which is not needed to authorise it{hint}."
            )
    for auth_event in cited:
        if auth_event.event_id in rejected_event_ids:
            raise AuthError(f"Auth event {auth_event.event_id} of {event.event_id} was rejected.")
    if version.hydra:
        create_id = "$" + event.room_id[1:]
        create = auth_events.get(create_id)
        if create is None:
            raise AuthError(f"The create event {create_id} of room {event.room_id} is unknown.")
        if create_id in rejected_event_ids:
            raise AuthError(f"The create event {create_id} of room {event.room_id} was rejected.")
        by_key[CREATE_KEY] = create
    elif CREATE_KEY not in by_key:
        raise AuthError(f"{event.event_id} does not cite the room's m.room.create event.")
    for auth_event in cited:
        if auth_event.room_id != event.room_id:
            raise AuthError(
                f"Auth event {auth_event.event_id} belongs to room {auth_event.room_id}, "
                f"not {event.room_id}."
            )
    check_auth_rules(event, by_key)


def check_auth_rules(event: Event, state: Mapping[StateKey, Event]) -> None:
    """Authorise `event` against `state` (a state map, or its auth events keyed by (type, state_key)).

    Raises `AuthError` if the event is not allowed. Every rule but those about the `auth_events` list itself.
    """
    version = event.room_version
    if event.type == CREATE:
        _check_create(event)
        return

    create = state.get(CREATE_KEY)
    if create is None:
        raise AuthError(f"No m.room.create event is known for room {event.room_id}.")
    if version.hydra and create.event_id != "$" + event.room_id[1:]:
        raise AuthError(f"Room ID {event.room_id} is not the ID of the create event {create.event_id}.")
    if create.room_id != event.room_id:
        raise AuthError(f"The create event {create.event_id} belongs to another room ({create.room_id}).")

    create_server = server_of(create.sender)
    if create.content.get("m.federate", True) is False and server_of(event.sender) != create_server:
        raise AuthError(
            f"Room {event.room_id} is not federated: only users of {create_server} may take part."
        )

    if version.special_case_aliases_auth and event.type == ALIASES:
        if event.state_key is None:
            raise AuthError("An m.room.aliases event needs a state key (the server name).")
        if event.state_key != server_of(event.sender):
            raise AuthError(f"Only users of {event.state_key} may set its aliases, not {event.sender}.")
        return

    levels = PowerLevels.from_state(state, version)
    if event.type == MEMBER:
        _check_membership(event, state, create, levels)
        return

    if _membership(state, event.sender) != JOIN:
        raise AuthError(f"{event.sender} is not in room {event.room_id}.")
    sender_level = levels.user_level(event.sender)

    if event.type == THIRD_PARTY_INVITE:
        _require_level(sender_level, levels.level("invite"), "invite users (by third-party invite)")
        return

    required = levels.event_level(event.type, event.is_state())
    if required > sender_level:
        raise AuthError(
            f"You don't have permission to send {event.type} (needs power {required}, "
            f"you have {format_level(sender_level)})."
        )
    if event.state_key is not None and event.state_key.startswith("@") and event.state_key != event.sender:
        raise AuthError(f"Only {event.state_key} may send {event.type} with their user ID as state key.")
    if event.type == POWER_LEVELS:
        _check_power_levels(event, create, levels, sender_level)
    elif event.type == REDACTION and _redactions_in_auth_rules(version):
        _check_redaction(event, levels, sender_level)


def _check_create(event: Event) -> None:
    version = event.room_version
    if event.prev_event_ids:
        raise AuthError("An m.room.create event must not have prev_events.")
    if version.hydra:
        if "room_id" in event.pdu:
            raise AuthError(
                f"An m.room.create event of room version {version.identifier} must not have a room_id: "
                "the room ID is derived from the event ID."
            )
    elif server_of(event.room_id) != server_of(event.sender):
        raise AuthError(
            f"Room {event.room_id} can only be created by a user of its server, not {event.sender}."
        )
    if "room_version" in event.content:
        claimed = event.content["room_version"]
        if not isinstance(claimed, str) or claimed not in KNOWN_ROOM_VERSIONS:
            raise AuthError(f"Unknown room version {claimed!r} in m.room.create.")
    if not version.implicit_room_creator and "creator" not in event.content:
        raise AuthError("An m.room.create event needs a 'creator' in its content.")
    if version.hydra and "additional_creators" in event.content:
        additional = event.content["additional_creators"]
        if not isinstance(additional, list) or not all(is_valid_user_id(u) for u in additional):
            raise AuthError("'additional_creators' must be a list of valid user IDs.")


def _membership(state: Mapping[StateKey, Event], user_id: str) -> str | None:
    """A user's current membership; None for a user the room has never seen (acts as 'leave')."""
    member = state.get((MEMBER, user_id))
    return member.membership if member is not None else None


def _join_rule(state: Mapping[StateKey, Event]) -> Any:
    # Without a join rules event (or its join_rule) the room counts as invite-only, as Synapse and Ruma do;
    # the spec's wording would reject every such join, which only differs for invited users and would split
    # our view of the room from theirs.
    join_rules = state.get(JOIN_RULES_KEY)
    if join_rules is None:
        return INVITE
    return join_rules.content.get("join_rule", INVITE)


def _require_level(have: PowerLevel, need: int, action: str) -> None:
    if have < need:
        raise AuthError(
            f"You don't have permission to {action} (needs power {need}, you have {format_level(have)})."
        )


def _check_membership(
    event: Event, state: Mapping[StateKey, Event], create: Event, levels: PowerLevels
) -> None:
    version = event.room_version
    target = event.state_key
    if target is None or "membership" not in event.content:
        raise AuthError("An m.room.member event needs a state key and a 'membership' in its content.")
    membership = event.content["membership"]
    sender = event.sender

    if version.restricted_join_rule and AUTHORISER in event.content:
        authoriser = event.content[AUTHORISER]
        if not is_valid_user_id(authoriser):
            raise AuthError(f"'{AUTHORISER}' must be a user ID.")
        signatures = event.pdu.get("signatures", {})
        if server_of(authoriser) not in signatures:
            raise AuthError(
                f"The join is authorised via {authoriser}, but their server {server_of(authoriser)} "
                "has not signed it."
            )

    sender_membership = _membership(state, sender)
    target_membership = _membership(state, target)
    join_rule = _join_rule(state)

    if membership == JOIN:
        creator = create.sender if version.implicit_room_creator else create.content.get("creator")
        if event.prev_event_ids == [create.event_id] and target == creator:
            return
        if sender != target:
            raise AuthError(f"{sender} can't join the room on behalf of {target}.")
        if sender_membership == BAN:
            raise AuthError(f"{sender} is banned from the room.")
        invite_rules = (INVITE, KNOCK) if version.knock_join_rule else (INVITE,)
        restricted_rules = (
            ("restricted", "knock_restricted")
            if version.knock_restricted_join_rule
            else ("restricted",) if version.restricted_join_rule else ()
        )
        if join_rule in invite_rules:
            if sender_membership in (INVITE, JOIN):
                return
            raise AuthError(f"{sender} needs an invite to join this room (join rule '{join_rule}').")
        if join_rule in restricted_rules:
            if sender_membership in (INVITE, JOIN):
                return
            authoriser = event.content.get(AUTHORISER)
            if authoriser is None:
                raise AuthError(
                    f"Joining this room (join rule '{join_rule}') needs an invite or a member who can "
                    f"invite to authorise the join ('{AUTHORISER}')."
                )
            if _membership(state, authoriser) != JOIN:
                raise AuthError(f"{authoriser} can't authorise joins: they are not in the room.")
            authoriser_level = levels.user_level(authoriser)
            if authoriser_level < levels.level("invite"):
                raise AuthError(
                    f"{authoriser} can't authorise joins: inviting needs power {levels.level('invite')}, "
                    f"they have {format_level(authoriser_level)}."
                )
            return
        if join_rule == "public":
            return
        raise AuthError(f"{sender} can't join this room (join rule {join_rule!r}).")

    if membership == INVITE:
        if "third_party_invite" in event.content:
            _check_third_party_invite(event, state, target_membership)
            return
        if sender_membership != JOIN:
            raise AuthError(f"{sender} can't invite: they are not in the room.")
        if target_membership in (JOIN, BAN):
            state_word = "already in" if target_membership == JOIN else "banned from"
            raise AuthError(f"{target} can't be invited: they are {state_word} the room.")
        _require_level(levels.user_level(sender), levels.level("invite"), "invite users")
        return

    if membership == LEAVE:
        if sender == target:
            may_leave = (INVITE, JOIN, KNOCK) if version.knock_join_rule else (INVITE, JOIN)
            if sender_membership in may_leave:
                return
            raise AuthError(f"{sender} can't leave: their membership is {sender_membership or 'leave'}.")
        if sender_membership != JOIN:
            raise AuthError(f"{sender} can't kick or unban: they are not in the room.")
        sender_level = levels.user_level(sender)
        if target_membership == BAN:
            _require_level(sender_level, levels.level("ban"), "unban users")
        _require_level(sender_level, levels.level("kick"), "kick users")
        _require_outranks(sender, sender_level, target, levels.user_level(target), "kick")
        return

    if membership == BAN:
        if sender_membership != JOIN:
            raise AuthError(f"{sender} can't ban: they are not in the room.")
        sender_level = levels.user_level(sender)
        _require_level(sender_level, levels.level("ban"), "ban users")
        _require_outranks(sender, sender_level, target, levels.user_level(target), "ban")
        return

    if membership == KNOCK and version.knock_join_rule:
        knock_rules = (KNOCK, "knock_restricted") if version.knock_restricted_join_rule else (KNOCK,)
        if join_rule not in knock_rules:
            raise AuthError(f"This room does not accept knocks (join rule {join_rule!r}).")
        if sender != target:
            raise AuthError(f"{sender} can't knock on behalf of {target}.")
        if sender_membership in (BAN, INVITE, JOIN):
            raise AuthError(f"{sender} can't knock: their membership is already {sender_membership}.")
        return

    raise AuthError(f"Unknown membership {membership!r} in room version {version.identifier}.")


def _require_outranks(
    sender: str, sender_level: PowerLevel, target: str, target_level: PowerLevel, action: str
) -> None:
    if target_level >= sender_level:
        raise AuthError(
            f"{sender} can't {action} {target}: their power ({format_level(target_level)}) is not below "
            f"yours ({format_level(sender_level)})."
        )


def _check_third_party_invite(
    event: Event, state: Mapping[StateKey, Event], target_membership: str | None
) -> None:
    if target_membership == BAN:
        raise AuthError(f"{event.state_key} can't be invited: they are banned from the room.")
    invite = event.content["third_party_invite"]
    signed = invite.get("signed") if isinstance(invite, dict) else None
    if not isinstance(signed, dict):
        raise AuthError("'third_party_invite' needs a 'signed' object.")
    if "mxid" not in signed or "token" not in signed:
        raise AuthError("'third_party_invite.signed' needs 'mxid' and 'token'.")
    if signed["mxid"] != event.state_key:
        raise AuthError(f"The third-party invite was signed for {signed['mxid']!r}, not {event.state_key}.")
    token = signed["token"]
    invite_event = state.get((THIRD_PARTY_INVITE, token)) if isinstance(token, str) else None
    if invite_event is None:
        raise AuthError("There is no matching m.room.third_party_invite in the room for this invite's token.")
    if invite_event.sender != event.sender:
        raise AuthError(f"Only {invite_event.sender}, who made the third-party invite, can complete it.")
    if not _signed_by_invite_keys(signed, invite_event.content):
        raise AuthError("The third-party invite is not signed by any of the invite's public keys.")


def _signed_by_invite_keys(signed: Mapping[str, Any], invite_content: Mapping[str, Any]) -> bool:
    """Whether an ed25519 signature in `signed` verifies with a public key of the third-party invite."""
    public_keys: list[str] = []
    if isinstance(invite_content.get("public_key"), str):
        public_keys.append(invite_content["public_key"])
    listed = invite_content.get("public_keys")
    if isinstance(listed, list):
        public_keys += [
            k["public_key"] for k in listed if isinstance(k, dict) and isinstance(k.get("public_key"), str)
        ]
    signatures = signed.get("signatures")
    if not isinstance(signatures, dict):
        return False
    try:
        message = canonical_json({k: v for k, v in signed.items() if k not in ("signatures", "unsigned")})
    except CanonicalJsonError:
        return False
    verify_keys = [key for key in map(_verify_key, public_keys) if key is not None]
    for server_signatures in signatures.values():
        if not isinstance(server_signatures, dict):
            continue
        for key_id, signature in server_signatures.items():
            if not key_id.startswith("ed25519:") or not isinstance(signature, str):
                continue
            try:
                signature_bytes = decode_base64(signature)
            except ValueError:
                continue
            for verify_key in verify_keys:
                try:
                    verify_key.verify(message, signature_bytes)
                    return True
                except (CryptoError, ValueError, TypeError):
                    continue
    return False


def _verify_key(public_key: str) -> VerifyKey | None:
    """An ed25519 key from unpadded base64 in the standard or URL-safe alphabet (decode_base64 takes both)."""
    try:
        return VerifyKey(decode_base64(public_key))
    except (ValueError, TypeError, CryptoError):
        return None


def _check_power_levels(event: Event, create: Event, before: PowerLevels, sender_level: PowerLevel) -> None:
    version = event.room_version
    new = event.content
    problem = power_levels_content_error(new, version, creators=room_creators(create))
    if problem is not None:
        raise AuthError(f"Invalid m.room.power_levels content: {problem}.")
    old = before.content
    if old is None:
        return

    def level_of(content: Mapping[str, Any], key: str) -> int | None:
        return parse_level(content[key], version) if key in content else None

    def mapping(content: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = content.get(key)
        return value if isinstance(value, dict) else {}

    mine = format_level(sender_level)
    for key in LEVEL_KEYS:
        old_level, new_level = level_of(old, key), level_of(new, key)
        if old_level == new_level:
            continue
        if old_level is not None and old_level > sender_level:
            raise AuthError(f"You can't change '{key}' from {old_level}: it is above your power ({mine}).")
        if new_level is not None and new_level > sender_level:
            raise AuthError(f"You can't set '{key}' to {new_level}: it is above your power ({mine}).")

    maps = ("events", "notifications") if version.limit_notifications_power_levels else ("events",)
    for name in maps:
        old_map, new_map = mapping(old, name), mapping(new, name)
        for key in sorted(old_map.keys() | new_map.keys()):
            old_level, new_level = level_of(old_map, key), level_of(new_map, key)
            if old_level == new_level:
                continue
            if old_level is not None and old_level > sender_level:
                raise AuthError(
                    f"You can't change the level of {name} '{key}' from {old_level}: "
                    f"it is above your power ({mine})."
                )
            if new_level is not None and new_level > sender_level:
                raise AuthError(
                    f"You can't set the level of {name} '{key}' to {new_level}: "
                    f"it is above your power ({mine})."
                )

    old_users, new_users = mapping(old, "users"), mapping(new, "users")
    for user_id in sorted(old_users.keys() | new_users.keys()):
        old_level, new_level = level_of(old_users, user_id), level_of(new_users, user_id)
        if old_level == new_level:
            continue
        if user_id != event.sender and old_level is not None and old_level >= sender_level:
            raise AuthError(
                f"You can't change the power of {user_id} ({old_level}): only users with more power "
                f"than that can (you have {mine})."
            )
        if new_level is not None and new_level > sender_level:
            raise AuthError(f"You can't give {user_id} power {new_level}: it is above your own ({mine}).")


def _redactions_in_auth_rules(version: RoomVersion) -> bool:
    """Room versions 1–2 (the ones with the v1 event format) authorise redactions in rule 11; later versions
    decide when the redaction is applied (`power_levels.can_redact`)."""
    return version.event_format == 1


def _check_redaction(event: Event, levels: PowerLevels, sender_level: PowerLevel) -> None:
    if sender_level >= levels.level("redact"):
        return
    if event.redacts is not None and server_of(event.redacts) == server_of(event.event_id) != "":
        return
    raise AuthError(
        f"You don't have permission to redact events from other servers (needs power "
        f"{levels.level('redact')}, you have {format_level(sender_level)})."
    )
