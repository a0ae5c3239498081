"""Password hashing and policy.

bcrypt, as Synapse uses it, so that accounts imported from a Synapse database keep working.
Hashing is slow on purpose, so it runs on a thread and never blocks the reactor. bcrypt only reads
the first 72 bytes of its input; longer passwords are cut there exactly as Synapse's bcrypt did.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING

import bcrypt
from twisted.internet.threads import deferToThreadPool

from homeserver.http.errors import MatrixError

if TYPE_CHECKING:
    from homeserver.server import HomeServer

MAX_PASSWORD_LENGTH = 512
_BCRYPT_MAX_BYTES = 72


class PasswordHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._reactor = hs.reactor
        self._rounds = hs.config.bcrypt_rounds
        self._pepper = hs.config.password_config.pepper
        self._policy = hs.config.password_config.policy
        self.enabled = hs.config.password_config.enabled

    def _secret(self, password: str) -> bytes:
        return (password + self._pepper).encode("utf-8")[:_BCRYPT_MAX_BYTES]

    async def hash(self, password: str) -> str:
        secret = self._secret(password)
        hashed = await deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), bcrypt.hashpw, secret, bcrypt.gensalt(self._rounds)
        )
        return hashed.decode("ascii")

    async def check(self, password: str, stored_hash: str | None) -> bool:
        if not stored_hash:
            return False
        secret = self._secret(password)
        try:
            return await deferToThreadPool(
                self._reactor, self._reactor.getThreadPool(), bcrypt.checkpw, secret, stored_hash.encode("ascii")
            )
        except ValueError:
            return False  # a malformed stored hash matches nothing

    def validate_new(self, password: str) -> None:
        """Refuse a new password that breaks the organisation's policy, saying which rule."""
        if len(password) > MAX_PASSWORD_LENGTH:
            raise MatrixError(HTTPStatus.BAD_REQUEST, "M_INVALID_PARAM",
                              f"Password is too long: at most {MAX_PASSWORD_LENGTH} characters.")
        p = self._policy
        problems = []
        if len(password) < p.minimum_length:
            problems.append(f"at least {p.minimum_length} characters")
        if p.require_digit and not any(c.isdigit() for c in password):
            problems.append("a digit")
        if p.require_symbol and all(c.isalnum() for c in password):
            problems.append("a symbol")
        if p.require_lowercase and not any(c.islower() for c in password):
            problems.append("a lowercase letter")
        if p.require_uppercase and not any(c.isupper() for c in password):
            problems.append("an uppercase letter")
        if problems:
            raise MatrixError(HTTPStatus.BAD_REQUEST, "M_WEAK_PASSWORD",
                              "Password does not follow the password policy: it needs " + ", ".join(problems) + ".")
