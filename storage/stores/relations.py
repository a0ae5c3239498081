"""Relations between events (edits, reactions, references, threads), for /relations and /threads.

The event writer records `content["m.relates_to"]` of each accepted timeline event here,
and keeps one summary row per thread (reply count, latest reply) so /threads and the
bundled thread summaries are one indexed query each. A redaction removes the redacted
event's relation, as its content (and so the relation) is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Iterable, Literal

from homeserver.events.event import Event
from storage.database import Database, Transaction
from storage.stores.timeline import stream_window
from storage.stores.event_fetch import MAX_BIND, EventFetcher, StoredEvent, chunks, placeholders
from storage.stores.statement_batch import Statement

THREAD = "m.thread"


@dataclass(frozen=True)
class ThreadSummary:
    count: int
    latest_event_id: str
    latest_stream_ordering: int
    participated: bool  # the asking user sent the root or a reply


@dataclass(frozen=True)
class ChildRelation:
    """One stored relation, with what bundling it needs without loading the child event."""

    event_id: str
    relates_to_id: str
    rel_type: str
    event_type: str
    sender: str
    origin_server_ts: int
    stream_ordering: int


def relation_of(event: Event) -> tuple[str, str] | None:
    """(rel_type, target event id) of the event's `m.relates_to`, if it has a well-formed one."""
    relates_to = event.content.get("m.relates_to")
    if not isinstance(relates_to, dict):
        return None
    rel_type, target = relates_to.get("rel_type"), relates_to.get("event_id")
    if isinstance(rel_type, str) and isinstance(target, str) and target != event.event_id:
        return rel_type, target
    return None


def relation_statements(event: Event, stream_ordering: int) -> list[Statement]:
    """The writes recording a new event's relation (and its thread's summary); [] if none."""
    relation = relation_of(event)
    if relation is None:
        return []
    rel_type, target = relation
    statements: list[Statement] = [
        (
            "INSERT INTO event_relations"
            " (event_id, relates_to_id, rel_type, event_type, room_id, sender, stream_ordering)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event.event_id, target, rel_type, event.type, event.room_id, event.sender, stream_ordering),
        )
    ]
    if rel_type == THREAD:
        statements.append(
            (
                "INSERT INTO threads"
                " (thread_id, room_id, latest_event_id, latest_stream_ordering, reply_count)"
                " VALUES (?, ?, ?, ?, 1) ON CONFLICT (thread_id) DO UPDATE SET"
                " reply_count = threads.reply_count + 1,"
                " latest_event_id = CASE WHEN excluded.latest_stream_ordering"
                "  > threads.latest_stream_ordering THEN excluded.latest_event_id"
                "  ELSE threads.latest_event_id END,"
                " latest_stream_ordering = CASE WHEN excluded.latest_stream_ordering"
                "  > threads.latest_stream_ordering THEN excluded.latest_stream_ordering"
                "  ELSE threads.latest_stream_ordering END",
                (target, event.room_id, event.event_id, stream_ordering),
            )
        )
    return statements


def remove_relation_txn(txn: Transaction, event_id: str) -> None:
    """Forget the event's relation (it was redacted), fixing up its thread's summary."""
    txn.execute(
        "DELETE FROM event_relations WHERE event_id = ? RETURNING relates_to_id, rel_type",
        (event_id,),
    )
    row = txn.fetchone()
    if row is None or row[1] != THREAD:
        return
    thread_id = row[0]
    txn.execute(
        "SELECT event_id, stream_ordering, COUNT(*) OVER () FROM event_relations"
        " WHERE relates_to_id = ? AND rel_type = ? ORDER BY stream_ordering DESC LIMIT 1",
        (thread_id, THREAD),
    )
    latest = txn.fetchone()
    if latest is None:
        txn.execute("DELETE FROM threads WHERE thread_id = ?", (thread_id,))
    else:
        txn.execute(
            "UPDATE threads SET latest_event_id = ?, latest_stream_ordering = ?, reply_count = ?"
            " WHERE thread_id = ?",
            (latest[0], int(latest[1]), int(latest[2]), thread_id),
        )


class RelationStore:
    def __init__(self, db: Database, fetcher: EventFetcher) -> None:
        self._db = db
        self._fetcher = fetcher

    async def get_relations(
        self,
        event_id: str,
        *,
        room_id: str | None = None,
        rel_type: str | None = None,
        event_type: str | None = None,
        from_stream: int | None = None,
        to_stream: int | None = None,
        limit: int = 50,
        direction: Literal["b", "f"] = "b",
        max_depth: int = 1,
    ) -> list[StoredEvent]:
        """Events relating to `event_id`, in stream order (newest first for "b").

        Stream positions as in the timeline queries: "b" returns orderings <= `from_stream`
        and > `to_stream`; "f" returns orderings > `from_stream` and <= `to_stream`.
        `max_depth` > 1 adds events relating to those events, and so on, up to that many
        relations away from `event_id`; the other filters apply at every depth.
        """
        prefix = ""
        args: list[object] = []
        if max_depth > 1:
            prefix = (
                "WITH RECURSIVE related (event_id, depth) AS ("
                " SELECT event_id, 1 FROM event_relations WHERE relates_to_id = ?"
                " UNION SELECT r.event_id, related.depth + 1 FROM event_relations AS r"
                " JOIN related ON r.relates_to_id = related.event_id WHERE related.depth < ?) "
            )
            args += [event_id, max_depth]
            conditions = ["event_id IN (SELECT event_id FROM related)"]
        else:
            conditions = ["relates_to_id = ?"]
            args.append(event_id)
        for column, value in (("room_id", room_id), ("rel_type", rel_type), ("event_type", event_type)):
            if value is not None:
                conditions.append(f"{column} = ?")
                args.append(value)
        order = stream_window(direction, from_stream, to_stream, conditions, args)
        rows = await self._db.execute(
            "get_relations",
            f"{prefix}SELECT event_id FROM event_relations WHERE {' AND '.join(conditions)}"
            f" ORDER BY stream_ordering {order} LIMIT ?",
            *args,
            limit,
        )
        ids = [row[0] for row in rows]
        events = await self._fetcher.get_events(ids)
        return [events[i] for i in ids if i in events]

    async def get_child_relations(
        self, event_ids: Iterable[str], rel_types: Collection[str]
    ) -> list[ChildRelation]:
        """The relations of types `rel_types` pointing at any of `event_ids`, in stream order."""
        return await self._db.run_interaction(
            "get_child_relations",
            self._child_relations_txn,
            list(dict.fromkeys(event_ids)),
            sorted(rel_types),
        )

    @staticmethod
    def _child_relations_txn(
        txn: Transaction, event_ids: list[str], rel_types: list[str]
    ) -> list[ChildRelation]:
        found: list[ChildRelation] = []
        if not rel_types:
            return found
        for chunk in chunks(event_ids, MAX_BIND - len(rel_types)):
            txn.execute(
                "SELECT r.event_id, r.relates_to_id, r.rel_type, r.event_type, r.sender,"
                " e.origin_server_ts, r.stream_ordering FROM event_relations AS r"
                " JOIN events AS e ON e.event_id = r.event_id"
                f" WHERE r.relates_to_id IN ({placeholders(len(chunk))})"
                f" AND r.rel_type IN ({placeholders(len(rel_types))})",
                [*chunk, *rel_types],
            )
            found.extend(
                ChildRelation(e, target, rel, etype, sender, int(ts), int(so))
                for e, target, rel, etype, sender, ts, so in txn.fetchall()
            )
        found.sort(key=lambda r: r.stream_ordering)
        return found

    async def get_thread_roots(
        self,
        room_id: str,
        *,
        include: Literal["all", "participated"] = "all",
        user_id: str | None = None,
        from_stream: int | None = None,
        limit: int = 50,
    ) -> list[tuple[str, int]]:
        """(thread root id, stream ordering of its latest reply), latest activity first.

        `from_stream` pages on: only threads whose latest reply is at or before it. With
        ``include="participated"``, only threads `user_id` started or replied in.
        """
        conditions = ["t.room_id = ?"]
        args: list[object] = [room_id]
        if from_stream is not None:
            conditions.append("t.latest_stream_ordering <= ?")
            args.append(from_stream)
        if include == "participated":
            if user_id is None:
                raise ValueError("include='participated' needs user_id")
            conditions.append(
                "(EXISTS (SELECT 1 FROM events AS root WHERE root.event_id = t.thread_id"
                " AND root.sender = ?) OR EXISTS (SELECT 1 FROM event_relations AS r"
                " WHERE r.relates_to_id = t.thread_id AND r.rel_type = ? AND r.sender = ?))"
            )
            args.extend((user_id, THREAD, user_id))
        rows = await self._db.execute(
            "get_thread_roots",
            f"SELECT t.thread_id, t.latest_stream_ordering FROM threads AS t"
            f" WHERE {' AND '.join(conditions)}"
            " ORDER BY t.latest_stream_ordering DESC LIMIT ?",
            *args,
            limit,
        )
        return [(thread_id, int(position)) for thread_id, position in rows]

    async def get_thread_summaries(
        self,
        event_ids: Iterable[str],
        user_id: str | None = None,
        *,
        exclude_senders: Collection[str] = (),
        not_before_ts: int | None = None,
    ) -> dict[str, ThreadSummary]:
        """Summaries of the threads rooted at any of `event_ids` (others absent).

        Replies from `exclude_senders` (users the asking user ignores) are not counted and are
        never the latest event; a thread with only such replies is absent. So are replies sent
        before `not_before_ts` (expired: retention), for the user's participation too.
        """
        return await self._db.run_interaction(
            "get_thread_summaries",
            self._thread_summaries_txn,
            list(dict.fromkeys(event_ids)),
            user_id,
            sorted(exclude_senders),
            not_before_ts,
        )

    @staticmethod
    def _thread_summaries_txn(
        txn: Transaction, event_ids: list[str], user_id: str | None, exclude_senders: list[str],
        not_before_ts: int | None,
    ) -> dict[str, ThreadSummary]:
        result: dict[str, ThreadSummary] = {}
        unexpired, unexpired_args = ("", []) if not_before_ts is None else (
            " JOIN events AS e ON e.event_id = r.event_id AND e.origin_server_ts >= ?", [not_before_ts])
        for chunk in chunks(event_ids, MAX_BIND - len(exclude_senders) - 3):
            marks = placeholders(len(chunk))
            if exclude_senders or not_before_ts is not None:
                # The summary rows count every reply: recount from the relations themselves.
                excluded = f" AND r.sender NOT IN ({placeholders(len(exclude_senders))})" if exclude_senders else ""
                txn.execute(
                    "SELECT thread_id, reply_count, event_id, stream_ordering FROM ("
                    " SELECT r.relates_to_id AS thread_id, r.event_id, r.stream_ordering,"
                    "  COUNT(*) OVER (PARTITION BY r.relates_to_id) AS reply_count,"
                    "  ROW_NUMBER() OVER (PARTITION BY r.relates_to_id ORDER BY r.stream_ordering DESC)"
                    "  AS row_number"
                    f" FROM event_relations AS r{unexpired} WHERE r.relates_to_id IN ({marks}) AND r.rel_type = ?"
                    f"{excluded}) AS replies WHERE row_number = 1",
                    [*unexpired_args, *chunk, THREAD, *exclude_senders],
                )
            else:
                txn.execute(
                    "SELECT thread_id, reply_count, latest_event_id, latest_stream_ordering"
                    f" FROM threads WHERE thread_id IN ({marks})",
                    chunk,
                )
            rows = txn.fetchall()
            participated: set[str] = set()
            if user_id is not None and rows:
                txn.execute(
                    f"SELECT DISTINCT r.relates_to_id FROM event_relations AS r{unexpired}"
                    f" WHERE r.relates_to_id IN ({marks}) AND r.rel_type = ? AND r.sender = ?"
                    " UNION SELECT event_id FROM events"
                    f" WHERE event_id IN ({marks}) AND sender = ?",
                    [*unexpired_args, *chunk, THREAD, user_id, *chunk, user_id],
                )
                participated = {row[0] for row in txn.fetchall()}
            for thread_id, count, latest_id, latest_position in rows:
                result[thread_id] = ThreadSummary(
                    int(count), latest_id, int(latest_position), thread_id in participated
                )
        return result
