"""The user directory: one organisation is one server, so every active local user is visible to
every other local user, matched on user ID and display name.

Display names are sealed at rest, so matching happens here rather than in SQL.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from homeserver.handlers.profile import AVATAR_URL, DISPLAYNAME

if TYPE_CHECKING:
    from homeserver.server import HomeServer

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
_WORD_SPLIT = re.compile(r"[^\w]+", re.UNICODE)


def _words(text: str) -> list[str]:
    return [w for w in _WORD_SPLIT.split(text.casefold()) if w]


def rank(search_words: list[str], user_id: str, display_name: str | None) -> int | None:
    """None if some search word is in neither the user ID nor the name; else lower is better:
    0 when every word starts a word of the name or user ID, 1 when some only occur inside one."""
    haystack = f"{user_id} {display_name or ''}".casefold()
    tokens = _words(haystack)
    score = 0
    for word in search_words:
        if word not in haystack:
            return None
        if not any(t.startswith(word) for t in tokens):
            score = 1
    return score


class UserDirectoryHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._store = hs.store.profiles

    async def search(self, search_term: str, limit: int) -> dict[str, Any]:
        limit = max(0, min(limit, MAX_LIMIT))
        words = _words(search_term) or [search_term.casefold().strip()]
        found = []
        for user_id, profile in await self._store.get_directory((DISPLAYNAME, AVATAR_URL)):
            name = profile.get(DISPLAYNAME)
            score = rank(words, user_id, name if isinstance(name, str) else None)
            if score is not None:
                # Better matches first, then people who have a name or avatar, then by user ID.
                found.append(((score, not profile, user_id), user_id, profile))
        found.sort(key=lambda item: item[0])
        results = []
        for _, user_id, profile in found[:limit]:
            entry: dict[str, Any] = {"user_id": user_id}
            if isinstance(profile.get(DISPLAYNAME), str):
                entry["display_name"] = profile[DISPLAYNAME]
            if isinstance(profile.get(AVATAR_URL), str):
                entry["avatar_url"] = profile[AVATAR_URL]
            results.append(entry)
        return {"results": results, "limited": len(found) > limit}
