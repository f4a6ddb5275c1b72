"""The third attack round (issue 18), each attack tried as it was reproduced, against the real
operator, its webhook (called by the emulator as an API server calls it) and moto over HTTP."""

from __future__ import annotations

import hashlib

import pytest

from modelreg.config import Settings
from tests.integration.conftest import NAMESPACE, wait_for
from tests.integration.promotion_helpers import deployment, promote, register, stage, succeeded, version_body
from tests.integration.test_trust_boundary import bypass, events  # noqa: F401 (a fixture)


@pytest.fixture
def settings() -> Settings:
    return Settings(verification={"recheck_seconds": 60}, promotions={"tick_seconds": 0.3})


def test_a_stage_is_never_restored_onto_a_version_created_again_under_its_name(
    operator, apps, kube, s3, bucket, bypass, deployment_controller
):
    apps.create_namespaced_deployment(NAMESPACE, deployment("scorer", stage="Staging"))
    register(kube, s3, bucket, 1)
    promote(kube, "s", 1, target="Staging")
    succeeded(kube, "s", "Promoted")
    original_uid = kube.get("modelversions", "fraud-v1")["metadata"]["uid"]
    other = b"other bytes"
    s3.put_object(Bucket=bucket, Key="other.onnx", Body=other, ChecksumAlgorithm="SHA256")
    with bypass:  # past every admission check: delete the holder, register its name again, forge its stage
        kube.delete("modelversions", "fraud-v1")
        wait_for(lambda: not kube.exists("modelversions", "fraud-v1"), what="fraud-v1 gone")
        kube.create(
            "modelversions",
            version_body("fraud-v1", f"s3://{bucket}/other.onnx", hashlib.sha256(other).hexdigest(), version=1),
        )
        assert kube.get("modelversions", "fraud-v1")["metadata"]["uid"] != original_uid
        kube.patch_status("modelversions", "fraud-v1", {"stage": "Staging"})
    wait_for(lambda: events(kube, "fraud-v1", "StatusTampered"), what="StatusTampered")
    wait_for(lambda: stage(kube, "fraud-v1") is None, what="the forged stage undone, nothing restored")
    assert not (kube.get("modelversions", "fraud-v1")["status"].get("stageHistory"))
    served = apps.read_namespaced_deployment("scorer", NAMESPACE).spec.template.spec.containers
    assert all("other.onnx" not in str(c.env) for c in served)
