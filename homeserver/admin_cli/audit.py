"""`piman admin audit list`: the admin audit log, newest first."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_commands(admin_sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = admin_sub.add_parser("audit", help="the append-only log of admin actions")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    c = audit_sub.add_parser("list", help="list entries, newest first (id, time ms, actor, action, target, outcome,"
                                          " details)")
    c.add_argument("--config", required=True)
    c.add_argument("--limit", type=int, default=50, help="how many entries (default 50)")
    c.add_argument("--target", default=None, help="only the entries about this room, user or media ID")
    c.set_defaults(func=cmd_audit_list)


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
