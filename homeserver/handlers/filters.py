"""Stored filters: upload, download, and resolving `/sync`'s `filter` parameter (an ID or inline JSON).

Filters never change once stored, so the parsed `Filter` objects are cached.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from homeserver.filtering import DEFAULT_FILTER, Filter, FilterError
from homeserver.http.errors import bad_json, not_found, not_json
from storage.stores.cache import LruCache

if TYPE_CHECKING:
    from homeserver.server import HomeServer

FILTER_CACHE_SIZE = 10_000


def parse_filter(definition: Any) -> Filter:
    """A `Filter`, or 400 M_BAD_JSON naming the offending field."""
    try:
        return Filter(definition)
    except FilterError as e:
        raise bad_json(f"Invalid filter: {e}") from None


class FilterHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._store = hs.store.filters
        self._cache: LruCache[tuple[str, int], Filter] = LruCache(FILTER_CACHE_SIZE)

    async def add_filter(self, user_id: str, definition: dict[str, Any]) -> str:
        parse_filter(definition)
        return str(await self._store.add_filter(user_id, definition))

    async def get_filter(self, user_id: str, filter_id: str) -> Filter:
        """The user's filter `filter_id`; 404 if there is none (or the ID is not one of ours)."""
        if not filter_id.isdigit() or len(filter_id) > 18:
            raise not_found("No such filter.")
        key = (user_id, int(filter_id))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        definition = await self._store.get_filter(user_id, key[1])
        if definition is None:
            raise not_found("No such filter.")
        parsed = Filter(definition)
        self._cache.set(key, parsed)
        return parsed

    async def resolve(self, user_id: str, param: str | None) -> Filter:
        """`/sync`'s `filter` query parameter: inline JSON if it starts with '{', else a filter ID."""
        if param is None:
            return DEFAULT_FILTER
        if param.startswith("{"):
            try:
                definition = json.loads(param)
            except ValueError:
                raise not_json("The inline filter is not valid JSON.") from None
            return parse_filter(definition)
        return await self.get_filter(user_id, param)
