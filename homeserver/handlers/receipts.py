"""Read receipts (public, private, threaded) and read markers.

A receipt needs the sender to be joined and the event to be in the room. `m.read.private`
receipts are only ever shown to their owner: they wake only the owner's /sync and are left out of
everyone else's `m.receipt` events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Collection

from homeserver.http.errors import forbidden, invalid_param, not_found
from storage.stores.receipts import Receipt

if TYPE_CHECKING:
    from homeserver.server import HomeServer

STREAM = "receipts"
READ = "m.read"
READ_PRIVATE = "m.read.private"
FULLY_READ = "m.fully_read"
RECEIPT_TYPES = (READ, READ_PRIVATE)


class ReceiptsHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store.receipts
        self._clock = hs.clock
        self._notifier = hs.notifier

    def current_position(self) -> int:
        return self._store.stream.get_current_token()

    async def _check_event(self, user_id: str, room_id: str, event_id: str) -> None:
        membership = await self._hs.membership_handler.current_membership(room_id, user_id)
        if membership != "join":
            raise forbidden(f"You are not joined to {room_id}.")
        stored = await self._hs.store.events.get_event(event_id)
        if stored is None or stored.event.room_id != room_id:
            raise not_found(f"Event {event_id} not found in {room_id}.")

    async def send_receipt(self, user_id: str, room_id: str, receipt_type: str, event_id: str,
                           thread_id: str | None) -> None:
        """`POST /rooms/{roomId}/receipt/{receiptType}/{eventId}`; `m.fully_read` moves the read marker."""
        if receipt_type not in (*RECEIPT_TYPES, FULLY_READ):
            raise invalid_param(f"Unknown receipt type '{receipt_type}'.")
        if thread_id is not None:
            if receipt_type == FULLY_READ:
                raise invalid_param("'thread_id' can't be given for m.fully_read.")
            if thread_id != "main" and not thread_id.startswith("$"):
                raise invalid_param("'thread_id' must be 'main' or the event ID of a thread root.")
        await self._check_event(user_id, room_id, event_id)
        if receipt_type == FULLY_READ:
            await self._hs.account_data_handler.set_fully_read(user_id, room_id, event_id)
        else:
            await self._put(user_id, room_id, receipt_type, event_id, thread_id)

    async def set_read_markers(self, user_id: str, room_id: str, markers: dict[str, str]) -> None:
        """`POST /rooms/{roomId}/read_markers`: every given marker is checked before any is moved."""
        for event_id in markers.values():
            await self._check_event(user_id, room_id, event_id)
        if FULLY_READ in markers:
            await self._hs.account_data_handler.set_fully_read(user_id, room_id, markers[FULLY_READ])
        for receipt_type in RECEIPT_TYPES:
            if receipt_type in markers:
                await self._put(user_id, room_id, receipt_type, markers[receipt_type], None)

    async def _put(self, user_id: str, room_id: str, receipt_type: str, event_id: str, thread_id: str | None) -> None:
        position = await self._store.put_receipt(room_id, receipt_type, user_id, thread_id, event_id,
                                                 self._clock.time_msec())
        self._hs.push_actions_handler.on_receipt(user_id, room_id)
        if receipt_type == READ_PRIVATE:
            self._notifier.notify(STREAM, position, users=[user_id])
        else:
            self._notifier.notify(STREAM, position, rooms=[room_id])

    async def get_sync_receipts(self, user_id: str, room_ids: Collection[str], from_pos: int,
                                to_pos: int) -> dict[str, dict[str, Any]]:
        """`m.receipt` ephemeral events per room for a sync over (from_pos, to_pos] (0: all current)."""
        events: dict[str, dict[str, Any]] = {}
        for receipt in await self._store.get_changes(room_ids, from_pos, to_pos):
            if receipt.receipt_type == READ_PRIVATE and receipt.user_id != user_id:
                continue
            content = events.setdefault(receipt.room_id, {"type": "m.receipt", "content": {}})["content"]
            data: dict[str, Any] = {"ts": receipt.ts}
            if receipt.thread_id is not None:
                data["thread_id"] = receipt.thread_id
            content.setdefault(receipt.event_id, {}).setdefault(receipt.receipt_type, {})[receipt.user_id] = data
        return events

    async def get_read_receipts(self, user_id: str, room_ids: Collection[str]) -> list[Receipt]:
        """The user's own `m.read` and `m.read.private` receipts (for notification counts)."""
        return await self._store.get_user_receipts(user_id, room_ids, RECEIPT_TYPES)
