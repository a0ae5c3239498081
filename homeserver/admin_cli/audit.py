"""`piman admin audit list|head|verify`: the admin audit log, and proof nobody rewrote it.

`head` prints the newest entry's chain hash, for an admin to write down somewhere the database's
owner can't reach (a ticket, an email to the DPO); `verify --anchor HASH` later proves the chain
still holds that hash, so even a consistently rewritten chain is caught. Run `verify` before
writing a head down: anchoring an already tampered log proves nothing.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import Any


def add_commands(admin_sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = admin_sub.add_parser("audit", help="the append-only, hash-chained log of admin actions")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    c = audit_sub.add_parser("list", help="list entries, newest first (id, time ms, actor, action, target, outcome,"
                                          " details)")
    c.add_argument("--config", required=True)
    c.add_argument("--limit", type=int, default=50, help="how many entries (default 50)")
    c.add_argument("--target", default=None, help="only the entries about this room, user or media ID")
    c.set_defaults(func=cmd_audit_list)

    c = audit_sub.add_parser("head", help="print the newest entry's chain hash (id, time ms, hash), to write down"
                                          " elsewhere and pass to `verify --anchor` later")
    c.add_argument("--config", required=True)
    c.set_defaults(func=cmd_audit_head)

    c = audit_sub.add_parser("verify", help="check the hash chain: one line per edited, deleted or rewritten entry;"
                                            " exit code 1 if any")
    c.add_argument("--config", required=True)
    c.add_argument("--anchor", "--expect-head", dest="anchors", action="append", default=[], metavar="HASH",
                   help="a hash printed by `head` earlier, which must still be in the chain (repeatable)")
    c.set_defaults(func=cmd_audit_verify)


def cmd_audit_list(args: argparse.Namespace) -> int:
    from homeserver.cli import CommandError, run_on_homeserver

    if args.limit < 1:
        raise CommandError("--limit must be at least 1.")

    async def main(hs: Any) -> int:
        for entry in await hs.audit_log.entries(limit=args.limit, target=args.target):
            details = json.dumps(entry.details, sort_keys=True, ensure_ascii=False) if entry.details else ""
            print(f"{entry.id}\t{entry.ts}\t{entry.actor}\t{entry.action}\t{entry.target or '-'}\t{entry.outcome}\t"
                  f"{details}")
        return 0

    return run_on_homeserver(args.config, main)


def cmd_audit_head(args: argparse.Namespace) -> int:
    from homeserver.cli import CommandError, run_on_homeserver

    async def main(hs: Any) -> int:
        head = await hs.audit_log.head()
        if head.hash is None:
            raise CommandError("the audit log is empty: there is no head to write down yet.")
        print(f"{head.id}\t{head.ts if head.ts is not None else '-'}\t{head.hash.hex()}")
        return 0

    return run_on_homeserver(args.config, main)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from homeserver.cli import CommandError, run_on_homeserver
    from homeserver.handlers.audit_log import parse_anchor

    try:
        anchors = [parse_anchor(value) for value in args.anchors]
    except ValueError as e:
        raise CommandError(f"--anchor: {e}") from None

    async def main(hs: Any) -> int:
        report = await hs.audit_log.verify(anchors)
        for line in report.problems:
            print(line)
        if report.more_problems:
            print(f"... and {report.more_problems} more problem(s)")
        head = report.head
        when = None if head.ts is None else datetime.fromtimestamp(head.ts / 1000, timezone.utc)
        at = "" if when is None else f" ({when:%Y-%m-%d %H:%M:%S} UTC)"
        summary = (f"{report.entries} entries checked; head #{head.id}{at}"
                   + (f" {head.hash.hex()}" if head.hash is not None else ""))
        anchored = f", {len(anchors)} anchor(s) found" if anchors else ""
        if report.valid:
            print(f"audit log OK: {summary}{anchored}")
            return 0
        print(f"audit log FAILED verification: {summary}")
        return 1

    return run_on_homeserver(args.config, main)
