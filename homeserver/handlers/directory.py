"""Room aliases and the published room directory of this server.

Aliases are local only (no federation yet): an alias names a room of any server, but only
aliases on our own server name can be made, read or removed here. The public directory is a
page of the rooms marked public, described from their current state; the state of a whole
page is read in one batched query, never room by room.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from homeserver.auth import Requester
from homeserver.events.event import Event, StateKey
from homeserver.events.power_levels import PowerLevels
from homeserver.events.user_ids import is_valid_server_name
from homeserver.http.errors import MatrixError, forbidden, invalid_param, not_found

if TYPE_CHECKING:
    from homeserver.server import HomeServer

MAX_ALIAS_BYTES = 255
# Pages are cut from the ordered list of public rooms; a token is the offset of its page's first room.
_SINCE_RE = re.compile(r"p([0-9]{1,9})")
MAX_PUBLIC_ROOMS_LIMIT = 1000
ALL_PUBLIC_ROOMS = 1_000_000_000  # "no limit" for the store's page query, for filtered searches

CREATE_KEY: StateKey = ("m.room.create", "")
POWER_LEVELS_KEY: StateKey = ("m.room.power_levels", "")
CANONICAL_ALIAS_KEY: StateKey = ("m.room.canonical_alias", "")
HISTORY_KEY: StateKey = ("m.room.history_visibility", "")
DIRECTORY_KEYS: list[StateKey] = [
    CREATE_KEY, ("m.room.name", ""), ("m.room.topic", ""), ("m.room.avatar", ""), CANONICAL_ALIAS_KEY,
    ("m.room.join_rules", ""), HISTORY_KEY, ("m.room.guest_access", ""),
]


def alias_in_use(alias: str) -> MatrixError:
    return MatrixError(HTTPStatus.CONFLICT, "M_UNKNOWN", f"Room alias {alias} already exists.")


def split_alias(alias: str) -> tuple[str, str]:
    """(localpart, server name) of `#localpart:server`; 400 M_INVALID_PARAM if it isn't a room alias."""
    localpart, sep, server = alias[1:].partition(":")
    if (not alias.startswith("#") or not sep or not localpart or not is_valid_server_name(server)
            or any(c.isspace() or c in "\x00#" for c in localpart)
            or len(alias.encode("utf-8")) > MAX_ALIAS_BYTES):
        raise invalid_param(f"'{alias}' is not a valid room alias (expected #localpart:server).")
    return localpart, server


def topic_text(content: Mapping[str, Any]) -> str | None:
    """The plain-text topic: the `text/plain` entry of `m.topic` if there is one, else `topic`."""
    blocks = content.get("m.topic")
    if isinstance(blocks, dict):
        blocks = blocks.get("m.text")
    if isinstance(blocks, list):
        for block in blocks:
            if isinstance(block, dict) and block.get("mimetype", "text/plain") == "text/plain" \
                    and isinstance(block.get("body"), str):
                return block["body"]
    topic = content.get("topic")
    return topic if isinstance(topic, str) else None


def directory_entry(room_id: str, state: Mapping[StateKey, Event], joined: int) -> dict[str, Any]:
    """A room as the published directory describes it (`PublishedRoomsChunk`)."""

    def content(event_type: str) -> Mapping[str, Any]:
        event = state.get((event_type, ""))
        return event.content if event is not None else {}

    entry: dict[str, Any] = {
        "room_id": room_id,
        "num_joined_members": joined,
        "world_readable": content("m.room.history_visibility").get("history_visibility") == "world_readable",
        "guest_can_join": content("m.room.guest_access").get("guest_access") == "can_join",
    }
    name = content("m.room.name").get("name")
    if isinstance(name, str) and name:
        entry["name"] = name
    topic = topic_text(content("m.room.topic"))
    if topic:
        entry["topic"] = topic
    avatar = content("m.room.avatar").get("url")
    if isinstance(avatar, str) and avatar.startswith("mxc://"):
        entry["avatar_url"] = avatar
    alias = content("m.room.canonical_alias").get("alias")
    if isinstance(alias, str) and alias.startswith("#"):
        entry["canonical_alias"] = alias
    join_rule = content("m.room.join_rules").get("join_rule")
    if isinstance(join_rule, str):
        entry["join_rule"] = join_rule
    room_type = content("m.room.create").get("type")
    if isinstance(room_type, str):
        entry["room_type"] = room_type
    return entry


def matches_search(entry: Mapping[str, Any], alt_aliases: Iterable[str], term: str) -> bool:
    needle = term.casefold()
    fields = [entry.get("name"), entry.get("topic"), entry.get("canonical_alias"), *alt_aliases]
    return any(isinstance(f, str) and needle in f.casefold() for f in fields)


def parse_since(since: str | None) -> int:
    if since is None:
        return 0
    m = _SINCE_RE.fullmatch(since)
    if m is None:
        raise invalid_param("Unknown pagination token 'since'.")
    return int(m.group(1))


class DirectoryHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self._hs = hs
        self._store = hs.store

    # -- aliases -----------------------------------------------------------

    def _local_alias(self, alias: str) -> str:
        _, server = split_alias(alias)
        if server != self._hs.hostname:
            raise invalid_param(f"Only aliases on this server ({self._hs.hostname}) can be managed here.")
        return alias

    async def create_alias(self, requester: Requester, alias: str, room_id: str) -> None:
        """Point a new local alias at a room the requester is in (admins: any room we know)."""
        self._local_alias(alias)
        if not room_id.startswith("!"):
            raise invalid_param("room_id must be a room ID (!...).")
        if await self._store.rooms.get_room(room_id) is None:
            raise not_found(f"Unknown room {room_id}.")
        if not requester.admin:
            member = await self._store.events.get_membership(room_id, requester.user_id)
            if member is None or member.membership != "join":
                raise forbidden("You must be in the room to create an alias for it.")
        if not await self._store.aliases.create_alias(alias, room_id, requester.user_id):
            raise alias_in_use(alias)

    async def resolve_alias(self, alias: str) -> dict[str, Any]:
        _, server = split_alias(alias)
        room_id = await self._store.aliases.get_alias(alias) if server == self._hs.hostname else None
        if room_id is None:
            raise not_found(f"Room alias {alias} not found.")
        return {"room_id": room_id, "servers": [self._hs.hostname]}

    async def delete_alias(self, requester: Requester, alias: str) -> None:
        """Remove an alias: its creator, a server admin or whoever may set the room's canonical alias may.

        If it was the room's canonical alias (or an alternative), that state is updated too, as far as
        the requester's power allows; the alias is removed either way, as the spec recommends.
        """
        self._local_alias(alias)
        room_id = await self._store.aliases.get_alias(alias)
        if room_id is None:
            raise not_found(f"Room alias {alias} not found.")
        creator = await self._store.aliases.get_alias_creator(alias)
        if not requester.admin and creator != requester.user_id \
                and not await self.can_send_state(room_id, requester.user_id, "m.room.canonical_alias"):
            raise forbidden("Only the alias's creator, a server admin or a room moderator may remove it.")
        if await self._store.aliases.delete_alias(alias) is None:
            raise not_found(f"Room alias {alias} not found.")  # a concurrent request removed it first
        await self.remove_from_canonical_alias(room_id, requester.user_id, {alias})

    async def remove_from_canonical_alias(self, room_id: str, sender: str, aliases: set[str]) -> None:
        """Drop `aliases` from the room's `m.room.canonical_alias`, if it names any and `sender` may."""
        state = await self._store.state.get_current_state_events(room_id, [CANONICAL_ALIAS_KEY])
        current = state.get(CANONICAL_ALIAS_KEY)
        if current is None:
            return
        content = dict(current.event.content)
        changed = content.get("alias") in aliases
        if changed:
            del content["alias"]
        alt = content.get("alt_aliases")
        if isinstance(alt, list) and any(a in aliases for a in alt):
            content["alt_aliases"] = [a for a in alt if a not in aliases]
            changed = True
        if not changed:
            return
        try:
            await self._hs.event_sender.send(room_id, sender=sender, event_type="m.room.canonical_alias",
                                             state_key="", content=content)
        except MatrixError:
            pass  # without the power to change it, the alias goes but the state stays (spec: DELETE note)

    async def local_aliases(self, user_id: str, room_id: str) -> list[str]:
        """`/rooms/{roomId}/aliases`: for members of the room, or anyone if it is world-readable."""
        await require_in_room_or_world_readable(self._store, room_id, user_id)
        return await self._store.aliases.get_aliases_for_room(room_id)

    async def can_send_state(self, room_id: str, user_id: str, event_type: str) -> bool:
        """Whether `user_id`'s power in the room's current state reaches the level for that state event."""
        version = await self._hs.event_sender.room_version(room_id)
        state = await self._store.state.get_current_state_events(room_id, [CREATE_KEY, POWER_LEVELS_KEY])
        levels = PowerLevels.from_state({k: s.event for k, s in state.items()}, version)
        return levels.user_level(user_id) >= levels.event_level(event_type, True)

    # -- visibility in the published directory ---------------------------------

    async def get_visibility(self, room_id: str) -> str:
        room = await self._store.rooms.get_room(room_id)
        if room is None:
            raise not_found(f"Unknown room {room_id}.")
        return "public" if room.is_public else "private"

    async def set_visibility(self, requester: Requester, room_id: str, visibility: str) -> None:
        """Publish or unpublish a room: server admins, or room members who may set its canonical alias."""
        if visibility not in ("public", "private"):
            raise invalid_param("visibility must be 'public' or 'private'.")
        if await self._store.rooms.get_room(room_id) is None:
            raise not_found(f"Unknown room {room_id}.")
        if not requester.admin:
            member = await self._store.events.get_membership(room_id, requester.user_id)
            if member is None or member.membership != "join" \
                    or not await self.can_send_state(room_id, requester.user_id, "m.room.canonical_alias"):
                raise forbidden("Publishing a room needs the power to set its canonical alias.")
        await self._store.rooms.set_room_is_public(room_id, visibility == "public")

    # -- the published room list ------------------------------------------------

    def check_server(self, server: str | None) -> None:
        """The directory of another server would need federation, which this server doesn't do yet."""
        if server is None or server == self._hs.hostname:
            return
        if not is_valid_server_name(server):
            raise invalid_param(f"'{server}' is not a server name.")
        raise not_found(f"The room directory of {server} can't be fetched: this server doesn't federate yet.")

    async def public_rooms(self, *, limit: int | None, since: str | None, search_term: str | None = None,
                           room_types: list[str | None] | None = None) -> dict[str, Any]:
        """A page of the published directory, most joined members first; filters apply before paging."""
        if limit is not None and limit < 0:
            raise invalid_param("limit must not be negative.")
        page_size = MAX_PUBLIC_ROOMS_LIMIT if limit is None else min(limit, MAX_PUBLIC_ROOMS_LIMIT)
        offset = parse_since(since)
        filtered = bool(search_term) or room_types is not None
        if filtered:
            # Filters read room state, so the whole (ordered) list is read in one batch and filtered here.
            room_ids, _ = await self._store.rooms.get_public_room_ids(ALL_PUBLIC_ROOMS, 0)
        else:
            room_ids, total = await self._store.rooms.get_public_room_ids(page_size, offset)
        states = await self._store.state.get_current_state_events_for_rooms(room_ids, DIRECTORY_KEYS)
        counts = await self._store.events.get_member_counts(room_ids)
        entries = []
        for room_id in room_ids:
            state = {k: s.event for k, s in states.get(room_id, {}).items()}
            entry = directory_entry(room_id, state, counts.get(room_id, {}).get("join", 0))
            if filtered and not self._wanted(entry, state, search_term, room_types):
                continue
            entries.append(entry)
        if filtered:
            total = len(entries)
            entries = entries[offset:offset + page_size]
        result: dict[str, Any] = {"chunk": entries, "total_room_count_estimate": total}
        if offset + len(entries) < total and entries:
            result["next_batch"] = f"p{offset + len(entries)}"
        if offset > 0:
            result["prev_batch"] = f"p{max(0, offset - page_size)}"
        return result

    @staticmethod
    def _wanted(entry: Mapping[str, Any], state: Mapping[StateKey, Event], search_term: str | None,
                room_types: list[str | None] | None) -> bool:
        if room_types is not None and entry.get("room_type") not in room_types:
            return False
        if search_term:
            canonical = state.get(CANONICAL_ALIAS_KEY)
            alt = canonical.content.get("alt_aliases") if canonical is not None else None
            return matches_search(entry, alt if isinstance(alt, list) else [], search_term)
        return True


async def require_in_room_or_world_readable(store: Any, room_id: str, user_id: str) -> None:
    """403 unless the user is joined to the room or its history is world-readable."""
    state = await store.state.get_current_state_events(room_id, [("m.room.member", user_id), HISTORY_KEY])
    member = state.get(("m.room.member", user_id))
    if member is not None and member.event.membership == "join":
        return
    history = state.get(HISTORY_KEY)
    if history is not None and history.event.content.get("history_visibility") == "world_readable":
        return
    raise forbidden(f"You are not in the room {room_id}.")
