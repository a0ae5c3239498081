"""Loading and validating homeserver.yaml: defaults, typed objects and every kind of error."""

from __future__ import annotations

import dataclasses
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from config import ConfigError, HomeServerConfig, load_config, load_config_dict

SOURCE = "/etc/piman/homeserver.yaml"


def minimal(**extra: Any) -> dict[str, Any]:
    return {
        "server_name": "example.com",
        "listeners": [{"port": 8008, "resources": [{"names": ["client", "federation"]}]}],
        **extra,
    }


def error_of(data: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config_dict(data, source=SOURCE, base_dir="/srv/piman")
    return caught.value


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "homeserver.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


# --- defaults and typed objects ---------------------------------------------------------


def test_minimal_config_gets_every_default() -> None:
    config = load_config_dict(minimal(), base_dir="/srv/piman")

    assert isinstance(config, HomeServerConfig)
    assert config.server_name == "example.com"
    assert config.public_baseurl is None
    assert config.serve_server_wellknown is False
    [listener] = config.listeners
    assert (listener.port, listener.bind_addresses, listener.type) == (8008, ["127.0.0.1"], "http")
    assert (listener.tls, listener.x_forwarded) == (False, False)
    assert listener.resources[0].names == ["client", "federation"]
    assert listener.resources[0].compress is False
    assert config.tls_certificate_path is None and config.tls_private_key_path is None
    assert config.database.name == "sqlite3"
    assert config.database.args == {"database": "/srv/piman/homeserver.db"}
    assert config.database.allow_unsafe_locale is False
    assert config.signing_key_path == "/srv/piman/example.com.signing.key"
    assert config.key_refresh_interval == 24 * 3600 * 1000
    assert config.data_key_path == "/srv/piman/data.key"
    assert config.media_store_path == "/srv/piman/media_store"
    assert config.max_upload_size == 50 * 1024 * 1024
    assert config.max_request_body_size == 1024 * 1024
    assert config.enable_registration is False
    assert config.enable_registration_without_verification is False
    assert config.registration_shared_secret is None
    assert config.registration_requires_token is False
    assert config.allow_guest_access is False
    assert config.bcrypt_rounds == 12
    assert config.password_config.enabled is True
    assert config.password_config.pepper == ""
    policy = config.password_config.policy
    assert policy.minimum_length == 0
    assert not (policy.require_digit or policy.require_symbol or policy.require_lowercase or policy.require_uppercase)
    assert config.refreshable_access_token_lifetime == 5 * 60 * 1000
    assert config.refresh_token_lifetime is None
    assert config.session_lifetime is None
    assert (config.rc_message.per_second, config.rc_message.burst_count) == (0.2, 10)
    assert (config.rc_registration.per_second, config.rc_registration.burst_count) == (0.17, 3)
    for rate in (config.rc_login.address, config.rc_login.account, config.rc_login.failed_attempts):
        assert (rate.per_second, rate.burst_count) == (0.003, 5)
    assert (config.rc_joins.local.per_second, config.rc_joins.local.burst_count) == (0.1, 10)
    assert (config.rc_joins.remote.per_second, config.rc_joins.remote.burst_count) == (0.01, 10)
    assert (config.rc_invites.per_room.per_second, config.rc_invites.per_room.burst_count) == (0.3, 10)
    assert (config.rc_invites.per_user.per_second, config.rc_invites.per_user.burst_count) == (0.003, 5)
    assert (config.rc_invites.per_issuer.per_second, config.rc_invites.per_issuer.burst_count) == (0.3, 10)
    assert config.rc_admin_redaction is None
    assert config.e2ee.required is True
    assert config.log_level == "INFO"
    assert config.report_stats is False
    assert config.config_path is None


def test_config_is_frozen() -> None:
    config = load_config_dict(minimal())
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.server_name = "other.example"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.listeners[0].port = 1  # type: ignore[misc]


def test_values_are_converted() -> None:
    config = load_config_dict(
        minimal(
            public_baseurl="https://matrix.example.com",
            max_upload_size="10K",
            max_request_body_size=4096,
            session_lifetime="30d",
            refresh_token_lifetime=1500,
            key_refresh_interval="1h",
            rc_message={"per_second": 1},
            rc_login={"account": {"burst_count": 20}},
            rc_admin_redaction={"per_second": 2.5},
            log_level="DEBUG",
        )
    )
    assert config.public_baseurl == "https://matrix.example.com/"
    assert config.max_upload_size == 10 * 1024
    assert config.max_request_body_size == 4096
    assert config.session_lifetime == 30 * 86400 * 1000
    assert config.refresh_token_lifetime == 1500
    assert config.key_refresh_interval == 3600 * 1000
    # An integer per_second is a number like any other; the other half keeps its own default.
    assert config.rc_message.per_second == 1.0 and isinstance(config.rc_message.per_second, float)
    assert config.rc_message.burst_count == 10
    assert (config.rc_login.account.per_second, config.rc_login.account.burst_count) == (0.003, 20)
    assert (config.rc_login.address.per_second, config.rc_login.address.burst_count) == (0.003, 5)
    assert (config.rc_admin_redaction.per_second, config.rc_admin_redaction.burst_count) == (2.5, 50)
    assert config.log_level == "DEBUG"


def test_empty_section_means_defaults() -> None:
    config = load_config_dict(minimal(password_config=None, rc_joins=None, database=None))
    assert config.password_config.enabled is True
    assert config.rc_joins.remote.per_second == 0.01
    assert config.database.name == "sqlite3"


def test_port_zero_and_metrics_listener_without_resources() -> None:
    config = load_config_dict(
        minimal(
            listeners=[
                {"port": 0, "bind_addresses": ["::1", "127.0.0.1"], "resources": [{"names": ["client"]}]},
                {"port": 0, "resources": [{"names": ["federation"], "compress": True}]},
                {"port": 9100, "type": "metrics"},
            ]
        )
    )
    assert [listener.port for listener in config.listeners] == [0, 0, 9100]
    assert config.listeners[2].type == "metrics" and config.listeners[2].resources == []


def test_server_names_with_port_and_ip_literals() -> None:
    for name in ("localhost:8448", "127.0.0.1", "127.0.0.1:8008", "[::1]", "[2001:db8::1]:8448", "a-b.example.org"):
        assert load_config_dict(minimal(server_name=name)).server_name == name
    # ':' is awkward in file names, so the default signing key file uses '_'.
    assert load_config_dict(minimal(server_name="localhost:8448"), base_dir="/d").signing_key_path == (
        "/d/localhost_8448.signing.key"
    )


def test_postgres_database_args() -> None:
    config = load_config_dict(
        minimal(
            database={
                "name": "psycopg2",
                "args": {
                    "user": "piman",
                    "password": "pw",
                    "database": "piman",
                    "host": "db.internal",
                    "port": 5433,
                    "cp_max": 20,
                    "sslmode": "verify-full",
                    "connect_timeout": 10,
                },
                "allow_unsafe_locale": True,
            }
        )
    )
    assert config.database.name == "psycopg2"
    assert config.database.args == {
        "user": "piman",
        "password": "pw",
        "database": "piman",
        "host": "db.internal",
        "port": 5433,
        "cp_min": 5,
        "cp_max": 20,
        "sslmode": "verify-full",
        "connect_timeout": 10,
    }
    assert config.database.allow_unsafe_locale is True


def test_args_before_name_still_validated_by_name() -> None:
    config = load_config_dict(minimal(database={"args": {"database": "piman"}, "name": "psycopg2"}))
    assert config.database.args["database"] == "piman"


def test_tls_listener_with_certificate_paths(tmp_path: Path) -> None:
    config = load_config_dict(
        minimal(
            listeners=[{"port": 8448, "tls": True, "resources": [{"names": ["federation"]}]}],
            tls_certificate_path="tls/cert.pem",
            tls_private_key_path="/etc/ssl/key.pem",
        ),
        base_dir=str(tmp_path),
    )
    assert config.listeners[0].tls is True
    assert config.tls_certificate_path == str(tmp_path / "tls" / "cert.pem")
    assert config.tls_private_key_path == "/etc/ssl/key.pem"


def test_repr_keeps_secrets_out() -> None:
    config = load_config_dict(
        minimal(
            registration_shared_secret="hunter2-shared",
            password_config={"pepper": "hunter2-pepper"},
            database={"name": "psycopg2", "args": {"database": "d", "password": "hunter2-db"}},
        )
    )
    text = repr(config)
    assert "example.com" in text
    assert "hunter2" not in text
    assert config.registration_shared_secret == "hunter2-shared"


# --- loading files ------------------------------------------------------------------------


def test_load_config_resolves_paths_against_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        server_name: localhost:8448
        listeners:
          - port: 8008
            resources: [{names: [client]}]
        database:
          name: sqlite3
          args: {database: db/home.db}
        data_key_path: /var/lib/piman/data.key
        media_store_path: ~/media
        enable_registration: yes   # YAML 1.1 booleans are real booleans
        """,
    )
    config = load_config(path)
    assert config.config_path == path
    assert config.database.args["database"] == str(tmp_path / "db" / "home.db")
    assert config.signing_key_path == str(tmp_path / "localhost_8448.signing.key")
    assert config.data_key_path == "/var/lib/piman/data.key"
    assert config.media_store_path == os.path.expanduser("~/media")
    assert config.enable_registration is True


def test_sqlite_memory_database_is_not_a_path(tmp_path: Path) -> None:
    config = load_config_dict(minimal(database={"name": "sqlite3", "args": {"database": ":memory:"}}))
    assert config.database.args == {"database": ":memory:"}


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "server_name: example.com\nlisteners:\n  - port: 8008\n   bad: [\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    error = caught.value
    assert error.file == path and error.key_path == ""
    assert str(error).startswith(f"{path}: invalid YAML at line 4")
    assert "\n" not in str(error)


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "server_name: a.example\nlisteners: []\nserver_name: b.example\n")
    with pytest.raises(ConfigError, match=r"line 3.*duplicate key 'server_name' \(first given on line 1\)"):
        load_config(path)


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing but a comment\n")
    with pytest.raises(ConfigError, match="the file is empty"):
        load_config(path)


def test_unreadable_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError) as caught:
        load_config(missing)
    assert str(caught.value) == f"{missing}: cannot read the file: No such file or directory"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "homeserver.yaml"
    path.write_bytes(b"server_name: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(str(path))


@pytest.mark.parametrize(
    ("text", "got"),
    [("- server_name: x\n", "a list"), ("just a string\n", "'just a string'"), ("42\n", "42")],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, got: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: the top level must be a mapping of keys to values, got {got}"


def test_error_in_file_names_file_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        server_name: example.com
        listeners:
          - port: 8008
            resources: [{names: [client]}]
        rc_login:
          address:
            per_second: fast
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: rc_login.address.per_second: expected a number, got 'fast'"


def test_quoted_yes_is_not_a_boolean(tmp_path: Path) -> None:
    path = write(tmp_path, 'server_name: x.example\nlisteners: [{port: 1, type: metrics}]\nenable_registration: "yes"\n')
    with pytest.raises(ConfigError, match=r"enable_registration: expected a boolean \(true or false\), got 'yes'$"):
        load_config(path)


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "key_path", "message"),
    [
        (
            minimal(listeners=[{"port": 8008, "bind_adresses": ["::1"], "resources": [{"names": ["client"]}]}]),
            "listeners[0].bind_adresses",
            "unknown key (did you mean 'bind_addresses'?)",
        ),
        (minimal(enable_registraton=True), "enable_registraton", "unknown key (did you mean 'enable_registration'?)"),
        (minimal(rc_login={"adress": {}}), "rc_login.adress", "unknown key (did you mean 'address'?)"),
        (
            minimal(e2ee={"require": False}),
            "e2ee.require",
            "unknown key (did you mean 'required'?)",
        ),
        (minimal(e2ee={"zzz": False}), "e2ee.zzz", "unknown key (expected one of: required)"),
        (
            minimal(listeners=[{"port": 8008, "resources": [{"names": ["client"]}]}, {"port": "8448"}]),
            "listeners[1].port",
            "expected an integer, got '8448'",
        ),
        (minimal(listeners=[{"port": 70000, "type": "metrics"}]), "listeners[0].port", "must be between 0 and 65535, got 70000"),
        (
            minimal(listeners=[{"port": 1, "resources": [{"names": ["client", "federaton"]}]}]),
            "listeners[0].resources[0].names[1]",
            "expected one of 'client', 'federation', 'keys', 'media', 'metrics', 'openid', 'health', 'consent', "
            "got 'federaton' (did you mean 'federation'?)",
        ),
        (
            minimal(listeners=[{"port": 1, "bind_addresses": ["localhost"], "type": "metrics"}]),
            "listeners[0].bind_addresses[0]",
            "expected an IP address such as 127.0.0.1, ::1, 0.0.0.0 or ::, got 'localhost'",
        ),
        (minimal(listeners=[]), "listeners", "must have at least one entry"),
        (minimal(listeners={"port": 8008}), "listeners", "expected a list, got a mapping"),
        ({"listeners": [{"port": 1, "type": "metrics"}]}, "server_name", "missing required key"),
        (
            minimal(server_name="example com"),
            "server_name",
            "not a valid server name (a host name is made of letters, digits, '-' and '.'): expected a host name, "
            "IPv4 or [IPv6] address with an optional :port, got 'example com'",
        ),
        (minimal(server_name="https://example.com"), "server_name", "not a valid server name (it is a URL"),
        (minimal(server_name="example.com:0"), "server_name", "not a valid server name (the port must be"),
        (minimal(server_name="[::g]"), "server_name", "not a valid server name (the part in [] is not"),
        (minimal(server_name="300.1.1.1"), "server_name", "not a valid server name (the host looks like an IPv4"),
        (minimal(server_name=8448), "server_name", "expected a host name, IPv4 or [IPv6] address"),
        (minimal(public_baseurl="matrix.example.com"), "public_baseurl", "expected an http:// or https:// URL"),
        (
            minimal(max_upload_size="50X"),
            "max_upload_size",
            "expected a size such as 1024, '512K', '50M' or '1G', got '50X'",
        ),
        (minimal(max_upload_size=-1), "max_upload_size", "a size cannot be negative, got -1"),
        (
            minimal(session_lifetime="5 minutes"),
            "session_lifetime",
            "expected a duration such as '500ms', '30s', '5m', '1h', '7d', '1w', '1y' or a number of milliseconds, "
            "got '5 minutes'",
        ),
        (minimal(refreshable_access_token_lifetime="0s"), "refreshable_access_token_lifetime", "must be longer than zero"),
        (minimal(rc_message={"per_second": -0.5}), "rc_message.per_second", "must not be negative, got -0.5"),
        (minimal(rc_joins={"remote": {"burst_count": 0}}), "rc_joins.remote.burst_count", "must be at least 1, got 0"),
        (minimal(rc_message={"per_second": "0.2"}), "rc_message.per_second", "expected a number, got '0.2'"),
        (minimal(rc_message={"per_second": float("nan")}), "rc_message.per_second", "must be a finite number"),
        (minimal(bcrypt_rounds=True), "bcrypt_rounds", "expected an integer, got true"),
        (minimal(bcrypt_rounds=3), "bcrypt_rounds", "must be between 4 and 31, got 3"),
        (minimal(bcrypt_rounds=12.0), "bcrypt_rounds", "expected an integer, got 12.0"),
        (minimal(enable_registration="yes"), "enable_registration", "expected a boolean (true or false), got 'yes'"),
        (minimal(enable_registration=None), "enable_registration", "expected a boolean (true or false), got an empty value"),
        (minimal(log_level="info"), "log_level", "got 'info' (did you mean 'INFO'?)"),
        (minimal(rc_message=[0.2, 10]), "rc_message", "expected a mapping, got a list"),
        (minimal(media_store_path=""), "media_store_path", "must not be empty"),
        (
            minimal(database={"name": "mysql", "args": {"database": "x"}}),
            "database.name",
            "expected one of 'sqlite3', 'psycopg2', got 'mysql'",
        ),
        (minimal(database={"name": "psycopg", "args": {}}), "database.name", "(did you mean 'psycopg2'?)"),
        (minimal(database={"args": {"database": "x"}}), "database.name", "missing required key"),
        (minimal(database={"name": "sqlite3"}), "database.args.database", "missing required key"),
        (
            minimal(database={"name": "sqlite3", "args": {"database": "x.db", "host": "h"}}),
            "database.args.host",
            "unknown key (expected one of: database)",
        ),
        (minimal(database={"name": "psycopg2", "args": {"user": "u"}}), "database.args.database", "missing required key"),
        (
            minimal(database={"name": "psycopg2", "args": {"database": "d", "pasword": "x"}}),
            "database.args.pasword",
            "unknown key (did you mean 'password'?)",
        ),
        (
            minimal(database={"name": "psycopg2", "args": {"database": "d", "port": "5432"}}),
            "database.args.port",
            "expected an integer, got '5432'",
        ),
        (
            minimal(database={"name": "psycopg2", "args": {"database": "d", "connect_timeout": [1]}}),
            "database.args.connect_timeout",
            "expected a string, number or boolean, got a list",
        ),
        (
            minimal(database={"name": "psycopg2", "args": {"database": "d", "cp_min": 20}}),
            "database.args.cp_min",
            "must not be more than cp_max (10), got 20",
        ),
        (
            minimal(listeners=[{"port": 8448, "tls": True, "resources": [{"names": ["federation"]}]}]),
            "listeners[0].tls",
            "tls: true needs tls_certificate_path and tls_private_key_path at the top level",
        ),
        (
            minimal(tls_certificate_path="/etc/cert.pem"),
            "tls_private_key_path",
            "missing required key: tls_certificate_path is set, and TLS needs both",
        ),
        (
            minimal(listeners=[{"port": 8008}]),
            "listeners[0].resources",
            "an http listener needs at least one resource",
        ),
        (
            minimal(listeners=[{"port": 8008, "resources": [{"names": []}]}]),
            "listeners[0].resources[0].names",
            "must have at least one entry",
        ),
        (
            minimal(
                listeners=[
                    {"port": 8008, "resources": [{"names": ["client"]}]},
                    {"port": 8008, "bind_addresses": ["::"], "resources": [{"names": ["federation"]}]},
                ]
            ),
            "listeners[1].port",
            "port 8008 is already used by listeners[0] on the same address",
        ),
        ({**minimal(), 8448: "port"}, "8448", "unknown key"),
    ],
)
def test_errors(data: dict[str, Any], key_path: str, message: str) -> None:
    error = error_of(data)
    assert error.file == SOURCE
    assert error.key_path == key_path
    assert message in error.message
    assert str(error) == f"{SOURCE}: {key_path}: {error.message}"
    assert "\n" not in str(error)


def test_same_port_on_different_addresses_is_fine() -> None:
    config = load_config_dict(
        minimal(
            listeners=[
                {"port": 8008, "bind_addresses": ["127.0.0.1"], "resources": [{"names": ["client"]}]},
                {"port": 8008, "bind_addresses": ["::1"], "resources": [{"names": ["client"]}]},
            ]
        )
    )
    assert len(config.listeners) == 2


@pytest.mark.parametrize(
    "data",
    [
        minimal(registration_shared_secret=123456789),
        minimal(password_config={"pepper": 987654321}),
        minimal(database={"name": "psycopg2", "args": {"database": "d", "password": 55554444}}),
        minimal(my_secret_token=31415926),  # even an unknown key is not echoed with its value
    ],
)
def test_secret_values_are_never_echoed(data: dict[str, Any]) -> None:
    error = error_of(data)
    for secret in ("123456789", "987654321", "55554444", "31415926"):
        assert secret not in str(error)
    if "unknown key" not in error.message:
        assert error.message.endswith("got an integer (value hidden)")


def test_non_secret_keys_under_password_config_still_show_values() -> None:
    error = error_of(minimal(password_config={"policy": {"minimum_length": "ten"}}))
    assert str(error) == f"{SOURCE}: password_config.policy.minimum_length: expected an integer, got 'ten'"


def test_whole_file_is_validated_and_first_error_in_document_order_reported() -> None:
    data = {
        "server_name": "example.com",
        "max_upload_size": "huge",
        "listeners": [{"port": "x"}],
        "nonsense": 1,
    }
    assert error_of(data).key_path == "max_upload_size"
    reordered = {"nonsense": 1, **data}
    assert error_of(reordered).key_path == "nonsense"


def test_load_config_dict_source_and_base_dir_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config_dict(minimal())
    assert config.data_key_path == str(tmp_path / "data.key")
    with pytest.raises(ConfigError) as caught:
        load_config_dict(minimal(bcrypt_rounds="x"))
    assert str(caught.value) == "<dict>: bcrypt_rounds: expected an integer, got 'x'"


def test_config_error_pickles_and_keeps_fields() -> None:
    import pickle

    error = ConfigError("f.yaml", "a.b", "bad")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.file, copy.key_path, copy.message, str(copy)) == ("f.yaml", "a.b", "bad", "f.yaml: a.b: bad")
