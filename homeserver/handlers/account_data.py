"""Account data (global and per room), room tags, read markers and the ignore list.

Every write moves the "account_data" stream and wakes the owner's /sync. `m.fully_read` and
`m.push_rules` are managed by the server: clients change them through `/read_markers` and
`/pushrules`, never through the account-data API.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import MatrixError, bad_json, invalid_param
from homeserver.push.rules import PushRuleset

if TYPE_CHECKING:
    from homeserver.server import HomeServer

STREAM = "account_data"
SERVER_MANAGED_TYPES = frozenset({"m.fully_read", "m.push_rules"})
IGNORED_USER_LIST = "m.ignored_user_list"
TAG = "m.tag"
FULLY_READ = "m.fully_read"
PUSH_RULES = "m.push_rules"
MAX_TAG_BYTES = 255


def check_room_id(room_id: str) -> None:
    if not room_id.startswith("!") or len(room_id) < 2:
        raise invalid_param(f"{room_id} is not a valid room ID.")


def validate_ignored_user_list(content: dict[str, Any]) -> None:
    ignored = content.get("ignored_users")
    if not isinstance(ignored, dict):
        raise bad_json("'ignored_users' must be an object mapping user IDs to objects.")
    for user_id, value in ignored.items():
        if not user_id.startswith("@") or ":" not in user_id:
            raise bad_json(f"'{user_id}' in 'ignored_users' is not a user ID.")
        if not isinstance(value, dict):
            raise bad_json(f"'ignored_users.{user_id}' must be an object.")


def push_rules_content(ruleset: PushRuleset) -> dict[str, Any]:
    return {"global": ruleset.to_json()}


class AccountDataHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store.account_data
        self._notifier = hs.notifier
        self._ignored_cache: dict[str, frozenset[str]] = {}

    def current_position(self) -> int:
        return self._store.stream.get_current_token()

    def _changed(self, user_id: str, position: int) -> None:
        self._notifier.notify(STREAM, position, users=[user_id])

    async def set_account_data(self, user_id: str, room_id: str | None, data_type: str, content: dict[str, Any]) -> None:
        """Set data from a client: refuses server-managed types (405) and malformed ignore lists."""
        if data_type in SERVER_MANAGED_TYPES:
            raise MatrixError(HTTPStatus.METHOD_NOT_ALLOWED, "M_BAD_JSON",
                              f"Cannot set {data_type} through this API: it is managed by the server.")
        if room_id is not None:
            check_room_id(room_id)
        if data_type == IGNORED_USER_LIST and room_id is None:
            validate_ignored_user_list(content)
        position = await self._store.put(user_id, room_id, data_type, content)
        if data_type == IGNORED_USER_LIST and room_id is None:
            self._ignored_cache.pop(user_id, None)
        self._changed(user_id, position)

    async def get_account_data(self, user_id: str, room_id: str | None, data_type: str) -> dict[str, Any] | None:
        if room_id is not None:
            check_room_id(room_id)
        elif data_type == PUSH_RULES:
            return push_rules_content(await self._hs.push_rules_handler.get_ruleset(user_id))
        return await self._store.get(user_id, room_id, data_type)

    # -- tags --------------------------------------------------------------

    async def get_tags(self, user_id: str, room_id: str) -> dict[str, Any]:
        check_room_id(room_id)
        content = await self._store.get(user_id, room_id, TAG)
        tags = (content or {}).get("tags")
        return tags if isinstance(tags, dict) else {}

    async def add_tag(self, user_id: str, room_id: str, tag: str, body: dict[str, Any]) -> None:
        check_room_id(room_id)
        if not tag or len(tag.encode("utf-8")) > MAX_TAG_BYTES:
            raise invalid_param(f"A tag name must be 1 to {MAX_TAG_BYTES} bytes long.")
        order = body.get("order")
        if order is not None and (isinstance(order, bool) or not isinstance(order, (int, float))):
            raise bad_json("'order' must be a number.")

        def add(content: dict[str, Any] | None) -> dict[str, Any]:
            tags = dict((content or {}).get("tags") or {})
            tags[tag] = body
            return {**(content or {}), "tags": tags}

        position, _ = await self._store.update(user_id, room_id, TAG, add)
        self._changed(user_id, position)

    async def remove_tag(self, user_id: str, room_id: str, tag: str) -> None:
        check_room_id(room_id)

        def remove(content: dict[str, Any] | None) -> dict[str, Any]:
            tags = dict((content or {}).get("tags") or {})
            tags.pop(tag, None)
            return {**(content or {}), "tags": tags}

        position, _ = await self._store.update(user_id, room_id, TAG, remove)
        self._changed(user_id, position)

    # -- server-managed types ------------------------------------------------

    async def set_fully_read(self, user_id: str, room_id: str, event_id: str) -> None:
        """Move the read marker (callers have checked membership and the event)."""
        position = await self._store.put(user_id, room_id, FULLY_READ, {"event_id": event_id})
        self._changed(user_id, position)

    def push_rules_changed(self, user_id: str, position: int) -> None:
        self._changed(user_id, position)

    # -- readers for /sync and the rest of the server ---------------------------

    async def get_ignored_users(self, user_id: str) -> frozenset[str]:
        """Whom `user_id` ignores: their events and invites must not reach them."""
        cached = self._ignored_cache.get(user_id)
        if cached is not None:
            return cached
        content = await self._store.get(user_id, None, IGNORED_USER_LIST)
        ignored = (content or {}).get("ignored_users")
        result = frozenset(ignored) if isinstance(ignored, dict) else frozenset()
        self._ignored_cache[user_id] = result
        return result

    async def get_sync_account_data(self, user_id: str, from_pos: int, to_pos: int, *, initial: bool
                                    ) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        """Account data events changed in (from_pos, to_pos]: (global events, {room_id: events}).

        An initial sync (`from_pos` 0) gives everything. `m.push_rules` is included on an initial
        sync and whenever the push rules changed in the range.
        """
        changes = await self._store.get_changes(user_id, from_pos, to_pos)
        global_events = [{"type": t, "content": c} for t, c in changes.global_data.items()]
        push_rules = await self._hs.push_rules_handler.get_ruleset_if_changed(user_id, from_pos, to_pos, initial=initial)
        if push_rules is not None:
            global_events.append({"type": PUSH_RULES, "content": push_rules_content(push_rules)})
        room_events = {
            room_id: [{"type": t, "content": c} for t, c in data.items()]
            for room_id, data in changes.room_data.items()
        }
        return global_events, room_events
