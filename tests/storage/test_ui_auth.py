"""UIAuthStore on both engines; request bodies and results are sealed at rest."""

from __future__ import annotations

import pytest
import pytest_twisted

from storage.datastore import DataStore
from storage.stores.ui_auth import UIAuthSession

BODY = {"new_password": "correct horse battery staple", "logout_devices": False}


@pytest_twisted.ensureDeferred
async def test_session_round_trip_and_stages(datastore: DataStore) -> None:
    ui_auth = datastore.ui_auth
    await ui_auth.create_session(
        "S1", 1000, "/_matrix/client/v3/account/password", "POST", "change password", BODY
    )
    assert await ui_auth.get_session("S1") == UIAuthSession(
        "S1", 1000, "/_matrix/client/v3/account/password", "POST", "change password", BODY
    )
    assert await ui_auth.get_session("nope") is None
    assert await ui_auth.get_completed_stages("S1") == {}
    assert await ui_auth.mark_stage_complete("S1", "m.login.dummy", True)
    assert await ui_auth.mark_stage_complete("S1", "m.login.password", "@alice:example.org")
    assert await ui_auth.mark_stage_complete(
        "S1", "m.login.password", {"user": "@alice:example.org"}
    )
    assert await ui_auth.get_completed_stages("S1") == {
        "m.login.dummy": True,
        "m.login.password": {"user": "@alice:example.org"},
    }
    assert not await ui_auth.mark_stage_complete("gone", "m.login.dummy", True)
    with pytest.raises(Exception) as info:
        await ui_auth.create_session("S1", 1, "/x", "POST", "", {})
    assert type(info.value).__name__ in ("IntegrityError", "UniqueViolation")


@pytest_twisted.ensureDeferred
async def test_delete_cascades_to_stages(datastore: DataStore) -> None:
    ui_auth = datastore.ui_auth
    await ui_auth.create_session("S1", 1000, "/a", "POST", "", {})
    await ui_auth.mark_stage_complete("S1", "m.login.dummy", True)
    assert await ui_auth.delete_session("S1")
    assert not await ui_auth.delete_session("S1")
    assert await datastore.db.execute(
        "count", "SELECT COUNT(*) FROM ui_auth_sessions_credentials"
    ) == [(0,)]


@pytest_twisted.ensureDeferred
async def test_delete_sessions_older_than(datastore: DataStore) -> None:
    ui_auth = datastore.ui_auth
    for i, ts in enumerate((100, 200, 300)):
        await ui_auth.create_session(f"S{i}", ts, "/a", "POST", "", {})
        await ui_auth.mark_stage_complete(f"S{i}", "m.login.dummy", True)
    assert await ui_auth.delete_sessions_older_than(250) == 2
    assert await ui_auth.get_session("S0") is None and await ui_auth.get_session("S1") is None
    assert await ui_auth.get_session("S2") is not None
    assert await datastore.db.execute(
        "count", "SELECT COUNT(*) FROM ui_auth_sessions_credentials"
    ) == [(1,)]


@pytest_twisted.ensureDeferred
async def test_body_and_results_are_sealed_at_rest(datastore: DataStore) -> None:
    await datastore.ui_auth.create_session("S1", 1, "/a", "POST", "", BODY)
    await datastore.ui_auth.mark_stage_complete("S1", "m.login.registration_token", "TOKEN-SECRET")
    rows = await datastore.db.execute("dump", "SELECT clientdict FROM ui_auth_sessions")
    rows += await datastore.db.execute("dump", "SELECT result FROM ui_auth_sessions_credentials")
    raw = b"".join(bytes(row[0]) for row in rows)
    assert raw and b"correct horse" not in raw and b"TOKEN-SECRET" not in raw
