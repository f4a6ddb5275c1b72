"""Invalid ModelVersions are refused by the API (CRD schema and CEL rules) with a readable message."""

from __future__ import annotations

import json

import kubernetes
import pytest

from tests.integration.test_model_version_verification import model_version

SHA = "a" * 64


def rejection(kube, body) -> str:
    with pytest.raises(kubernetes.client.ApiException) as caught:
        kube.create("modelversions", body)
    assert caught.value.status == 422
    return json.loads(caught.value.body)["message"]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("sha256", "ABCDEF", "spec.artifact.sha256"),
        ("uri", "https://example.com/model.onnx", "spec.artifact.uri"),
        ("uri", "gs://bucket/model.onnx", "spec.artifact.uri"),
    ],
)
def test_bad_artifact_fields_are_rejected(kube, field, value, expected):
    body = model_version("bad", "s3://bucket/k", SHA)
    body["spec"]["artifact"][field] = value
    message = rejection(kube, body)
    assert message.startswith('ModelVersion.modelreg.io "bad" is invalid:')
    assert expected in message and value in message


def test_version_zero_is_rejected(kube):
    message = rejection(kube, model_version("v0", "s3://bucket/k", SHA, version=0))
    assert "spec.version" in message and "minimum of 1" in message


def test_unknown_field_is_rejected(kube):
    body = model_version("typo", "s3://bucket/k", SHA)
    body["spec"]["modelname"] = "oops"
    assert "modelname" in rejection(kube, body)


def test_artifact_cannot_change_after_creation(kube):
    kube.create("modelversions", model_version("immutable", "s3://bucket/k", SHA))
    with pytest.raises(kubernetes.client.ApiException) as caught:
        kube.patch("modelversions", "immutable", {"spec": {"artifact": {"sha256": "b" * 64}}})
    assert caught.value.status == 422
    assert "spec.artifact is immutable" in json.loads(caught.value.body)["message"]
    # Mutable fields still change, and bump the generation.
    updated = kube.patch("modelversions", "immutable", {"spec": {"description": "better docs"}})
    assert updated["metadata"]["generation"] == 2
