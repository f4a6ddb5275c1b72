"""The promotions service against an in-memory store: no API, no storage, a fixed clock."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from datetime import UTC, datetime
from typing import Any

import jsonpatch
import pytest

from modelreg.domain.merge import merge_patch
from modelreg.domain.serving import DEPLOYMENTS
from modelreg.domain.trust import STAGE, VERIFICATION
from modelreg.sandbox.keys import approval_seals, sealed_annotations, status_seals
from modelreg.services.promotions import PromotionReconciler
from modelreg.services.view import PROMOTIONS, VERSIONS, View
from modelreg.storage.kube import ApiRefused, Conflict

NS = "ml"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SEALS = status_seals()


class FakeKube:
    """What the service asks of the API, kept in dicts: merge patches, resourceVersion preconditions."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.deployments: dict[str, dict[str, Any]] = {}
        self.versions = itertools.count(100)
        self.writes: list[tuple[str, str]] = []

    def put(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        body = json.loads(json.dumps(body))  # as the API stores and answers: JSON (a Stage is a str)
        body["metadata"]["resourceVersion"] = str(next(self.versions))
        self.objects[(plural, body["metadata"]["name"])] = body
        return copy.deepcopy(body)

    async def patch_status(self, plural, namespace, name, status, resource_version=None):
        stored = self.objects[(plural, name)]
        if resource_version is not None and stored["metadata"]["resourceVersion"] != resource_version:
            raise Conflict("changed since")
        self.writes.append((plural, name))
        return self.put(plural, {**stored, "status": merge_patch(stored.get("status") or {}, status)})

    async def patch_labels(self, plural, namespace, name, labels):
        stored = self.objects[(plural, name)]
        meta = {**stored["metadata"], "labels": merge_patch(stored["metadata"].get("labels") or {}, labels)}
        return self.put(plural, {**stored, "metadata": meta})

    async def list_targets(self, kind, namespace, selector):
        return [copy.deepcopy(d) for d in self.deployments.values()]

    async def get_target(self, kind, namespace, name):
        return copy.deepcopy(self.deployments.get(name))

    async def json_patch_target(self, kind, namespace, name, ops):
        patched = jsonpatch.apply_patch(self.deployments[name], ops)
        patched["status"] = {"observedGeneration": 2, "updatedReplicas": 1, "availableReplicas": 1, "replicas": 1}
        patched["metadata"].update(generation=2, resourceVersion=str(next(self.versions)))
        self.deployments[name] = patched

    async def policy_override(self, namespace, name):
        return None


def version(name: str, number: int, stage: str | None = None) -> dict[str, Any]:
    body = {
        "apiVersion": "modelreg.io/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {
            "namespace": NS,
            "name": name,
            "uid": f"uid-{name}",
            "creationTimestamp": f"2026-11-0{number}T00:00:00Z",
        },
        "spec": {"modelName": "fraud", "version": number, "artifact": {"uri": f"s3://b/{name}", "sha256": "a" * 64}},
    }
    status = {
        "conditions": [{"type": "ArtifactVerified", "status": "True", "reason": "Verified", "message": "ok"}],
        "artifact": {"sha256": "a" * 64},
        "lastCheck": {"time": "2026-11-28T11:00:00Z"},
    }
    if stage:
        status.update(stage=stage, stageHistory=[{"stage": stage, "time": "2026-11-01T00:00:00Z", "promotion": "old"}])
    seals = {VERIFICATION: SEALS.seal(VERIFICATION, body, status)}
    if stage:
        seals[STAGE] = SEALS.seal(STAGE, body, status)
    body["status"] = {**status, "seals": seals}
    return body


def promotion(name: str, number: int, candidate: dict[str, Any], approvers: tuple[str, ...]) -> dict[str, Any]:
    body = {
        "apiVersion": "modelreg.io/v1alpha1",
        "kind": "ModelPromotion",
        "metadata": {
            "namespace": NS,
            "name": name,
            "uid": f"uid-{name}",
            "generation": 1,
            "creationTimestamp": "2026-11-28T11:59:00Z",
        },
        "spec": {"modelName": "fraud", "version": number, "targetStage": "Production", "criteria": []},
    }
    body["metadata"]["annotations"] = sealed_annotations(body, candidate, "alice", approvers, "2026-11-28T11:59:00Z")
    return body


def deployment() -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": NS,
            "name": "serve",
            "labels": {"modelreg.io/model": "fraud"},
            "generation": 1,
            "resourceVersion": "1",
        },
        "spec": {"template": {"metadata": {}, "spec": {"containers": [{"name": "model", "image": "s:1"}]}}},
        "status": {"observedGeneration": 1, "updatedReplicas": 1, "availableReplicas": 1, "replicas": 1},
    }


@pytest.fixture
def world():
    kube = FakeKube()
    view = View({VERSIONS: SEALS.trusted_version, PROMOTIONS: SEALS.trusted_promotion})

    async def proven(namespace, model_version):
        return None

    service = PromotionReconciler(
        kube, {"Production": 2}, {}, "modelreg-policy", approval_seals(), SEALS, proven, view, clock=lambda: NOW
    )
    kube.deployments["serve"] = deployment()

    def add(plural: str, body: dict[str, Any]) -> None:
        view.observe(plural, "ADDED", kube.put(plural, body))

    return kube, view, service, add


def promote_v2_over_v1(add, v1_labels: dict[str, str] | None = None) -> None:
    """fraud-v1 in Production, fraud-v2 verified, promotion p of v2 approved by two."""
    v1, v2 = version("fraud-v1", 1, stage="Production"), version("fraud-v2", 2)
    v1["metadata"]["labels"] = v1_labels or {}
    add(VERSIONS, v1)
    add(VERSIONS, v2)
    add(PROMOTIONS, promotion("p", 2, v2, ("bob", "carol")))


def condition(obj, type_):
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


async def test_an_approved_promotion_moves_stages_rolls_and_ends_promoted(world):
    kube, _, service, add = world
    promote_v2_over_v1(add)

    outcome = await service.reconcile(NS, "p", "fraud")  # commit point, moves, Deployment patched
    assert condition(kube.objects[(PROMOTIONS, "p")], "Succeeded")["reason"] == "RollingOut"
    ended = await service.reconcile(NS, "p", "fraud")  # the next tick: the Deployment is available
    outcome.transitions += ended.transitions
    outcome.notices += ended.notices

    done = kube.objects[(PROMOTIONS, "p")]
    assert condition(done, "Succeeded")["reason"] == "Promoted"
    assert done["status"]["completionTime"] == "2026-11-28T12:00:00Z"  # the injected clock
    assert kube.objects[(VERSIONS, "fraud-v2")]["status"]["stage"] == "Production"
    assert kube.objects[(VERSIONS, "fraud-v1")]["status"]["stage"] == "Archived"
    served = kube.deployments["serve"]["spec"]["template"]["metadata"]["annotations"]
    assert served["modelreg.io/version"] == "2"
    reasons = [t.reason for _, t in outcome.transitions]
    assert reasons.count("StageChanged") == 2 and reasons.count("ModelRolled") == 1 and reasons[-1] == "Promoted"
    assert [n.type for n in outcome.notices].count("stage.changed") == 2
    # the view saw every write: judging again changes nothing and writes nothing
    writes = len(kube.writes)
    again = await service.reconcile(NS, "p", "fraud")
    assert again.transitions == [] and len(kube.writes) == writes


async def test_without_enough_approvals_nothing_moves(world):
    kube, _, service, add = world
    v2 = version("fraud-v2", 2)
    add(VERSIONS, v2)
    add(PROMOTIONS, promotion("p", 2, v2, ("bob",)))
    await service.reconcile(NS, "p", "fraud")
    waiting = kube.objects[(PROMOTIONS, "p")]
    assert condition(waiting, "Approved")["reason"] == "AwaitingApproval"
    assert waiting["status"]["approvalSummary"] == "1/2"
    assert "stage" not in kube.objects[(VERSIONS, "fraud-v2")]["status"]
    assert "annotations" not in kube.deployments["serve"]["spec"]["template"]["metadata"]


async def test_a_stale_view_cannot_execute_what_changed_meanwhile(world):
    kube, _, service, add = world
    v2 = version("fraud-v2", 2)
    add(VERSIONS, v2)
    add(PROMOTIONS, promotion("p", 2, v2, ("bob", "carol")))
    # an approval withdrawn in the cluster, its watch event not seen yet: the commit point's
    # resourceVersion precondition refuses the judged promotion
    stored = kube.objects[(PROMOTIONS, "p")]
    kube.put(PROMOTIONS, {**stored, "metadata": {**stored["metadata"], "annotations": {}}})
    await service.reconcile(NS, "p", "fraud")
    assert "stage" not in kube.objects[(VERSIONS, "fraud-v2")]["status"]
    assert "annotations" not in kube.deployments["serve"]["spec"]["template"]["metadata"]


async def test_a_deployment_event_already_serving_its_stage_costs_no_read(world):
    kube, _, service, add = world
    add(VERSIONS, version("fraud-v1", 1, stage="Production"))
    reads = []
    read = kube.get_target

    async def counted(kind, namespace, name):
        reads.append(name)
        return await read(kind, namespace, name)

    kube.get_target = counted
    # a Deployment not serving v1: read fresh, then rolled
    await service.converge_target(DEPLOYMENTS, NS, "serve", "fraud", seen=deployment())
    assert len(reads) == 1
    served = kube.deployments["serve"]
    assert served["spec"]["template"]["metadata"]["annotations"]["modelreg.io/version"] == "1"
    # its controller's status updates that follow: nothing read, nothing patched
    generation = served["metadata"]["generation"]
    for _ in range(3):
        await service.converge_target(DEPLOYMENTS, NS, "serve", "fraud", seen=copy.deepcopy(served))
    assert len(reads) == 1 and kube.deployments["serve"]["metadata"]["generation"] == generation


async def test_a_rollout_that_fails_at_once_leaves_every_stage_label_naming_its_stage(world):
    kube, _, service, add = world
    kube.deployments["serve"]["metadata"]["annotations"] = {"modelreg.io/container": "nope"}  # misconfigured
    promote_v2_over_v1(add, v1_labels={"modelreg.io/stage": "Production"})

    await service.reconcile(NS, "p", "fraud")  # moves made, the rollout refused, the moves undone

    assert condition(kube.objects[(PROMOTIONS, "p")], "Succeeded")["reason"] == "RolloutFailed"
    for name, stage in (("fraud-v1", "Production"), ("fraud-v2", None)):
        stored = kube.objects[(VERSIONS, name)]
        assert stored["status"].get("stage") == stage
        assert (stored["metadata"].get("labels") or {}).get("modelreg.io/stage") == stage  # CI/CD selects by it


async def test_a_candidate_replaced_during_its_rollout_is_never_served(world):
    kube, view, service, add = world
    promote_v2_over_v1(add)
    kube.deployments["serve"]["status"]["availableReplicas"] = 0
    await service.reconcile(NS, "p", "fraud")  # committed, moved, rolling out
    assert condition(kube.objects[(PROMOTIONS, "p")], "Succeeded")["reason"] == "RollingOut"

    # An editor deletes the approved fraud-v2 and registers other bytes under its name and number
    # (verified in their own right, but never judged or approved for this promotion).
    view.observe(VERSIONS, "DELETED", kube.objects.pop((VERSIONS, "fraud-v2")))
    evil = version("fraud-v2", 2)
    evil["metadata"]["uid"] = "uid-evil"
    evil["spec"]["artifact"]["uri"] = "s3://b/EVIL"
    evil["status"]["seals"] = {VERIFICATION: SEALS.seal(VERIFICATION, evil, evil["status"])}
    add(VERSIONS, evil)
    kube.deployments["serve"]["spec"]["template"]["metadata"]["annotations"] = {}  # drifted: would be re-patched

    await service.reconcile(NS, "p", "fraud")
    ended = kube.objects[(PROMOTIONS, "p")]
    assert condition(ended, "Succeeded")["reason"] == "VersionNotFound"
    served = kube.deployments["serve"]["spec"]["template"]["spec"]["containers"][0].get("env") or []
    assert "s3://b/EVIL" not in str(served)
    assert kube.objects[(VERSIONS, "fraud-v1")]["status"]["stage"] == "Production"  # restored
    assert (kube.objects[(VERSIONS, "fraud-v2")]["status"].get("stage") or None) is None


async def test_a_failed_label_write_never_leaves_the_rollout_running_on_its_own(world):
    kube, _, service, add = world
    promote_v2_over_v1(add)
    patch = kube.json_patch_target

    async def slow_patch(kind, namespace, name, ops):
        await asyncio.sleep(0.05)
        await patch(kind, namespace, name, ops)

    async def refused(plural, namespace, name, labels):
        raise ApiRefused(403, "cannot patch resource modelversions")

    kube.json_patch_target, kube.patch_labels = slow_patch, refused
    with pytest.raises(ApiRefused):
        await service.reconcile(NS, "p", "fraud")  # retried by the scheduler, under the model's lock again
    # the rollout had finished when the failure was raised: nothing runs on outside the lock
    served = kube.deployments["serve"]["spec"]["template"]["metadata"].get("annotations") or {}
    assert served.get("modelreg.io/version") == "2"
