""""No third-party calls": `piman run` with the config `piman init` writes connects to nothing
but what the admin configured.

The server process is watched two ways, so that neither a Python nor a C-level connection slips
through: a `sitecustomize` module put on its PYTHONPATH records every connect, sendto and name
lookup its Python code attempts (refused ones included), and its own TCP/UDP sockets are read
from /proc while a client registers, creates a room, sends messages and to-device messages,
uploads and downloads media, sets a profile, asks for a URL preview and syncs. Anything outbound
other than its database is a third-party call. A control run with URL previews switched on shows
that the watch does see the server's outbound fetches.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import ipaddress
import json
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from PIL import Image

from tests.e2e.server_process import ServerProcess, init_data_dir, running_server

SITECUSTOMIZE = '''\
"""Records every outbound network attempt of this process (tests/e2e/test_no_third_party_calls.py)."""
import json
import os
import socket
import threading

_LOG = os.environ.get("PIMAN_NETWORK_LOG")


def _install(path):
    lock = threading.Lock()

    def record(kind, family, address):
        if isinstance(address, bytes):
            address = address.decode("utf-8", "replace")
        if isinstance(address, tuple):
            address = [str(part) for part in address[:2]]
        line = json.dumps({"kind": kind, "family": int(family), "address": address})
        with lock, open(path, "a") as log:
            log.write(line + "\\n")

    def wrap(name):
        original = getattr(socket.socket, name)

        def wrapper(self, *args):
            record(name, self.family, args[-1])  # connect(address), sendto(data[, flags], address)
            return original(self, *args)

        setattr(socket.socket, name, wrapper)

    for name in ("connect", "connect_ex", "sendto"):
        wrap(name)

    def wrap_lookup(name):
        original = getattr(socket, name)

        def wrapper(host, *args, **kwargs):
            record(name, 0, host if isinstance(host, (str, bytes)) else repr(host))
            return original(host, *args, **kwargs)

        setattr(socket, name, wrapper)

    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        wrap_lookup(name)
    record("installed", 0, str(os.getpid()))


if _LOG:
    _install(_LOG)
'''

PASSWORD = "correct horse battery staple 42"
# Names a lookup of which leaks nothing to a third party.
LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", ""}


@dataclass
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class NetworkWatch:
    """What the server process tried to reach, from its own hook and from /proc."""

    log_path: Path
    pid: int = 0
    proc_seen: set[tuple[str, str, int]] = field(default_factory=set)  # (protocol, remote host, remote port)
    local_ports: set[int] = field(default_factory=set)  # ports of sockets the server accepted on
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def records(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]

    def start_sampling(self, pid: int, listener_ports: set[int]) -> None:
        self.pid, self.local_ports = pid, listener_ports
        self._thread = threading.Thread(target=self._sample_forever, daemon=True)
        self._thread.start()

    def stop_sampling(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sample()  # one last look

    def _sample_forever(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.sample()
            time.sleep(0.02)

    def sample(self) -> None:
        """The server's connected sockets whose local port is not a listener's: outbound ones."""
        inodes = set()
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            with contextlib.suppress(OSError):
                match = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{self.pid}/fd/{fd}"))
                if match:
                    inodes.add(match.group(1))
        for protocol in ("tcp", "tcp6", "udp", "udp6"):
            lines = Path(f"/proc/{self.pid}/net/{protocol}").read_text().splitlines()[1:]
            for line in lines:
                parts = line.split()
                local, remote, state, inode = parts[1], parts[2], parts[3], parts[9]
                if inode not in inodes or state == "0A":  # not the server's, or a listening socket
                    continue
                local_port = int(local.split(":")[1], 16)
                remote_host, remote_port = _proc_address(remote)
                if remote_port == 0 or local_port in self.local_ports:  # unconnected UDP, or inbound
                    continue
                self.proc_seen.add((protocol, remote_host, remote_port))


def _proc_address(text: str) -> tuple[str, int]:
    """'0100007F:1F90' (little-endian words, as /proc/net/tcp writes them) -> ('127.0.0.1', 8080)."""
    hex_ip, hex_port = text.split(":")
    raw = bytes.fromhex(hex_ip)
    packed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(packed)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address), int(hex_port, 16)


def third_party_calls(watch: NetworkWatch, allowed: list[Endpoint]) -> list[str]:
    """Every attempt to reach something that is neither a listener nor the database."""
    allowed_pairs = {(e.host, e.port) for e in allowed}
    found = []
    for record in watch.records():
        kind, family, address = record["kind"], record["family"], record["address"]
        if kind == "installed" or family == 1:  # AF_UNIX: a local socket file, not the network
            continue
        if kind.startswith("get"):
            if address not in LOCAL_NAMES:
                found.append(f"{kind}({address!r})")
            continue
        host, port = address[0], int(address[1])
        if (host, port) not in allowed_pairs:
            found.append(f"{kind}({host}:{port})")
    for protocol, host, port in sorted(watch.proc_seen):
        if (host, port) not in allowed_pairs:
            found.append(f"{protocol} socket to {host}:{port}")
    return found


def allowed_endpoints(server: ServerProcess, database: dict[str, Any]) -> list[Endpoint]:
    endpoints = []
    for url in server.urls:
        host, port = url.split("://", 1)[1].rsplit(":", 1)
        endpoints.append(Endpoint(host.strip("[]"), int(port)))
    if database["name"] == "psycopg2":
        args = database["args"]
        endpoints.append(Endpoint(args["host"], int(args.get("port", 5432))))
    return endpoints


@contextlib.contextmanager
def watched_server(tmp_path: Path, database: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                   **overrides: Any) -> Iterator[tuple[ServerProcess, NetworkWatch]]:
    """`piman init` + `piman run` (overrides on top of the generated config), watched from the start."""
    config_path = init_data_dir(tmp_path / "data", database, **overrides)
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
    watch = NetworkWatch(tmp_path / "network.log")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(hook_dir), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("PIMAN_NETWORK_LOG", str(watch.log_path))
    with running_server(config_path) as server:
        ports = {int(url.rsplit(":", 1)[1]) for url in server.urls}
        watch.start_sampling(server.pid, ports)
        try:
            yield server, watch
        finally:
            watch.stop_sampling()
    installed = [r for r in watch.records() if r["kind"] == "installed"]
    assert installed, "the network hook did not load in the server process: the watch saw nothing"


class Client:
    """A few Matrix calls over plain HTTP, the way any client makes them."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.user_id = ""
        self.device_id = ""

    def call(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = self.session.request(method, self.base_url + path, timeout=30, **kwargs)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.headers.get("Content-Type", "").startswith("application/json") else response

    def register(self, username: str) -> None:
        body = {"username": username, "password": PASSWORD}
        session = self.call("POST", "/_matrix/client/v3/register", 401, json=body)["session"]
        answer = self.call("POST", "/_matrix/client/v3/register",
                           json={**body, "auth": {"type": "m.login.dummy", "session": session}})
        self.session.headers["Authorization"] = f"Bearer {answer['access_token']}"
        self.user_id, self.device_id = answer["user_id"], answer["device_id"]


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


class _Page(http.server.BaseHTTPRequestHandler):
    """A third-party web page: previews of it must only be fetched when the admin allows them."""

    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).hits.append(self.path)
        body = b"<html><head><title>Third party</title><meta property='og:title' content='Hi'></head></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def third_party_site() -> Iterator[str]:
    _Page.hits = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/article"
    finally:
        httpd.shutdown()
        httpd.server_close()


def exercise(base_url: str, page_url: str) -> None:
    """A day of ordinary use of the server with its default (end-to-end encrypted) policy."""
    alice, bob = Client(base_url), Client(base_url)
    alice.register("alice")
    bob.register("bob")
    alice.call("PUT", f"/_matrix/client/v3/profile/{alice.user_id}/displayname", json={"displayname": "Alice"})
    room = alice.call("POST", "/_matrix/client/v3/createRoom", json={"invite": [bob.user_id], "name": "Plans"})
    room_id = room["room_id"]
    bob.call("POST", f"/_matrix/client/v3/join/{room_id}", json={})
    for index in range(3):
        alice.call("PUT", f"/_matrix/client/v3/rooms/{room_id}/send/m.room.encrypted/e{index}", json={
            "algorithm": "m.megolm.v1.aes-sha2", "ciphertext": f"opaque-{index}", "session_id": "s1",
            "sender_key": "k1", "device_id": alice.device_id})
    # A plaintext message with a link is refused (encryption is required), and fetches nothing.
    refused = alice.call("PUT", f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/p1", 403,
                         json={"msgtype": "m.text", "body": f"look: {page_url}"})
    assert refused["errcode"] == "M_FORBIDDEN"
    alice.call("PUT", "/_matrix/client/v3/sendToDevice/m.room.encrypted/td1", json={
        "messages": {bob.user_id: {bob.device_id: {"algorithm": "m.olm.v1.curve25519-aes-sha2", "ciphertext": {}}}}})
    uploaded = alice.call("POST", "/_matrix/media/v3/upload?filename=photo.png", data=png(),
                          headers={"Content-Type": "image/png"})
    server_name, media_id = uploaded["content_uri"][len("mxc://"):].split("/")
    alice.call("PUT", f"/_matrix/client/v3/profile/{alice.user_id}/avatar_url",
               json={"avatar_url": uploaded["content_uri"]})
    assert bob.call("GET", f"/_matrix/client/v1/media/download/{server_name}/{media_id}").content == png()
    bob.call("GET", f"/_matrix/client/v1/media/thumbnail/{server_name}/{media_id}?width=32&height=32&method=scale")
    # URL previews are off by default: the endpoint does not exist, so nothing is fetched.
    preview = bob.call("GET", "/_matrix/client/v1/media/preview_url", 404, params={"url": page_url})
    assert preview["errcode"] == "M_UNRECOGNIZED"
    synced = bob.call("GET", "/_matrix/client/v3/sync?timeout=0")
    assert room_id in synced["rooms"]["join"]
    assert [e["type"] for e in synced["to_device"]["events"]] == ["m.room.encrypted"]
    alice.call("GET", f"/_matrix/client/v3/sync?timeout=0&since={synced['next_batch']}")


def test_default_server_calls_no_third_party(tmp_path: Path, database_config: dict[str, Any],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with third_party_site() as page_url, watched_server(tmp_path, database_config, monkeypatch) as (server, watch):
        exercise(server.base_url, page_url)
        allowed = allowed_endpoints(server, database_config)
    assert _Page.hits == [], "the third-party page was fetched"
    assert third_party_calls(watch, allowed) == []
    if database_config["name"] == "psycopg2":  # the watch does see the server's own outbound sockets
        assert any(port == int(database_config["args"]["port"]) for _, _, port in watch.proc_seen)


def test_watch_sees_an_outbound_fetch_when_the_admin_enables_previews(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: with previews on (an admin's choice), the same watch reports the page fetch."""
    database = {"name": "sqlite3", "args": {"database": str(tmp_path / "homeserver.db")}}
    previews = {"url_preview_enabled": True, "url_preview_ip_range_whitelist": ["127.0.0.1/32"]}
    with third_party_site() as page_url, \
            watched_server(tmp_path, database, monkeypatch, **previews) as (server, watch):
        client = Client(server.base_url)
        client.register(f"u{uuid.uuid4().hex[:8]}")
        client.call("GET", "/_matrix/client/v1/media/preview_url", params={"url": page_url})
        allowed = allowed_endpoints(server, database)
    port = page_url.split(":")[2].split("/")[0]
    assert _Page.hits == ["/article"]
    assert f"connect_ex(127.0.0.1:{port})" in third_party_calls(watch, allowed)
