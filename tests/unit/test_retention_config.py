"""The `retention` and `media_retention` config sections, and the rules they become.

A bad value stops start-up with one line naming the key; the cross-key rules (bounds in order,
default within the bounds, every lifetime handled by a purge job) are checked there too.
"""

from __future__ import annotations

from typing import Any

import pytest

from config import ConfigError, load_config_dict
from homeserver.retention.policy import RetentionRules, policy_from_content

DAY = 86_400_000


def config_with(retention: dict[str, Any] | None = None, **extra: Any) -> Any:
    data: dict[str, Any] = {"server_name": "acme.example",
                            "listeners": [{"port": 0, "resources": [{"names": ["client"]}]}]}
    if retention is not None:
        data["retention"] = retention
    data.update(extra)
    return load_config_dict(data, source="homeserver.yaml")


def error_of(retention: dict[str, Any] | None = None, **extra: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        config_with(retention, **extra)
    return str(caught.value)


def test_defaults_keep_everything() -> None:
    config = config_with()
    assert config.retention.enabled is False
    assert config.retention.default_policy is None
    assert config.retention.purge_jobs == []
    assert config.media_retention.local_media_lifetime is None
    rules = RetentionRules(config.retention)
    assert rules.effective_max_lifetime(None) is None
    assert rules.initial_state_content() is None


def test_a_full_section_is_converted() -> None:
    config = config_with({
        "enabled": True,
        "default_policy": {"min_lifetime": "1d", "max_lifetime": "1y"},
        "allowed_lifetime_min": "1d",
        "allowed_lifetime_max": "1y",
        "purge_jobs": [{"longest_max_lifetime": "3d", "interval": "12h"}, {"shortest_max_lifetime": "3d"}],
    }, media_retention={"local_media_lifetime": "90d"})
    retention = config.retention
    assert (retention.default_policy.min_lifetime, retention.default_policy.max_lifetime) == (DAY, 365 * DAY)
    assert [(j.shortest_max_lifetime, j.longest_max_lifetime, j.interval) for j in retention.purge_jobs] == [
        (None, 3 * DAY, DAY // 2), (3 * DAY, None, DAY)]
    assert config.media_retention.local_media_lifetime == 90 * DAY


@pytest.mark.parametrize(
    ("retention", "expected"),
    [
        ({"enabled": "yes"}, "homeserver.yaml: retention.enabled: expected a boolean"),
        ({"default_policy": {"max_lifetime": "soon"}}, "retention.default_policy.max_lifetime: expected a duration"),
        ({"default_policy": {"max_lifetime": -1}},
         "retention.default_policy.max_lifetime: a duration cannot be negative"),
        ({"default_policy": {"max_lifetime": 0}}, "retention.default_policy.max_lifetime: must be longer than zero"),
        ({"default_policy": {"max_lifetim": "1d"}},
         "retention.default_policy.max_lifetim: unknown key (did you mean 'max_lifetime'?)"),
        ({"default_policy": {"min_lifetime": "2d", "max_lifetime": "1d"}},
         "retention.default_policy.min_lifetime: must not be longer than max_lifetime (1d), got 2d"),
        ({"allowed_lifetime_min": "7d", "allowed_lifetime_max": "1d"},
         "retention.allowed_lifetime_min: must not be longer than allowed_lifetime_max (1d), got 7d"),
        ({"default_policy": {"max_lifetime": "2y"}, "allowed_lifetime_max": "1y"},
         "retention.default_policy.max_lifetime: is longer than allowed_lifetime_max (365d): 730d"),
        ({"default_policy": {"max_lifetime": "1h"}, "allowed_lifetime_min": "1d"},
         "retention.default_policy.max_lifetime: is shorter than allowed_lifetime_min (1d): 1h"),
        ({"purge_jobs": [{"shortest_max_lifetime": "3d", "longest_max_lifetime": "1d"}]},
         "retention.purge_jobs[0].shortest_max_lifetime: must be shorter than longest_max_lifetime (1d), got 3d"),
        ({"purge_jobs": [{"interval": "0s"}]}, "retention.purge_jobs[0].interval: must be longer than zero"),
        ({"purge_jobs": [{"longest_max_lifetime": "3d"}]},
         "retention.purge_jobs: no job handles rooms whose max_lifetime is longer than 3d up to for ever"),
        ({"purge_jobs": [{"longest_max_lifetime": "3d"}, {"shortest_max_lifetime": "7d"}]},
         "retention.purge_jobs: no job handles rooms whose max_lifetime is longer than 3d up to 7d"),
        ({"allowed_lifetime_min": "1d", "purge_jobs": [{"shortest_max_lifetime": "2d"}]},
         "retention.purge_jobs: no job handles rooms whose max_lifetime is from 1d up to 2d"),
        ({"purge_batch_size": 0}, "retention.purge_batch_size: must be between 1 and 10000, got 0"),
    ],
)
def test_bad_values_name_the_key(retention: dict[str, Any], expected: str) -> None:
    assert expected in error_of(retention)


def test_media_lifetime_must_be_a_positive_duration() -> None:
    message = error_of(None, media_retention={"local_media_lifetime": "0d"})
    assert message == "homeserver.yaml: media_retention.local_media_lifetime: must be longer than zero"


def test_jobs_need_only_cover_the_allowed_lifetimes() -> None:
    config = config_with({"allowed_lifetime_min": "1d", "allowed_lifetime_max": "30d", "purge_jobs": [
        {"shortest_max_lifetime": "12h", "longest_max_lifetime": "7d"},
        {"shortest_max_lifetime": "7d", "longest_max_lifetime": "30d"}]})
    assert len(config.retention.purge_jobs) == 2


def rules(**retention: Any) -> RetentionRules:
    return RetentionRules(config_with({"enabled": True, **retention}).retention)


def test_effective_policy_is_clamped_to_the_bounds() -> None:
    r = rules(default_policy={"max_lifetime": "7d"}, allowed_lifetime_min="1d", allowed_lifetime_max="30d")
    assert r.effective_max_lifetime(None) == 7 * DAY  # no room policy: the default
    assert r.effective_max_lifetime(policy_from_content({"max_lifetime": 2 * DAY})) == 2 * DAY
    assert r.effective_max_lifetime(policy_from_content({"max_lifetime": 1000})) == DAY
    assert r.effective_max_lifetime(policy_from_content({"max_lifetime": 90 * DAY})) == 30 * DAY
    assert r.effective_max_lifetime(policy_from_content({})) == 30 * DAY  # "for ever", capped
    assert r.effective_max_lifetime(policy_from_content({"max_lifetime": "7d"})) == 30 * DAY  # malformed: unset
    unbounded = rules(default_policy={"max_lifetime": "7d"})
    assert unbounded.effective_max_lifetime(policy_from_content({})) is None


def test_initial_state_is_the_default_made_valid() -> None:
    assert rules(default_policy={"min_lifetime": "1d", "max_lifetime": "7d"}).initial_state_content() == {
        "max_lifetime": 7 * DAY, "min_lifetime": DAY}
    assert rules(allowed_lifetime_max="30d").initial_state_content() == {"max_lifetime": 30 * DAY}
    assert rules().initial_state_content() is None
