"""Typing notifications: in memory only (they last seconds), with their own stream position for /sync."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.interfaces import IDelayedCall

if TYPE_CHECKING:
    from homeserver.server import HomeServer

MAX_TYPING_TIMEOUT_MS = 120_000


class TypingHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._clock = hs.clock
        self._notifier = hs.notifier
        self._typing: dict[str, dict[str, IDelayedCall]] = {}
        self._room_positions: dict[str, int] = {}
        self.position = 0

    def set_typing(self, room_id: str, user_id: str, typing: bool, timeout_ms: int = 30_000) -> None:
        users = self._typing.setdefault(room_id, {})
        timer = users.pop(user_id, None)
        if timer is not None and timer.active():
            timer.cancel()
        if typing:
            delay = min(max(timeout_ms, 0), MAX_TYPING_TIMEOUT_MS) / 1000
            users[user_id] = self._clock.call_later(delay, self.set_typing, room_id, user_id, False)
        elif timer is None:
            return  # wasn't typing: nothing changed
        self._changed(room_id)

    def _changed(self, room_id: str) -> None:
        self.position += 1
        self._room_positions[room_id] = self.position
        if not self._typing.get(room_id):
            self._typing.pop(room_id, None)
        self._notifier.notify("typing", self.position, rooms=[room_id])

    def typing_users(self, room_id: str) -> list[str]:
        return sorted(self._typing.get(room_id, {}))

    def changed_since(self, room_id: str, position: int) -> bool:
        return self._room_positions.get(room_id, 0) > position
