"""A private, throw-away PostgreSQL server for the test suite.

Tests run against real PostgreSQL, never a mock. Either the developer points
us at a server they already run (``PIMAN_TEST_POSTGRES_DSN``, a libpq URL of a
superuser), or we start our own cluster from the machine's ``initdb`` and
``pg_ctl`` in a temporary directory, on a free loopback port, tuned for speed
(no fsync) since its data is deleted at the end. PostgreSQL refuses to run as
root, so when we are root the cluster runs as the unprivileged ``piman-pg``
user. Each pytest-xdist worker gets its own cluster.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import psycopg2
import psycopg2.extensions

DSN_ENV = "PIMAN_TEST_POSTGRES_DSN"
CLUSTER_USER = "piman-pg"
SUPERUSER = "postgres"

_MISSING_BINARIES = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH nor in "
    "/usr/lib/postgresql/*/bin. Install them with `apt-get install postgresql` "
    "(`make test` does this for you), or set {env}=postgresql://USER@HOST:PORT/postgres "
    "to use a server you already run, or run SQLite only with PIMAN_TEST_ENGINES=sqlite."
).format(env=DSN_ENV)


class PostgresProvisioningError(RuntimeError):
    pass


def find_server_binaries() -> Path:
    """The directory holding initdb and pg_ctl, newest major version first."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for candidate in candidates:
        if os.access(os.path.join(candidate, "initdb"), os.X_OK):
            return Path(candidate)
    raise PostgresProvisioningError(_MISSING_BINARIES)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_cluster_user() -> pwd.struct_passwd:
    """The unprivileged OS user PostgreSQL runs as when we are root, created if missing."""
    try:
        return pwd.getpwnam(CLUSTER_USER)
    except KeyError:
        pass
    result = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--user-group", CLUSTER_USER],
        capture_output=True, text=True,
    )  # fmt: skip
    try:
        # Another xdist worker may have created it in the meantime: that's fine too.
        return pwd.getpwnam(CLUSTER_USER)
    except KeyError:
        raise PostgresProvisioningError(
            f"could not create the OS user {CLUSTER_USER!r} to run PostgreSQL "
            f"(it refuses to run as root): {result.stderr.strip()}"
        ) from None


class PostgresServer:
    """A PostgreSQL server we may create and drop databases on."""

    def __init__(
        self, connect_args: dict[str, Any], admin_dbname: str, cluster: "_LocalCluster | None"
    ) -> None:
        self.connect_args = connect_args
        self._admin_dbname = admin_dbname
        self._cluster = cluster
        self._admin: Any = None
        self._spares: _SpareDatabases | None = None

    @classmethod
    def from_dsn(cls, dsn: str) -> "PostgresServer":
        parsed = psycopg2.extensions.parse_dsn(dsn)
        args: dict[str, Any] = {k: v for k, v in parsed.items() if k != "dbname"}
        if "port" in args:
            args["port"] = int(args["port"])
        return cls(args, parsed.get("dbname", "postgres"), cluster=None)

    @classmethod
    def start_local(cls) -> "PostgresServer":
        cluster = _LocalCluster()
        cluster.start()
        connect_args = {"host": "127.0.0.1", "port": cluster.port, "user": SUPERUSER}
        return cls(connect_args, "postgres", cluster=cluster)

    def connect_admin(self) -> Any:
        conn = psycopg2.connect(dbname=self._admin_dbname, **self.connect_args)
        conn.autocommit = True
        return conn

    def _admin_connection(self) -> Any:
        if self._admin is None or self._admin.closed:
            self._admin = self.connect_admin()
        return self._admin

    def create_database(self) -> str:
        """A fresh database, made ahead of time by a background thread to keep tests quick."""
        if self._spares is None:
            self._spares = _SpareDatabases(self)
        return self._spares.take()

    def drop_database(self, name: str) -> None:
        # Backends of just-closed connections take a moment to exit, and DROP
        # DATABASE would then sleep in 100 ms steps: wait for them briefly
        # ourselves. FORCE ends connections a failed test may have left open.
        deadline = time.monotonic() + 2
        with self._admin_connection().cursor() as cur:
            while time.monotonic() < deadline:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,))
                if cur.fetchone()[0] == 0:
                    break
                time.sleep(0.002)
        self.execute_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def execute_admin(self, sql: str) -> None:
        with self._admin_connection().cursor() as cur:
            cur.execute(sql)

    def close(self) -> None:
        if self._spares is not None:
            for name in self._spares.stop():
                self.drop_database(name)
            self._spares = None
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self._cluster is not None:
            self._cluster.stop()
            self._cluster = None


class _SpareDatabases:
    """Creates databases on a thread of its own, a couple ahead of demand.

    CREATE DATABASE copies a template (a few hundred ms here); doing it while
    the previous test runs takes it off the tests' critical path.
    """

    def __init__(self, server: PostgresServer, depth: int = 2) -> None:
        self._server = server
        self._ready: queue.Queue[str] = queue.Queue(maxsize=depth)
        self._stopping = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="piman-pg-spares", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with contextlib.closing(self._server.connect_admin()) as conn:
                while not self._stopping.is_set():
                    name = self._create(conn)
                    while not self._offer(name):
                        if self._stopping.is_set():
                            with conn.cursor() as cur:
                                cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
                            return
        except BaseException as e:  # reported by take()
            self._error = e

    @staticmethod
    def _create(conn: Any) -> str:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        name = f"piman_test_{worker}_{uuid.uuid4().hex[:12]}"
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' "
                "TEMPLATE template0"
            )
        return name

    def _offer(self, name: str) -> bool:
        try:
            self._ready.put(name, timeout=0.1)
            return True
        except queue.Full:
            return False

    def take(self) -> str:
        while True:
            try:
                return self._ready.get(timeout=0.1)
            except queue.Empty:
                if not self._thread.is_alive():
                    raise PostgresProvisioningError(
                        f"could not create a test database: {self._error}"
                    ) from self._error

    def stop(self) -> list[str]:
        """Stop the thread; returns the databases made but never handed out."""
        self._stopping.set()
        leftovers: list[str] = []
        while self._thread.is_alive() or not self._ready.empty():
            try:
                leftovers.append(self._ready.get(timeout=0.1))
            except queue.Empty:
                pass
        return leftovers


class _LocalCluster:
    """initdb + pg_ctl in a temporary directory, removed again by stop()."""

    _START_ATTEMPTS = 5

    def __init__(self) -> None:
        self.bindir = find_server_binaries()
        self.port = 0
        self.run_as: pwd.struct_passwd | None = (
            _ensure_cluster_user() if os.geteuid() == 0 else None
        )
        self.base = Path(tempfile.mkdtemp(prefix="piman-pg-"))
        if self.run_as is not None:
            os.chown(self.base, self.run_as.pw_uid, self.run_as.pw_gid)
        self.datadir = self.base / "data"
        self.logfile = self.base / "server.log"
        self._started = False

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        cmd = list(argv)
        if self.run_as is not None:
            cmd = ["runuser", "-u", self.run_as.pw_name, "--", *cmd]
        return subprocess.run(cmd, cwd=self.base, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        try:
            self._init()
            for _ in range(self._START_ATTEMPTS):
                # Another worker may grab the port between probe and bind: retry on a new one.
                self.port = _free_port()
                self._configure_port()
                result = self._run(
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.logfile),
                    "-w",
                    "-t",
                    "60",
                    "start",
                )
                if result.returncode == 0:
                    self._started = True
                    # Backstop for an interpreter exit that skips fixture teardown.
                    atexit.register(self.stop)
                    return
            log = self.logfile.read_text(errors="replace") if self.logfile.exists() else ""
            raise PostgresProvisioningError(
                f"pg_ctl start failed: {result.stdout}{result.stderr}\nserver log:\n{log[-4000:]}"
            )
        except BaseException:
            self.stop()
            raise

    def _init(self) -> None:
        result = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        if result.returncode != 0:
            raise PostgresProvisioningError(f"initdb failed: {result.stdout}{result.stderr}")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.base}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "300",
            "shared_buffers": "32MB",
        }
        conf = self.datadir / "postgresql.conf"
        with open(conf, "a") as f:
            f.write("\n# piman test cluster\n")
            for key, value in settings.items():
                f.write(f"{key} = {value}\n")

    def _configure_port(self) -> None:
        (self.datadir / "postgresql.auto.conf").write_text(f"port = {self.port}\n")
        if self.run_as is not None:
            os.chown(self.datadir / "postgresql.auto.conf", self.run_as.pw_uid, self.run_as.pw_gid)

    def stop(self) -> None:
        if self._started:
            self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-m",
                "immediate",
                "-w",
                "stop",
            )
            self._started = False
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def provision() -> Iterator[PostgresServer]:
    """The server to test against: the developer's (env) or a private cluster."""
    dsn = os.environ.get(DSN_ENV)
    server = PostgresServer.from_dsn(dsn) if dsn else PostgresServer.start_local()
    try:
        yield server
    finally:
        server.close()
