"""The pydantic models and the CRD schemas describe the same fields, with the same bounds."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from modelreg.models.resources import ModelPromotionSpec, ModelVersionSpec, ModelVersionStatus
from tests.conftest import ROOT


def crd_schema(kind_file: str) -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "crds" / kind_file).read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def model_fields(model: type[BaseModel]) -> dict[str, Any]:
    """alias -> nested model (or None) for each field."""
    out = {}
    for name, field in model.model_fields.items():
        alias = field.alias or name
        nested = None
        for candidate in getattr(field.annotation, "__args__", (field.annotation,)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                nested = candidate
            for inner in getattr(candidate, "__args__", ()):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    nested = inner
        out[alias] = nested
    return out


def assert_same_shape(schema: dict[str, Any], model: type[BaseModel], path: str) -> None:
    properties = schema.get("properties") or schema.get("items", {}).get("properties", {})
    fields = model_fields(model)
    assert set(properties) - {"modelreg"} == set(fields), path
    for name, nested in fields.items():
        if nested is not None:
            assert_same_shape(properties[name], nested, f"{path}.{name}")


@pytest.mark.parametrize(
    ("crd_file", "part", "model"),
    [
        ("modelversions.modelreg.io.yaml", "spec", ModelVersionSpec),
        ("modelversions.modelreg.io.yaml", "status", ModelVersionStatus),
        ("modelpromotions.modelreg.io.yaml", "spec", ModelPromotionSpec),
    ],
)
def test_fields_agree(crd_file, part, model):
    assert_same_shape(crd_schema(crd_file)["properties"][part], model, part)


@pytest.mark.parametrize(
    "broken",
    [
        {"version": 0},
        {"modelName": "Not_A_Label"},
        {"artifact": {"uri": "s3://models/x", "sha256": "A" * 64}},
        {"artifact": {"uri": "gs://models/x", "sha256": "a" * 64}},
        {"artifact": {"uri": "s3://models/x", "sha256": "a" * 64, "format": "pickle"}},
    ],
)
def test_models_reject_what_the_crd_rejects(broken):
    from modelreg.sandbox.validation import CRDValidator

    spec = {"modelName": "fraud", "version": 1, "artifact": {"uri": "s3://models/x", "sha256": "a" * 64}, **broken}
    validator = CRDValidator.from_file(ROOT / "crds/modelversions.modelreg.io.yaml")
    assert validator.errors(
        {"apiVersion": "modelreg.io/v1alpha1", "kind": "ModelVersion", "metadata": {"name": "x"}, "spec": spec}
    )
    with pytest.raises(ValidationError):
        ModelVersionSpec.model_validate(spec)
