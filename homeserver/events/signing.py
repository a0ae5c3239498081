"""Event signatures: servers sign the redacted PDU, so signatures survive redaction."""

from __future__ import annotations

from typing import Any

from signedjson.key import SigningKey, VerifyKey
from signedjson.sign import SignatureVerifyException, sign_json, verify_signed_json

from homeserver.events.redaction import prune_event_dict
from homeserver.events.room_versions import RoomVersion


class InvalidSignatureError(ValueError):
    """A PDU lacks a valid signature from a server it needs one from."""


def sign_pdu(
    pdu: dict[str, Any], room_version: RoomVersion, server_name: str, signing_key: SigningKey
) -> dict[str, Any]:
    """A copy of `pdu` with `server_name`'s signature (over its redacted form) added to `signatures`."""
    redacted = prune_event_dict(room_version, pdu)
    redacted.pop("signatures", None)
    signed = sign_json(redacted, server_name, signing_key)
    signatures = {server: dict(sigs) for server, sigs in (pdu.get("signatures") or {}).items()}
    signatures.setdefault(server_name, {}).update(signed["signatures"][server_name])
    return {**pdu, "signatures": signatures}


def verify_pdu_signature(
    pdu: dict[str, Any], room_version: RoomVersion, server_name: str, verify_key: VerifyKey
) -> None:
    """Raise `InvalidSignatureError` unless `pdu` carries a valid signature by `verify_key` of `server_name`.

    `verify_key` needs `alg` and `version` set (as `signedjson.key.decode_verify_key_bytes` gives) to pick the
    signature by key ID.
    """
    redacted = prune_event_dict(room_version, pdu)
    try:
        verify_signed_json(redacted, server_name, verify_key)
    except SignatureVerifyException as e:
        raise InvalidSignatureError(str(e)) from None
