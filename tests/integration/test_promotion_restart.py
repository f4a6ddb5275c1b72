"""An operator restarted in the middle of a rollout finishes it without applying anything twice."""

from __future__ import annotations

import pytest

from modelreg.config import Settings
from modelreg.testing.deployments import SimulatedDeploymentController
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
    controller = SimulatedDeploymentController(cluster.url, [NAMESPACE]).start()
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
