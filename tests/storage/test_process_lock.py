"""The exclusive lock: one server (or event-writing admin command) per database, on both engines."""

from __future__ import annotations

from typing import Any

import pytest

from storage.engines import create_engine
from storage.errors import DatabaseInUseError
from storage.process_lock import ExclusiveLock


def test_a_second_holder_is_refused_until_the_first_releases(database_config: dict[str, Any]) -> None:
    first = ExclusiveLock(create_engine(database_config))
    second = ExclusiveLock(create_engine(database_config))
    first.acquire()
    try:
        with pytest.raises(DatabaseInUseError, match="another piman process is using"):
            second.acquire()
    finally:
        first.release()
    second.acquire()
    second.release()
    first.release()  # releasing twice is harmless


def test_the_lock_is_per_database(database_config: dict[str, Any], tmp_path: Any) -> None:
    ours = ExclusiveLock(create_engine(database_config))
    elsewhere = ExclusiveLock(create_engine({"name": "sqlite3", "args": {"database": str(tmp_path / "other.db")}}))
    ours.acquire()
    try:
        elsewhere.acquire()
        elsewhere.release()
    finally:
        ours.release()
