"""Benchmark piman against Synapse: the same load, the same PostgreSQL, side by side.

    .venv/bin/python bench/compare.py [--only synapse|piman] [--json out.json]

Starts a private PostgreSQL cluster (or uses PIMAN_TEST_POSTGRES_DSN), then
each server in turn, alone on the machine, on a database of its own; runs the
load of bench/load.py against it; stops it; and prints both servers' figures
with the ratios piman/synapse and the targets of issue 3. Absolute figures
drift from run to run and machine to machine: compare within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load import LoadSizes, run_load  # noqa: E402
from bench.procstat import OtherLoad, machine_busy  # noqa: E402
from bench.servers import BenchServer, PimanServer, SynapseServer  # noqa: E402
from tests.postgres_cluster import provision  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SERVERS = ("synapse", "piman")
QUIET = 0.15  # share of the machine's CPU others may use before we warn

# (key, label, format, target as (description, check of piman's figure against synapse's))
Target = tuple[str, Callable[[float, float], bool]]
ROWS: list[tuple[str, str, str, Target | None]] = [
    ("sends_per_s", "sequential sends /s", "{:.1f}", (">= 10x", lambda p, s: p >= 10 * s)),
    ("send_p50_ms", "send p50 (ms)", "{:.1f}", None),
    ("send_p95_ms", "send p95 (ms)", "{:.1f}", None),
    ("send_cpu_pct", "server CPU while sending (% of a core)", "{:.0f}", None),
    ("delivery_p50_ms", "delivery to long-poll /sync p50 (ms)", "{:.1f}", ("<= 5 ms", lambda p, s: p <= 5)),
    ("delivery_p95_ms", "delivery to long-poll /sync p95 (ms)", "{:.1f}", None),
    ("initial_sync_ms", "initial /sync, median (ms)", "{:.0f}", ("<= 1/5", lambda p, s: p <= s / 5)),
    ("initial_sync_kb", "initial /sync size (KB)", "{:.0f}", None),
    ("rss_fresh_mb", "RSS fresh (MB)", "{:.0f}", None),
    ("rss_after_mb", "RSS after the run (MB)", "{:.0f}", ("< synapse", lambda p, s: p < s)),
    ("other_load_pct", "others' load during the run (% of machine)", "{:.0f}", None),
]


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    sizes = LoadSizes(args.sends, args.delivery_samples, args.rooms, args.messages, args.initial_syncs)
    wanted = [args.only] if args.only else list(SERVERS)
    factories = {"synapse": _synapse_factory(args), "piman": _piman_factory(args)}
    results: dict[str, dict[str, float]] = {}
    failed: list[str] = []
    workroot = Path(tempfile.mkdtemp(prefix="piman-bench-"))
    try:
        print(f"machine: {os.cpu_count()} cores, load average {_loadavg()}")
        with provision() as postgres:
            print(f"PostgreSQL at {postgres.connect_args['host']}:{postgres.connect_args['port']}")
            for name in wanted:
                try:
                    results[name] = _bench_one(name, factories[name], postgres, workroot, sizes, args.wait_quiet)
                except Exception as e:  # the other server's figures are still worth printing
                    print(f"{name}: benchmark failed: {e!r}", file=sys.stderr)
                    failed.append(name)
    finally:
        if args.keep:
            print(f"work directories kept in {workroot}")
        else:
            shutil.rmtree(workroot, ignore_errors=True)
    print()
    print(render_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(_report(results, sizes), indent=2) + "\n")
        print(f"\nwrote {args.json}")
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=SERVERS, help="benchmark one server only")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--sends", type=int, default=500, help="sequential sends (default 500)")
    parser.add_argument("--delivery-samples", type=int, default=100, help="delivery samples (default 100)")
    parser.add_argument("--rooms", type=int, default=50, help="rooms of the initial-sync user (default 50)")
    parser.add_argument("--messages", type=int, default=20, help="messages per room (default 20)")
    parser.add_argument("--initial-syncs", type=int, default=5, help="initial syncs timed (default 5)")
    parser.add_argument("--synapse-venv", type=Path,
                        default=Path(os.environ.get("PIMAN_SYNAPSE_VENV", REPO / ".venv-synapse")),
                        help="virtualenv with matrix-synapse[postgres] (default .venv-synapse)")
    parser.add_argument("--piman", type=Path, default=Path(sys.executable).with_name("piman"),
                        help="the piman console script (default: next to this Python)")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                        help="before each server, wait up to this long for other load to pass")
    parser.add_argument("--keep", action="store_true", help="keep configs and server logs")
    return parser.parse_args(argv)


def _synapse_factory(args: argparse.Namespace) -> Callable[[Path, dict[str, Any]], BenchServer]:
    return lambda workdir, database: SynapseServer(workdir, database, args.synapse_venv)


def _piman_factory(args: argparse.Namespace) -> Callable[[Path, dict[str, Any]], BenchServer]:
    return lambda workdir, database: PimanServer(workdir, database, args.piman)


def _bench_one(
    name: str, factory: Callable[[Path, dict[str, Any]], BenchServer], postgres: Any,
    workroot: Path, sizes: LoadSizes, wait_quiet: float,
) -> dict[str, float]:
    dbname = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    postgres.execute_admin(
        f"CREATE DATABASE \"{dbname}\" ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    workdir = workroot / name
    workdir.mkdir()
    database = {**postgres.connect_args, "database": dbname}
    server = factory(workdir, database)
    try:
        busy = _quiet_machine(wait_quiet)
        print(f"\n{name}: machine {100 * busy:.0f}% busy just before"
              + (" (NOT quiet: other load skews the figures)" if busy > QUIET else ""))
        print(f"{name}: starting on {server.base_url} ...")
        started = time.monotonic()
        server.start()
        print(f"  serving after {time.monotonic() - started:.1f}s (pid {server.pid})")
        others = OtherLoad(tuple(pid for pid in (server.pid, _postmaster_pid(postgres)) if pid))
        others.start()
        figures = run_load(server.base_url, server.pid, sizes, log=print)
        summary = {**figures.summary(), "other_load_pct": 100 * others.share()}
        if summary["other_load_pct"] > 100 * QUIET:
            print(f"  NOT quiet: other processes used {summary['other_load_pct']:.0f}% of the machine "
                  "during the run, which skews these figures")
        print("  " + ", ".join(f"{k}={v:.1f}" for k, v in summary.items()))
        return summary
    except BaseException:
        print(f"{name} failed; the end of its logs:\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        code = server.stop()
        print(f"  stopped (exit code {code})")
        with contextlib.suppress(Exception):
            postgres.drop_database(dbname)


def _postmaster_pid(postgres: Any) -> int | None:
    """The PostgreSQL server's main process, if it runs on this machine and we may read its pid file."""
    try:
        with contextlib.closing(postgres.connect_admin()) as conn, conn.cursor() as cur:
            cur.execute("SHOW data_directory")
            data_directory = cur.fetchone()[0]
        return int((Path(data_directory) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _quiet_machine(wait: float) -> float:
    """How busy the machine is; waits up to `wait` seconds for others' load to pass."""
    deadline = time.monotonic() + wait
    busy = machine_busy()
    while busy > QUIET and time.monotonic() < deadline:
        print(f"  machine {100 * busy:.0f}% busy: waiting for it to be quiet ...")
        busy = machine_busy()
    return busy


def render_table(results: dict[str, dict[str, float]]) -> str:
    both = all(name in results for name in SERVERS)
    header = ["", *[name for name in SERVERS if name in results]]
    if both:
        header += ["piman/synapse", "target", "met"]
    rows = [header]
    for key, label, fmt, target in ROWS:
        row = [label, *[fmt.format(results[name][key]) for name in SERVERS if name in results]]
        if both:
            p, s = results["piman"][key], results["synapse"][key]
            row.append(f"{p / s:.2f}" if s and key != "other_load_pct" else "")
            if target is None:
                row += ["", ""]
            else:
                row += [target[0], "yes" if target[1](p, s) else "NO"]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _report(results: dict[str, dict[str, float]], sizes: LoadSizes) -> dict[str, Any]:
    report: dict[str, Any] = {"load": vars(sizes), "cores": os.cpu_count(), "servers": results}
    if all(name in results for name in SERVERS):
        report["ratios"] = {key: (results["piman"][key] / results["synapse"][key]
                                  if results["synapse"][key] else None)
                            for key, *_ in ROWS if key != "other_load_pct"}
    return report


def _loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
