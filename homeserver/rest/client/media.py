"""Media endpoints: authenticated `/_matrix/client/v1/media/{download,config}`, the legacy
`/_matrix/media/v3/{upload,download,config}`, and asynchronous upload (`/_matrix/media/v1/create`,
then `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`).

Downloads stream the response themselves and return only once it is sent; the router then writes
nothing more. They answer HEAD and single byte ranges too (see MediaRepository.respond_with_file). The legacy downloads are frozen (404) while `enable_authenticated_media` is on.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import not_found
from homeserver.http.parse import query_int, query_str
from homeserver.http.router import Servlet
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer

LEGACY = "/_matrix/media/(?:r0|v3)"
AUTHENTICATED = "/_matrix/client/v1/media"
_DOWNLOAD = "/download/(?P<server_name>[^/]+)/(?P<media_id>[^/]+)(?:/(?P<file_name>[^/]+))?"


def _content_type(request: PimanRequest) -> str | None:
    value = request.getHeader("content-type")
    return value.strip() if value else None


class _UploadBase(Servlet):
    def __init__(self, hs: "HomeServer") -> None:
        super().__init__(hs)
        self.MAX_BODY_SIZE = hs.config.max_upload_size


class UploadServlet(_UploadBase):
    PATTERNS = [f"{LEGACY}/upload"]

    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        assert request.content is not None
        uri = await self.hs.media_repository.upload(
            requester.user_id, request.content, request.body_length, _content_type(request),
            query_str(request, "filename", None),
        )
        return HTTPStatus.OK, {"content_uri": uri}


class AsyncUploadServlet(_UploadBase):
    PATTERNS = [f"{LEGACY}/upload/(?P<server_name>[^/]+)/(?P<media_id>[^/]+)"]

    async def on_PUT(self, request: PimanRequest, server_name: str, media_id: str) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        assert request.content is not None
        await self.hs.media_repository.upload_reserved(
            requester.user_id, server_name, media_id, request.content, request.body_length,
            _content_type(request), query_str(request, "filename", None),
        )
        return HTTPStatus.OK, {}


class CreateServlet(Servlet):
    PATTERNS = ["/_matrix/media/v1/create"]

    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        requester = await self.hs.auth.get_user_by_req(request)
        uri, expires = await self.hs.media_repository.create(requester.user_id)
        return HTTPStatus.OK, {"content_uri": uri, "unused_expires_at": expires}


class ConfigServlet(Servlet):
    PATTERNS = [f"{LEGACY}/config", f"{AUTHENTICATED}/config"]

    async def on_GET(self, request: PimanRequest) -> tuple[int, Any]:
        await self.hs.auth.get_user_by_req(request)
        return HTTPStatus.OK, {"m.upload.size": self.hs.config.max_upload_size}


async def _download(hs: "HomeServer", request: PimanRequest, server_name: str, media_id: str,
                    file_name: str | None) -> tuple[int, Any]:
    timeout_ms = query_int(request, "timeout_ms", 20_000)
    repo = hs.media_repository
    media = await repo.get_metadata(server_name, media_id, timeout_ms=max(0, timeout_ms))
    await repo.respond_media(request, media, file_name)
    return HTTPStatus.OK, None


class DownloadServlet(Servlet):
    PATTERNS = [f"{AUTHENTICATED}{_DOWNLOAD}"]

    async def on_GET(self, request: PimanRequest, server_name: str, media_id: str,
                     file_name: str | None = None) -> tuple[int, Any]:
        await self.hs.auth.get_user_by_req(request)
        return await _download(self.hs, request, server_name, media_id, file_name)

    on_HEAD = on_GET  # the same headers without the body (see MediaRepository.respond_with_file)


class LegacyDownloadServlet(Servlet):
    PATTERNS = [f"{LEGACY}{_DOWNLOAD}"]

    async def on_GET(self, request: PimanRequest, server_name: str, media_id: str,
                     file_name: str | None = None) -> tuple[int, Any]:
        if self.hs.config.enable_authenticated_media:
            # Frozen as the spec recommends: clients must use the authenticated endpoint.
            raise not_found("Unauthenticated media downloads are disabled; use /_matrix/client/v1/media.")
        return await _download(self.hs, request, server_name, media_id, file_name)

    on_HEAD = on_GET


def servlets(hs: "HomeServer") -> list[Any]:
    return [UploadServlet(hs), AsyncUploadServlet(hs), CreateServlet(hs), ConfigServlet(hs), DownloadServlet(hs),
            LegacyDownloadServlet(hs)]
