"""Benchmark: purging expired events while a client sends (issue 6, retention).

    .venv/bin/python bench/purge.py [--events 100000] [--rooms 50] [--purge-after 60] [--json out.json]

1. A private PostgreSQL cluster (tests/postgres_cluster.provision, or PIMAN_TEST_POSTGRES_DSN) and
   a database for piman; `piman init`'s config with retention on (default max_lifetime 1d), one
   purge job every --purge-after seconds, and the metrics resource.
2. The expired events are written before piman starts, by an in-process HomeServer on the same
   database and keys whose clock runs two days behind: real sends through the event sender
   (authorisation, push rules, one transaction each, a client transaction ID each), --rooms
   rooms of two members, so the purge also has push actions and transaction IDs to delete.
   Sent "two days ago", they have expired when piman starts.
3. `piman run` as a subprocess. A client (bench/client.py) sends messages one after the other,
   --gap-ms apart, into a room of its own; a second thread polls /_synapse/metrics for
   piman_retention_events_purged_total. Sends before the purge's first batch are the baseline;
   sends between its first and last batch are "during the purge".
4. Prints send latency p50/p99 without and during the purge, and the ratio (target: p99 during
   the purge <= 2x the p99 without).

The machine's other load skews the figures: compare within one run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402

from bench.client import CS, Connection, quote, register  # noqa: E402
from bench.load import percentile  # noqa: E402
from bench.servers import PimanServer  # noqa: E402
from tests.postgres_cluster import provision  # noqa: E402

DAY_MS = 86_400_000
WARM_UP_SENDS = 50
PURGE_TIMEOUT_S = 1800


class RetentionPimanServer(PimanServer):
    """piman with retention on, a purge job every `purge_after` seconds, and metrics served."""

    def __init__(self, workdir: Path, database: dict[str, Any], piman: Path, purge_after: int) -> None:
        super().__init__(workdir, database, piman)
        self.purge_after = purge_after
        self.config_path = workdir / "data" / "homeserver.yaml"

    def configure(self) -> list[str]:
        if not self.config_path.exists():  # written once: the events are stored with its keys
            super().configure()
            config = yaml.safe_load(self.config_path.read_text())
            config["listeners"][0]["resources"][0]["names"] = ["client", "metrics"]
            config["retention"] = {
                "enabled": True,
                "default_policy": {"max_lifetime": "1d"},
                "purge_jobs": [{"interval": f"{self.purge_after}s"}],
            }
            self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        return [str(self.piman), "run", "--config", str(self.config_path)]


def populate(config_path: Path, events: int, rooms: int) -> float:
    """Write `events` messages sent two days ago, through an in-process HomeServer; returns seconds taken."""
    from twisted.internet import defer, reactor

    from config import load_config
    from homeserver.clock import Clock
    from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
    from homeserver.handlers.room_creation import RoomSpec
    from homeserver.server import HomeServer

    class TwoDaysAgo(Clock):
        def time(self) -> float:
            return super().time() - 2 * DAY_MS / 1000

        def time_msec(self) -> int:
            return super().time_msec() - 2 * DAY_MS

    done = {"sent": 0}

    async def run() -> None:
        config = load_config(str(config_path))
        hs = HomeServer(config, reactor)
        hs.clock = TwoDaysAgo(reactor)
        await hs.setup()
        try:
            alice = await hs.registration_handler.register("oldalice", None)
            bob = await hs.registration_handler.register("oldbob", None)
            version = KNOWN_ROOM_VERSIONS[config.default_room_version]
            room_ids = []
            for _ in range(rooms):
                room_id, _ = await hs.room_creation_handler.create(
                    alice, RoomSpec(version=version, preset="public_chat", is_public=False))
                await hs.membership_handler.send_membership(room_id, bob, bob, "join")
                room_ids.append(room_id)

            async def fill(room_id: str, count: int) -> None:
                for i in range(count):
                    await hs.event_sender.send(
                        room_id, sender=alice, event_type="m.room.message",
                        content={"msgtype": "m.text", "body": f"an old message, number {i}"},
                        txn_key=(alice, "OLDDEVICE", f"{room_id}/{i}"))
                    done["sent"] += 1
                    if done["sent"] % 10_000 == 0:
                        print(f"    {done['sent']} events written", flush=True)

            per_room, extra = divmod(events, rooms)
            await defer.gatherResults([defer.ensureDeferred(fill(r, per_room + (i < extra)))
                                       for i, r in enumerate(room_ids)], consumeErrors=True)
        finally:
            await hs.close()

    outcome: dict[str, Any] = {}
    started = time.monotonic()

    def finished(result: Any) -> None:
        outcome["result"] = result
        reactor.stop()

    reactor.callWhenRunning(lambda: defer.ensureDeferred(run()).addBoth(finished))
    reactor.run()
    if isinstance(outcome.get("result"), BaseException) or hasattr(outcome.get("result"), "raiseException"):
        outcome["result"].raiseException()
    return time.monotonic() - started


def purged_total(base_url: str) -> float:
    """piman_retention_events_purged_total, read from the server's Prometheus metrics."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=10)
    try:
        conn.request("GET", "/_synapse/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    for line in text.splitlines():
        if line.startswith("piman_retention_events_purged_total "):
            return float(line.split()[1])
    raise RuntimeError("piman_retention_events_purged_total is not in the metrics")


def measure(base_url: str, events: int, gap_s: float) -> dict[str, Any]:
    """Send until the purge has finished; split the latencies by the purge's window."""
    username = f"sender{uuid.uuid4().hex[:6]}"
    _, token = register(base_url, username, "bench password")
    conn = Connection(base_url, token)
    room_id = conn.call("POST", f"{CS}/createRoom", {"preset": "private_chat"})["room_id"]
    samples: list[tuple[float, float]] = []  # (when the send started, latency)
    window: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + PURGE_TIMEOUT_S
        previous_poll = time.monotonic()
        while not stop.is_set() and time.monotonic() < deadline:
            now = time.monotonic()
            total = purged_total(base_url)
            if total > 0 and "start" not in window:
                window["start"] = previous_poll  # it began after the previous poll saw nothing
            if total >= events:
                window["end"] = now
                window["total"] = total
                return
            previous_poll = now
            time.sleep(0.25)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for i in range(WARM_UP_SENDS):
            conn.call("PUT", f"{CS}/rooms/{quote(room_id)}/send/m.room.message/w{i}",
                      {"msgtype": "m.text", "body": "w"})
        i = 0
        while watcher.is_alive():
            i += 1
            t0 = time.monotonic()
            conn.call("PUT", f"{CS}/rooms/{quote(room_id)}/send/m.room.message/m{i}",
                      {"msgtype": "m.text", "body": f"message {i}"})
            samples.append((t0, time.monotonic() - t0))
            time.sleep(gap_s)
    finally:
        stop.set()
        conn.close()
    if "end" not in window:
        raise RuntimeError(f"the purge did not finish within {PURGE_TIMEOUT_S}s")
    before = [latency for started, latency in samples if started < window["start"]]
    during = [latency for started, latency in samples if window["start"] <= started <= window["end"]]
    return {"before": before, "during": during, "purge_s": window["end"] - window["start"], "purged": window["total"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="expired events to purge (default 100000)")
    parser.add_argument("--rooms", type=int, default=50, help="rooms they are spread over (default 50)")
    parser.add_argument("--purge-after", type=int, default=60,
                        help="seconds from start-up to the purge (the job's interval; default 60)")
    parser.add_argument("--gap-ms", type=float, default=10, help="pause between two sends (default 10 ms)")
    parser.add_argument("--piman", type=Path, default=Path(sys.executable).with_name("piman"),
                        help="the piman console script (default: next to this Python)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the config and the server log")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="piman-purge-bench-"))
    try:
        with provision() as postgres:
            dbname = f"bench_purge_{uuid.uuid4().hex[:8]}"
            postgres.execute_admin(
                f"CREATE DATABASE \"{dbname}\" ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
            server = RetentionPimanServer(workdir, {**postgres.connect_args, "database": dbname}, args.piman,
                                          args.purge_after)
            server.configure()
            print(f"writing {args.events} events sent two days ago in {args.rooms} rooms (in-process) ...")
            print(f"  done in {populate(server.config_path, args.events, args.rooms):.0f}s")
            server.start()
            started = time.monotonic()
            try:
                print(f"piman serving (pid {server.pid}); sending every {args.gap_ms:.0f} ms;"
                      f" the purge starts {args.purge_after}s after start-up ...")
                figures = measure(server.base_url, args.events, args.gap_ms / 1000)
            finally:
                code = server.stop()
                if code not in (0, None):
                    print(server.log_tail(), file=sys.stderr)
            print(f"  purge of {figures['purged']:.0f} events took {figures['purge_s']:.1f}s"
                  f" ({figures['purged'] / figures['purge_s']:.0f} events/s),"
                  f" {time.monotonic() - started:.0f}s after start-up")
    finally:
        if args.keep:
            print(f"work directory kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    before, during = figures["before"], figures["during"]
    report = {
        "events_purged": figures["purged"],
        "purge_seconds": round(figures["purge_s"], 1),
        "sends_without_purge": len(before),
        "sends_during_purge": len(during),
        "p50_without_ms": round(percentile(before, 50) * 1000, 2),
        "p99_without_ms": round(percentile(before, 99) * 1000, 2),
        "p50_during_ms": round(percentile(during, 50) * 1000, 2),
        "p99_during_ms": round(percentile(during, 99) * 1000, 2),
    }
    report["p99_ratio"] = round(report["p99_during_ms"] / report["p99_without_ms"], 2)
    print()
    for key, value in report.items():
        print(f"  {key:24} {value}")
    met = report["p99_ratio"] <= 2
    print(f"\ntarget p99 during the purge <= 2x without: {'met' if met else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
