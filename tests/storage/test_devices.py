"""DeviceStore on both engines, including what a database dump would show."""

from __future__ import annotations

import pytest_twisted

from storage.datastore import DataStore
from storage.stores.devices import DeviceInfo

ALICE = "@alice:example.org"


async def _alice(datastore: DataStore) -> None:
    await datastore.users.register_user(ALICE, None, 1)


@pytest_twisted.ensureDeferred
async def test_store_get_and_keep_existing_name(datastore: DataStore) -> None:
    await _alice(datastore)
    devices = datastore.devices
    assert await devices.store_device(ALICE, "PHONE", "Alice's phone", 5000)
    assert not await devices.store_device(ALICE, "PHONE", "Renamed?", 6000)
    assert await devices.get_device(ALICE, "PHONE") == DeviceInfo(
        ALICE, "PHONE", "Alice's phone", 5000, None, None, False
    )
    assert await devices.get_device(ALICE, "NOPE") is None
    assert await devices.store_device(ALICE, "LAPTOP", None, 7000)
    assert [d.device_id for d in await devices.get_devices(ALICE)] == ["LAPTOP", "PHONE"]
    assert await devices.get_devices("@bob:example.org") == []


@pytest_twisted.ensureDeferred
async def test_hidden_devices_are_listed_only_on_request(datastore: DataStore) -> None:
    await _alice(datastore)
    await datastore.devices.store_device(ALICE, "SHOWN", None, 1)
    await datastore.devices.store_device(ALICE, "HIDDEN", None, 1)
    await datastore.db.execute(
        "hide", "UPDATE devices SET hidden = ? WHERE device_id = 'HIDDEN'", True
    )
    assert [d.device_id for d in await datastore.devices.get_devices(ALICE)] == ["SHOWN"]
    listed = await datastore.devices.get_devices(ALICE, include_hidden=True)
    assert [(d.device_id, d.hidden) for d in listed] == [("HIDDEN", True), ("SHOWN", False)]


@pytest_twisted.ensureDeferred
async def test_update_display_name(datastore: DataStore) -> None:
    await _alice(datastore)
    await datastore.devices.store_device(ALICE, "D", "old", 1)
    assert await datastore.devices.update_device_display_name(ALICE, "D", "new name")
    device = await datastore.devices.get_device(ALICE, "D")
    assert device is not None and device.display_name == "new name"
    assert await datastore.devices.update_device_display_name(ALICE, "D", None)
    device = await datastore.devices.get_device(ALICE, "D")
    assert device is not None and device.display_name is None
    assert not await datastore.devices.update_device_display_name(ALICE, "MISSING", "x")


@pytest_twisted.ensureDeferred
async def test_delete_devices_takes_their_tokens(datastore: DataStore) -> None:
    await _alice(datastore)
    for device_id in ("A", "B", "C"):
        await datastore.devices.store_device(ALICE, device_id, None, 1)
        refresh_id = await datastore.tokens.add_refresh_token(
            ALICE, device_id, b"r" + device_id.encode(), 1
        )
        await datastore.tokens.add_access_token(
            ALICE, device_id, b"a" + device_id.encode(), 1, refresh_token_id=refresh_id
        )
    await datastore.devices.delete_devices(ALICE, ["A", "C", "A"])
    assert [d.device_id for d in await datastore.devices.get_devices(ALICE)] == ["B"]
    assert await datastore.tokens.get_access_token(b"aA") is None
    assert await datastore.tokens.get_refresh_token(b"rC") is None
    assert await datastore.tokens.get_access_token(b"aB") is not None
    assert await datastore.tokens.get_refresh_token(b"rB") is not None
    await datastore.devices.delete_devices(ALICE, [])


@pytest_twisted.ensureDeferred
async def test_record_last_seen_writes_at_most_once_a_minute(datastore: DataStore) -> None:
    await _alice(datastore)
    devices = datastore.devices
    await devices.store_device(ALICE, "D", None, 0)
    assert await devices.record_last_seen(ALICE, "D", 1_000, "192.0.2.1", "Element/1.0")
    assert not await devices.record_last_seen(ALICE, "D", 30_000, "192.0.2.1", "Element/1.0")
    device = await devices.get_device(ALICE, "D")
    assert device is not None
    assert (device.last_seen_ts, device.last_seen_ip, device.last_seen_user_agent) == (
        1_000,
        "192.0.2.1",
        "Element/1.0",
    )
    assert await devices.record_last_seen(ALICE, "D", 30_001, "198.51.100.7", "Element/1.0")
    assert await devices.record_last_seen(ALICE, "D", 91_000, "198.51.100.7", "Element/1.0")
    device = await devices.get_device(ALICE, "D")
    assert device is not None and (device.last_seen_ts, device.last_seen_ip) == (
        91_000,
        "198.51.100.7",
    )


@pytest_twisted.ensureDeferred
async def test_names_and_last_seen_are_sealed_at_rest(datastore: DataStore) -> None:
    await _alice(datastore)
    await datastore.devices.store_device(ALICE, "D", "Alice's phone", 1)
    await datastore.devices.record_last_seen(ALICE, "D", 2, "203.0.113.9", "FluffyChat/2")
    dump = await datastore.db.execute(
        "dump", "SELECT display_name, last_seen_ip, last_seen_user_agent FROM devices"
    )
    raw = b"".join(bytes(v) for row in dump for v in row)
    assert raw  # there is something stored...
    for secret in (b"Alice's phone", b"203.0.113.9", b"FluffyChat"):
        assert secret not in raw  # ...but not in the clear
