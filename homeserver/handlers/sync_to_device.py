"""The `to_device` part of /sync, as a `SyncExtension` owning the token's `to_device` field.

Unlike the other streams, the position a response hands out is not always the stream's: when a
device has more messages waiting than one response carries, `next_batch` points just after the
last one delivered, so the next sync picks up the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeserver.handlers.sync import SyncContext

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class ToDeviceSync:
    token_field = "to_device"

    def __init__(self, hs: "HomeServer") -> None:
        self._handler = hs.to_device_handler

    def current_position(self) -> int:
        return self._handler.current_position()

    async def fill(self, ctx: SyncContext) -> bool:
        ctx.response["to_device"] = {"events": []}
        device_id = ctx.requester.device_id
        if device_id is None:
            return False
        since = 0 if ctx.since is None else ctx.since.to_device
        events, position = await self._handler.get_for_sync(ctx.user_id, device_id, since, ctx.now.to_device)
        if position != ctx.now.to_device:
            ctx.now = ctx.now.copy_with(to_device=position)
            ctx.response["next_batch"] = ctx.now.serialize()
        ctx.response["to_device"]["events"] = events
        return bool(events)


def extensions(hs: "HomeServer") -> list[ToDeviceSync]:
    return [ToDeviceSync(hs)]
