"""Sealed media files on disk, written and read in chunks so memory stays flat for any size.

A file is

    magic b"PMF1" | sealed file key length (2 bytes, big-endian) | sealed file key | nonce prefix (15)
    | chunk 0 | chunk 1 | ...

The file key is 32 random bytes sealed with the organisation's data key (so key rotation works as for
any other sealed blob). Each chunk is up to CHUNK_SIZE plaintext bytes encrypted with SecretBox under
the file key, 16 bytes longer than its plaintext. Nonces are not stored: a chunk's nonce is the prefix,
a byte that is 1 on the last chunk only, and the chunk's 8-byte index, so chunks cannot be reordered,
dropped or the file truncated without failing authentication.
"""

from __future__ import annotations

import os
import secrets
import struct
from typing import BinaryIO, Iterator

import nacl.exceptions
import nacl.secret

from storage.files import AbandonWrite, replaced_atomically
from storage.sealing import DataKeyError, Sealer, key_id_of

MAGIC = b"PMF1"
CHUNK_SIZE = 64 * 1024
_PREFIX_SIZE = 15
_MAC_SIZE = nacl.secret.SecretBox.MACBYTES


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + (b"\x01" if last else b"\x00") + struct.pack(">Q", index)


def write_sealed(sealer: Sealer, source: BinaryIO, dest_path: str, *, limit: int | None = None) -> int:
    """Seal everything `source` yields into `dest_path`, atomically; returns the plaintext size.

    Written to a temporary file renamed into place at the end, so a failure leaves nothing behind.
    Runs blocking I/O: call it from a thread.
    """
    os.makedirs(os.path.dirname(dest_path), exist_ok=True)
    file_key = secrets.token_bytes(nacl.secret.SecretBox.KEY_SIZE)
    box = nacl.secret.SecretBox(file_key)
    prefix = secrets.token_bytes(_PREFIX_SIZE)
    sealed_key = sealer.seal(file_key)
    size = 0
    with replaced_atomically(dest_path) as out:
        out.write(MAGIC + struct.pack(">H", len(sealed_key)) + sealed_key + prefix)
        index = 0
        chunk = source.read(CHUNK_SIZE)
        while True:
            following = source.read(CHUNK_SIZE) if chunk else b""
            size += len(chunk)
            if limit is not None and size > limit:
                raise ValueError("source grew past the limit")
            last = not following
            out.write(box.encrypt(chunk, _nonce(prefix, index, last)).ciphertext)
            if last:
                break
            chunk, index = following, index + 1
    return size


class SealedReader:
    """Opens a sealed file and yields its plaintext chunk by chunk (blocking reads, one chunk each).

    `start_chunk` seeks straight to a chunk (chunk i holds plaintext bytes i*CHUNK_SIZE onwards), so
    a byte range is served without decrypting what comes before it.
    """

    def __init__(self, sealer: Sealer, path: str, start_chunk: int = 0) -> None:
        self._file = open(path, "rb")
        try:
            header = self._file.read(len(MAGIC) + 2)
            if len(header) != len(MAGIC) + 2 or header[: len(MAGIC)] != MAGIC:
                raise DataKeyError(f"media file {path} is not a sealed media file")
            (key_len,) = struct.unpack(">H", header[len(MAGIC):])
            self._box = nacl.secret.SecretBox(sealer.open(self._file.read(key_len)))
            self._prefix = self._file.read(_PREFIX_SIZE)
            if start_chunk:
                self._file.seek(start_chunk * (CHUNK_SIZE + _MAC_SIZE), os.SEEK_CUR)
        except BaseException:
            self._file.close()
            raise
        self._path = path
        self._index = start_chunk
        self._pending = self._file.read(CHUNK_SIZE + _MAC_SIZE)
        self.done = False

    def read_chunk(self) -> bytes:
        """The next plaintext chunk; sets `done` after the last one."""
        current = self._pending
        self._pending = self._file.read(CHUNK_SIZE + _MAC_SIZE)
        last = not self._pending
        try:
            plain = self._box.decrypt(current, _nonce(self._prefix, self._index, last))
        except nacl.exceptions.CryptoError as e:
            raise DataKeyError(f"media file {self._path} failed authentication (altered or truncated)") from e
        self._index += 1
        if last:
            self.done = True
            self.close()
        return bytes(plain)

    def __iter__(self) -> Iterator[bytes]:
        while not self.done:
            yield self.read_chunk()

    def close(self) -> None:
        self._file.close()


def _read_header(file: BinaryIO, path: str) -> bytes:
    """The sealed file key of an open sealed file, leaving `file` just after it."""
    header = file.read(len(MAGIC) + 2)
    if len(header) != len(MAGIC) + 2 or header[: len(MAGIC)] != MAGIC:
        raise DataKeyError(f"media file {path} is not a sealed media file")
    (key_len,) = struct.unpack(">H", header[len(MAGIC):])
    return file.read(key_len)


def sealed_file_key_id(path: str) -> str:
    """The id of the data key that seals this file's key (for key rotation's usage scan)."""
    with open(path, "rb") as f:
        return key_id_of(_read_header(f, path))


def reseal_file_key(sealer: Sealer, path: str) -> bool:
    """Re-seal the file's key with the current data key; False if it already was.

    The content stays encrypted under the same file key; only the header changes. The file is
    copied to a temporary file renamed over it, so a crash leaves the old or the new file, never
    a header half-written (which would lose the file key, hence the content). Blocking: call it
    from a thread.
    """
    with open(path, "rb") as src:
        sealed_key = _read_header(src, path)
        fresh = sealer.reseal(sealed_key)
        if fresh is None:
            return False
        written = False
        with replaced_atomically(path) as out:
            out.write(MAGIC + struct.pack(">H", len(fresh)) + fresh)
            while chunk := src.read(CHUNK_SIZE):
                out.write(chunk)
            if not os.path.exists(path):  # deleted meanwhile: don't bring it back
                raise AbandonWrite
            written = True
    return written
