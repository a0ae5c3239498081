"""`server`: a fresh in-process homeserver per test, on each engine.

Mark a test with `@pytest.mark.hs_config({...})` to override config keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import pytest_twisted

from tests.integration.harness import TestServer


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hs_config(overrides): config overrides for the test homeserver")


@pytest_twisted.async_yield_fixture
async def server(request: pytest.FixtureRequest, reactor: Any, tmp_path: Path,
                 database_config: dict[str, Any]) -> AsyncIterator[TestServer]:
    marker = request.node.get_closest_marker("hs_config")
    overrides = marker.args[0] if marker else {}
    srv = await TestServer.start(reactor, tmp_path, database_config, overrides)
    try:
        yield srv
    finally:
        await srv.stop()
