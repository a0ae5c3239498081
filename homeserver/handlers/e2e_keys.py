"""End-to-end encryption keys: upload, query, claim, device-list changes and cross-signing.

Signed objects are checked with the key that must have signed them (a device's own ed25519 key
for its device keys, the master key for the other cross-signing keys, the self-signing or
user-signing key for signatures), so a client downloading keys gets only what their owner made.
There is no federation yet: remote users' keys are reported under `failures`.

Who may see which signature (spec, cross-signing): signatures a user made on their own keys are
public; a signature made with someone's user-signing key on another user's master key is shown
to its maker only. The user-signing key itself is shown only to its owner.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from canonicaljson import encode_canonical_json
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import SignatureVerifyException, verify_signed_json
from twisted.internet import defer
from unpaddedbase64 import decode_base64

from homeserver.auth import Requester
from homeserver.events.user_ids import is_valid_user_id, server_of
from homeserver.handlers.sync_token import SyncToken
from homeserver.http.errors import MatrixError, forbidden, invalid_param, missing_param
from storage.stores.e2e_keys import KeyUpload, OneTimeKeyConflictError, Signature

if TYPE_CHECKING:
    from homeserver.server import HomeServer

logger = logging.getLogger(__name__)

# Clients decide whether to upload one-time keys from this count: an absent algorithm must read as 0.
DEFAULT_OTK_ALGORITHM = "signed_curve25519"
CROSS_SIGNING_FIELDS = {"master_key": "master", "self_signing_key": "self_signing", "user_signing_key": "user_signing"}
FEDERATION_UNAVAILABLE = {"status": 503, "message": "This server does not federate yet."}


def invalid_signature(msg: str) -> MatrixError:
    return MatrixError(HTTPStatus.BAD_REQUEST, "M_INVALID_SIGNATURE", msg)


def canonical(obj: Any) -> str:
    return encode_canonical_json(obj).decode("utf-8")


def unsigned_part(obj: dict[str, Any]) -> dict[str, Any]:
    """What a signature covers: the object without `signatures` and `unsigned`."""
    return {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}


def verify(obj: dict[str, Any], user_id: str, key_id: str, public_key: str) -> None:
    """Raise `SignatureVerifyException` unless `user_id` signed `obj` with ed25519 `public_key` as `key_id`."""
    algorithm, _, version = key_id.partition(":")
    if algorithm != "ed25519":
        raise SignatureVerifyException(f"Unsupported signing algorithm {algorithm!r}")
    try:
        verify_key = decode_verify_key_bytes(key_id, decode_base64(public_key))
    except Exception as e:  # bad base64 or a key of the wrong length
        raise SignatureVerifyException(f"Malformed public key for {key_id}: {e}") from None
    verify_signed_json(obj, user_id, verify_key)


def _split_key_name(name: str, field: str) -> tuple[str, str]:
    algorithm, sep, key_id = name.partition(":")
    if not sep or not algorithm or not key_id:
        raise invalid_param(f"'{field}' key names must be '<algorithm>:<key_id>', got '{name}'.")
    return algorithm, key_id


def _one_time_keys(value: Any, field: str) -> list[tuple[str, str, str]]:
    if value is None:
        return []
    if not isinstance(value, dict):
        raise MatrixError(HTTPStatus.BAD_REQUEST, "M_BAD_JSON", f"Field '{field}' must be an object.")
    keys = []
    for name, key in value.items():
        algorithm, key_id = _split_key_name(name, field)
        if not isinstance(key, (str, dict)):
            raise MatrixError(HTTPStatus.BAD_REQUEST, "M_BAD_JSON", f"Key '{field}.{name}' must be a string or an object.")
        keys.append((algorithm, key_id, canonical(key)))
    return keys


def _cross_signing_key(user_id: str, field: str, key: Any) -> tuple[str, dict[str, Any]]:
    """Check a cross-signing key's shape; its public key and the object to store."""
    usage = CROSS_SIGNING_FIELDS[field]
    if not isinstance(key, dict):
        raise MatrixError(HTTPStatus.BAD_REQUEST, "M_BAD_JSON", f"Field '{field}' must be an object.")
    if key.get("user_id") != user_id:
        raise invalid_param(f"'{field}.user_id' must be your own user ID.")
    usages = key.get("usage")
    if not isinstance(usages, list) or usage not in usages:
        raise invalid_param(f"'{field}.usage' must contain '{usage}'.")
    keys = key.get("keys")
    if not isinstance(keys, dict) or len(keys) != 1:
        raise invalid_param(f"'{field}.keys' must hold exactly one key.")
    [(key_id, public_key)] = keys.items()
    if not isinstance(public_key, str) or key_id != f"ed25519:{public_key}":
        raise invalid_param(f"'{field}.keys' must be {{'ed25519:<public key>': '<public key>'}}.")
    signatures = key.get("signatures", {})
    if not isinstance(signatures, dict) or not all(isinstance(s, dict) for s in signatures.values()):
        raise MatrixError(HTTPStatus.BAD_REQUEST, "M_BAD_JSON", f"Field '{field}.signatures' must be an object of objects.")
    return public_key, {k: v for k, v in key.items() if k != "unsigned"}


def _add_signature(obj: dict[str, Any], signature: Signature) -> None:
    obj.setdefault("signatures", {}).setdefault(signature.signer_user_id, {})[signature.signer_key_id] = signature.signature


def _failure(errcode: str, error: str) -> dict[str, str]:
    return {"errcode": errcode, "error": error}


class E2EKeysHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store
        self._keys = hs.store.e2e_keys
        self._clock = hs.clock
        self._notifier = hs.notifier
        self._server_name = hs.hostname
        self._keys.change_listeners.append(self._on_keys_changed)

    def current_position(self) -> int:
        return self._keys.stream.get_current_token()

    # -- /keys/upload ------------------------------------------------------

    async def upload_keys(self, requester: Requester, body: dict[str, Any]) -> dict[str, Any]:
        user_id, device_id = requester.user_id, requester.device_id
        if device_id is None:
            raise invalid_param("Keys can only be uploaded with an access token bound to a device.")
        device_keys_json = None
        device_keys = body.get("device_keys")
        if device_keys is not None:
            device_keys_json = canonical(self._check_device_keys(user_id, device_id, device_keys))
        fallback_keys = _one_time_keys(body.get("fallback_keys"), "fallback_keys")
        algorithms = [algorithm for algorithm, _, _ in fallback_keys]
        if len(set(algorithms)) != len(algorithms):
            raise invalid_param("At most one fallback key per algorithm can be uploaded.")
        upload = KeyUpload(device_keys_json, _one_time_keys(body.get("one_time_keys"), "one_time_keys"), fallback_keys)
        try:
            result = await self._keys.upload_keys(user_id, device_id, upload, self._clock.time_msec())
        except OneTimeKeyConflictError as e:
            raise invalid_param(f"One-time key {e.algorithm}:{e.key_id} was already uploaded with a different value.") from None
        return {"one_time_key_counts": {DEFAULT_OTK_ALGORITHM: 0, **result.one_time_key_counts}}

    @staticmethod
    def _check_device_keys(user_id: str, device_id: str, keys: Any) -> dict[str, Any]:
        if not isinstance(keys, dict):
            raise MatrixError(HTTPStatus.BAD_REQUEST, "M_BAD_JSON", "Field 'device_keys' must be an object.")
        if keys.get("user_id") != user_id:
            raise invalid_param("'device_keys.user_id' must be the user the access token belongs to.")
        if keys.get("device_id") != device_id:
            raise invalid_param("'device_keys.device_id' must be the device the access token belongs to.")
        algorithms = keys.get("algorithms")
        if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
            raise MatrixError(HTTPStatus.BAD_REQUEST, "M_BAD_JSON", "Field 'device_keys.algorithms' must be an array of strings.")
        public_keys = keys.get("keys")
        if not isinstance(public_keys, dict) or not all(isinstance(k, str) for k in public_keys.values()):
            raise MatrixError(HTTPStatus.BAD_REQUEST, "M_BAD_JSON", "Field 'device_keys.keys' must map key IDs to strings.")
        signing_key_id = f"ed25519:{device_id}"
        if signing_key_id not in public_keys:
            raise invalid_param(f"'device_keys.keys' must contain the device's signing key '{signing_key_id}'.")
        try:
            verify(keys, user_id, signing_key_id, public_keys[signing_key_id])
        except SignatureVerifyException as e:
            raise invalid_signature(f"The device keys are not signed by the device's own ed25519 key: {e}") from None
        return {k: v for k, v in keys.items() if k != "unsigned"}

    # -- /keys/query -------------------------------------------------------

    async def query_keys(self, requester: Requester, query: dict[str, list[str]]) -> dict[str, Any]:
        failures: dict[str, Any] = {}
        local: dict[str, list[str]] = {}
        for user_id, device_ids in query.items():
            server = server_of(user_id)
            if server == self._server_name:
                local[user_id] = device_ids
            else:
                failures[server] = FEDERATION_UNAVAILABLE
        viewer = requester.user_id
        stored = await self._keys.get_device_keys(local)
        cross_signing = await self._keys.get_cross_signing_keys(local)
        known = await self._keys.get_existing_users(local)
        device_keys: dict[str, dict[str, Any]] = {user_id: {} for user_id in local if user_id in known}
        objects: dict[tuple[str, str], dict[str, Any]] = {}
        for user_id, devices in stored.items():
            for device_id, keys in devices.items():
                obj = json.loads(keys.key_json)
                if keys.display_name is not None:
                    obj["unsigned"] = {"device_display_name": keys.display_name}
                device_keys.setdefault(user_id, {})[device_id] = objects[(user_id, device_id)] = obj
        response: dict[str, Any] = {"device_keys": device_keys, "failures": failures}
        masters: dict[str, Any] = {}
        self_signing: dict[str, Any] = {}
        user_signing: dict[str, Any] = {}
        for user_id, keys_by_type in cross_signing.items():
            for key_type, (public_key, key_json) in keys_by_type.items():
                obj = json.loads(key_json)
                if key_type == "master":
                    masters[user_id] = objects[(user_id, public_key)] = obj
                elif key_type == "self_signing":
                    self_signing[user_id] = obj
                elif key_type == "user_signing" and user_id == viewer:
                    user_signing[user_id] = obj
        for signature in await self._keys.get_signatures(objects, viewer):
            _add_signature(objects[(signature.target_user_id, signature.target_key_id)], signature)
        response["master_keys"] = masters
        response["self_signing_keys"] = self_signing
        response["user_signing_keys"] = user_signing
        return response

    # -- /keys/claim -------------------------------------------------------

    async def claim_keys(self, wanted: dict[str, dict[str, str]]) -> dict[str, Any]:
        failures: dict[str, Any] = {}
        requests = []
        for user_id, devices in wanted.items():
            if server_of(user_id) != self._server_name:
                failures[server_of(user_id)] = FEDERATION_UNAVAILABLE
                continue
            requests.extend((user_id, device_id, algorithm) for device_id, algorithm in devices.items())
        one_time_keys: dict[str, dict[str, dict[str, Any]]] = {}
        for key in await self._keys.claim_keys(requests):
            device = one_time_keys.setdefault(key.user_id, {}).setdefault(key.device_id, {})
            device[f"{key.algorithm}:{key.key_id}"] = json.loads(key.key_json)
        return {"one_time_keys": one_time_keys, "failures": failures}

    # -- device-list changes (/sync and /keys/changes) ---------------------------

    async def device_list_changes(self, user_id: str, since: SyncToken, now: SyncToken) -> tuple[set[str], set[str]]:
        """(changed, left) between two sync tokens.

        changed: users sharing a room with `user_id` whose devices or cross-signing keys changed,
        and users who started sharing one; left: users who no longer share any room with it.
        """
        changed: set[str] = set()
        if since.device_lists < now.device_lists:
            changed = await self._keys.get_changed_users(user_id, since.device_lists, now.device_lists)
        if since.events >= now.events:
            return changed, set()
        rooms_now = [r.room_id for r in await self._store.events.get_rooms_for_user(user_id, ("join",))]
        if self._store.events.memberships_unchanged_since(user_id, rooms_now, since.events):
            return changed, set()  # the common case: a message woke the sync, nobody joined or left
        own, others = await self._keys.get_membership_transitions(user_id, rooms_now, since.events, now.events)
        maybe_new = {t.user_id for t in others if t.joined_now}
        maybe_left = {t.user_id for t in others if not t.joined_now}
        rooms_joined = {t.room_id for t in own if t.joined_now}
        rooms_left = {t.room_id for t in own if not t.joined_now}
        if rooms_joined or rooms_left:
            members = await self._keys.get_joined_users_in_rooms(rooms_joined | rooms_left)
            for room_id, users in members.items():
                (maybe_new if room_id in rooms_joined else maybe_left).update(users)
        candidates = (maybe_new | maybe_left) - {user_id}
        sharing = await self._keys.get_users_sharing_room_with(user_id, candidates)
        left = (maybe_left - sharing) - {user_id}
        changed |= maybe_new & sharing
        return changed - left, left

    async def prune_device_lists(self) -> None:
        """Daily: the device_lists stream keeps its recent positions only (see the store)."""
        deleted = await self._keys.prune_device_list_changes()
        if deleted:
            logger.info("pruned %d old device-list changes", deleted)

    async def key_counts(self, user_id: str, device_id: str) -> tuple[dict[str, int], list[str]]:
        """Unclaimed one-time keys per algorithm and the unused fallback key types, for /sync."""
        counts, fallback = await self._keys.count_one_time_keys(user_id, device_id)
        return {DEFAULT_OTK_ALGORITHM: 0, **counts}, fallback

    def _on_keys_changed(self, user_id: str, position: int, visible_to: str | None) -> None:
        d = defer.ensureDeferred(self._notify_change(user_id, position, visible_to))
        d.addErrback(lambda f: logger.error("device list notification failed: %s", f.getErrorMessage()))

    async def _notify_change(self, user_id: str, position: int, visible_to: str | None) -> None:
        users = {visible_to} if visible_to is not None else await self._keys.get_users_sharing_room(user_id)
        self._notifier.notify("device_lists", position, users=users)

    # -- cross-signing -----------------------------------------------------------

    async def cross_signing_upload_needs_auth(self, user_id: str, body: dict[str, Any]) -> bool:
        """UIA is needed unless the user has no master key yet or every key sent is already stored (spec)."""
        stored = (await self._keys.get_cross_signing_keys([user_id])).get(user_id, {})
        if "master" not in stored:
            return False
        for field, key_type in CROSS_SIGNING_FIELDS.items():
            if field not in body:
                continue
            current = stored.get(key_type)
            if current is None or json.loads(current[1]) != body[field]:
                return True
        return False

    async def upload_cross_signing_keys(self, requester: Requester, body: dict[str, Any]) -> None:
        user_id = requester.user_id
        new: dict[str, tuple[str, dict[str, Any]]] = {}
        for field, key_type in CROSS_SIGNING_FIELDS.items():
            if body.get(field) is not None:
                new[key_type] = _cross_signing_key(user_id, field, body[field])
        if not new:
            return
        stored = (await self._keys.get_cross_signing_keys([user_id])).get(user_id, {})
        if "master" in new:
            master_key = new["master"][0]
        elif "master" in stored:
            master_key = stored["master"][0]
        else:
            raise missing_param("No master key: upload one with the other keys.")
        for key_type in ("self_signing", "user_signing"):
            if key_type in new:
                try:
                    verify(new[key_type][1], user_id, f"ed25519:{master_key}", master_key)
                except SignatureVerifyException:
                    raise invalid_signature(f"The {key_type} key is not signed by the master key.") from None
        devices = {d.device_id for d in await self._store.devices.get_devices(user_id, include_hidden=True)}
        if any(public_key in devices for public_key, _ in new.values()):
            raise forbidden("A cross-signing public key is the same as one of your device IDs.")
        changed = {key_type: (public_key, canonical(obj)) for key_type, (public_key, obj) in new.items()
                   if stored.get(key_type) is None or json.loads(stored[key_type][1]) != obj}
        if changed:
            await self._keys.set_cross_signing_keys(user_id, changed, self._clock.time_msec())

    async def upload_signatures(self, requester: Requester, body: dict[str, Any]) -> dict[str, Any]:
        """Verify and store signatures; per-key failures in the response, the rest stored."""
        signer = requester.user_id
        failures: dict[str, dict[str, Any]] = {}
        targets = [u for u, keys in body.items() if isinstance(keys, dict)]
        cross_signing = await self._keys.get_cross_signing_keys({signer, *targets})
        own_keys = cross_signing.get(signer, {})
        device_query: dict[str, list[str]] = {signer: []} if signer in body else {}
        own_devices = (await self._keys.get_device_keys(device_query)).get(signer, {}) if device_query else {}
        accepted: list[Signature] = []
        changes: set[tuple[str, str | None]] = set()
        for target_user, objects in body.items():
            if not isinstance(objects, dict):
                failures[target_user] = {"*": _failure("M_BAD_JSON", "Expected a map of key IDs to signed objects.")}
                continue
            for key_id, obj in objects.items():
                try:
                    if not is_valid_user_id(target_user):
                        raise invalid_param("Not a valid user ID.")
                    if server_of(target_user) != self._server_name:
                        raise MatrixError(HTTPStatus.BAD_REQUEST, "M_UNRECOGNIZED",
                                          "Keys of users on other servers can't be signed yet: this server does not federate.")
                    if not isinstance(obj, dict):
                        raise MatrixError(HTTPStatus.BAD_REQUEST, "M_BAD_JSON", "Expected a signed object.")
                    found = self._check_signature(signer, target_user, key_id, obj, own_keys, own_devices,
                                                  cross_signing.get(target_user, {}))
                except MatrixError as e:
                    failures.setdefault(target_user, {})[key_id] = _failure(e.errcode, e.msg)
                    continue
                if not found:
                    continue  # only signatures the object already had: nothing to do
                accepted.extend(found)
                changes.add((target_user, None) if target_user == signer else (target_user, signer))
        await self._keys.add_signatures(accepted, changes)
        return {"failures": failures}

    def _check_signature(self, signer: str, target_user: str, key_id: str, obj: dict[str, Any],
                         own_keys: dict[str, tuple[str, str]], own_devices: dict[str, Any],
                         target_keys: dict[str, tuple[str, str]]) -> list[Signature]:
        """The new signatures `signer` made on one object, each verified; raises `MatrixError` otherwise."""
        if target_user == signer and key_id in own_devices:
            stored_json, signing_type = own_devices[key_id].key_json, "self_signing"
        elif "master" in target_keys and target_keys["master"][0] == key_id:
            stored_json = target_keys["master"][1]
            signing_type = "devices" if target_user == signer else "user_signing"
        else:
            raise MatrixError(HTTPStatus.NOT_FOUND, "M_NOT_FOUND", "No such device or master key.")
        if unsigned_part(json.loads(stored_json)) != unsigned_part(obj):
            raise invalid_param("The signed object differs from the stored key.")
        signatures = obj.get("signatures", {}).get(signer) if isinstance(obj.get("signatures"), dict) else None
        if not isinstance(signatures, dict) or not signatures:
            raise invalid_signature(f"No signature by {signer}.")
        if signing_type == "devices":
            # A master key signed by one of the user's devices (the master's own signature is already stored).
            allowed = {f"ed25519:{d}": json.loads(k.key_json).get("keys", {}).get(f"ed25519:{d}")
                       for d, k in own_devices.items()}
        else:
            if signing_type not in own_keys:
                raise invalid_signature(f"You have no {signing_type} key to sign with.")
            public_key = own_keys[signing_type][0]
            allowed = {f"ed25519:{public_key}": public_key}
        found = []
        for signer_key_id, signature in signatures.items():
            if signer_key_id == f"ed25519:{key_id}" or json.loads(stored_json).get("signatures", {}).get(
                    signer, {}).get(signer_key_id) == signature:
                continue  # a signature the stored object already carries
            public_key = allowed.get(signer_key_id)
            if public_key is None or not isinstance(signature, str):
                raise invalid_signature(f"{signer_key_id} can't sign this key.")
            try:
                verify({**unsigned_part(obj), "signatures": {signer: {signer_key_id: signature}}},
                       signer, signer_key_id, public_key)
            except SignatureVerifyException:
                raise invalid_signature(f"Invalid signature by {signer_key_id}.") from None
            found.append(Signature(target_user, key_id, signer, signer_key_id, signature))
        return found
