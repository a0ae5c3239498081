"""`piman admin hold place|release|list`: legal holds from the command line, audit-logged as `cli:<os user>`."""

from __future__ import annotations

import argparse
from typing import Any

from homeserver.handlers.audit_log import cli_actor
from homeserver.http.errors import MatrixError


def add_commands(admin_sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = admin_sub.add_parser("hold", help="legal holds: keep a room's or a user's data from purges and erasure")
    hold_sub = p.add_subparsers(dest="hold_command", required=True)
    for name, help_text in (("place", "put a hold on a room or a user"),
                            ("release", "release the active hold on a room or a user")):
        c = hold_sub.add_parser(name, help=help_text)
        c.add_argument("--config", required=True)
        target = c.add_mutually_exclusive_group(required=True)
        target.add_argument("--room", help="a room ID, e.g. !abc:acme.example")
        target.add_argument("--user", help="a user ID, e.g. @alice:acme.example")
        if name == "place":
            c.add_argument("--reason", default=None, help="why (a case reference...); stored sealed")
        c.set_defaults(func=cmd_hold)
    c = hold_sub.add_parser("list", help="list holds (id, type, target, state, placed by, placed ms, reason)")
    c.add_argument("--config", required=True)
    c.add_argument("--include-released", action="store_true", help="also list released holds")
    c.set_defaults(func=cmd_hold)


def cmd_hold(args: argparse.Namespace) -> int:
    from homeserver.cli import CommandError, run_on_homeserver

    async def main(hs: Any) -> int:
        holds = hs.legal_holds
        try:
            if args.hold_command == "list":
                for hold in await holds.list(include_released=args.include_released):
                    state = "active" if hold.active else f"released by {hold.released_by} at {hold.released_ts}"
                    reason = " ".join((hold.reason or "").split())  # one line, whatever was typed
                    print(f"{hold.id}\t{hold.target_type}\t{hold.target_id}\t{state}\t{hold.created_by}\t"
                          f"{hold.created_ts}\t{reason}")
                return 0
            target_type, target_id = ("room", args.room) if args.room is not None else ("user", args.user)
            if args.hold_command == "place":
                hold = await holds.place(cli_actor(), target_type, target_id, args.reason)
                print(f"Hold {hold.id} on {target_type} {target_id} is active.")
            else:
                hold = await holds.release(cli_actor(), target_type, target_id)
                print(f"Hold {hold.id} on {target_type} {target_id} is released.")
        except MatrixError as e:
            raise CommandError(e.msg) from None
        return 0

    return run_on_homeserver(args.config, main)
