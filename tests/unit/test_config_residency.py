"""Residency pinned by config, and the 30-day cap on undelivered messages.

"Servers are hosted in France": with `data_residency` set, a config whose storage targets are
undeclared or declared elsewhere must not load, and the error must name the file and the key.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import ConfigError, generate_config_yaml, load_config, load_config_dict

SOURCE = "/etc/piman/homeserver.yaml"
FR = {"country": "FR"}
DAY_MS = 86400 * 1000


def pinned(**extra: Any) -> dict[str, Any]:
    """A config pinned to FR with both always-present targets declared there."""
    return {
        "server_name": "acme.example",
        "listeners": [{"port": 8008, "resources": [{"names": ["client"]}]}],
        "data_residency": FR,
        "database": {"name": "sqlite3", "args": {"database": "homeserver.db"}, "location": FR},
        "media_store_location": FR,
        **extra,
    }


def load(data: dict[str, Any]) -> Any:
    return load_config_dict(data, source=SOURCE, base_dir="/srv/piman")


def error_of(data: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(data)
    return caught.value


# --- the country code -------------------------------------------------------------------------


def test_locations_are_read_with_provider_and_region() -> None:
    config = load(pinned(
        database={"name": "sqlite3", "args": {"database": "homeserver.db"},
                  "location": {"country": "FR", "provider": "OVHcloud", "region": "Gravelines"}},
        export_directory="exports",
        export_location=FR,
        backup_directories=[{"path": "/srv/backups", "location": {"country": "FR", "provider": "Scaleway"}}],
    ))
    assert config.data_residency.country == "FR"
    assert (config.database.location.country, config.database.location.provider,
            config.database.location.region) == ("FR", "OVHcloud", "Gravelines")
    assert config.media_store_location.provider is None
    assert config.export_directory == "/srv/piman/exports"
    [backup] = config.backup_directories
    assert (backup.path, backup.location.country, backup.location.provider) == ("/srv/backups", "FR", "Scaleway")


@pytest.mark.parametrize(
    ("country", "message"),
    [
        ("fr", "country codes are upper case: write 'FR', not 'fr'"),
        ("XX", "expected an ISO 3166-1 alpha-2 country code such as 'FR', got 'XX'"),
        ("FRA", "expected an ISO 3166-1 alpha-2 country code such as 'FR', got 'FRA'"),
        ("UK", "the ISO 3166-1 code of the United Kingdom is 'GB', not 'UK'"),
        (33, "expected an ISO 3166-1 alpha-2 country code such as 'FR', got 33"),
    ],
)
def test_country_must_be_an_iso_code(country: object, message: str) -> None:
    error = error_of(pinned(data_residency={"country": country}))
    assert (error.key_path, error.message) == ("data_residency.country", message)
    error = error_of(pinned(media_store_location={"country": country}))
    assert (error.key_path, error.message) == ("media_store_location.country", message)


def test_location_keys_are_checked() -> None:
    error = error_of(pinned(media_store_location={"country": "FR", "regoin": "Paris"}))
    assert (error.key_path, error.message) == ("media_store_location.regoin", "unknown key (did you mean 'region'?)")
    error = error_of(pinned(media_store_location={"provider": "OVHcloud"}))
    assert (error.key_path, error.message) == ("media_store_location.country", "missing required key")


# --- pinned: every target declared, in that country ---------------------------------------------


def test_pinned_config_with_every_target_in_the_country_loads() -> None:
    config = load(pinned(export_directory="/var/exports", export_location=FR,
                         backup_directories=[{"path": "/b1", "location": FR}, {"path": "/b2", "location": FR}]))
    assert config.data_residency.country == "FR"


def test_undeclared_database_is_refused() -> None:
    data = pinned()
    del data["database"]["location"]
    error = error_of(data)
    assert error.key_path == "database.location"
    assert error.message.startswith("missing: the database must declare its location ({country: FR}")
    assert "every storage target must when data_residency is set" in error.message


def test_undeclared_media_store_is_refused() -> None:
    data = pinned()
    del data["media_store_location"]
    error = error_of(data)
    assert error.key_path == "media_store_location"
    assert error.message.startswith("missing: the media store must declare its location")


@pytest.mark.parametrize(
    ("overrides", "key", "target"),
    [
        ({"database": {"name": "sqlite3", "args": {"database": "x.db"}, "location": {"country": "DE"}}},
         "database.location", "the database"),
        ({"media_store_location": {"country": "DE", "provider": "Hetzner"}}, "media_store_location",
         "the media store"),
        ({"export_directory": "/e", "export_location": {"country": "DE"}}, "export_location",
         "the export directory"),
        ({"backup_directories": [{"path": "/b1", "location": FR}, {"path": "/b2", "location": {"country": "DE"}}]},
         "backup_directories[1].location", "the backup directory /b2"),
    ],
)
def test_target_declared_in_another_country_is_refused(overrides: dict[str, Any], key: str, target: str) -> None:
    error = error_of(pinned(**overrides))
    assert str(error) == f"{SOURCE}: {key}: {target} must be declared in FR (data_residency.country), not DE"


def test_export_location_is_needed_only_with_an_export_directory() -> None:
    assert load(pinned()).export_directory is None
    error = error_of(pinned(export_directory="/var/exports"))
    assert error.key_path == "export_location"
    assert error.message.startswith("missing: the export directory must declare its location")


def test_backup_directory_needs_a_location_even_unpinned() -> None:
    error = error_of({**pinned(data_residency=None), "backup_directories": [{"path": "/b"}]})
    assert (error.key_path, error.message) == ("backup_directories[0].location", "missing required key")


def test_error_from_a_file_is_one_line_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "homeserver.yaml"
    path.write_text(textwrap.dedent("""\
        server_name: acme.example
        listeners: [{port: 8008, resources: [{names: [client]}]}]
        data_residency: {country: FR}
        database: {name: sqlite3, args: {database: homeserver.db}, location: {country: FR}}
        media_store_location: {country: DE}
    """))
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert str(caught.value) == (
        f"{path}: media_store_location: the media store must be declared in FR (data_residency.country), not DE"
    )
    assert "\n" not in str(caught.value)


# --- unpinned: declarations optional and reported, nothing checked ------------------------------


def test_unpinned_config_needs_no_location_and_may_declare_any() -> None:
    config = load({"server_name": "acme.example", "listeners": [{"port": 8008, "resources": [{"names": ["client"]}]}]})
    assert config.data_residency is None
    assert config.database.location is None and config.media_store_location is None
    assert config.backup_directories == []
    config = load(pinned(data_residency=None, media_store_location={"country": "DE"}))
    assert config.media_store_location.country == "DE"


# --- piman init: hosted in France by default ---------------------------------------------------


@pytest.mark.parametrize("database_url", [None, "postgresql://piman@db.internal/piman"])
def test_generated_config_is_pinned_to_france(tmp_path: Path, database_url: str | None) -> None:
    text = generate_config_yaml(server_name="acme.example", data_dir=str(tmp_path), database_url=database_url)
    config = load_config_dict(yaml.safe_load(text), source="generated", base_dir=str(tmp_path))
    assert config.data_residency.country == "FR"
    assert config.database.location.country == "FR"
    assert config.media_store_location.country == "FR"
    assert config.export_location.country == "FR"
    # Setting the export directory alone keeps it loadable: its location is already declared.
    data = yaml.safe_load(text)
    data["export_directory"] = str(tmp_path / "exports")
    assert load_config_dict(data, source="generated", base_dir=str(tmp_path)).export_directory
    # Moving the database abroad in the generated file is refused.
    data["database"]["location"] = {"country": "US"}
    with pytest.raises(ConfigError, match=r"database\.location: the database must be declared in FR"):
        load_config_dict(data, source="generated", base_dir=str(tmp_path))


# --- undelivered_ttl --------------------------------------------------------------------------


def test_undelivered_ttl_defaults_to_30_days() -> None:
    assert load(pinned()).undelivered_ttl == 30 * DAY_MS


@pytest.mark.parametrize(("value", "ms"), [("30d", 30 * DAY_MS), ("1w", 7 * DAY_MS), ("12h", 12 * 3600 * 1000),
                                           (30 * DAY_MS, 30 * DAY_MS)])
def test_undelivered_ttl_up_to_30_days_is_accepted(value: object, ms: int) -> None:
    assert load(pinned(undelivered_ttl=value)).undelivered_ttl == ms


@pytest.mark.parametrize("value", ["31d", "5w", "1y", 30 * DAY_MS + 1])
def test_undelivered_ttl_over_30_days_is_refused(value: object) -> None:
    error = error_of(pinned(undelivered_ttl=value))
    assert error.key_path == "undelivered_ttl"
    assert error.message.startswith("must be at most 30d, got ")
    assert "undelivered messages are deleted after 30 days at most" in error.message


@pytest.mark.parametrize(("value", "message"), [("0", "must be longer than zero"), ("soon", "expected a duration")])
def test_undelivered_ttl_must_be_a_positive_duration(value: str, message: str) -> None:
    error = error_of(pinned(undelivered_ttl=value))
    assert error.key_path == "undelivered_ttl" and error.message.startswith(message)
