"""URL previews: off by default, private ranges refused (on the address actually connected to),
OpenGraph read from a real local web server, and its image re-hosted as the user's own media."""

from __future__ import annotations

import io
import os
from typing import Any, Iterator

import pytest
from PIL import Image
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IHostnameResolver, IHostResolution
from twisted.web import resource, server
from zope.interface import implementer

from homeserver.media.guarded_resolver import AddressPolicy, GuardedResolver
from tests.integration.harness import SERVER_NAME

PREVIEW = "/_matrix/client/v1/media/preview_url"
PAGE = (b'<html><head><title>Fallback</title><meta property="og:title" content="Piman &amp; co">'
        b'<meta property="og:description" content="A test page"></head><body>hi</body></html>')
WHITELISTED = {"url_preview_enabled": True, "url_preview_ip_range_whitelist": ["127.0.0.0/8"]}


def _png(size: tuple[int, int], noise: bool = False) -> bytes:
    out = io.BytesIO()
    image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)) if noise else Image.new("RGB", size, "red")
    image.save(out, "PNG")
    return out.getvalue()


IMAGE = _png((40, 30))
BIG_IMAGE = _png((100, 100), noise=True)  # ~30 KB: over the 8K spider limit of one test


def _page_with_image(src: str) -> bytes:
    return (f'<html><head><meta property="og:title" content="With image">'
            f'<meta property="og:image" content="{src}"><meta property="og:image:width" content="9999">'
            f'</head></html>').encode()


class _Site(resource.Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[bytes] = []

    def render_GET(self, request: Any) -> bytes:
        self.requests.append(request.path)
        path = request.path
        if path == b"/redirect":
            request.redirect(b"/page")
            return b""
        images = {b"/img.png": IMAGE, b"/big.png": BIG_IMAGE}
        if path in images:
            request.setHeader(b"Content-Type", b"image/png")
            return images[path]
        if path == b"/img.svg":
            request.setHeader(b"Content-Type", b"image/svg+xml")
            return b"<svg xmlns='http://www.w3.org/2000/svg'/>"
        if path == b"/not-an-image.png":
            request.setHeader(b"Content-Type", b"image/png")
            return b"this is not a png"
        if path == b"/missing.png":
            request.setResponseCode(404)
            return b"gone"
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        pages = {b"/with-image": "/img.png", b"/missing-image": "/missing.png", b"/svg-image": "img.svg",
                 b"/big-image": "/big.png", b"/bad-image": "/not-an-image.png"}
        if path in pages:
            return _page_with_image(pages[path])
        return PAGE


@pytest.fixture
def site() -> _Site:
    return _Site()


@pytest.fixture
def web(reactor: Any, site: _Site) -> Iterator[str]:
    port = reactor.listenTCP(0, server.Site(site), interface="127.0.0.1")
    yield f"http://127.0.0.1:{port.getHost().port}"
    port.stopListening()


async def test_preview_is_off_by_default(server: Any, web: str) -> None:
    alice = await server.register("alice")
    r = await alice.get(f"{PREVIEW}?url={web}/page")
    assert r.code == 404 and r.json["errcode"] == "M_UNRECOGNIZED"


@pytest.mark.hs_config({"url_preview_enabled": True})
async def test_loopback_refused_without_whitelist(server: Any, web: str, site: _Site) -> None:
    alice = await server.register("alice")
    r = await alice.get(f"{PREVIEW}?url={web}/page")
    assert r.code == 403
    assert site.requests == []


@pytest.mark.hs_config({"url_preview_enabled": True})
async def test_name_resolving_to_loopback_refused(server: Any, web: str, site: _Site) -> None:
    alice = await server.register("alice")
    by_name = web.replace("127.0.0.1", "localhost")
    r = await alice.get(f"{PREVIEW}?url={by_name}/page")
    assert r.code == 403 and "may not fetch" in r.json["error"], r.json
    assert site.requests == []


@pytest.mark.hs_config(WHITELISTED)
async def test_name_resolving_to_whitelisted_range_allowed(server: Any, web: str) -> None:
    alice = await server.register("alice")
    r = await alice.get(f"{PREVIEW}?url={web.replace('127.0.0.1', 'localhost')}/page")
    assert r.code == 200 and r.json["og:title"] == "Piman & co", r.json


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        pass


@implementer(IHostnameResolver)
class _RebindingDns:
    """`rebind.test` answers 127.0.0.2 the first time it is looked up, 127.0.0.1 afterwards: a
    DNS rebinding attack. Other names go to the real resolver."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.lookups = 0

    def resolveHostName(self, receiver: Any, hostName: str, portNumber: int = 0, addressTypes: Any = None,
                        transportSemantics: str = "TCP") -> Any:
        if hostName != "rebind.test":
            return self._real.resolveHostName(receiver, hostName, portNumber, addressTypes, transportSemantics)
        self.lookups += 1
        receiver.resolutionBegan(_Resolution(hostName))
        receiver.addressResolved(IPv4Address("TCP", "127.0.0.2" if self.lookups == 1 else "127.0.0.1", portNumber))
        receiver.resolutionComplete()
        return receiver


@pytest.mark.hs_config({"url_preview_enabled": True, "url_preview_ip_range_whitelist": ["127.0.0.2/32"]})
async def test_dns_rebinding_cannot_reach_a_refused_address(server: Any, web: str, site: _Site,
                                                            reactor: Any) -> None:
    """Only 127.0.0.2 is allowed. The server must connect to the address it checked (where nothing
    listens), never to the 127.0.0.1 a second lookup would give."""
    alice = await server.register("alice")
    real = reactor.nameResolver
    dns = _RebindingDns(real)
    reactor.installNameResolver(dns)
    try:
        r = await alice.get(f"{PREVIEW}?url={web.replace('127.0.0.1', 'rebind.test')}/page")
    finally:
        reactor.installNameResolver(real)
    assert r.code == 502, r.json
    assert site.requests == []
    assert dns.lookups == 1


def test_guarded_resolver_drops_refused_addresses() -> None:
    """A name with both a public and a private address: only the public one is passed on."""
    received: list[str] = []

    @implementer(IHostnameResolver)
    class Both:
        def resolveHostName(self, receiver: Any, hostName: str, portNumber: int = 0, addressTypes: Any = None,
                            transportSemantics: str = "TCP") -> Any:
            receiver.resolutionBegan(_Resolution(hostName))
            for ip in ("93.184.216.34", "10.1.2.3", "169.254.169.254", "127.0.0.1"):
                receiver.addressResolved(IPv4Address("TCP", ip, portNumber))
            receiver.resolutionComplete()
            return receiver

    class Receiver:
        def resolutionBegan(self, resolution: Any) -> None:
            pass

        def addressResolved(self, address: Any) -> None:
            received.append(address.host)

        def resolutionComplete(self) -> None:
            received.append("done")

    guarded = GuardedResolver(Both(), AddressPolicy(["10.0.0.0/8"]))
    guarded.resolveHostName(Receiver(), "mixed.test", 80)
    assert received == ["93.184.216.34", "10.1.2.3", "done"]
    assert guarded.refused == ["169.254.169.254", "127.0.0.1"]


@pytest.mark.hs_config(WHITELISTED)
async def test_whitelisted_preview_reads_open_graph(server: Any, web: str) -> None:
    alice = await server.register("alice")
    for prefix in ("/_matrix/client/v1/media", "/_matrix/media/v3"):
        r = await alice.get(f"{prefix}/preview_url?url={web}/redirect")
        assert r.code == 200, r.json
        assert r.json["og:title"] == "Piman & co" and r.json["og:description"] == "A test page"
        assert not any(k.startswith("og:image") for k in r.json)


@pytest.mark.hs_config(WHITELISTED)
async def test_preview_needs_auth_and_http_url(server: Any, web: str) -> None:
    assert (await server.client().get(f"{PREVIEW}?url={web}/page")).code == 401
    alice = await server.register("alice")
    assert (await alice.get(f"{PREVIEW}?url=file:///etc/passwd")).code == 400


@pytest.mark.hs_config(WHITELISTED)
async def test_og_image_is_rehosted_as_the_users_media(server: Any, web: str, site: _Site) -> None:
    alice = await server.register("alice")
    r = await alice.get(f"{PREVIEW}?url={web}/with-image")
    assert r.code == 200, r.json
    assert r.json["og:title"] == "With image"
    mxc = r.json["og:image"]
    assert mxc.startswith(f"mxc://{SERVER_NAME}/")
    assert (r.json["og:image:width"], r.json["og:image:height"]) == (40, 30)  # measured, not the page's 9999
    assert r.json["og:image:type"] == "image/png" and r.json["matrix:image:size"] == len(IMAGE)
    media_id = mxc.rsplit("/", 1)[1]
    download = await alice.get(f"/_matrix/client/v1/media/download/{SERVER_NAME}/{media_id}")
    assert download.code == 200 and download.raw == IMAGE
    owned = await server.hs.media_repository.list_user_media(alice.user_id)
    assert [m.media_id for m in owned] == [media_id]
    assert owned[0].content_type == "image/png"
    # The same user asking again gets the cached preview: no second fetch, no second copy.
    again = await alice.get(f"{PREVIEW}?url={web}/with-image")
    assert again.json == r.json
    assert site.requests.count(b"/img.png") == 1
    assert len(await server.hs.media_repository.list_user_media(alice.user_id)) == 1


@pytest.mark.hs_config(WHITELISTED)
async def test_direct_image_url(server: Any, web: str) -> None:
    alice = await server.register("alice")
    r = await alice.get(f"{PREVIEW}?url={web}/img.png")
    assert r.code == 200, r.json
    assert r.json["og:image"].startswith("mxc://") and r.json["og:image:width"] == 40


@pytest.mark.hs_config({**WHITELISTED, "max_spider_size": "8K"})
async def test_failed_image_fetches_just_omit_the_image(server: Any, web: str) -> None:
    alice = await server.register("alice")
    for page in ("missing-image", "svg-image", "big-image", "bad-image"):
        r = await alice.get(f"{PREVIEW}?url={web}/{page}")
        assert r.code == 200, (page, r.json)
        assert r.json == {"og:title": "With image"}, (page, r.json)
    assert await server.hs.media_repository.list_user_media(alice.user_id) == []


@pytest.mark.hs_config({"url_preview_enabled": True, "url_preview_ip_range_whitelist": ["127.0.0.0/8"],
                        "media": {"user_quota": 10}})
async def test_image_over_quota_is_omitted(server: Any, web: str) -> None:
    alice = await server.register("alice")
    r = await alice.get(f"{PREVIEW}?url={web}/with-image")
    assert r.code == 200 and r.json == {"og:title": "With image"}, r.json
