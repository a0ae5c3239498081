"""A progress bar for long admin commands (key rotation, exports), on stderr.

On a terminal it is redrawn in place; otherwise (a log file, a pipe) it prints a line at each
tenth and at the end. Without a stream — the server running a job in the background — it logs
the end only.
"""

from __future__ import annotations

import logging
from typing import TextIO

logger = logging.getLogger(__name__)

BAR_WIDTH = 30


class ProgressBar:
    def __init__(self, out: TextIO | None, label: str, unit: str = "rows") -> None:
        self._out = out
        self._label = label
        self._unit = unit
        self._tty = out is not None and out.isatty()
        self._last_tenth = -1

    def _line(self, done: int, total: int) -> str:
        shown = min(done, total)
        filled = BAR_WIDTH if total == 0 else BAR_WIDTH * shown // total
        return f"{self._label:<30} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} {self._unit}"

    def update(self, done: int, total: int) -> None:
        if self._out is None:
            return
        if self._tty:
            self._out.write("\r" + self._line(done, total))
        else:
            tenth = 10 if total == 0 else 10 * min(done, total) // total
            if tenth == self._last_tenth or tenth == 10:
                return  # the end is printed by finish()
            self._last_tenth = tenth
            self._out.write(self._line(done, total) + "\n")
        self._out.flush()

    def finish(self, done: int, total: int, note: str = "") -> None:
        if self._out is None:
            logger.info("%s", self._line(done, total) + note)
            return
        self._out.write(("\r" if self._tty else "") + self._line(done, total) + note + "\n")
        self._out.flush()
