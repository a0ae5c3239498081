"""`retention` and `media_retention`: how long messages and media are kept, set by the organisation.

Synapse's keys and meanings (MSC1763 message retention policies), with two promises of the
privacy policy made checkable at start-up: a default policy must lie within the allowed bounds,
and the purge jobs must together handle every max_lifetime a room may have, so that no room's
expired messages are silently kept for ever.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from config.schema import Bool, Duration, Int, Invalid, KeyPath, ListOf, Section

_FOREVER = float("inf")


def show_duration(ms: float) -> str:
    """A duration in milliseconds as an admin would write it: in its largest whole unit."""
    if ms == _FOREVER:
        return "for ever"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{int(ms // size)}{unit}"
    return f"{int(ms)}ms"


def _policy_min_not_above_max(values: Mapping[str, Any], path: KeyPath) -> None:
    low, high = values["min_lifetime"], values["max_lifetime"]
    if low is not None and high is not None and low > high:
        raise Invalid((*path, "min_lifetime"),
                      f"must not be longer than max_lifetime ({show_duration(high)}), got {show_duration(low)}")


def _job_range(values: Mapping[str, Any], path: KeyPath) -> None:
    low, high = values["shortest_max_lifetime"], values["longest_max_lifetime"]
    if low is not None and high is not None and low >= high:
        raise Invalid(
            (*path, "shortest_max_lifetime"),
            f"must be shorter than longest_max_lifetime ({show_duration(high)}), got {show_duration(low)}",
        )


DEFAULT_POLICY = Section(
    "RetentionPolicyConfig",
    {
        "min_lifetime": Duration(
            doc="How long a message is kept at least, e.g. 1d (recorded in the policy; nothing is deleted earlier).",
        ),
        "max_lifetime": Duration(
            positive=True,
            doc="How long after it was sent a message is kept at most, e.g. 1y; unset, messages are kept for ever.",
        ),
    },
    checks=[_policy_min_not_above_max],
    doc="""
    The policy of rooms without their own m.room.retention event. It is also written into the
    initial state of every new room, so members see how long the room's messages are kept.
    """,
)

PURGE_JOB = Section(
    "RetentionPurgeJob",
    {
        "shortest_max_lifetime": Duration(
            example="3d",
            doc="The job handles rooms whose max_lifetime is longer than this; unset, no lower limit.",
        ),
        "longest_max_lifetime": Duration(
            example="30d",
            doc="The job handles rooms whose max_lifetime is at most this; unset, no upper limit.",
        ),
        "interval": Duration(
            positive=True,
            default="1d",
            doc="How often the job runs.",
        ),
    },
    checks=[_job_range],
)


def _check_retention(values: Mapping[str, Any], path: KeyPath) -> None:
    """The rules across keys: bounds in order, the default within them, every lifetime purged."""
    low, high = values["allowed_lifetime_min"], values["allowed_lifetime_max"]
    if low is not None and high is not None and low > high:
        raise Invalid((*path, "allowed_lifetime_min"), f"must not be longer than allowed_lifetime_max"
                      f" ({show_duration(high)}), got {show_duration(low)}")
    default = values["default_policy"]
    if default is not None and default.max_lifetime is not None:
        where = (*path, "default_policy", "max_lifetime")
        if low is not None and default.max_lifetime < low:
            raise Invalid(where, f"is shorter than allowed_lifetime_min ({show_duration(low)}):"
                                 f" {show_duration(default.max_lifetime)}")
        if high is not None and default.max_lifetime > high:
            raise Invalid(where, f"is longer than allowed_lifetime_max ({show_duration(high)}):"
                                 f" {show_duration(default.max_lifetime)}")
    jobs = values["purge_jobs"]
    if not jobs:
        return
    # Effective max_lifetimes lie in [allowed_lifetime_min, allowed_lifetime_max] (1 ms and for
    # ever without bounds): the jobs' ranges (shortest, longest] must cover all of it.
    first = low if low is not None else 1
    covered = first - 1  # every lifetime up to this one has a job
    need = high if high is not None else _FOREVER
    gap_end = need
    for job in sorted(jobs, key=lambda j: j.shortest_max_lifetime or 0):
        start = job.shortest_max_lifetime or 0
        if start > covered:
            gap_end = min(start, need)
            break
        covered = max(covered, job.longest_max_lifetime if job.longest_max_lifetime is not None else _FOREVER)
    if covered < need:
        since = f"from {show_duration(first)}" if covered < first else f"longer than {show_duration(covered)}"
        raise Invalid(
            (*path, "purge_jobs"),
            f"no job handles rooms whose max_lifetime is {since} up to {show_duration(gap_end)}:"
            " their expired messages would never be deleted; add a job for them, or one without"
            " shortest_max_lifetime and longest_max_lifetime",
        )


RETENTION = Section(
    "RetentionConfig",
    {
        "enabled": Bool(
            default=False,
            doc="""
            Whether messages expire. Off by default, as in Synapse: how long messages are kept
            is the organisation's decision, so nothing is deleted until its admin sets it here.
            When on, expired messages disappear from every API at once and a purge job deletes
            them from the database; rooms may set their own m.room.retention policy within the
            bounds below.
            """,
        ),
        "default_policy": DEFAULT_POLICY.with_defaults(optional=True),
        "allowed_lifetime_min": Duration(
            positive=True,
            doc="""
            The shortest max_lifetime a room's policy may set, e.g. 1d: a shorter one is refused
            when sent, and one received otherwise is treated as this.
            """,
        ),
        "allowed_lifetime_max": Duration(
            positive=True,
            doc="""
            The longest max_lifetime a room's policy may set, e.g. 1y (also the limit of a room
            whose policy sets none): a longer one is refused when sent, and treated as this
            otherwise.
            """,
        ),
        "purge_jobs": ListOf(
            PURGE_JOB,
            default=[],
            doc="""
            The background jobs deleting expired messages, each for the rooms whose max_lifetime
            is in its range, so rooms with short lifetimes can be purged more often. Unset, one
            job purges every room once a day. Together the jobs must handle every allowed
            max_lifetime.
            """,
        ),
        "purge_batch_size": Int(
            min=1,
            max=10_000,
            default=500,
            doc="Events the purge deletes per database transaction (piman): small batches never hold up sending.",
        ),
        "purge_batch_pause": Duration(
            default="20ms",
            doc="Pause between two purge batches (piman), leaving the database to the users' requests.",
        ),
    },
    checks=[_check_retention],
    doc="Message retention (Synapse's keys, MSC1763): how long messages are kept, set by the organisation.",
)

MEDIA_RETENTION = Section(
    "MediaRetentionConfig",
    {
        "local_media_lifetime": Duration(
            positive=True,
            doc="""
            Media uploaded here are deleted (files, thumbnails and metadata) this long after
            their upload, e.g. 90d, however recently they were downloaded. Unset: retention's
            default_policy.max_lifetime when retention is enabled, else media are kept.
            """,
        ),
    },
    doc="How long uploaded media are kept (by age since upload, not by last access).",
)
