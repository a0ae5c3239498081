"""Filter parsing, validation and matching (homeserver/filtering.py)."""

from __future__ import annotations

import pytest

from homeserver.filtering import DEFAULT_FILTER, EventFilter, Filter, FilterError, RoomEventFilter, type_matches


def ev(type_: str = "m.room.message", sender: str = "@a:x", room_id: str = "!r:x", **content: object) -> dict:
    return {"type": type_, "sender": sender, "room_id": room_id, "content": dict(content)}


def test_absent_lists_let_everything_through() -> None:
    f = EventFilter({})
    assert f.matches(ev()) and f.matches(ev("m.custom", "@z:y"))
    assert DEFAULT_FILTER.timeline.matches(ev()) and DEFAULT_FILTER.room_allowed("!any:x")


def test_empty_lists_let_nothing_through() -> None:
    assert not EventFilter({"types": []}).matches(ev())
    assert not EventFilter({"senders": []}).matches(ev())
    assert not RoomEventFilter({"rooms": []}).matches(ev())


@pytest.mark.parametrize(("pattern", "event_type", "expected"), [
    ("m.room.*", "m.room.message", True),
    ("m.room.*", "m.room.", True),
    ("m.room.*", "m.roomy", False),
    ("*", "anything.at.all", True),
    ("m.*.name", "m.room.name", True),
    ("m.*.name", "m.room.topic", False),
    ("m.room.message", "m.room.message", True),
    ("m.room.message", "m.room.messages", False),
    ("m.room.?", "m.room.?", True),  # only '*' is a wildcard
    ("m.room.?", "m.room.x", False),
])
def test_type_wildcards(pattern: str, event_type: str, expected: bool) -> None:
    assert type_matches(event_type, [pattern]) is expected


def test_not_lists_win_over_allow_lists() -> None:
    f = EventFilter({"types": ["m.room.*"], "not_types": ["m.room.member"], "senders": ["@a:x", "@b:x"],
                     "not_senders": ["@b:x"]})
    assert f.matches(ev("m.room.message", "@a:x"))
    assert not f.matches(ev("m.room.member", "@a:x"))
    assert not f.matches(ev("m.room.message", "@b:x"))
    assert not f.matches(ev("m.room.message", "@c:x"))
    assert not f.matches(ev("m.reaction", "@a:x"))


def test_sender_tests_skip_events_without_a_sender() -> None:
    # Account data has no sender: a senders list must not hide it.
    assert EventFilter({"senders": ["@a:x"]}).matches({"type": "m.direct", "content": {}})


def test_room_lists_and_contains_url() -> None:
    f = RoomEventFilter({"rooms": ["!a:x", "!b:x"], "not_rooms": ["!b:x"], "contains_url": True})
    assert f.matches(ev(room_id="!a:x", url="mxc://x/y"))
    assert not f.matches(ev(room_id="!a:x", body="no url"))
    assert not f.matches(ev(room_id="!b:x", url="mxc://x/y"))
    assert not f.matches(ev(room_id="!c:x", url="mxc://x/y"))
    # A room passed separately (events in /sync carry no room_id) is what counts.
    assert f.matches({"type": "m.room.message", "sender": "@a:x", "content": {"url": "mxc://x"}}, "!a:x")
    without_url = RoomEventFilter({"contains_url": False})
    assert without_url.matches(ev(body="hi")) and not without_url.matches(ev(url="mxc://x/y"))
    assert not without_url.matches(ev(url="mxc://x/y"), None)


def test_whole_filter_sections() -> None:
    f = Filter({
        "room": {"rooms": ["!a:x"], "not_rooms": ["!b:x"], "include_leave": True,
                 "timeline": {"limit": 7, "types": ["m.room.message"]},
                 "state": {"lazy_load_members": True, "include_redundant_members": True},
                 "ephemeral": {"types": ["m.receipt"]}, "account_data": {"not_types": ["m.tag"]}},
        "presence": {"not_senders": ["@spam:x"]},
        "account_data": {"types": ["m.direct"]},
        "event_format": "federation",
    })
    assert f.room_allowed("!a:x") and not f.room_allowed("!b:x") and not f.room_allowed("!c:x")
    assert f.include_leave and f.lazy_load_members and f.include_redundant_members
    assert f.timeline.limit == 7 and f.timeline.limit_or(10, 5) == 5 and f.state.limit_or(10, 50) == 10
    assert not f.ephemeral.matches({"type": "m.typing", "content": {}})
    assert not f.room_account_data.matches({"type": "m.tag", "content": {}})
    assert not f.presence.matches({"type": "m.presence", "sender": "@spam:x", "content": {}})
    assert f.account_data.matches({"type": "m.direct", "content": {}})
    assert f.event_format == "federation"


def test_thread_notification_flag() -> None:
    assert Filter({"room": {"timeline": {"unread_thread_notifications": True}}}).timeline.unread_thread_notifications
    assert not DEFAULT_FILTER.timeline.unread_thread_notifications


def test_event_fields_keep_only_the_listed_paths() -> None:
    f = Filter({"event_fields": ["type", "content.body", "content.m\\.relates_to.rel_type", "unsigned.absent"]})
    event = {"type": "m.room.message", "sender": "@a:x",
             "content": {"body": "hi", "msgtype": "m.text", "m.relates_to": {"rel_type": "m.thread", "event_id": "$x"}}}
    assert f.apply_event_fields(event) == {
        "type": "m.room.message", "content": {"body": "hi", "m.relates_to": {"rel_type": "m.thread"}},
    }
    assert DEFAULT_FILTER.apply_event_fields(event) is event


@pytest.mark.parametrize(("definition", "field"), [
    ([], "filter"),
    ({"event_format": "xml"}, "event_format"),
    ({"event_fields": "type"}, "event_fields"),
    ({"event_fields": [1]}, "event_fields[0]"),
    ({"presence": []}, "presence"),
    ({"presence": {"limit": "10"}}, "presence.limit"),
    ({"presence": {"limit": True}}, "presence.limit"),
    ({"presence": {"limit": -1}}, "presence.limit"),
    ({"room": {"timeline": {"limit": 1.5}}}, "room.timeline.limit"),
    ({"room": {"timeline": {"types": "m.room.message"}}}, "room.timeline.types"),
    ({"room": {"timeline": {"senders": ["alice"]}}}, "room.timeline.senders[0]"),
    ({"room": {"rooms": ["#alias:x"]}}, "room.rooms[0]"),
    ({"room": {"state": {"lazy_load_members": "yes"}}}, "room.state.lazy_load_members"),
    ({"room": {"include_leave": 1}}, "room.include_leave"),
    ({"room": {"ephemeral": {"not_rooms": [5]}}}, "room.ephemeral.not_rooms[0]"),
])
def test_invalid_filters_name_the_field(definition: object, field: str) -> None:
    with pytest.raises(FilterError, match=field.replace("[", r"\[").replace("]", r"\]")):
        Filter(definition)  # type: ignore[arg-type]


def test_unknown_keys_are_kept_and_ignored() -> None:
    f = Filter({"org.example.custom": 1, "room": {"timeline": {"limit": 0}}})
    assert f.definition["org.example.custom"] == 1 and f.timeline.limit == 0
