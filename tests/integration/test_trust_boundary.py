"""The trust boundary, tried as an attacker would: through the admission webhook (served by the
real operator over HTTPS, called by the emulator as an API server calls it), and around it
(`admission.bypassed`: a forger who got past admission) where the operator's seals must hold."""

from __future__ import annotations

import hashlib

import pytest
from kubernetes.client import ApiException

from modelreg.config import Settings
from tests.integration.conftest import NAMESPACE, condition, wait_for
from tests.integration.promotion_helpers import approve, deployment, promote, register, stage, succeeded, version_body


@pytest.fixture
def settings() -> Settings:
    return Settings(verification={"recheck_seconds": 60}, promotions={"tick_seconds": 0.3})


def events(kube, name, reason):
    return [e for e in kube.events_for(name) if e.reason == reason]


def test_approvals_only_as_oneself_and_only_with_the_approve_permission(operator, kube, s3, bucket):
    register(kube, s3, bucket, 1)
    promote(kube, "p", 1, requester="alice")
    denials = {
        "alice": "alice requested promotion p and cannot approve it",
        "dave": "dave may not approve fraud/Production in namespace ml",
    }
    for user, message in denials.items():
        with pytest.raises(ApiException, match=message):
            approve(kube, "p", user)
    with pytest.raises(ApiException, match="must be your own username \\('bob'\\), not 'carol'"):
        kube.as_user("bob").patch(
            "modelpromotions", "p", {"metadata": {"annotations": {"approval.modelreg.io/carol": "carol"}}}
        )
    approve(kube, "p", "bob")
    with pytest.raises(ApiException, match="only bob can withdraw bob's approval"):
        kube.as_user("carol").patch(
            "modelpromotions", "p", {"metadata": {"annotations": {"approval.modelreg.io/bob": None}}}
        )
    with pytest.raises(ApiException, match="set only by the admission webhook"):
        kube.as_user("alice").patch(
            "modelpromotions", "p", {"metadata": {"annotations": {"modelreg.io/requested-by": "carol"}}}
        )
    annotations = kube.get("modelpromotions", "p")["metadata"]["annotations"]
    assert annotations["seal.modelreg.io/bob"].startswith("webhook|")  # sealed by the webhook
    wait_for(lambda: (kube.get("modelpromotions", "p").get("status") or {}).get("approvalSummary") == "1/2", what="1/2")
    approve(kube, "p", "carol")
    done = succeeded(kube, "p", "Promoted")
    assert [(a["user"], a["via"]) for a in done["status"]["approvals"]] == [("bob", "webhook"), ("carol", "webhook")]
    assert done["status"]["requestedBy"] == "alice"


def production_promotion(name: str, annotations: dict[str, str]) -> dict:
    return {
        "apiVersion": "modelreg.io/v1alpha1",
        "kind": "ModelPromotion",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"modelName": "fraud", "version": 1, "targetStage": "Production"},
    }


def test_requested_by_is_stamped_from_the_creating_user(operator, kube, s3, bucket):
    register(kube, s3, bucket, 1)
    kube.as_user("alice").create("modelpromotions", production_promotion("spoof", {"modelreg.io/requested-by": "bob"}))
    assert kube.get("modelpromotions", "spoof")["metadata"]["annotations"]["modelreg.io/requested-by"] == "alice"
    with pytest.raises(ApiException, match="alice requested promotion spoof"):
        approve(kube, "spoof", "alice")
    with pytest.raises(ApiException, match="approvals cannot be given when a promotion is created"):
        kube.as_user("alice").create(
            "modelpromotions", production_promotion("preapproved", {"approval.modelreg.io/bob": "bob"})
        )


def test_only_the_operator_writes_status_and_the_stage_label(operator, kube, s3, bucket):
    register(kube, s3, bucket, 1)
    # RBAC gives alice no status; the administrator passes RBAC and meets the webhook.
    with pytest.raises(ApiException, match=r"cannot patch resource \W+modelversions/status"):
        kube.as_user("alice").patch_status("modelversions", "fraud-v1", {"stage": "Production"})
    with pytest.raises(ApiException, match="written only by the modelreg operator"):
        kube.as_user("admin").patch_status("modelversions", "fraud-v1", {"stage": "Production"})
    assert stage(kube, "fraud-v1") is None
    with pytest.raises(ApiException, match=r"modelreg\.io/stage is kept by the modelreg operator"):
        kube.as_user("alice").patch(
            "modelversions", "fraud-v1", {"metadata": {"labels": {"modelreg.io/stage": "Production"}}}
        )
    with pytest.raises(ApiException, match=r"must equal spec\.modelName"):
        kube.as_user("alice").patch(
            "modelversions", "fraud-v1", {"metadata": {"labels": {"modelreg.io/model": "churn"}}}
        )


def test_copied_and_hand_written_seals_count_for_nothing(operator, kube, s3, bucket, bypass):
    register(kube, s3, bucket, 1)
    promote(kube, "p", 1, approvers=("bob",))
    sealed = kube.get("modelpromotions", "p")["metadata"]["annotations"]["seal.modelreg.io/bob"]
    with bypass:  # dave's approval with bob's seal copied beside it, and erin's with a seal made up
        kube.patch(
            "modelpromotions",
            "p",
            {
                "metadata": {
                    "annotations": {
                        "approval.modelreg.io/dave": "dave",
                        "seal.modelreg.io/dave": sealed,
                        "approval.modelreg.io/erin": "erin",
                        "seal.modelreg.io/erin": "webhook|2026-01-01T00:00:00Z|v1.AAAA",
                    }
                }
            },
        )
    waiting = wait_for(
        lambda: (
            "dave" in ((condition(p := kube.get("modelpromotions", "p"), "Approved") or {}).get("message") or "") and p
        ),
        what="forged approvals reported",
    )
    assert (
        waiting["status"]["approvalSummary"] == "1/2"
        and condition(waiting, "Succeeded")["reason"] == "AwaitingApproval"
    )
    assert "approval by dave carries no valid seal" in condition(waiting, "Approved")["message"]
    assert stage(kube, "fraud-v1") is None
    # through the webhook a user's own seal is undone: seals are the webhook's alone
    kube.as_user("carol").patch(
        "modelpromotions", "p", {"metadata": {"annotations": {"seal.modelreg.io/carol": sealed}}}
    )
    assert "seal.modelreg.io/carol" not in kube.get("modelpromotions", "p")["metadata"]["annotations"]


def test_a_version_recreated_with_other_bytes_starts_again_at_zero_approvals(operator, kube, s3, bucket):
    register(kube, s3, bucket, 3)
    promote(kube, "p3", 3, approvers=("bob",))
    wait_for(
        lambda: (kube.get("modelpromotions", "p3").get("status") or {}).get("approvalSummary") == "1/2", what="1/2"
    )
    kube.delete("modelversions", "fraud-v3")
    wait_for(
        lambda: (
            not any(
                v["metadata"]["name"] == "fraud-v3"
                for v in kube.custom.list_namespaced_custom_object(
                    "modelreg.io", "v1alpha1", NAMESPACE, "modelversions"
                )["items"]
            )
        ),
        what="v3 deleted",
    )
    other = b"other weights"
    s3.put_object(Bucket=bucket, Key="fraud/3-other.onnx", Body=other, ChecksumAlgorithm="SHA256")
    kube.create(
        "modelversions",
        version_body(
            "fraud-v3", f"s3://{bucket}/fraud/3-other.onnx", hashlib.sha256(other).hexdigest(), model="fraud", version=3
        ),
    )
    approve(kube, "p3", "carol")
    waiting = wait_for(
        lambda: (
            (p := kube.get("modelpromotions", "p3")).get("status", {}).get("approvalSummary") == "1/2"
            and "bob" in condition(p, "Approved")["message"]
            and p
        ),
        what="bob's approval no longer counts",
    )
    assert [a["user"] for a in waiting["status"]["approvals"]] == ["carol"]
    assert stage(kube, "fraud-v3") is None
    approve(kube, "p3", "bob")  # bob approves the new bytes: sealed anew
    assert [a["user"] for a in succeeded(kube, "p3", "Promoted")["status"]["approvals"]] == ["bob", "carol"]


def test_archiving_the_production_version_needs_productions_approvals(operator, kube, s3, bucket):
    register(kube, s3, bucket, 1)
    promote(kube, "p", 1, approvers=("bob", "carol"))
    succeeded(kube, "p", "Promoted")
    promote(kube, "archive", 1, target="Archived", requester="dave")
    waiting = succeeded(kube, "archive", "AwaitingApproval")
    assert waiting["status"]["approvalSummary"] == "0/2" and stage(kube, "fraud-v1") == "Production"
    approve(kube, "archive", "bob", "carol")
    succeeded(kube, "archive", "Promoted")
    assert stage(kube, "fraud-v1") == "Archived"


def test_a_forged_stage_is_undone_and_serves_nothing(operator, apps, kube, s3, bucket, bypass):
    apps.create_namespaced_deployment(NAMESPACE, deployment("scorer"))
    register(kube, s3, bucket, 1)
    with bypass:
        kube.patch_status("modelversions", "fraud-v1", {"stage": "Production"})
    apps.patch_namespaced_deployment("scorer", NAMESPACE, {"metadata": {"labels": {"poke": "1"}}})  # a Deployment event
    wait_for(lambda: events(kube, "fraud-v1", "StatusTampered"), what="StatusTampered")
    wait_for(lambda: stage(kube, "fraud-v1") is None, what="stage restored")
    template = apps.read_namespaced_deployment("scorer", NAMESPACE).spec.template
    assert "modelreg.io/version" not in (template.metadata.annotations or {})


def test_a_forged_verification_is_undone_within_a_tick(operator, kube, s3, bucket, bypass):
    kube.create(
        "modelversions",
        version_body("fraud-v1", f"s3://{bucket}/none.onnx", "0" * 64, model="fraud", version=1),
    )
    wait_for(lambda: condition(kube.get("modelversions", "fraud-v1"), "ArtifactVerified"), what="first check")
    forged = {
        "conditions": [{"type": "ArtifactVerified", "status": "True", "reason": "Verified", "message": "trust me"}],
        "lastCheck": {"time": "2099-01-01T00:00:00Z", "consecutiveFailures": 0},
        "artifact": {
            "sha256": "0" * 64,
            "sizeBytes": 1,
            "method": "S3Checksum",
            "verifiedTime": "2099-01-01T00:00:00Z",
        },
    }
    with bypass:
        kube.patch_status("modelversions", "fraud-v1", forged)
    promote(kube, "s", 1, target="Staging")
    restored = wait_for(
        lambda: (
            (c := condition(mv := kube.get("modelversions", "fraud-v1"), "ArtifactVerified"))
            and c["status"] == "False"
            and mv
        ),
        timeout=5,
        what="verification restored",
    )
    assert "artifact" not in restored["status"] and restored["status"]["lastCheck"]["time"] < "2099"
    assert kube.event("fraud-v1", "StatusTampered")
    assert condition(succeeded(kube, "s", "WaitingForArtifact"), "Succeeded")["status"] == "Unknown"
    assert stage(kube, "fraud-v1") is None


def test_a_forged_promotion_record_executes_nothing(operator, apps, kube, s3, bucket, bypass):
    apps.create_namespaced_deployment(NAMESPACE, deployment("scorer"))
    register(kube, s3, bucket, 1)
    register(kube, s3, bucket, 2)
    promote(kube, "p", 2)
    succeeded(kube, "p", "AwaitingApproval")
    with bypass:
        kube.patch_status(
            "modelpromotions",
            "p",
            {
                "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "RollingOut", "message": "go"}],
                "moves": [{"versionName": "fraud-v2", "version": 2, "fromStage": "", "toStage": "Production"}],
                "approvals": [{"user": "ceo", "via": "webhook"}],
                "previousVersion": 1,
            },
        )
    wait_for(lambda: events(kube, "p", "StatusTampered"), what="StatusTampered")
    restored = succeeded(kube, "p", "AwaitingApproval")
    assert restored["status"]["approvals"] == [] and "moves" not in restored["status"]
    assert "previousVersion" not in restored["status"]
    assert stage(kube, "fraud-v2") is None and not kube.get("modelversions", "fraud-v2")["status"].get("stageHistory")
    template = apps.read_namespaced_deployment("scorer", NAMESPACE).spec.template
    assert "modelreg.io/version" not in (template.metadata.annotations or {})


def test_with_the_webhook_down_approvals_fail_closed(start_operator, kube, s3, bucket):
    operator = start_operator()
    register(kube, s3, bucket, 1)
    promote(kube, "p", 1)
    succeeded(kube, "p", "AwaitingApproval")
    operator.stop()  # the configurations stay (persistent), pointing at a webhook that is gone
    with pytest.raises(ApiException, match="failed calling webhook") as denied:
        approve(kube, "p", "bob")
    assert denied.value.status == 500
    assert "approval.modelreg.io/bob" not in kube.get("modelpromotions", "p")["metadata"]["annotations"]


def test_a_version_is_labelled_with_its_model_as_it_is_created(operator, kube, s3, bucket):
    register(kube, s3, bucket, 1)  # the operator is up: its webhook configurations are installed
    created = kube.as_user("alice").create(
        "modelversions",
        {
            **version_body("fraud-v7", f"s3://{bucket}/fraud/7.onnx", "a" * 64, version=7),
            "metadata": {"name": "fraud-v7", "labels": {"modelreg.io/model": "churn", "team": "risk"}},
        },
    )
    # the create's own response: labelled before the operator has looked at it, a wrong label corrected
    assert created["metadata"]["labels"] == {"modelreg.io/model": "fraud", "team": "risk"}


def test_in_managed_mode_the_operators_own_writes_skip_its_webhooks(operator, cluster, kube, s3, bucket):
    # kopf writes the configurations without matchConditions; the operator adds the chart's own
    user = "system:serviceaccount:modelreg-system:modelreg-operator"

    def conditions() -> list:
        return [
            (w["name"].split(".")[0], w.get("matchConditions"))
            for c in cluster.api._stored_kind("ValidatingWebhookConfiguration")
            for w in c.get("webhooks") or []
        ]

    wait_for(
        lambda: (
            all(
                found == [{"name": "not-the-operator", "expression": f'request.userInfo.username != "{user}"'}]
                for name, found in conditions()
                if name in ("check-versions", "status-modelversions", "status-modelpromotions")
            )
            and len(conditions()) >= 4
        ),
        what="the operator's skip conditions on its managed configuration",
    )
    calls = cluster.api.admission.calls
    before = calls["status-modelversions.modelreg.io"]
    register(kube, s3, bucket, 1)  # the operator writes its status: the webhook is not asked
    assert calls["status-modelversions.modelreg.io"] == before
    with pytest.raises(ApiException):  # anyone else still is
        kube.patch_status("modelversions", "fraud-v1", {"stage": "Production"})
    assert calls["status-modelversions.modelreg.io"] == before + 1
