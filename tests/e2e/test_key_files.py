"""The data key file as an admin meets it: a lost or broken key stops `piman run` with one clear line,
and `piman keys rotate | status | retire` rotate it while keeping every stored message readable."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from homeserver.key_rotation import KEY_FILE_CHECK_INTERVAL_S
from storage.sealing import generate_data_key_file, load_sealer
from tests.e2e.server_process import PIMAN, init_data_dir, piman, running_server, subprocess_env

V3 = "/_matrix/client/v3"
# Plaintext messages, so that reading them back shows the content survived; the encryption
# policy has its own tests.
PLAINTEXT = {"e2ee": {"required": False}}


def _refused_start(config_path: Path) -> str:
    """Run `piman run`, expect it to refuse to start, and return its error line."""
    result = subprocess.run([str(PIMAN), "run", "--config", str(config_path)], capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL, env=subprocess_env())
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"piman run started:\n{output}"
    assert "Traceback" not in output and "listening on" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("piman:")]
    assert len(errors) == 1, f"expected one error line:\n{result.stderr}"
    return errors[0]


def _data_key(config_path: Path) -> Path:
    return config_path.parent / "data.key"


def test_run_reports_a_missing_unreadable_or_garbled_key_file(tmp_path: Path, database_config: dict[str, Any]) -> None:
    config_path = init_data_dir(tmp_path / "data", database_config)
    key_path = _data_key(config_path)
    key_path.unlink()
    assert f"data key file {key_path} does not exist" in _refused_start(config_path)

    key_path.mkdir()  # a path that can't be read as a file, whoever we run as
    assert f"cannot read data key file {key_path}" in _refused_start(config_path)
    key_path.rmdir()

    key_path.write_text("this is not a key\n")
    key_path.chmod(0o600)
    assert f"{key_path}:1: expected '<key id> <base64 key>'" in _refused_start(config_path)


def _register_and_write(base_url: str, password: str = "pw-alice-123") -> dict[str, Any]:
    """Alice registers, names a room, sends a message and uploads a file; returns what to read back."""
    session = requests.post(f"{base_url}{V3}/register", json={"username": "alice", "password": password},
                            timeout=30).json()["session"]
    resp = requests.post(f"{base_url}{V3}/register", timeout=30, json={
        "username": "alice", "password": password, "auth": {"type": "m.login.dummy", "session": session}})
    assert resp.status_code == 200, resp.text
    auth = {"Authorization": f"Bearer {resp.json()['access_token']}"}
    room_id = requests.post(f"{base_url}{V3}/createRoom", json={"name": "Key rotation"}, headers=auth,
                            timeout=30).json()["room_id"]
    requests.put(f"{base_url}{V3}/rooms/{room_id}/send/m.room.message/t1", headers=auth, timeout=30,
                 json={"msgtype": "m.text", "body": "sealed before the rotation"}).raise_for_status()
    upload = requests.post(f"{base_url}/_matrix/media/v3/upload?filename=notes.txt", data=b"file content",
                           headers={**auth, "Content-Type": "text/plain"}, timeout=30)
    upload.raise_for_status()
    return {"room_id": room_id, "mxc": upload.json()["content_uri"]}


def _login(base_url: str, password: str = "pw-alice-123") -> dict[str, str]:
    login = requests.post(f"{base_url}{V3}/login", timeout=30, json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": password})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _read_back(base_url: str, written: dict[str, Any]) -> tuple[str, str, bytes]:
    auth = _login(base_url)
    room_id = written["room_id"]
    name = requests.get(f"{base_url}{V3}/rooms/{room_id}/state/m.room.name/", headers=auth, timeout=30).json()
    messages = requests.get(f"{base_url}{V3}/rooms/{room_id}/messages?dir=b&limit=50", headers=auth,
                            timeout=30).json()["chunk"]
    body = next(e["content"]["body"] for e in messages if e["type"] == "m.room.message")
    server_name, media_id = written["mxc"][len("mxc://"):].split("/")
    media = requests.get(f"{base_url}/_matrix/client/v1/media/download/{server_name}/{media_id}", headers=auth,
                         timeout=30)
    assert media.status_code == 200, media.text
    return name["name"], body, media.content


def test_rotate_status_retire_keep_everything_readable(tmp_path: Path, database_config: dict[str, Any]) -> None:
    config_path = init_data_dir(tmp_path / "data", database_config, **PLAINTEXT)
    key_path = _data_key(config_path)
    old_id = load_sealer(str(key_path)).current_key_id
    with running_server(config_path) as server:
        written = _register_and_write(server.base_url)
        before = _read_back(server.base_url, written)
    assert before == ("Key rotation", "sealed before the rotation", b"file content")

    rotate = piman("keys", "rotate", "--config", str(config_path))
    assert rotate.returncode == 0, rotate.stderr
    sealer = load_sealer(str(key_path))
    new_id = sealer.current_key_id
    assert sealer.key_ids == (old_id, new_id), "the new key is appended, the old one kept"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert re.search(r"^events +\[#+\] (\d+)/\1 rows \(\1 re-sealed\)$", rotate.stderr, re.MULTILINE), rotate.stderr
    assert re.search(r"^media files +\[#+\] 1/1 files \(1 re-sealed\)$", rotate.stderr, re.MULTILINE), rotate.stderr

    status = piman("keys", "status", "--config", str(config_path))
    assert status.returncode == 0, status.stderr
    assert f"re-seal pass to key '{new_id}'" in status.stdout
    in_use = next(line for line in status.stdout.splitlines() if line.startswith("key ids in use:"))
    assert f"'{new_id}'" in in_use and old_id not in in_use, status.stdout

    retire = piman("keys", "retire", "--config", str(config_path))
    assert retire.returncode == 0, retire.stderr
    assert f"Retired key '{old_id}'" in retire.stdout
    assert load_sealer(str(key_path)).key_ids == (new_id,)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    again = piman("keys", "retire", "--config", str(config_path))
    assert again.returncode == 0 and "Nothing to retire" in again.stdout, again.stdout + again.stderr

    with running_server(config_path) as server:  # the new key alone opens everything
        assert _read_back(server.base_url, written) == before


def test_a_running_server_takes_the_new_key_and_reseals_in_the_background(
        tmp_path: Path, database_config: dict[str, Any]) -> None:
    config_path = init_data_dir(tmp_path / "data", database_config, **PLAINTEXT)
    key_path = _data_key(config_path)
    old_id = load_sealer(str(key_path)).current_key_id
    with running_server(config_path) as server:
        written = _register_and_write(server.base_url)
        rotate = piman("keys", "rotate", "--config", str(config_path))
        assert rotate.returncode == 0, rotate.stderr
        assert "A server is running on this database" in rotate.stderr, rotate.stderr
        new_id = load_sealer(str(key_path)).current_key_id
        deadline = time.monotonic() + 3 * KEY_FILE_CHECK_INTERVAL_S + 30
        while True:  # the server notices the key file, then re-seals everything in the background
            status = piman("keys", "status", "--config", str(config_path))
            assert status.returncode == 0, status.stderr
            in_use = next(line for line in status.stdout.splitlines() if line.startswith("key ids in use:"))
            if old_id not in in_use:
                break
            assert time.monotonic() < deadline, status.stdout
            time.sleep(1)
        assert f"'{new_id}'" in in_use
        # New data is sealed with the new key, without a restart.
        requests.put(f"{server.base_url}{V3}/rooms/{written['room_id']}/send/m.room.message/t2", timeout=30,
                     headers=_login(server.base_url), json={"msgtype": "m.text", "body": "after"}).raise_for_status()
        retire = piman("keys", "retire", "--config", str(config_path))
        assert retire.returncode == 0, retire.stderr
        assert load_sealer(str(key_path)).key_ids == (new_id,)
        assert _read_back(server.base_url, written)[1] == "after"  # the server dropped the old key too
    with running_server(config_path) as server:
        assert _read_back(server.base_url, written)[1] == "after"


def test_retire_refuses_a_key_still_in_use_and_resume_finishes(tmp_path: Path, database_config: dict[str, Any]) -> None:
    config_path = init_data_dir(tmp_path / "data", database_config, **PLAINTEXT)
    key_path = _data_key(config_path)
    shutil.copy(key_path, tmp_path / "old.key")
    with running_server(config_path) as server:
        written = _register_and_write(server.base_url)
    rotate = piman("keys", "rotate", "--config", str(config_path))
    assert rotate.returncode == 0, rotate.stderr
    # Data sealed with the old key after the pass (as a server with a stale key file would write).
    old = load_sealer(str(tmp_path / "old.key"))
    _insert_filter_row(database_config, "@alice:example.org", old.seal_json({"room": {}}))

    refused = piman("keys", "retire", "--config", str(config_path))
    assert refused.returncode == 1, refused.stdout
    assert refused.stderr.startswith(f"piman: refusing to retire '{old.current_key_id}'"), refused.stderr
    assert "still in use" in refused.stderr and "--resume" in refused.stderr
    assert old.current_key_id in load_sealer(str(key_path)).key_ids

    resumed = piman("keys", "rotate", "--resume", "--config", str(config_path))
    assert resumed.returncode == 0, resumed.stderr
    assert re.search(r"^user_filters +\[#+\] \d+/\d+ rows \(1 re-sealed\)$", resumed.stderr, re.MULTILINE), \
        resumed.stderr
    retire = piman("keys", "retire", "--config", str(config_path))
    assert retire.returncode == 0, retire.stderr
    assert load_sealer(str(key_path)).key_ids == (load_sealer(str(key_path)).current_key_id,)
    with running_server(config_path) as server:
        assert _read_back(server.base_url, written)[0] == "Key rotation"


def _insert_filter_row(database_config: dict[str, Any], user_id: str, blob: bytes) -> None:
    if database_config["name"] == "sqlite3":
        import sqlite3

        with sqlite3.connect(database_config["args"]["database"]) as conn:
            conn.execute("INSERT INTO user_filters (user_id, filter_json) VALUES (?, ?)", (user_id, blob))
        return
    import psycopg2

    args = dict(database_config["args"])
    conn = psycopg2.connect(**{k: v for k, v in args.items() if k != "database"}, dbname=args["database"])
    try:
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO user_filters (user_id, filter_json) VALUES (%s, %s)", (user_id, blob))
    finally:
        conn.close()


def test_run_names_a_key_the_data_needs_that_the_file_lacks(tmp_path: Path, database_config: dict[str, Any]) -> None:
    config_path = init_data_dir(tmp_path / "data", database_config, **PLAINTEXT)
    key_path = _data_key(config_path)
    with running_server(config_path) as server:
        _register_and_write(server.base_url)
    old_id = load_sealer(str(key_path)).current_key_id
    shutil.move(key_path, tmp_path / "backup.key")
    generate_data_key_file(str(key_path))  # a new key file, as after losing the old one
    line = _refused_start(config_path)
    assert line.endswith(f"data key file {key_path}: key id '{old_id}' used by stored data is not in this file: "
                         f"restore the key file from your backup"), line
    shutil.move(tmp_path / "backup.key", key_path)
    with running_server(config_path):
        pass
