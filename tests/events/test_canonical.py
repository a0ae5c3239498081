"""Canonical JSON: the spec's examples, and the strict form of room versions 6+."""

from __future__ import annotations

import json

import pytest

from homeserver.events.canonical import CanonicalJsonError, canonical_json, check_strict_canonical

# (input JSON text, canonical output) from the spec appendix "Canonical JSON: Examples".
SPEC_EXAMPLES = [
    ("{}", "{}"),
    ('{"one": 1, "two": "Two"}', '{"one":1,"two":"Two"}'),
    ('{"b": "2", "a": "1"}', '{"a":"1","b":"2"}'),
    ('{"b":"2","a":"1"}', '{"a":"1","b":"2"}'),
    (
        '{"auth": {"success": true, "mxid": "@john.doe:example.com", "profile": {"display_name": "John Doe",'
        ' "three_pids": [{"medium": "email", "address": "john.doe@example.org"},'
        ' {"medium": "msisdn", "address": "123456789"}]}}}',
        '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":'
        '[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},'
        '"success":true}}',
    ),
    ('{"a": "日本語"}', '{"a":"日本語"}'),
    ('{"本": 2, "日": 1}', '{"日":1,"本":2}'),
    ('{"a": "\\u65E5"}', '{"a":"日"}'),
    ('{"a": null}', '{"a":null}'),
    ('{"a": -0}', '{"a":0}'),
]


@pytest.mark.parametrize("source,expected", SPEC_EXAMPLES)
def test_spec_examples(source: str, expected: str) -> None:
    assert canonical_json(json.loads(source)) == expected.encode("utf-8")


def test_control_characters_use_short_escapes() -> None:
    assert canonical_json({"a": "\n\t\x01\"\\"}) == b'{"a":"\\n\\t\\u0001\\"\\\\"}'


@pytest.mark.parametrize(
    "value,where",
    [
        ({"a": 1.5}, "a"),
        ({"a": {"b": [1, 2.0]}}, "a.b[1]"),
        ({"n": 2**53}, "n"),
        ({"n": -(2**53)}, "n"),
    ],
)
def test_strict_rejects_floats_and_big_integers(value: object, where: str) -> None:
    with pytest.raises(CanonicalJsonError) as caught:
        check_strict_canonical(value)
    assert where in str(caught.value)


def test_strict_accepts_the_edges_of_the_range_and_booleans() -> None:
    check_strict_canonical({"max": 2**53 - 1, "min": -(2**53) + 1, "t": True, "f": False, "n": None})


def test_nan_is_not_json() -> None:
    with pytest.raises(CanonicalJsonError):
        canonical_json({"a": float("nan")})


def test_deep_nesting_does_not_blow_the_stack() -> None:
    deep: object = 1
    for _ in range(100_000):
        deep = [deep]
    check_strict_canonical(deep)
