"""`unsigned.prev_content`: what a state event replaced, so clients can say "Alice changed the topic
from X to Y" or "Bob changed their display name".

The previous value is the state before the event, read from the state group of its (first) prev
event: a page of events costs one look-up per distinct group and one batched event fetch. A
previous event that expired (retention) gives its pruned content, as the purge leaves it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from homeserver.events.redaction import prune_event_dict

if TYPE_CHECKING:
    from homeserver.server import HomeServer


async def add_prev_content(hs: "HomeServer", pairs: Sequence[tuple[Any, dict[str, Any]]]) -> None:
    """Fill `unsigned.prev_content` (and `prev_sender`) in already formatted state events, in place."""
    store = hs.store
    state_pairs = [(s, out) for s, out in pairs if s.event.is_state() and s.event.prev_event_ids]
    if not state_pairs:
        return
    prev_ids = sorted({s.event.prev_event_ids[0] for s, _ in state_pairs})
    groups = await store.state.get_state_groups_for_events(prev_ids)
    states = {g: await store.state.get_state_for_group(g) for g in set(groups.values()) if g is not None}
    wanted: dict[str, str] = {}
    for stored, _ in state_pairs:
        group = groups.get(stored.event.prev_event_ids[0])
        previous = states.get(group, {}).get(stored.event.state_tuple()) if group is not None else None
        if previous is not None and previous != stored.event.event_id:
            wanted[stored.event.event_id] = previous
    if not wanted:
        return
    found = await store.events.get_events(sorted(set(wanted.values())))
    fetched = {s.event.event_id: s for s in await hs.retention.prune_expired(list(found.values()))}
    for stored, out in state_pairs:
        prev = fetched.get(wanted.get(stored.event.event_id, ""))
        if prev is None:
            continue
        pdu = prune_event_dict(prev.event.room_version, prev.event.pdu) if prev.redacted_by else prev.event.pdu
        unsigned = out.setdefault("unsigned", {})
        unsigned["prev_content"] = pdu.get("content", {})
        unsigned["prev_sender"] = prev.event.sender
        unsigned["replaces_state"] = prev.event.event_id
