"""Sizes, durations and server names as admins write them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config import parse_duration, parse_size
from config.parsing import check_server_name


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (0, 0),
        (1234, 1234),
        ("1234", 1234),
        ("10K", 10 * 1024),
        ("10k", 10 * 1024),
        ("50M", 52428800),
        ("1G", 1024**3),
        ("2T", 2 * 1024**4),
    ],
)
def test_parse_size(text: int | str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "M", "50X", "1.5M", "-1", "10 MB", "50MB", -1, True, 1.5, None, [1]])
def test_parse_size_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_size(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "milliseconds"),
    [
        (0, 0),
        (1500, 1500),
        ("1500", 1500),
        ("500ms", 500),
        ("30s", 30_000),
        ("5m", 300_000),
        ("1h", 3_600_000),
        ("30d", 30 * 86_400_000),
        ("1w", 7 * 86_400_000),
        ("1y", 365 * 86_400_000),
    ],
)
def test_parse_duration(text: int | str, milliseconds: int) -> None:
    assert parse_duration(text) == milliseconds


@pytest.mark.parametrize("bad", ["", "m", "5 minutes", "1.5h", "5M", "-5m", "5mm", -1, False, 2.5, None])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(["", "K", "M", "G", "T"]))
def test_size_suffixes_are_powers_of_1024(number: int, suffix: str) -> None:
    power = ["", "K", "M", "G", "T"].index(suffix)
    assert parse_size(f"{number}{suffix}") == number * 1024**power


@given(st.integers(min_value=0, max_value=10**6))
def test_duration_units_agree(number: int) -> None:
    assert parse_duration(f"{number}s") == parse_duration(f"{number * 1000}ms") == number * 1000
    assert parse_duration(f"{number}w") == 7 * parse_duration(f"{number}d") == 7 * 24 * parse_duration(f"{number}h")


@pytest.mark.parametrize(
    "name",
    ["localhost", "localhost:8448", "example.com", "a-b.c-d.example", "1.2.3.4", "1.2.3.4:1", "[::1]", "[::1]:65535"],
)
def test_valid_server_names(name: str) -> None:
    check_server_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        ":8448",
        "example.com:",
        "example.com:65536",
        "example.com:port",
        "-example.com",
        "example-.com",
        "exa mple.com",
        "example..com",
        "example.com.",
        "1.2.3.256",
        "::1",
        "[::1",
        "[::1]8448",
        "[zz::1]",
        "https://example.com",
        "example.com/path",
        "a" * 256,
    ],
)
def test_invalid_server_names(name: str) -> None:
    with pytest.raises(ValueError):
        check_server_name(name)
