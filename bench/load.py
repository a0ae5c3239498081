"""The load: the same client-server requests, in the same order, against either server.

Three users on one server: alice sends, bob receives by long-polling /sync,
carol is the user in many rooms whose initial /sync is timed. All timings are
wall-clock on the client, from just before a request is written to just after
its answer is read.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from bench import procstat
from bench.client import CS, Connection, login, quote, register

PASSWORD = "bench password 0123456789"
WARM_UP_SENDS = 10
PARK_DELAY = 0.1  # time for bob's /sync to reach the server and start waiting


@dataclass
class LoadSizes:
    sends: int = 500
    delivery_samples: int = 100
    rooms: int = 50
    messages_per_room: int = 20
    initial_sync_repeats: int = 5


@dataclass
class Figures:
    """What one server did under the load; times in seconds, sizes in bytes."""

    rss_fresh: int = 0
    rss_after: int = 0
    send_latencies: list[float] = field(default_factory=list)
    send_wall: float = 0.0
    send_cpu: float = 0.0
    delivery_latencies: list[float] = field(default_factory=list)
    initial_sync_times: list[float] = field(default_factory=list)
    initial_sync_bytes: int = 0

    def summary(self) -> dict[str, float]:
        return {
            "sends_per_s": len(self.send_latencies) / self.send_wall,
            "send_p50_ms": percentile(self.send_latencies, 50) * 1000,
            "send_p95_ms": percentile(self.send_latencies, 95) * 1000,
            "send_cpu_pct": 100 * self.send_cpu / self.send_wall,
            "delivery_p50_ms": percentile(self.delivery_latencies, 50) * 1000,
            "delivery_p95_ms": percentile(self.delivery_latencies, 95) * 1000,
            "initial_sync_ms": statistics.median(self.initial_sync_times) * 1000,
            "initial_sync_kb": self.initial_sync_bytes / 1000,
            "rss_fresh_mb": self.rss_fresh / 1e6,
            "rss_after_mb": self.rss_after / 1e6,
        }


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: an observed value, no interpolation."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil
    return ordered[int(rank) - 1]


class User:
    def __init__(self, base_url: str, username: str) -> None:
        self.username = username
        self.user_id, token = register(base_url, username, PASSWORD)
        self.conn = Connection(base_url, token)

    def send(self, room_id: str, body: str) -> str:
        txn = uuid.uuid4().hex
        path = f"{CS}/rooms/{quote(room_id)}/send/m.room.message/{txn}"
        return self.conn.call("PUT", path, {"msgtype": "m.text", "body": body})["event_id"]

    def create_room(self, invite: list[str], name: str) -> str:
        return self.conn.call("POST", f"{CS}/createRoom",
                              {"preset": "private_chat", "name": name, "invite": invite})["room_id"]

    def join(self, room_id: str) -> None:
        self.conn.call("POST", f"{CS}/join/{quote(room_id)}", {})


def run_load(base_url: str, pid: int, sizes: LoadSizes, log: Any = print) -> Figures:
    figures = Figures()
    time.sleep(2)  # let start-up work finish before the "fresh" reading
    figures.rss_fresh = procstat.rss_bytes(pid)
    alice, bob, carol = (User(base_url, f"{name}{uuid.uuid4().hex[:6]}") for name in ("alice", "bob", "carol"))
    try:
        room_id = alice.create_room([bob.user_id], "bench")
        bob.join(room_id)

        log(f"  {sizes.sends} sequential sends ...")
        _sends(alice, room_id, sizes.sends, pid, figures)
        log(f"    {len(figures.send_latencies) / figures.send_wall:.1f}/s, "
            f"p50 {percentile(figures.send_latencies, 50) * 1000:.1f} ms, "
            f"server CPU {100 * figures.send_cpu / figures.send_wall:.0f}% of a core")
        log(f"  {sizes.delivery_samples} deliveries to a long-polling /sync ...")
        figures.delivery_latencies = _deliveries(alice, bob, room_id, sizes.delivery_samples)
        log(f"    p50 {percentile(figures.delivery_latencies, 50) * 1000:.1f} ms")
        log(f"  {sizes.rooms} rooms x {sizes.messages_per_room} messages for the initial /sync ...")
        _fill_rooms(alice, carol, sizes.rooms, sizes.messages_per_room)
        figures.initial_sync_times, figures.initial_sync_bytes = _initial_syncs(
            base_url, carol.username, sizes.initial_sync_repeats, sizes.rooms)
        log("  initial /sync times (ms): " + ", ".join(f"{t * 1000:.0f}" for t in figures.initial_sync_times))
        figures.rss_after = procstat.rss_bytes(pid)
    finally:
        for user in (alice, bob, carol):
            user.conn.close()
    return figures


def _sends(alice: User, room_id: str, count: int, pid: int, figures: Figures) -> None:
    for i in range(WARM_UP_SENDS):
        alice.send(room_id, f"warm-up {i}")
    cpu_before = procstat.cpu_seconds(pid)
    started = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        alice.send(room_id, f"message {i}")
        figures.send_latencies.append(time.perf_counter() - t0)
    figures.send_wall = time.perf_counter() - started
    figures.send_cpu = procstat.cpu_seconds(pid) - cpu_before


def _sync_filter(room_id: str) -> str:
    """Only the room's timeline: other wake-ups (presence, receipts) are not deliveries."""
    return json.dumps({
        "room": {"rooms": [room_id], "timeline": {"limit": 10}},
        "presence": {"types": []},
    }, separators=(",", ":"))


def _deliveries(alice: User, bob: User, room_id: str, samples: int) -> list[float]:
    sync_filter = _sync_filter(room_id)
    since = bob.conn.call("GET", f"{CS}/sync", query={"filter": sync_filter, "timeout": 0})["next_batch"]
    latencies = []
    for i in range(samples):
        marker = f"delivery {i} {uuid.uuid4().hex}"
        arrived: dict[str, Any] = {}
        waiter = threading.Thread(target=_wait_for, args=(bob, room_id, since, sync_filter, marker, arrived))
        waiter.start()
        time.sleep(PARK_DELAY)
        t0 = time.perf_counter()
        alice.send(room_id, marker)
        waiter.join(60)
        if "at" not in arrived:
            raise RuntimeError(f"bob's /sync did not deliver message {i}: {arrived.get('error')}")
        latencies.append(arrived["at"] - t0)
        since = arrived["since"]
    return latencies


def _wait_for(bob: User, room_id: str, since: str, sync_filter: str, marker: str, out: dict[str, Any]) -> None:
    """Long-poll until `marker` shows up in the room's timeline; note when."""
    try:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            answer = bob.conn.call("GET", f"{CS}/sync",
                                   query={"since": since, "timeout": 30000, "filter": sync_filter})
            at = time.perf_counter()
            since = answer["next_batch"]
            events = answer.get("rooms", {}).get("join", {}).get(room_id, {}).get("timeline", {}).get("events", [])
            if any(e.get("content", {}).get("body") == marker for e in events):
                out.update(at=at, since=since)
                return
        out["error"] = "timed out"
    except Exception as e:  # reported by the caller
        out["error"] = repr(e)


def _fill_rooms(alice: User, carol: User, rooms: int, messages: int) -> None:
    for r in range(rooms):
        room_id = alice.create_room([carol.user_id], f"room {r}")
        carol.join(room_id)
        for m in range(messages):
            alice.send(room_id, f"room {r} message {m}")


def _initial_syncs(base_url: str, username: str, repeats: int, rooms: int) -> tuple[list[float], int]:
    """Initial /sync of `repeats` fresh devices (logged in first, so logins aren't timed).

    Each is a new device's first sync, as when a user signs in on a new phone;
    distinct devices also keep any per-request response cache out of the figures.
    """
    tokens = [login(base_url, username, PASSWORD, f"initial sync {i}") for i in range(repeats)]
    times, size = [], 0
    for token in tokens:
        conn = Connection(base_url, token)
        try:
            t0 = time.perf_counter()
            status, answer, size = conn.request("GET", f"{CS}/sync")
            times.append(time.perf_counter() - t0)
        finally:
            conn.close()
        if status != 200:
            raise RuntimeError(f"initial /sync -> {status}: {answer}")
        joined = len(answer.get("rooms", {}).get("join", {}))
        if joined != rooms:
            raise RuntimeError(f"initial /sync shows {joined} joined rooms, expected {rooms}")
    return times, size
