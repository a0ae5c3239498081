"""Invites completing an m.room.third_party_invite: `signed` must verify against the invite's keys."""

from __future__ import annotations

from typing import Any

import pytest
from canonicaljson import encode_canonical_json
from nacl.signing import SigningKey
from unpaddedbase64 import encode_base64

from homeserver.events.auth import AuthError
from homeserver.events.event import Event
from homeserver.events.room_versions import RoomVersion
from tests.events.auth_room import ALICE, BOB, CAROL, VERSIONS, Room, standard_room, vid

MEMBER = "m.room.member"
TOKEN = "abc123"
IDENTITY_KEY = SigningKey(b"\x01" * 32)
OTHER_KEY = SigningKey(b"\x02" * 32)


def public_key(key: SigningKey, urlsafe: bool = False) -> str:
    return encode_base64(bytes(key.verify_key), urlsafe=urlsafe)


def signed_block(key: SigningKey = IDENTITY_KEY, mxid: str = BOB, token: str = TOKEN) -> dict[str, Any]:
    block: dict[str, Any] = {"mxid": mxid, "token": token}
    signature = key.sign(encode_canonical_json(block)).signature
    return {**block, "signatures": {"id.test": {"ed25519:0": encode_base64(signature)}}}


def room_with_invite(version: RoomVersion, invite_content: dict[str, Any] | None = None) -> Room:
    room = standard_room(version, "invite", users={CAROL: 100})
    room.send(ALICE, MEMBER, {"membership": "invite"}, state_key=CAROL)
    room.send(CAROL, MEMBER, {"membership": "join"}, state_key=CAROL)
    content = invite_content or {
        "display_name": "b...@example.org",
        "key_validity_url": "https://id.test/_matrix/identity/v2/pubkey/isvalid",
        "public_key": public_key(IDENTITY_KEY),
    }
    room.send(ALICE, "m.room.third_party_invite", content, state_key=TOKEN)
    return room


def invite(room: Room, third_party_invite: Any, sender: str = ALICE, target: str = BOB) -> Event:
    content = {"membership": "invite", "third_party_invite": third_party_invite}
    return room.build(sender, MEMBER, content, state_key=target)


def denied(room: Room, event: Event, match: str) -> None:
    with pytest.raises(AuthError, match=match):
        room.check(event)


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_signed_invite_is_allowed(version: RoomVersion) -> None:
    room = room_with_invite(version)
    room.check(invite(room, {"display_name": "Bob", "signed": signed_block()}))


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
@pytest.mark.parametrize(
    "keys",
    [
        {"public_keys": [{"public_key": public_key(OTHER_KEY)}, {"public_key": public_key(IDENTITY_KEY)}]},
        {"public_key": public_key(IDENTITY_KEY, urlsafe=True)},
        {"public_key": public_key(OTHER_KEY), "public_keys": [{"public_key": public_key(IDENTITY_KEY)}]},
    ],
    ids=["public_keys", "urlsafe", "single-wrong-list-right"],
)
def test_any_listed_key_may_sign(version: RoomVersion, keys: dict[str, Any]) -> None:
    room = room_with_invite(version, {"display_name": "b", **keys})
    room.check(invite(room, {"display_name": "Bob", "signed": signed_block()}))


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_failures(version: RoomVersion) -> None:
    room = room_with_invite(version)
    good = signed_block()
    denied(room, invite(room, {"display_name": "Bob"}), "needs a 'signed' object")
    denied(room, invite(room, "yes"), "needs a 'signed' object")
    denied(
        room,
        invite(room, {"signed": {"token": TOKEN, "signatures": good["signatures"]}}),
        "'mxid' and 'token'",
    )
    denied(
        room, invite(room, {"signed": {"mxid": BOB, "signatures": good["signatures"]}}), "'mxid' and 'token'"
    )
    denied(room, invite(room, {"signed": good}, target="@zed:z.test"), "signed for")
    denied(
        room, invite(room, {"signed": signed_block(token="other")}), "no matching m.room.third_party_invite"
    )
    denied(room, invite(room, {"signed": good}, sender=CAROL), f"Only {ALICE}")
    denied(room, invite(room, {"signed": signed_block(key=OTHER_KEY)}), "not signed by any")
    tampered = {**good, "signatures": {"id.test": {"ed25519:0": "AAAA"}}}
    denied(room, invite(room, {"signed": tampered}), "not signed by any")
    unsigned = {k: v for k, v in good.items() if k != "signatures"}
    denied(room, invite(room, {"signed": unsigned}), "not signed by any")
    wrong_alg = {
        **good,
        "signatures": {"id.test": {"curve25519:0": good["signatures"]["id.test"]["ed25519:0"]}},
    }
    denied(room, invite(room, {"signed": wrong_alg}), "not signed by any")


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_banned_target_cannot_be_invited(version: RoomVersion) -> None:
    room = room_with_invite(version)
    room.send(ALICE, MEMBER, {"membership": "ban"}, state_key=BOB)
    denied(room, invite(room, {"signed": signed_block()}), "banned")


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_garbage_public_keys_are_ignored(version: RoomVersion) -> None:
    room = room_with_invite(
        version,
        {"public_key": "!!not base64", "public_keys": ["x", {"public_key": 5}, {"public_key": "AAAA"}]},
    )
    denied(room, invite(room, {"signed": signed_block()}), "not signed by any")


@pytest.mark.parametrize("version", VERSIONS, ids=vid)
def test_inviter_need_not_still_be_joined(version: RoomVersion) -> None:
    """The spec's third-party branch allows once the signature checks out: no membership or level check."""
    room = room_with_invite(version)
    levels = {"users": {**room.state[("m.room.power_levels", "")].content["users"]}, "invite": 100}
    room.send(ALICE, "m.room.power_levels", levels, state_key="")
    room.send(ALICE, MEMBER, {"membership": "leave"}, state_key=ALICE)
    room.check(invite(room, {"signed": signed_block()}))
