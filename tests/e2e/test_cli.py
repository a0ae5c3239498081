"""The `piman` command line as an admin meets it: init, config check, run."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import yaml

from tests.e2e.server_process import PIMAN, SERVER_NAME, ServerProcess, init_data_dir, piman, subprocess_env


def _sqlite(tmp_path: Path) -> dict[str, object]:
    return {"name": "sqlite3", "args": {"database": str(tmp_path / "homeserver.db")}}


def _key_files(config_path: Path) -> dict[str, Path]:
    """The signing key and data key files a config names (paths relative to the config)."""
    config = yaml.safe_load(config_path.read_text())
    names = {
        "signing key": config.get("signing_key_path") or f"{SERVER_NAME}.signing.key",
        "data key": config.get("data_key_path") or "data.key",
    }
    return {what: config_path.parent / name for what, name in names.items()}


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_init_writes_config_and_private_keys(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = piman("init", "--data-dir", str(data_dir), "--server-name", SERVER_NAME)
    assert result.returncode == 0, result.stderr
    config_path = data_dir / "homeserver.yaml"
    config = yaml.safe_load(config_path.read_text())
    assert config["server_name"] == SERVER_NAME
    assert not config.get("enable_registration"), "a config from `piman init` has registration off"
    assert "#" in config_path.read_text(), "the generated config is commented"
    for what, path in _key_files(config_path).items():
        assert path.is_file(), f"{what} {path} was not written"
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o600, f"{what} {path} has mode {oct(mode)}, expected 0o600"
    check = piman("config", "check", "--config", str(config_path))
    assert check.returncode == 0, check.stderr


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert piman("init", "--data-dir", str(data_dir), "--server-name", SERVER_NAME).returncode == 0
    before = _snapshot(data_dir)
    again = piman("init", "--data-dir", str(data_dir), "--server-name", "other.example")
    assert again.returncode != 0, "a second init over an existing config must fail"
    assert str(data_dir / "homeserver.yaml") in again.stderr, again.stderr
    assert _snapshot(data_dir) == before, "a refused init must not touch any file"


def _broken_config(tmp_path: Path, **changes: object) -> Path:
    config_path = init_data_dir(tmp_path / "data", _sqlite(tmp_path))
    config = yaml.safe_load(config_path.read_text())
    config.update(changes)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config_path


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, f"expected a failure, got exit 0: {result.stdout}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    return lines[0]


def test_config_check_names_file_and_key_of_a_typo(tmp_path: Path) -> None:
    config_path = _broken_config(tmp_path, enable_registraton=True)
    line = _one_line_error(piman("config", "check", "--config", str(config_path)))
    assert str(config_path) in line and "enable_registraton" in line, line
    assert "enable_registration" in line.replace("enable_registraton", ""), f"no 'did you mean': {line}"


def test_config_check_names_file_and_key_of_a_wrong_type(tmp_path: Path) -> None:
    config_path = init_data_dir(tmp_path / "data", _sqlite(tmp_path))
    config = yaml.safe_load(config_path.read_text())
    config["listeners"][0]["port"] = "eighty"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    line = _one_line_error(piman("config", "check", "--config", str(config_path)))
    assert str(config_path) in line and "listeners[0].port" in line, line


def test_run_refuses_a_broken_config(tmp_path: Path) -> None:
    config_path = _broken_config(tmp_path, bcrypt_rounds="many")
    result = subprocess.run([str(PIMAN), "run", "--config", str(config_path)], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL, env=subprocess_env())
    line = _one_line_error(result)
    assert str(config_path) in line and "bcrypt_rounds" in line, line
    assert "listening on" not in result.stdout


def test_run_refuses_a_world_readable_data_key(tmp_path: Path) -> None:
    config_path = init_data_dir(tmp_path / "data", _sqlite(tmp_path))
    data_key = _key_files(config_path)["data key"]
    os.chmod(data_key, 0o644)
    result = subprocess.run([str(PIMAN), "run", "--config", str(config_path)], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL, env=subprocess_env())
    assert result.returncode != 0, f"piman run started with a world-readable data key:\n{result.stdout}"
    assert str(data_key) in result.stderr, result.stderr
    assert "listening on" not in result.stdout + result.stderr


def test_a_second_server_on_the_same_database_refuses_to_start(tmp_path: Path,
                                                               database_config: dict[str, object]) -> None:
    """Two servers on one database would each trust caches the other makes stale."""
    config_path = init_data_dir(tmp_path / "data", database_config)
    first = ServerProcess(config_path)
    first.start()
    try:
        result = subprocess.run([str(PIMAN), "run", "--config", str(config_path)], capture_output=True,
                                text=True, timeout=60, stdin=subprocess.DEVNULL, env=subprocess_env())
        assert result.returncode == 1, result.stdout
        assert "cannot start: another piman process is using" in result.stderr, result.stderr
        assert "listening on" not in result.stdout
    finally:
        assert first.stop() == 0
    again = ServerProcess(config_path)  # released on a clean stop
    again.start()
    assert again.stop() == 0
