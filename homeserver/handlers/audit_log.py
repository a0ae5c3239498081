"""The admin audit log: every admin action, from the admin API or the CLI, recorded as it ends.

Admin code calls `hs.audit_log.record(actor, action, target, details)` once the action is done
(or refused): `actor` is the admin's user ID for the admin API and `cli_actor()` for a `piman`
command; `details` are sealed at rest, so they may hold reasons and error text.

The entries form a hash chain (storage/stores/audit_log.py): `verify` proves nothing was edited or
deleted behind piman's back, and `head` gives the hash an admin writes down elsewhere (a ticket,
an email to the DPO) to pass later to verify as an anchor, which also catches a rewritten chain.
"""

from __future__ import annotations

import getpass
import logging
import os
from typing import TYPE_CHECKING, Any

from storage.stores.audit_log import HASH_SIZE, AuditEntry, ChainHead, ChainReport

if TYPE_CHECKING:
    from homeserver.server import HomeServer

logger = logging.getLogger(__name__)

OK = "ok"


def cli_actor() -> str:
    """`cli:<os user>`: who ran a `piman` admin command on this machine."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no login name for this uid (e.g. a bare container)
        name = f"uid{os.getuid()}"
    return f"cli:{name}"


class AuditLog:
    def __init__(self, hs: "HomeServer") -> None:
        self._store = hs.store.audit_log
        self._clock = hs.clock

    async def record(self, actor: str, action: str, target: str | None, details: dict[str, Any] | None = None,
                     *, outcome: str = OK) -> int:
        """Append one entry; returns its ID. `outcome` is "ok" or what went wrong (an errcode...)."""
        entry_id = await self._store.append(ts=self._clock.time_msec(), actor=actor, action=action, target=target,
                                            outcome=outcome, details=details)
        # IDs only: reasons and other details stay in the sealed column.
        logger.info("admin audit #%d: %s %s %s -> %s", entry_id, actor, action, target or "-", outcome)
        return entry_id

    async def entries(self, *, limit: int, before_id: int | None = None, target: str | None = None) -> list[AuditEntry]:
        return await self._store.list_entries(limit=limit, before_id=before_id, target=target)

    async def head(self) -> ChainHead:
        return await self._store.head()

    async def verify(self, anchors: list[bytes]) -> ChainReport:
        report = await self._store.verify(anchors)
        # Counts only: the problem lines name entry ids, nothing an entry holds.
        if report.valid:
            logger.info("admin audit log verified: %d entries, head #%d", report.entries, report.head.id)
        else:
            logger.warning("admin audit log FAILED verification: %d problem(s), first: %s",
                           len(report.problems) + report.more_problems, report.problems[0])
        return report


def parse_anchor(value: str) -> bytes:
    """A head hash as `head` prints it (hex SHA-256); ValueError with a message an admin can act on."""
    text = value.strip().lower()
    try:
        digest = bytes.fromhex(text)
    except ValueError:
        digest = b""
    if len(digest) != HASH_SIZE:
        raise ValueError(f"{value!r} is not an audit log hash (64 hexadecimal digits, as `piman admin audit head`"
                         " prints it)")
    return digest


def head_json(head: ChainHead) -> dict[str, Any]:
    return {"id": head.id, "ts": head.ts, "hash": None if head.hash is None else head.hash.hex()}


def report_json(report: ChainReport) -> dict[str, Any]:
    return {"valid": report.valid, "entries": report.entries, "head": head_json(report.head),
            "problems": report.problems, "more_problems": report.more_problems}


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {"id": entry.id, "ts": entry.ts, "actor": entry.actor, "action": entry.action, "target": entry.target,
            "outcome": entry.outcome, "details": entry.details,
            "hash": None if entry.entry_hash is None else entry.entry_hash.hex()}
