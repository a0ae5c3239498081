"""Sealing user content at rest with the organisation's data key.

Every column that holds user content stores a sealed blob instead of the
content itself, so a database dump or backup shows metadata only. A blob is

    version (1 byte, = 1) | key id length (1 byte) | key id (ASCII) | nonce (24) | ciphertext+MAC

sealed with PyNaCl's SecretBox (XSalsa20-Poly1305). The key id travels with
each blob so the key can be rotated: the data key file may hold several keys,
the last one seals new data and the older ones still open old blobs.

The key file is text, one ``<key id> <unpadded base64 of 32 bytes>`` per line,
``#`` comments allowed, and must not be readable by group or others.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import stat
from typing import Any, Mapping

import nacl.exceptions
import nacl.secret
import nacl.utils
from unpaddedbase64 import decode_base64, encode_base64

from storage.files import replaced_atomically

FORMAT_VERSION = 1
KEY_SIZE = nacl.secret.SecretBox.KEY_SIZE
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

_KEY_FILE_HEADER = """\
# piman data key: seals user content at rest. Keep it secret, and back it up
# apart from the database: without it the sealed data cannot be read.
# One key per line, "<key id> <base64 key>"; the last line seals new data,
# earlier lines still open data sealed before a rotation.
"""


class DataKeyError(Exception):
    """The data key file or a sealed blob cannot be used; the message says why."""


class _KeyRing:
    """One consistent set of keys: swapped whole, so a seal never mixes two sets."""

    __slots__ = ("current_key_id", "header", "boxes")

    def __init__(self, keys: Mapping[str, bytes], current_key_id: str, source: str) -> None:
        if current_key_id not in keys:
            raise DataKeyError(f"current key {current_key_id!r} is not among the keys of {source}")
        for key_id, key in keys.items():
            if not _KEY_ID_RE.match(key_id):
                raise DataKeyError(
                    f"{source}: invalid key id {key_id!r} (letters, digits, '_', '-', '.')"
                )
            if len(key) != KEY_SIZE:
                raise DataKeyError(
                    f"{source}: key {key_id!r} is {len(key)} bytes, expected {KEY_SIZE}"
                )
        self.current_key_id = current_key_id
        encoded_id = current_key_id.encode("ascii")
        self.header = bytes([FORMAT_VERSION, len(encoded_id)]) + encoded_id
        self.boxes = {key_id: nacl.secret.SecretBox(key) for key_id, key in keys.items()}


class Sealer:
    """Seals and opens blobs with a set of named keys, the current one sealing.

    The stores share one Sealer; `adopt` gives it the keys of a re-read key file (after a
    rotation) without a restart, atomically for the pool threads using it.
    """

    def __init__(
        self, keys: Mapping[str, bytes], current_key_id: str, *, source: str = "the data key"
    ) -> None:
        self.source = source
        self._ring = _KeyRing(keys, current_key_id, source)

    @property
    def current_key_id(self) -> str:
        return self._ring.current_key_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._ring.boxes)

    def adopt(self, other: "Sealer") -> None:
        """Use `other`'s keys from now on (the key file was rotated or had old keys retired)."""
        self._ring = other._ring

    def seal(self, plaintext: bytes) -> bytes:
        ring = self._ring
        # encrypt() draws a fresh random 24-byte nonce and prepends it.
        return ring.header + bytes(ring.boxes[ring.current_key_id].encrypt(plaintext))

    def open(self, blob: bytes) -> bytes:
        blob = bytes(blob)
        if len(blob) < 2 or blob[0] != FORMAT_VERSION:
            raise DataKeyError("sealed blob has an unknown format (not sealed by this server?)")
        id_end = 2 + blob[1]
        key_id = blob[2:id_end].decode("ascii", errors="replace")
        box = self._ring.boxes.get(key_id)
        if box is None:
            raise DataKeyError(
                f"sealed blob needs data key {key_id!r}, which is not in {self.source}; "
                f"restore that key line to the data key file"
            )
        try:
            return box.decrypt(blob[id_end:])
        except nacl.exceptions.CryptoError as e:
            raise DataKeyError(
                f"sealed blob (key {key_id!r}) failed authentication: it was altered or corrupted"
            ) from e

    def reseal(self, blob: bytes) -> bytes | None:
        """The blob sealed with the current key, or None if it already is (key rotation)."""
        if key_id_of(blob) == self.current_key_id:
            return None
        return self.seal(self.open(blob))

    def seal_json(self, obj: Any) -> bytes:
        return self.seal(
            json.dumps(obj, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode(
                "utf-8"
            )
        )

    def open_json(self, blob: bytes) -> Any:
        return json.loads(self.open(blob).decode("utf-8"))

    def seal_str(self, s: str | None) -> bytes | None:
        return None if s is None else self.seal(s.encode("utf-8"))

    def open_str(self, b: bytes | None) -> str | None:
        return None if b is None else self.open(b).decode("utf-8")


def lookup_digest(value: str) -> str:
    """A stand-in for a client-chosen identifier (a transaction ID) that must be looked up by
    equality, so can't be sealed (sealing is randomised): its hex SHA-256."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


# The longest blob header: version, key id length, a key id of up to 64 bytes.
MAX_HEADER_SIZE = 2 + 64


def key_id_of(blob: bytes) -> str:
    """The id of the key that sealed `blob` (only its first MAX_HEADER_SIZE bytes are needed)."""
    blob = bytes(blob[:MAX_HEADER_SIZE])
    if len(blob) < 2 or blob[0] != FORMAT_VERSION or len(blob) < 2 + blob[1]:
        raise DataKeyError("sealed blob has an unknown format (not sealed by this server?)")
    return blob[2 : 2 + blob[1]].decode("ascii", errors="replace")


def _new_key_line() -> tuple[str, str]:
    key_id = secrets.token_hex(4)
    return key_id, f"{key_id} {encode_base64(nacl.utils.random(KEY_SIZE))}\n"


def generate_data_key_file(path: str) -> None:
    """Write a new data key file with one fresh key, mode 0600; never overwrite."""
    body = _KEY_FILE_HEADER + _new_key_line()[1]
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise DataKeyError(
            f"data key file {path} already exists; refusing to overwrite it "
            f"(data sealed with it would become unreadable)"
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(fd, 0o600)
        f.write(body)


def load_sealer(path: str) -> Sealer:
    """Read a data key file, refusing one that group or others may read."""
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise DataKeyError(
            f"data key file {path} does not exist (`piman init` creates one)"
        ) from None
    except OSError as e:
        raise DataKeyError(f"cannot read data key file {path}: {e.strerror}") from None
    with f:
        mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
        if mode & 0o077:
            raise DataKeyError(
                f"data key file {path} has mode {mode:04o}, so other users may read it; "
                f"run `chmod 600 {path}`"
            )
        text = f.read()
    keys: dict[str, bytes] = {}
    current = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2:
            raise DataKeyError(f"{path}:{lineno}: expected '<key id> <base64 key>'")
        key_id, encoded = fields
        if not _KEY_ID_RE.match(key_id):
            raise DataKeyError(f"{path}:{lineno}: invalid key id {key_id!r}")
        if key_id in keys:
            raise DataKeyError(f"{path}:{lineno}: key id {key_id!r} appears twice")
        try:
            key = decode_base64(encoded)
        except Exception:
            raise DataKeyError(f"{path}:{lineno}: the key is not valid base64") from None
        if len(key) != KEY_SIZE:
            raise DataKeyError(f"{path}:{lineno}: the key is {len(key)} bytes, expected {KEY_SIZE}")
        keys[key_id] = key
        current = key_id
    if current is None:
        raise DataKeyError(f"data key file {path} holds no key")
    return Sealer(keys, current, source=f"data key file {path}")


def _replace_key_file(path: str, text: str) -> None:
    """Write the key file anew, private, atomically: a crash leaves the old file or the new one."""
    with replaced_atomically(path, text=True, sync_directory=True) as f:
        f.write(text)


def add_key_to_file(path: str) -> str:
    """Append a fresh key to the data key file (it seals new data from now on); returns its id.

    The older keys stay, so everything sealed with them still opens.
    """
    sealer = load_sealer(path)  # refuses a broken or readable-by-others file first
    with open(path, encoding="utf-8") as f:
        text = f.read()
    key_id, line = _new_key_line()
    while key_id in sealer.key_ids:
        key_id, line = _new_key_line()
    if text and not text.endswith("\n"):
        text += "\n"
    _replace_key_file(path, text + line)
    return key_id


def remove_keys_from_file(path: str, key_ids: set[str]) -> None:
    """Drop the lines of `key_ids` from the data key file; the current key can't be dropped."""
    sealer = load_sealer(path)
    if sealer.current_key_id in key_ids:
        raise DataKeyError(
            f"data key file {path}: key {sealer.current_key_id!r} seals new data; it can't be removed"
        )
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines(keepends=True)
    def dropped(line: str) -> bool:
        fields = line.split()
        return bool(fields) and not fields[0].startswith("#") and fields[0] in key_ids

    kept = [line for line in lines if not dropped(line)]
    _replace_key_file(path, "".join(kept))
