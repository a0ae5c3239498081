"""Residency pinned by config, seen from outside: the admin API, the metrics, and a refused start.

A data-protection officer must be able to see where the data is without reading the YAML, and
a server whose config puts a storage target abroad must not start at all.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import TestServer

RESIDENCY = "/_piman/admin/v1/residency"
PINNED = {
    "data_residency": {"country": "FR"},
    "database": {"location": {"country": "FR", "provider": "OVHcloud", "region": "Gravelines"}},
    "media_store_location": {"country": "FR", "provider": "OVHcloud"},
    "export_directory": "exports",
    "export_location": {"country": "FR"},
    "backup_directories": [{"path": "/srv/backups", "location": {"country": "FR", "region": "Paris"}}],
}



async def metric_samples(server: TestServer, name: str) -> list[dict[str, str]]:
    """The label sets of every sample of an info metric, e.g. piman_data_residency_info."""
    text = (await server.client().get("/_synapse/metrics")).raw.decode()
    return [dict(sample.labels) for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name == name and sample.value == 1.0]


@pytest_twisted.ensureDeferred
@pytest.mark.hs_config(PINNED)
async def test_admin_api_reports_country_and_every_target(server: TestServer) -> None:
    admin = await server.register_admin("dpo")
    resp = await admin.get(RESIDENCY)
    assert resp.code == 200, resp
    config = server.hs.config
    assert resp.json == {
        "country": "FR",
        "targets": [
            {"target": "database", "country": "FR", "provider": "OVHcloud", "region": "Gravelines"},
            {"target": "media_store", "country": "FR", "provider": "OVHcloud", "region": None,
             "path": config.media_store_path},
            {"target": "export_directory", "country": "FR", "provider": None, "region": None,
             "path": config.export_directory},
            {"target": "backup_directories[0]", "country": "FR", "provider": None, "region": "Paris",
             "path": "/srv/backups"},
        ],
    }


@pytest_twisted.ensureDeferred
@pytest.mark.hs_config(PINNED)
async def test_admin_api_is_for_admins_only(server: TestServer) -> None:
    alice = await server.register("alice")
    resp = await alice.get(RESIDENCY)
    assert (resp.code, resp.json["errcode"]) == (403, "M_FORBIDDEN")
    resp = await server.client().get(RESIDENCY)
    assert (resp.code, resp.json["errcode"]) == (401, "M_MISSING_TOKEN")


@pytest_twisted.ensureDeferred
@pytest.mark.hs_config(PINNED)
async def test_metrics_report_country_and_locations(server: TestServer) -> None:
    assert await metric_samples(server, "piman_data_residency_info") == [{"country": "FR"}]
    locations = await metric_samples(server, "piman_storage_target_location_info")
    assert sorted(locations, key=lambda labels: labels["target"]) == [
        {"target": "backup_directories[0]", "country": "FR", "provider": "", "region": "Paris"},
        {"target": "database", "country": "FR", "provider": "OVHcloud", "region": "Gravelines"},
        {"target": "export_directory", "country": "FR", "provider": "", "region": ""},
        {"target": "media_store", "country": "FR", "provider": "OVHcloud", "region": ""},
    ]


@pytest_twisted.ensureDeferred
async def test_unpinned_server_reports_no_country_and_undeclared_targets(server: TestServer) -> None:
    admin = await server.register_admin("dpo")
    resp = await admin.get(RESIDENCY)
    assert resp.code == 200, resp
    assert resp.json["country"] is None
    assert [(t["target"], t["country"]) for t in resp.json["targets"]] == [("database", None), ("media_store", None)]
    assert await metric_samples(server, "piman_data_residency_info") == []
    locations = await metric_samples(server, "piman_storage_target_location_info")
    assert {labels["target"]: labels["country"] for labels in locations} == {"database": "", "media_store": ""}


def _write_config(tmp_path: Path, database: str, media_store: str) -> Path:
    path = tmp_path / "homeserver.yaml"
    path.write_text(textwrap.dedent(f"""\
        server_name: acme.example
        listeners: [{{port: 0, resources: [{{names: [client]}}]}}]
        data_residency: {{country: FR}}
        database:
          name: sqlite3
          args: {{database: {tmp_path / "homeserver.db"}}}
          {database}
        {media_store}
    """))
    return path


@pytest.mark.parametrize(
    ("database", "media_store", "line"),
    [
        ("location: {country: DE}", "media_store_location: {country: FR}",
         "database.location: the database must be declared in FR (data_residency.country), not DE"),
        ("", "media_store_location: {country: FR}",
         "database.location: missing: the database must declare its location ({country: FR}, and optionally "
         "provider and region): every storage target must when data_residency is set"),
        ("location: {country: FR}", "media_store_location: {country: US, provider: AWS}",
         "media_store_location: the media store must be declared in FR (data_residency.country), not US"),
    ],
)
def test_piman_run_refuses_a_target_abroad_or_undeclared(tmp_path: Path, database: str, media_store: str,
                                                          line: str) -> None:
    config_path = _write_config(tmp_path, database, media_store)
    piman = Path(sys.executable).with_name("piman")
    result = subprocess.run([str(piman), "run", "--config", str(config_path)], capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result
    assert result.stderr == f"piman: {config_path}: {line}\n"
    assert not (tmp_path / "homeserver.db").exists(), "nothing is written before the config is accepted"


def test_config_check_accepts_every_target_in_the_country(tmp_path: Path) -> None:
    """The control for the test above: the same file, declared in FR, passes the config check."""
    config_path = _write_config(tmp_path, "location: {country: FR}", "media_store_location: {country: FR}")
    piman = Path(sys.executable).with_name("piman")
    result = subprocess.run([str(piman), "config", "check", "--config", str(config_path)], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result
