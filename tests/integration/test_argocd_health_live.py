"""The Argo CD health scripts on objects the real operator produced."""

from __future__ import annotations

import pytest

from modelreg.config import Settings
from tests.argocd_health import health
from tests.integration.conftest import wait_for
from tests.integration.promotion_helpers import approve, promote, register, succeeded, version_body


@pytest.fixture
def settings() -> Settings:
    return Settings(verification={"tick_seconds": 0.3}, promotions={"tick_seconds": 0.3})


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
