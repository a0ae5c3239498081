"""Loading homeserver.yaml: read, parse, validate against the schema, build the typed config."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import yaml

from config.errors import ConfigError
from config.homeserver_schema import HOMESERVER, HomeServerConfig
from config.schema import Context, Invalid, Reported, describe, format_key_path


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in a mapping is an error.

    PyYAML silently keeps the last one, which hides mistakes such as two `listeners:`.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                if key in first_line:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first given on line {first_line[key] + 1})",
                        key_node.start_mark,
                    )
                first_line[key] = key_node.start_mark.line
            except TypeError:  # unhashable key: the schema reports it
                continue
        return super().construct_mapping(node, deep)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text, turning syntax errors into a one-line ConfigError with the line number."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = error.problem or error.context or "invalid YAML"
        if error.problem and error.context and error.context_mark and error.context_mark is not mark:
            problem += f" ({error.context} on line {error.context_mark.line + 1})"
        raise ConfigError(source, "", f"invalid YAML at {where}: {problem}") from None
    except yaml.YAMLError as error:
        raise ConfigError(source, "", f"invalid YAML: {error}") from None


def load_config(path: str) -> HomeServerConfig:
    """Read and validate a config file; relative paths in it are relative to its directory."""
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except OSError as error:
        raise ConfigError(path, "", f"cannot read the file: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(path, "", f"the file is not UTF-8 text (byte {error.start})") from None
    data = parse_yaml(text, path)
    if data is None:
        raise ConfigError(path, "", "the file is empty; it needs at least server_name and listeners")
    config = load_config_dict(data, source=path, base_dir=os.path.dirname(os.path.abspath(path)))
    return dataclasses.replace(config, config_path=os.path.abspath(path))


def load_config_dict(data: Any, source: str = "<dict>", base_dir: str | None = None) -> HomeServerConfig:
    """Validate already-parsed config data.

    Relative paths are resolved against `base_dir` (the current directory if None). The whole
    document is checked; the error raised is the first one found, in document order.
    """
    if not isinstance(data, dict):
        got = describe(data, ())
        raise ConfigError(source, "", f"the top level must be a mapping of keys to values, got {got}")
    ctx = Context(base_dir=os.path.abspath(base_dir if base_dir is not None else os.getcwd()))
    try:
        return HOMESERVER.convert(data, (), ctx)
    except Invalid as error:  # from a check across keys
        ctx.errors.append(error)
    except Reported:
        pass
    first = ctx.errors[0]
    raise ConfigError(source, format_key_path(first.path), first.message)
