"""RegistrationTokenStore on both engines, including use under concurrency."""

from __future__ import annotations

import pytest_twisted
from prometheus_client import CollectorRegistry
from twisted.internet import defer

from storage.datastore import DataStore
from storage.stores.registration_tokens import RegistrationTokenInfo


@pytest_twisted.ensureDeferred
async def test_create_get_delete(datastore: DataStore) -> None:
    store = datastore.registration_tokens
    assert await store.create_registration_token("abc", 3, 10_000)
    assert not await store.create_registration_token("abc", None, None)
    assert await store.get_registration_token("abc") == RegistrationTokenInfo(
        "abc", 3, 0, 0, 10_000
    )
    assert await store.get_registration_token("nope") is None
    assert await store.delete_registration_token("abc")
    assert not await store.delete_registration_token("abc")
    assert await store.get_registration_token("abc") is None


@pytest_twisted.ensureDeferred
async def test_validity(datastore: DataStore) -> None:
    store = datastore.registration_tokens
    await store.create_registration_token("unlimited", None, None)
    await store.create_registration_token("expiring", None, 5_000)
    await store.create_registration_token("once", 1, None)
    assert await store.token_is_valid("unlimited", 10**13)
    assert await store.token_is_valid("expiring", 4_999)
    assert not await store.token_is_valid("expiring", 5_000)
    assert not await store.set_token_pending("expiring", 5_000)
    assert not await store.token_is_valid("unknown", 0)
    assert not await store.set_token_pending("unknown", 0)

    assert await store.token_is_valid("once", 0)
    assert await store.set_token_pending("once", 0)
    assert not await store.token_is_valid("once", 0)  # the pending use counts
    assert not await store.set_token_pending("once", 0)
    assert await store.release_pending("once")
    assert not await store.release_pending("once")
    assert await store.set_token_pending("once", 0)
    assert await store.complete_token_use("once")
    assert not await store.complete_token_use("once")
    assert await store.get_registration_token("once") == RegistrationTokenInfo(
        "once", 1, 0, 1, None
    )
    assert not await store.set_token_pending("once", 0)


async def _concurrent_pending(datastore: DataStore, token: str, n: int) -> list[bool]:
    return await defer.gatherResults(
        [
            defer.ensureDeferred(datastore.registration_tokens.set_token_pending(token, 0))
            for _ in range(n)
        ]
    )


@pytest_twisted.ensureDeferred
async def test_concurrent_uses_never_exceed_the_allowance(
    datastore: DataStore, registry: CollectorRegistry
) -> None:
    store = datastore.registration_tokens
    await store.create_registration_token("one", 1, None)
    await store.create_registration_token("three", 3, None)
    await store.create_registration_token("many", None, None)
    assert sorted(await _concurrent_pending(datastore, "one", 10)) == [False] * 9 + [True]
    assert sorted(await _concurrent_pending(datastore, "three", 10)) == [False] * 7 + [True] * 3
    # A hot unlimited token must not make concurrent registrations fail, nor
    # even retry: the counter UPDATE waits for its turn instead.
    assert await _concurrent_pending(datastore, "many", 20) == [True] * 20
    assert not registry.get_sample_value(
        "piman_db_transaction_retries_total", {"db": "main", "desc": "set_token_pending"}
    )
    info = await store.get_registration_token("many")
    assert info is not None and info.pending == 20
    completions = await defer.gatherResults(
        [defer.ensureDeferred(store.complete_token_use("three")) for _ in range(5)]
    )
    assert sorted(completions) == [False] * 2 + [True] * 3
    assert await store.get_registration_token("three") == RegistrationTokenInfo(
        "three", 3, 0, 3, None
    )
