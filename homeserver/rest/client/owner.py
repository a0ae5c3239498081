"""Endpoints under `/user/{userId}/...`: only that user may use them."""

from __future__ import annotations

from typing import Any

from homeserver.auth import Requester
from homeserver.http.errors import forbidden
from homeserver.http.site import PimanRequest


async def require_owner(hs: Any, request: PimanRequest, user_id: str, what: str) -> Requester:
    """The authenticated requester, who must be `user_id` (403 otherwise)."""
    requester = await hs.auth.get_user_by_req(request, allow_guest=True)
    if requester.user_id != user_id:
        raise forbidden(f"Cannot {what} for other users.")
    return requester
