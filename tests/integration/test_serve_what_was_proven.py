"""Serve exactly what was proven, storage scoped per namespace, bounded work and no wedges:
each tried as a user or attacker would, against the real operator, the emulator and moto."""

from __future__ import annotations

import hashlib
import logging
import time

import pytest

from modelreg.config import Settings
from tests.argocd_health import health
from tests.integration.conftest import NAMESPACE, condition, wait_for
from tests.integration.promotion_helpers import deployment, env_of, promote, register, stage, succeeded, version_body

FAST = {"verification": {"recheck_seconds": 60}, "promotions": {"tick_seconds": 0.3}}


@pytest.fixture
def settings() -> Settings:
    return Settings(**FAST)


def served_env(apps, name="scorer", container="sidecar"):
    dep = apps.api_client.sanitize_for_serialization(apps.read_namespaced_deployment(name, NAMESPACE))
    return env_of(dep, container)


def verification(kube, name):
    return condition(kube.get("modelversions", name), "ArtifactVerified") or {}


def test_an_artifact_overwritten_after_verification_is_never_served(operator, apps, kube, s3, bucket):
    apps.create_namespaced_deployment(NAMESPACE, deployment("scorer", stage="Staging"))
    register(kube, s3, bucket, 1)
    s3.put_object(Bucket=bucket, Key="fraud/1.onnx", Body=b"poisoned weights", ChecksumAlgorithm="SHA256")
    promote(kube, "s", 1, target="Staging")
    ended = succeeded(kube, "s", "ArtifactChanged")
    assert "changed after it was verified" in condition(ended, "Succeeded")["message"]
    assert "MODEL_VERSION" not in served_env(apps) or served_env(apps)["MODEL_VERSION"] == "stale"
    assert stage(kube, "fraud-v1") is None
    wait_for(
        lambda: verification(kube, "fraud-v1").get("reason") == "ArtifactChanged", timeout=5, what="ArtifactChanged"
    )


def test_the_same_bytes_written_again_still_serve(operator, apps, kube, s3, bucket):
    apps.create_namespaced_deployment(NAMESPACE, deployment("scorer", stage="Staging"))
    register(kube, s3, bucket, 1)
    s3.put_object(Bucket=bucket, Key="fraud/1.onnx", Body=b"fraud weights v1", ChecksumAlgorithm="SHA256")
    promote(kube, "s", 1, target="Staging")
    wait_for(lambda: served_env(apps).get("MODEL_VERSION") == "1", what="rolled")
    assert stage(kube, "fraud-v1") == "Staging"


def test_a_key_with_an_env_reference_is_served_escaped_and_a_versioned_object_pinned(
    operator, apps, kube, s3, bucket, deployment_controller
):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    apps.create_namespaced_deployment(NAMESPACE, deployment("scorer", stage="Staging"))
    body = b"weights"
    put = s3.put_object(Bucket=bucket, Key="exfil/$(DB_PASSWORD)", Body=body, ChecksumAlgorithm="SHA256")
    kube.create(
        "modelversions",
        version_body(
            "fraud-v1",
            f"s3://{bucket}/exfil/$(DB_PASSWORD)",
            hashlib.sha256(body).hexdigest(),
            model="fraud",
            version=1,
        ),
    )
    wait_for(lambda: verification(kube, "fraud-v1").get("status") == "True", what="verified")
    promote(kube, "s", 1, target="Staging")
    env = wait_for(lambda: (e := served_env(apps)).get("MODEL_VERSION") == "1" and e, what="rolled")
    assert env["MODEL_URI"] == f"s3://{bucket}/exfil/$$(DB_PASSWORD)"
    assert env["MODEL_VERSION_ID"] == put["VersionId"]
    succeeded(kube, "s", "Promoted")
    # a new version of the object under the same key: VersionId differs, nothing more serves it
    s3.put_object(Bucket=bucket, Key="exfil/$(DB_PASSWORD)", Body=b"other weights", ChecksumAlgorithm="SHA256")
    apps.create_namespaced_deployment(NAMESPACE, deployment("late", stage="Staging"))
    wait_for(
        lambda: any(e.reason == "ModelNotConverged" for e in kube.events_for("late")), what="late Deployment refused"
    )
    assert "MODEL_VERSION_ID" not in served_env(apps, "late")


def test_another_teams_bucket_is_forbidden_without_a_single_storage_request(start_operator, kube, s3, bucket, caplog):
    start_operator(Settings(**FAST, storage={"allowed_prefixes": {NAMESPACE: [f"s3://{bucket}/ml/"]}}))
    s3.create_bucket(Bucket="team-b-private")
    secret = b"hunter2"
    s3.put_object(Bucket="team-b-private", Key="creds/db-password.txt", Body=secret)
    caplog.set_level(logging.INFO, logger="werkzeug")  # moto's request log
    caplog.clear()  # from here on: the operator's requests only
    kube.create(
        "modelversions",
        version_body("probe-v1", "s3://team-b-private/creds/db-password.txt", "0" * 64, model="probe", version=1),
    )
    found = wait_for(
        lambda: verification(kube, "probe-v1").get("reason") == "Forbidden" and verification(kube, "probe-v1"),
        what="Forbidden",
    )
    assert "outside the storage prefixes namespace ml may use" in found["message"]
    probe = kube.get("modelversions", "probe-v1")
    kube.event("probe-v1", "Forbidden")  # its Event is among what must not leak
    leaks = [hashlib.sha256(secret).hexdigest(), hashlib.md5(secret).hexdigest(), str(len(secret))]
    texts = [found["message"], str(probe["status"]), *(e.message for e in kube.events_for("probe-v1")), caplog.text]
    assert not any(leak in text for leak in leaks[:2] for text in texts)
    assert "sizeBytes" not in str(probe["status"].get("lastCheck") or {})
    assert "team-b-private" not in "".join(r.getMessage() for r in caplog.records if r.name == "werkzeug")


def test_a_prefix_with_too_many_objects_ends_too_large(start_operator, kube, s3, bucket):
    start_operator(Settings(verification={"max_directory_objects": 5}))
    for i in range(8):
        s3.put_object(Bucket=bucket, Key=f"big/part-{i}", Body=b"x")
    kube.create("modelversions", version_body("big-v1", f"s3://{bucket}/big/", "0" * 64, model="big"))
    found = wait_for(
        lambda: verification(kube, "big-v1").get("reason") == "TooLarge" and verification(kube, "big-v1"),
        what="TooLarge",
    )
    assert "more than 5 objects (verification.maxDirectoryObjects)" in found["message"]


def test_a_deployment_naming_a_missing_container_fails_the_promotion_and_blocks_nothing(
    operator, apps, kube, s3, bucket
):
    apps.create_namespaced_deployment(NAMESPACE, deployment("broken", stage="Staging", container="nope"))
    register(kube, s3, bucket, 1)
    promote(kube, "s1", 1, target="Staging")
    failed = succeeded(kube, "s1", "RolloutFailed")
    assert "Deployment broken has no container 'nope'" in condition(failed, "Succeeded")["message"]
    assert stage(kube, "fraud-v1") in (None, "")  # what moved was undone
    apps.delete_namespaced_deployment("broken", NAMESPACE)
    promote(kube, "s2", 1, target="Staging")
    succeeded(kube, "s2", "Promoted")
    assert stage(kube, "fraud-v1") == "Staging"


def test_a_version_deleted_mid_rollout_ends_version_not_found(operator, apps, kube, s3, bucket, bypass):
    apps.create_namespaced_deployment(NAMESPACE, deployment("scorer", stage="Staging"))
    register(kube, s3, bucket, 1)
    promote(kube, "s1", 1, target="Staging")
    succeeded(kube, "s1", "RollingOut")  # no Deployment controller: the rollout cannot finish
    with bypass:  # admission denies deleting a stage holder: past it (the namespace going, etcd)
        kube.delete("modelversions", "fraud-v1")
    ended = succeeded(kube, "s1", "VersionNotFound")
    assert "was deleted" in condition(ended, "Succeeded")["message"]
    register(kube, s3, bucket, 2)
    promote(kube, "s2", 2, target="Staging")
    succeeded(kube, "s2", "RollingOut")  # the model's next promotion is not blocked


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        ("requiredApprovals: [unclosed", "not valid YAML"),
        ("defaultCriteria:\n  Staging: [{metric: auc, min: high}]\n", "defaultCriteria.Staging"),
    ],
)
def test_an_invalid_namespace_policy_is_named_and_heals(operator, kube, s3, bucket, policy, words):
    kube.core.create_namespaced_config_map(
        NAMESPACE, {"metadata": {"name": "modelreg-policy"}, "data": {"policy.yaml": policy}}
    )
    register(kube, s3, bucket, 1)
    promote(kube, "s", 1, target="Staging")
    invalid = succeeded(kube, "s", "InvalidPolicy")
    message = condition(invalid, "Succeeded")["message"]
    assert health("ModelPromotion", invalid)["status"] == "Degraded"
    assert f"ConfigMap {NAMESPACE}/modelreg-policy" in message and words in message
    kube.core.patch_namespaced_config_map(
        "modelreg-policy", NAMESPACE, {"data": {"policy.yaml": "requiredApprovals: {Staging: 0}\n"}}
    )
    succeeded(kube, "s", "Promoted")  # no serving Deployment: promoted at once


def test_a_dead_store_of_one_team_delays_no_promotion_of_another(cluster, aws_env, kube, s3, bucket):
    import socket
    import time

    from modelreg.sandbox.harness import OperatorThread

    blackhole = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(64)
    kube.core.create_namespaced_secret(
        "modelreg-system",
        {
            "metadata": {"name": "slow-team-s3"},
            "stringData": {
                "AWS_ACCESS_KEY_ID": "slow",
                "AWS_SECRET_ACCESS_KEY": "slow-secret",
                "AWS_ENDPOINT_URL": f"http://127.0.0.1:{blackhole.getsockname()[1]}",
            },
        },
    )
    settings = Settings(**FAST, storage={"credentials": {"slow": "slow-team-s3"}})
    operator = OperatorThread(settings, [NAMESPACE, "slow"]).start()
    try:
        register(kube, s3, bucket, 1)
        for v in range(1, 10):  # nine versions of the other team, all waiting on their dead store
            kube.custom.create_namespaced_custom_object(
                "modelreg.io",
                "v1alpha1",
                "slow",
                "modelversions",
                version_body(f"slow-v{v}", f"s3://slow/{v}", "0" * 64, model="slow", version=v),
            )
        time.sleep(1.5)  # their checks are under way (and hanging)
        started = time.monotonic()
        promote(kube, "s", 1, target="Staging")
        succeeded(kube, "s", "Promoted", timeout=10)
        elapsed = time.monotonic() - started
        print(f"Staging promotion with a dead store next door: {elapsed:.2f} s (tick 0.3 s)")
        assert elapsed < 5  # a few ticks, not botocore's minutes of timeouts
    finally:
        operator.stop()
        blackhole.close()


def test_a_proven_object_deleted_mid_rollout_ends_the_promotion_instead_of_holding_the_model(
    operator, apps, kube, s3, bucket
):
    apps.create_namespaced_deployment(NAMESPACE, deployment("scorer", stage="Staging"))
    register(kube, s3, bucket, 1)
    promote(kube, "s1", 1, target="Staging")
    succeeded(kube, "s1", "RollingOut")  # no Deployment controller: still rolling out
    s3.delete_object(Bucket=bucket, Key="fraud/1.onnx")
    ended = succeeded(kube, "s1", "ArtifactChanged")
    assert "is gone" in condition(ended, "Succeeded")["message"]
    assert stage(kube, "fraud-v1") in (None, "")


def test_a_rollout_that_never_settles_ends_after_the_execution_timeout(start_operator, apps, kube, s3, bucket):
    start_operator(Settings(promotions={"tick_seconds": 0.3, "execution_timeout_seconds": 2}))
    apps.create_namespaced_deployment(NAMESPACE, deployment("scorer", stage="Staging"))
    register(kube, s3, bucket, 1)
    promote(kube, "s1", 1, target="Staging")
    ended = succeeded(kube, "s1", "RolloutFailed", timeout=15)
    assert "promotions.executionTimeoutSeconds" in condition(ended, "Succeeded")["message"]
    assert stage(kube, "fraud-v1") in (None, "")


# A public 128-byte MD5 collision pair (Wang et al.): one MD5, so one ETag; two SHA-256 digests.
COLLIDING_A = bytes.fromhex(
    "d131dd02c5e6eec4693d9a0698aff95c2fcab58712467eab4004583eb8fb7f8955ad340609f4b30283e488832571415a"
    "085125e8f7cdc99fd91dbdf280373c5bd8823e3156348f5bae6dacd436c919c6dd53e2b487da03fd02396306d248cda0"
    "e99f33420f577ee8ce54b67080a80d1ec69821bcb6a8839396f9652b6ff72a70"
)
COLLIDING_B = bytes.fromhex(
    "d131dd02c5e6eec4693d9a0698aff95c2fcab50712467eab4004583eb8fb7f8955ad340609f4b30283e4888325f1415a"
    "085125e8f7cdc99fd91dbd7280373c5bd8823e3156348f5bae6dacd436c919c6dd53e23487da03fd02396306d248cda0"
    "e99f33420f577ee8ce54b67080280d1ec69821bcb6a8839396f965ab6ff72a70"
)


def overwrite_within_the_second_of_verification(kube, s3, bucket, replacement: bytes) -> int:
    """Put A (with its SHA-256), register it, and once it is verified overwrite it with
    `replacement` within the same second: ETag, size and LastModified all stay as proven.
    Tried again under a new version number when the second ran out first."""
    for version in range(1, 8):
        key = f"fraud/{version}.bin"
        time.sleep(1 - time.time() % 1 + 0.02)  # the start of a second: most of it left
        first = s3.put_object(Bucket=bucket, Key=key, Body=COLLIDING_A, ChecksumAlgorithm="SHA256")
        kube.create(
            "modelversions",
            version_body(
                f"fraud-v{version}", f"s3://{bucket}/{key}", hashlib.sha256(COLLIDING_A).hexdigest(), version=version
            ),
        )
        wait_for(
            lambda v=version: verification(kube, f"fraud-v{v}").get("status") == "True", what="verified", step=0.02
        )
        s3.put_object(Bucket=bucket, Key=key, Body=replacement)  # no checksum: storage vouches for nothing
        head = s3.head_object(Bucket=bucket, Key=key)
        proven = kube.get("modelversions", f"fraud-v{version}")["status"]["artifact"]
        same = {"etag": head["ETag"].strip('"'), "lastModified": head["LastModified"].strftime("%Y-%m-%dT%H:%M:%SZ")}
        if all(proven.get(k) == v for k, v in same.items()) and head["ContentLength"] == proven["sizeBytes"]:
            assert head["ETag"] == first["ETag"]
            return version
    raise AssertionError("no overwrite landed within the second of its verification in 7 tries")


def test_an_md5_colliding_overwrite_within_the_same_second_never_serves(operator, apps, kube, s3, bucket):
    # Storage shows the ETag (MD5), size and second that were proven: only the SHA-256 tells.
    apps.create_namespaced_deployment(NAMESPACE, deployment("scorer", stage="Staging"))
    version = overwrite_within_the_second_of_verification(kube, s3, bucket, COLLIDING_B)
    promote(kube, "s", version, target="Staging")
    ended = succeeded(kube, "s", "ArtifactChanged")
    assert "no longer holds the bytes proven" in condition(ended, "Succeeded")["message"]
    assert served_env(apps).get("MODEL_SHA256") != hashlib.sha256(COLLIDING_A).hexdigest()
    assert stage(kube, f"fraud-v{version}") is None
    wait_for(
        lambda: verification(kube, f"fraud-v{version}").get("reason") == "ArtifactChanged",
        timeout=5,
        what="the version itself turns ArtifactChanged",
    )


def test_the_same_bytes_overwritten_without_a_checksum_still_serve(operator, apps, kube, s3, bucket):
    # no checksum to vouch for them: they are read and hashed again, and they are the proven bytes
    apps.create_namespaced_deployment(NAMESPACE, deployment("scorer", stage="Staging"))
    version = overwrite_within_the_second_of_verification(kube, s3, bucket, COLLIDING_A)
    promote(kube, "s", version, target="Staging")
    env = wait_for(lambda: (e := served_env(apps)).get("MODEL_VERSION") == str(version) and e, what="rolled")
    assert env["MODEL_SHA256"] == hashlib.sha256(COLLIDING_A).hexdigest()
    assert stage(kube, f"fraud-v{version}") == "Staging"


def test_a_version_put_between_the_head_and_the_read_is_never_recorded_as_proven(s3, bucket):
    # Versioned bucket: B (colliding with A) is the latest version when the operator HEADs it; A is
    # put before the GET. Pinned by ETag alone the GET would hash A and record B's VersionId as
    # proven, which serving then reads (MODEL_VERSION_ID). Pinned to the VersionId, it hashes B.
    import asyncio

    from modelreg.domain.model_versions import RetryPolicy
    from modelreg.domain.seals import Sealer
    from modelreg.domain.trust import StatusSeals
    from modelreg.models.resources import ArtifactSpec
    from modelreg.services.model_versions import ModelVersionReconciler
    from modelreg.storage.s3 import ObjectStore

    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    evil = s3.put_object(Bucket=bucket, Key="m.bin", Body=COLLIDING_B)["VersionId"]
    store = ObjectStore(s3)
    digest = store.digest

    def racing_digest(location, snapshot, *args, **kwargs):
        s3.put_object(Bucket=bucket, Key="m.bin", Body=COLLIDING_A)  # right after the HEAD
        return digest(location, snapshot, *args, **kwargs)

    store.digest = racing_digest

    async def store_for(namespace):
        return store

    reconciler = ModelVersionReconciler(store_for, RetryPolicy(), 1, StatusSeals(Sealer(b"k" * 32)))
    spec = ArtifactSpec.model_validate(
        {"uri": f"s3://{bucket}/m.bin", "sha256": hashlib.sha256(COLLIDING_A).hexdigest()}
    )
    verdict, snapshot = asyncio.run(reconciler.check(NAMESPACE, spec, {}, 1))
    assert snapshot.version_id == evil
    assert not verdict.verified and verdict.found_sha256 == hashlib.sha256(COLLIDING_B).hexdigest()
