"""A lean client-server API client for the benchmark.

Plain HTTP/1.1 with keep-alive on the standard library's http.client: it adds
well under a millisecond per request, so the figures measure the servers, not
the client. It speaks only the Matrix client-server API, nothing specific to
either server, so both get exactly the same load.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from typing import Any
from urllib.parse import urlsplit


class MatrixError(RuntimeError):
    """A non-2xx answer: the load is broken, so the benchmark stops."""


class Connection:
    """One keep-alive connection to one server, optionally authenticated as one device."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 90.0) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._timeout = timeout
        self.token = token
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None
    ) -> tuple[int, Any, int]:
        """(status, decoded JSON body, body size in bytes) of one request."""
        if query:
            path = f"{path}?{urllib.parse.urlencode(query)}"
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        # A server may close an idle keep-alive connection: retry once on a new one.
        # Every request the benchmark makes is safe to repeat (sends carry a txn ID).
        for attempt in (1, 2):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            try:
                self._conn.request(method, path, body=payload, headers=headers)
                response = self._conn.getresponse()
                raw = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2 or not reused:
                    raise
                continue
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return response.status, (json.loads(raw) if raw else None), len(raw)
        raise AssertionError("unreachable")

    def call(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        """The JSON answer of a request that must succeed."""
        status, answer, _ = self.request(method, path, body, query)
        if not 200 <= status < 300:
            raise MatrixError(f"{method} {path.split('?')[0]} -> {status}: {answer}")
        return answer


CS = "/_matrix/client/v3"


def quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def register(base_url: str, username: str, password: str) -> tuple[str, str]:
    """Register with user-interactive auth (m.login.dummy); returns (user_id, access token)."""
    conn = Connection(base_url)
    try:
        body: dict[str, Any] = {"username": username, "password": password,
                                "initial_device_display_name": "bench"}
        status, answer, _ = conn.request("POST", f"{CS}/register", body)
        if status == 401:
            body["auth"] = {"type": "m.login.dummy", "session": answer.get("session")}
            answer = conn.call("POST", f"{CS}/register", body)
        elif status != 200:
            raise MatrixError(f"register {username} -> {status}: {answer}")
        return answer["user_id"], answer["access_token"]
    finally:
        conn.close()


def login(base_url: str, username: str, password: str, device_name: str) -> str:
    """A new device's access token."""
    conn = Connection(base_url)
    try:
        answer = conn.call("POST", f"{CS}/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": username},
            "password": password, "initial_device_display_name": device_name,
        })
        return answer["access_token"]
    finally:
        conn.close()


def wait_until_serving(base_url: str, alive: Any, timeout: float) -> None:
    """Return once /versions answers 200; `alive()` false means the server died."""
    deadline = time.monotonic() + timeout
    while True:
        conn = Connection(base_url, timeout=5)
        try:
            if conn.request("GET", "/_matrix/client/versions")[0] == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        if not alive():
            raise RuntimeError(f"server at {base_url} exited during start-up")
        if time.monotonic() > deadline:
            raise RuntimeError(f"server at {base_url} did not answer /versions within {timeout}s")
        time.sleep(0.1)
