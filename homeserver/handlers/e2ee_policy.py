"""The "encryption can't be switched off" promise, enforced on the server side (`e2ee.required`).

Every room the server creates is encrypted; a local user's message event must be
`m.room.encrypted` (redactions are never encrypted, by design); an `m.room.encryption` change may
not move a room to another algorithm. Clients still do the encrypting: the server can only refuse
what arrives in clear.

One exemption: server-notices rooms (handlers/server_notices.py). The server writes those notices
itself and can't encrypt them; they are created by the server's own notices account (made by the
server, recorded in `server_notices_system_users`, no one can log in as it), users can't post in
them, and the room says it is not encrypted.
"""

from __future__ import annotations

from typing import Any

from homeserver.http.errors import forbidden

MEGOLM = "m.megolm.v1.aes-sha2"
ENCRYPTION_EVENT = "m.room.encryption"
# Event types that are never encrypted, whatever the room: a redaction names what it removes.
NEVER_ENCRYPTED = frozenset({"m.room.encrypted", "m.room.redaction"})


def encryption_state() -> dict[str, Any]:
    return {"type": ENCRYPTION_EVENT, "state_key": "", "content": {"algorithm": MEGOLM}}


def new_room_encrypted(required: bool, creator: str, server_notices_user: str) -> bool:
    """Whether a new room gets the encryption state: every room when required, but server-notices rooms."""
    return required and creator != server_notices_user


def check_message(event_type: str) -> None:
    """Refuse a plaintext message event from a local user."""
    if event_type not in NEVER_ENCRYPTED:
        raise forbidden(
            f"This server requires end-to-end encryption: send '{event_type}' encrypted, as an "
            "m.room.encrypted event (your client does this in an encrypted room).")


def check_encryption_change(content: dict[str, Any]) -> None:
    """Refuse an m.room.encryption event that would drop or weaken the room's encryption."""
    if content.get("algorithm") != MEGOLM:
        raise forbidden(f"This server requires end-to-end encryption with {MEGOLM}: "
                        "the room's encryption can't be removed or changed to another algorithm.")
