"""ModelVersion scenarios of the integration tier, against a real API server."""

from __future__ import annotations

import hashlib
import json
import uuid

import boto3
import kubernetes
import pytest

from modelreg.config import Settings
from modelreg.sandbox.harness import OperatorThread, S3Endpoint
from tests.integration.conftest import NAMESPACE, Kube, condition
from tests.integration.test_model_version_verification import model_version, verified_reason


@pytest.fixture(scope="module")
def env(real_cluster):
    endpoint = S3Endpoint().start()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in endpoint.environment().items():
            patch.setenv(key, value)
        kubernetes.config.load_kube_config()
        # The operator runs on the host: the cluster's API server cannot dial its webhook, so no
        # webhook configurations are installed here (the operator's seals hold without them).
        # One operator from the host: no Lease to wait for (its namespace is the chart's, absent here).
        settings = Settings(verification={"recheck_seconds": 2}, webhook={"managed": None}, election={"enabled": False})
        operator = OperatorThread(settings, [NAMESPACE]).start()
        with kubernetes.client.ApiClient() as client:
            yield Kube(client), boto3.client("s3")
        operator.stop()
    endpoint.stop()


def wait_reason(kube, name, reason, timeout=60):
    return verified_reason(kube, name, reason, timeout)


def test_verified_and_mismatched_on_a_real_api_server(env):
    kube, s3 = env
    bucket = f"e2e-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    data = b"real cluster weights"
    s3.put_object(Bucket=bucket, Key="m.bin", Body=data, ChecksumAlgorithm="SHA256")
    kube.create("modelversions", model_version("e2e-ok", f"s3://{bucket}/m.bin", hashlib.sha256(data).hexdigest()))
    kube.create("modelversions", model_version("e2e-bad", f"s3://{bucket}/m.bin", "0" * 64, version=2))
    assert wait_reason(kube, "e2e-ok", "Verified")["status"]["artifact"]["method"] == "S3Checksum"
    assert "0" * 64 in condition(wait_reason(kube, "e2e-bad", "ChecksumMismatch"), "ArtifactVerified")["message"]


def test_real_api_server_rejects_what_the_emulator_rejects(env):
    kube, _ = env
    with pytest.raises(kubernetes.client.ApiException) as caught:
        kube.create("modelversions", model_version("e2e-v0", "s3://bucket/k", "a" * 64, version=0))
    assert caught.value.status == 422 and "spec.version" in json.loads(caught.value.body)["message"]
    kube.create("modelversions", model_version("e2e-immutable", "s3://bucket/k", "a" * 64, version=3))
    with pytest.raises(kubernetes.client.ApiException) as caught:
        kube.patch("modelversions", "e2e-immutable", {"spec": {"artifact": {"sha256": "b" * 64}}})
    assert "spec.artifact is immutable" in json.loads(caught.value.body)["message"]
