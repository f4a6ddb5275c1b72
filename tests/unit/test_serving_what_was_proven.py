"""Pure parts of 'serve exactly what was proven': escaping, pinning, prefixes, bounds, redaction, policy."""

import pytest
from botocore.exceptions import EndpointConnectionError

from modelreg.domain.artifacts import InvalidURIError, Location, Reason, Snapshot, judge_bounds, parse_uri, within
from modelreg.domain.policy import PolicyError, effective_policy
from modelreg.domain.redaction import redact
from modelreg.domain.serving import Served
from modelreg.storage.s3 import _failure


def mv(uri, version_id=None):
    status = {"artifact": {"versionId": version_id}} if version_id else {}
    return {"spec": {"modelName": "m", "version": 1, "artifact": {"uri": uri, "sha256": "a" * 64}}, "status": status}


def test_model_uri_is_escaped_so_kubernetes_expands_nothing():
    env = Served.of(mv("s3://b/exfil/$(DB_PASSWORD)")).env()
    assert env["MODEL_URI"] == "s3://b/exfil/$$(DB_PASSWORD)" and "MODEL_VERSION_ID" not in env


def test_model_version_id_is_the_verified_one():
    assert Served.of(mv("s3://b/k", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")).env()["MODEL_VERSION_ID"].startswith("3HL4")


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        ("s3://team-a/models/x.onnx", True),
        ("s3://team-a/models/dir/", True),
        ("s3://team-a/modelsX/x", False),  # a prefix is a folder, not a string prefix
        ("s3://team-b-private/creds/db-password.txt", False),
        ("s3://shared/anything", True),
    ],
)
def test_allowed_prefixes(uri, ok):
    assert within(parse_uri(uri), ["s3://team-a/models/", "s3://shared/"]) is ok


@pytest.mark.parametrize(
    "uri",
    [
        "s3://team-a/models/../secrets/x",
        "s3://team-a/models/x/..",
        "s3://team-a/models//x",
        "s3://team-a/models/x?versionId=3",
        "s3://team-a/models/x#frag",
        "s3://team-a/models/x%2F..%2Fy",
        "s3://team-a/models\\x",
        "s3://team-a/models/x\n",
    ],
)
def test_keys_a_loader_could_read_differently_are_invalid(uri):
    with pytest.raises(InvalidURIError):
        parse_uri(uri)
    assert not within(Location("team-a", "models/../x"), ["s3://team-a/models/"])


def test_too_large_before_any_download():
    snapshot = Snapshot(size=11, etag="e", version_id=None)
    assert judge_bounds(snapshot, 10, Location("b", "k")).reason is Reason.TOO_LARGE
    assert judge_bounds(snapshot, 11, Location("b", "k")) is None


def test_credentials_in_endpoint_urls_never_reach_a_message():
    failure = _failure(
        EndpointConnectionError(endpoint_url="http://minio-user:s3cr3t@minio.storage:9000/b/k"),
        "s3://b/k",
        "HeadObject",
    )
    assert "s3cr3t" not in failure.message and "minio.storage:9000" in failure.message
    assert failure.reason is Reason.STORAGE_UNAVAILABLE
    assert redact("AWS_SECRET_ACCESS_KEY=abc123 token: xyz") == "AWS_SECRET_ACCESS_KEY=*** token: ***"
    assert "cd+ef" not in redact("Invalid endpoint: https://AKIA:ab/cd+ef@minio:9000")


@pytest.mark.parametrize(
    "override",
    [
        ["not", "a", "mapping"],
        {"defaultCriteria": {"Production": [{"metric": "auc", "min": "high"}]}},
        {"defaultCriteria": {"Production": [{"metric": "auc", "min": 0.9, "max": 1}]}},
        {"requiredApprovals": {"Production": "two"}},
        {"requiredApprovals": [2]},
        {"defaultCriteria": "auc>0.9"},
        {"defaultCriteria": {"Production": [{"metric": "auc", "min": float("nan")}]}},
    ],
)
def test_a_broken_namespace_policy_is_an_error_that_says_what(override):
    with pytest.raises(PolicyError):
        effective_policy({"Production": 2}, {}, override)


def test_verification_stops_at_its_deadline():
    import io
    import time

    from modelreg.storage.s3 import ObjectStore, StorageFailure

    class Client:
        def get_object(self, **_):
            return {"Body": io.BytesIO(b"x" * (4 << 20))}

    store = ObjectStore(Client(), chunk_size=64 << 10)
    with pytest.raises(StorageFailure) as stopped:
        store.stream_sha256(Location("b", "k"), deadline=time.monotonic() - 1)
    assert stopped.value.reason is Reason.TIMEOUT and "verification.timeoutSeconds" in stopped.value.message
    assert store.stream_sha256(Location("b", "k"))[1] == 4 << 20  # no deadline: read to the end
