"""The /sync parts fed by per-user data: account data, receipts and presence, as `SyncExtension`s.

Each owns one `SyncToken` field and reads only what changed in (since, now] on its stream.
Per-room parts (room account data, `m.receipt`) go into `rooms.join`, adding an entry for a
joined room that had nothing else new.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.handlers.sync import SyncContext

if TYPE_CHECKING:
    from homeserver.server import HomeServer


def _since(ctx: SyncContext, field: str) -> int:
    return 0 if ctx.since is None else getattr(ctx.since, field)


def unchanged(ctx: SyncContext, field: str) -> bool:
    """Nothing happened on this stream since the client's token: no need to ask the database."""
    return ctx.since is not None and getattr(ctx.since, field) >= getattr(ctx.now, field)


def joined_room_entry(ctx: SyncContext, room_id: str) -> dict[str, Any]:
    """The response's entry for a joined room, created empty if the room had nothing else new."""
    joined = ctx.response["rooms"]["join"]
    entry = joined.get(room_id)
    if entry is None:
        entry = joined[room_id] = {
            "timeline": {"events": [], "limited": False, "prev_batch": ctx.now.serialize()},
            "state": {"events": []},
            "ephemeral": {"events": []},
            "account_data": {"events": []},
            "unread_notifications": {},
        }
    return entry


class AccountDataSync:
    token_field = "account_data"

    def __init__(self, hs: "HomeServer") -> None:
        self._handler = hs.account_data_handler

    def current_position(self) -> int:
        return self._handler.current_position()

    async def fill(self, ctx: SyncContext) -> bool:
        if unchanged(ctx, self.token_field):
            ctx.response["account_data"] = {"events": []}
            return False
        global_events, room_events = await self._handler.get_sync_account_data(
            ctx.user_id, _since(ctx, self.token_field), ctx.now.account_data, initial=ctx.since is None)
        global_events = ctx.filter.account_data.filter(global_events)
        ctx.response["account_data"] = {"events": global_events}
        added = bool(global_events)
        joined = set(ctx.joined_room_ids)
        for room_id, events in room_events.items():
            if room_id not in joined or not ctx.filter.room_allowed(room_id):
                continue
            events = ctx.filter.room_account_data.filter(events, room_id)
            if events:
                joined_room_entry(ctx, room_id)["account_data"]["events"].extend(events)
                added = True
        return added


class ReceiptsSync:
    token_field = "receipts"

    def __init__(self, hs: "HomeServer") -> None:
        self._handler = hs.receipts_handler

    def current_position(self) -> int:
        return self._handler.current_position()

    async def fill(self, ctx: SyncContext) -> bool:
        if unchanged(ctx, self.token_field) or not ctx.filter.ephemeral.matches({"type": "m.receipt"}):
            return False
        rooms = [r for r in ctx.joined_room_ids if ctx.filter.ephemeral.room_allowed(r)]
        receipts = await self._handler.get_sync_receipts(ctx.user_id, rooms, _since(ctx, self.token_field),
                                                         ctx.now.receipts)
        for room_id, event in receipts.items():
            joined_room_entry(ctx, room_id)["ephemeral"]["events"].append(event)
        return bool(receipts)


class PresenceSync:
    token_field = "presence"

    def __init__(self, hs: "HomeServer") -> None:
        self._handler = hs.presence_handler

    def current_position(self) -> int:
        return self._handler.current_position()

    async def fill(self, ctx: SyncContext) -> bool:
        if unchanged(ctx, self.token_field):
            ctx.response["presence"] = {"events": []}
            return False
        events = await self._handler.get_sync_presence(ctx.user_id, _since(ctx, self.token_field), ctx.now.presence,
                                                       initial=ctx.since is None)
        events = ctx.filter.presence.filter(events)
        ctx.response["presence"] = {"events": events}
        return bool(events)


def extensions(hs: "HomeServer") -> list[Any]:
    return [AccountDataSync(hs), ReceiptsSync(hs), PresenceSync(hs)]
