"""`form_secret`, which signs the consent page's links: required with require_consent, long enough to stay
secret, kept out of repr(), and written by `piman init`; and the links' `h` kept out of the access log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config import ConfigError, load_config, load_config_dict
from homeserver.cli import init_data_dir
from homeserver.http.site import redact_uri

SOURCE = "/etc/piman/homeserver.yaml"
POLICY = {"version": "2026-11", "url": "https://acme.example/privacy"}


def minimal(**extra: Any) -> dict[str, Any]:
    return {
        "server_name": "acme.example",
        "listeners": [{"port": 8008, "resources": [{"names": ["client", "consent"]}]}],
        **extra,
    }


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config_dict(data, source=SOURCE, base_dir="/srv/piman")
    return str(caught.value)


def test_require_consent_needs_a_form_secret() -> None:
    message = error_of(minimal(privacy_policy=POLICY, require_consent=True))
    assert message.startswith(f"{SOURCE}: form_secret: is required with require_consent")
    assert "openssl rand" in message and len(message.splitlines()) == 1


def test_a_short_form_secret_is_refused_without_echoing_it() -> None:
    message = error_of(minimal(privacy_policy=POLICY, form_secret="hunter2"))
    assert message.startswith(f"{SOURCE}: form_secret: too short to stay secret")
    assert "hunter2" not in message


def test_form_secret_is_read_and_kept_out_of_repr() -> None:
    config = load_config_dict(minimal(privacy_policy=POLICY, require_consent=True,
                                      form_secret="hunter2-hunter2-hunter2"))
    assert config.form_secret == "hunter2-hunter2-hunter2"
    assert config.listeners[0].resources[0].names == ["client", "consent"]
    assert "hunter2" not in repr(config)
    assert load_config_dict(minimal()).form_secret is None  # optional without require_consent


def test_piman_init_writes_a_form_secret(tmp_path: Path) -> None:
    config = load_config(init_data_dir(str(tmp_path / "data"), "acme.example"))
    assert config.form_secret is not None and len(config.form_secret) >= 32
    other = load_config(init_data_dir(str(tmp_path / "other"), "acme.example"))
    assert other.form_secret != config.form_secret


def test_the_access_log_hides_the_links_signature() -> None:
    logged = redact_uri(b"/_matrix/consent?u=alice&h=68a152465a4d&depth=2")
    assert logged == "/_matrix/consent?u=alice&h=<redacted>&depth=2"
    assert redact_uri(b"/_matrix/consent?h=68a1") == "/_matrix/consent?h=<redacted>"
