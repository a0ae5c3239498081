"""The flags of each room version, checked against the changes each version's spec page announces."""

from __future__ import annotations

import pytest

from homeserver.events.room_versions import DEFAULT_ROOM_VERSION, KNOWN_ROOM_VERSIONS

# flag -> first room version that has it (None: never again after `last`)
FIRST_VERSION_WITH = {
    "enforce_key_validity": 5,
    "strict_canonicaljson": 6,
    "limit_notifications_power_levels": 6,
    "knock_join_rule": 7,
    "restricted_join_rule": 8,
    "restricted_join_rule_fix": 9,
    "knock_restricted_join_rule": 10,
    "enforce_int_power_levels": 10,
    "implicit_room_creator": 11,
    "updated_redaction_rules": 11,
    "hydra": 12,
}


def test_versions_one_to_twelve_are_known_and_twelve_is_default() -> None:
    assert list(KNOWN_ROOM_VERSIONS) == [str(n) for n in range(1, 13)]
    assert DEFAULT_ROOM_VERSION == "12"
    assert all(v.identifier == k for k, v in KNOWN_ROOM_VERSIONS.items())


@pytest.mark.parametrize("flag,first", sorted(FIRST_VERSION_WITH.items()))
def test_flag_switches_on_at_its_version(flag: str, first: int) -> None:
    for number in range(1, 13):
        assert getattr(KNOWN_ROOM_VERSIONS[str(number)], flag) is (number >= first), (flag, number)


def test_event_formats_state_res_and_alias_special_case() -> None:
    formats = [KNOWN_ROOM_VERSIONS[str(n)].event_format for n in range(1, 13)]
    assert formats == [1, 1, 2] + [3] * 9
    assert [KNOWN_ROOM_VERSIONS[str(n)].state_res for n in range(1, 13)] == [1] + [2] * 11
    aliases = [KNOWN_ROOM_VERSIONS[str(n)].special_case_aliases_auth for n in range(1, 13)]
    assert aliases == [True] * 5 + [False] * 7
