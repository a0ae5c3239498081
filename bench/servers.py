"""Start and stop the two homeservers under comparison, each as the admin would run it.

Both get a generated config adapted the same way: loopback only on a free
port, the same PostgreSQL server (a database each), open registration, rate
limits out of the way, no federation. Everything else stays at each server's
defaults, so the comparison is of what an admin gets out of the box.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any, Callable

import yaml

from bench.client import wait_until_serving

START_TIMEOUT = 180.0  # Synapse creates its schema on first start: that takes a while
STOP_TIMEOUT = 30.0
_NO_LIMIT = {"per_second": 100000, "burst_count": 100000}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BenchServer:
    """A homeserver subprocess whose output goes to a log file in its work dir."""

    name = ""

    def __init__(self, workdir: Path, database: dict[str, Any]) -> None:
        self.workdir = workdir
        self.database = database  # {"host", "port", "user", "database"}
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def configure(self) -> list[str]:
        """Write the config; return the command line that runs the server."""
        raise NotImplementedError

    def start(self) -> None:
        argv = self.configure()
        self._log = open(self.log_path, "ab")
        self._proc = subprocess.Popen(
            argv, cwd=self.workdir, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            wait_until_serving(self.base_url, lambda: self._proc.poll() is None, START_TIMEOUT)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it lingers; returns the exit code."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self._proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's output and of any log file it writes (Synapse's homeserver.log)."""
        tails = []
        for path in sorted(self.workdir.rglob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            if text:
                tails.append(f"--- {path} ---\n" + "\n".join(text))
        return "\n".join(tails)


class SynapseServer(BenchServer):
    """matrix-synapse from its own virtualenv, config from its --generate-config."""

    name = "synapse"

    def __init__(self, workdir: Path, database: dict[str, Any], venv: Path) -> None:
        super().__init__(workdir, database)
        self.python = venv / "bin" / "python"

    def configure(self) -> list[str]:
        check = subprocess.run([str(self.python), "-c", "import synapse, psycopg2"],
                               capture_output=True, text=True, timeout=60)
        if check.returncode != 0:
            raise RuntimeError(
                f"{self.python} cannot import synapse and psycopg2 ({check.stderr.strip().splitlines()[-1:]}); "
                "install them with: .venv-synapse/bin/pip install 'matrix-synapse[postgres]==1.163.*'")
        config_path = self.workdir / "homeserver.yaml"
        generate = subprocess.run(
            [str(self.python), "-m", "synapse.app.homeserver", "--generate-config",
             "--server-name", "localhost", "--config-path", str(config_path),
             "--data-directory", str(self.workdir), "--report-stats=no"],
            cwd=self.workdir, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if generate.returncode != 0:
            raise RuntimeError(f"synapse --generate-config failed:\n{generate.stdout}{generate.stderr}")
        config = yaml.safe_load(config_path.read_text())
        config.update(
            listeners=[{
                "port": self.port, "bind_addresses": ["127.0.0.1"], "type": "http",
                "tls": False, "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }],
            database={"name": "psycopg2", "args": {**self.database, "cp_min": 5, "cp_max": 10}},
            enable_registration=True,
            enable_registration_without_verification=True,
            report_stats=False,
            trusted_key_servers=[],
            suppress_key_server_warning=True,
            federation_domain_whitelist=[],
            **_synapse_rate_limits(),
        )  # fmt: skip
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        return [str(self.python), "-m", "synapse.app.homeserver", "-c", str(config_path)]


def _synapse_rate_limits() -> dict[str, Any]:
    return {
        "rc_message": _NO_LIMIT,
        "rc_registration": _NO_LIMIT,
        "rc_login": {"address": _NO_LIMIT, "account": _NO_LIMIT, "failed_attempts": _NO_LIMIT},
        "rc_admin_redaction": _NO_LIMIT,
        "rc_joins": {"local": _NO_LIMIT, "remote": _NO_LIMIT},
        "rc_joins_per_room": _NO_LIMIT,
        "rc_invites": {"per_room": _NO_LIMIT, "per_user": _NO_LIMIT, "per_issuer": _NO_LIMIT},
        "rc_room_creation": _NO_LIMIT,
        "rc_presence": {"per_user": _NO_LIMIT},
        "rc_profile": _NO_LIMIT,
        "rc_user_directory": _NO_LIMIT,
        "rc_reports": _NO_LIMIT,
        "rc_media_create": _NO_LIMIT,
        "rc_delayed_event_mgmt": _NO_LIMIT,
        "rc_3pid_validation": _NO_LIMIT,
        "rc_third_party_invite": _NO_LIMIT,
        "rc_key_requests": _NO_LIMIT,
    }


class PimanServer(BenchServer):
    """`piman run` from the project's venv, config from `piman init`."""

    name = "piman"

    def __init__(self, workdir: Path, database: dict[str, Any], piman: Path) -> None:
        super().__init__(workdir, database)
        self.piman = piman

    def configure(self) -> list[str]:
        data_dir = self.workdir / "data"
        init = subprocess.run(
            [str(self.piman), "init", "--data-dir", str(data_dir), "--server-name", "localhost",
             "--enable-registration"],
            cwd=self.workdir, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"piman init failed:\n{init.stdout}{init.stderr}")
        config_path = data_dir / "homeserver.yaml"
        config = yaml.safe_load(config_path.read_text())
        config.update(
            listeners=[{
                "port": self.port, "bind_addresses": ["127.0.0.1"], "type": "http",
                "resources": [{"names": ["client"], "compress": False}],
            }],
            # The database stays where `piman init` declared it (data_residency pins it).
            database={"name": "psycopg2", "args": {**self.database, "cp_min": 5, "cp_max": 10},
                      "location": config["database"]["location"]},
            # Synapse sends plaintext by default; piman refuses plaintext unless told otherwise.
            # The benchmark compares the same plaintext load on both.
            e2ee={"required": False},
            rc_message=_NO_LIMIT,
            rc_registration=_NO_LIMIT,
            rc_login={"address": _NO_LIMIT, "account": _NO_LIMIT, "failed_attempts": _NO_LIMIT},
            rc_joins={"local": _NO_LIMIT, "remote": _NO_LIMIT},
            rc_invites={"per_room": _NO_LIMIT, "per_user": _NO_LIMIT, "per_issuer": _NO_LIMIT},
            rc_admin_redaction=_NO_LIMIT,
        )  # fmt: skip
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        return [str(self.piman), "run", "--config", str(config_path)]


ServerFactory = Callable[[Path, dict[str, Any]], BenchServer]
