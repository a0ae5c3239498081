"""The server's ed25519 signing key, in the file format Synapse uses (`ed25519 <key id> <seed>`),
so a Synapse signing key can be reused as is."""

from __future__ import annotations

import os
import stat

from signedjson.key import SigningKey, generate_signing_key, read_signing_keys, write_signing_keys


class SigningKeyError(Exception):
    pass


def generate_signing_key_file(path: str) -> None:
    """Write a fresh key (mode 0600); refuse to overwrite an existing one."""
    key = generate_signing_key("a_" + os.urandom(3).hex()[:4])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        write_signing_keys(f, [key])


def load_signing_key(path: str) -> SigningKey:
    """The first key of the file; clear errors for missing, unreadable, world-readable or bad files."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise SigningKeyError(f"{path}: signing key file not found (run `piman init` or set signing_key_path).") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(f"{path}: signing key file is readable by other users; run `chmod 600 {path}`.")
    try:
        with open(path) as f:
            keys = read_signing_keys(f)
    except (OSError, ValueError) as e:
        raise SigningKeyError(f"{path}: cannot read signing key: {e}") from None
    if not keys:
        raise SigningKeyError(f"{path}: no signing key in the file.")
    return keys[0]
