"""Thumbnails (`/_matrix/media/v3/thumbnail`, `/_matrix/client/v1/media/thumbnail`) and URL previews (`preview_url`)."""

from __future__ import annotations

import io
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from twisted.internet import threads

from homeserver.http.errors import MatrixError, invalid_param, missing_param, not_found
from homeserver.http.parse import query_bool, query_int, query_str
from homeserver.http.router import Servlet
from homeserver.http.site import PimanRequest
from homeserver.media.previews import PreviewError, UrlPreviewer
from homeserver.media.thumbnails import CannotThumbnail, choose_size, generate_thumbnail
from storage.stores.media import Thumbnail

if TYPE_CHECKING:
    from homeserver.server import HomeServer

_MEDIA = r"/(?P<server_name>[^/]+)/(?P<media_id>[^/]+)"


class ThumbnailServlet(Servlet):
    PATTERNS = [f"/_matrix/media/(?:v3|r0)/thumbnail{_MEDIA}", f"/_matrix/client/v1/media/thumbnail{_MEDIA}"]

    async def on_GET(self, request: PimanRequest, server_name: str, media_id: str) -> tuple[int, Any]:
        if request.path.startswith(b"/_matrix/client/"):
            await self.hs.auth.get_user_by_req(request)
        elif self.hs.config.enable_authenticated_media:
            # Frozen like the legacy downloads, as the spec recommends.
            raise not_found("Unauthenticated media is disabled; use /_matrix/client/v1/media/thumbnail.")
        width, height = query_int(request, "width", None), query_int(request, "height", None)
        if width is None or height is None:
            raise missing_param("width and height are required.")
        if width <= 0 or height <= 0:
            raise invalid_param("width and height must be positive.")
        method = query_str(request, "method", "scale")
        if method not in ("scale", "crop"):
            raise invalid_param("method must be 'scale' or 'crop'.")
        animated = query_bool(request, "animated", False)
        size = choose_size(width, height, method)
        repo = self.hs.media_repository
        media = await repo.get_metadata(server_name, media_id)  # 400/404 for bad or unknown media
        wanted = (size.width, size.height, size.method, animated)
        stored = await self.hs.store.media.get_thumbnails(media.media_id)
        thumb = next((t for t in stored if (t.width, t.height, t.method, t.animated) == wanted), None)
        if thumb is None:
            data = await repo.read_bytes(server_name, media_id)
            try:
                image, content_type = await threads.deferToThreadPool(
                    self.hs.reactor, self.hs.reactor.getThreadPool(),
                    generate_thumbnail, data, media.content_type or "", size, animated,
                )
            except CannotThumbnail as e:
                raise MatrixError(HTTPStatus.BAD_REQUEST, "M_UNKNOWN", str(e)) from e
            thumb = Thumbnail(media.media_id, size.width, size.height, size.method, animated, content_type, len(image))
            await repo.store_thumbnail(thumb, io.BytesIO(image))  # sealed like the original
        # v1.12: a thumbnail is always `inline` (its types all are), with a file name.
        extension = thumb.content_type.rsplit("/", 1)[-1]
        await repo.respond_with_file(request, repo.stored_thumbnail_path(thumb), thumb.content_type, thumb.size,
                                     f"thumbnail.{extension}")
        return HTTPStatus.OK, None  # the response is already written


class PreviewUrlServlet(Servlet):
    PATTERNS = ["/_matrix/media/(?:v3|r0)/preview_url", "/_matrix/client/v1/media/preview_url"]

    def __init__(self, hs: "HomeServer") -> None:
        super().__init__(hs)
        self.previewer = UrlPreviewer(hs.reactor, hs.clock, whitelist=list(hs.config.url_preview_ip_range_whitelist),
                                      max_size=hs.config.max_spider_size,
                                      store_image=hs.media_repository.store_preview_image)

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        url = query_str(request, "url")
        try:
            return HTTPStatus.OK, await self.previewer.preview(url, requester.user_id)
        except PreviewError as e:
            raise MatrixError(e.code, e.errcode, e.msg) from e


def servlets(hs: "HomeServer") -> list[Any]:
    # Like Synapse, preview_url does not exist at all (404 M_UNRECOGNIZED) unless the admin enables it.
    previews = [PreviewUrlServlet(hs)] if hs.config.url_preview_enabled else []
    return [ThumbnailServlet(hs), *previews]
