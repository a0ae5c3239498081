"""Replacing a file atomically: the old file or the new one after a crash, never half of one.

Used for the data key file and for sealed media files (new uploads, and re-sealed file keys).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import IO, Iterator


class AbandonWrite(Exception):
    """Raised inside `replaced_atomically` to drop the new file and leave `path` as it is."""


@contextlib.contextmanager
def replaced_atomically(path: str, *, mode: int = 0o600, text: bool = False,
                        sync_directory: bool = False) -> Iterator[IO]:
    """A new file, written beside `path` and renamed over it when the block ends without error.

    The data is fsync'd before the rename; on any exception the temporary file is removed (an
    `AbandonWrite` is swallowed, others go on). Temporary names end in ".tmp", which walkers of
    the media store skip. `sync_directory` also fsyncs the directory, so the rename itself
    survives a power cut (for the key file). Blocking: call it from a thread where it matters.
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp_path = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8"} if text else {})) as f:
            os.fchmod(fd, mode)
            yield f
            f.flush()
            os.fsync(fd)
        os.replace(tmp_path, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        if isinstance(e, AbandonWrite):
            return
        raise
    if sync_directory:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
