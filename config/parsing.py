"""Parsers for the value syntaxes admins write in the YAML: sizes, durations, server names.

They are public because the server also reads such values from elsewhere (command-line
flags, admin API bodies) and must agree with the config file on what "50M" or "1d" means.
"""

from __future__ import annotations

import ipaddress
import re

SIZE_HINT = "a size such as 1024, '512K', '50M' or '1G'"
DURATION_HINT = "a duration such as '500ms', '30s', '5m', '1h', '7d', '1w', '1y' or a number of milliseconds"

_SIZE_RE = re.compile(r"(\d+)([KMGT]?)", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}

_DURATION_RE = re.compile(r"(\d+)(ms|s|m|h|d|w|y)?")
_SECOND = 1000
_DURATION_UNITS = {
    None: 1,
    "ms": 1,
    "s": _SECOND,
    "m": 60 * _SECOND,
    "h": 3600 * _SECOND,
    "d": 86400 * _SECOND,
    "w": 7 * 86400 * _SECOND,
    "y": 365 * 86400 * _SECOND,
}

# RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
_DNS_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def parse_size(value: int | str) -> int:
    """A size in bytes from an int or a string with an optional K/M/G/T suffix (powers of 1024)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected {SIZE_HINT}, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value}")
        return value
    match = _SIZE_RE.fullmatch(value.strip())
    if not match:
        raise ValueError(f"expected {SIZE_HINT}, got {value!r}")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]


def parse_duration(value: int | str) -> int:
    """A duration in milliseconds from an int (already ms) or a string such as '5m' or '30d'."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected {DURATION_HINT}, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value}")
        return value
    match = _DURATION_RE.fullmatch(value.strip())
    if not match:
        raise ValueError(f"expected {DURATION_HINT}, got {value!r}")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def check_server_name(name: str) -> None:
    """Raise ValueError, saying why, unless `name` is a Matrix server name: host[:port].

    The host is a DNS name, an IPv4 address or a bracketed IPv6 address; the port is 1-65535.
    """
    if "://" in name or "/" in name:
        raise ValueError("it is a URL, not a host name")
    if name.startswith("["):
        end = name.find("]")
        if end < 0:
            raise ValueError("the IPv6 address is not closed with ']'")
        host, rest = name[1:end], name[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("the part in [] is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise ValueError("only ':port' may follow the IPv6 address")
        port = rest[1:] if rest else None
    else:
        host, sep, port_text = name.partition(":")
        port = port_text if sep else None
        _check_host(host)
    if port is not None and not (port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535):
        raise ValueError("the port must be a number from 1 to 65535")


def _check_host(host: str) -> None:
    if not host:
        raise ValueError("the host is empty")
    if len(host) > 255:
        raise ValueError("the host name is longer than 255 characters")
    labels = host.split(".")
    if all(label.isdigit() for label in labels):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError("the host looks like an IPv4 address but is not one") from None
        return
    if not all(_DNS_LABEL_RE.fullmatch(label) for label in labels):
        raise ValueError("a host name is made of letters, digits, '-' and '.'")
