"""`piman admin export --user @u:s | --room !r:s [--output DIR] [--tar]`: a bundle for a legal request.

The bundle is what the database and the media store hold, as they hold it: events, account data,
profile fields and devices keep their sealed columns sealed (base64 of the stored blob, next to
the clear metadata columns), and media files are copied sealed. Ciphertext stays ciphertext;
opening it takes the organisation's data key, which never goes into a bundle.

    metadata.json       what, when, who ran it, server, counts, format version (written last)
    events.jsonl        one stored event per line, in stream order
    room.json           (room) the room row, its current state (event IDs) and memberships
    user.json           (user) the account row (no password hash), profile, devices, memberships
    account_data.jsonl  (user) account data, sealed
    media.jsonl         media metadata (a user's uploads; a room's referenced media), thumbnails
    media/<id>, media/thumbnails/<id>/<name>   the sealed files

Events are read in batches up to a stream position fixed at the start, so memory stays flat
for any room and the counts match what was written. The bundle is built as DIR/<name>.partial
(mode 0700, files 0600) and renamed when complete; a failure removes it. Every run, failed
or not, is audit-logged.

A room's media are those its events point at in clear (`url`, `info.thumbnail_url`): to find
them the exporter opens those events' sealed blobs in memory, and writes nothing of them in
clear. Attachments of end-to-end encrypted messages are referenced only inside the ciphertext,
so the server can't tell them apart: export the senders with --user to include their uploads.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import sys
import tarfile
import time
from dataclasses import dataclass, field
from typing import IO, Any, Iterable

from twisted.internet import threads

from homeserver.handlers.audit_log import cli_actor
from homeserver.handlers.legal_holds import check_target
from homeserver.http.errors import MatrixError
from homeserver.progress import ProgressBar

FORMAT = "piman-export"
FORMAT_VERSION = 1
EVENT_BATCH = 500
MEDIA_BATCH = 200

SEALED_FIELDS = {
    "events.jsonl": ["pdu"],
    "account_data.jsonl": ["content"],
    "user.json": ["profile[].value", "devices[].display_name", "devices[].last_seen_ip",
                  "devices[].last_seen_user_agent"],
    "media.jsonl": ["upload_name"],
    "media/": ["every file (piman's sealed media file format, PMF1)"],
}


class ExportError(Exception):
    """An export that can't run; the message says why."""


@dataclass
class ExportResult:
    path: str
    counts: dict[str, int] = field(default_factory=dict)


def add_commands(admin_sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = admin_sub.add_parser("export", help="write a user's or a room's stored data (still sealed) to a bundle")
    p.add_argument("--config", required=True)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--user", help="a user ID: their events, account data, profile, devices and media")
    target.add_argument("--room", help="a room ID: its events, state, members and the media its events reference")
    p.add_argument("--output", default=None, help="the directory to write the bundle in (default: export_directory)")
    p.add_argument("--tar", action="store_true", help="write one .tar file instead of a directory")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from homeserver.cli import CommandError, run_on_homeserver

    async def main(hs: Any) -> int:
        output = args.output or hs.config.export_directory
        if not output:
            raise CommandError("No output directory: pass --output DIR or set export_directory in the config.")
        if args.output and hs.config.export_directory and \
                os.path.abspath(args.output) != os.path.abspath(hs.config.export_directory):
            print(f"piman: note: {args.output} is not the configured export_directory, whose location is the one "
                  f"declared for data residency.", file=sys.stderr)
        kind, target = ("user", args.user) if args.user is not None else ("room", args.room)
        try:
            result = await export_bundle(hs, kind, target, output, actor=cli_actor(), tar=args.tar,
                                         progress=sys.stderr)
        except MatrixError as e:
            raise CommandError(e.msg) from None
        except ExportError as e:
            raise CommandError(str(e)) from None
        summary = ", ".join(f"{n} {name}" for name, n in result.counts.items())
        print(f"Wrote {result.path} ({summary}).")
        return 0

    return run_on_homeserver(args.config, main)


async def export_bundle(hs: Any, kind: str, target: str, output_dir: str, *, actor: str, tar: bool = False,
                        progress: IO[str] | None = None) -> ExportResult:
    """Export a room's or a user's stored data to a new bundle under `output_dir`; audit-logged either way."""
    action = f"export.{kind}"
    partial: str | None = None
    try:
        check_target(kind, target)
        await hs.legal_holds.check_exists(kind, target)
        started_ms = hs.clock.time_msec()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started_ms / 1000))
        name = f"piman-export-{kind}-{_slug(target)}-{stamp}"
        final = os.path.join(output_dir, name + (".tar" if tar else ""))
        building = os.path.join(output_dir, name + ".partial")
        if os.path.exists(final):
            raise ExportError(f"{final} already exists: wait a second and run the export again.")
        try:
            os.makedirs(output_dir, mode=0o700, exist_ok=True)
            # Fails if another export of the same target runs this second: that one's, not ours to remove.
            os.mkdir(building, 0o700)
        except OSError as e:
            raise ExportError(f"cannot create the bundle in {output_dir}: {e.strerror or e}") from e
        partial = building
        os.chmod(partial, 0o700)
        writer = _BundleWriter(hs, partial, progress)
        if kind == "room":
            await writer.write_room(target)
        else:
            await writer.write_user(target)
        writer.write_metadata(kind, target, actor, started_ms, await _is_held(hs, kind, target))
        if tar:
            await threads.deferToThreadPool(hs.reactor, hs.reactor.getThreadPool(), _pack, partial, final, name)
            shutil.rmtree(partial)
        else:
            os.rename(partial, final)
    except MatrixError as e:
        await hs.audit_log.record(actor, action, target, {"error": e.msg}, outcome=e.errcode)
        raise
    except BaseException as e:
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
        await hs.audit_log.record(actor, action, target, {"output": output_dir, "error": str(e) or type(e).__name__},
                                  outcome="failed")
        raise
    await hs.audit_log.record(actor, action, target, {"bundle": final, "counts": writer.counts})
    return ExportResult(final, writer.counts)


async def _is_held(hs: Any, kind: str, target: str) -> bool:
    return await (hs.store.holds.is_room_held(target) if kind == "room" else hs.store.holds.is_user_held(target))


class _BundleWriter:
    def __init__(self, hs: Any, path: str, progress: IO[str] | None) -> None:
        self._hs = hs
        self._store = hs.store.export
        self._path = path
        self._progress = progress
        self.counts: dict[str, int] = {}
        self._media_ids: set[str] = set()

    # What goes in

    async def write_room(self, room_id: str) -> None:
        room = await self._store.room(room_id)
        state, members = await self._store.room_state_and_members(room_id)
        self._write_json("room.json", {"room": room, "current_state": state, "memberships": members})
        self.counts.update(state_events=len(state), members=len(members))
        await self._write_events(room_id=room_id)
        await self._write_media(await self._store.media(self._media_ids))

    async def write_user(self, user_id: str) -> None:
        account = await self._store.user(user_id)
        data = await self._store.user_data(user_id)
        self._write_json("user.json", {"account": account, "profile": data["profile"], "devices": data["devices"],
                                       "memberships": data["memberships"]})
        self._write_lines("account_data.jsonl", data["account_data"])
        self.counts.update(account_data=len(data["account_data"]), profile_fields=len(data["profile"]),
                           devices=len(data["devices"]), memberships=len(data["memberships"]))
        await self._write_events(sender=user_id)
        media: list[dict[str, Any]] = []
        after = ""
        while batch := await self._store.user_media_batch(user_id, after=after, limit=MEDIA_BATCH):
            media.extend(batch)
            after = batch[-1]["media_id"]
        await self._write_media(media)

    async def _write_events(self, **scope: str) -> None:
        total, upto = await self._store.event_bounds(**scope)
        bar = ProgressBar(self._progress, "events", "events")
        written, after = 0, 0
        with self._open("events.jsonl") as out:
            while batch := await self._store.events_batch(after=after, upto=upto, limit=EVENT_BATCH, **scope):
                for row in batch:
                    if row["contains_url"]:
                        self._media_ids.update(self._referenced_media(row["pdu"]))
                    out.write(_json_line(row))
                written += len(batch)
                after = batch[-1]["stream_ordering"]
                bar.update(written, total)
        bar.finish(written, max(total, written))
        self.counts["events"] = written

    async def _write_media(self, media: list[dict[str, Any]]) -> None:
        repo = self._hs.media_repository
        thumbnails = await self._store.thumbnails(row["media_id"] for row in media)
        self._write_lines("media.jsonl", [{"media": row} for row in media] + [{"thumbnail": t} for t in thumbnails])
        bar = ProgressBar(self._progress, "media", "files")
        files = thumbnail_files = 0
        for index, row in enumerate(media, start=1):
            media_id = row["media_id"]
            copied = await self._copy(repo.content_path(media_id), os.path.join("media", media_id))
            files += copied
            thumbs_dir = os.path.dirname(repo.thumbnail_path(media_id, "x"))
            if os.path.isdir(thumbs_dir):
                for thumb_name in sorted(os.listdir(thumbs_dir)):
                    thumbnail_files += await self._copy(os.path.join(thumbs_dir, thumb_name),
                                                        os.path.join("media", "thumbnails", media_id, thumb_name))
            bar.update(index, len(media))
        bar.finish(len(media), len(media))
        self.counts.update(media=len(media), media_files=files, thumbnails=len(thumbnails),
                           thumbnail_files=thumbnail_files)

    def write_metadata(self, kind: str, target: str, actor: str, started_ms: int, held: bool) -> None:
        self._write_json("metadata.json", {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": kind,
            "target": target,
            "server_name": self._hs.hostname,
            "piman_version": self._hs.version,
            "exported_by": actor,
            "started_ts": started_ms,
            "finished_ts": self._hs.clock.time_msec(),
            "under_legal_hold": held,
            "counts": self.counts,
            "sealed_fields": SEALED_FIELDS,
            "sealing": {
                "scheme": "PyNaCl SecretBox under the organisation's data key; each blob starts with a format "
                          "byte, the key ID's length and the key ID",
                "current_key_id": self._hs.sealer.current_key_id,
                "encoding": "sealed blobs are base64 (standard alphabet, padded) in the JSON files",
            },
            "notes": ["Attachments of end-to-end encrypted messages are referenced only inside the ciphertext: "
                      "a room export can't include them; a user export includes everything the user uploaded."],
        })

    # How it is written

    def _referenced_media(self, sealed_pdu: bytes) -> set[str]:
        """Our media IDs a clear event's content points at (opened in memory only, never written)."""
        content = self._hs.sealer.open_json(sealed_pdu).get("content", {})
        info = content.get("info")
        urls = [content.get("url"), info.get("thumbnail_url") if isinstance(info, dict) else None]
        prefix = f"mxc://{self._hs.hostname}/"
        return {url[len(prefix):] for url in urls
                if isinstance(url, str) and url.startswith(prefix) and _MEDIA_ID_RE.fullmatch(url[len(prefix):])}

    async def _copy(self, source: str, relative: str) -> int:
        """Copy a sealed file into the bundle as it is; 0 if it isn't there (a pending or deleted upload)."""
        if not os.path.isfile(source):
            return 0
        dest = os.path.join(self._path, relative)
        self._make_dirs(os.path.dirname(dest))
        await threads.deferToThreadPool(self._hs.reactor, self._hs.reactor.getThreadPool(), _copy_file, source, dest)
        return 1

    def _make_dirs(self, directory: str) -> None:
        if not os.path.isdir(directory):
            self._make_dirs(os.path.dirname(directory))
            os.mkdir(directory, 0o700)
            os.chmod(directory, 0o700)

    def _open(self, relative: str) -> IO[str]:
        fd = os.open(os.path.join(self._path, relative), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return os.fdopen(fd, "w", encoding="utf-8")

    def _write_json(self, relative: str, value: Any) -> None:
        with self._open(relative) as out:
            json.dump(_jsonable(value), out, indent=2, sort_keys=True, ensure_ascii=False)
            out.write("\n")

    def _write_lines(self, relative: str, rows: Iterable[Any]) -> None:
        with self._open(relative) as out:
            for row in rows:
                out.write(_json_line(row))


_MEDIA_ID_RE = re.compile(r"[A-Za-z0-9_=-]+")


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


def _json_line(row: Any) -> str:
    return json.dumps(_jsonable(row), sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"


def _slug(target: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", target).strip("_")[:80]


def _copy_file(source: str, dest: str) -> None:
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(source, "rb") as src, os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(src, out, 1024 * 1024)


def _pack(directory: str, tar_path: str, name: str) -> None:
    fd = os.open(tar_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w") as archive:
            archive.add(directory, arcname=name)
    except BaseException:
        os.unlink(tar_path)
        raise
