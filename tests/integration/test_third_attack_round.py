"""The third attack round (issue 18), each attack tried as it was reproduced, against the real
operator, its webhook (called by the emulator as an API server calls it) and moto over HTTP."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import time

import pytest
import requests
from kubernetes.client import ApiException

from modelreg.config import Settings
from modelreg.domain.approvals import approval_key
from modelreg.storage import tls
from tests.integration.conftest import NAMESPACE, condition, wait_for
from tests.integration.promotion_helpers import (
    approve,
    deployment,
    promote,
    register,
    stage,
    succeeded,
    version_body,
)
from tests.integration.test_trust_boundary import events


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


# -- who may talk to the webhook ----------------------------------------------------------------


def review(operation: str, user: str, old: dict | None, new: dict) -> dict:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "3f1c",
            "kind": {"group": "modelreg.io", "version": "v1alpha1", "kind": "ModelPromotion"},
            "resource": {"group": "modelreg.io", "version": "v1alpha1", "resource": "modelpromotions"},
            "namespace": NAMESPACE,
            "name": new["metadata"]["name"],
            "operation": operation,
            "userInfo": {"username": user, "groups": ["system:authenticated"]},
            "object": new,
            "oldObject": old,
        },
    }


def post_to_webhook(operator, path: str, body: dict, **tls) -> dict:
    url = f"https://127.0.0.1:{operator.settings.webhook.port}/{path}"
    return requests.post(url, json=body, verify=False, timeout=10, **tls).json()["response"]


def patched_keys(response: dict) -> set[str]:
    ops = json.loads(base64.b64decode(response.get("patch") or "W10=")) if response.get("patch") else []
    return {op["path"] for op in ops}


def test_the_mutating_webhook_seals_no_approval_the_validating_one_would_deny(operator, kube, s3, bucket):
    # Whoever reaches the webhook's port asks it to seal an approval as someone without the right.
    register(kube, s3, bucket, 1)
    promote(kube, "p", 1)
    old = kube.get("modelpromotions", "p")
    for user in ("dave", "mallory"):  # dave edits but may not approve; mallory is nobody
        new = copy.deepcopy(old)
        new["metadata"]["annotations"][approval_key(user)] = user
        answer = post_to_webhook(operator, "stamp-promotions", review("UPDATE", user, old, new))
        assert not any("seal.modelreg.io" in key for key in patched_keys(answer)), answer
        denied = post_to_webhook(operator, "check-promotions", review("UPDATE", user, old, new))
        assert not denied["allowed"] and "may not approve fraud/Production" in denied["status"]["message"]
    # an entitled approver still gets a seal
    new = copy.deepcopy(old)
    new["metadata"]["annotations"][approval_key("bob")] = "bob"
    answer = post_to_webhook(operator, "stamp-promotions", review("UPDATE", "bob", old, new))
    assert any("seal.modelreg.io" in key for key in patched_keys(answer))


def test_a_denial_says_nothing_about_versions_to_someone_who_may_not_approve(operator, kube, s3, bucket):
    register(kube, s3, bucket, 1)
    promote(kube, "exists", 1)
    promote(kube, "missing", 9)
    answers = []
    for name in ("exists", "missing"):
        old = kube.get("modelpromotions", name)
        new = copy.deepcopy(old)
        new["metadata"]["annotations"][approval_key("dave")] = "dave"
        answers.append(post_to_webhook(operator, "check-promotions", review("UPDATE", "dave", old, new)))
    assert answers[0]["status"]["message"] == answers[1]["status"]["message"]  # no oracle


@pytest.fixture
def client_ca(cluster):
    """The API server's webhook client credentials: a CA, and a certificate it signed."""
    files = tls.self_signed(["kube-apiserver"])
    cluster.api.admission.client_cert = (files.cert_file, files.key_file)
    yield files
    cluster.api.admission.client_cert = None


def test_with_a_client_ca_only_the_api_server_reaches_the_webhook(start_operator, kube, s3, bucket, client_ca):
    operator = start_operator(Settings(webhook={"client_ca_file": client_ca.ca_file}, promotions={"tick_seconds": 0.3}))
    register(kube, s3, bucket, 1)
    promote(kube, "p", 1, approvers=("bob",))  # through the emulator, which presents its certificate
    assert "seal.modelreg.io/bob" in kube.get("modelpromotions", "p")["metadata"]["annotations"]
    old = kube.get("modelpromotions", "p")
    new = copy.deepcopy(old)
    new["metadata"]["annotations"][approval_key("carol")] = "carol"
    with pytest.raises(requests.exceptions.ConnectionError):
        post_to_webhook(operator, "stamp-promotions", review("UPDATE", "carol", old, new))  # refused in the handshake
    stranger = tls.self_signed(["mallory"])  # a certificate, but not one the API server's CA signed
    with pytest.raises(requests.exceptions.ConnectionError):
        post_to_webhook(
            operator,
            "stamp-promotions",
            review("UPDATE", "carol", old, new),
            cert=(stranger.cert_file, stranger.key_file),
        )
    answer = post_to_webhook(
        operator,
        "stamp-promotions",
        review("UPDATE", "carol", old, new),
        cert=(client_ca.cert_file, client_ca.key_file),
    )
    assert answer["allowed"]


def test_the_webhook_server_takes_requests_larger_than_a_megabyte(operator, kube, s3, bucket):
    # an UPDATE near the size bounds carries two copies of the object: more than aiohttp's default 1 MiB
    register(kube, s3, bucket, 1)
    promote(kube, "p", 1)
    old = kube.get("modelpromotions", "p")
    new = copy.deepcopy(old)
    new["metadata"]["annotations"]["note"] = "x" * (700 * 1024)
    old["metadata"]["annotations"]["note"] = "y" * (700 * 1024)
    answer = post_to_webhook(operator, "check-promotions", review("UPDATE", "bob", old, new))
    assert answer["allowed"]


# -- size bounds and the stage label ------------------------------------------------------------


def test_an_oversize_version_with_a_hand_set_stage_label_never_matches_the_cicd_selector(operator, kube, s3, bucket):
    register(kube, s3, bucket, 1)
    body = version_body("fraud-v2", f"s3://{bucket}/fraud/1.onnx", "a" * 64, version=2)
    body["metadata"]["labels"] = {"modelreg.io/model": "fraud", "modelreg.io/stage": "Production"}
    body["spec"]["metrics"] = {f"m{i}": 0.5 for i in range(75_000)}
    with pytest.raises(ApiException) as refused:
        kube.create("modelversions", body)
    assert refused.value.status == 422 and "spec.metrics" in refused.value.body
    selected = kube.custom.list_namespaced_custom_object(
        "modelreg.io",
        "v1alpha1",
        NAMESPACE,
        "modelversions",
        label_selector="modelreg.io/model=fraud,modelreg.io/stage=Production",
    )
    assert selected["items"] == []


def test_a_stage_label_written_past_the_webhook_is_removed(operator, kube, s3, bucket, bypass):
    register(kube, s3, bucket, 1)
    with bypass:
        kube.patch("modelversions", "fraud-v1", {"metadata": {"labels": {"modelreg.io/stage": "Production"}}})
    wait_for(
        lambda: "modelreg.io/stage" not in kube.get("modelversions", "fraud-v1")["metadata"]["labels"],
        what="the hand-set stage label removed",
    )


# -- stage holders and history are not deleted --------------------------------------------------


def test_an_editor_cannot_delete_the_production_holder_nor_executed_promotions(
    operator, kube, s3, bucket, deployment_controller
):
    register(kube, s3, bucket, 1)
    promote(kube, "p", 1, approvers=("bob", "carol"))
    succeeded(kube, "p", "Promoted")
    promote(kube, "pending", 1, target="Staging", approvers=())
    for plural, name, words in (
        ("modelversions", "fraud-v1", "holds Production: archive it first"),
        ("modelpromotions", "p", "is history (append-only)"),
    ):
        with pytest.raises(ApiException) as denied:
            kube.as_user("dave").delete(plural, name)
        assert denied.value.status == 403 and words in denied.value.body
        assert kube.exists(plural, name)
        warning = kube.event(name, "DeletionDenied")
        assert warning.type == "Warning" and "dave tried to delete it" in warning.message
    assert stage(kube, "fraud-v1") == "Production"


def test_a_promotion_that_moved_nothing_may_be_withdrawn_and_an_archived_version_deleted(
    operator, kube, s3, bucket, deployment_controller
):
    register(kube, s3, bucket, 1)
    promote(kube, "waiting", 1, approvers=())  # Production: awaiting approvals
    succeeded(kube, "waiting", "AwaitingApproval")
    kube.as_user("dave").delete("modelpromotions", "waiting")
    wait_for(lambda: not kube.exists("modelpromotions", "waiting"), what="withdrawn")
    kube.as_user("dave").delete("modelversions", "fraud-v1")  # holds no stage
    wait_for(lambda: not kube.exists("modelversions", "fraud-v1"), what="deleted")


def bind(cluster, name: str, subject: dict, rules: list[dict] | None = None, role: str | None = None) -> None:
    """A ClusterRole (`rules`) or an existing one (`role`), bound to `subject` cluster-wide."""
    documents = []
    if rules is not None:
        role = name
        documents.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": name},
                "rules": rules,
            }
        )
    documents.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [subject],
        }
    )
    cluster.apply(documents)


def test_the_namespace_controllers_deletes_are_admitted(operator, cluster, kube, s3, bucket, deployment_controller):
    # deleting a namespace must complete: its controller deletes every object in it
    bind(
        cluster,
        "namespace-controller",
        {"kind": "ServiceAccount", "name": "namespace-controller", "namespace": "kube-system"},
        rules=[{"apiGroups": ["modelreg.io"], "resources": ["*"], "verbs": ["get", "list", "delete"]}],
    )
    register(kube, s3, bucket, 1)
    promote(kube, "p", 1, target="Staging")
    succeeded(kube, "p", "Promoted")
    controller = kube.as_user("system:serviceaccount:kube-system:namespace-controller")
    controller.delete("modelpromotions", "p")
    controller.delete("modelversions", "fraud-v1")
    wait_for(lambda: not kube.exists("modelversions", "fraud-v1"), what="the holder deleted, finalizer and all")
    assert not kube.exists("modelpromotions", "p")


# -- who owns a version number ------------------------------------------------------------------


def test_a_squatter_within_the_same_second_never_owns_the_number(operator, kube, s3, bucket):
    # alice registers fraud-v7; dave registers a-fraud-v7 (same model and version, other bytes) a
    # moment later within the same second: a name sorting first must not win
    data = b"alice's weights"
    s3.put_object(Bucket=bucket, Key="fraud/7.onnx", Body=data, ChecksumAlgorithm="SHA256")
    s3.put_object(Bucket=bucket, Key="fraud/squat.onnx", Body=b"dave's", ChecksumAlgorithm="SHA256")
    for attempt in range(5):
        version = 7 + attempt
        mine, theirs = f"fraud-v{version}", f"a-fraud-v{version}"
        time.sleep(1 - time.time() % 1 + 0.02)
        kube.as_user("alice").create(
            "modelversions",
            version_body(mine, f"s3://{bucket}/fraud/7.onnx", hashlib.sha256(data).hexdigest(), version=version),
        )
        kube.as_user("dave").create(
            "modelversions",
            version_body(
                theirs, f"s3://{bucket}/fraud/squat.onnx", hashlib.sha256(b"dave's").hexdigest(), version=version
            ),
        )
        created = {n: kube.get("modelversions", n)["metadata"]["creationTimestamp"] for n in (mine, theirs)}
        if created[mine] == created[theirs]:
            break
    else:
        raise AssertionError("no two registrations landed in the same second in 5 tries")
    wait_for(lambda: ready_reason(kube, theirs) == "DuplicateVersion", what=f"{theirs} a duplicate")
    wait_for(lambda: ready_reason(kube, mine) == "Verified", what=f"{mine} owns version {version}")
    promote(kube, "s", version, target="Staging")
    wait_for(lambda: stage(kube, mine) == "Staging", what=f"{mine} promoted")
    assert stage(kube, theirs) is None


def ready_reason(kube, name):
    return (condition(kube.get("modelversions", name), "Ready") or {}).get("reason")


# -- what a GitOps approval proves --------------------------------------------------------------


def argocd_holds(cluster, *roles: str) -> None:
    """The GitOps identity, bound to `roles` (as Argo CD's service account is on a cluster)."""
    for role in roles:
        bind(
            cluster,
            f"argocd-{role}",
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "argocd"},
            role=role,
        )


def test_minimum_cluster_approvals_hold_against_gitops_only_approvals(start_operator, cluster, kube, s3, bucket):
    argocd_holds(cluster, "modelreg-editor")
    start_operator(
        Settings(
            approvals={"gitops_identity": "argocd", "gitops_stages": ["Production"]},
            policy={"minimum_cluster_approvals": {"Production": 1}},
            promotions={"tick_seconds": 0.3},
        )
    )
    register(kube, s3, bucket, 1)
    kube.as_user("argocd").create(  # committed to git: bob and carol named as approvers
        "modelpromotions",
        {
            "apiVersion": "modelreg.io/v1alpha1",
            "kind": "ModelPromotion",
            "metadata": {"name": "p", "annotations": {approval_key("bob"): "bob", approval_key("carol"): "carol"}},
            "spec": {"modelName": "fraud", "version": 1, "targetStage": "Production"},
        },
    )
    waiting = succeeded(kube, "p", "AwaitingApproval")
    assert waiting["status"]["approvalSummary"] == "2/2"
    assert "0/1 given in the cluster" in condition(waiting, "Succeeded")["message"]
    assert stage(kube, "fraud-v1") is None
    approve(kube, "p", "alice")  # in the cluster, as herself
    wait_for(lambda: stage(kube, "fraud-v1") == "Production", what="promoted once one approval was given here")


def test_an_administrator_removes_a_model_and_its_history_deliberately(
    operator, kube, s3, bucket, deployment_controller
):
    # the README's steps: archive the holder, delete the versions, then the promotions with the right to
    register(kube, s3, bucket, 1)
    promote(kube, "p", 1, target="Staging")
    succeeded(kube, "p", "Promoted")
    promote(kube, "retire", 1, target="Archived")
    succeeded(kube, "retire", "Promoted")
    kube.delete("modelversions", "fraud-v1")
    wait_for(lambda: not kube.exists("modelversions", "fraud-v1"), what="the archived version deleted")
    with pytest.raises(ApiException):  # an editor still cannot
        kube.as_user("dave").delete("modelpromotions", "p")
    for name in ("p", "retire"):
        kube.delete("modelpromotions", name)  # the administrator (system:masters) holds delete on modelhistories
        wait_for(lambda n=name: not kube.exists("modelpromotions", n), what=f"{name} removed")


def test_a_finalizer_or_owner_reference_set_by_a_user_is_refused(operator, kube, s3, bucket):
    # dave's plan: hold the delete of a version with his own finalizer until it holds Production
    register(kube, s3, bucket, 1)
    promote(kube, "p", 1, approvers=())
    for plural, name in (("modelversions", "fraud-v1"), ("modelpromotions", "p")):
        for field, value in (
            ("finalizers", ["dave.example/hold"]),
            ("ownerReferences", [{"apiVersion": "v1", "kind": "ConfigMap", "name": "mine", "uid": "0000"}]),
        ):
            with pytest.raises(ApiException) as denied:
                kube.as_user("dave").patch(plural, name, {"metadata": {field: value}})
            assert denied.value.status == 403 and f"metadata.{field}" in denied.value.body
    body = version_body("fraud-v2", f"s3://{bucket}/fraud/1.onnx", "a" * 64, version=2)
    body["metadata"]["finalizers"] = ["dave.example/hold"]
    with pytest.raises(ApiException) as denied:
        kube.as_user("dave").create("modelversions", body)
    assert denied.value.status == 403


def test_the_gitops_identity_never_approves_in_the_cluster(start_operator, cluster, kube, s3, bucket):
    argocd_holds(cluster, "modelreg-editor", "modelreg-approver")
    start_operator(
        Settings(
            approvals={"gitops_identity": "argocd", "gitops_stages": ["Production"]},
            promotions={"tick_seconds": 0.3},
        )
    )
    register(kube, s3, bucket, 1)
    promote(kube, "p", 1, approvers=("bob",))
    with pytest.raises(ApiException) as denied:
        approve(kube, "p", "argocd")
    assert denied.value.status == 403 and "does not approve" in denied.value.body
    wait_for(
        lambda: condition(kube.get("modelpromotions", "p"), "Succeeded")["message"].startswith("1/2 approvals"),
        what="bob's approval counted, argocd's refused",
    )
