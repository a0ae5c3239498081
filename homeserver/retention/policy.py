"""Retention policies (MSC1763 `m.room.retention`) and the organisation's bounds on them.

A room's effective max_lifetime is its own policy's (or, without one, the organisation's
default policy's), clamped to [allowed_lifetime_min, allowed_lifetime_max]; a policy without
max_lifetime means "for ever", which the upper bound also clamps. Clamping covers policies that
never went through our checks (events from other servers, bounds tightened later); a local user
sending a policy outside the bounds is refused instead, with the bound named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from config.retention import show_duration

EVENT_TYPE = "m.room.retention"
STATE_KEY = (EVENT_TYPE, "")
LIFETIME_KEYS = ("max_lifetime", "min_lifetime")
MAX_SAFE_INTEGER = 2**53 - 1  # canonical JSON's limit


@dataclass(frozen=True)
class RetentionPolicy:
    max_lifetime: int | None = None  # ms; None: kept for ever
    min_lifetime: int | None = None  # ms; recorded, as in Synapse: nothing is deleted earlier anyway

    def content(self) -> dict[str, int]:
        return {k: v for k, v in (("max_lifetime", self.max_lifetime), ("min_lifetime", self.min_lifetime))
                if v is not None}


def _lifetime(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SAFE_INTEGER:
        return None
    return value


def policy_from_content(content: Any) -> RetentionPolicy:
    """The policy an event states, leniently: a malformed value counts as absent (as if unset)."""
    if not isinstance(content, dict):
        return RetentionPolicy()
    max_lifetime = _lifetime(content.get("max_lifetime"))
    return RetentionPolicy(max_lifetime if max_lifetime else None, _lifetime(content.get("min_lifetime")))


class RetentionRules:
    """The organisation's retention settings (the `retention` config section), as rules."""

    def __init__(self, config: Any) -> None:
        self.enabled: bool = config.enabled
        default = config.default_policy
        self.default = RetentionPolicy(default.max_lifetime, default.min_lifetime) if default else RetentionPolicy()
        self.allowed_min: int | None = config.allowed_lifetime_min
        self.allowed_max: int | None = config.allowed_lifetime_max

    def clamp(self, max_lifetime: int | None) -> int | None:
        """A max_lifetime within the bounds; None (for ever) stays None only without an upper bound."""
        if max_lifetime is None:
            return self.allowed_max
        if self.allowed_min is not None and max_lifetime < self.allowed_min:
            return self.allowed_min
        if self.allowed_max is not None and max_lifetime > self.allowed_max:
            return self.allowed_max
        return max_lifetime

    @property
    def shortest_lifetime(self) -> int:
        """No room's effective max_lifetime is shorter (ms): an event younger than this is kept
        whatever its room's policy, which spares the read paths looking policies up."""
        return self.allowed_min if self.allowed_min is not None else 1

    def effective_max_lifetime(self, room_policy: RetentionPolicy | None) -> int | None:
        """How long the room's events are kept (ms), None for ever; None too when retention is off."""
        if not self.enabled:
            return None
        return self.clamp((room_policy if room_policy is not None else self.default).max_lifetime)

    def initial_state_content(self) -> dict[str, int] | None:
        """The policy a new room starts with: the default, clamped so that it is itself allowed."""
        if not self.enabled:
            return None
        policy = RetentionPolicy(self.clamp(self.default.max_lifetime), self.default.min_lifetime)
        return policy.content() or None

    def content_problem(self, content: dict[str, Any]) -> str | None:
        """Why a local user may not send this m.room.retention content, or None if they may."""
        for key in LIFETIME_KEYS:
            if key in content and _lifetime(content[key]) is None:
                return (f"{key} must be a whole number of milliseconds between 0 and {MAX_SAFE_INTEGER},"
                        f" got {content[key]!r}")
        max_lifetime, min_lifetime = content.get("max_lifetime"), content.get("min_lifetime")
        if max_lifetime == 0:
            return "max_lifetime must be at least 1 ms (leave it out to keep messages for ever)"
        if max_lifetime is not None and min_lifetime is not None and min_lifetime > max_lifetime:
            return f"min_lifetime ({min_lifetime}) must not be longer than max_lifetime ({max_lifetime})"
        if not self.enabled:
            return None
        if self.allowed_max is not None and (max_lifetime is None or max_lifetime > self.allowed_max):
            got = "no max_lifetime (kept for ever)" if max_lifetime is None else f"max_lifetime {max_lifetime}"
            return (f"{got} is longer than this server allows: max_lifetime must be at most"
                    f" {self.allowed_max} ms ({show_duration(self.allowed_max)}, the allowed_lifetime_max"
                    " set by the organisation)")
        if self.allowed_min is not None and max_lifetime is not None and max_lifetime < self.allowed_min:
            return (f"max_lifetime {max_lifetime} is shorter than this server allows: it must be at least"
                    f" {self.allowed_min} ms ({show_duration(self.allowed_min)}, the allowed_lifetime_min"
                    " set by the organisation)")
        return None

    def configuration(self) -> dict[str, Any]:
        """The body of MSC1763's `GET .../retention/configuration`: the default policy and the limits."""
        if not self.enabled:
            return {"policies": {}, "limits": {}}
        default = self.initial_state_content()
        policies = {"*": default} if default else {}
        bounds = {k: v for k, v in (("min", self.allowed_min), ("max", self.allowed_max)) if v is not None}
        return {"policies": policies, "limits": {"max_lifetime": bounds} if bounds else {}}
