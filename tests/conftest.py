"""Fixtures shared by the whole suite.

Every test that takes ``database_config`` runs once per engine — SQLite and
PostgreSQL — each time on a brand-new database. ``PIMAN_TEST_ENGINES``
(default ``sqlite,postgres``) narrows the engines, e.g. ``sqlite`` for a
quick run without PostgreSQL. The reactor is pytest-twisted's default one;
async tests are marked ``@pytest_twisted.ensureDeferred``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest
import pytest_twisted
from prometheus_client import CollectorRegistry

from storage.datastore import DataStore, open_datastore
from storage.sealing import Sealer, generate_data_key_file, load_sealer

ENGINES_ENV = "PIMAN_TEST_ENGINES"
_KNOWN_ENGINES = ("sqlite", "postgres")


def _engines_under_test() -> list[str]:
    wanted = [
        e.strip() for e in os.environ.get(ENGINES_ENV, "sqlite,postgres").split(",") if e.strip()
    ]
    unknown = [e for e in wanted if e not in _KNOWN_ENGINES]
    if unknown or not wanted:
        raise pytest.UsageError(
            f"{ENGINES_ENV}={os.environ.get(ENGINES_ENV)!r}: expected a comma-separated subset of "
            f"{', '.join(_KNOWN_ENGINES)}"
        )
    return list(dict.fromkeys(wanted))


ENGINES = _engines_under_test()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A PostgreSQL server for this session (per xdist worker), started on first use."""
    from tests.postgres_cluster import provision

    with provision() as server:
        yield server


@pytest.fixture(params=ENGINES)
def database_config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A `database` config section pointing at a fresh, empty database."""
    if request.param == "sqlite":
        yield {"name": "sqlite3", "args": {"database": str(tmp_path / "homeserver.db")}}
        return
    server = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield {"name": "psycopg2", "args": {**server.connect_args, "database": name}}
    finally:
        server.drop_database(name)


@pytest.fixture
def reactor() -> Any:
    """The reactor pytest-twisted runs; tests inject it like production code does."""
    from twisted.internet import reactor as installed  # installed by pytest-twisted at start-up

    return installed


@pytest.fixture
def data_key_path(tmp_path: Path) -> Path:
    path = tmp_path / "data.key"
    generate_data_key_file(str(path))
    return path


@pytest.fixture
def sealer(data_key_path: Path) -> Sealer:
    return load_sealer(str(data_key_path))


@pytest.fixture
def registry() -> CollectorRegistry:
    """A metrics registry of the test's own, as each HomeServer has."""
    return CollectorRegistry()


@pytest_twisted.async_yield_fixture()
async def datastore(
    database_config: dict[str, Any], reactor: Any, sealer: Sealer, registry: CollectorRegistry
) -> Any:
    """A DataStore on a fresh database of each engine, schema in place, closed afterwards."""
    store: DataStore = await open_datastore(
        database_config, reactor, sealer, metrics_registry=registry
    )
    try:
        yield store
    finally:
        await store.close()
