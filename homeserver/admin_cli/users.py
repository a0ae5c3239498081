"""`piman admin user delete`: erase an account from the command line, audit-logged as `cli:<os user>`.

Leaving the user's rooms writes events, and a running server keeps its rooms' state in memory: so
this takes the database's exclusive lock and refuses to run beside a server, pointing the admin to
the admin API (`POST /_synapse/admin/v1/deactivate/{userId}` with `{"erase": true}`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from homeserver.handlers.audit_log import cli_actor
from homeserver.http.errors import MatrixError


def add_commands(admin_sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = admin_sub.add_parser("user", help="accounts: erase one")
    user_sub = p.add_subparsers(dest="user_command", required=True)
    c = user_sub.add_parser(
        "delete", help="erase an account: its data goes, it leaves its rooms, its ID is never reused "
                       "(run with the server stopped; on a running server use the admin API)")
    c.add_argument("--config", required=True)
    c.add_argument("--user", required=True, help="the full user ID, e.g. @alice:acme.example")
    c.add_argument("--yes", action="store_true", help="don't ask for confirmation")
    c.set_defaults(func=cmd_user_delete)


def cmd_user_delete(args: argparse.Namespace) -> int:
    from homeserver.cli import CommandError, run_on_homeserver

    if not args.yes and not sys.stdin.isatty():
        raise CommandError("Not asking on a non-interactive input: add --yes to erase the account.")

    async def main(hs: Any) -> int:
        user_id = args.user
        if await hs.store.users.get_user(user_id) is None:
            raise CommandError(f"There is no user {user_id}.")
        if not args.yes:
            stored = {what: n for what, n in (await hs.store.erasure.inventory(user_id)).items() if n}
            print(f"{user_id} has: " + (", ".join(f"{what} {n}" for what, n in stored.items()) or "no stored data")
                  + ", and the rooms it is in.")
            if input(f"Erase {user_id} for good? Type the user ID to confirm: ").strip() != user_id:
                raise CommandError("Not confirmed: nothing was changed.")
        try:
            result = await hs.erasure_handler.erase(user_id, requested_by=cli_actor())
        except MatrixError as e:
            await hs.audit_log.record(cli_actor(), "user.erase", user_id, {"error": e.msg}, outcome=e.errcode)
            raise CommandError(e.msg) from None
        await hs.audit_log.record(cli_actor(), "user.erase", user_id, dataclasses.asdict(result))
        state = "complete" if result.complete else "unfinished: the server resumes it, or run this again"
        print(f"Erased {user_id} ({state}). Removed:")
        for what, n in sorted(result.removed.items()):
            print(f"  {what}: {n}")
        for what, n in sorted(result.kept_for_holds.items()):
            print(f"  kept while a room is under a legal hold: {what}: {n}")
        return 0

    return run_on_homeserver(
        args.config, main, exclusive=True,
        busy_hint="stop the server, or erase through its admin API "
                  "(POST /_synapse/admin/v1/deactivate/{userId} with {\"erase\": true})")
