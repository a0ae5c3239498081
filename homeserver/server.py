"""`HomeServer`: one organisation — its config, clock, keys, store, handlers and HTTP resources.

Nothing here is a module-level singleton, so one process can host several organisations side by
side; each gets its own metrics registry too.
"""

from __future__ import annotations

import logging
import urllib.parse
from importlib import metadata
from typing import Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from twisted.internet import defer
from twisted.internet.task import LoopingCall

from config import HomeServerConfig
from federation import key_server
from federation.signing_keys import load_signing_key
from homeserver.auth import Auth
from homeserver.clock import Clock
from homeserver.handlers.account import AccountHandler
from homeserver.handlers.login import LoginHandler
from homeserver.handlers.passwords import PasswordHandler
from homeserver.handlers.registration import RegistrationHandler
from homeserver.handlers.sessions import SessionHandler
from homeserver.handlers.ui_auth import UserInteractiveAuth
from homeserver.http.metrics import RequestMetrics
from homeserver.http.router import InflightRequests, JsonRouter
from homeserver.ratelimit import Ratelimiter
from homeserver.rest.client import account, devices, login, register, versions
from storage.datastore import DataStore, open_datastore
from storage.sealing import load_sealer
from synapse_compat import admin_register

logger = logging.getLogger(__name__)

UI_AUTH_EXPIRY_INTERVAL_S = 300


def database_config_dict(config: HomeServerConfig) -> dict[str, Any]:
    db = config.database
    return {"name": db.name, "args": dict(db.args), "allow_unsafe_locale": db.allow_unsafe_locale}


class Ratelimiters:
    """One token bucket per `rc_*` setting."""

    def __init__(self, config: HomeServerConfig, clock: Clock) -> None:
        def make(rate: Any) -> Ratelimiter:
            return Ratelimiter(clock, rate.per_second, rate.burst_count)

        self.registration = make(config.rc_registration)
        self.login_address = make(config.rc_login.address)
        self.login_account = make(config.rc_login.account)
        self.login_failed = make(config.rc_login.failed_attempts)
        self.message = make(config.rc_message)
        self.joins_local = make(config.rc_joins.local)
        self.joins_remote = make(config.rc_joins.remote)
        self.invites_per_room = make(config.rc_invites.per_room)
        self.invites_per_user = make(config.rc_invites.per_user)
        self.invites_per_issuer = make(config.rc_invites.per_issuer)


class HomeServer:
    def __init__(self, config: HomeServerConfig, reactor: Any) -> None:
        self.config = config
        self.reactor = reactor
        self.clock = Clock(reactor)
        self.hostname = config.server_name
        self.version = metadata.version("piman-homeserver")
        self.metrics_registry = CollectorRegistry(auto_describe=True)
        self.request_metrics = RequestMetrics(self.metrics_registry)
        self.inflight = InflightRequests()
        self._background: list[LoopingCall] = []

    async def setup(self) -> None:
        """Load keys, open and migrate the database, build the handlers. Raises on any setup error."""
        self.signing_key = load_signing_key(self.config.signing_key_path)
        self.sealer = load_sealer(self.config.data_key_path)
        self.store: DataStore = await open_datastore(
            database_config_dict(self.config), self.reactor, self.sealer, metrics_registry=self.metrics_registry
        )
        self.ratelimiters = Ratelimiters(self.config, self.clock)
        self.auth = Auth(self)
        self.password_handler = PasswordHandler(self)
        self.session_handler = SessionHandler(self)
        self.login_handler = LoginHandler(self)
        self.registration_handler = RegistrationHandler(self)
        self.account_handler = AccountHandler(self)
        self.ui_auth = UserInteractiveAuth(self)

    def start_background_tasks(self) -> None:
        self._background.append(
            self.clock.looping_call(UI_AUTH_EXPIRY_INTERVAL_S, lambda: defer.ensureDeferred(self.ui_auth.expire_old_sessions()))
        )

    def register_process_metrics(self) -> None:
        """Process, platform and GC metrics: once per process, on the registry of the first HomeServer."""
        ProcessCollector(registry=self.metrics_registry)
        PlatformCollector(registry=self.metrics_registry)
        GCCollector(registry=self.metrics_registry)

    def build_router(self, resource_names: set[str]) -> JsonRouter:
        """The JSON resources a listener serves, by Synapse's resource names."""
        router = JsonRouter(
            metrics=self.request_metrics,
            inflight=self.inflight,
            max_json_body_size=self.config.max_request_body_size,
        )
        if "client" in resource_names:
            for module in (versions, login, register, account, devices, admin_register):
                router.register_all(module.servlets(self))
        if "federation" in resource_names or "keys" in resource_names:
            router.register_all(key_server.servlets(self))
        return router

    @property
    def public_baseurl(self) -> str:
        if self.config.public_baseurl:
            url = self.config.public_baseurl
            return url if url.endswith("/") else url + "/"
        return f"https://{self.hostname}/"

    def client_well_known(self) -> dict[str, Any]:
        return {"m.homeserver": {"base_url": self.public_baseurl.rstrip("/")}}

    def server_well_known(self) -> dict[str, Any] | None:
        if not self.config.serve_server_wellknown:
            return None
        url = urllib.parse.urlsplit(self.public_baseurl)
        port = url.port or (443 if url.scheme == "https" else 80)
        return {"m.server": f"{url.hostname}:{port}"}

    async def drain(self, grace_s: float = 10.0) -> None:
        """Stop background work and wait (up to `grace_s`) for in-flight requests to finish."""
        for call in self._background:
            if call.running:
                call.stop()
        idle = self.inflight.wait_idle()
        timeout = self.clock.call_later(grace_s, lambda: idle.called or idle.cancel())
        try:
            await idle
        except defer.CancelledError:
            logger.warning("Stopping with %d request(s) still in flight after %.0fs", self.inflight.count, grace_s)
        if timeout.active():
            timeout.cancel()

    async def close(self) -> None:
        await self.store.close()
