"""The stores of one homeserver, over one database."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from storage.database import Database
from storage.engines import create_engine
from storage.migrations import prepare_database
from storage.sealing import Sealer
from storage.streams import StreamIdGenerator
from storage.stores.account_data import AccountDataStore
from storage.stores.aliases import AliasStore
from storage.stores.audit_log import AuditLogStore
from storage.stores.consent import ConsentStore
from storage.stores.devices import DeviceStore
from storage.stores.e2e_keys import E2EKeyStore
from storage.stores.erasure import ErasureStore
from storage.stores.event_fetch import EventFetcher
from storage.stores.events import EventStore
from storage.stores.export import ExportStore
from storage.stores.filters import FilterStore
from storage.stores.holds import HoldStore
from storage.stores.key_backup import KeyBackupStore
from storage.stores.media import MediaStore
from storage.stores.openid_tokens import OpenIdTokenStore
from storage.stores.presence import PresenceStore
from storage.stores.profiles import ProfileStore
from storage.stores.push_actions import PushActionStore
from storage.stores.push_rules import PushRuleStore
from storage.stores.pushers import PusherStore
from storage.stores.receipts import ReceiptStore
from storage.stores.registration_tokens import RegistrationTokenStore
from storage.stores.relations import RelationStore
from storage.stores.reports import ReportStore
from storage.stores.retention import RetentionStore
from storage.stores.rooms import RoomStore
from storage.stores.sealing_keys import SealingKeyStore
from storage.stores.server_notices import ServerNoticeStore
from storage.stores.state import StateStore
from storage.stores.to_device import ToDeviceStore
from storage.stores.tokens import AccessTokenCache, TokenStore
from storage.stores.ui_auth import UIAuthStore
from storage.stores.users import UserStore


class DataStore:
    def __init__(self, db: Database, sealer: Sealer) -> None:
        self.db = db
        # Authentication reads tokens from memory; every store that can end a session clears it.
        token_cache = AccessTokenCache()
        self.users = UserStore(db, token_cache)
        self.devices = DeviceStore(db, sealer, token_cache)
        self.tokens = TokenStore(db, token_cache)
        self.registration_tokens = RegistrationTokenStore(db)
        self.ui_auth = UIAuthStore(db, sealer)
        # Stream positions come from the database; each needs `setup()` before use (open_datastore).
        self.streams: dict[str, StreamIdGenerator] = {
            name: StreamIdGenerator(db, name)
            for name in ("account_data", "receipts", "presence", "events", "to_device", "device_lists")
        }
        self.account_data = AccountDataStore(db, sealer, self.streams["account_data"])
        self.push_rules = PushRuleStore(db, sealer, self.streams["account_data"])
        self.filters = FilterStore(db, sealer)
        self.profiles = ProfileStore(db, sealer)
        self.presence = PresenceStore(db, sealer, self.streams["presence"])
        self.receipts = ReceiptStore(db, self.streams["receipts"])
        self.reports = ReportStore(db, sealer)
        # Rooms and the event graph; one EventFetcher so each event is parsed and cached once.
        self.events_stream = self.streams["events"]
        event_fetcher = EventFetcher(db, sealer)
        self.rooms = RoomStore(db)
        self.state = StateStore(db, event_fetcher)
        self.events = EventStore(db, sealer, self.events_stream, self.state, event_fetcher)
        self.relations = RelationStore(db, event_fetcher)
        self.aliases = AliasStore(db)
        self.push_actions = PushActionStore(db)
        # Purging expired events (retention), batch by batch.
        self.retention = RetentionStore(db, sealer, event_fetcher, self.events)
        # End-to-end encryption: to-device messages and server-side key backups.
        self.to_device = ToDeviceStore(db, sealer, self.streams["to_device"])
        self.key_backup = KeyBackupStore(db, sealer)
        # Device, one-time and cross-signing keys; deleting a device is a device-list change.
        self.e2e_keys = E2EKeyStore(db, sealer, self.streams["device_lists"])
        self.devices.deletion_hooks.append(self.e2e_keys.devices_deleted_txn)
        # Push notification targets, owned by devices: they go with their device.
        self.pushers = PusherStore(db, sealer)
        self.devices.deletion_hooks.append(self.pushers.devices_deleted_txn)
        # Media metadata; the sealed files are the media repository's (homeserver/media).
        self.media = MediaStore(db, sealer)
        # Legal holds, which retention purges and account erasure respect.
        self.holds = HoldStore(db, sealer)
        # Tombstones of erased accounts (whose past events newcomers get pruned).
        self.erasure = ErasureStore(db)
        # Privacy policy consent and announcements, and the server-notices rooms that carry them.
        self.consent = ConsentStore(db)
        self.server_notices = ServerNoticeStore(db)
        # The append-only record of admin actions, and the reads behind `piman admin export`.
        self.audit_log = AuditLogStore(db, sealer)
        self.export = ExportStore(db)
        # OpenID tokens that third parties exchange for a user ID (/openid/userinfo).
        self.openid_tokens = OpenIdTokenStore(db)

        # The data keys stored data needs (checked at open), and key rotation's re-seal progress.
        self.sealing_keys = SealingKeyStore(db)

    async def close(self) -> None:
        await self.db.close()


async def open_datastore(
    database_config: dict[str, Any],
    reactor: Any,
    sealer: Sealer,
    *,
    metrics_registry: CollectorRegistry | None = None,
) -> DataStore:
    """Connect to the configured database and bring its schema up to date."""
    db = Database(create_engine(database_config), reactor, metrics_registry=metrics_registry)
    try:
        await prepare_database(db)
        store = DataStore(db, sealer)
        # A key file lacking a key the data needs is refused now, not found out by failing reads.
        await store.sealing_keys.check_keys(sealer, int(reactor.seconds() * 1000))
        await store.audit_log.ensure_append_only()
        for stream in store.streams.values():
            await stream.setup()
    except BaseException:
        await db.close()
        raise
    return store
