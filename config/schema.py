"""A small declarative language for describing a YAML configuration.

One schema object drives everything the config package does: validation (with the key
path of every error), the defaults, the typed frozen objects the server reads, and the
commented sample file. Describing a key once is what keeps those four from drifting apart.

Defaults are written in config-file syntax ("50M", "1d", {"name": "sqlite3", ...}) and go
through the same conversion as values read from a file, so the sample can print them as is.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import ipaddress
import math
import os
import urllib.parse
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from config.parsing import DURATION_HINT, SIZE_HINT, check_server_name, parse_duration, parse_size


class _Missing:
    """Marks "no value": distinct from None, which YAML uses for an empty value."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

KeyPath = tuple[str | int, ...]

# A value is never echoed in an error when the last key of its path contains one of these.
SECRET_WORDS = ("secret", "password", "pepper")


def format_key_path(path: KeyPath) -> str:
    """`("listeners", 0, "port")` -> `"listeners[0].port"`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


class Invalid(Exception):
    """One validation problem at one key path."""

    def __init__(self, path: KeyPath, message: str) -> None:
        super().__init__(path, message)
        self.path = path
        self.message = message


class Reported(Exception):
    """A container whose children failed; their errors are already recorded."""


@dataclass
class Context:
    """What a conversion needs besides the value: where relative paths start, where errors go."""

    base_dir: str
    errors: list[Invalid] = field(default_factory=list)


def is_secret_path(path: KeyPath) -> bool:
    names = [part for part in path if isinstance(part, str)]
    return bool(names) and any(word in names[-1].lower() for word in SECRET_WORDS)


def _type_name(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def describe(value: Any, path: KeyPath) -> str:
    """How an error shows the value it got, hiding it when its key names a secret."""
    if value is None or isinstance(value, (list, dict)):
        return _type_name(value)
    if is_secret_path(path):
        return f"{_type_name(value)} (value hidden)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 80 else value[:77] + "...")
    return str(value)


def suggest(word: object, candidates: Collection[str]) -> str | None:
    """The closest candidate to a misspelt word, case-insensitively, or None."""
    if not isinstance(word, str):
        return None
    by_lower = {candidate.lower(): candidate for candidate in candidates}
    matches = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[matches[0]] if matches else None


class Field:
    """One value of the configuration: its documentation, default and conversion.

    `default` is either MISSING, a value in config-file syntax, or a callable that gets
    the already-converted sibling values and returns one (or MISSING). A field that is
    neither required nor defaulted converts to None when absent. `example` is what the
    sample file shows, commented out, when there is no default to show. A `secret` value
    is left out of the repr() of its section, so that logging a config leaks nothing.
    """

    kind = "a value"
    python_type: Any = object

    def __init__(
        self,
        *,
        doc: str = "",
        default: Any = MISSING,
        required: bool = False,
        example: Any = MISSING,
        secret: bool = False,
    ) -> None:
        self.doc = doc
        self.default = default
        self.required = required
        self.example = example
        self.secret = secret

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        """Validate a value from the file and turn it into what the server uses."""
        raise NotImplementedError

    def convert_in(self, value: Any, path: KeyPath, ctx: Context, siblings: Mapping[str, Any]) -> Any:
        """Like `convert`, for nodes whose meaning depends on keys beside them."""
        return self.convert(value, path, ctx)

    def absent(self, path: KeyPath, ctx: Context, siblings: Mapping[str, Any]) -> Any:
        """The value when the key is not in the file."""
        if self.required:
            raise Invalid(path, "missing required key")
        default = self.default(siblings) if callable(self.default) else self.default
        if default is MISSING:
            return None
        return self.convert_in(default, path, ctx, siblings)

    def annotation(self) -> Any:
        if self.required or self.default is not MISSING:
            return self.python_type
        return self.python_type | None

    def expected(self, value: Any, path: KeyPath) -> Invalid:
        return Invalid(path, f"expected {self.kind}, got {describe(value, path)}")


class Str(Field):
    kind = "a string"
    python_type = str

    def __init__(self, *, allow_empty: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allow_empty = allow_empty

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        if not isinstance(value, str):
            raise self.expected(value, path)
        if not value and not self.allow_empty:
            raise Invalid(path, "must not be empty")
        return value


class OneOf(Field):
    """A string from a fixed set of choices."""

    python_type = str

    def __init__(self, *choices: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.choices = choices
        self.kind = "one of " + ", ".join(repr(choice) for choice in choices)

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        if isinstance(value, str) and value in self.choices:
            return value
        error = self.expected(value, path)
        hint = suggest(value, self.choices)
        if hint is not None:
            error.message += f" (did you mean {hint!r}?)"
        raise error


class Bool(Field):
    """A real YAML boolean: a quoted "yes" is a string, and so an error."""

    kind = "a boolean (true or false)"
    python_type = bool

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        if not isinstance(value, bool):
            raise self.expected(value, path)
        return value


def _check_range(value: float, path: KeyPath, low: float | None, high: float | None) -> None:
    if low is not None and high is not None and not low <= value <= high:
        raise Invalid(path, f"must be between {low} and {high}, got {describe(value, path)}")
    if low == 0 and value < 0:
        raise Invalid(path, f"must not be negative, got {describe(value, path)}")
    if low is not None and value < low:
        raise Invalid(path, f"must be at least {low}, got {describe(value, path)}")
    if high is not None and value > high:
        raise Invalid(path, f"must be at most {high}, got {describe(value, path)}")


class Int(Field):
    kind = "an integer"
    python_type = int

    def __init__(self, *, min: int | None = None, max: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min, self.max = min, max

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.expected(value, path)
        _check_range(value, path, self.min, self.max)
        return value


class Float(Field):
    """A number; YAML integers are accepted and become floats."""

    kind = "a number"
    python_type = float

    def __init__(self, *, min: float | None = None, max: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min, self.max = min, max

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.expected(value, path)
        if not math.isfinite(value):
            raise Invalid(path, f"must be a finite number, got {describe(value, path)}")
        _check_range(value, path, self.min, self.max)
        return float(value)


class Size(Field):
    """A size in bytes, written as an integer or with a K/M/G/T suffix."""

    kind = SIZE_HINT
    python_type = int

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise Invalid(path, f"a size cannot be negative, got {describe(value, path)}")
        try:
            return parse_size(value)
        except ValueError:
            raise self.expected(value, path) from None


class Duration(Field):
    """A duration, converted to milliseconds."""

    kind = DURATION_HINT
    python_type = int

    def __init__(self, *, positive: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.positive = positive

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise Invalid(path, f"a duration cannot be negative, got {describe(value, path)}")
        try:
            milliseconds = parse_duration(value)
        except ValueError:
            raise self.expected(value, path) from None
        if self.positive and milliseconds == 0:
            raise Invalid(path, "must be longer than zero")
        return milliseconds


class FilePath(Field):
    """A filesystem path; relative ones are resolved against the config file's directory.

    Values listed in `keep` (such as SQLite's ":memory:") are not paths and stay as written.
    """

    kind = "a file path"
    python_type = str

    def __init__(self, *, keep: Collection[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keep = keep

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        if not isinstance(value, str):
            raise self.expected(value, path)
        if not value:
            raise Invalid(path, "must not be empty")
        if value in self.keep:
            return value
        return os.path.normpath(os.path.join(ctx.base_dir, os.path.expanduser(value)))


class ServerName(Field):
    kind = "a host name, IPv4 or [IPv6] address with an optional :port"
    python_type = str

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        if not isinstance(value, str):
            raise self.expected(value, path)
        try:
            check_server_name(value)
        except ValueError as error:
            message = f"not a valid server name ({error}): expected {self.kind}, got {describe(value, path)}"
            raise Invalid(path, message) from None
        return value


class Url(Field):
    """An absolute http(s) URL, stored with a trailing slash so paths can be appended."""

    kind = "an http:// or https:// URL"
    python_type = str

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        if not isinstance(value, str):
            raise self.expected(value, path)
        try:
            parts = urllib.parse.urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise self.expected(value, path) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.expected(value, path)
        if parts.query or parts.fragment:
            raise Invalid(path, f"must not have a query or fragment, got {describe(value, path)}")
        return value if value.endswith("/") else value + "/"


class IPAddress(Field):
    kind = "an IP address such as 127.0.0.1, ::1, 0.0.0.0 or ::"
    python_type = str

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        if not isinstance(value, str):
            raise self.expected(value, path)
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise self.expected(value, path) from None
        return value


class Scalar(Field):
    """Any single YAML value (string, number or boolean), passed through unchanged."""

    kind = "a string, number or boolean"

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        if not isinstance(value, (str, int, float)):
            raise self.expected(value, path)
        return value


class ListOf(Field):
    kind = "a list"

    def __init__(self, item: Field, *, min_items: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.item = item
        self.min_items = min_items
        self.python_type = list[item.python_type]

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        if not isinstance(value, list):
            raise self.expected(value, path)
        if len(value) < self.min_items:
            count = "one entry" if self.min_items == 1 else f"{self.min_items} entries"
            raise Invalid(path, f"must have at least {count}")
        items, failed = [], False
        for index, item in enumerate(value):
            try:
                items.append(self.item.convert(item, (*path, index), ctx))
            except Invalid as error:
                ctx.errors.append(error)
                failed = True
            except Reported:
                failed = True
        if failed:
            raise Reported()
        return items


Check = Callable[[Mapping[str, Any], KeyPath], None]


class Section(Field):
    """A mapping with known keys, converted to a frozen dataclass named `name`.

    With `as_dict`, the result is a plain dict instead (for maps handed on to a library,
    such as database driver arguments); absent optional keys are then left out. `extra`
    validates keys beyond `fields`, limited to `extra_keys` when given, so typos are
    still caught. `checks` run after all keys converted, for rules across keys. `attrs`
    adds attributes that are not read from the file (name -> (type, default)).
    An absent or empty section takes its `default` (all field defaults unless given);
    an `optional` one is None when absent.
    """

    kind = "a mapping"

    def __init__(
        self,
        name: str,
        fields: Mapping[str, Field],
        *,
        doc: str = "",
        default: Mapping[str, Any] | _Missing = MISSING,
        required: bool = False,
        optional: bool = False,
        checks: Sequence[Check] = (),
        extra: Field | None = None,
        extra_keys: Collection[str] | None = None,
        as_dict: bool = False,
        attrs: Mapping[str, tuple[Any, Any]] | None = None,
    ) -> None:
        if default is MISSING and not optional and not required:
            default = {}
        super().__init__(doc=doc, default=default, required=required)
        self.name = name
        self.fields = dict(fields)
        self.optional = optional
        self.checks = tuple(checks)
        self.extra = extra
        self.extra_keys = extra_keys
        self.as_dict = as_dict
        self.cls: type | None = None if as_dict else self._make_class(attrs or {})
        self.python_type = dict if as_dict else self.cls

    def _make_class(self, attrs: Mapping[str, tuple[Any, Any]]) -> type:
        specs: list[Any] = [
            (key, node.annotation(), dataclasses.field(repr=not (node.secret or is_secret_path((key,)))))
            for key, node in self.fields.items()
        ]
        specs += [(key, kind, dataclasses.field(default=value)) for key, (kind, value) in attrs.items()]
        cls = dataclasses.make_dataclass(self.name, specs, frozen=True, kw_only=True)
        cls.__module__ = "config"
        cls.__doc__ = self.doc.strip() or f"The {self.name} section of the configuration."
        return cls

    def with_defaults(self, *, doc: str | None = None, optional: bool | None = None, **defaults: Any) -> Section:
        """A copy with other field defaults (and doc), producing the same class."""
        section = copy.copy(self)
        section.fields = dict(self.fields)
        for key, value in defaults.items():
            section.fields[key] = copy.copy(self.fields[key])
            section.fields[key].default = value
            section.fields[key].required = False
        if doc is not None:
            section.doc = doc
        if optional is not None:
            section.optional = optional
            section.default = MISSING if optional else {}
        return section

    def allowed_keys(self) -> list[str]:
        return [*self.fields, *(self.extra_keys or ())]

    def convert_in(self, value: Any, path: KeyPath, ctx: Context, siblings: Mapping[str, Any]) -> Any:
        if value is None and not self.required:  # "section:" with everything under it commented out
            return self.absent(path, ctx, siblings)
        return self.convert(value, path, ctx)

    def convert(self, value: Any, path: KeyPath, ctx: Context) -> Any:
        if not isinstance(value, dict):
            raise self.expected(value, path)
        errors_before = len(ctx.errors)
        values: dict[str, Any] = {}
        failed = False

        # Keys whose meaning depends on a sibling (Variant) go after the other keys.
        for key in sorted(value, key=lambda k: isinstance(self.fields.get(k), Variant)):
            key_path = (*path, key if isinstance(key, str) else str(key))
            node = self.fields.get(key) if isinstance(key, str) else None
            if node is None:
                if self.extra is not None and (self.extra_keys is None or key in self.extra_keys):
                    node = self.extra
                else:
                    ctx.errors.append(Invalid(key_path, self._unknown_key_message(key)))
                    continue
            try:
                values[key] = node.convert_in(value[key], key_path, ctx, values)
            except Invalid as error:
                ctx.errors.append(error)
            except Reported:
                failed = True
        for key, node in sorted(self.fields.items(), key=lambda item: isinstance(item[1], Variant)):
            if key in value:
                continue
            try:
                values[key] = node.absent((*path, key), ctx, values)
            except Invalid as error:
                ctx.errors.append(error)
            except Reported:
                failed = True

        if failed or len(ctx.errors) > errors_before:
            raise Reported()
        for check in self.checks:
            check(values, path)
        if self.as_dict:
            return {key: item for key, item in values.items() if item is not None or key in value}
        assert self.cls is not None
        return self.cls(**values)

    def _unknown_key_message(self, key: object) -> str:
        hint = suggest(key, self.allowed_keys())
        if hint is not None:
            return f"unknown key (did you mean {hint!r}?)"
        if len(self.fields) <= 8 and self.extra_keys is None:
            return "unknown key (expected one of: " + ", ".join(self.fields) + ")"
        return "unknown key"



class Variant(Field):
    """A mapping whose keys depend on a sibling key, such as database `args` on `name`.

    Each case is an `as_dict` Section; the result is a plain dict.
    """

    kind = "a mapping"
    python_type = dict

    def __init__(self, *, on: str, cases: Mapping[str, Section], **kwargs: Any) -> None:
        kwargs.setdefault("default", {})
        super().__init__(**kwargs)
        self.on = on
        self.cases = dict(cases)

    def convert_in(self, value: Any, path: KeyPath, ctx: Context, siblings: Mapping[str, Any]) -> Any:
        case = self.cases.get(siblings.get(self.on))
        if case is None:  # the selector itself is wrong or missing, and that is reported
            raise Reported()
        return case.convert_in(value, path, ctx, siblings)


RATE_LIMIT = Section(
    "RateLimit",
    {
        "per_second": Float(
            min=0,
            required=True,
            doc="How many actions per second are allowed on average (fractions allowed: 0.1 is one every 10 s).",
        ),
        "burst_count": Int(
            min=1,
            required=True,
            doc="How many actions may happen in a burst before the average rate applies.",
        ),
    },
)


def Rate(per_second: float, burst_count: int, *, doc: str, optional: bool = False) -> Section:  # noqa: N802
    """A `{per_second, burst_count}` rate-limit section with its own defaults."""
    return RATE_LIMIT.with_defaults(doc=doc, optional=optional, per_second=per_second, burst_count=burst_count)
