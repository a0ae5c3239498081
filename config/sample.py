"""The commented homeserver.yaml, generated from the schema.

Every key of the schema appears with its documentation as comments. Keys given values are
written for real; the others are commented out with their default (or an example), in a
form that is valid YAML once the leading '#' is removed.
"""

from __future__ import annotations

import inspect
import os
import textwrap
import urllib.parse
from collections.abc import Mapping
from typing import Any

import yaml

from config.errors import ConfigError
from config.homeserver_schema import HOMESERVER
from config.residency import DEFAULT_COUNTRY
from config.schema import MISSING, Field, ListOf, Section, Variant
from config.validation import load_config_dict, parse_yaml

WIDTH = 80
GENERATED_SOURCE = "<generated config>"

HEADER = """\
Configuration of the piman homeserver {server_name}.

Generated from the configuration schema: every key the server understands is
listed with its documentation. Keys set below are what this server needs; a
commented-out "#key: value" shows the default (or an example): remove the '#'
to change it.

Sizes are bytes, or a number with a K, M, G or T suffix: 50M.
Durations are milliseconds, or a number with a unit (ms s m h d w y): 5m.
Relative paths are relative to the directory of this file."""


def generate_config_yaml(
    *,
    server_name: str,
    data_dir: str,
    client_port: int = 8008,
    federation_port: int | None = None,
    bind_addresses: list[str] | None = None,
    database_url: str | None = None,
    enable_registration: bool = False,
    registration_shared_secret: str | None = None,
    public_baseurl: str | None = None,
    form_secret: str | None = None,
) -> str:
    """A commented homeserver.yaml for a new server, with its files under `data_dir`.

    Paths are written absolute. The result is validated before it is returned, so bad
    arguments (a server name with a space, a malformed database URL) raise ConfigError.
    """
    data_dir = os.path.abspath(data_dir)
    addresses = list(bind_addresses) if bind_addresses is not None else ["127.0.0.1"]
    client_names = ["client"] if federation_port is not None else ["client", "federation"]
    listeners = [_listener(client_port, addresses, client_names)]
    if federation_port is not None:
        listeners.append(_listener(federation_port, addresses, ["federation"]))

    values: dict[str, Any] = {
        "server_name": server_name,
        "listeners": listeners,
        "database": _database(database_url, data_dir),
        "signing_key_path": os.path.join(data_dir, server_name.replace(":", "_") + ".signing.key"),
        "data_key_path": os.path.join(data_dir, "data.key"),
        "media_store_path": os.path.join(data_dir, "media_store"),
        "enable_registration": enable_registration,
        # Hosted in France by default: pinned, and every target the file names declared there.
        "data_residency": {"country": DEFAULT_COUNTRY},
        "media_store_location": {"country": DEFAULT_COUNTRY},
        "export_location": {"country": DEFAULT_COUNTRY},
    }
    values["database"]["location"] = {"country": DEFAULT_COUNTRY}
    if registration_shared_secret is not None:
        values["registration_shared_secret"] = registration_shared_secret
    if public_baseurl is not None:
        values["public_baseurl"] = public_baseurl
    if form_secret is not None:
        values["form_secret"] = form_secret

    text = render_sample(HOMESERVER, values, HEADER.format(server_name=server_name))
    load_config_dict(parse_yaml(text, GENERATED_SOURCE), source=GENERATED_SOURCE, base_dir=data_dir)
    return text


def _listener(port: int, addresses: list[str], names: list[str]) -> dict[str, Any]:
    return {
        "port": port,
        "bind_addresses": addresses,
        "type": "http",
        "tls": False,
        "x_forwarded": False,
        "resources": [{"names": names, "compress": False}],
    }


def _database(url: str | None, data_dir: str) -> dict[str, Any]:
    if url is None:
        return {"name": "sqlite3", "args": {"database": os.path.join(data_dir, "homeserver.db")}}
    return {"name": "psycopg2", "args": postgres_url_to_args(url)}


def postgres_url_to_args(url: str) -> dict[str, Any]:
    """psycopg2 args from postgresql://user:password@host:port/database?keyword=value.

    Percent-encoded characters in any part are decoded. The URL is never put in an error,
    since it may hold a password.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ConfigError(GENERATED_SOURCE, "database", f"cannot parse the database URL: {error}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            GENERATED_SOURCE, "database", f"the database URL must start with postgresql://, got {parts.scheme}://"
        )
    args: dict[str, Any] = {}
    if parts.username:
        args["user"] = urllib.parse.unquote(parts.username)
    if parts.password is not None:
        args["password"] = urllib.parse.unquote(parts.password)
    if parts.hostname:
        args["host"] = urllib.parse.unquote(parts.hostname)
    if port is not None:
        args["port"] = port
    database = urllib.parse.unquote(parts.path.lstrip("/"))
    if database:
        args["database"] = database
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        args[key] = value
    return args


class _SampleDumper(yaml.SafeDumper):
    """Block mappings, one-line lists of scalars, indented lists, and no &anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _is_flat(value: Any) -> bool:
    """Whether a value is written on one line: a scalar, an empty mapping or a list of scalars."""
    if isinstance(value, dict):
        return not value
    if isinstance(value, list):
        return not any(isinstance(item, (list, dict)) for item in value)
    return True


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=_is_flat(data))


def _represent_dict(dumper: yaml.SafeDumper, data: dict[Any, Any]) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=_is_flat(data))


_SampleDumper.add_representer(list, _represent_list)
_SampleDumper.add_representer(dict, _represent_dict)


def _dump(value: Any) -> list[str]:
    text = yaml.dump(value, Dumper=_SampleDumper, sort_keys=False, width=1000, allow_unicode=True)
    lines = text.rstrip("\n").splitlines()
    if len(lines) > 1 and lines[-1] == "...":  # the end-of-document marker PyYAML adds after a scalar
        lines.pop()
    return lines


def render_sample(schema: Section, values: Mapping[str, Any], header: str) -> str:
    """The YAML text of `values` under `schema`, every key documented."""
    return _Renderer().render(schema, values, header)


def sample_value(node: Field) -> Any:
    """What the sample shows for an unset key: its default, else its example, else MISSING."""
    if isinstance(node, Section) and not node.as_dict:
        value = dict(node.default) if isinstance(node.default, Mapping) else {}
        for key, child in node.fields.items():
            if key not in value and (child_value := sample_value(child)) is not MISSING:
                value[key] = child_value
        return value
    if node.default is not MISSING and not callable(node.default):
        return node.default
    return node.example


class _Renderer:
    """Writes one sample file. The keys of a section type used several times (the rate
    limits) are documented the first time only, to keep the file readable."""

    def __init__(self) -> None:
        self.documented: set[type] = set()

    def render(self, schema: Section, values: Mapping[str, Any], header: str) -> str:
        lines = _comment(header.splitlines())
        for key, node in schema.fields.items():
            lines.append("")
            lines += self.key_lines(key, node, values.get(key, MISSING), depth=0, inside_comment=False)
        return "\n".join(lines) + "\n"

    def key_lines(
        self, key: str, node: Field, value: Any, *, depth: int, inside_comment: bool, with_doc: bool = True
    ) -> list[str]:
        """Doc comment and `key: value` lines; commented out when the key has no real value.

        Inside a commented-out section, values are written plainly: the section's '#' covers them.
        """
        # Room for the text once indented, commented ("# ") and maybe commented out ("#").
        lines = _comment(_doc_text(node, WIDTH - 2 * depth - 3)) if with_doc else []
        commented = value is MISSING and not inside_comment
        if value is MISSING:
            value = sample_value(node)
            if value is MISSING:
                return lines
        body = self.value_lines(key, node, value, depth=depth, real=not (commented or inside_comment))
        if commented:
            body = ["#" + line for line in body]
        return lines + body

    def value_lines(self, key: str, node: Field, value: Any, *, depth: int, real: bool) -> list[str]:
        if isinstance(node, Section) and node.cls is not None and isinstance(value, Mapping):
            return [f"{key}:"] + _indent(self.section_lines(node, value, depth=depth + 1, real=real))
        lines = _dump(value)
        if _is_flat(value) and len(lines) == 1:
            return [f"{key}: {lines[0]}"]
        return [f"{key}:"] + _indent(lines)

    def section_lines(self, section: Section, value: Mapping[str, Any], *, depth: int, real: bool) -> list[str]:
        with_docs = section.cls not in self.documented
        self.documented.add(section.cls)
        lines: list[str] = []
        for key, child in section.fields.items():
            if with_docs and lines:
                lines.append("")
            child_value = value.get(key, MISSING if real else sample_value(child))
            lines += self.key_lines(
                key, child, child_value, depth=depth, inside_comment=not real, with_doc=with_docs
            )
        return lines


def _comment(lines: list[str]) -> list[str]:
    return ["# " + line if line else "#" for line in lines]


def _indent(lines: list[str]) -> list[str]:
    return ["  " + line if line else "" for line in lines]


def _doc_text(node: Field, width: int) -> list[str]:
    text = _paragraphs(node.doc, width)
    if isinstance(node, ListOf) and isinstance(node.item, Section):
        text.append("Each entry has:")
        text += _summary(node.item, "  ", width)
    elif isinstance(node, Variant):
        for case, section in node.cases.items():
            text.append(f"With name: {case}, the keys are:")
            text += _summary(section, "  ", width)
            text += _paragraphs(section.doc, width, "  ")
    return text


def _paragraphs(doc: str, width: int, prefix: str = "") -> list[str]:
    lines: list[str] = []
    for paragraph in inspect.cleandoc(doc).split("\n\n") if doc.strip() else []:
        if lines:
            lines.append("")
        lines += textwrap.wrap(" ".join(paragraph.split()), width, initial_indent=prefix, subsequent_indent=prefix)
    return lines


def _summary(section: Section, prefix: str, width: int) -> list[str]:
    """One wrapped item per key of a section inside a list or variant: name, default, doc."""
    lines: list[str] = []
    for key, child in section.fields.items():
        if child.required:
            note = " (required)"
        elif child.default is not MISSING and not callable(child.default):
            note = f" (default: {_dump(child.default)[0]})"
        else:
            note = ""
        text = f"{key}{note}: " + " ".join(inspect.cleandoc(child.doc).split())
        lines += textwrap.wrap(text, width, initial_indent=prefix, subsequent_indent=prefix + "    ")
        if isinstance(child, ListOf) and isinstance(child.item, Section):
            lines.append(f"{prefix}    Each entry has:")
            lines += _summary(child.item, prefix + "      ", width)
    return lines
