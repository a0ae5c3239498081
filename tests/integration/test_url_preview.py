"""URL previews: off by default, private ranges refused, OpenGraph read from a real local web server."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.web import resource, server

PAGE = (b'<html><head><title>Fallback</title><meta property="og:title" content="Piman &amp; co">'
        b'<meta property="og:description" content="A test page"></head><body>hi</body></html>')


class _Page(resource.Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        if request.path == b"/redirect":
            request.redirect(b"/page")
            return b""
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        return PAGE


@pytest.fixture
def web(reactor: Any) -> Any:
    port = reactor.listenTCP(0, server.Site(_Page()), interface="127.0.0.1")
    yield f"http://127.0.0.1:{port.getHost().port}"
    port.stopListening()


async def test_preview_is_off_by_default(server: Any, web: str) -> None:
    alice = await server.register("alice")
    r = await alice.get(f"/_matrix/client/v1/media/preview_url?url={web}/page")
    assert r.code == 404 and r.json["errcode"] == "M_UNRECOGNIZED"


@pytest.mark.hs_config({"url_preview_enabled": True})
async def test_loopback_refused_without_whitelist(server: Any, web: str) -> None:
    alice = await server.register("alice")
    r = await alice.get(f"/_matrix/client/v1/media/preview_url?url={web}/page")
    assert r.code == 403


@pytest.mark.hs_config({"url_preview_enabled": True, "url_preview_ip_range_whitelist": ["127.0.0.0/8"]})
async def test_whitelisted_preview_reads_open_graph(server: Any, web: str) -> None:
    alice = await server.register("alice")
    for prefix in ("/_matrix/client/v1/media", "/_matrix/media/v3"):
        r = await alice.get(f"{prefix}/preview_url?url={web}/redirect")
        assert r.code == 200, r.json
        assert r.json["og:title"] == "Piman & co" and r.json["og:description"] == "A test page"


@pytest.mark.hs_config({"url_preview_enabled": True, "url_preview_ip_range_whitelist": ["127.0.0.0/8"]})
async def test_preview_needs_auth_and_http_url(server: Any, web: str) -> None:
    assert (await server.client().get(f"/_matrix/client/v1/media/preview_url?url={web}/page")).code == 401
    alice = await server.register("alice")
    assert (await alice.get("/_matrix/client/v1/media/preview_url?url=file:///etc/passwd")).code == 400
