"""The purge jobs: deleting expired events (and old media) from storage in the background.

Each configured job runs every `interval` over the rooms whose effective max_lifetime lies in
its range (shortest_max_lifetime, longest_max_lifetime], as Synapse's purge jobs do; without
any, one job purges every room daily. A room is purged in small batches, each its own short
transaction (`RetentionStore.purge_batch`), with a pause between batches that gives the reactor
and the database back to users' requests: a purge never holds up sending. Progress is kept per
room in the database, so a restart carries on where it stopped. Rooms under a legal hold are
skipped, and so are the events of users under one.

Metrics (all in the homeserver's registry):
- piman_retention_events_purged_total: events deleted, or pruned to the stub the graph needs;
- piman_retention_bytes_purged_total: bytes of (sealed) event data removed from the database;
- piman_retention_media_purged_total: local media deleted for their age;
- piman_retention_purge_lag_seconds: how far behind the purge may be, an upper bound: every
  event that expired more than this long ago is gone. It is the time since the start of the
  oldest "last complete pass" among the jobs (a pass purges everything expired when it starts);
  a job with no complete pass yet counts from when this process started it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge
from twisted.internet import defer
from twisted.internet.task import LoopingCall

from homeserver.retention.policy import policy_from_content
from storage.stores.retention import PurgeBatch

if TYPE_CHECKING:
    from homeserver.server import HomeServer

logger = logging.getLogger(__name__)

DEFAULT_JOB_INTERVAL_MS = 86_400_000
MEDIA_PURGE_INTERVAL_S = 3600
MEDIA_BATCH = 100


@dataclass(frozen=True)
class PurgeJob:
    shortest_max_lifetime: int | None
    longest_max_lifetime: int | None
    interval_ms: int

    @property
    def name(self) -> str:
        low = self.shortest_max_lifetime or 0
        return f"({low}, {'inf' if self.longest_max_lifetime is None else self.longest_max_lifetime}]"

    def handles(self, max_lifetime: int) -> bool:
        return (self.shortest_max_lifetime is None or max_lifetime > self.shortest_max_lifetime) and (
            self.longest_max_lifetime is None or max_lifetime <= self.longest_max_lifetime)


class _Metrics:
    def __init__(self, registry: Any) -> None:
        self.events = Counter("piman_retention_events_purged", "Expired events deleted or pruned to a stub.",
                              registry=registry)
        self.bytes = Counter("piman_retention_bytes_purged", "Bytes of expired event data removed.",
                             registry=registry)
        self.media = Counter("piman_retention_media_purged", "Local media deleted for their age.",
                             registry=registry)
        self.lag = Gauge("piman_retention_purge_lag_seconds",
                         "Upper bound on how long ago any not yet purged event expired.", registry=registry)


class RetentionPurger:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store
        self._retention = hs.retention
        config = hs.config.retention
        self.jobs = [PurgeJob(j.shortest_max_lifetime, j.longest_max_lifetime, j.interval)
                     for j in config.purge_jobs] or [PurgeJob(None, None, DEFAULT_JOB_INTERVAL_MS)]
        self.batch_size: int = config.purge_batch_size
        self.batch_pause_s: float = config.purge_batch_pause / 1000
        media_lifetime = hs.config.media_retention.local_media_lifetime
        if media_lifetime is None and self._retention.rules.enabled:
            media_lifetime = self._retention.rules.default.max_lifetime
        self.media_lifetime: int | None = media_lifetime
        self._lock = defer.DeferredLock()  # one pass at a time: jobs may overlap in range
        self._pass_started: dict[str, int] = {}
        self._started_ms = hs.clock.time_msec()
        self._metrics = _Metrics(hs.metrics_registry)
        self._metrics.lag.set_function(self._lag_seconds)

    def start(self) -> list[LoopingCall]:
        """Schedule the jobs (nothing when retention is off and media are kept)."""
        clock = self._hs.clock
        calls = []
        if self._retention.rules.enabled:
            defer.ensureDeferred(self._load_passes())
            for job in self.jobs:
                calls.append(clock.looping_call(job.interval_ms / 1000, lambda job=job: self._run_logged(job)))
        if self.media_lifetime is not None:
            calls.append(clock.looping_call(MEDIA_PURGE_INTERVAL_S, lambda: defer.ensureDeferred(self.purge_media())))
        return calls

    async def _load_passes(self) -> None:
        for job, started in (await self._store.retention.last_passes()).items():
            self._pass_started.setdefault(job, started)

    def _lag_seconds(self) -> float:
        if not self._retention.rules.enabled:
            return 0.0
        oldest = min(self._pass_started.get(job.name, self._started_ms) for job in self.jobs)
        return max(0.0, (self._retention.clock.time_msec() - oldest) / 1000)

    def _run_logged(self, job: PurgeJob) -> "defer.Deferred[None]":
        async def run() -> None:
            try:
                await self.run_job(job)
            except Exception:
                logger.exception("Retention purge job %s failed; the next run carries on from where it stopped",
                                 job.name)

        return defer.ensureDeferred(run())

    # -- events ----------------------------------------------------------

    async def run_job(self, job: PurgeJob, *, now_ms: int | None = None) -> int:
        """One pass of the job over its rooms; returns the number of events purged."""
        async with self._lock:
            started = self._retention.clock.time_msec() if now_ms is None else now_ms
            purged = 0
            held_rooms = await self._store.holds.held_rooms()
            for room_id, lifetime in (await self._room_lifetimes()).items():
                if lifetime is None or not job.handles(lifetime) or room_id in held_rooms:
                    continue
                purged += await self._purge_room(room_id, started - lifetime)
            self._pass_started[job.name] = started
            await self._store.retention.record_pass(job.name, started, self._retention.clock.time_msec())
            if purged:
                logger.info("Retention purge job %s: %d expired event(s) purged", job.name, purged)
            return purged

    async def run_all(self, *, now_ms: int | None = None) -> int:
        """One pass of every job (the admin's "purge now", and tests)."""
        return sum([await self.run_job(job, now_ms=now_ms) for job in self.jobs])

    async def _room_lifetimes(self) -> dict[str, int | None]:
        rooms = await self._store.retention.rooms_with_policy_events()
        policies = await self._store.events.get_events([e for e in rooms.values() if e is not None])
        return {
            room_id: self._retention.rules.effective_max_lifetime(
                policy_from_content(policies[event_id].event.content) if event_id in policies else None)
            for room_id, event_id in rooms.items()
        }

    async def _purge_room(self, room_id: str, cutoff_ts: int) -> int:
        """Everything in the room sent before `cutoff_ts`, batch by batch; returns the events purged."""
        purged = 0
        held_users = await self._store.holds.held_users()
        after: str | None = ""
        while after is not None:  # first, what earlier passes had to keep
            batch, after = await self._store.retention.revisit_kept(
                room_id, cutoff_ts, after_event_id=after, limit=self.batch_size, held_users=held_users)
            purged += self._account(room_id, batch)
            await self._hs.clock.sleep(self.batch_pause_s)
        while True:
            batch = await self._store.retention.purge_batch(room_id, cutoff_ts, limit=self.batch_size,
                                                            held_users=held_users)
            purged += self._account(room_id, batch)
            if batch.done:
                return purged
            await self._hs.clock.sleep(self.batch_pause_s)

    def _account(self, room_id: str, batch: PurgeBatch) -> int:
        count = batch.deleted + batch.stubbed
        self._metrics.events.inc(count)
        self._metrics.bytes.inc(batch.bytes_purged)
        for user_id in batch.notified_users:
            # Their cached unread counts may include deleted notifications: read them again.
            self._hs.push_actions_handler.on_receipt(user_id, room_id)
        return count

    # -- media -----------------------------------------------------------

    async def purge_media(self, *, now_ms: int | None = None) -> int:
        """Delete local media older than `media_retention.local_media_lifetime`; returns how many."""
        if self.media_lifetime is None:
            return 0
        now = self._retention.clock.time_msec() if now_ms is None else now_ms
        deleted = 0
        try:
            while True:
                ids = await self._hs.media_repository.delete_media_older_than(now - self.media_lifetime, MEDIA_BATCH)
                deleted += len(ids)
                self._metrics.media.inc(len(ids))
                if len(ids) < MEDIA_BATCH:
                    break
                await self._hs.clock.sleep(self.batch_pause_s)
        except Exception:
            logger.exception("Purging old media failed after %d deletion(s); the next run carries on", deleted)
        if deleted:
            logger.info("Retention: %d local media deleted for their age", deleted)
        return deleted
