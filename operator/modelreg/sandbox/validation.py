"""Validate custom resources the way the API server would: the CRD's openAPIV3Schema
(made strict, as structural schemas are) and its x-kubernetes-validations CEL rules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Structural-schema semantics in JSON Schema: unknown fields are errors (the API server
    prunes them; rejecting makes typos visible), `nullable` admits null."""
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if "properties" in out:
        out["properties"] = {k: strict_schema(v) for k, v in out["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in out:
            out["additionalProperties"] = False
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = strict_schema(out["additionalProperties"])
    if "items" in out:
        out["items"] = strict_schema(out["items"])
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@dataclass(frozen=True)
class Rule:
    path: tuple[str, ...]  # schema path: property names, "*" for array items / map values
    expression: str
    message: str

    @property
    def is_transition(self) -> bool:
        return "oldSelf" in self.expression


def _rules(schema: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[Rule]:
    for rule in schema.get("x-kubernetes-validations", []):
        yield Rule(path, rule["rule"], rule.get("message") or f"failed rule: {rule['rule']}")
    for name, sub in schema.get("properties", {}).items():
        yield from _rules(sub, (*path, name))
    if isinstance(schema.get("items"), dict):
        yield from _rules(schema["items"], (*path, "*"))
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _rules(schema["additionalProperties"], (*path, "*"))


def _values(value: Any, path: tuple[str, ...], at: str = "") -> Iterator[tuple[str, Any]]:
    """(field path as the API server prints it, value) for every node the schema path reaches."""
    if not path:
        yield at, value
        return
    head, rest = path[0], path[1:]
    if head == "*":
        items = enumerate(value) if isinstance(value, list) else (value.items() if isinstance(value, dict) else ())
        for key, item in items:
            yield from _values(item, rest, f"{at}[{key}]")
    elif isinstance(value, dict) and head in value:
        yield from _values(value[head], rest, f"{at}.{head}" if at else head)


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON (Python's 1 == True would let a type change pass as unchanged)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _lookup(value: Any, field: str) -> Any:
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _describe(error: Any) -> str:
    """The API server's words for size limits (never the oversized value itself)."""
    if error.validator == "maxLength":
        return f"Too long: may not be more than {error.validator_value} characters"
    if error.validator in ("maxProperties", "maxItems"):
        return f"Too many: {len(error.instance)}: must have at most {error.validator_value} items"
    return f"Invalid value: {json.dumps(error.instance)[:80]}: {error.message}"


class CRDValidator:
    """Validates objects of one CRD's served version; messages read like the API server's."""

    def __init__(self, crd: dict[str, Any], version: str | None = None) -> None:
        names = crd["spec"]["names"]
        self.kind = names["kind"]
        self.group = crd["spec"]["group"]
        self.plural = names["plural"]
        served = [v for v in crd["spec"]["versions"] if v.get("served")]
        self.version = next(v for v in served if version in (None, v["name"]))
        schema = self.version["schema"]["openAPIV3Schema"]
        strict = strict_schema(schema)
        self._schema = jsonschema.Draft7Validator(strict)
        self._parts = {k: jsonschema.Draft7Validator(v) for k, v in strict.get("properties", {}).items()}
        self._env = celpy.Environment()
        self._rules = [(rule, self._env.program(self._env.compile(rule.expression))) for rule in _rules(schema)]

    @classmethod
    def from_file(cls, path: str | Path) -> CRDValidator:
        return cls(yaml.safe_load(Path(path).read_text()))

    def errors(self, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
        """On an update, what the update left unchanged is not judged again (the API server's
        validation ratcheting, on by default since Kubernetes 1.30)."""
        found = []
        for error in sorted(self._schema_errors(obj, old), key=lambda e: list(e.absolute_path)):
            field = ".".join(str(p) for p in error.absolute_path) or "<root>"
            found.append(f"{field}: {_describe(error)}")
        if found:
            return found  # like the API server: CEL runs only on schema-valid objects
        for rule, program in self._rules:
            # transition rules (oldSelf) are never ratcheted, as on the API server
            before = dict(_values(old, rule.path)) if old is not None and not rule.is_transition else {}
            for field, value in _values(obj, rule.path):
                if field in before and _same(before[field], value):
                    continue  # unchanged: ratcheted
                activation = {"self": celpy.json_to_cel(value)}
                if rule.is_transition:
                    old_value = _lookup(old, field) if old is not None and "[" not in field else None
                    if old_value is None:
                        continue  # transition rules apply to updates of an existing value only
                    activation["oldSelf"] = celpy.json_to_cel(old_value)
                result = program.evaluate(activation)
                if isinstance(result, celpy.CELEvalError) or not bool(result):
                    found.append(f'{field}: Invalid value: "object": {rule.message}')
        return found

    def _schema_errors(self, obj: dict[str, Any], old: dict[str, Any] | None) -> Iterator[Any]:
        changed = {k for k in {*obj, *(old or {})} if old is None or not _same(obj.get(k), old.get(k))}
        if old is None or not changed <= set(self._parts) or not changed <= set(obj):
            yield from self._schema.iter_errors(obj)  # a create, or a top-level field added/removed
            return
        for key in sorted(changed):
            for error in self._parts[key].iter_errors(obj[key]):
                error.path.appendleft(key)  # paths as the whole-object validator reports them
                yield error

    def message(self, obj: dict[str, Any], errors: list[str]) -> str:
        name = obj.get("metadata", {}).get("name") or obj.get("metadata", {}).get("generateName", "")
        return f'{self.kind}.{self.group} "{name}" is invalid: ' + ", ".join(errors)
