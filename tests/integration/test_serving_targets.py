"""KServe InferenceServices and Argo Rollouts as serving targets, against the emulator with
(minimal stand-ins of) their CRDs installed and stand-ins of their controllers: promotion, a
failed rollout rolled back, convergence, serving only what was proven; and the operator
without those CRDs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelreg.config import Settings
from modelreg.sandbox.harness import ADMIN
from modelreg.testing.serving_targets import (
    ABORT_VERSIONS,
    SimulatedInferenceServiceController,
    SimulatedRolloutController,
)
from tests.conftest import ROOT
from tests.integration.conftest import NAMESPACE, condition, wait_for
from tests.integration.promotion_helpers import deployment, env_of, promote, register, stage, succeeded

TARGETS = {"inferenceServices": True, "rollouts": True}
KSERVE = ("serving.kserve.io", "v1beta1", NAMESPACE, "inferenceservices")
ARGO = ("argoproj.io", "v1alpha1", NAMESPACE, "rollouts")


@pytest.fixture
def extra_crds() -> list[Path]:
    return sorted((ROOT / "tests" / "crds").glob("*.yaml"))


@pytest.fixture
def settings() -> Settings:
    return Settings(
        verification={"recheck_seconds": 60}, promotions={"tick_seconds": 0.3}, serving={"targets": TARGETS}
    )


@pytest.fixture
def cluster(cluster):
    """The optional RBAC for both kinds (examples/install), as an installation without Helm applies it."""
    optional = ROOT / "examples" / "install" / "rbac-serving-targets.yaml"
    cluster.apply(d for d in yaml.safe_load_all(optional.read_text()) if d)
    return cluster


@pytest.fixture
def controllers(cluster) -> Iterator[None]:
    kinds = (SimulatedInferenceServiceController, SimulatedRolloutController)
    started = [kind(cluster.configuration(ADMIN), [NAMESPACE]).start() for kind in kinds]
    yield
    for controller in started:
        controller.stop()


def inference_service(name: str, stage: str = "Staging", **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "labels": {"modelreg.io/model": "fraud"},
            "annotations": {"modelreg.io/stage": stage, "team": "risk", **annotations},
        },
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "model": {"modelFormat": {"name": "onnx"}, "storageUri": "s3://elsewhere/hand-picked.onnx"},
            }
        },
    }


def rollout(name: str, stage: str = "Staging", **annotations: str) -> dict[str, Any]:
    """A canary Rollout with the same pod template as the Deployment tests use."""
    body = deployment(name, stage=stage, container="server")
    body["metadata"]["annotations"].update(annotations)
    body["apiVersion"], body["kind"] = "argoproj.io/v1alpha1", "Rollout"
    body["spec"]["strategy"] = {"canary": {"steps": [{"setWeight": 20}, {"pause": {"duration": "10s"}}]}}
    return body


def create(kube, api: tuple[str, ...], body: dict[str, Any]) -> None:
    kube.custom.create_namespaced_custom_object(*api, body)


def get(kube, api: tuple[str, ...], name: str) -> dict[str, Any]:
    return kube.custom.get_namespaced_custom_object(*api, name)


def model_of(isvc: dict[str, Any]) -> tuple[str, str | None, str | None]:
    annotations = isvc["metadata"].get("annotations") or {}
    return (
        isvc["spec"]["predictor"]["model"]["storageUri"],
        annotations.get("modelreg.io/version"),
        annotations.get("modelreg.io/sha256"),
    )


def sha256_of(kube, name: str) -> str:
    return kube.get("modelversions", name)["spec"]["artifact"]["sha256"]


def test_an_inference_service_serves_the_promoted_version_pinned_and_annotated(operator, controllers, kube, s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    create(kube, KSERVE, inference_service("scorer"))
    register(kube, s3, bucket, 1)
    promote(kube, "s1", 1, target="Staging")

    done = succeeded(kube, "s1", "Promoted")
    assert done["status"]["rollout"]["deployments"] == [
        {"name": "scorer", "kind": "InferenceService", "updated": True, "available": True}
    ]
    isvc = get(kube, KSERVE, "scorer")
    assert model_of(isvc) == (f"s3://{bucket}/fraud/1.onnx", "1", sha256_of(kube, "fraud-v1"))
    proven = kube.get("modelversions", "fraud-v1")["status"]["artifact"]
    assert isvc["metadata"]["annotations"]["modelreg.io/version-id"] == proven["versionId"]
    assert isvc["metadata"]["annotations"]["team"] == "risk" and isvc["spec"]["predictor"]["minReplicas"] == 1
    assert condition(isvc, "Ready")["status"] == "True"
    # rolled by the promotion, or (its patch lost a race with the controller's status write) by the
    # convergence that retries it: either way an Event on the InferenceService says so
    wait_for(
        lambda: {e.reason for e in kube.events_for("scorer")} & {"ModelRolled", "ModelConverged"},
        what="an Event on the InferenceService naming the roll",
    )


def test_an_inference_service_whose_model_fails_to_load_gets_its_previous_storage_uri_back(
    operator, controllers, kube, s3, bucket
):
    create(kube, KSERVE, inference_service("scorer", **{"simulate.modelreg.io/fail-versions": "2"}))
    register(kube, s3, bucket, 1)
    promote(kube, "s1", 1, target="Staging")
    succeeded(kube, "s1", "Promoted")
    register(kube, s3, bucket, 2)
    promote(kube, "s2", 2, target="Staging")

    rolled_back = succeeded(kube, "s2", "RolledBack")
    message = condition(rolled_back, "Succeeded")["message"]
    assert "InferenceService scorer: BlockedByFailedLoad" in message and "restored v1" in message
    assert model_of(get(kube, KSERVE, "scorer")) == (f"s3://{bucket}/fraud/1.onnx", "1", sha256_of(kube, "fraud-v1"))
    assert (stage(kube, "fraud-v1"), stage(kube, "fraud-v2")) == ("Staging", None)
    wait_for(lambda: condition(get(kube, KSERVE, "scorer"), "Ready")["status"] == "True", what="v1 Ready again")


def test_a_rollout_is_rolled_like_a_deployment_and_done_when_healthy(operator, controllers, kube, s3, bucket):
    create(kube, ARGO, rollout("scorer"))
    register(kube, s3, bucket, 1)
    promote(kube, "s1", 1, target="Staging")

    done = succeeded(kube, "s1", "Promoted")
    assert done["status"]["rollout"]["deployments"] == [
        {"name": "scorer", "kind": "Rollout", "updated": True, "available": True}
    ]
    ro = get(kube, ARGO, "scorer")
    assert ro["status"]["phase"] == "Healthy" and ro["status"]["observedGeneration"] == str(
        ro["metadata"]["generation"]
    )
    assert env_of(ro, "server") == {
        "WORKERS": "4",
        "MODEL_VERSION": "1",
        "MODEL_NAME": "fraud",
        "MODEL_URI": f"s3://{bucket}/fraud/1.onnx",
        "MODEL_SHA256": sha256_of(kube, "fraud-v1"),
    }
    assert env_of(ro, "sidecar") == {"LOG_LEVEL": "info"}
    assert ro["spec"]["template"]["metadata"]["annotations"] == {"team": "risk", "modelreg.io/version": "1"}
    assert ro["spec"]["strategy"]["canary"]["steps"][0] == {"setWeight": 20}  # the steps stay Argo's


@pytest.mark.parametrize(
    ("annotation", "said"),
    [("simulate.modelreg.io/fail-versions", "Degraded: ProgressDeadlineExceeded"), (ABORT_VERSIONS, "aborted")],
)
def test_a_degraded_or_aborted_rollout_is_rolled_back_template_and_all(
    operator, controllers, kube, s3, bucket, annotation, said
):
    create(kube, ARGO, rollout("scorer", **{annotation: "2"}))
    register(kube, s3, bucket, 1)
    promote(kube, "s1", 1, target="Staging")
    succeeded(kube, "s1", "Promoted")
    register(kube, s3, bucket, 2)
    promote(kube, "s2", 2, target="Staging")

    rolled_back = succeeded(kube, "s2", "RolledBack")
    message = condition(rolled_back, "Succeeded")["message"]
    assert f"Rollout scorer: {said}" in message and "restored v1" in message
    # An abort alone sends traffic back to the stable pods while spec.template still names v2:
    # the template itself is restored, so Argo leaves the aborted state for v1, not for v2.
    ro = get(kube, ARGO, "scorer")
    assert env_of(ro, "server")["MODEL_VERSION"] == "1"
    assert ro["spec"]["template"]["metadata"]["annotations"]["modelreg.io/version"] == "1"
    healthy = wait_for(
        lambda: (r := get(kube, ARGO, "scorer"))["status"].get("phase") == "Healthy" and r, what="Healthy on v1"
    )
    assert not healthy["status"].get("abort")
    assert (stage(kube, "fraud-v1"), stage(kube, "fraud-v2")) == ("Staging", None)


def test_targets_created_later_or_edited_by_hand_are_converged(operator, kube, s3, bucket):
    register(kube, s3, bucket, 1)
    promote(kube, "s1", 1, target="Staging")
    succeeded(kube, "s1", "Promoted")
    create(kube, KSERVE, inference_service("late-isvc"))
    create(kube, ARGO, rollout("late-ro"))
    uri = f"s3://{bucket}/fraud/1.onnx"

    wait_for(lambda: model_of(get(kube, KSERVE, "late-isvc"))[0] == uri, what="InferenceService converged")
    wait_for(lambda: env_of(get(kube, ARGO, "late-ro"), "server").get("MODEL_VERSION") == "1", what="Rollout converged")
    assert "v1" in kube.event("late-isvc", "ModelConverged").message
    assert "v1" in kube.event("late-ro", "ModelConverged").message

    kube.custom.patch_namespaced_custom_object(
        *KSERVE, "late-isvc", {"spec": {"predictor": {"model": {"storageUri": "s3://elsewhere/other.onnx"}}}}
    )
    ro = get(kube, ARGO, "late-ro")
    env = [e if e["name"] != "MODEL_URI" else {"name": "MODEL_URI", "value": "s3://x/y"} for e in env_list(ro)]
    kube.custom.patch_namespaced_custom_object(
        *ARGO,
        "late-ro",
        [{"op": "replace", "path": "/spec/template/spec/containers/1/env", "value": env}],
        _content_type="application/json-patch+json",
    )
    wait_for(lambda: model_of(get(kube, KSERVE, "late-isvc"))[0] == uri, what="hand edit of storageUri reverted")
    wait_for(lambda: env_of(get(kube, ARGO, "late-ro"), "server")["MODEL_URI"] == uri, what="hand edit reverted")


def env_list(ro: dict[str, Any]) -> list[dict[str, Any]]:
    return ro["spec"]["template"]["spec"]["containers"][1]["env"]


def test_an_artifact_overwritten_after_verification_reaches_no_target_of_any_kind(operator, kube, s3, bucket):
    create(kube, KSERVE, inference_service("scorer"))
    create(kube, ARGO, rollout("scorer"))
    register(kube, s3, bucket, 1)
    s3.put_object(Bucket=bucket, Key="fraud/1.onnx", Body=b"poisoned weights", ChecksumAlgorithm="SHA256")
    promote(kube, "s1", 1, target="Staging")

    succeeded(kube, "s1", "ArtifactChanged")
    assert model_of(get(kube, KSERVE, "scorer")) == ("s3://elsewhere/hand-picked.onnx", None, None)
    assert env_of(get(kube, ARGO, "scorer"), "server")["MODEL_VERSION"] == "stale"
    assert stage(kube, "fraud-v1") is None


def test_a_target_created_after_its_holders_bytes_changed_is_not_converged(operator, kube, s3, bucket):
    register(kube, s3, bucket, 1)
    promote(kube, "s1", 1, target="Staging")
    succeeded(kube, "s1", "Promoted")
    s3.put_object(Bucket=bucket, Key="fraud/1.onnx", Body=b"poisoned weights", ChecksumAlgorithm="SHA256")
    create(kube, KSERVE, inference_service("late-isvc"))
    create(kube, ARGO, rollout("late-ro"))

    for name in ("late-isvc", "late-ro"):
        assert "not rolling fraud v1 onto it" in kube.event(name, "ModelNotConverged").message
    assert model_of(get(kube, KSERVE, "late-isvc"))[0] == "s3://elsewhere/hand-picked.onnx"
    assert env_of(get(kube, ARGO, "late-ro"), "server")["MODEL_VERSION"] == "stale"


@pytest.mark.parametrize("extra_crds", [[]], ids=["without-kserve-and-argo-crds"])
def test_without_their_crds_the_operator_serves_deployments_and_says_so_once(
    start_operator, settings, deployment_controller, apps, kube, s3, bucket, caplog, extra_crds
):
    caplog.set_level(logging.INFO)
    start_operator(settings)  # both kinds enabled; the default cluster has neither CRD
    apps.create_namespaced_deployment(NAMESPACE, deployment("scorer", stage="Staging"))
    register(kube, s3, bucket, 1)
    promote(kube, "s1", 1, target="Staging")
    succeeded(kube, "s1", "Promoted")

    said = [r.getMessage() for r in caplog.records if "serving.targets" in r.getMessage()]
    assert len(said) == 1, said
    assert "InferenceService (inferenceservices.serving.kserve.io)" in said[0]
    assert "Rollout (rollouts.argoproj.io)" in said[0]
    assert not [r for r in caplog.records if "Unresolved resources" in r.getMessage()]  # kopf watches neither
