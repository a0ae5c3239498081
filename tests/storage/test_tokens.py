"""TokenStore on both engines: hashed access tokens, rotating refresh tokens, logouts."""

from __future__ import annotations

import hashlib

import pytest_twisted

from storage.datastore import DataStore

ALICE = "@alice:example.org"


def h(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def _setup(datastore: DataStore, *device_ids: str) -> None:
    await datastore.users.register_user(ALICE, None, 1)
    for device_id in device_ids:
        await datastore.devices.store_device(ALICE, device_id, None, 1)


@pytest_twisted.ensureDeferred
async def test_access_token_round_trip_reflects_the_user(datastore: DataStore) -> None:
    await _setup(datastore, "D")
    tokens = datastore.tokens
    token_id = await tokens.add_access_token(ALICE, "D", h("tok"), 1000, valid_until_ms=5000)
    info = await tokens.get_access_token(h("tok"))
    assert info is not None
    assert (info.token_id, info.user_id, info.device_id, info.created_ts, info.valid_until_ms) == (
        token_id,
        ALICE,
        "D",
        1000,
        5000,
    )
    assert (info.admin, info.is_guest, info.deactivated, info.locked) == (
        False,
        False,
        False,
        False,
    )
    await datastore.users.set_deactivated(ALICE, True)
    await datastore.users.set_admin(ALICE, True)
    info = await tokens.get_access_token(h("tok"))
    assert info is not None and info.deactivated and info.admin
    assert await tokens.get_access_token(h("other")) is None
    # Only the hash is stored.
    dump = await datastore.db.execute("dump", "SELECT token_hash FROM access_tokens")
    assert dump == [(h("tok"),)]


@pytest_twisted.ensureDeferred
async def test_token_ids_come_from_the_database_and_are_not_reused(datastore: DataStore) -> None:
    await _setup(datastore, "D")
    first = await datastore.tokens.add_access_token(ALICE, "D", h("1"), 1)
    assert await datastore.tokens.delete_access_token(first)
    assert not await datastore.tokens.delete_access_token(first)
    second = await datastore.tokens.add_access_token(ALICE, None, h("2"), 1)
    assert second > first
    info = await datastore.tokens.get_access_token(h("2"))
    assert info is not None and info.device_id is None


@pytest_twisted.ensureDeferred
async def test_delete_access_tokens_for_user(datastore: DataStore) -> None:
    await _setup(datastore, "A", "B")
    tokens = datastore.tokens
    refresh_a = await tokens.add_refresh_token(ALICE, "A", h("rA"), 1)
    keep = await tokens.add_access_token(ALICE, "A", h("a1"), 1, refresh_token_id=refresh_a)
    other_a = await tokens.add_access_token(ALICE, "A", h("a2"), 1)
    await tokens.add_refresh_token(ALICE, "B", h("rB"), 1)
    b1 = await tokens.add_access_token(ALICE, "B", h("b1"), 1)

    assert await tokens.delete_access_tokens_for_user(ALICE, device_id="B") == [(b1, "B")]
    assert await tokens.get_refresh_token(h("rB")) is None
    assert await tokens.get_access_token(h("a2")) is not None

    assert await tokens.delete_access_tokens_for_user(ALICE, except_token_id=keep) == [
        (other_a, "A")
    ]
    assert await tokens.get_access_token(h("a1")) is not None
    assert await tokens.get_refresh_token(h("rA")) is not None  # the kept session's refresh token

    assert await tokens.delete_access_tokens_for_user(ALICE) == [(keep, "A")]
    assert await tokens.get_refresh_token(h("rA")) is None


@pytest_twisted.ensureDeferred
async def test_delete_tokens_for_device(datastore: DataStore) -> None:
    await _setup(datastore, "A", "B")
    await datastore.tokens.add_access_token(ALICE, "A", h("a"), 1)
    await datastore.tokens.add_refresh_token(ALICE, "A", h("ra"), 1)
    await datastore.tokens.add_access_token(ALICE, "B", h("b"), 1)
    await datastore.tokens.delete_tokens_for_device(ALICE, "A")
    assert await datastore.tokens.get_access_token(h("a")) is None
    assert await datastore.tokens.get_refresh_token(h("ra")) is None
    assert await datastore.tokens.get_access_token(h("b")) is not None
    assert await datastore.devices.get_device(ALICE, "A") is not None


@pytest_twisted.ensureDeferred
async def test_refresh_token_rotation(datastore: DataStore) -> None:
    await _setup(datastore, "D")
    tokens = datastore.tokens
    r1 = await tokens.add_refresh_token(
        ALICE, "D", h("r1"), 1, expiry_ts=100, ultimate_session_expiry_ts=900
    )
    await tokens.add_access_token(ALICE, "D", h("a1"), 1, refresh_token_id=r1)
    info = await tokens.get_refresh_token(h("r1"))
    assert info is not None
    assert (
        info.token_id,
        info.device_id,
        info.next_token_id,
        info.expiry_ts,
        info.ultimate_session_expiry_ts,
    ) == (
        r1,
        "D",
        None,
        100,
        900,
    )

    # r1 used -> r2 issued; r1 stays valid until r2 is used.
    r2 = await tokens.add_refresh_token(ALICE, "D", h("r2"), 2)
    await tokens.add_access_token(ALICE, "D", h("a2"), 2, refresh_token_id=r2)
    await tokens.replace_refresh_token(r1, r2)
    info = await tokens.get_refresh_token(h("r1"))
    assert info is not None and info.next_token_id == r2

    # The client lost r2 and uses r1 again -> r2' replaces the unused r2.
    r2b = await tokens.add_refresh_token(ALICE, "D", h("r2b"), 3)
    await tokens.replace_refresh_token(r1, r2b)
    assert await tokens.get_refresh_token(h("r2")) is None
    assert await tokens.get_access_token(h("a2")) is None

    # r2' used -> r1 and the access token minted with it are gone.
    r3 = await tokens.add_refresh_token(ALICE, "D", h("r3"), 4)
    await tokens.replace_refresh_token(r2b, r3)
    assert await tokens.get_refresh_token(h("r1")) is None
    assert await tokens.get_access_token(h("a1")) is None
    info = await tokens.get_refresh_token(h("r2b"))
    assert info is not None and info.next_token_id == r3

    # Using the access token of r3 also retires r2'.
    assert await tokens.delete_superseded_refresh_tokens(r3) == 1
    assert await tokens.get_refresh_token(h("r2b")) is None
    assert await tokens.delete_superseded_refresh_tokens(r3) == 0

    await tokens.add_access_token(ALICE, "D", h("a3"), 5, refresh_token_id=r3)
    assert await tokens.delete_refresh_token(r3)
    assert await tokens.get_access_token(h("a3")) is None
    assert not await tokens.delete_refresh_token(r3)
