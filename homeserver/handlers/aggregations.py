"""Bundled aggregations: `unsigned["m.relations"]` on events served to clients.

The spec ("Aggregations of child events") has the server summarise an event's children:
`m.thread` (latest reply, reply count, whether the user took part), `m.replace` (the most recent
valid edit) and `m.reference` (the referencing event IDs). Annotations are not aggregated.

A whole page is bundled at once, with a bounded number of queries whatever its size: one for
the thread summaries (one per distinct retention cutoff among the page's rooms), one for edits
and references, one fetch of the child events to show, one visibility check per room that has
such children, and one more round (without threads) for the children of the threads' latest
events. Children from ignored users are left out, and children the user may not see (history
visibility) are never shown. Expired children (retention) are neither shown nor counted nor
referenced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from homeserver.handlers.client_format import client_event

if TYPE_CHECKING:
    from homeserver.server import HomeServer
    from storage.stores.event_fetch import StoredEvent
    from storage.stores.relations import ChildRelation, ThreadSummary

THREAD = "m.thread"
REPLACE = "m.replace"
REFERENCE = "m.reference"
ENCRYPTED = "m.room.encrypted"


async def bundle_aggregations(hs: "HomeServer", user_id: str, stored_events: Iterable["StoredEvent"], *,
                              include_room_id: bool = True, threads: bool = True) -> dict[str, dict[str, Any]]:
    """event_id -> its `m.relations` for those of `stored_events` that have any.

    `include_room_id` formats the bundled events like their parents (sync omits room IDs).
    """
    parents = {s.event.event_id: s for s in stored_events if not s.event.is_state()}  # state gets none (spec)
    if not parents:
        return {}
    ignored = await hs.account_data_handler.get_ignored_users(user_id)
    relations = hs.store.relations
    cutoffs = await hs.retention.cutoffs({s.event.room_id for s in parents.values()})
    summaries: dict[str, ThreadSummary] = {}
    if threads:
        # Expired replies (retention) don't count: one query per distinct cutoff (rooms with the
        # same policy share one), the summary rows as they are where nothing expires.
        by_cutoff: dict[int | None, list[str]] = {}
        for parent_id, stored in parents.items():
            by_cutoff.setdefault(cutoffs.get(stored.event.room_id), []).append(parent_id)
        for cutoff, ids in by_cutoff.items():
            summaries.update(await relations.get_thread_summaries(ids, user_id, exclude_senders=ignored,
                                                                  not_before_ts=cutoff))
    edits: dict[str, list[ChildRelation]] = {}
    references: dict[str, list[str]] = {}
    for child in await relations.get_child_relations(parents, (REPLACE, REFERENCE)):
        cutoff = cutoffs.get(parents[child.relates_to_id].event.room_id)
        if cutoff is not None and child.origin_server_ts < cutoff:
            continue  # expired (edits would be left out below anyway, unseen)
        if child.rel_type == REFERENCE and child.sender not in ignored:
            references.setdefault(child.relates_to_id, []).append(child.event_id)
        elif child.rel_type == REPLACE and _may_replace(parents[child.relates_to_id], child):
            edits.setdefault(child.relates_to_id, []).append(child)

    wanted = [s.latest_event_id for s in summaries.values()] + [c.event_id for cs in edits.values() for c in cs]
    shown = await _visible_events(hs, user_id, wanted)
    latest_edits: dict[str, Any] = {}
    for parent_id, candidates in edits.items():
        # The most recent by origin_server_ts, ties broken by the larger event ID (spec).
        for child in sorted(candidates, key=lambda c: (c.origin_server_ts, c.event_id), reverse=True):
            stored = shown.get(child.event_id)
            if stored is not None and _is_valid_edit(stored):
                latest_edits[parent_id] = stored
                break
    thread_latest = {root: shown[s.latest_event_id] for root, s in summaries.items() if s.latest_event_id in shown}
    nested = await bundle_aggregations(hs, user_id, thread_latest.values(), include_room_id=include_room_id,
                                       threads=False) if thread_latest else {}

    now = hs.clock.time_msec()
    result: dict[str, dict[str, Any]] = {}
    for parent_id in parents:
        bundled: dict[str, Any] = {}
        latest = thread_latest.get(parent_id)
        if latest is not None:
            summary = summaries[parent_id]
            bundled[THREAD] = {
                "latest_event": client_event(latest, now, include_room_id=include_room_id,
                                             relations=nested.get(latest.event.event_id)),
                "count": summary.count,
                "current_user_participated": summary.participated,
            }
        if parent_id in latest_edits:
            bundled[REPLACE] = client_event(latest_edits[parent_id], now, include_room_id=include_room_id)
        if parent_id in references:
            bundled[REFERENCE] = {"chunk": [{"event_id": event_id} for event_id in references[parent_id]]}
        if bundled:
            result[parent_id] = bundled
    return result


async def add_bundled_aggregations(hs: "HomeServer", user_id: str, pairs: Iterable[tuple[Any, dict[str, Any]]], *,
                                   include_room_id: bool = True) -> None:
    """Bundle into events already formatted, given as (stored event, its client format) pairs.

    For responses built room by room (/sync), so that all rooms are bundled in one go.
    """
    pairs = list(pairs)
    bundled = await bundle_aggregations(hs, user_id, [stored for stored, _ in pairs], include_room_id=include_room_id)
    for stored, formatted in pairs:
        relations = bundled.get(stored.event.event_id)
        if relations:
            formatted.setdefault("unsigned", {})["m.relations"] = relations


def _may_replace(parent: "StoredEvent", child: "ChildRelation") -> bool:
    """The spec's validity rules for an edit that can be checked without loading it."""
    event = parent.event
    if parent.redacted_by is not None:
        return False  # a redacted event's edits are not bundled (spec)
    own = event.content.get("m.relates_to")
    if isinstance(own, dict) and own.get("rel_type") == REPLACE:
        return False  # an edit cannot be edited
    return child.sender == event.sender and child.event_type == event.type and not event.is_state()


def _is_valid_edit(stored: "StoredEvent") -> bool:
    event = stored.event
    if event.is_state():
        return False
    # An encrypted edit carries m.new_content in its ciphertext, which the server cannot check.
    return event.type == ENCRYPTED or isinstance(event.content.get("m.new_content"), dict)


async def _visible_events(hs: "HomeServer", user_id: str, event_ids: list[str]) -> dict[str, "StoredEvent"]:
    """The events among `event_ids` that the user may see, grouped by room for the visibility check."""
    if not event_ids:
        return {}
    fetched = await hs.store.events.get_events(event_ids)
    by_room: dict[str, list[StoredEvent]] = {}
    for stored in fetched.values():
        if stored.rejected_reason is None:
            by_room.setdefault(stored.event.room_id, []).append(stored)
    shown: dict[str, StoredEvent] = {}
    for room_id, events in by_room.items():
        membership = await hs.store.events.get_membership(room_id, user_id)
        visible = await hs.visibility.filter_events(
            user_id, events, current_membership=membership.membership if membership else None)
        shown.update((s.event.event_id, s) for s in visible)
    return shown
