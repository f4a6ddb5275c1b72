"""Size bounds (issue 18): the CRDs bound every spec field, so no ModelVersion or ModelPromotion
the API server admits is too large for the webhook server, whose `failurePolicy: Fail` would
then refuse it (or, failing open, let it skip the checks). See docs/decisions.md, "Size bounds"."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
import yaml

from modelreg.sandbox.validation import CRDValidator
from tests.conftest import ROOT

MV_FILE = ROOT / "crds" / "modelversions.modelreg.io.yaml"
MP_FILE = ROOT / "crds" / "modelpromotions.modelreg.io.yaml"

# The documented bounds (docs/decisions.md): the largest admitted spec, as JSON.
SPEC_CHARS_BOUND = 192 * 1024  # one byte per character (ASCII, what people write)
SPEC_BYTES_BOUND = 1152 * 1024  # every free-text character escaped (\u003c: six bytes)
WEBHOOK_BODY_LIMIT = 8 * 1024 * 1024  # what the webhook server accepts

ESCAPED = 6  # bytes per character at worst: Go's encoding/json writes <, >, &, U+2028 as \uXXXX
INT64 = len(str(-(2**63)))  # 20
FLOAT64 = len("-2.2250738585072014e-308")  # 24: the longest float64 Go writes
KEY_RULE = re.compile(r"^self\.all\(k, size\(k\) <= (\d+)\)$")


def spec_schema(path) -> dict[str, Any]:
    crd = yaml.safe_load(path.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def key_bound(schema: dict[str, Any]) -> int | None:
    for rule in schema.get("x-kubernetes-validations", []):
        if match := KEY_RULE.match(rule["rule"]):
            return int(match[1])
    return None


def unbounded(schema: dict[str, Any], path: str) -> list[str]:
    """Every field whose size the schema leaves open."""
    kind = schema.get("type")
    if "enum" in schema:
        return []
    if kind == "string":
        return [] if "maxLength" in schema else [path]
    if kind == "array":
        own = [] if "maxItems" in schema else [path]
        return own + unbounded(schema["items"], f"{path}[*]")
    if kind == "object":
        found = [p for name, sub in schema.get("properties", {}).items() for p in unbounded(sub, f"{path}.{name}")]
        if isinstance(schema.get("additionalProperties"), dict):
            if "maxProperties" not in schema or key_bound(schema) is None:
                found.append(f"{path} (entries or key length)")
            found += unbounded(schema["additionalProperties"], f"{path}[*]")
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            found.append(path)
        return found
    return []  # integer, number, boolean: fixed width


def worst_size(schema: dict[str, Any], per_char: int) -> int:
    """An upper bound on the compact JSON of any value the schema admits, with each free-text
    character taking `per_char` bytes."""

    def text(chars: int) -> int:
        return 2 + chars * per_char

    if "enum" in schema:
        return max(len(json.dumps(value)) for value in schema["enum"])
    kind = schema["type"]
    if kind == "string":
        return text(schema["maxLength"])
    if kind == "integer":
        return INT64
    if kind == "number":
        return FLOAT64
    if kind == "boolean":
        return len("false")
    if kind == "array":
        return 2 + schema["maxItems"] * (worst_size(schema["items"], per_char) + 1)
    size = 2
    for name, sub in schema.get("properties", {}).items():
        size += len(json.dumps(name)) + 1 + worst_size(sub, per_char) + 1
    if isinstance(schema.get("additionalProperties"), dict):
        entry = text(key_bound(schema)) + 1 + worst_size(schema["additionalProperties"], per_char) + 1
        size += schema["maxProperties"] * entry
    return size


@pytest.mark.parametrize("path", [MV_FILE, MP_FILE], ids=lambda p: p.name)
def test_every_spec_field_is_bounded(path):
    assert unbounded(spec_schema(path), "spec") == []


@pytest.mark.parametrize("path", [MV_FILE, MP_FILE], ids=lambda p: p.name)
def test_the_largest_admitted_spec_stays_under_the_documented_bound(path):
    schema = spec_schema(path)
    chars, escaped = worst_size(schema, 1), worst_size(schema, ESCAPED)
    assert chars <= SPEC_CHARS_BOUND, chars
    assert escaped <= SPEC_BYTES_BOUND, escaped
    # The largest admission request: the new object and the stored one (etcd keeps at most
    # 1.5 MiB), each with 256 KiB of annotations escaped at worst, under the webhook's limit.
    new_object = escaped + 6 * 256 * 1024
    stored_object = int(1.5 * 1024 * 1024)
    assert new_object + stored_object + 64 * 1024 < WEBHOOK_BODY_LIMIT


def model_version(**spec: Any) -> dict[str, Any]:
    base = {
        "modelName": "fraud",
        "version": 1,
        "artifact": {"uri": "s3://models/ml/fraud/1/m.onnx", "sha256": "a" * 64},
    }
    return {
        "apiVersion": "modelreg.io/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": "x"},
        "spec": base | spec,
    }


def largest_model_version() -> dict[str, Any]:
    """Every bounded field at its bound (ASCII): admitted, and no larger than computed."""
    schema = spec_schema(MV_FILE)["properties"]
    metrics, params = schema["metrics"], schema["hyperparameters"]

    def key(n: int, length: int) -> str:
        return f"{n:06d}".ljust(length, "k")

    return model_version(
        modelName="m" * 63,
        version=2**63 - 1,
        artifact={
            "uri": "s3://models/" + "k" * (schema["artifact"]["properties"]["uri"]["maxLength"] - len("s3://models/")),
            "sha256": "f" * 64,
            "sizeBytes": 2**63 - 1,
            "format": "huggingface",
        },
        lineage={
            "experimentName": "e" * 253,
            "runId": "r" * 253,
            "codeCommit": "c" * 253,
            "trainingDataUri": "s3://data/" + "d" * 2038,
            "trainingDataSha256": "0" * 64,
            "parentVersion": 2**63 - 1,
        },
        hyperparameters={
            key(n, key_bound(params)): "v" * params["additionalProperties"]["maxLength"]
            for n in range(params["maxProperties"])
        },
        metrics={key(n, key_bound(metrics)): -2.2250738585072014e-308 for n in range(metrics["maxProperties"])},
        description="d" * schema["description"]["maxLength"],
    )


def test_the_largest_model_version_is_admitted_and_within_the_computed_bound():
    validator = CRDValidator.from_file(MV_FILE)
    largest = largest_model_version()
    assert validator.errors(largest) == []
    size = len(json.dumps(largest["spec"], separators=(",", ":")))
    assert size <= worst_size(spec_schema(MV_FILE), 1) <= SPEC_CHARS_BOUND
    assert size > 0.9 * worst_size(spec_schema(MV_FILE), 1)  # the bound is tight, not a guess


def add(field: str, key: str, value: Any, *, replacing: bool = False):
    def change(spec: dict[str, Any]) -> None:
        if replacing:  # stay at the entry limit: one entry swapped for the oversized one
            spec[field].pop(next(iter(spec[field])))
        spec[field][key] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (add("metrics", "one-too-many", 1.0), "spec.metrics: Too many: 513: must have at most 512 items"),
        (
            add("hyperparameters", "one-too-many", "x"),
            "spec.hyperparameters: Too many: 257: must have at most 256 items",
        ),
        (
            add("metrics", "m" * 129, 1.0, replacing=True),
            'spec.metrics: Invalid value: "object": metric names are at most 128 characters',
        ),
        (
            add("hyperparameters", "h" * 129, "x", replacing=True),
            'spec.hyperparameters: Invalid value: "object": hyperparameter names are at most 128 characters',
        ),
        (
            add("hyperparameters", "lr", "x" * 257, replacing=True),
            "spec.hyperparameters.lr: Too long: may not be more than 256 characters",
        ),
        (
            lambda spec: spec.update(description="d" * 4097),
            "spec.description: Too long: may not be more than 4096 characters",
        ),
    ],
    ids=["metrics", "hyperparameters", "metric-name", "hyperparameter-name", "hyperparameter-value", "description"],
)
def test_one_past_a_bound_is_rejected_with_a_readable_message(change, message):
    validator = CRDValidator.from_file(MV_FILE)
    obj = largest_model_version()
    change(obj["spec"])
    errors = validator.errors(obj)
    assert errors == [message]
    assert len(validator.message(obj, errors)) < 200  # names the limit, never echoes the value


def test_the_reported_attack_is_rejected_by_the_schema():
    """1.1 MB of metrics (75,000) was once too large for the webhook server, which failed open."""
    obj = model_version(metrics={f"metric_{n:05d}": 0.123456789 for n in range(75_000)})
    assert len(json.dumps(obj)) > 1_000_000
    assert CRDValidator.from_file(MV_FILE).errors(obj) == ["spec.metrics: Too many: 75000: must have at most 512 items"]


def test_a_promotion_over_its_bounds_is_rejected():
    validator = CRDValidator.from_file(MP_FILE)
    base = {
        "apiVersion": "modelreg.io/v1alpha1",
        "kind": "ModelPromotion",
        "metadata": {"name": "p"},
        "spec": {"modelName": "fraud", "version": 1, "targetStage": "Production", "reason": "r" * 4096},
    }
    base["spec"]["criteria"] = [{"metric": "m" * 253, "min": 0.5}] * 64
    assert validator.errors(base) == []
    too_many = copy.deepcopy(base)
    too_many["spec"]["criteria"].append({"metric": "auc", "min": 0.5})
    assert validator.errors(too_many) == ["spec.criteria: Too many: 65: must have at most 64 items"]
    too_long = copy.deepcopy(base)
    too_long["spec"]["reason"] += "r"
    assert validator.errors(too_long) == ["spec.reason: Too long: may not be more than 4096 characters"]
