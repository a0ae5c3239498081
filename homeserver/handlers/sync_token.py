"""The `/sync` `next_batch` token: one position per stream, opaque to clients, valid across restarts."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from http import HTTPStatus

from homeserver.http.errors import MatrixError

_PREFIX = "s"


@dataclass(frozen=True)
class SyncToken:
    events: int = 0
    account_data: int = 0
    receipts: int = 0
    presence: int = 0
    typing: int = 0
    to_device: int = 0
    device_lists: int = 0

    def serialize(self) -> str:
        return _PREFIX + "_".join(str(getattr(self, f.name)) for f in fields(self))

    @classmethod
    def parse(cls, text: str) -> "SyncToken":
        try:
            if not text.startswith(_PREFIX):
                raise ValueError
            parts = [int(p) for p in text[len(_PREFIX):].split("_")]
            names = [f.name for f in fields(cls)]
            if not parts or len(parts) > len(names) or any(p < 0 for p in parts):
                raise ValueError
            return cls(**dict(zip(names, parts)))  # tokens from older versions have fewer streams
        except ValueError:
            raise MatrixError(HTTPStatus.BAD_REQUEST, "M_INVALID_PARAM", f"Malformed sync token '{text}'.") from None

    def positions(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def copy_with(self, **changes: int) -> "SyncToken":
        return replace(self, **changes)
