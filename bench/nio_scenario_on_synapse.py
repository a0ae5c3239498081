"""Run the matrix-nio room scenario of tests/e2e/test_nio_rooms.py against Synapse.

    .venv/bin/python bench/nio_scenario_on_synapse.py

Not part of the suite: it proves the scenario's expectations are the
protocol's, so when the test fails against piman the bug is piman's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.servers import SynapseServer  # noqa: E402
from tests.e2e.test_nio_rooms import scenario  # noqa: E402
from tests.postgres_cluster import provision  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    venv = Path(os.environ.get("PIMAN_SYNAPSE_VENV", REPO / ".venv-synapse"))
    workdir = Path(tempfile.mkdtemp(prefix="piman-nio-synapse-"))
    try:
        with provision() as postgres:
            dbname = f"nio_{uuid.uuid4().hex[:8]}"
            postgres.execute_admin(
                f"CREATE DATABASE \"{dbname}\" ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
            server = SynapseServer(workdir, {**postgres.connect_args, "database": dbname}, venv)
            server.start()
            try:
                asyncio.run(scenario(server.base_url))
            except BaseException:
                print(server.log_tail(), file=sys.stderr)
                raise
            finally:
                server.stop()
        print("the nio room scenario passed against Synapse")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
