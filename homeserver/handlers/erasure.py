"""Account erasure: deactivation that deletes (`erase: true` on `/account/deactivate`, Synapse's admin
`POST /_synapse/admin/v1/deactivate/{userId}`, `piman admin user delete`).

What goes: sessions (devices, access and refresh tokens), every end-to-end key and signature of or by
the user, key backups, the to-device inbox and the undelivered messages the user sent, push rules, pushers,
account data, profile, presence, receipts, filters, push actions, UIA sessions, reports the user made,
uploaded media. The user leaves every room (invites rejected, knocks withdrawn) through the normal
membership path, so the others see a leave, which carries no display name or avatar. What stays: the
`users` row, deactivated (the ID is never registered again) and the room history others hold; the
user's past events are served pruned to anyone who joins a room after the erasure (see
`prune_for_newcomers`). There is no 3PID table yet: nothing to delete there.

Mark first, finish resumably. The account is deactivated and the tombstone written (`erased_users`,
`completed_ts` NULL) before anything is deleted: from then on nobody can log in as the user, write data
for them or register the ID, and newcomers see their events pruned, even if a later step fails. Each
step deletes one kind of data and is idempotent, so a failed erasure finishes by running it again —
by the admin, or by `resume_pending` (at start-up and every RESUME_INTERVAL_S). The tombstone is
marked complete only once the inventory (`ErasureStore.inventory`) shows nothing left but what a
legal hold on a room keeps (the user's receipts in that room, media their events there point to);
those go when the hold is released. Marking last instead would leave a window in which a
half-erased account could still be used and its events still shown to newcomers.

A legal hold on the user refuses erasure (409 M_FORBIDDEN, nothing changed); the resumer skips held
users until the hold is released. Deactivation without erasure is unaffected by holds.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from twisted.internet import task

from homeserver.http.errors import MatrixError, not_found

if TYPE_CHECKING:
    from homeserver.server import HomeServer

logger = logging.getLogger(__name__)

RESUME_INTERVAL_S = 600.0
BATCH = 500
# Kinds of rows a hold on a room may keep back (see `_kept_by_room_holds`).
_HOLDABLE = ("receipts", "media", "media_thumbnails")


@dataclass(frozen=True)
class ErasureResult:
    user_id: str
    removed: dict[str, int]  # kind of data -> rows removed by this run
    kept_for_holds: dict[str, int]  # kind -> rows a legal hold on a room keeps for now
    complete: bool  # nothing is left (the tombstone is marked complete)


def user_held(user_id: str) -> MatrixError:
    return MatrixError(HTTPStatus.CONFLICT, "M_FORBIDDEN",
                       f"{user_id} is under a legal hold: their data can't be erased until an admin releases "
                       "the hold. Nothing was changed.")


class ErasureHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store
        self._clock = hs.clock
        self._running: set[str] = set()

    async def erase(self, user_id: str, *, requested_by: str) -> ErasureResult:
        """Erase a local account (see the module docstring); safe to run again on an erased one."""
        user = await self._store.users.get_user(user_id)
        if user is None or user_id.partition(":")[2] != self._hs.hostname:
            raise not_found(f"There is no local user {user_id}.")
        if await self._store.holds.is_user_held(user_id):
            raise user_held(user_id)
        self._running.add(user_id)
        try:
            return await self._erase(user_id, requested_by)
        finally:
            self._running.discard(user_id)

    async def _erase(self, user_id: str, requested_by: str) -> ErasureResult:
        store = self._store
        await store.users.set_deactivated(user_id, True)
        await store.users.set_password_hash(user_id, None)
        await store.erasure.start(user_id, now_ms=self._clock.time_msec(),
                                  stream_ordering=store.events_stream.get_current_token(), requested_by=requested_by)
        before = await store.erasure.inventory(user_id)
        extra: Counter[str] = Counter()

        devices = await store.devices.get_devices(user_id, include_hidden=True)
        await store.devices.delete_devices(user_id, [d.device_id for d in devices])
        await store.tokens.delete_access_tokens_for_user(user_id)  # tokens not bound to a device
        rooms_left, rooms_failed = await self._leave_rooms(user_id)
        extra["rooms_left"] = rooms_left

        held_rooms = await store.holds.held_rooms()
        await store.e2e_keys.erase_user(user_id)
        await store.key_backup.erase_user(user_id)
        await store.to_device.erase_user(user_id)
        extra["to_device_sent_undelivered"] = await self._delete_sent_to_device(user_id)
        await store.account_data.erase_user(user_id)
        await store.push_rules.erase_user(user_id)
        await store.pushers.erase_user(user_id)  # device-less ones; the rest went with the devices
        while await store.push_actions.erase_user(user_id, BATCH) >= BATCH:
            await _yield(self._hs.reactor)
        await store.filters.erase_user(user_id)
        await store.profiles.erase_user(user_id)
        await self._hs.presence_handler.erase_user(user_id)
        await store.receipts.erase_user(user_id, keep_rooms=held_rooms)
        await store.reports.erase_reports_by(user_id)
        extra["ui_auth_sessions"] = await store.ui_auth.erase_user_sessions(user_id, user_id[1:].partition(":")[0])
        await store.erasure.erase_room_bookkeeping(user_id)
        kept_media = await self._media_kept_by_room_holds(user_id, held_rooms)
        for media in await self._hs.media_repository.list_user_media(user_id):
            if media.media_id not in kept_media:
                await self._hs.media_repository.delete_media(media.media_id)

        after = await store.erasure.inventory(user_id)
        left = {what: n for what, n in after.items() if n}
        kept = {what: n for what, n in left.items() if what in _HOLDABLE}
        complete = not rooms_failed and not left
        if complete:
            await store.erasure.mark_completed(user_id, self._clock.time_msec())
        elif left != kept or rooms_failed:
            logger.warning("Erasure of %s is unfinished (%s left, %d room(s) not left); it will be resumed",
                           user_id, ", ".join(sorted(set(left) - set(kept))) or "nothing", rooms_failed)
        removed = {what: before[what] - after.get(what, 0) for what in before}
        removed.update(extra)
        return ErasureResult(user_id, {k: v for k, v in removed.items() if v}, kept, complete)

    async def _leave_rooms(self, user_id: str) -> tuple[int, int]:
        """Leave joined rooms, reject invites, withdraw knocks: (rooms left, rooms that failed)."""
        memberships = await self._store.events.get_rooms_for_user(user_id, memberships=("join", "invite", "knock"))
        left = failed = 0
        for membership in memberships:
            try:
                await self._hs.membership_handler.leave(membership.room_id, user_id)
                left += 1
            except MatrixError as e:
                failed += 1
                logger.warning("Erasure of %s: could not leave %s: %s", user_id, membership.room_id, e.msg)
        return left, failed

    async def _delete_sent_to_device(self, user_id: str) -> int:
        deleted, after = await self._store.to_device.delete_sent_by(user_id, None, BATCH)
        while after is not None:
            await _yield(self._hs.reactor)
            more, after = await self._store.to_device.delete_sent_by(user_id, after, BATCH)
            deleted += more
        return deleted

    async def _media_kept_by_room_holds(self, user_id: str, held_rooms: set[str]) -> set[str]:
        """Media IDs of ours that the user's events in held rooms point to: the hold keeps them."""
        event_ids = await self._store.erasure.events_with_urls(user_id, held_rooms)
        if not event_ids:
            return set()
        prefix = f"mxc://{self._hs.hostname}/"
        events = await self._store.events.get_events(event_ids)
        return {uri[len(prefix):] for stored in events.values()
                for uri in _strings(stored.event.content) if uri.startswith(prefix)}

    async def resume_pending(self) -> None:
        """Finish erasures a failure or a room hold left unfinished; users under a hold wait."""
        for user_id in await self._store.erasure.pending():
            if user_id in self._running or await self._store.holds.is_user_held(user_id):
                continue
            record = await self._store.erasure.get(user_id)
            try:
                await self.erase(user_id, requested_by=record.requested_by if record else "resumer")
            except Exception:
                logger.exception("Resuming the erasure of %s failed; it will be retried", user_id)


async def prune_for_newcomers(hs: "HomeServer", viewer: str, events: Sequence[Any],
                              membership_at_event: Callable[[str], str | None]) -> list[Any]:
    """Events of one room as `viewer` may have them: an erased user's events, and member events
    about them (an invite carries the invitee's name and avatar), are pruned (the redaction
    algorithm) unless the viewer already had them — joined when the event was sent, or when the
    erasure happened. Cheap when nobody is erased (the erased set is in memory)."""
    erased = await hs.store.erasure.erased_users()
    if not erased:
        return list(events)
    subjects = {stored.event.event_id: subject for stored in events
                if (subject := _erased_subject(stored.event, erased)) is not None and subject != viewer}
    if not subjects:
        return list(events)
    room_id = events[0].event.room_id
    at_erasure = await hs.store.erasure.memberships_at(room_id, viewer, {erased[s] for s in subjects.values()})
    out = []
    for stored in events:
        subject = subjects.get(stored.event.event_id)
        if (subject is not None and not stored.redacted_by and membership_at_event(stored.event.event_id) != "join"
                and at_erasure.get(erased[subject]) != "join"):
            stored = dataclasses.replace(stored, event=stored.event.redacted())
        out.append(stored)
    return out


def _erased_subject(event: Any, erased: Mapping[str, int]) -> str | None:
    if event.sender in erased:
        return event.sender
    if event.type == "m.room.member" and event.state_key in erased:
        return event.state_key
    return None


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


async def _yield(reactor: Any) -> None:
    """Let the reactor serve requests between two batches."""
    await task.deferLater(reactor, 0, lambda: None)
