"""HTTP byte ranges (RFC 9110 §14) for media downloads: video players seek, downloads resume.

One range per request: a multi-range request is answered with the whole file, which the RFC allows,
and which no media client needs otherwise. Media content never changes once uploaded, so a range
is honoured whatever validator an `If-Range` carries.
"""

from __future__ import annotations

import re

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(Exception):
    """The range starts past the end of the content (answered 416 with `Content-Range: bytes */size`)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) byte positions, inclusive, that `header` asks of `size` bytes.

    None means "send everything": no header, or one this server ignores (malformed, several ranges).
    Raises RangeNotSatisfiable when the range lies wholly past the end.
    """
    if not header:
        return None
    m = _RANGE.match(header.strip().replace(" ", ""))
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):  # the last N bytes
        suffix = int(m.group(2))
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable()
        return max(0, size - suffix), size - 1
    first = int(m.group(1))
    if m.group(2) and int(m.group(2)) < first:
        return None  # invalid: the RFC says to ignore it
    if first >= size:
        raise RangeNotSatisfiable()
    last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    return first, last
