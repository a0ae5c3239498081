"""Server-side key backup (`/room_keys`): backup versions and the Megolm session keys in them.

The server cannot read the keys: clients encrypt them to the backup's public key. It checks the
shape of what is stored, keeps the better copy of a session uploaded twice (see
`storage.stores.key_backup`), and only lets the current version take new keys, so that a client
still writing to a replaced backup learns about it (403 `M_WRONG_ROOM_KEYS_VERSION`).
"""

from __future__ import annotations

import binascii
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from unpaddedbase64 import decode_base64

from homeserver.http.errors import MatrixError, bad_json, invalid_param, not_found
from homeserver.http.parse import JsonFields
from storage.stores.key_backup import BackupKey, BackupVersion, NoSuchBackup, WrongBackupVersion

if TYPE_CHECKING:
    from homeserver.server import HomeServer

CURVE25519_ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
SUPPORTED_ALGORITHMS = (CURVE25519_ALGORITHM,)
MAX_ID_BYTES = 255


def wrong_version(current: str) -> MatrixError:
    return MatrixError(HTTPStatus.FORBIDDEN, "M_WRONG_ROOM_KEYS_VERSION",
                       f"Wrong backup version: the current one is {current}.", current_version=current)


def unknown_version() -> MatrixError:
    return not_found("Unknown backup version.")


def validate_auth_data(algorithm: str, auth_data: dict[str, Any]) -> None:
    """The spec's `auth_data` for `m.megolm_backup.v1.curve25519-aes-sha2`: a Curve25519 public
    key in unpadded base64, and optional signatures of it."""
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise invalid_param(f"Unsupported backup algorithm '{algorithm}'.")
    public_key = auth_data.get("public_key")
    if not isinstance(public_key, str):
        raise bad_json("Field 'auth_data.public_key' must be a string.")
    try:
        key = decode_base64(public_key)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise invalid_param("'auth_data.public_key' must be a Curve25519 key in unpadded base64.")
    signatures = auth_data.get("signatures", {})
    if not isinstance(signatures, dict) or not all(
        isinstance(by_key, dict) and all(isinstance(sig, str) for sig in by_key.values())
        for by_key in signatures.values()
    ):
        raise bad_json("Field 'auth_data.signatures' must map user IDs to objects of key IDs to signatures.")


def _check_id(kind: str, value: str) -> None:
    if not value or len(value.encode("utf-8")) > MAX_ID_BYTES:
        raise invalid_param(f"Invalid {kind} '{value[:MAX_ID_BYTES]}'.")


def parse_key(room_id: str, session_id: str, fields: JsonFields) -> BackupKey:
    _check_id("room ID", room_id)
    _check_id("session ID", session_id)
    first_message_index = fields.int("first_message_index")
    forwarded_count = fields.int("forwarded_count")
    if first_message_index < 0 or forwarded_count < 0:
        raise invalid_param("'first_message_index' and 'forwarded_count' must not be negative.")
    return BackupKey(room_id, session_id, first_message_index, forwarded_count, fields.bool("is_verified"),
                     fields.obj("session_data").data)


def parse_sessions(room_id: str, room: JsonFields) -> list[BackupKey]:
    sessions = room.obj("sessions")
    return [parse_key(room_id, session_id, sessions.obj(session_id)) for session_id in sessions.data]


def key_json(key: BackupKey) -> dict[str, Any]:
    return {"first_message_index": key.first_message_index, "forwarded_count": key.forwarded_count,
            "is_verified": key.is_verified, "session_data": key.session_data}


def version_json(version: BackupVersion) -> dict[str, Any]:
    return {"algorithm": version.algorithm, "auth_data": version.auth_data, "count": version.count,
            "etag": version.etag, "version": version.version}


class KeyBackupHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._store = hs.store.key_backup

    async def create_version(self, user_id: str, body: JsonFields) -> str:
        algorithm = body.str("algorithm")
        auth_data = body.obj("auth_data").data
        validate_auth_data(algorithm, auth_data)
        return await self._store.create_version(user_id, algorithm, auth_data)

    async def get_version(self, user_id: str, version: str | None) -> dict[str, Any]:
        """A version's description; `version` None: the current one."""
        found = await self._store.get_version(user_id, version)
        if found is None:
            raise not_found("No current backup version.") if version is None else unknown_version()
        return version_json(found)

    async def update_version(self, user_id: str, version: str, body: JsonFields) -> None:
        """Only `auth_data` may change; the algorithm and version in the body must match."""
        algorithm = body.str("algorithm")
        auth_data = body.obj("auth_data").data
        if body.str("version", version) != version:
            raise invalid_param("The version in the body does not match the version in the path.")
        current = await self._store.get_version(user_id, version)
        if current is None:
            raise unknown_version()
        if algorithm != current.algorithm:
            raise invalid_param("The algorithm does not match the backup's algorithm.")
        validate_auth_data(algorithm, auth_data)
        if not await self._store.update_auth_data(user_id, version, auth_data):
            raise unknown_version()

    async def delete_version(self, user_id: str, version: str) -> None:
        """Deleting a version deleted before succeeds, as the spec asks."""
        if not await self._store.delete_version(user_id, version):
            raise unknown_version()

    async def put_keys(self, user_id: str, version: str, keys: list[BackupKey]) -> dict[str, Any]:
        try:
            etag, count = await self._store.put_keys(user_id, version, keys)
        except NoSuchBackup:
            raise unknown_version() from None
        except WrongBackupVersion as e:
            raise wrong_version(e.current) from None
        return {"etag": etag, "count": count}

    async def get_keys(self, user_id: str, version: str, room_id: str | None = None,
                       session_id: str | None = None) -> list[BackupKey]:
        try:
            return await self._store.get_keys(user_id, version, room_id, session_id)
        except NoSuchBackup:
            raise unknown_version() from None

    async def delete_keys(self, user_id: str, version: str, room_id: str | None = None,
                          session_id: str | None = None) -> dict[str, Any]:
        try:
            etag, count = await self._store.delete_keys(user_id, version, room_id, session_id)
        except NoSuchBackup:
            raise unknown_version() from None
        return {"etag": etag, "count": count}
