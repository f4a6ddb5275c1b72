"""An operator restarted in the middle of a rollout finishes it without applying anything twice."""

from __future__ import annotations

import pytest

from modelreg.config import Settings
from modelreg.sandbox.deployments import SimulatedDeploymentController
from tests.integration.conftest import NAMESPACE, wait_for
from tests.integration.promotion_helpers import deployment, promote, register, stage, succeeded


@pytest.fixture
def settings() -> Settings:
    return Settings(promotions={"tick_seconds": 0.3})


def test_restart_mid_rollout(start_operator, cluster, apps, kube, s3, bucket):
    apps.create_namespaced_deployment(NAMESPACE, deployment("scorer", stage="Staging"))
    first = start_operator()
    register(kube, s3, bucket, 1)
    promote(kube, "p", 1, target="Staging")
    rolling = succeeded(kube, "p", "RollingOut")  # no Deployment controller yet: the rollout cannot finish
    wait_for(
        lambda: apps.read_namespaced_deployment("scorer", NAMESPACE).metadata.generation == 2, what="Deployment patched"
    )
    first.stop()

    start_operator()
    controller = SimulatedDeploymentController(cluster.configuration("admin"), [NAMESPACE]).start()
    try:
        done = succeeded(kube, "p", "Promoted")
    finally:
        controller.stop()

    assert done["status"]["startTime"] == rolling["status"]["startTime"]
    assert apps.read_namespaced_deployment("scorer", NAMESPACE).metadata.generation == 2  # rolled once
    history = kube.get("modelversions", "fraud-v1")["status"]["stageHistory"]
    assert [(h["stage"], h["promotion"]) for h in history] == [("Staging", "p")]
    assert stage(kube, "fraud-v1") == "Staging"
    rolled = [
        e
        for e in kube.core.list_namespaced_event(NAMESPACE).items
        if e.involved_object.name == "scorer" and e.reason == "ModelRolled"
    ]
    assert len(rolled) == 1


def test_a_restart_reads_no_storage_for_versions_not_due(start_operator, kube, s3, bucket, caplog):
    import logging

    from modelreg.config import Settings
    from tests.integration.promotion_helpers import register

    slow_recheck = Settings(verification={"recheck_seconds": 600}, promotions={"tick_seconds": 0.3})
    first = start_operator(slow_recheck)
    verified = register(kube, s3, bucket, 1)
    first.stop()
    caplog.set_level(logging.INFO, logger="werkzeug")  # moto's request log
    caplog.clear()
    start_operator(slow_recheck)
    register(kube, s3, bucket, 2)  # the new operator is working: it verified this one
    storage = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("fraud/2.onnx" in line for line in storage)
    assert not any("fraud/1.onnx" in line for line in storage), storage  # not due: not a single request
    assert kube.get("modelversions", "fraud-v1")["status"]["lastCheck"] == verified["status"]["lastCheck"]
