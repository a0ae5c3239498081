"""UserStore on both engines."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import defer

from storage.datastore import DataStore
from storage.stores.users import UserInfo


@pytest_twisted.ensureDeferred
async def test_register_and_get(datastore: DataStore) -> None:
    users = datastore.users
    assert await users.get_user("@alice:example.org") is None
    assert await users.register_user("@alice:example.org", "hash1", 1000)
    assert await users.register_user(
        "@bot:example.org", None, 2000, admin=True, is_guest=True, user_type="bot"
    )
    assert await users.get_user("@alice:example.org") == UserInfo(
        "@alice:example.org", "hash1", 1000, False, False, False, None, False
    )
    assert await users.get_user("@bot:example.org") == UserInfo(
        "@bot:example.org", None, 2000, True, True, False, "bot", False
    )
    assert await users.count_users() == 2


@pytest_twisted.ensureDeferred
async def test_taken_id_returns_false_and_keeps_the_first(datastore: DataStore) -> None:
    users = datastore.users
    assert await users.register_user("@alice:example.org", "first", 1)
    assert not await users.register_user("@alice:example.org", "second", 2, admin=True)
    info = await users.get_user("@alice:example.org")
    assert info is not None and info.password_hash == "first" and not info.admin


@pytest_twisted.ensureDeferred
async def test_concurrent_registrations_of_one_id_exactly_one_wins(datastore: DataStore) -> None:
    results = await defer.gatherResults(
        [
            defer.ensureDeferred(datastore.users.register_user("@race:example.org", f"h{i}", i))
            for i in range(12)
        ]
    )
    assert sorted(results) == [False] * 11 + [True]
    assert await datastore.users.count_users() == 1


@pytest_twisted.ensureDeferred
async def test_case_insensitive_lookups(datastore: DataStore) -> None:
    users = datastore.users
    await users.register_user("@Alice:example.org", None, 1)
    await users.register_user("@alice:example.org", None, 1)
    assert await users.find_user_ids_case_insensitive("@ALICE:example.org") == [
        "@Alice:example.org",
        "@alice:example.org",
    ]
    assert await users.is_user_id_taken("@aLiCe:example.org")
    assert not await users.is_user_id_taken("@alicia:example.org")
    assert await users.find_user_ids_case_insensitive("@bob:example.org") == []


@pytest_twisted.ensureDeferred
async def test_setters(datastore: DataStore) -> None:
    users = datastore.users
    await users.register_user("@u:example.org", "old", 1)
    assert await users.set_password_hash("@u:example.org", "new")
    assert await users.set_admin("@u:example.org", True)
    assert await users.set_deactivated("@u:example.org", True)
    assert await users.set_locked("@u:example.org", True)
    assert await users.get_user("@u:example.org") == UserInfo(
        "@u:example.org", "new", 1, True, False, True, None, True
    )
    assert await users.set_admin("@u:example.org", False)
    info = await users.get_user("@u:example.org")
    assert info is not None and not info.admin
    assert not await users.set_admin("@nobody:example.org", True)
