"""The stores of one homeserver, over one database."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from storage.database import Database
from storage.engines import create_engine
from storage.migrations import prepare_database
from storage.sealing import Sealer
from storage.stores.devices import DeviceStore
from storage.stores.registration_tokens import RegistrationTokenStore
from storage.stores.tokens import TokenStore
from storage.stores.ui_auth import UIAuthStore
from storage.stores.users import UserStore


class DataStore:
    def __init__(self, db: Database, sealer: Sealer) -> None:
        self.db = db
        self.users = UserStore(db)
        self.devices = DeviceStore(db, sealer)
        self.tokens = TokenStore(db)
        self.registration_tokens = RegistrationTokenStore(db)
        self.ui_auth = UIAuthStore(db, sealer)

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
    except BaseException:
        await db.close()
        raise
    return DataStore(db, sealer)
