"""Reports of events, rooms and users, kept (reason sealed) for the organisation's moderators.

An event report needs the reporter to be joined to the room (spec v1.8); room and user reports
must not depend on membership (v1.13, v1.14).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from homeserver.http.errors import not_found

if TYPE_CHECKING:
    from homeserver.server import HomeServer

logger = logging.getLogger(__name__)


class ReportsHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store.reports
        self._clock = hs.clock

    async def report_event(self, reporter: str, room_id: str, event_id: str, reason: str | None) -> None:
        membership = await self._hs.membership_handler.current_membership(room_id, reporter)
        stored = await self._hs.store.events.get_event(event_id)
        if membership != "join" or stored is None or stored.event.room_id != room_id:
            raise not_found("The event was not found or you are not joined to the room.")
        report_id = await self._store.add_report(reporter=reporter, received_ts=self._clock.time_msec(),
                                                 reason=reason, room_id=room_id, event_id=event_id)
        logger.info("Event report %d received", report_id)

    async def report_room(self, reporter: str, room_id: str, reason: str) -> None:
        if await self._hs.store.rooms.get_room(room_id) is None:
            raise not_found("The room was not found.")
        report_id = await self._store.add_report(reporter=reporter, received_ts=self._clock.time_msec(),
                                                 reason=reason, room_id=room_id)
        logger.info("Room report %d received", report_id)

    async def report_user(self, reporter: str, user_id: str, reason: str) -> None:
        user = await self._hs.store.users.get_user(user_id)
        if user is None:
            raise not_found("The user was not found.")
        report_id = await self._store.add_report(reporter=reporter, received_ts=self._clock.time_msec(),
                                                 reason=reason, reported_user_id=user_id)
        logger.info("User report %d received", report_id)
