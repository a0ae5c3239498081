"""Running a HomeServer: listeners from the config, logging, and a clean stop on SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import sys
from typing import Any

from prometheus_client.twisted import MetricsResource
from twisted.internet import defer, ssl
from twisted.internet.interfaces import IListeningPort
from twisted.protocols.policies import WrappingFactory
from twisted.web.resource import Resource

from config import HomeServerConfig
from homeserver.context import RequestIdFilter
from homeserver.http.router import JsonRouter
from homeserver.http.site import PimanRequest, PimanSite
from homeserver.server import HomeServer

logger = logging.getLogger("piman")

METRICS_PATHS = (b"/_synapse/metrics", b"/metrics")


class _Health(Resource):
    isLeaf = True

    def render_GET(self, request: PimanRequest) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain")
        return b"OK"


class ListenerRoot(Resource):
    """Sends metrics and health checks to their plain-text resources, everything else to the JSON router."""

    def __init__(self, router: JsonRouter | None, metrics: Resource | None, health: bool) -> None:
        super().__init__()
        self._router = router
        self._metrics = metrics
        self._health = _Health() if health else None

    def getChildWithDefault(self, name: bytes, request: PimanRequest) -> Resource:  # type: ignore[override]
        if self._metrics is not None and request.path in METRICS_PATHS:
            return self._metrics
        if self._health is not None and request.path == b"/health":
            return self._health
        if self._router is not None:
            return self._router
        return super().getChildWithDefault(name, request)

    def render(self, request: PimanRequest) -> Any:  # type: ignore[override]
        return self.getChildWithDefault(b"", request).render(request)


def setup_logging(level: str) -> None:
    """Logs go to stderr, each line naming its request; bodies and tokens are never logged."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    globalLogBeginner.beginLoggingTo([STDLibLogObserver(name="twisted")], redirectStandardIO=False)


def _tls_options(config: HomeServerConfig) -> ssl.CertificateOptions:
    with open(config.tls_certificate_path or "", "rb") as f:
        cert_pem = f.read()
    with open(config.tls_private_key_path or "", "rb") as f:
        key_pem = f.read()
    return ssl.PrivateCertificate.loadPEM(cert_pem + b"\n" + key_pem).options()


class Listener:
    """A listening port, and the connections it accepted (so a shutdown can flush and close them)."""

    def __init__(self, port: IListeningPort, connections: WrappingFactory, description: str) -> None:
        self.port = port
        self.connections = connections
        self.description = description

    async def close_connections(self, clock: Any, timeout_s: float = 5.0) -> None:
        """Close every open connection after its pending output is written."""
        for protocol in list(self.connections.protocols):
            protocol.transport.loseConnection()
        waited = 0.0
        while self.connections.protocols and waited < timeout_s:
            await clock.sleep(0.01)
            waited += 0.01


def start_listeners(hs: HomeServer) -> list[Listener]:
    """Listen on every configured address; returns one `Listener` per address."""
    config = hs.config
    max_body = max(config.max_upload_size, config.max_request_body_size)
    started: list[Listener] = []
    for index, listener in enumerate(config.listeners):
        names = {name for res in listener.resources for name in res.names}
        if listener.type == "metrics":
            names = {"metrics"}
        json_names = names - {"metrics", "health"}
        router = hs.build_router(json_names) if json_names else None
        metrics = MetricsResource(registry=hs.metrics_registry) if "metrics" in names else None
        root = ListenerRoot(router, metrics, health=True)
        site = PimanSite(root, max_body_size=max_body, x_forwarded=listener.x_forwarded, name=f"l{index}")
        scheme = "https" if listener.tls else "http"
        for address in listener.bind_addresses:
            factory = WrappingFactory(site)
            if listener.tls:
                port = hs.reactor.listenSSL(listener.port, factory, _tls_options(config), interface=address)
            else:
                port = hs.reactor.listenTCP(listener.port, factory, interface=address)
            host = f"[{address}]" if ":" in address else address
            url = f"{scheme}://{host}:{port.getHost().port}"
            started.append(Listener(port, factory, f"{url} ({', '.join(sorted(names))})"))
    return started


async def start(hs: HomeServer) -> list[Listener]:
    hs.take_exclusive_lock()
    try:
        await hs.setup()
    except BaseException:
        hs.release_exclusive_lock()
        raise
    hs.register_process_metrics()
    ports = start_listeners(hs)
    hs.start_background_tasks()
    for listener in ports:
        print(f"listening on {listener.description}", flush=True)
    return ports


async def stop(hs: HomeServer, listeners: list[Listener]) -> None:
    """Stop taking connections, let in-flight requests finish and their answers go out, close the pool."""
    await defer.gatherResults([defer.maybeDeferred(listener.port.stopListening) for listener in listeners])
    await hs.drain()
    for listener in listeners:
        await listener.close_connections(hs.clock)
    await hs.close()
    logger.info("stopped cleanly")
