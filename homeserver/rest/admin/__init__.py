"""The admin API: Synapse's `/_synapse/admin/...` routes that admin tools expect, and piman's own
`/_piman/admin/v1/...` for what Synapse has no route for (residency, holds, audit log).

Every module of this package that defines `servlets(hs)` is served; each servlet checks the
requester with `require_admin`, and records what it changed in the audit log.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

from homeserver.auth import Requester
from homeserver.http.errors import forbidden, invalid_param
from homeserver.http.parse import query_int
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer


async def require_admin(hs: "HomeServer", request: PimanRequest) -> Requester:
    """The requester, if a server admin; 403 M_FORBIDDEN otherwise (401 without a valid token)."""
    requester = await hs.auth.get_user_by_req(request)
    if not requester.admin:
        raise forbidden("You are not a server admin.")
    return requester


# Synapse's admin lists page by offset: `from` and `limit`.
DEFAULT_PAGE = 100
MAX_PAGE = 1000


def page_of(request: PimanRequest) -> tuple[int, int]:
    """(offset, limit) of an admin list request; 400 M_INVALID_PARAM when out of range."""
    offset = query_int(request, "from", 0)
    limit = query_int(request, "limit", DEFAULT_PAGE)
    if offset < 0 or not 0 < limit <= MAX_PAGE:
        raise invalid_param(f"'from' must be >= 0 and 'limit' between 1 and {MAX_PAGE}.")
    return offset, limit


def admin_servlets(hs: "HomeServer") -> list[Any]:
    found: list[Any] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "servlets"):
            found.extend(module.servlets(hs))
    return found
