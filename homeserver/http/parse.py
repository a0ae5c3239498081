"""Reading request bodies and query strings with errors that name the offending field.

Servlets call `read_json_object(request)` then pull typed fields out of a `JsonFields`; a wrong
type becomes 400 `M_BAD_JSON` naming the field, a missing one 400 `M_MISSING_PARAM`.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from twisted.web.server import Request

from homeserver.http.errors import bad_json, invalid_param, missing_param, not_json

T = TypeVar("T")

_MISSING: Any = object()
_TYPE_NAMES = {str: "a string", bool: "a boolean", int: "an integer", dict: "an object", list: "an array"}


def _reject_constant(value: str) -> Any:
    # The spec's canonical JSON has no NaN/Infinity; Python's json would accept them.
    raise ValueError(f"{value} is not valid JSON")


def read_json_object(request: Request, *, allow_empty: bool = False) -> "JsonFields":
    """Parse the request body as a JSON object (`{}` if empty and `allow_empty`)."""
    assert request.content is not None
    request.content.seek(0)
    raw = request.content.read()
    if not raw.strip():
        if allow_empty:
            return JsonFields({})
        raise not_json("Request body is empty: a JSON object was expected.")
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as e:
        raise not_json(f"Content not JSON: {e}") from None
    if not isinstance(value, dict):
        raise not_json("Content must be a JSON object.")
    return JsonFields(value)


class JsonFields:
    """Typed access to the fields of a JSON object, naming the field path in errors."""

    def __init__(self, data: dict[str, Any], path: str = "") -> None:
        self.data = data
        self._path = path

    def _name(self, key: str) -> str:
        return f"{self._path}{key}"

    def has(self, key: str) -> bool:
        return key in self.data

    def _get(self, key: str, kind: type, default: Any, *, nullable: bool) -> Any:
        value = self.data.get(key, _MISSING)
        if value is _MISSING or (value is None and nullable):
            if default is _MISSING:
                raise missing_param(f"Missing required field '{self._name(key)}'.")
            return default
        # bool is a subclass of int in Python: an integer field must not accept true/false.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise bad_json(f"Field '{self._name(key)}' must be {_TYPE_NAMES.get(kind, kind.__name__)}.")
        return value

    def str(self, key: str, default: Any = _MISSING, *, nullable: bool = False) -> Any:
        return self._get(key, str, default, nullable=nullable)

    def bool(self, key: str, default: Any = _MISSING, *, nullable: bool = False) -> Any:
        return self._get(key, bool, default, nullable=nullable)

    def int(self, key: str, default: Any = _MISSING, *, nullable: bool = False) -> Any:
        return self._get(key, int, default, nullable=nullable)

    def list(self, key: str, default: Any = _MISSING, *, nullable: bool = False) -> Any:
        return self._get(key, list, default, nullable=nullable)

    def str_list(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, list, default, nullable=False)
        if value is default:
            return value
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise bad_json(f"Field '{self._name(key)}[{i}]' must be a string.")
        return value

    def obj(self, key: str, default: Any = _MISSING, *, nullable: bool = False) -> "JsonFields | Any":
        value = self._get(key, dict, default, nullable=nullable)
        if isinstance(value, dict) and value is not default:
            return JsonFields(value, f"{self._name(key)}.")
        return value


def query_str(request: Request, name: str, default: Any = _MISSING) -> Any:
    """One query-string parameter, decoded as UTF-8."""
    assert request.args is not None
    values = request.args.get(name.encode("ascii"))
    if not values:
        if default is _MISSING:
            raise missing_param(f"Missing required query parameter '{name}'.")
        return default
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise invalid_param(f"Query parameter '{name}' is not valid UTF-8.") from None


def query_bool(request: Request, name: str, default: bool) -> bool:
    value = query_str(request, name, None)
    if value is None:
        return default
    if value not in ("true", "false"):
        raise invalid_param(f"Query parameter '{name}' must be 'true' or 'false'.")
    return value == "true"


def query_int(request: Request, name: str, default: Any = _MISSING) -> Any:
    value = query_str(request, name, None)
    if value is None:
        if default is _MISSING:
            raise missing_param(f"Missing required query parameter '{name}'.")
        return default
    try:
        return int(value)
    except ValueError:
        raise invalid_param(f"Query parameter '{name}' must be an integer.") from None
