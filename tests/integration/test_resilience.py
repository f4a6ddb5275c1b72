"""Outages heal on their own; restarts neither lose nor repeat work."""

from __future__ import annotations

import hashlib

import boto3
import pytest

from modelreg import metrics
from modelreg.sandbox.harness import S3Endpoint
from tests.integration.conftest import NAMESPACE, condition, wait_for
from tests.integration.promotion_helpers import deployment, promote, register, succeeded, version_body
from tests.integration.test_model_version_verification import model_version, verified_reason


@pytest.fixture
def own_s3(aws_env, monkeypatch: pytest.MonkeyPatch):
    """An S3 endpoint this test may stop and start (moto keeps its data in-process across restarts)."""
    endpoint = S3Endpoint().start()
    for key, value in endpoint.environment().items():
        monkeypatch.setenv(key, value)
    yield endpoint
    endpoint.stop()


def test_storage_outage_is_retried_with_backoff_and_recovers(own_s3, start_operator, kube):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="outage")
    data = b"weights during an outage"
    s3.put_object(Bucket="outage", Key="m.bin", Body=data)
    own_s3.stop()
    start_operator()

    kube.create("modelversions", model_version("mv-outage", "s3://outage/m.bin", hashlib.sha256(data).hexdigest()))
    obj = verified_reason(kube, "mv-outage", "StorageUnavailable")
    assert "s3://outage/m.bin" in condition(obj, "ArtifactVerified")["message"]
    failures = wait_for(
        lambda: kube.get("modelversions", "mv-outage")["status"]["lastCheck"]["consecutiveFailures"] >= 2,
        what="a second attempt (backoff retry)",
    )
    assert failures

    own_s3.start()  # nobody touches the ModelVersion: the operator recovers by itself
    recovered = verified_reason(kube, "mv-outage", "Verified")
    assert recovered["status"]["lastCheck"]["consecutiveFailures"] == 0
    assert kube.event("mv-outage", "StorageUnavailable")


def test_operator_restart_does_not_reverify_unchanged_artifacts(start_operator, kube, s3, bucket, settings):
    data = b"verified once" * 1000
    # with its SHA-256: storage vouches for the proven digest by HEAD (without one, every re-check
    # reads the bytes again: an unchanged ETag proves nothing)
    s3.put_object(Bucket=bucket, Key="r.bin", Body=data, ChecksumAlgorithm="SHA256")
    first = start_operator()
    kube.create("modelversions", model_version("mv-restart", f"s3://{bucket}/r.bin", hashlib.sha256(data).hexdigest()))
    verified = verified_reason(kube, "mv-restart", "Verified")
    first.stop()

    start_operator()
    # Re-checks happen (lastCheck moves) but, storage being unchanged, nothing is re-proven.
    checked_at = verified["status"]["lastCheck"]["time"]
    later = wait_for(
        lambda: (o := kube.get("modelversions", "mv-restart"))["status"]["lastCheck"]["time"] > checked_at and o,
        what="a re-check after restart",
    )
    assert later["status"]["artifact"] == verified["status"]["artifact"]
    assert condition(later, "ArtifactVerified") == condition(verified, "ArtifactVerified")


def test_a_deletion_the_watch_missed_is_noticed_by_the_next_resync(start_operator, settings, cluster, kube, s3, bucket):
    resync = settings.promotions.model_copy(update={"resync_seconds": 0.5})
    rare = settings.verification.model_copy(update={"recheck_seconds": 600})  # no write finds it gone first
    start_operator(settings.model_copy(update={"promotions": resync, "verification": rare}))
    first = register(kube, s3, bucket, 1)  # fraud-v1
    # deleted while the operator's watch was away (410 Gone, then a re-list): no DELETED event reaches it
    cluster.delete_unseen("modelreg.io/v1alpha1/modelversions", "ml", "fraud-v1")
    uri, sha256 = first["spec"]["artifact"]["uri"], first["spec"]["artifact"]["sha256"]
    kube.create("modelversions", version_body("fraud-v1-again", uri, sha256))
    # Judged against a view still holding fraud-v1, it would stay a duplicate of a deleted version.
    wait_for(
        lambda: (c := condition(kube.get("modelversions", "fraud-v1-again"), "Ready")) and c["status"] == "True",
        what="fraud-v1-again Ready (not a duplicate of the deleted fraud-v1)",
    )


def _failures(kind: str, reason: str) -> float:
    return metrics.RECONCILE_FAILURES.labels(kind=kind, reason=reason)._value.get()


FORBIDDEN = (
    'deployments.apps "scorer" is forbidden: User "system:serviceaccount:modelreg:modelreg" '
    'cannot patch resource "deployments" in API group "apps" in the namespace "ml"'
)


def test_an_api_refusal_is_told_on_the_promotion_once_and_it_heals_when_lifted(
    operator, cluster, deployment_controller, apps, kube, s3, bucket
):
    apps.create_namespaced_deployment(NAMESPACE, deployment("scorer", stage="Staging", container="server"))
    register(kube, s3, bucket, 1)
    before = _failures("ModelPromotion", "APIForbidden")
    cluster.refuse("PATCH", "deployments", 403, FORBIDDEN)  # e.g. the chart's RBAC not granted in this namespace
    promote(kube, "p", 1, target="Staging")

    told = kube.event("p", "APIForbidden")
    assert told.type == "Warning"
    assert FORBIDDEN in told.message and "retried with backoff" in told.message
    wait_for(lambda: _failures("ModelPromotion", "APIForbidden") >= before + 3, what="two more failed attempts")
    assert [e.reason for e in kube.events_for("p")].count("APIForbidden") == 1  # once per streak, not per retry

    cluster.allow("PATCH", "deployments")  # nobody touches the promotion: the next retry completes it
    succeeded(kube, "p", "Promoted")
    dep = apps.read_namespaced_deployment("scorer", NAMESPACE)
    assert dep.spec.template.metadata.annotations["modelreg.io/version"] == "1"


def test_an_api_outage_on_status_writes_is_retried_counted_and_heals(operator, cluster, kube, s3, bucket):
    data = b"weights while the API server struggles"
    s3.put_object(Bucket=bucket, Key="outage/m.bin", Body=data)
    before = _failures("ModelVersion", "APIUnavailable")
    cluster.refuse("PATCH", "modelversions", 503, "etcdserver: request timed out")
    kube.create(
        "modelversions", model_version("mv-api", f"s3://{bucket}/outage/m.bin", hashlib.sha256(data).hexdigest())
    )
    wait_for(lambda: _failures("ModelVersion", "APIUnavailable") >= before + 2, what="retried status writes")

    cluster.allow("PATCH", "modelversions")
    verified_reason(kube, "mv-api", "Verified")
    assert "APIUnavailable" not in [e.reason for e in kube.events_for("mv-api")]  # no Event flood on an outage
