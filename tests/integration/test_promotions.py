"""Promotions: approvals, gates, stage moves and the serving Deployments that follow them."""

from __future__ import annotations

import pytest
from kubernetes.client import ApiException

from modelreg.config import Settings
from tests.integration.conftest import NAMESPACE, condition, wait_for
from tests.integration.promotion_helpers import (
    approve,
    deployment,
    env_of,
    promote,
    register,
    stage,
    succeeded,
)


@pytest.fixture
def settings() -> Settings:
    return Settings(
        verification={"recheck_seconds": 60},
        promotions={"tick_seconds": 0.3},
    )


def test_production_needs_two_distinct_approvers_other_than_the_requester(operator, kube, s3, bucket):
    register(kube, s3, bucket, 1)
    promote(kube, "p1", 1, requester="alice")
    waiting = succeeded(kube, "p1", "AwaitingApproval")
    assert waiting["status"]["approvalSummary"] == "0/2"

    with pytest.raises(ApiException, match="alice requested promotion p1 and cannot approve it"):
        approve(kube, "p1", "alice")  # the requester's own approval is refused at admission
    approve(kube, "p1", "bob")
    with pytest.raises(ApiException, match="must be your own username"):  # not even an administrator
        kube.patch("modelpromotions", "p1", {"metadata": {"annotations": {"approval.modelreg.io/bob-again": "bob"}}})
    one = wait_for(
        lambda: (p := kube.get("modelpromotions", "p1"))["status"].get("approvalSummary") == "1/2" and p, what="1/2"
    )
    assert condition(one, "Succeeded")["reason"] == "AwaitingApproval" and stage(kube, "fraud-v1") is None

    approve(kube, "p1", "carol")
    done = succeeded(kube, "p1", "Promoted")
    assert sorted(a["user"] for a in done["status"]["approvals"]) == ["bob", "carol"]
    assert done["status"]["approvalSummary"] == "2/2" and done["status"]["requestedBy"] == "alice"
    assert stage(kube, "fraud-v1") == "Production"
    labels = kube.get("modelversions", "fraud-v1")["metadata"]["labels"]
    assert labels == {"modelreg.io/model": "fraud", "modelreg.io/stage": "Production"}


def test_unverified_version_waits_and_invalid_one_fails(operator, kube, s3, bucket):
    register(kube, s3, bucket, 1, wait=False)  # uploaded, but the promotion may come first
    kube.create(
        "modelversions",
        {
            "apiVersion": "modelreg.io/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": "fraud-v2"},
            "spec": {
                "modelName": "fraud",
                "version": 2,
                "artifact": {"uri": f"s3://{bucket}/missing.onnx", "sha256": "0" * 64},
            },
        },
    )
    promote(kube, "to-staging-2", 2, target="Staging")
    assert (
        "waiting for ModelVersion fraud-v2"
        in condition(succeeded(kube, "to-staging-2", "WaitingForArtifact"), "Succeeded")["message"]
    )
    s3.put_object(Bucket=bucket, Key="missing.onnx", Body=b"not what was declared")
    failed = succeeded(kube, "to-staging-2", "ArtifactInvalid")
    assert condition(failed, "Succeeded")["status"] == "False" and stage(kube, "fraud-v2") is None
    assert "checksum mismatch" in condition(failed, "Succeeded")["message"]
    promote(kube, "to-staging-1", 1, target="Staging")
    succeeded(kube, "to-staging-1", "Promoted")  # Staging needs no approval by default


def test_criteria_failure_names_metric_value_and_bound(operator, kube, s3, bucket):
    register(kube, s3, bucket, 1, metrics={"auc": 0.95, "latency_ms": 10})
    promote(kube, "first", 1, target="Staging")
    succeeded(kube, "first", "Promoted")
    register(kube, s3, bucket, 2, metrics={"auc": 0.91, "latency_ms": 8})
    promote(
        kube,
        "second",
        2,
        target="Staging",
        criteria=[{"metric": "auc", "maxRegression": 0.01}, {"metric": "latency_ms", "max": 20}],
    )
    failed = succeeded(kube, "second", "CriteriaNotMet")
    message = condition(failed, "Succeeded")["message"]
    assert "auc = 0.91" in message and "0.01" in message and "v1 in Staging" in message
    comparison = failed["status"]["comparison"]
    assert comparison["auc"] == {"candidate": 0.91, "current": 0.95, "delta": -0.04}
    assert comparison["latency_ms"]["delta"] == -2
    assert stage(kube, "fraud-v2") is None


def test_rollout_changes_only_the_model_env_and_annotation(operator, deployment_controller, apps, kube, s3, bucket):
    apps.create_namespaced_deployment(NAMESPACE, deployment("scorer", container="server"))
    register(kube, s3, bucket, 1)
    promote(kube, "p", 1, target="Staging")  # serve Staging to skip approvals in this test
    apps.patch_namespaced_deployment(
        "scorer", NAMESPACE, {"metadata": {"annotations": {"modelreg.io/stage": "Staging"}}}
    )
    done = succeeded(kube, "p", "Promoted")
    assert done["status"]["rollout"]["deployments"] == [{"name": "scorer", "updated": True, "available": True}]

    dep = apps.api_client.sanitize_for_serialization(apps.read_namespaced_deployment("scorer", NAMESPACE))
    assert env_of(dep, "server") == {
        "WORKERS": "4",
        "MODEL_VERSION": "1",
        "MODEL_NAME": "fraud",
        "MODEL_URI": f"s3://{bucket}/fraud/1.onnx",
        "MODEL_SHA256": kube.get("modelversions", "fraud-v1")["spec"]["artifact"]["sha256"],
    }
    assert env_of(dep, "sidecar") == {"LOG_LEVEL": "info"}
    containers = dep["spec"]["template"]["spec"]["containers"]
    assert [c["image"] for c in containers] == ["envoy:1.30", "scorer:2.1"]
    assert containers[1]["ports"][0]["containerPort"] == 8080
    assert dep["spec"]["template"]["metadata"]["annotations"] == {"team": "risk", "modelreg.io/version": "1"}


def test_progress_deadline_exceeded_rolls_back_to_the_previous_version(
    operator, deployment_controller, apps, kube, s3, bucket
):
    apps.create_namespaced_deployment(NAMESPACE, deployment("scorer", stage="Staging", fail_versions="2"))
    register(kube, s3, bucket, 1)
    promote(kube, "v1", 1, target="Staging")
    succeeded(kube, "v1", "Promoted")
    register(kube, s3, bucket, 2)
    promote(kube, "v2", 2, target="Staging")

    rolled_back = succeeded(kube, "v2", "RolledBack")
    message = condition(rolled_back, "Succeeded")["message"]
    assert "scorer" in message and "ProgressDeadlineExceeded" in message and "restored v1" in message
    assert rolled_back["status"]["previousVersion"] == 1
    dep = apps.api_client.sanitize_for_serialization(apps.read_namespaced_deployment("scorer", NAMESPACE))
    assert env_of(dep, "sidecar")["MODEL_VERSION"] == "1"  # default container: the first one
    assert stage(kube, "fraud-v1") == "Staging" and stage(kube, "fraud-v2") in ("", None)


def test_completed_newer_promotion_supersedes_an_older_pending_one(operator, kube, s3, bucket):
    for version in (1, 2, 3):
        register(kube, s3, bucket, version)
    promote(kube, "prod-1", 1, approvers=("bob", "carol"))
    succeeded(kube, "prod-1", "Promoted")
    promote(kube, "prod-2", 2)
    promote(kube, "prod-3", 3, approvers=("bob", "carol"))  # approved first: it need not wait for prod-2
    succeeded(kube, "prod-3", "Promoted")
    superseded = succeeded(kube, "prod-2", "Superseded")  # applying it now would undo prod-3
    assert "prod-3" in condition(superseded, "Succeeded")["message"]
    with pytest.raises(ApiException, match="prod-2 is finished"):
        approve(kube, "prod-2", "bob")

    assert [stage(kube, f"fraud-v{v}") for v in (1, 2, 3)] == ["Archived", None, "Production"]
    history = kube.get("modelversions", "fraud-v1")["status"]["stageHistory"]
    assert [(h["stage"], h["promotion"]) for h in history] == [("Production", "prod-1"), ("Archived", "prod-3")]
    assert history[0]["approvedBy"] == ["bob", "carol"]
    assert [(h["stage"], h["promotion"]) for h in kube.get("modelversions", "fraud-v3")["status"]["stageHistory"]] == [
        ("Production", "prod-3")
    ]


def test_two_approved_promotions_apply_in_creation_order_and_the_later_wins(operator, kube, s3, bucket):
    for version in (1, 2):
        register(kube, s3, bucket, version)
    promote(kube, "a", 1, approvers=("bob", "carol"))
    promote(kube, "b", 2, approvers=("bob", "carol"))
    b = succeeded(kube, "b", "Promoted")
    a = succeeded(kube, "a", "Promoted")
    assert a["status"]["completionTime"] <= b["status"]["startTime"]
    assert (stage(kube, "fraud-v1"), stage(kube, "fraud-v2")) == ("Archived", "Production")
    assert b["status"]["previousVersion"] == 1


def test_deployments_created_later_or_edited_by_hand_are_converged(operator, apps, kube, s3, bucket):
    register(kube, s3, bucket, 1)
    promote(kube, "s", 1, target="Staging")
    succeeded(kube, "s", "Promoted")
    apps.create_namespaced_deployment(NAMESPACE, deployment("late", stage="Staging"))

    def serving(version: str):
        dep = apps.api_client.sanitize_for_serialization(apps.read_namespaced_deployment("late", NAMESPACE))
        return env_of(dep, "sidecar").get("MODEL_VERSION") == version and dep

    wait_for(lambda: serving("1"), what="late Deployment converged")
    dep = apps.api_client.sanitize_for_serialization(apps.read_namespaced_deployment("late", NAMESPACE))
    containers = dep["spec"]["template"]["spec"]["containers"]
    containers[0]["env"] = [
        e if e["name"] != "MODEL_VERSION" else {"name": "MODEL_VERSION", "value": "9"} for e in containers[0]["env"]
    ]
    apps.patch_namespaced_deployment(
        "late",
        NAMESPACE,
        [{"op": "replace", "path": "/spec/template/spec/containers/0/env", "value": containers[0]["env"]}],
    )
    wait_for(lambda: serving("1"), what="hand edit reverted")
    events = [e for e in kube.core.list_namespaced_event(NAMESPACE).items if e.involved_object.name == "late"]
    assert any(e.reason == "ModelConverged" and "v1" in e.message for e in events)


def test_namespace_policy_can_raise_but_not_lower_required_approvals(operator, kube, s3, bucket):
    kube.core.create_namespaced_config_map(
        NAMESPACE,
        {
            "metadata": {"name": "modelreg-policy"},
            "data": {"policy.yaml": "requiredApprovals:\n  Staging: 1\n  Production: 0\n"},
        },
    )
    register(kube, s3, bucket, 1)
    promote(kube, "staging", 1, target="Staging")
    assert succeeded(kube, "staging", "AwaitingApproval")["status"]["approvalSummary"] == "0/1"
    promote(kube, "prod", 1)
    assert succeeded(kube, "prod", "AwaitingApproval")["status"]["approvalSummary"] == "0/2"
