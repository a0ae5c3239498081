"""`POST /user_directory/search`."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.handlers.user_directory import DEFAULT_LIMIT
from homeserver.http.errors import invalid_param
from homeserver.http.parse import read_json_object
from homeserver.http.router import Servlet, client_patterns
from homeserver.http.site import PimanRequest

if TYPE_CHECKING:
    from homeserver.server import HomeServer


class UserDirectorySearchServlet(Servlet):
    PATTERNS = client_patterns("/user_directory/search")

    async def on_POST(self, request: PimanRequest) -> tuple[int, Any]:
        await self.hs.auth.get_user_by_req(request)
        body = read_json_object(request)
        search_term = body.str("search_term")
        limit = body.int("limit", DEFAULT_LIMIT)
        if limit < 0:
            raise invalid_param("'limit' can't be negative.")
        return HTTPStatus.OK, await self.hs.user_directory_handler.search(search_term, limit)


def servlets(hs: "HomeServer") -> list[Any]:
    return [UserDirectorySearchServlet(hs)]
