"""Legal holds: an admin freezes a room's or a user's data for a legal request, and releases it later.

While a hold is active, retention purges and account erasure skip the target (they ask the hold
store). Placing and releasing are audit-logged, refusals included, so the record shows who tried
what; the reason is sealed at rest with the hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable, TypeVar

from homeserver.events.user_ids import is_valid_user_id, server_of
from homeserver.http.errors import MatrixError, invalid_param, not_found
from storage.stores.holds import Hold, HoldTarget

if TYPE_CHECKING:
    from homeserver.server import HomeServer

T = TypeVar("T")

MAX_REASON_LENGTH = 2000
MAX_ROOM_ID_BYTES = 255


class LegalHoldsHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store.holds
        self._clock = hs.clock

    async def place(self, actor: str, target_type: str, target_id: str, reason: str | None) -> Hold:
        """Hold a room or a user (an active hold on it already is returned as it is)."""

        async def place() -> Hold:
            kind = check_target(target_type, target_id)
            if reason is not None and len(reason) > MAX_REASON_LENGTH:
                raise invalid_param(f"The reason is longer than {MAX_REASON_LENGTH} characters.")
            await self.check_exists(kind, target_id)
            return await self._store.place_hold(kind, target_id, reason=reason, created_by=actor,
                                                now_ms=self._clock.time_msec())

        return await self._audited(actor, "hold.place", target_id, {"target_type": target_type, "reason": reason},
                                   place)

    async def release(self, actor: str, target_type: str, target_id: str) -> Hold:
        """Release the active hold on a room or a user; 404 if there is none."""

        async def release() -> Hold:
            kind = check_target(target_type, target_id)
            hold = await self._store.release_hold(kind, target_id, released_by=actor, now_ms=self._clock.time_msec())
            if hold is None:
                raise not_found(f"There is no active hold on {target_type} {target_id}.")
            return hold

        return await self._audited(actor, "hold.release", target_id, {"target_type": target_type}, release)

    async def list(self, *, include_released: bool = False) -> list[Hold]:
        return await self._store.list_holds(include_released=include_released)

    async def _audited(self, actor: str, action: str, target: str, details: dict[str, Any],
                       run: Callable[[], Awaitable[T]]) -> T:
        try:
            result = await run()
        except MatrixError as e:
            await self._hs.audit_log.record(actor, action, target, {**details, "error": e.msg}, outcome=e.errcode)
            raise
        if isinstance(result, Hold):
            details = {**details, "hold_id": result.id}
        await self._hs.audit_log.record(actor, action, target, details)
        return result

    async def check_exists(self, kind: HoldTarget, target_id: str) -> None:
        """404 M_NOT_FOUND for a room we don't have or a local user that doesn't exist."""
        if kind == "room":
            if await self._hs.store.rooms.get_room(target_id) is None:
                raise not_found(f"Unknown room {target_id}.")
        elif server_of(target_id) == self._hs.hostname and await self._hs.store.users.get_user(target_id) is None:
            # Remote users can be held (their events in our rooms); a local one must exist.
            raise not_found(f"Unknown user {target_id}.")


def check_target(target_type: str, target_id: str) -> HoldTarget:
    """`target_type` as a hold target, if `target_id` is a well-formed ID of that type; else M_INVALID_PARAM."""
    if target_type == "room":
        if not (target_id.startswith("!") and len(target_id) > 1 and len(target_id.encode()) <= MAX_ROOM_ID_BYTES
                and not any(c.isspace() or c == "\x00" for c in target_id)):
            raise invalid_param(f"'{target_id}' is not a room ID (expected !opaque_id or !opaque_id:server).")
        return "room"
    if target_type == "user":
        if not is_valid_user_id(target_id):
            raise invalid_param(f"'{target_id}' is not a user ID (expected @localpart:server).")
        return "user"
    raise invalid_param(f"Unknown hold target type '{target_type}': expected 'room' or 'user'.")


def hold_json(hold: Hold) -> dict[str, Any]:
    return {"id": hold.id, "target_type": hold.target_type, "target_id": hold.target_id, "reason": hold.reason,
            "created_by": hold.created_by, "created_ts": hold.created_ts, "released_by": hold.released_by,
            "released_ts": hold.released_ts, "active": hold.active}

