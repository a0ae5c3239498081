"""Memory and CPU of a server process, read from /proc (Linux), no extra package."""

from __future__ import annotations

import os
import time

_TICKS = os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size now (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name (field 2) may hold spaces: split after its closing parenthesis.
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS


def machine_busy(seconds: float = 3.0) -> float:
    """Share (0..1) of all cores' time spent busy over the next `seconds`: other load skews figures."""
    before = _cpu_times()
    time.sleep(seconds)
    after = _cpu_times()
    deltas = [b - a for a, b in zip(before, after)]
    idle = deltas[3] + deltas[4]  # idle + iowait
    total = sum(deltas[:8])  # user nice system idle iowait irq softirq steal
    return 1 - idle / total if total else 0.0


def _cpu_times() -> list[int]:
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:]]
