"""The spec's dot-separated property paths (`content.m\\.relates_to.rel_type`), shared by push
rule conditions and filters' `event_fields`.

A backslash escapes a following `.` or `\\`; any other backslash is literal (appendices:
"Dot-separated property paths").
"""

from __future__ import annotations

import functools
from typing import Any

MISSING: Any = object()


@functools.lru_cache(maxsize=1024)
def split_path(path: str) -> tuple[str, ...]:
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(path):
        ch = path[i]
        if ch == "\\" and i + 1 < len(path) and path[i + 1] in ".\\":
            current.append(path[i + 1])
            i += 2
            continue
        if ch == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return tuple(parts)


def lookup(obj: Any, path: str) -> Any:
    """The value at `path` in nested objects, or `MISSING` if any step is absent or not an object."""
    value = obj
    for key in split_path(path):
        if not isinstance(value, dict) or key not in value:
            return MISSING
        value = value[key]
    return value

