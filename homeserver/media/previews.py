"""URL previews: fetch a page on a user's behalf and return its OpenGraph data.

Off unless the admin enables it. Because the fetch comes from inside the organisation's network,
connections to private, loopback or link-local addresses are refused unless whitelisted: the check
runs inside name resolution (see guarded_resolver), on the addresses actually connected to, for the
page, every redirect hop and the page's image alike.

A page's `og:image` is fetched through the same guarded client and re-hosted as the requesting
user's own (sealed) media, so clients show it from `mxc://` and never contact the third party.
"""

from __future__ import annotations

import io
import logging
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any, Awaitable, Callable

import treq
from PIL import Image
from twisted.internet import error as net_error
from twisted.internet import threads
from twisted.web.client import Agent

from homeserver.http.errors import MatrixError
from homeserver.media.guarded_resolver import AddressPolicy, GuardedReactor, GuardedResolver

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
FETCH_TIMEOUT_S = 10.0
OG_PREFIXES = ("og:",)
# Re-hosted preview images: raster types a client can show inline (never SVG, which can hold script).
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/apng", "image/avif"})
# Previews of one URL for one user are reused this long, so re-rendering a message does not fetch
# the page (and store its image) again.
CACHE_TTL_MS = 60 * 60 * 1000
CACHE_ENTRIES = 1000

# Stores a fetched image as the user's media: (user_id, bytes, content type) -> mxc URI.
ImageStore = Callable[[str, bytes, str], Awaitable[str]]


class PreviewError(Exception):
    def __init__(self, code: int, errcode: str, msg: str) -> None:
        super().__init__(msg)
        self.code, self.errcode, self.msg = code, errcode, msg


class _Discard(Exception):
    """Raised from a body collector to hang up on a body we do not want."""


class OpenGraphParser(HTMLParser):
    """Collects `og:*` meta tags, plus `<title>` and `description` as fallbacks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.og: dict[str, str] = {}
        self.title: str | None = None
        self.description: str | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "meta":
            key = a.get("property") or a.get("name") or ""
            if key.startswith(OG_PREFIXES) and key not in self.og and "content" in a:
                self.og[key] = a["content"]
            elif key == "description" and self.description is None:
                self.description = a.get("content")
        elif tag == "title" and self.title is None:
            self._in_title = True

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title = (self.title or "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False


def parse_open_graph(html: str) -> dict[str, Any]:
    parser = OpenGraphParser()
    parser.feed(html)
    parser.close()
    result: dict[str, Any] = dict(parser.og)
    if "og:title" not in result and parser.title:
        result["og:title"] = parser.title.strip()
    if "og:description" not in result and parser.description:
        result["og:description"] = parser.description.strip()
    return result


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    content_type: str  # lower-case, without parameters
    charset: str | None
    body: bytes


def _split_content_type(header: str) -> tuple[str, str | None]:
    base, *params = header.split(";")
    charset = None
    for part in params:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            charset = value.strip('"')
    return base.strip().lower(), charset


def _image_size(data: bytes) -> tuple[int, int]:
    """Width and height from the image header (blocking: run in a thread). Raises on non-images."""
    with Image.open(io.BytesIO(data)) as image:
        return image.size


class UrlPreviewer:
    def __init__(self, reactor: Any, clock: Any, *, whitelist: list[str], max_size: int,
                 store_image: ImageStore) -> None:
        self._reactor = reactor
        self._clock = clock
        self._policy = AddressPolicy(whitelist)
        self._max_size = max_size
        self._store_image = store_image
        self._cache: OrderedDict[tuple[str, str], tuple[int, dict[str, Any]]] = OrderedDict()

    async def preview(self, url: str, user_id: str) -> dict[str, Any]:
        """OpenGraph fields of `url`, its image re-hosted as `user_id`'s media."""
        now = self._clock.time_msec()
        cached = self._cache.get((user_id, url))
        if cached is not None and cached[0] > now:
            return dict(cached[1])
        result = await self._preview(url, user_id)
        self._cache[(user_id, url)] = (now + CACHE_TTL_MS, result)
        self._cache.move_to_end((user_id, url))
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return dict(result)

    async def _preview(self, url: str, user_id: str) -> dict[str, Any]:
        page = await self.fetch(url, accept=lambda t: "html" in t or t in IMAGE_TYPES)
        if page is None:
            return {}  # neither a page nor an image: nothing to show
        if page.content_type in IMAGE_TYPES:
            return await self._rehost(page, user_id) or {}
        try:
            text = page.body.decode(page.charset or "utf-8", "replace")
        except LookupError:
            text = page.body.decode("utf-8", "replace")
        result = parse_open_graph(text)
        image_url = result.get("og:image") or result.get("og:image:url")
        # The page's own image fields point at the third party: ours replace them, or none are sent.
        result = {k: v for k, v in result.items() if k != "og:image" and not k.startswith("og:image:")}
        if image_url:
            image = await self._fetch_image(urllib.parse.urljoin(page.url, image_url))
            if image is not None:
                result.update(await self._rehost(image, user_id) or {})
        return result

    async def _fetch_image(self, url: str) -> Fetched | None:
        """The page's image, or None if it cannot be fetched: a preview without image is still useful."""
        try:
            return await self.fetch(url, accept=lambda t: t in IMAGE_TYPES)
        except PreviewError:
            return None

    async def _rehost(self, image: Fetched, user_id: str) -> dict[str, Any] | None:
        try:
            width, height = await threads.deferToThreadPool(
                self._reactor, self._reactor.getThreadPool(), _image_size, image.body)
        except Exception:
            return None  # labelled as an image, but not one Pillow can read
        try:
            mxc = await self._store_image(user_id, image.body, image.content_type)
        except MatrixError:
            return None  # the user's media quota is full, or the image is over max_upload_size
        except Exception:
            logger.warning("Could not store a URL preview's image", exc_info=True)
            return None
        return {"og:image": mxc, "og:image:width": width, "og:image:height": height,
                "og:image:type": image.content_type, "matrix:image:size": len(image.body)}

    async def fetch(self, url: str, accept: Callable[[str], bool]) -> Fetched | None:
        """GET `url` through the guarded resolver, following checked redirects, at most `max_size` bytes.

        Returns None (without reading the body) when `accept` refuses the content type.
        """
        for _ in range(MAX_REDIRECTS + 1):
            parsed = urllib.parse.urlsplit(url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise PreviewError(400, "M_UNKNOWN", "Only http and https URLs can be previewed.")
            resolver = GuardedResolver(self._reactor.nameResolver, self._policy)
            agent = Agent(GuardedReactor(self._reactor, resolver), connectTimeout=FETCH_TIMEOUT_S)
            try:
                response = await treq.get(url, agent=agent, allow_redirects=False, timeout=FETCH_TIMEOUT_S,
                                          reactor=self._reactor, headers={b"User-Agent": [b"piman-homeserver"]})
            except net_error.DNSLookupError as e:
                if resolver.refused:
                    raise PreviewError(403, "M_UNKNOWN",
                                       "The URL resolves to an address previews may not fetch.") from e
                raise PreviewError(502, "M_UNKNOWN", "Could not resolve the URL's host.") from e
            except Exception as e:
                raise PreviewError(502, "M_UNKNOWN", "Could not fetch the URL.") from e
            if response.code in (301, 302, 303, 307, 308):
                location = response.headers.getRawHeaders(b"location", [b""])[0].decode("latin-1")
                await self._discard(response)
                url = urllib.parse.urljoin(url, location)
                continue
            if response.code != 200:
                await self._discard(response)
                raise PreviewError(502, "M_UNKNOWN", f"The URL returned HTTP {response.code}.")
            header = response.headers.getRawHeaders(b"content-type", [b""])[0].decode("latin-1")
            content_type, charset = _split_content_type(header)
            if not accept(content_type):
                await self._discard(response)
                return None
            return Fetched(url, content_type, charset, await self._read_limited(response))
        raise PreviewError(502, "M_UNKNOWN", "Too many redirects.")

    @staticmethod
    async def _discard(response: Any) -> None:
        def hang_up(_: bytes) -> None:
            raise _Discard()

        try:
            await response.collect(hang_up)
        except Exception:
            pass  # the connection is closed either way; nothing of the body is wanted

    async def _read_limited(self, response: Any) -> bytes:
        chunks: list[bytes] = []
        size = 0

        def collect(data: bytes) -> None:
            nonlocal size
            size += len(data)
            if size > self._max_size:
                raise PreviewError(502, "M_TOO_LARGE", "The page is too large to preview.")
            chunks.append(data)

        try:
            await response.collect(collect)
        except PreviewError:
            raise
        except Exception as e:
            raise PreviewError(502, "M_UNKNOWN", "The connection broke while fetching the URL.") from e
        return b"".join(chunks)
