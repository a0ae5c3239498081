"""`piman`: initialise a data directory, run the server, create users, check a config."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import secrets
import signal
import sys
from typing import Any, Awaitable, Callable

from twisted.internet import defer

from config import ConfigError, generate_config_yaml, load_config
from federation.signing_keys import SigningKeyError, generate_signing_key_file
from homeserver.admin_cli import add_all_commands
from homeserver.key_rotation import add_keys_commands
from homeserver.handlers.audit_log import cli_actor
from storage.sealing import DataKeyError, generate_data_key_file

DEFAULT_DATA_DIR = "piman-data"
CONFIG_NAME = "homeserver.yaml"


class CommandError(Exception):
    """A failure the user can act on: printed as one line, exit code 1."""


def init_data_dir(data_dir: str, server_name: str, *, client_port: int = 8008, federation_port: int | None = None,
                  database_url: str | None = None, enable_registration: bool = False,
                  public_baseurl: str | None = None, bind_addresses: list[str] | None = None) -> str:
    """Write DIR/homeserver.yaml, a signing key and a data key; returns the config path."""
    data_dir = os.path.abspath(data_dir)
    config_path = os.path.join(data_dir, CONFIG_NAME)
    if os.path.exists(config_path):
        raise CommandError(f"{config_path} already exists: refusing to overwrite it.")
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    text = generate_config_yaml(
        server_name=server_name, data_dir=data_dir, client_port=client_port, federation_port=federation_port,
        bind_addresses=bind_addresses, database_url=database_url, enable_registration=enable_registration,
        registration_shared_secret=secrets.token_urlsafe(32), public_baseurl=public_baseurl,
        form_secret=secrets.token_urlsafe(32),
    )
    config = _validate_generated(text, config_path)
    for path, generate in ((config.signing_key_path, generate_signing_key_file),
                           (config.data_key_path, generate_data_key_file)):
        if not os.path.exists(path):
            generate(path)
    # The config holds the registration shared secret: owner-only, like the keys.
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return config_path


def _validate_generated(text: str, config_path: str) -> Any:
    import yaml

    from config import load_config_dict

    return load_config_dict(yaml.safe_load(text), source=config_path, base_dir=os.path.dirname(config_path))


def cmd_init(args: argparse.Namespace) -> int:
    path = init_data_dir(args.data_dir, args.server_name, client_port=args.client_port,
                         federation_port=args.federation_port, database_url=args.database_url,
                         enable_registration=args.enable_registration)
    print(f"Wrote {path}, a signing key and a data key. Keep the data key safe: without it stored messages can't be read.")
    print(f"Start the server with: piman run --config {path}")
    return 0


def _default_config() -> str:
    """./piman-data/homeserver.yaml, created on first run for a newcomer trying the server locally."""
    path = os.path.join(os.path.abspath(DEFAULT_DATA_DIR), CONFIG_NAME)
    if not os.path.exists(path):
        init_data_dir(DEFAULT_DATA_DIR, "localhost", client_port=8008, enable_registration=True,
                      public_baseurl="http://localhost:8008/", bind_addresses=["127.0.0.1"])
        print(f"Created {path} (server name 'localhost', open registration, SQLite).")
    return path


def _run_in_reactor(main: Callable[[Any], Awaitable[int]]) -> int:
    """Run `main(reactor)` on a fresh reactor; return its exit code."""
    from twisted.internet import reactor

    result: dict[str, int] = {"code": 1}

    async def wrapper() -> None:
        try:
            result["code"] = await main(reactor)
        except (CommandError, ConfigError, SigningKeyError, DataKeyError) as e:
            print(f"piman: {e}", file=sys.stderr)
            result["code"] = 1
        except Exception as e:  # a start-up failure: one line, not a traceback
            print(f"piman: {type(e).__name__}: {e}", file=sys.stderr)
            result["code"] = 1

    def go() -> None:
        defer.ensureDeferred(wrapper()).addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(go)
    reactor.run()
    return result["code"]


def cmd_run(args: argparse.Namespace) -> int:
    from twisted.internet import reactor

    from homeserver.app import setup_logging, start, stop
    from homeserver.server import HomeServer

    config_path = args.config or _default_config()
    config = load_config(config_path)
    setup_logging(config.log_level)
    hs = HomeServer(config, reactor)
    state: dict[str, Any] = {"code": 0}

    async def startup() -> None:
        try:
            state["ports"] = await start(hs)
        except Exception as e:
            print(f"piman: cannot start: {e}", file=sys.stderr)
            state["code"] = 1
            reactor.stop()
            return
        if args.config is None:
            print("Ready: point a Matrix client (Element, nio...) at http://localhost:8008", flush=True)
            print(f"Create the first admin user with: piman register --config {config_path} --user admin --admin",
                  flush=True)

    async def shutdown() -> None:
        if "ports" in state:
            await stop(hs, state["ports"])

    async def reload() -> None:
        """SIGHUP: re-read the config and apply a new privacy policy (announced at once); nothing else."""
        if "ports" not in state:
            return
        try:
            new_config = load_config(config_path)
        except ConfigError as e:
            logging.getLogger("piman").error("SIGHUP: config not reloaded, it has an error: %s", e)
            return
        try:
            await hs.consent_handler.reload_policy(new_config)
        except Exception:
            logging.getLogger("piman").exception("SIGHUP: applying the reloaded privacy policy failed")

    reactor.callWhenRunning(lambda: defer.ensureDeferred(startup()))
    reactor.addSystemEventTrigger("before", "shutdown", lambda: defer.ensureDeferred(shutdown()))
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: reactor.callFromThread(lambda: defer.ensureDeferred(reload())))
    reactor.run()
    return int(state["code"])


def cmd_register(args: argparse.Namespace) -> int:
    from homeserver.server import HomeServer

    config = load_config(args.config)
    password = args.password
    if password is None:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Confirm password: "):
            raise CommandError("Passwords don't match.")
    if not password:
        raise CommandError("The password can't be empty.")

    async def main(reactor: Any) -> int:
        hs = HomeServer(config, reactor)
        await hs.setup()
        try:
            user_id = await hs.registration_handler.register(args.user.lower(), password, admin=args.admin)
            await hs.audit_log.record(cli_actor(), "user.register", user_id, {"admin": args.admin})
        finally:
            await hs.store.close()
        print(f"Created {'admin ' if args.admin else ''}user {user_id}")
        if config.privacy_policy is not None:
            # Writing events beside a running server would leave its caches stale: the server's
            # catch-up sends the notice (at its next start, or within minutes if it is running).
            print(f"The server will tell {user_id} about privacy policy version {config.privacy_policy.version} "
                  "in a server notice.")
        return 0

    return _run_in_reactor(main)


def run_on_homeserver(config_path: str, main: Callable[[Any], Awaitable[int]], *, exclusive: bool = False,
                      busy_hint: str = "stop the server first") -> int:
    """Run `main(hs)` on the configured organisation's store (no listener); for admin commands.

    `exclusive` commands (those that write events) refuse to run beside a server, whose caches
    would go stale: `busy_hint` tells the admin what to do instead. Raise `CommandError` in `main`
    for a failure the admin can act on: it is printed as one line.
    """
    from homeserver.server import HomeServer
    from storage.errors import DatabaseInUseError

    config = load_config(config_path)

    async def in_reactor(reactor: Any) -> int:
        hs = HomeServer(config, reactor)
        if exclusive:
            try:
                hs.take_exclusive_lock()
            except DatabaseInUseError as e:
                raise CommandError(f"{e}: {busy_hint}.") from None
        try:
            await hs.setup()
        except BaseException:
            hs.release_exclusive_lock()
            raise
        try:
            return await main(hs)
        finally:
            await hs.close()

    return _run_in_reactor(in_reactor)


def cmd_admin_media(args: argparse.Namespace) -> int:
    """List or delete one user's media, straight from the database and the media store."""

    async def main(hs: Any) -> int:
        repo = hs.media_repository
        if args.media_command == "list":
            for media in await repo.list_user_media(args.user):
                state = "uploaded" if media.upload_ts is not None else "pending"
                print(f"{repo.mxc(media.media_id)}\t{media.content_type or '-'}\t{media.size or 0}\t"
                      f"{media.created_ts}\t{state}")
            return 0
        deleted = await repo.delete_user_media(args.user, args.media_id)
        await hs.audit_log.record(cli_actor(), "media.delete", args.user, {"media_ids": deleted},
                                  outcome="ok" if deleted or args.media_id is None else "M_NOT_FOUND")
        if args.media_id is not None and not deleted:
            raise CommandError(f"{args.user} has no media {args.media_id}.")
        print(f"Deleted {len(deleted)} media item(s) of {args.user}.")
        return 0

    return run_on_homeserver(args.config, main)


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(f"{args.config}: OK (server_name {config.server_name}, database {config.database.name})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="piman", description="piman-homeserver: a Matrix homeserver for organisations.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="write a config, a signing key and a data key into a data directory")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--server-name", required=True, help="the Matrix server name, e.g. acme.example or localhost:8448")
    p.add_argument("--client-port", type=int, default=8008)
    p.add_argument("--federation-port", type=int, default=None)
    p.add_argument("--database-url", default=None, help="postgresql://user:password@host:port/database (default: SQLite)")
    p.add_argument("--enable-registration", action="store_true", help="let anyone create an account from a client")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("run", help="serve until SIGINT/SIGTERM")
    p.add_argument("--config", default=None, help=f"config file (default: ./{DEFAULT_DATA_DIR}/{CONFIG_NAME}, created if missing)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("register", help="create a user directly in the database")
    p.add_argument("--config", required=True)
    p.add_argument("--user", required=True, help="the localpart, e.g. alice")
    p.add_argument("--password", default=None, help="prompted for if omitted")
    p.add_argument("--admin", action="store_true")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("admin", help="administration of users' data")
    admin_sub = p.add_subparsers(dest="admin_command", required=True)
    m = admin_sub.add_parser("media", help="list or delete a user's uploaded media")
    media_sub = m.add_subparsers(dest="media_command", required=True)
    for name, help_text in (("list", "list a user's media (mxc URI, type, bytes, created ms, state)"),
                            ("delete", "delete a user's media: all of it, or --media-id")):
        c = media_sub.add_parser(name, help=help_text)
        c.add_argument("--config", required=True)
        c.add_argument("--user", required=True, help="the full user ID, e.g. @alice:acme.example")
        if name == "delete":
            c.add_argument("--media-id", default=None, help="delete only this media ID")
        c.set_defaults(func=cmd_admin_media)
    add_all_commands(admin_sub)

    p = sub.add_parser("keys", help="the data key: rotate it, follow the re-seal, retire old keys")
    add_keys_commands(p)

    p = sub.add_parser("config", help="configuration tools")
    config_sub = p.add_subparsers(dest="config_command", required=True)
    c = config_sub.add_parser("check", help="validate a config file and exit")
    c.add_argument("--config", required=True)
    c.set_defaults(func=cmd_config_check)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except (CommandError, ConfigError, SigningKeyError, DataKeyError) as e:
        print(f"piman: {e}", file=sys.stderr)
        code = 1
    sys.exit(code)
