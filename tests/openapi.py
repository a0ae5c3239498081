"""Check our HTTP responses against the Matrix spec's OpenAPI documents.

The spec data is vendored verbatim in ``tests/matrix_spec`` (see its README),
so a clean clone can validate without a sibling checkout. OpenAPI 3.1 schemas
are JSON Schema 2020-12; cross-file ``$ref``s are resolved with
``referencing``, relative to each YAML file's own ``file://`` URI.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_DATA = Path(__file__).resolve().parent / "matrix_spec" / "data"
APIS = ("client-server", "server-server")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Operation:
    """One (method, path template) of the spec, with where it is defined."""

    method: str
    template: str  # full path, e.g. /_matrix/client/v3/devices/{deviceId}
    file: Path
    spec_path: str  # the key under `paths:` in `file`
    pattern: re.Pattern[str]
    literal_segments: int  # more literal segments = more specific template


@functools.lru_cache(maxsize=None)
def _load(path: Path) -> Any:
    with path.open("rb") as f:
        return yaml.load(f, Loader=_Loader)


def _retrieve(uri: str) -> Resource[Any]:
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme != "file":
        raise LookupError(f"refusing to fetch non-file $ref {uri!r}")
    contents = _load(Path(urllib.parse.unquote(parsed.path)))
    return Resource.from_contents(contents, default_specification=DRAFT202012)


def _base_paths(doc: dict[str, Any]) -> list[str]:
    """The `basePath`s a document's `servers` block allows (default + enum)."""
    bases: list[str] = []
    for server in doc.get("servers") or []:
        var = (server.get("variables") or {}).get("basePath") or {}
        for base in [var.get("default"), *(var.get("enum") or [])]:
            if base is not None and base not in bases:
                bases.append(base)
    return bases or [""]


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", template)
    # A state key may be empty: /state/{eventType}/ is how the spec writes that.
    regex = "".join(
        ("[^/]*" if part == "{stateKey}" else "[^/]+") if part.startswith("{") else re.escape(part)
        for part in parts
    )
    return re.compile(f"^{regex}$")


@functools.lru_cache(maxsize=None)
def _operations(api: str) -> tuple[Operation, ...]:
    if api not in APIS:
        raise ValueError(f"api must be one of {APIS}, not {api!r}")
    ops: list[Operation] = []
    for file in sorted((SPEC_DATA / "api" / api).glob("*.yaml")):
        doc = _load(file)
        if not isinstance(doc, dict) or not doc.get("paths"):
            continue
        for base in _base_paths(doc):
            for spec_path, item in doc["paths"].items():
                template = base + spec_path
                literal = sum(
                    1 for seg in template.split("/") if seg and "{" not in seg
                )
                for method in item:
                    if method in _METHODS:
                        ops.append(
                            Operation(
                                method=method,
                                template=template,
                                file=file,
                                spec_path=spec_path,
                                pattern=_template_regex(template),
                                literal_segments=literal,
                            )
                        )
    return tuple(ops)


def find_operation(api: str, method: str, path: str) -> Operation:
    """The spec operation serving ``method path`` (query string ignored)."""
    path = urllib.parse.urlsplit(path).path
    method = method.lower()
    matches = [op for op in _operations(api) if op.pattern.match(path)]
    if not matches:
        raise AssertionError(f"no {api} operation in the spec matches path {path}")
    with_method = [op for op in matches if op.method == method]
    if not with_method:
        known = sorted({f"{op.method.upper()} {op.template}" for op in matches})
        raise AssertionError(
            f"the spec has no {method.upper()} for {path}; it has: {', '.join(known)}"
        )
    return max(with_method, key=lambda op: op.literal_segments)


def _pointer(*segments: str) -> str:
    return "".join(
        "/" + s.replace("~", "~0").replace("/", "~1") for s in segments
    )


def _follow_local_refs(doc: Any, pointer: str) -> tuple[Any, str]:
    """Follow `#/components/...` refs between OpenAPI objects (not schemas).

    Returns the object and the JSON pointer where it really lives, so schema
    `$ref`s inside it resolve relative to the right place.
    """
    node = doc
    for seg in pointer[1:].split("/"):
        node = node[seg.replace("~1", "/").replace("~0", "~")]
    if isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise AssertionError(f"unsupported response $ref {ref!r}")
        return _follow_local_refs(doc, ref[1:])
    return node, pointer


@functools.lru_cache(maxsize=None)
def _validator(op: Operation, status: int) -> jsonschema.protocols.Validator:
    doc = _load(op.file)
    responses = doc["paths"][op.spec_path][op.method].get("responses") or {}
    where = f"{op.method.upper()} {op.template} ({op.file.name})"
    if str(status) not in responses:
        listed = ", ".join(str(code) for code in responses)
        raise AssertionError(
            f"the spec lists no {status} response for {where}; it lists: {listed}"
        )
    response, pointer = _follow_local_refs(
        doc, _pointer("paths", op.spec_path, op.method, "responses", str(status))
    )
    if "schema" not in (response.get("content") or {}).get("application/json", {}):
        raise AssertionError(f"the spec gives no JSON body for {status} of {where}")
    pointer += _pointer("content", "application/json", "schema")
    uri = op.file.as_uri() + "#" + urllib.parse.quote(pointer, safe="/~")
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": uri}
    registry: Registry[Any] = Registry(retrieve=_retrieve)  # type: ignore[call-arg]
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _describe(errors: Iterator[jsonschema.ValidationError], limit: int = 8) -> str:
    lines = []
    for i, error in enumerate(sorted(errors, key=lambda e: list(e.absolute_path))):
        if i == limit:
            lines.append("  ...")
            break
        where = "/".join(str(p) for p in error.absolute_path) or "<body>"
        lines.append(f"  at {where}: {error.message}")
    return "\n".join(lines)


def validate_response(api: str, method: str, path: str, status: int, body: Any) -> None:
    """Assert that ``body`` is what the spec says ``method path`` answers with ``status``.

    Raises AssertionError when the body does not match the schema, or when the
    spec has no operation for the path or no JSON response for the status.
    """
    op = find_operation(api, method, path)
    validator = _validator(op, status)
    errors = list(validator.iter_errors(body))
    if errors:
        raise AssertionError(
            f"{method.upper()} {path} -> {status} does not match the spec "
            f"({op.template} in {op.file.name}):\n{_describe(iter(errors))}\n"
            f"body: {str(body)[:500]}"
        )
