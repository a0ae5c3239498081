"""`piman keys rotate | status | retire`: rotating the organisation's data key.

`rotate` appends a fresh key to the data key file (it seals new data from then on; the old keys
stay and keep opening old data), then re-seals every sealed column, table by table in primary key
order, a small batch per transaction, and the sealed file key at the head of every media file.
Progress is kept in the database (`reseal_progress`), so after Ctrl-C or a crash
`piman keys rotate --resume` continues where it stopped. When a server runs on the database (it
holds the exclusive lock), the command only adds the key and starts the pass: the server notices
the new key file within `KEY_FILE_CHECK_INTERVAL_S`, seals new data with the new key, and carries
the pass to its end in the background (`BackgroundReseal`).

`status` prints the pass's progress and scans all sealed data for the key ids still in use;
`retire` removes from the key file the old keys that scan proves unused, and refuses to remove a
key something still needs. Both scans read every sealed row (headers only) and media file header.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, TextIO

from twisted.internet import threads

from homeserver.progress import ProgressBar
from homeserver.media.sealed_files import MAGIC, reseal_file_key, sealed_file_key_id
from storage.sealed_columns import SEALED_TABLES
from storage.sealing import Sealer, add_key_to_file, load_sealer, remove_keys_from_file
from storage.stores.sealing_keys import MEDIA_STORE, ResealProgress

# How often a running server looks at its data key file for a rotation (a stat: cheap).
KEY_FILE_CHECK_INTERVAL_S = 10
IDLE_QUERY_EVERY = 6  # an idle server asks the database for a waiting re-seal once a minute

logger = logging.getLogger(__name__)


def media_files(root: str) -> list[str]:
    """Every sealed media file under `root` (originals and thumbnails), in a stable order."""
    found: list[str] = []
    for directory, _, names in os.walk(root):
        for name in names:
            if name.endswith(".tmp"):
                continue  # an upload or a re-seal in progress
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                if f.read(len(MAGIC)) == MAGIC:
                    found.append(path)
    return sorted(found)


async def run_reseal(store: Any, sealer: Sealer, media_root: str, reactor: Any, out: TextIO | None,
                     keep_going: Callable[[], bool] = lambda: True) -> bool:
    """Carry the started pass to its end: every unfinished table, then the media store.

    Stops between batches once `keep_going()` is false (a server shutting down); returns whether
    the pass is finished. Progress is in the database either way.
    """
    for progress in await store.sealing_keys.get_reseal_progress():
        if progress.table == MEDIA_STORE:
            if not progress.finished and not await _reseal_media(store, sealer, media_root, reactor, out, keep_going):
                return False
            continue
        table = next(t for t in SEALED_TABLES if t.table == progress.table)
        bar = ProgressBar(out, table.table)
        while not progress.finished:
            if not keep_going():
                return False
            bar.update(progress.rows_done, progress.rows_total)
            progress = await store.sealing_keys.reseal_batch(table, sealer)
        bar.finish(progress.rows_done, max(progress.rows_total, progress.rows_done),
                   f" ({progress.resealed} re-sealed)")
    return True


async def _reseal_media(store: Any, sealer: Sealer, media_root: str, reactor: Any, out: TextIO | None,
                        keep_going: Callable[[], bool]) -> bool:
    # Idempotent rather than positional: a file already sealed with the new key is skipped
    # after reading its header, so a resumed pass just walks the store again.
    paths = await threads.deferToThreadPool(reactor, reactor.getThreadPool(), media_files, media_root)
    bar = ProgressBar(out, "media files", "files")
    resealed = 0
    for done, path in enumerate(paths, start=1):
        if not keep_going():
            return False
        try:
            changed = await threads.deferToThreadPool(
                reactor, reactor.getThreadPool(), reseal_file_key, sealer, path
            )
        except FileNotFoundError:
            changed = False  # deleted meanwhile
        resealed += int(changed)
        bar.update(done, len(paths))
        if done % 100 == 0:
            await store.sealing_keys.set_media_progress(done, len(paths), resealed, False)
    await store.sealing_keys.set_media_progress(len(paths), len(paths), resealed, True)
    bar.finish(len(paths), len(paths), f" ({resealed} re-sealed)")
    return True


@dataclass
class KeyUsage:
    """How many sealed blobs (rows' columns, media files) each key id seals, and where."""

    by_key: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, where: str, counts: dict[str, int]) -> None:
        for key_id, count in counts.items():
            places = self.by_key.setdefault(key_id, {})
            places[where] = places.get(where, 0) + count

    def describe(self, key_id: str) -> str:
        places = self.by_key.get(key_id, {})
        total = sum(places.values())
        return f"{key_id!r} ({total} sealed: " + ", ".join(f"{w} {n}" for w, n in sorted(places.items())) + ")"


async def scan_key_usage(store: Any, media_root: str, reactor: Any) -> KeyUsage:
    """Read the header of every sealed blob and media file; batched, one transaction each."""
    usage = KeyUsage()
    for table in SEALED_TABLES:
        after = None
        while True:
            counts, after = await store.sealing_keys.scan_key_usage(table, after)
            usage.add(table.table, counts)
            if after is None:
                break

    def _media_counts() -> dict[str, int]:
        counts: dict[str, int] = {}
        for path in media_files(media_root):
            try:
                key_id = sealed_file_key_id(path)
            except FileNotFoundError:
                continue
            counts[key_id] = counts.get(key_id, 0) + 1
        return counts

    usage.add("media files", await threads.deferToThreadPool(reactor, reactor.getThreadPool(), _media_counts))
    return usage


def _describe_pass(progress: list[ResealProgress]) -> list[str]:
    if not progress:
        return ["no re-seal pass has been started (`piman keys rotate` starts one)"]
    finished = sum(p.finished for p in progress)
    lines = [f"re-seal pass to key {progress[0].target_key_id!r}: {finished}/{len(progress)} parts done"]
    for p in progress:
        state = "done" if p.finished else ("under way" if p.rows_done else "waiting")
        lines.append(f"  {p.table:<30} {p.rows_done}/{p.rows_total} rows, {p.resealed} re-sealed, {state}")
    return lines


# -- in the server ------------------------------------------------------------


class BackgroundReseal:
    """A running server's part in a rotation: it notices the rotated key file, seals new data
    with the new key at once, and carries the re-seal pass (started by `piman keys rotate`) to
    its end in the background, a batch per transaction, resumable like the command's."""

    def __init__(self, hs: Any) -> None:
        self._hs = hs
        self._path = hs.config.data_key_path
        self._seen = self._file_state()
        self._stopping = False
        # Whether a pass may be waiting: at start-up (one may be left from before) and after the
        # key file changed; otherwise most checks are a stat, and one in IDLE_QUERY_EVERY asks the
        # database (`rotate --resume` may start a pass without touching the file).
        self._may_have_work = True
        self._idle_checks = 0

    def stop(self) -> None:
        """Let a re-seal under way stop after its current batch (the server is shutting down)."""
        self._stopping = True

    def _file_state(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    async def check(self) -> None:
        """Reload the key file if it changed; continue an unfinished pass to the current key.

        Run by a looping call, which waits for one check to end before the next: a long
        re-seal simply delays the next look at the file.
        """
        state = self._file_state()
        if state is not None and state != self._seen:
            try:
                fresh = load_sealer(self._path)
            except Exception as e:  # keep the keys we have: they still open everything stored
                logger.error("data key file changed but can't be used, keeping the loaded keys: %s", e)
                return
            self._seen = state
            self._may_have_work = True
            if (fresh.current_key_id, fresh.key_ids) != (self._hs.sealer.current_key_id, self._hs.sealer.key_ids):
                self._hs.sealer.adopt(fresh)
                logger.info("data key file reloaded: key %r seals new data", fresh.current_key_id)
        if not self._may_have_work:
            self._idle_checks += 1
            if self._idle_checks % IDLE_QUERY_EVERY:
                return
        progress = await self._hs.store.sealing_keys.get_reseal_progress()
        if not progress or all(p.finished for p in progress) or \
                progress[0].target_key_id != self._hs.sealer.current_key_id:
            self._may_have_work = False
            return
        finished = await run_reseal(self._hs.store, self._hs.sealer, self._hs.config.media_store_path,
                                    self._hs.reactor, None, keep_going=lambda: not self._stopping)
        if finished:
            self._may_have_work = False
            logger.info("re-seal done: everything is sealed with key %r", self._hs.sealer.current_key_id)


# -- commands ----------------------------------------------------------------


def _with_store(config_path: str, main: Callable[[Any, Any, Any], Awaitable[int]]) -> int:
    """Run `main(config, store, reactor)` on the configured organisation; one-line errors.

    Opening the store already refuses a key file lacking a key the data needs.
    """
    from homeserver.cli import run_on_homeserver

    async def on_homeserver(hs: Any) -> int:
        return await main(hs.config, hs.store, hs.reactor)

    return run_on_homeserver(config_path, on_homeserver)


def cmd_rotate(args: argparse.Namespace) -> int:
    """Add a key (unless --resume) and start the re-seal pass; run it here with a progress bar,
    or, when a server runs on this database, leave it to the server (`BackgroundReseal`)."""
    from homeserver.cli import CommandError, run_on_homeserver
    from storage.errors import DatabaseInUseError

    out: TextIO = sys.stderr

    async def main(hs: Any) -> int:
        config, store, reactor = hs.config, hs.store, hs.reactor
        try:
            hs.take_exclusive_lock()  # released when the command ends
            server_running = False
        except DatabaseInUseError:
            server_running = True
        path = config.data_key_path
        progress = await store.sealing_keys.get_reseal_progress()
        if args.resume:
            sealer = load_sealer(path)
            under_way = progress and progress[0].target_key_id == sealer.current_key_id and not all(
                p.finished for p in progress)
            if not under_way:
                # Nothing to continue: a new pass to the newest key (rows already sealed with it
                # are read but not rewritten), e.g. for rows a server wrote with an older key.
                await store.sealing_keys.start_reseal(sealer.current_key_id, _now_ms(reactor))
        else:
            if progress and not all(p.finished for p in progress):
                raise CommandError(
                    f"a re-seal pass to key {progress[0].target_key_id!r} is not finished: continue it with "
                    f"`piman keys rotate --resume --config {args.config}` before rotating again"
                )
            key_id = add_key_to_file(path)
            print(f"Added key {key_id!r} to {path}: it seals new data from now on.", file=out)
            sealer = load_sealer(path)
            await store.sealing_keys.start_reseal(sealer.current_key_id, _now_ms(reactor))
        if server_running:
            print(f"A server is running on this database: within {KEY_FILE_CHECK_INTERVAL_S * IDLE_QUERY_EVERY} s it "
                  f"seals new data "
                  f"with key {sealer.current_key_id!r} and re-seals the stored data in the background. "
                  f"`piman keys status --config {args.config}` shows how far it is.", file=out)
            return 0
        interrupted = reactor.addSystemEventTrigger(
            "before", "shutdown", lambda: print(
                f"\nStopped before the end: continue with `piman keys rotate --resume --config {args.config}`",
                file=out))
        await run_reseal(store, sealer, config.media_store_path, reactor, out)
        reactor.removeSystemEventTrigger(interrupted)
        print(f"Re-seal done: everything is sealed with key {sealer.current_key_id!r}. "
              f"`piman keys retire --config {args.config}` removes the old keys.", file=out)
        return 0

    return run_on_homeserver(args.config, main)


def cmd_status(args: argparse.Namespace) -> int:
    async def main(config: Any, store: Any, reactor: Any) -> int:
        sealer = load_sealer(config.data_key_path)
        print(f"data key file {config.data_key_path}: keys "
              f"{', '.join(repr(k) for k in sealer.key_ids)}; {sealer.current_key_id!r} seals new data")
        for line in _describe_pass(await store.sealing_keys.get_reseal_progress()):
            print(line)
        usage = await scan_key_usage(store, config.media_store_path, reactor)
        in_use = sorted(usage.by_key)
        print("key ids in use: " + (", ".join(usage.describe(k) for k in in_use) if in_use else "none"))
        return 0

    return _with_store(args.config, main)


def cmd_retire(args: argparse.Namespace) -> int:
    from homeserver.cli import CommandError

    async def main(config: Any, store: Any, reactor: Any) -> int:
        path = config.data_key_path
        sealer = load_sealer(path)
        usage = await scan_key_usage(store, config.media_store_path, reactor)
        old = [k for k in sealer.key_ids if k != sealer.current_key_id]
        still_used = [k for k in old if k in usage.by_key]
        retired = [k for k in old if k not in usage.by_key]
        if retired:
            # The database's list first: a key listed there but gone from the file stops start-up.
            await store.sealing_keys.forget_key_ids(retired)
            remove_keys_from_file(path, set(retired))
            print(f"Retired key{'s' if len(retired) > 1 else ''} {', '.join(repr(k) for k in retired)} "
                  f"from {path}: no stored data uses {'them' if len(retired) > 1 else 'it'}.")
        if still_used:
            raise CommandError(
                f"refusing to retire {', '.join(usage.describe(k) for k in still_used)}: still in use; "
                f"finish the re-seal with `piman keys rotate --resume --config {args.config}` first"
            )
        if not retired:
            print(f"Nothing to retire: {path} holds only the current key {sealer.current_key_id!r}.")
        return 0

    return _with_store(args.config, main)


def _now_ms(reactor: Any) -> int:
    return int(reactor.seconds() * 1000)


def add_keys_commands(keys_parser: argparse.ArgumentParser) -> None:
    sub = keys_parser.add_subparsers(dest="keys_command", required=True)
    p = sub.add_parser("rotate", help="add a new data key and re-seal stored data with it (resumable)")
    p.add_argument("--config", required=True)
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted re-seal (or re-seal again with the newest key) without adding a key")
    p.set_defaults(func=cmd_rotate)
    p = sub.add_parser("status", help="the re-seal's progress and the key ids stored data still uses")
    p.add_argument("--config", required=True)
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("retire", help="remove from the key file the old keys no stored data uses any more")
    p.add_argument("--config", required=True)
    p.set_defaults(func=cmd_retire)

