"""The operations of an app's OpenAPI document, and plausible request bodies built from their
schemas (examples first), for tests generated from the documents themselves."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from tests.support.factories import next_weekday

METHODS = ("get", "post", "put", "patch", "delete")
# Properties a harmless PATCH sets when the schema requires none (a real change, not `{}`).
HARMLESS = ("name", "label", "reason", "notes", "description")
# Values of the few string formats and patterns our schemas use.
PATTERNS = {"^[A-Z]{2}$": "DE", "^[A-Z]{3}$": "EUR"}


@dataclass(frozen=True)
class Operation:
    service: str
    method: str  # upper case
    path: str
    spec: dict[str, Any]
    components: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.service} {self.method} {self.path}"

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    @property
    def secured(self) -> bool:
        """Authenticated by an API key (else by a signature, or not at all)."""
        return bool(self.spec.get("security"))

    def param_schema(self, name: str) -> dict[str, Any]:
        for param in self.spec.get("parameters", []):
            if param.get("name") == name and param.get("in") == "path":
                return resolve(param.get("schema", {}), self.components)
        return {}

    def query_params(self) -> list[tuple[str, bool, dict[str, Any]]]:
        """(name, required, schema) of each query parameter."""
        return [
            (p["name"], bool(p.get("required")), resolve(p.get("schema", {}), self.components))
            for p in self.spec.get("parameters", [])
            if p.get("in") == "query"
        ]

    def body_schema(self) -> dict[str, Any] | None:
        body = self.spec.get("requestBody")
        if not body:
            return None
        content = body.get("content", {}).get("application/json")
        if content is None:
            return None
        schema = resolve(content.get("schema", {}), self.components)
        for key in ("example", "examples"):  # media-type examples win over the schema
            if key in content:
                schema = {**schema, "example": _first_example(content[key])}
        return schema


def operations(service: str, document: dict[str, Any]) -> list[Operation]:
    """Every operation of one OpenAPI document."""
    components = document.get("components", {}).get("schemas", {})
    found = []
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                found.append(Operation(service, method.upper(), path, item[method], components))
    return found


def is_id(name: str) -> bool:
    return name == "id" or name.endswith("_id")


def resolve(schema: dict[str, Any], components: Mapping[str, Any]) -> dict[str, Any]:
    """The schema behind a `$ref` (one level per call; `sample` recurses)."""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        resolved: dict[str, Any] = components[ref.rsplit("/", 1)[-1]]
        return resolved
    return schema


def _first_example(examples: Any) -> Any:
    if isinstance(examples, list) and examples:
        return examples[0]
    if isinstance(examples, dict) and examples:  # OpenAPI `examples`: name -> {value: ...}
        first = next(iter(examples.values()))
        return first.get("value") if isinstance(first, dict) and "value" in first else first
    return examples


def future_instant() -> str:
    """A bookable-looking instant: a Wednesday two weeks ahead, 09:00 UTC."""
    return datetime.combine(next_weekday(2, 14), time(9), tzinfo=UTC).isoformat()


@dataclass(frozen=True)
class BodyBuilder:
    """Plausible bodies: schema examples when given, else the required properties (a PATCH
    without any: one harmless property) with values of their type. Id-valued properties get
    the caller's OWN ids (`own_ids`: resource -> id), so only the path names a foreign row."""

    components: Mapping[str, Any]
    own_ids: Mapping[str, str]

    def body(self, operation: Operation) -> Any:
        schema = operation.body_schema()
        if schema is None:
            return None
        return self.sample(schema, "body", patch=operation.method == "PATCH")

    def sample(self, schema: dict[str, Any], name: str, *, patch: bool = False) -> Any:
        schema = resolve(schema, self.components)
        if "example" in schema:
            return schema["example"]
        if "examples" in schema:
            return _first_example(schema["examples"])
        if "default" in schema and schema["default"] is not None:
            return schema["default"]
        if "enum" in schema:
            return schema["enum"][0]
        for key in ("anyOf", "oneOf", "allOf"):
            options = [o for o in schema.get(key, []) if o.get("type") != "null"]
            if options:
                return self.sample(options[0], name, patch=patch)
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            return self._object(schema, patch=patch)
        if kind == "array":
            item = self.sample(schema.get("items", {}), name)
            return [item] * max(1, int(schema.get("minItems", 1)))
        if kind == "integer":
            return int(schema.get("minimum", 1))
        if kind == "number":
            return max(1, schema.get("minimum", 1))
        if kind == "boolean":
            return True
        return self._string(schema, name)

    def _object(self, schema: dict[str, Any], *, patch: bool) -> dict[str, Any]:
        properties: dict[str, Any] = schema.get("properties", {})
        wanted = list(schema.get("required", []))
        if not wanted and patch and properties:
            wanted = [next((p for p in HARMLESS if p in properties), next(iter(properties)))]
        return {key: self.sample(properties[key], key) for key in wanted}

    def _string(self, schema: dict[str, Any], name: str) -> str:
        if is_id(name) and name.removesuffix("_id") in self.own_ids:
            return self.own_ids[name.removesuffix("_id")]
        fmt = schema.get("format")
        if fmt == "date-time":
            return future_instant()
        if fmt == "date":
            return next_weekday(2, 14).isoformat()
        if fmt == "time":
            return "10:00"
        if fmt == "email":
            return "matrix@example.com"
        pattern = schema.get("pattern")
        if pattern in PATTERNS:
            return PATTERNS[pattern]
        text = "Matrix"
        return text.ljust(int(schema.get("minLength", 0)), "x")
