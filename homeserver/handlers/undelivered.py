"""The undelivered sweeper: messages nobody picked up within `undelivered_ttl` are deleted.

The privacy policy promises that a message which cannot be delivered is kept 30 days at most.
A to-device message waits in its device's inbox until the device syncs; a device that never
comes back would keep it forever, so this job deletes what is older than the TTL, in small
batches (one short transaction each, yielding to the reactor in between) so that it never
holds up sending or syncing. The messages' creation time is the only progress it needs: a
sweep cut short by a restart just continues on the next run.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prometheus_client import Counter

if TYPE_CHECKING:
    from homeserver.server import HomeServer

logger = logging.getLogger(__name__)

# How often the sweep runs: an hour late on a 30-day promise is well within it.
SWEEP_INTERVAL_S = 3600
# Rows deleted per transaction.
BATCH_SIZE = 500


class UndeliveredSweeper:
    def __init__(self, hs: "HomeServer") -> None:
        self._to_device = hs.store.to_device
        self._clock = hs.clock
        self._ttl_ms = hs.config.undelivered_ttl
        self._deleted = Counter(
            "piman_undelivered_messages_deleted",
            "Messages deleted because no one picked them up within undelivered_ttl, by kind.",
            ["kind"],
            registry=hs.metrics_registry,
        )
        self._deleted.labels("to_device")  # shown as 0 before the first deletion

    async def run(self) -> None:
        """The periodic job: a failed sweep is logged and tried again at the next interval
        (an error escaping would stop the looping call for good)."""
        try:
            await self.sweep()
        except Exception:
            logger.exception("Sweeping undelivered messages failed")

    async def sweep(self, now_ms: int | None = None) -> int:
        """Delete every undelivered message created more than `undelivered_ttl` before `now_ms`
        (the clock's time if None); returns how many messages were deleted."""
        now = self._clock.time_msec() if now_ms is None else now_ms
        before = now - self._ttl_ms
        total = 0
        while True:
            deleted = await self._to_device.delete_undelivered_before(before, BATCH_SIZE)
            if deleted.messages:
                self._deleted.labels("to_device").inc(deleted.messages)
                total += deleted.messages
            if deleted.messages < BATCH_SIZE and deleted.txn_ids < BATCH_SIZE:
                break
            await self._clock.sleep(0)
        # The outbound federation queue joins this sweep once federation exists: its
        # per-destination outbox rows older than `before` (a server that stayed unreachable)
        # are deleted here the same way, counted under kind="federation".
        if total:
            logger.info("Deleted %d undelivered to-device message(s) older than undelivered_ttl", total)
        return total
