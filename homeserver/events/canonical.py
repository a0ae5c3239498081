"""Canonical JSON encoding, and the strict form room versions 6+ demand (no floats, integers within ±(2**53-1))."""

from __future__ import annotations

from typing import Any

from canonicaljson import encode_canonical_json

MAX_SAFE_INTEGER = 2**53 - 1
MIN_SAFE_INTEGER = -(2**53) + 1


class CanonicalJsonError(ValueError):
    """A value can't be represented as (strict) canonical JSON; the message names where it sits."""


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of `value` (sorted keys, no whitespace, UTF-8)."""
    try:
        return encode_canonical_json(value)
    except (TypeError, ValueError) as e:
        raise CanonicalJsonError(f"not encodable as canonical JSON: {e}") from None


def check_strict_canonical(value: Any, path: str = "") -> None:
    """Raise `CanonicalJsonError` if `value` holds a float or an integer outside the interoperable range.

    Walked iteratively so a deeply nested hostile document can't exhaust the Python stack.
    """
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        if isinstance(item, int):
            if not MIN_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                raise CanonicalJsonError(f"integer out of range at '{where or '.'}'")
        elif isinstance(item, float):
            raise CanonicalJsonError(f"float not allowed at '{where or '.'}'")
        elif isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise CanonicalJsonError(f"non-string key at '{where or '.'}'")
                stack.append((sub, f"{where}.{key}" if where else key))
        elif isinstance(item, (list, tuple)):
            for i, sub in enumerate(item):
                stack.append((sub, f"{where}[{i}]"))
        else:
            raise CanonicalJsonError(f"unsupported JSON value at '{where or '.'}'")
