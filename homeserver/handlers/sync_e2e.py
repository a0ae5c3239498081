"""The end-to-end parts of /sync as a `SyncExtension` owning the token's `device_lists` field:
`device_lists` (whose keys to download again, who is gone), and the syncing device's one-time
key count and unused fallback key types.

The counts go in every response, not only when they change: clients top their one-time keys up
from them, and read an absent algorithm as zero keys left.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeserver.handlers.sync import SyncContext

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class DeviceListsSync:
    token_field = "device_lists"

    def __init__(self, hs: "HomeServer") -> None:
        self._handler = hs.e2e_keys_handler

    def current_position(self) -> int:
        return self._handler.current_position()

    async def fill(self, ctx: SyncContext) -> bool:
        device_id = ctx.requester.device_id
        if device_id is not None:
            counts, fallback_types = await self._handler.key_counts(ctx.user_id, device_id)
            ctx.response["device_one_time_keys_count"] = counts
            ctx.response["device_unused_fallback_key_types"] = fallback_types
        if ctx.since is None:
            return False  # an initial sync downloads the keys it needs
        changed, left = await self._handler.device_list_changes(ctx.user_id, ctx.since, ctx.now)
        if not changed and not left:
            return False
        ctx.response["device_lists"] = {"changed": sorted(changed), "left": sorted(left)}
        return True


def extensions(hs: "HomeServer") -> list[DeviceListsSync]:
    return [DeviceListsSync(hs)]
