"""Sealing at rest: round trips, key file handling, and refusing what can't be trusted."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from storage.sealing import DataKeyError, Sealer, generate_data_key_file, load_sealer


def test_round_trips(sealer: Sealer) -> None:
    blob = sealer.seal(b"secret message")
    assert b"secret message" not in blob
    assert sealer.open(blob) == b"secret message"
    assert sealer.seal(b"secret message") != blob  # fresh nonce each time
    assert blob[0] == 1 and blob[2 : 2 + blob[1]] == sealer.current_key_id.encode()
    doc = {"name": "Zoë", "n": [1, 2], "nested": {"b": True}}
    assert sealer.open_json(sealer.seal_json(doc)) == doc
    assert sealer.open_str(sealer.seal_str("téléphone")) == "téléphone"
    assert sealer.seal_str(None) is None and sealer.open_str(None) is None
    assert sealer.open(memoryview(blob)) == b"secret message"


def test_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "data.key"
    generate_data_key_file(str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_text()
    with pytest.raises(DataKeyError, match="already exists"):
        generate_data_key_file(str(path))
    assert path.read_text() == before


def test_world_readable_key_file_is_refused(data_key_path: Path) -> None:
    os.chmod(data_key_path, 0o644)
    with pytest.raises(DataKeyError, match=f"{data_key_path}.*0644.*chmod 600"):
        load_sealer(str(data_key_path))
    os.chmod(data_key_path, 0o640)
    with pytest.raises(DataKeyError, match="other users"):
        load_sealer(str(data_key_path))


def test_missing_and_malformed_key_files(tmp_path: Path) -> None:
    with pytest.raises(DataKeyError, match="does not exist"):
        load_sealer(str(tmp_path / "nope.key"))
    cases = {
        "only-one-field\n": "expected '<key id> <base64 key>'",
        "k1 !!!notbase64\n": "not valid base64",
        "k1 AAAA\n": "3 bytes, expected 32",
        "# nothing but comments\n": "holds no key",
        "bad/id " + "A" * 43 + "\n": "invalid key id",
        "k1 " + "A" * 43 + "\nk1 " + "B" * 43 + "\n": "appears twice",
    }
    for text, message in cases.items():
        path = tmp_path / "bad.key"
        path.write_text(text)
        path.chmod(0o600)
        with pytest.raises(DataKeyError, match=message):
            load_sealer(str(path))


def test_unknown_key_id_and_tampering_are_refused(tmp_path: Path, sealer: Sealer) -> None:
    blob = sealer.seal(b"hello")
    other_path = tmp_path / "other.key"
    generate_data_key_file(str(other_path))
    other = load_sealer(str(other_path))
    with pytest.raises(
        DataKeyError, match=f"needs data key '{sealer.current_key_id}'.*{other_path}"
    ):
        other.open(blob)

    tampered = bytearray(blob)
    tampered[-1] ^= 0x01
    with pytest.raises(DataKeyError, match="altered or corrupted"):
        sealer.open(bytes(tampered))
    with pytest.raises(DataKeyError, match="unknown format"):
        sealer.open(b"\x02" + blob[1:])


def test_rotation_last_line_seals_older_lines_still_open(
    tmp_path: Path, data_key_path: Path
) -> None:
    old = load_sealer(str(data_key_path))
    old_blob = old.seal(b"from before")
    new_path = tmp_path / "new.key"
    generate_data_key_file(str(new_path))
    new_line = [line for line in new_path.read_text().splitlines() if not line.startswith("#")][0]
    with open(data_key_path, "a") as f:
        f.write(new_line + "\n")
    rotated = load_sealer(str(data_key_path))
    assert rotated.current_key_id == new_line.split()[0] != old.current_key_id
    assert rotated.open(old_blob) == b"from before"
    assert rotated.open(rotated.seal(b"after")) == b"after"
