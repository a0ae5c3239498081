"""Fixtures for storage tests: a bare `Database` on each engine."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from prometheus_client import CollectorRegistry

from storage.database import Database
from storage.engines import create_engine


@pytest_twisted.async_yield_fixture()
async def db(database_config: dict[str, Any], reactor: Any, registry: CollectorRegistry) -> Any:
    """A Database on a fresh, empty database (no schema), closed after the test."""
    database = Database(create_engine(database_config), reactor, metrics_registry=registry)
    try:
        yield database
    finally:
        await database.close()
