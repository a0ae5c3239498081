"""Small HTML pages for browsers, such as the consent page that Element opens from an error.

The router answers JSON; a servlet serving a page writes it here and returns `(status, None)`
(as media downloads do), so the router leaves the finished response alone. Pages are
self-contained and locked down: no scripts, no external resources (a third-party call would
leak who reads the page), no framing (an "I accept" button must not be clickjacked), and no
Referer, since the page's own address carries the link that authenticates its reader.
"""

from __future__ import annotations

from html import escape

from homeserver.http.site import PimanRequest

CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5;"
    "color:#1b1d22}h1{font-size:1.5rem}button{font-size:1rem;padding:.5rem 1.5rem;cursor:pointer}"
    ".note{color:#5c6370}"
)


def respond_html(request: PimanRequest, code: int, title: str, body_html: str, *, lang: str = "en") -> None:
    """Send a complete page; `body_html` must be escaped already (html.escape); `title` and `lang` are escaped here."""
    if request.finished or request._disconnected:
        return
    page = (
        f'<!DOCTYPE html>\n<html lang="{escape(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body_html}</main></body></html>\n"
    ).encode("utf-8")
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
    request.setHeader(b"Content-Security-Policy", CONTENT_SECURITY_POLICY.encode("ascii"))
    request.setHeader(b"X-Frame-Options", b"DENY")
    request.setHeader(b"Referrer-Policy", b"no-referrer")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.setHeader(b"Cache-Control", b"no-cache, no-store, must-revalidate")
    request.setHeader(b"Content-Length", str(len(page)).encode("ascii"))
    request.write(page)
    request.finish()

