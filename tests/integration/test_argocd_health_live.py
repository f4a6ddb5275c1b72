"""The Argo CD health scripts on objects the real operator produced."""

from __future__ import annotations

import pytest

from modelreg.config import Settings
from tests.argocd_health import health
from tests.integration.conftest import wait_for
from tests.integration.promotion_helpers import approve, promote, register, succeeded, version_body


@pytest.fixture
def settings() -> Settings:
    return Settings(promotions={"tick_seconds": 0.3})


def test_argo_cd_sees_what_the_operator_did(operator, kube, s3, bucket):
    assert health("ModelVersion", register(kube, s3, bucket, 1))["status"] == "Healthy"
    promote(kube, "p", 1)
    waiting = health("ModelPromotion", succeeded(kube, "p", "AwaitingApproval"))
    assert waiting == {"status": "Suspended", "message": "AwaitingApproval: 0/2 approvals for Production"}
    approve(kube, "p", "bob", "carol")
    assert health("ModelPromotion", succeeded(kube, "p", "Promoted"))["status"] == "Healthy"

    s3.put_object(Bucket=bucket, Key="other.onnx", Body=b"not it")
    kube.create("modelversions", version_body("fraud-v2", f"s3://{bucket}/other.onnx", "0" * 64, version=2))
    degraded = wait_for(
        lambda: (h := health("ModelVersion", kube.get("modelversions", "fraud-v2")))["status"] == "Degraded" and h,
        what="Degraded",
    )
    assert "checksum mismatch" in degraded["message"]


def test_the_operator_changes_no_field_a_gitops_manifest_sets(operator, kube, s3, bucket):
    """What Argo CD compares (the fields in git) stays as committed after the operator reconciled."""
    import copy
    import pathlib

    import yaml

    def subset(desired, live) -> bool:
        if isinstance(desired, dict):
            return isinstance(live, dict) and all(subset(v, live.get(k)) for k, v in desired.items())
        return desired == live

    root = pathlib.Path(__file__).resolve().parents[2] / "examples/gitops/base/models"
    manifests = [yaml.safe_load(p.read_text()) for p in sorted(root.glob("*.yaml"))]
    for manifest in manifests:
        kube.create("modelversions", copy.deepcopy(manifest))
    for manifest in manifests:
        name = manifest["metadata"]["name"]
        live = wait_for(  # status first, then the label (a status write cannot carry labels)
            lambda n=name: (
                (o := kube.get("modelversions", n)).get("status", {}).get("conditions")
                and "modelreg.io/model" in (o["metadata"].get("labels") or {})
                and o
            ),
            what=f"{name} reconciled and labelled",
        )
        assert live["metadata"]["labels"]["modelreg.io/model"] == "fraud"  # the operator's label: not in git
        assert subset({k: v for k, v in manifest.items() if k != "metadata"}, live)
        assert subset(manifest["metadata"], live["metadata"])
