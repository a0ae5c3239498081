"""Run `piman` as a real subprocess, the way an admin does.

End-to-end tests talk to the server only over loopback HTTP and its command
line, so they check what a deployment sees: the console script, the generated
config, start-up, the "listening on" lines and a clean stop on SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import yaml

PIMAN = Path(sys.executable).with_name("piman")
SERVER_NAME = "localhost"
SHARED_SECRET = "e2e-shared-secret-0123456789"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
_LISTENING = re.compile(r"listening on (https?://[^\s,;)]+)")
_GENEROUS_RATE = {"per_second": 1000, "burst_count": 1000}


def piman(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one `piman` command to completion, capturing stdout and stderr."""
    return subprocess.run(
        [str(PIMAN), *args], capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL, env=subprocess_env(),
    )


def subprocess_env() -> dict[str, str]:
    """Our environment, unbuffered so the server's lines reach us as it prints them."""
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def init_data_dir(data_dir: Path, database: dict[str, Any], **overrides: Any) -> Path:
    """`piman init` a data dir, then adapt its config for a test run.

    Every listener gets an ephemeral loopback port (so parallel tests never
    collide), the database is the test's, password hashing is cheap and rate
    limits are out of the way unless `overrides` say otherwise.
    """
    result = piman("init", "--data-dir", str(data_dir), "--server-name", SERVER_NAME,
                   "--enable-registration")
    assert result.returncode == 0, f"piman init failed ({result.returncode}):\n{result.stderr}"
    config_path = data_dir / "homeserver.yaml"
    config = yaml.safe_load(config_path.read_text())
    for listener in config["listeners"]:
        listener["port"] = 0
        listener["bind_addresses"] = ["127.0.0.1"]
    config.update(
        # The test's database, declared where `piman init` declared its own (data_residency pins it).
        database={**database, "location": config["database"]["location"]},
        registration_shared_secret=SHARED_SECRET,
        bcrypt_rounds=4,
        rc_registration=_GENEROUS_RATE,
        rc_login={"address": _GENEROUS_RATE, "account": _GENEROUS_RATE,
                  "failed_attempts": _GENEROUS_RATE},
    )
    config.update(overrides)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config_path


class ServerProcess:
    """One `piman run --config FILE` subprocess and everything it printed."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self._lines: list[str] = []
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.urls: list[str] = []
        self.base_url = ""

    @property
    def output(self) -> str:
        """stdout and stderr so far, interleaved as the server wrote them."""
        return "".join(self._lines)

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        assert self._proc is not None
        return self._proc.poll()

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server; return once every listener has said it is listening."""
        listeners = len(yaml.safe_load(self.config_path.read_text())["listeners"])
        self._proc = subprocess.Popen(
            [str(PIMAN), "run", "--config", str(self.config_path)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, env=subprocess_env(),
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while True:
            self.urls = list(dict.fromkeys(_LISTENING.findall(self.output)))
            if len(self.urls) >= listeners:
                break
            if self._proc.poll() is not None:
                self._reader.join(5)
                raise AssertionError(
                    f"piman run exited with {self._proc.returncode} before listening:\n{self.output}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(
                    f"piman run printed {len(self.urls)}/{listeners} 'listening on' lines "
                    f"in {timeout}s:\n{self.output}")
            time.sleep(0.05)
        try:
            self.base_url = self._find_client_url()
        except AssertionError:
            self.kill()
            raise

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.append(line)

    def _find_client_url(self) -> str:
        """The listener serving the client API (others serve federation or metrics)."""
        for url in self.urls:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/_matrix/client/versions", timeout=5).status_code == 200:
                    return url
        raise AssertionError(f"no listener of {self.urls} serves /_matrix/client/versions:\n{self.output}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM the server and wait for it; returns its exit code."""
        assert self._proc is not None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"piman run did not stop within {timeout}s of SIGTERM:\n{self.output}")
        assert self._reader is not None
        self._reader.join(5)
        return self._proc.returncode

    def kill(self) -> None:
        assert self._proc is not None
        self._proc.kill()
        self._proc.wait()


@contextlib.contextmanager
def running_server(config_path: Path) -> Iterator[ServerProcess]:
    """A started server, stopped with SIGTERM afterwards; it must exit 0.

    The server's output is printed at the end: pytest shows it when a test fails.
    """
    server = ServerProcess(config_path)
    server.start()
    try:
        yield server
    finally:
        code = server.stop()
        print(f"--- piman run output ({config_path}) ---\n{server.output}")
    assert code == 0, f"piman run exited {code} after SIGTERM:\n{server.output}"


@pytest.fixture
def homeserver(tmp_path: Path, database_config: dict[str, Any]) -> Iterator[ServerProcess]:
    """A running `piman run` on a fresh data dir, once per database engine."""
    config_path = init_data_dir(tmp_path / "data", database_config)
    with running_server(config_path) as server:
        yield server
