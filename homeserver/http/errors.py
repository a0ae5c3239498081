"""Matrix errors: one exception type that carries the spec's errcode and HTTP status.

Everything a servlet or handler raises on purpose is a `MatrixError`; the router turns it into
`{"errcode": ..., "error": ...}`. Anything else becomes a 500 with no traceback sent to the client.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class MatrixError(Exception):
    """An error a client is meant to see, in the spec's shape."""

    def __init__(self, code: int, errcode: str, msg: str, **extra: Any) -> None:
        super().__init__(msg)
        self.code = code
        self.errcode = errcode
        self.msg = msg
        self.extra = extra
        self.headers: dict[str, str] = {}

    def to_json(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.msg, **self.extra}


def not_json(msg: str = "Content not JSON.") -> MatrixError:
    return MatrixError(HTTPStatus.BAD_REQUEST, "M_NOT_JSON", msg)


def bad_json(msg: str) -> MatrixError:
    return MatrixError(HTTPStatus.BAD_REQUEST, "M_BAD_JSON", msg)


def missing_param(msg: str) -> MatrixError:
    return MatrixError(HTTPStatus.BAD_REQUEST, "M_MISSING_PARAM", msg)


def invalid_param(msg: str) -> MatrixError:
    return MatrixError(HTTPStatus.BAD_REQUEST, "M_INVALID_PARAM", msg)


def forbidden(msg: str, **extra: Any) -> MatrixError:
    return MatrixError(HTTPStatus.FORBIDDEN, "M_FORBIDDEN", msg, **extra)


def not_found(msg: str = "Not found.") -> MatrixError:
    return MatrixError(HTTPStatus.NOT_FOUND, "M_NOT_FOUND", msg)


def unrecognized(code: int = HTTPStatus.NOT_FOUND, msg: str = "Unrecognized request") -> MatrixError:
    return MatrixError(code, "M_UNRECOGNIZED", msg)


def too_large(limit: int) -> MatrixError:
    return MatrixError(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        "M_TOO_LARGE",
        f"Request body too large: the limit is {limit} bytes.",
    )


def limit_exceeded(retry_after_ms: int) -> MatrixError:
    err = MatrixError(
        HTTPStatus.TOO_MANY_REQUESTS,
        "M_LIMIT_EXCEEDED",
        "Too many requests: wait before trying again.",
        retry_after_ms=retry_after_ms,
    )
    # Clients that read the standard header instead of the body (v1.10+) get it too, in seconds.
    err.headers["Retry-After"] = str(max(1, -(-retry_after_ms // 1000)))
    return err


def missing_token() -> MatrixError:
    return MatrixError(HTTPStatus.UNAUTHORIZED, "M_MISSING_TOKEN", "Missing access token.")


def unknown_token(msg: str = "Unknown access token.", soft_logout: bool = False) -> MatrixError:
    extra = {"soft_logout": True} if soft_logout else {}
    return MatrixError(HTTPStatus.UNAUTHORIZED, "M_UNKNOWN_TOKEN", msg, **extra)
