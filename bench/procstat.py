"""Memory and CPU of processes and of the machine, read from /proc (Linux), no extra package."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size now (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        # The command name (field 2) may hold spaces: split after its closing parenthesis.
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (all its threads)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _TICKS


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and all its descendants, living or exited and reaped.

    PostgreSQL runs a backend process per connection under its postmaster.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(int(_stat(int(entry))[1]), []).append(int(entry))
            except (OSError, IndexError):
                continue  # exited meanwhile
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = _stat(current)
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15]) / _TICKS  # utime stime cutime cstime
        todo.extend(children.get(current, []))
    return total


def own_cpu_seconds() -> float:
    """This benchmark client's CPU time (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of all cores since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    idle = values[3] + values[4]
    total = sum(values)
    return (total - idle) / _TICKS, total / _TICKS


def machine_busy(seconds: float = 3.0) -> float:
    """Share (0..1) of all cores' time spent busy over the next `seconds`."""
    busy0, total0 = machine_cpu()
    time.sleep(seconds)
    busy1, total1 = machine_cpu()
    return (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0


@dataclass
class OtherLoad:
    """CPU used on the machine by anything but the server, PostgreSQL and this client.

    On a shared machine other work slows whichever server happens to run at that
    moment; this says how much of it there was, so a skewed run can be told apart.
    """

    pids: tuple[int, ...]
    _start: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def _ours(self) -> float:
        return sum(tree_cpu_seconds(pid) for pid in self.pids) + own_cpu_seconds()

    def start(self) -> None:
        self._start = (*machine_cpu(), self._ours())

    def share(self) -> float:
        """Share (0..1) of the machine's CPU time others used since start()."""
        busy, total = machine_cpu()
        busy0, total0, ours0 = self._start
        if total <= total0:
            return 0.0
        others = (busy - busy0) - (self._ours() - ours0)
        return max(0.0, others / (total - total0))
