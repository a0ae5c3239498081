"""Events as clients see them (the client-server "ClientEvent" format).

Redacted events are shown pruned with `unsigned.redacted_because`; the sending device gets its
`transaction_id` back so it can match its local echo.
"""

from __future__ import annotations

from typing import Any

from homeserver.events.redaction import prune_event_dict


def client_event(stored: Any, now_ms: int, *, txn_id: str | None = None, redaction: Any = None,
                 include_room_id: bool = True, relations: dict[str, Any] | None = None) -> dict[str, Any]:
    """`relations` is the event's bundled aggregations (see `aggregations.bundle_aggregations`)."""
    event = stored.event
    pdu = prune_event_dict(event.room_version, event.pdu) if stored.redacted_by else event.pdu
    out: dict[str, Any] = {
        "event_id": event.event_id,
        "type": event.type,
        "sender": event.sender,
        "origin_server_ts": event.origin_server_ts,
        "content": pdu.get("content", {}),
    }
    if include_room_id:
        out["room_id"] = event.room_id
    if event.state_key is not None:
        out["state_key"] = event.state_key
    if event.redacts is not None and not event.room_version.updated_redaction_rules:
        out["redacts"] = event.redacts
    elif event.type == "m.room.redaction" and event.redacts is not None:
        out["redacts"] = event.redacts  # v11+: also at the top level, for older clients
    unsigned: dict[str, Any] = {"age": max(0, now_ms - event.origin_server_ts)}
    if txn_id is not None:
        unsigned["transaction_id"] = txn_id
    if stored.redacted_by:
        unsigned["redacted_because"] = redaction if redaction is not None else {"event_id": stored.redacted_by}
    if relations:
        unsigned["m.relations"] = relations
    out["unsigned"] = unsigned
    return out

