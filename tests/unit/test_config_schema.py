"""The schema language itself, on a small schema of its own."""

from __future__ import annotations

import typing

import pytest

from config.schema import (
    Bool,
    Context,
    Int,
    Invalid,
    ListOf,
    OneOf,
    Rate,
    Reported,
    Section,
    Str,
    Variant,
    format_key_path,
)

ITEM = Section("Item", {"size": Int(min=1, default=1), "label": Str(required=True)})
BACKEND = Section("Backend", {"path": Str(required=True)}, as_dict=True)
REMOTE = Section("Remote", {"url": Str(required=True), "retries": Int(default=3)}, as_dict=True)
SCHEMA = Section(
    "Root",
    {
        "kind": OneOf("local", "remote", required=True),
        "options": Variant(on="kind", cases={"local": BACKEND, "remote": REMOTE}),
        "items": ListOf(ITEM, default=[]),
        "fast": Rate(2, 4, doc="fast"),
        "slow": Rate(0.5, 1, doc="slow", optional=True),
        "flag": Bool(default=False),
        "token": Str(secret=True),
    },
)


def convert(data: dict) -> tuple[object, list[Invalid]]:
    ctx = Context(base_dir="/")
    try:
        return SCHEMA.convert(data, (), ctx), ctx.errors
    except (Invalid, Reported) as error:
        if isinstance(error, Invalid):
            ctx.errors.append(error)
        return None, ctx.errors


def test_format_key_path() -> None:
    assert format_key_path(("listeners", 0, "resources", 1, "names")) == "listeners[0].resources[1].names"
    assert format_key_path(()) == ""


def test_variant_follows_its_selector_and_gives_a_dict() -> None:
    root, errors = convert({"options": {"url": "https://x"}, "kind": "remote"})
    assert errors == []
    assert root.options == {"url": "https://x", "retries": 3}


def test_rate_copies_share_one_class_with_their_own_defaults() -> None:
    root, _ = convert({"kind": "local", "options": {"path": "/p"}, "slow": {}})
    assert type(root.fast) is type(root.slow)
    assert (root.fast.per_second, root.fast.burst_count) == (2.0, 4)
    assert (root.slow.per_second, root.slow.burst_count) == (0.5, 1)
    absent, _ = convert({"kind": "local", "options": {"path": "/p"}})
    assert absent.slow is None


def test_all_errors_are_collected_in_document_order() -> None:
    _, errors = convert({"items": [{"size": 0}, {"label": 3}], "kind": "nope", "flag": "no", "extra": 1})
    assert [(format_key_path(e.path), e.message.split(",")[0]) for e in errors] == [
        ("items[0].size", "must be at least 1"),
        ("items[0].label", "missing required key"),
        ("items[1].label", "expected a string"),
        ("kind", "expected one of 'local'"),
        ("flag", "expected a boolean (true or false)"),
        ("extra", "unknown key (expected one of: kind"),
    ]


def test_generated_classes_have_type_hints_and_hide_secrets() -> None:
    root, _ = convert({"kind": "local", "options": {"path": "/p"}, "token": "t0ps3cret"})
    hints = typing.get_type_hints(type(root))
    assert hints["kind"] is str
    assert hints["items"] == list[SCHEMA.fields["items"].item.cls]
    assert hints["token"] == str | None
    assert "t0ps3cret" not in repr(root)
    with pytest.raises(TypeError):
        type(root)(kind="local")  # every field is a required keyword: no half-built configs
