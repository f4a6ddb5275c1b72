"""A ModelVersion is ArtifactVerified=True only once the bytes in storage match its sha256."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from modelreg.domain.artifacts import directory_digest
from tests.integration.conftest import condition, wait_for

pytestmark = pytest.mark.usefixtures("operator")


def model_version(name: str, uri: str, sha256: str, version: int = 1, **artifact: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelreg.io/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": name},
        "spec": {"modelName": "fraud", "version": version, "artifact": {"uri": uri, "sha256": sha256, **artifact}},
    }


def verified_reason(kube: Any, name: str, reason: str, timeout: float = 20.0) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = kube.get("modelversions", name)
        found = condition(obj, "ArtifactVerified")
        return obj if found and found["reason"] == reason else None

    return wait_for(probe, timeout, what=f"{name} ArtifactVerified reason {reason}")


def test_checksum_carrying_upload_is_verified_without_download(kube, s3, bucket):
    data = b"onnx-model-bytes" * 1000
    s3.put_object(Bucket=bucket, Key="fraud/1/model.onnx", Body=data, ChecksumAlgorithm="SHA256")
    sha = hashlib.sha256(data).hexdigest()
    kube.create(
        "modelversions", model_version("fraud-1", f"s3://{bucket}/fraud/1/model.onnx", sha, sizeBytes=len(data))
    )

    obj = verified_reason(kube, "fraud-1", "Verified")
    assert condition(obj, "ArtifactVerified")["status"] == "True"
    assert condition(obj, "Ready")["status"] == "True"
    artifact = obj["status"]["artifact"]
    assert artifact["method"] == "S3Checksum"
    assert artifact["sha256"] == sha and artifact["sizeBytes"] == len(data)
    assert artifact["etag"] and artifact["verifiedTime"]
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert obj["metadata"]["labels"]["modelreg.io/model"] == "fraud"


def test_plain_upload_is_verified_by_streaming(kube, s3, bucket):
    data = bytes(range(256)) * 4096
    s3.put_object(Bucket=bucket, Key="fraud/2/model.pt", Body=data)
    kube.create(
        "modelversions",
        model_version("fraud-2", f"s3://{bucket}/fraud/2/model.pt", hashlib.sha256(data).hexdigest(), version=2),
    )

    obj = verified_reason(kube, "fraud-2", "Verified")
    assert obj["status"]["artifact"]["method"] == "Stream"
    assert kube.event("fraud-2", "Verified")


def test_directory_artifact_is_verified_with_the_manifest_digest(kube, s3, bucket):
    files = {"config.json": b'{"layers": 2}', "weights/part-0.bin": b"\x00" * 5000, "tokenizer.txt": b"a b c"}
    for key, body in files.items():
        s3.put_object(Bucket=bucket, Key=f"hf/3/{key}", Body=body)
    digest = directory_digest((k, hashlib.sha256(v).hexdigest()) for k, v in files.items())
    kube.create(
        "modelversions", model_version("fraud-3", f"s3://{bucket}/hf/3/", digest, version=3, format="huggingface")
    )

    obj = verified_reason(kube, "fraud-3", "Verified")
    assert obj["status"]["artifact"]["sizeBytes"] == sum(len(v) for v in files.values())


def test_wrong_sha_is_a_checksum_mismatch_naming_both_digests(kube, s3, bucket):
    data = b"actual bytes"
    s3.put_object(Bucket=bucket, Key="m.bin", Body=data)
    wrong = "0" * 64
    kube.create("modelversions", model_version("fraud-4", f"s3://{bucket}/m.bin", wrong, version=4))

    obj = verified_reason(kube, "fraud-4", "ChecksumMismatch")
    message = condition(obj, "ArtifactVerified")["message"]
    assert wrong in message and hashlib.sha256(data).hexdigest() in message and f"s3://{bucket}/m.bin" in message
    assert condition(obj, "Ready")["status"] == "False"
    assert "artifact" not in obj["status"]


def test_storage_checksum_that_disagrees_with_spec_is_a_mismatch(kube, s3, bucket):
    # The store vouches for a SHA-256 (moto stores a precomputed value as sent): it is believed.
    import base64

    claimed = hashlib.sha256(b"other bytes").digest()
    s3.put_object(
        Bucket=bucket,
        Key="c.bin",
        Body=b"bytes",
        ChecksumAlgorithm="SHA256",
        ChecksumSHA256=base64.b64encode(claimed).decode(),
    )
    kube.create(
        "modelversions",
        model_version("fraud-5", f"s3://{bucket}/c.bin", hashlib.sha256(b"bytes").hexdigest(), version=5),
    )
    obj = verified_reason(kube, "fraud-5", "ChecksumMismatch")
    assert "S3Checksum" in condition(obj, "ArtifactVerified")["message"]


def test_wrong_size_fails_before_download(kube, s3, bucket):
    s3.put_object(Bucket=bucket, Key="s.bin", Body=b"12345")
    kube.create(
        "modelversions",
        model_version("fraud-6", f"s3://{bucket}/s.bin", hashlib.sha256(b"12345").hexdigest(), version=6, sizeBytes=6),
    )
    obj = verified_reason(kube, "fraud-6", "SizeMismatch")
    message = condition(obj, "ArtifactVerified")["message"]
    assert "expected 6 bytes" in message and "found 5 bytes" in message


def test_missing_object_is_not_found_then_verified_once_uploaded(kube, s3, bucket):
    data = b"late upload"
    kube.create(
        "modelversions",
        model_version("fraud-7", f"s3://{bucket}/late.bin", hashlib.sha256(data).hexdigest(), version=7),
    )
    obj = verified_reason(kube, "fraud-7", "NotFound")
    assert f"s3://{bucket}/late.bin" in condition(obj, "ArtifactVerified")["message"]

    s3.put_object(Bucket=bucket, Key="late.bin", Body=data)
    verified_reason(kube, "fraud-7", "Verified")


def test_object_overwritten_after_verification_is_artifact_changed(kube, s3, bucket):
    data = b"original weights"
    s3.put_object(Bucket=bucket, Key="w.bin", Body=data)
    kube.create(
        "modelversions", model_version("fraud-8", f"s3://{bucket}/w.bin", hashlib.sha256(data).hexdigest(), version=8)
    )
    verified = verified_reason(kube, "fraud-8", "Verified")
    verified_at = condition(verified, "ArtifactVerified")["lastTransitionTime"]

    s3.put_object(Bucket=bucket, Key="w.bin", Body=b"tampered weights")
    obj = verified_reason(kube, "fraud-8", "ArtifactChanged")
    assert condition(obj, "ArtifactVerified")["status"] == "False"
    assert condition(obj, "Ready")["status"] == "False"
    assert obj["status"]["artifact"]["sha256"] == hashlib.sha256(data).hexdigest()  # what was proven stays
    assert kube.event("fraud-8", "ArtifactChanged")

    s3.put_object(Bucket=bucket, Key="w.bin", Body=data)  # restored: proven again
    restored = verified_reason(kube, "fraud-8", "Verified")
    assert condition(restored, "ArtifactVerified")["lastTransitionTime"] >= verified_at


def test_duplicate_version_makes_the_newer_object_not_ready(kube, s3, bucket):
    data = b"dup"
    s3.put_object(Bucket=bucket, Key="d.bin", Body=data)
    sha = hashlib.sha256(data).hexdigest()
    kube.create("modelversions", model_version("fraud-9a", f"s3://{bucket}/d.bin", sha, version=9))
    verified_reason(kube, "fraud-9a", "Verified")
    kube.create("modelversions", model_version("fraud-9b", f"s3://{bucket}/d.bin", sha, version=9))

    def duplicate() -> Any:
        ready = condition(kube.get("modelversions", "fraud-9b"), "Ready")
        return ready if ready and ready["reason"] == "DuplicateVersion" else None

    ready = wait_for(duplicate, what="fraud-9b DuplicateVersion")
    assert "fraud-9a" in ready["message"] and ready["status"] == "False"
    assert condition(kube.get("modelversions", "fraud-9a"), "Ready")["status"] == "True"


def test_missing_parent_version_is_reported_but_not_fatal(kube, s3, bucket):
    data = b"child"
    s3.put_object(Bucket=bucket, Key="child.bin", Body=data)
    body = model_version("fraud-10", f"s3://{bucket}/child.bin", hashlib.sha256(data).hexdigest(), version=10)
    body["spec"]["lineage"] = {"parentVersion": 42, "runId": "run-1"}
    kube.create("modelversions", body)
    obj = verified_reason(kube, "fraud-10", "Verified")
    ready = condition(obj, "Ready")
    assert ready["status"] == "True" and "parentVersion 42" in ready["message"]
