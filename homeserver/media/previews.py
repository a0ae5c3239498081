"""URL previews: fetch a page on a user's behalf and return its OpenGraph data.

Off unless the admin enables it. Because the fetch comes from inside the organisation's network,
hosts resolving to private, loopback or link-local addresses are refused unless whitelisted, and
every redirect hop is checked again.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from html.parser import HTMLParser
from typing import Any

import treq
from twisted.internet import threads

MAX_REDIRECTS = 5
FETCH_TIMEOUT_S = 10.0
OG_PREFIXES = ("og:",)


class PreviewError(Exception):
    def __init__(self, code: int, errcode: str, msg: str) -> None:
        super().__init__(msg)
        self.code, self.errcode, self.msg = code, errcode, msg


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


class UrlPreviewer:
    def __init__(self, reactor: Any, *, whitelist: list[str], max_size: int) -> None:
        self._reactor = reactor
        self._whitelist = [ipaddress.ip_network(cidr, strict=False) for cidr in whitelist]
        self._max_size = max_size

    def _allowed(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if any(ip in net for net in self._whitelist):
            return True
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return self._allowed(ip.ipv4_mapped)
        return ip.is_global and not ip.is_multicast

    async def _check_host(self, url: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise PreviewError(400, "M_UNKNOWN", "Only http and https URLs can be previewed.")
        try:
            infos = await threads.deferToThreadPool(
                self._reactor, self._reactor.getThreadPool(),
                socket.getaddrinfo, parsed.hostname, parsed.port or 0, 0, socket.SOCK_STREAM,
            )
        except socket.gaierror as e:
            raise PreviewError(502, "M_UNKNOWN", "Could not resolve the URL's host.") from e
        for info in infos:
            if not self._allowed(ipaddress.ip_address(info[4][0].split("%")[0])):
                raise PreviewError(403, "M_UNKNOWN", "The URL resolves to an address previews may not fetch.")

    async def preview(self, url: str) -> dict[str, Any]:
        """Fetch `url` (following checked redirects) and return its OpenGraph fields."""
        for _ in range(MAX_REDIRECTS + 1):
            await self._check_host(url)
            try:
                response = await treq.get(url, allow_redirects=False, timeout=FETCH_TIMEOUT_S,
                                          reactor=self._reactor, headers={b"User-Agent": [b"piman-homeserver"]})
            except Exception as e:
                raise PreviewError(502, "M_UNKNOWN", "Could not fetch the URL.") from e
            if response.code in (301, 302, 303, 307, 308):
                location = response.headers.getRawHeaders(b"location", [b""])[0].decode("latin-1")
                await response.collect(lambda _: None)
                url = urllib.parse.urljoin(url, location)
                continue
            if response.code != 200:
                await response.collect(lambda _: None)
                raise PreviewError(502, "M_UNKNOWN", f"The URL returned HTTP {response.code}.")
            body = await self._read_limited(response)
            content_type = response.headers.getRawHeaders(b"content-type", [b""])[0].decode("latin-1")
            if "html" not in content_type:
                return {}
            charset = "utf-8"
            for part in content_type.split(";")[1:]:
                name, _, value = part.strip().partition("=")
                if name.lower() == "charset" and value:
                    charset = value.strip('"')
            try:
                text = body.decode(charset, "replace")
            except LookupError:
                text = body.decode("utf-8", "replace")
            result = parse_open_graph(text)
            return result
        raise PreviewError(502, "M_UNKNOWN", "Too many redirects.")

    async def _read_limited(self, response: Any) -> bytes:
        chunks: list[bytes] = []
        size = 0

        def collect(data: bytes) -> None:
            nonlocal size
            size += len(data)
            if size > self._max_size:
                raise PreviewError(502, "M_TOO_LARGE", "The page is too large to preview.")
            chunks.append(data)

        await response.collect(collect)
        return b"".join(chunks)
