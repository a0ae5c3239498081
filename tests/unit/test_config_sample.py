"""The generated homeserver.yaml: it loads, it documents every key, and its comments are valid."""

from __future__ import annotations

import inspect
import re
import urllib.parse
from pathlib import Path

import pytest
import yaml

from config import ConfigError, generate_config_yaml, load_config, load_config_dict
from config.homeserver_schema import HOMESERVER
from config.schema import MISSING, Field, ListOf, Section, Variant


def load_generated(text: str, data_dir: str):
    return load_config_dict(yaml.safe_load(text), source="generated", base_dir=data_dir)


def test_sqlite_default_round_trips(tmp_path: Path) -> None:
    text = generate_config_yaml(server_name="localhost", data_dir=str(tmp_path))
    config = load_generated(text, "/somewhere/else")  # paths are written absolute

    assert config.server_name == "localhost"
    assert config.database.name == "sqlite3"
    assert config.database.args == {"database": str(tmp_path / "homeserver.db")}
    assert config.signing_key_path == str(tmp_path / "localhost.signing.key")
    assert config.data_key_path == str(tmp_path / "data.key")
    assert config.media_store_path == str(tmp_path / "media_store")
    [listener] = config.listeners
    assert (listener.port, listener.bind_addresses, listener.tls, listener.type) == (8008, ["127.0.0.1"], False, "http")
    assert [resource.names for resource in listener.resources] == [["client", "federation"]]
    assert config.enable_registration is False
    assert config.registration_shared_secret is None
    # Everything not set is the schema default.
    assert config.e2ee.required is True
    assert config.max_upload_size == 50 * 1024 * 1024


def test_relative_data_dir_is_written_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = generate_config_yaml(server_name="localhost", data_dir="piman-data")
    assert yaml.safe_load(text)["data_key_path"] == str(tmp_path / "piman-data" / "data.key")


def test_written_file_loads_with_load_config(tmp_path: Path) -> None:
    path = tmp_path / "homeserver.yaml"
    path.write_text(generate_config_yaml(server_name="acme.example", data_dir=str(tmp_path), client_port=0))
    config = load_config(str(path))
    assert config.config_path == str(path)
    assert config.listeners[0].port == 0


def test_postgres_url_round_trips_with_encoded_password(tmp_path: Path) -> None:
    password = "p@ss:w/rd#%?& ü"
    url = f"postgresql://piman%20user:{urllib.parse.quote(password, safe='')}@db.internal:5433/piman_db?sslmode=require"
    text = generate_config_yaml(server_name="acme.example", data_dir=str(tmp_path), database_url=url)
    config = load_generated(text, str(tmp_path))

    assert config.database.name == "psycopg2"
    assert config.database.args == {
        "user": "piman user",
        "password": password,
        "host": "db.internal",
        "port": 5433,
        "database": "piman_db",
        "sslmode": "require",
        "cp_min": 5,
        "cp_max": 10,
    }


def test_postgres_url_without_host_or_port(tmp_path: Path) -> None:
    text = generate_config_yaml(server_name="acme.example", data_dir=str(tmp_path), database_url="postgres:///piman")
    assert load_generated(text, str(tmp_path)).database.args == {"database": "piman", "cp_min": 5, "cp_max": 10}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:topsecret@h/db", "the database URL must start with postgresql://"),
        ("postgresql://u:topsecret@h:99999/db", "cannot parse the database URL"),
        ("postgresql://u:topsecret@h:5432/", "database.args.database: missing required key"),
        ("postgresql://u:topsecret@h/db?sslmode=sometimes", "database.args.sslmode: expected one of"),
    ],
)
def test_bad_database_url(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        generate_config_yaml(server_name="acme.example", data_dir=str(tmp_path), database_url=url)
    assert message in str(caught.value)
    assert "topsecret" not in str(caught.value)


def test_federation_port_adds_a_federation_listener(tmp_path: Path) -> None:
    text = generate_config_yaml(
        server_name="localhost:8448",
        data_dir=str(tmp_path),
        client_port=8008,
        federation_port=8448,
        bind_addresses=["::", "0.0.0.0"],
    )
    config = load_generated(text, str(tmp_path))
    client, federation = config.listeners
    assert (client.port, client.bind_addresses) == (8008, ["::", "0.0.0.0"])
    assert [resource.names for resource in client.resources] == [["client"]]
    assert (federation.port, federation.bind_addresses, federation.tls) == (8448, ["::", "0.0.0.0"], False)
    assert [resource.names for resource in federation.resources] == [["federation"]]
    assert config.signing_key_path == str(tmp_path / "localhost_8448.signing.key")
    assert "&" not in text and "*" not in text.replace("/*", "")  # no YAML anchors/aliases


def test_registration_settings(tmp_path: Path) -> None:
    text = generate_config_yaml(
        server_name="acme.example",
        data_dir=str(tmp_path),
        enable_registration=True,
        registration_shared_secret="s3cr3t: with 'quotes' # and a hash",
    )
    config = load_generated(text, str(tmp_path))
    assert config.enable_registration is True
    assert config.registration_shared_secret == "s3cr3t: with 'quotes' # and a hash"
    closed = load_generated(generate_config_yaml(server_name="acme.example", data_dir=str(tmp_path)), str(tmp_path))
    assert closed.enable_registration is False
    assert closed.registration_shared_secret is None


@pytest.mark.parametrize("server_name", ["bad name", "https://acme.example", "acme.example:99999", "x\ny"])
def test_bad_server_name_is_refused(tmp_path: Path, server_name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        generate_config_yaml(server_name=server_name, data_dir=str(tmp_path))
    assert caught.value.file == "<generated config>"


def test_bad_port_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"listeners\[0\]\.port: must be between 0 and 65535, got 70000"):
        generate_config_yaml(server_name="acme.example", data_dir=str(tmp_path), client_port=70000)


# --- documentation -----------------------------------------------------------------------------


def comment_text(text: str) -> str:
    """All comment text of a YAML file, '#' markers and line breaks removed."""
    words = []
    for line in text.splitlines():
        stripped = line.strip()
        while stripped.startswith("#"):
            stripped = stripped[1:].strip()
        words.append(stripped)
    return " ".join(" ".join(words).split())


def documented_fields(section: Section) -> list[tuple[str, Field]]:
    """Every key the sample documents: the fields of sections, list items and variants."""
    found = []
    for key, node in section.fields.items():
        found.append((key, node))
        if isinstance(node, Section):
            found += documented_fields(node)
        elif isinstance(node, ListOf) and isinstance(node.item, Section):
            found += documented_fields(node.item)
        elif isinstance(node, Variant):
            for case in node.cases.values():
                found += documented_fields(case)
    return found


def test_every_key_is_documented_in_the_sample(tmp_path: Path) -> None:
    text = generate_config_yaml(server_name="acme.example", data_dir=str(tmp_path))
    comments = comment_text(text)
    fields = documented_fields(HOMESERVER)
    assert len(fields) > 60
    for key, node in fields:
        doc = " ".join(inspect.cleandoc(node.doc).split())
        assert doc, f"{key} has no documentation"
        # Wrapping may break a line anywhere; compare the doc's words in order.
        assert doc[:60] in comments, f"the doc of {key} is missing from the sample"
    for key in HOMESERVER.fields:
        assert re.search(rf"^#?{key}:", text, re.MULTILINE), f"{key} is not in the sample"


def test_doc_lines_fit_80_columns(tmp_path: Path) -> None:
    text = generate_config_yaml(server_name="acme.example", data_dir=str(tmp_path))
    long_comments = [line for line in text.splitlines() if line.lstrip().startswith("#") and len(line) > 80]
    assert long_comments == []


def commented_blocks(text: str) -> list[tuple[int, int]]:
    """(start, end) line ranges of commented-out keys: a '#key:' line up to the next blank line."""
    lines = text.splitlines()
    blocks = []
    for index, line in enumerate(lines):
        if re.match(r"^\s*#[a-z0-9_]+:", line):
            end = index + 1
            while end < len(lines) and lines[end] != "":
                end += 1
            blocks.append((index, end))
    return blocks


def uncomment(text: str, block: tuple[int, int]) -> str:
    lines = text.splitlines()
    start, end = block
    for index in range(start, end):
        lines[index] = lines[index].replace("#", "", 1)
    return "\n".join(lines) + "\n"


def test_every_commented_out_key_is_valid_when_uncommented(tmp_path: Path) -> None:
    text = generate_config_yaml(server_name="acme.example", data_dir=str(tmp_path))
    base = load_generated(text, str(tmp_path))
    blocks = commented_blocks(text)
    commented_keys = {text.splitlines()[start].strip().lstrip("#").split(":")[0] for start, _ in blocks}
    assert {"public_baseurl", "password_config", "rc_login", "e2ee", "allow_unsafe_locale"} <= commented_keys

    by_key = {text.splitlines()[start].strip().lstrip("#").split(":")[0]: (start, end) for start, end in blocks}
    # TLS needs both files: those two keys are uncommented together.
    partners = {"tls_certificate_path": "tls_private_key_path", "tls_private_key_path": "tls_certificate_path",
                "turn_username": "turn_password", "turn_password": "turn_username"}

    for key, block in by_key.items():
        uncommented = uncomment(text, block)
        if key in partners:
            uncommented = uncomment(uncommented, by_key[partners[key]])
        config = load_generated(uncommented, str(tmp_path))
        node = HOMESERVER.fields.get(key)
        shows_default = node is None or node.default is not MISSING or (isinstance(node, Section) and not node.optional)
        if key == "rc_admin_redaction":  # optional section: uncommented, it exists with its defaults
            assert (config.rc_admin_redaction.per_second, config.rc_admin_redaction.burst_count) == (1.0, 50)
        elif shows_default:
            assert config == base, f"uncommenting {key} changed the config"
        else:  # an example value for a key without default
            assert getattr(config, key) is not None


def test_everything_uncommented_at_once_is_valid(tmp_path: Path) -> None:
    text = generate_config_yaml(server_name="acme.example", data_dir=str(tmp_path))
    for block in commented_blocks(text):
        text = uncomment(text, block)
    config = load_generated(text, str(tmp_path))
    assert config.public_baseurl == "https://matrix.example.com/"
    assert config.session_lifetime == 90 * 86400 * 1000
    assert not any(re.match(r"^\s*#[a-z0-9_]+:", line) for line in text.splitlines())


def test_header_explains_units(tmp_path: Path) -> None:
    text = generate_config_yaml(server_name="acme.example", data_dir=str(tmp_path))
    assert text.startswith("# Configuration of the piman homeserver acme.example.\n")
    assert "K, M, G or T" in text and "ms s m h d w y" in text
