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
from homeserver.handlers.account_data import AccountDataHandler
from homeserver.handlers.audit_log import AuditLog
from homeserver.handlers.filters import FilterHandler
from homeserver.handlers.legal_holds import LegalHoldsHandler
from homeserver.handlers.presence import TIMEOUT_CHECK_INTERVAL_S, PresenceHandler
from homeserver.handlers.profile import ProfileHandler
from homeserver.handlers.push_actions import PRUNE_INTERVAL_S, PushActionsHandler
from homeserver.handlers.push_rules import PushRulesHandler
from homeserver.handlers.receipts import ReceiptsHandler
from homeserver.handlers.reports import ReportsHandler
from homeserver.handlers.residency import ResidencyReport
from homeserver.handlers.undelivered import SWEEP_INTERVAL_S, UndeliveredSweeper
from homeserver.handlers.user_directory import UserDirectoryHandler
from homeserver.handlers.event_sender import EventSender
from homeserver.handlers.membership import MembershipHandler
from homeserver.handlers.messages import MessageHandler
from homeserver.handlers.room_creation import RoomCreationHandler
from homeserver.handlers.directory import DirectoryHandler
from homeserver.handlers.room_upgrade import RoomUpgradeHandler
from homeserver.handlers.consent import ConsentHandler
from homeserver.handlers.server_notices import ServerNoticesHandler
from homeserver.handlers import sync_e2e, sync_to_device, sync_user_data
from homeserver.handlers.e2e_keys import E2EKeysHandler
from homeserver.handlers.erasure import RESUME_INTERVAL_S as ERASURE_RESUME_INTERVAL_S, ErasureHandler
from homeserver.handlers.key_backup import KeyBackupHandler
from homeserver.handlers.to_device import ToDeviceHandler
from homeserver.handlers.pagination import PaginationHandler
from homeserver.handlers.sync import SyncHandler
from homeserver.handlers.typing import TypingHandler
from homeserver.handlers.visibility import Visibility
from homeserver.retention.handler import RetentionHandler
from homeserver.retention.purge import RetentionPurger
from homeserver.handlers.login import LoginHandler
from homeserver.handlers.passwords import PasswordHandler
from homeserver.handlers.registration import RegistrationHandler
from homeserver.handlers.sessions import SessionHandler
from homeserver.handlers.ui_auth import UserInteractiveAuth
from homeserver.http.metrics import RequestMetrics
from homeserver.http.router import InflightRequests, JsonRouter
from homeserver.key_rotation import KEY_FILE_CHECK_INTERVAL_S, BackgroundReseal
from homeserver.media.repository import SWEEP_INTERVAL_S as MEDIA_SWEEP_INTERVAL_S, MediaRepository
from homeserver.push.pusher_pool import PusherPool
from homeserver.notifier import Notifier
from homeserver.ratelimit import Ratelimiter
from homeserver.rest import consent_page
from homeserver.rest.client import openid
from homeserver.rest.client import client_servlets
from storage.datastore import DataStore, open_datastore
from storage.engines import create_engine
from storage.process_lock import ExclusiveLock
from storage.sealing import load_sealer

logger = logging.getLogger(__name__)

UI_AUTH_EXPIRY_INTERVAL_S = 300
DEVICE_LISTS_PRUNE_INTERVAL_S = 86_400


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
        self.notifier = Notifier(self.clock)
        self._background: list[LoopingCall] = []
        self._exclusive_lock: ExclusiveLock | None = None

    async def setup(self) -> None:
        """Load keys, open and migrate the database, build the handlers. Raises on any setup error."""
        self.signing_key = load_signing_key(self.config.signing_key_path)
        self.sealer = load_sealer(self.config.data_key_path)
        self.store: DataStore = await open_datastore(
            database_config_dict(self.config), self.reactor, self.sealer, metrics_registry=self.metrics_registry
        )
        self.ratelimiters = Ratelimiters(self.config, self.clock)
        # Admin actions are audit-logged; legal holds freeze data against purges and erasure.
        self.audit_log = AuditLog(self)
        self.legal_holds = LegalHoldsHandler(self)
        self.auth = Auth(self)
        self.password_handler = PasswordHandler(self)
        self.session_handler = SessionHandler(self)
        self.login_handler = LoginHandler(self)
        self.registration_handler = RegistrationHandler(self)
        self.account_handler = AccountHandler(self)
        self.ui_auth = UserInteractiveAuth(self)
        self.retention = RetentionHandler(self)  # before the read paths, which hide expired events
        self.visibility = Visibility(self)
        self.event_sender = EventSender(self)
        self.membership_handler = MembershipHandler(self)
        self.room_creation_handler = RoomCreationHandler(self)
        self.directory_handler = DirectoryHandler(self)
        self.room_upgrade_handler = RoomUpgradeHandler(self)
        self.message_handler = MessageHandler(self)
        # Per-user data around rooms: account data, filters, profiles, presence, receipts, push rules.
        self.account_data_handler = AccountDataHandler(self)
        self.push_rules_handler = PushRulesHandler(self)
        self.push_actions_handler = PushActionsHandler(self)
        self.pusher_pool = PusherPool(self)  # push notifications to the gateways the admin allowed
        self.filter_handler = FilterHandler(self)
        self.profile_handler = ProfileHandler(self)
        self.presence_handler = PresenceHandler(self)
        self.receipts_handler = ReceiptsHandler(self)
        self.user_directory_handler = UserDirectoryHandler(self)
        self.reports_handler = ReportsHandler(self)
        # Privacy policy: server notices to every user, consent recorded (and required, if configured).
        self.server_notices = ServerNoticesHandler(self)
        self.consent_handler = ConsentHandler(self)
        self.residency = ResidencyReport(self)
        self.undelivered_sweeper = UndeliveredSweeper(self)
        self.typing_handler = TypingHandler(self)
        self.pagination_handler = PaginationHandler(self)
        self.to_device_handler = ToDeviceHandler(self)
        self.key_backup_handler = KeyBackupHandler(self)
        self.e2e_keys_handler = E2EKeysHandler(self)
        self.media_repository = MediaRepository(self)
        self.retention_purger = RetentionPurger(self)
        self.background_reseal = BackgroundReseal(self)  # picks up `piman keys rotate` while running
        self.erasure_handler = ErasureHandler(self)
        self.sync_handler = SyncHandler(self)
        for extension in sync_user_data.extensions(self) + sync_to_device.extensions(self) + sync_e2e.extensions(self):
            self.sync_handler.register_extension(extension)
        self.profile_handler.on_profile_changed.append(self.membership_handler.on_profile_changed)
        if self.config.privacy_policy is not None:
            await self.server_notices.ensure_system_user()  # a clash with a person's account stops start-up

    def start_background_tasks(self) -> None:
        self._background.append(
            self.clock.looping_call(KEY_FILE_CHECK_INTERVAL_S, lambda: defer.ensureDeferred(self.background_reseal.check()))
        )
        self._background.extend(self.retention_purger.start())  # retention purge jobs, old media
        self.consent_handler.start_announcing()
        self._background.append(  # finishes account erasures a failure or a room hold left unfinished
            self.clock.looping_call(ERASURE_RESUME_INTERVAL_S,
                                    lambda: defer.ensureDeferred(self.erasure_handler.resume_pending()))
        )
        self._background.append(
            self.clock.looping_call(UI_AUTH_EXPIRY_INTERVAL_S, lambda: defer.ensureDeferred(self.ui_auth.expire_old_sessions()))
        )
        self._background.append(
            self.clock.looping_call(TIMEOUT_CHECK_INTERVAL_S, lambda: defer.ensureDeferred(self.presence_handler.check_timeouts()))
        )
        self._background.append(
            self.clock.looping_call(PRUNE_INTERVAL_S, lambda: defer.ensureDeferred(self.push_actions_handler.prune()))
        )
        self._background.append(
            self.clock.looping_call(SWEEP_INTERVAL_S, lambda: defer.ensureDeferred(self.undelivered_sweeper.run()))
        )
        self._background.append(
            self.clock.looping_call(DEVICE_LISTS_PRUNE_INTERVAL_S,
                                    lambda: defer.ensureDeferred(self.e2e_keys_handler.prune_device_lists()))
        )
        self._background.append(
            self.clock.looping_call(MEDIA_SWEEP_INTERVAL_S, lambda: defer.ensureDeferred(self.media_repository.run_reservation_sweep()))
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
            router.register_all(client_servlets(self))  # with the consent page, /_matrix/consent
        elif "consent" in resource_names:
            router.register_all(consent_page.servlets(self))
        if "federation" in resource_names or "keys" in resource_names:
            router.register_all(key_server.servlets(self))
        if "federation" in resource_names or "openid" in resource_names:
            router.register_all(openid.userinfo_servlets(self))
        return router

    async def profile_for_member_event(self, user_id: str) -> dict[str, Any]:
        """`displayname`/`avatar_url` to put in a member event."""
        return await self.profile_handler.get_member_event_profile(user_id)

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
        self.notifier.wake_all()
        self.background_reseal.stop()
        self.pusher_pool.stop()
        await self.consent_handler.stop_announcing()
        idle = self.inflight.wait_idle()
        timeout = self.clock.call_later(grace_s, lambda: idle.called or idle.cancel())
        try:
            await idle
        except defer.CancelledError:
            logger.warning("Stopping with %d request(s) still in flight after %.0fs", self.inflight.count, grace_s)
        if timeout.active():
            timeout.cancel()

    def take_exclusive_lock(self) -> None:
        """Be the only process writing to this database: the caches are exact only for a sole writer.

        A server takes it at start-up; so do admin commands that write events. Raises
        `DatabaseInUseError` if another process holds it.
        """
        lock = ExclusiveLock(create_engine(database_config_dict(self.config)))
        lock.acquire()
        self._exclusive_lock = lock

    def release_exclusive_lock(self) -> None:
        lock, self._exclusive_lock = self._exclusive_lock, None
        if lock is not None:
            lock.release()

    async def close(self) -> None:
        try:
            await self.store.close()
        finally:
            self.release_exclusive_lock()
