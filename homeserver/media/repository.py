"""The media repository of one homeserver: storing uploads sealed on disk and serving them back.

Files live under `media_store_path` (local_content/ for originals, local_thumbnails/ for generated
thumbnails), each sealed in chunks (see sealed_files); metadata is in the `media` store.
"""

from __future__ import annotations

import io
import logging
import os
import re
import secrets
import shutil
import string
import urllib.parse
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, AsyncIterator, BinaryIO

from twisted.internet import defer, threads

from homeserver.http.errors import MatrixError, invalid_param, limit_exceeded, not_found, too_large
from homeserver.media.ranges import RangeNotSatisfiable, parse_range
from homeserver.media.sealed_files import CHUNK_SIZE, SealedReader, write_sealed
from homeserver.media.streaming import SealedFileProducer
from storage.stores.media import LocalMedia, Thumbnail

if TYPE_CHECKING:
    from homeserver.server import HomeServer

logger = logging.getLogger(__name__)

_MEDIA_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_ID_ALPHABET = string.ascii_letters + string.digits
MAX_WAIT_MS = 120_000
# The sweep of reservations whose upload never came: how often, and how many rows per transaction.
SWEEP_INTERVAL_S = 3600
SWEEP_BATCH_SIZE = 100
DEFAULT_WAIT_MS = 20_000

# Types a browser may show in place: they cannot run script. Anything else is an attachment.
INLINE_CONTENT_TYPES = frozenset({
    "text/plain", "text/csv",
    "image/jpeg", "image/gif", "image/png", "image/apng", "image/webp", "image/avif",
    "video/mp4", "video/webm", "video/ogg", "video/quicktime",
    "audio/mp4", "audio/webm", "audio/aac", "audio/mpeg", "audio/ogg", "audio/wave", "audio/wav",
    "audio/x-wav", "audio/x-pn-wav", "audio/flac", "audio/x-flac",
})

SAFETY_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf;"
                               " style-src 'unsafe-inline'; media-src 'self'; object-src 'self';",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "cross-origin",
}


def content_disposition(content_type: str, file_name: str | None) -> str:
    """`inline` only for types in the allow-list; the file name in RFC 6266 form."""
    base_type = content_type.split(";", 1)[0].strip().lower()
    disposition = "inline" if base_type in INLINE_CONTENT_TYPES else "attachment"
    if not file_name:
        return disposition
    if all(32 <= ord(c) < 127 for c in file_name) and '"' not in file_name and "\\" not in file_name:
        return f'{disposition}; filename="{file_name}"'
    return f"{disposition}; filename*=utf-8''{urllib.parse.quote(file_name, safe='')}"


def resource_limit_exceeded(msg: str) -> MatrixError:
    return MatrixError(HTTPStatus.FORBIDDEN, "M_RESOURCE_LIMIT_EXCEEDED", msg)


class MediaRepository:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store.media
        self._sealer = hs.sealer
        self._clock = hs.clock
        self._reactor = hs.reactor
        self.server_name = hs.hostname
        self.base_path = hs.config.media_store_path
        self.max_upload_size: int = hs.config.max_upload_size
        self._media_config = hs.config.media
        self._upload_waiters: dict[str, list[defer.Deferred[None]]] = {}

    # Paths and IDs

    @staticmethod
    def check_media_id(media_id: str) -> None:
        if not _MEDIA_ID_RE.match(media_id):
            raise invalid_param("Malformed media ID.")

    def content_path(self, media_id: str) -> str:
        self.check_media_id(media_id)
        return os.path.join(self.base_path, "local_content", media_id[:2], media_id[2:4], media_id[4:] or "_")

    def thumbnail_path(self, media_id: str, name: str) -> str:
        self.check_media_id(media_id)
        if not _MEDIA_ID_RE.match(name):
            raise ValueError(f"invalid thumbnail file name {name!r}")
        return os.path.join(self.base_path, "local_thumbnails", media_id[:2], media_id[2:4], media_id[4:] or "_", name)

    def mxc(self, media_id: str) -> str:
        return f"mxc://{self.server_name}/{media_id}"

    def _new_media_id(self) -> str:
        return "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))

    # Uploads

    async def _check_quota(self, user_id: str, length: int) -> None:
        quota = self._media_config.user_quota
        if quota is not None and await self._store.user_usage(user_id) + length > quota:
            raise resource_limit_exceeded("Media storage quota exceeded: delete some media first.")

    async def _write(self, source: BinaryIO, path: str) -> int:
        source.seek(0)
        return await threads.deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), write_sealed, self._sealer, source, path,
            limit=self.max_upload_size,
        )

    async def upload(self, user_id: str, source: BinaryIO, length: int, content_type: str | None,
                     upload_name: str | None) -> str:
        """Store a new upload; returns its mxc:// URI."""
        await self._check_quota(user_id, length)
        media_id = self._new_media_id()
        path = self.content_path(media_id)
        size = await self._write(source, path)
        now = self._clock.time_msec()
        try:
            await self._store.insert_media(LocalMedia(
                media_id, user_id, now, None, now, content_type or "application/octet-stream", size, upload_name,
            ))
        except BaseException:
            os.unlink(path)
            raise
        return self.mxc(media_id)

    async def store_preview_image(self, user_id: str, data: bytes, content_type: str) -> str:
        """Keep a URL preview's image as `user_id`'s media (sealed, counted in their quota); its mxc URI."""
        if len(data) > self.max_upload_size:
            raise too_large(self.max_upload_size)
        return await self.upload(user_id, io.BytesIO(data), len(data), content_type, None)

    async def create(self, user_id: str) -> tuple[str, int]:
        """Reserve a media ID for a later upload: (mxc URI, unused_expires_at)."""
        now = self._clock.time_msec()
        if await self._store.count_pending(user_id, now) >= self._media_config.max_pending_uploads:
            raise limit_exceeded(self._media_config.unused_expires_after)
        media_id = self._new_media_id()
        expires = now + self._media_config.unused_expires_after
        await self._store.reserve_media(media_id, user_id, now, expires)
        return self.mxc(media_id), expires

    async def upload_reserved(self, user_id: str, server_name: str, media_id: str, source: BinaryIO, length: int,
                              content_type: str | None, upload_name: str | None) -> None:
        """Fill in a media ID reserved by `create`."""
        self.check_media_id(media_id)
        if server_name != self.server_name:
            raise not_found("Media can only be uploaded to this server.")
        media = await self._store.get_media(media_id)
        now = self._clock.time_msec()
        if media is None or (media.upload_ts is None and media.expires_ts is not None and media.expires_ts <= now):
            raise not_found("Unknown or expired media ID.")
        if media.user_id != user_id:
            raise MatrixError(HTTPStatus.FORBIDDEN, "M_FORBIDDEN", "This media ID was created by another user.")
        if media.upload_ts is not None:
            raise MatrixError(HTTPStatus.CONFLICT, "M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded.")
        await self._check_quota(user_id, length)
        path = self.content_path(media_id)
        tmp_target = f"{path}.{secrets.token_hex(6)}.pending"
        size = await self._write(source, tmp_target)
        try:
            stored = await self._store.complete_upload(
                media_id, upload_ts=self._clock.time_msec(), content_type=content_type or "application/octet-stream",
                size=size, upload_name=upload_name,
            )
            if not stored:
                if await self._store.get_media(media_id) is None:  # expired and swept meanwhile
                    raise not_found("Unknown or expired media ID.")
                raise MatrixError(HTTPStatus.CONFLICT, "M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded.")
            os.replace(tmp_target, path)
        finally:
            if os.path.exists(tmp_target):
                os.unlink(tmp_target)
        for waiter in self._upload_waiters.pop(media_id, []):
            if not waiter.called:
                waiter.callback(None)

    async def run_reservation_sweep(self) -> None:
        """The periodic job: a failed sweep is logged and retried next time (an error escaping
        would stop the looping call for good)."""
        try:
            await self.sweep_expired_reservations()
        except Exception:
            logger.exception("Sweeping expired media reservations failed")

    async def sweep_expired_reservations(self, now_ms: int | None = None) -> int:
        """Forget media IDs from /create whose upload never came before `unused_expires_after`.

        Small batches, one short transaction each, yielding to the reactor between them; the rows'
        own expiry is the progress, so a sweep cut short resumes on the next run. Returns the count.
        """
        now = self._clock.time_msec() if now_ms is None else now_ms
        total = 0
        while True:
            deleted = await self._store.delete_expired_reservations(now, SWEEP_BATCH_SIZE)
            total += deleted
            if deleted < SWEEP_BATCH_SIZE:
                break
            await self._clock.sleep(0)
        if total:
            logger.info("Forgot %d media ID(s) reserved by /create and never uploaded", total)
        return total

    # Downloads

    async def get_metadata(self, server_name: str, media_id: str, *, timeout_ms: int = 0) -> LocalMedia:
        """Metadata of uploaded local media, waiting up to `timeout_ms` for a reserved ID's upload.

        Raises 400 for a malformed ID, 404 for unknown, expired or remote media (no federation yet),
        504 M_NOT_YET_UPLOADED if the content did not arrive in time.
        """
        self.check_media_id(media_id)
        if server_name != self.server_name:
            raise not_found("Remote media is not available from this server.")
        media = await self._store.get_media(media_id)
        if media is not None and media.upload_ts is None and timeout_ms > 0:
            await self._wait_for_upload(media_id, min(timeout_ms, MAX_WAIT_MS))
            media = await self._store.get_media(media_id)
        if media is None:
            raise not_found("Unknown media.")
        if media.upload_ts is None:
            if media.expires_ts is not None and media.expires_ts <= self._clock.time_msec():
                raise not_found("Unknown media.")
            raise MatrixError(HTTPStatus.GATEWAY_TIMEOUT, "M_NOT_YET_UPLOADED", "Media has not been uploaded yet.")
        return media

    async def _wait_for_upload(self, media_id: str, timeout_ms: int) -> None:
        d: defer.Deferred[None] = defer.Deferred()
        self._upload_waiters.setdefault(media_id, []).append(d)
        timer = self._clock.call_later(timeout_ms / 1000, lambda: d.called or d.callback(None))
        try:
            await d
        finally:
            if timer.active():
                timer.cancel()
            waiters = self._upload_waiters.get(media_id)
            if waiters is not None and d in waiters:
                waiters.remove(d)
                if not waiters:
                    del self._upload_waiters[media_id]

    async def respond_with_file(self, request: Any, path: str, content_type: str, size: int,
                                file_name: str | None) -> None:
        """Stream a sealed file as the response, with the safety headers; returns once it is sent.

        Honours a single `Range` (206, from the chunk holding its first byte; 416 if past the end)
        and HEAD (the same headers, no body, the file not even opened).
        """
        range_header = request.getHeader("range")
        try:
            wanted = parse_range(range_header, size)
        except RangeNotSatisfiable:
            error = MatrixError(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, "M_UNKNOWN",
                                f"The requested range is past the end of the content ({size} bytes).")
            error.headers["Content-Range"] = f"bytes */{size}"
            raise error from None
        first, last = wanted if wanted is not None else (0, size - 1)
        head = request.method == b"HEAD"
        start_chunk = first // CHUNK_SIZE
        reader = None if head else await threads.deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), SealedReader, self._sealer, path, start_chunk
        )
        request.setHeader(b"Accept-Ranges", b"bytes")
        request.setHeader(b"Content-Type", content_type.encode("ascii", "replace"))
        request.setHeader(b"Content-Disposition", content_disposition(content_type, file_name).encode("ascii"))
        request.setHeader(b"Cache-Control", b"private, max-age=86400")
        for name, value in SAFETY_HEADERS.items():
            request.setHeader(name.encode("ascii"), value.encode("ascii"))
        if wanted is None:
            request.setResponseCode(HTTPStatus.OK)
            request.setHeader(b"Content-Length", str(size).encode("ascii"))
        else:
            request.setResponseCode(HTTPStatus.PARTIAL_CONTENT)
            request.setHeader(b"Content-Range", f"bytes {first}-{last}/{size}".encode("ascii"))
            request.setHeader(b"Content-Length", str(last - first + 1).encode("ascii"))
        if reader is None:
            request.finish()
            return
        producer = SealedFileProducer(request, reader, skip=first - start_chunk * CHUNK_SIZE,
                                      length=None if wanted is None else last - first + 1)
        await producer.start()

    async def respond_media(self, request: Any, media: LocalMedia, file_name: str | None = None) -> None:
        await self.respond_with_file(
            request, self.content_path(media.media_id), media.content_type or "application/octet-stream",
            media.size or 0, file_name or media.upload_name,
        )

    async def read_plaintext(self, server_name: str, media_id: str) -> AsyncIterator[bytes]:
        """The plaintext of uploaded media, chunk by chunk (for thumbnailing and the like)."""
        await self.get_metadata(server_name, media_id)
        reader = await threads.deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), SealedReader, self._sealer, self.content_path(media_id)
        )
        try:
            while not reader.done:
                yield await threads.deferToThreadPool(self._reactor, self._reactor.getThreadPool(), reader.read_chunk)
        finally:
            reader.close()

    async def read_bytes(self, server_name: str, media_id: str) -> bytes:
        """The whole plaintext of small media at once."""
        return b"".join([chunk async for chunk in self.read_plaintext(server_name, media_id)])

    # Generated files (thumbnails)

    async def store(self, path: str, source: BinaryIO) -> int:
        """Seal a generated file (e.g. a thumbnail, see `thumbnail_path`) atomically; returns its size."""
        return await self._write(source, path)

    async def store_thumbnail(self, thumb: Thumbnail, source: BinaryIO) -> None:
        name = f"{thumb.width}x{thumb.height}-{thumb.method}{'-animated' if thumb.animated else ''}"
        await self.store(self.thumbnail_path(thumb.media_id, name), source)
        await self._store.add_thumbnail(thumb, self._clock.time_msec())

    def stored_thumbnail_path(self, thumb: Thumbnail) -> str:
        name = f"{thumb.width}x{thumb.height}-{thumb.method}{'-animated' if thumb.animated else ''}"
        return self.thumbnail_path(thumb.media_id, name)

    # Administration

    async def list_user_media(self, user_id: str) -> list[LocalMedia]:
        return await self._store.list_user_media(user_id)

    async def delete_media(self, media_id: str) -> None:
        """Remove media, its thumbnails and its metadata."""
        await self._store.delete_media(media_id)
        try:
            os.unlink(self.content_path(media_id))
        except FileNotFoundError:
            pass
        thumbs = os.path.dirname(self.thumbnail_path(media_id, "x"))
        shutil.rmtree(thumbs, ignore_errors=True)

    async def delete_user_media(self, user_id: str, media_id: str | None = None) -> list[str]:
        """Delete all of a user's media, or one item of it; returns the IDs deleted."""
        ids = [m.media_id for m in await self._store.list_user_media(user_id)
               if media_id is None or m.media_id == media_id]
        for mid in ids:
            await self.delete_media(mid)
        return ids

    async def delete_media_older_than(self, ts: int, batch: int) -> list[str]:
        """Delete up to `batch` local media uploaded before `ts` (ms), oldest first, except those of
        users under a legal hold (retention by age, `media_retention`); returns the IDs deleted."""
        held = await self._hs.store.holds.held_users()
        ids = await self._hs.store.retention.local_media_older_than(ts, batch, held)
        for media_id in ids:
            await self.delete_media(media_id)
        return ids
