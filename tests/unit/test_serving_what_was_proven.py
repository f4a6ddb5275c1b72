"""Pure parts of 'serve exactly what was proven': escaping, pinning, prefixes, bounds, redaction, policy."""

import threading
import time

import pytest
from botocore.exceptions import EndpointConnectionError

from modelreg.domain.artifacts import InvalidURIError, Location, Reason, Snapshot, judge_bounds, parse_uri, within
from modelreg.domain.policy import PolicyError, effective_policy
from modelreg.domain.redaction import redact
from modelreg.domain.serving import Served
from modelreg.services.failures import explain
from modelreg.storage.s3 import ObjectStore, Stop, Stopped, StorageFailure, _failure


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

    class Client:
        def get_object(self, **_):
            return {"Body": io.BytesIO(b"x" * (4 << 20))}

    store = ObjectStore(Client(), chunk_size=64 << 10)
    with pytest.raises(StorageFailure) as stopped:
        store.stream_sha256(Location("b", "k"), stop=Stop(time.monotonic() - 1))
    assert stopped.value.reason is Reason.TIMEOUT and "verification.timeoutSeconds" in stopped.value.message
    assert store.stream_sha256(Location("b", "k"))[1] == 4 << 20  # no deadline: read to the end


class EndlessBody:
    """An artifact that arrives a chunk at a time for as long as anyone reads (a huge, slow one)."""

    def __init__(self) -> None:
        self.chunks_read, self.closed = 0, False

    def read(self, size: int = -1) -> bytes:
        if self.closed:  # as a closed HTTP response reads
            return b""
        time.sleep(0.001)
        self.chunks_read += 1
        return b"x" * size

    def close(self) -> None:
        self.closed = True


class EndlessClient:
    def __init__(self) -> None:
        self.body = EndlessBody()

    def get_object(self, **_):
        return {"Body": self.body}

    def head_object(self, **_):
        return {"ContentLength": 1 << 50, "ETag": '"e"'}


def digest_in_a_thread(store, **kwargs):
    location = Location("b", "huge")
    snapshot = store.snapshot(location)
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(store.digest(location, snapshot, **kwargs))
        except (StorageFailure, Stopped) as failure:
            outcome.append(failure)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def wait_until_reading(body: EndlessBody) -> None:
    deadline = time.monotonic() + 10
    while body.chunks_read < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert body.chunks_read >= 5


def test_a_closed_store_stops_hashing_in_its_threads_at_the_next_chunk():
    # at shutdown: a worker thread left reading a huge artifact would hold the process's exit
    client = EndlessClient()
    store = ObjectStore(client, chunk_size=1024)
    thread, outcome = digest_in_a_thread(store)
    wait_until_reading(client.body)

    store.close()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert isinstance(outcome[0], Stopped) and "stopped" in str(outcome[0])
    # never a verdict on the artifact, nor a failure worth telling anyone about
    assert not isinstance(outcome[0], StorageFailure) and explain(outcome[0]) is None


def test_a_caller_that_gave_up_stops_the_hashing_too():
    client = EndlessClient()
    store = ObjectStore(client, chunk_size=1024)
    cancelled = threading.Event()
    thread, outcome = digest_in_a_thread(store, cancelled=cancelled)
    wait_until_reading(client.body)

    cancelled.set()
    thread.join(timeout=5)
    assert not thread.is_alive() and isinstance(outcome[0], Stopped)
    read = client.body.chunks_read
    time.sleep(0.1)
    assert client.body.chunks_read - read <= store.queue_depth + 1  # the reader stops as well


def test_a_stalled_read_does_not_hold_a_stop():
    # A read that never returns (a stalled connection): the stop is still heard within a poll.
    released, reading = threading.Event(), threading.Lock()

    class StalledBody(EndlessBody):
        def read(self, size: int = -1) -> bytes:
            with reading:
                released.wait()
                return b""

        def close(self) -> None:
            with reading:  # as a real response's close waits for a read in progress
                super().close()

    client = EndlessClient()
    client.body = StalledBody()
    store = ObjectStore(client, chunk_size=1024)
    cancelled = threading.Event()
    thread, outcome = digest_in_a_thread(store, cancelled=cancelled)
    time.sleep(0.3)
    assert thread.is_alive()  # waiting on the read

    cancelled.set()
    thread.join(timeout=2)
    try:
        assert not thread.is_alive() and isinstance(outcome[0], Stopped)
    finally:
        released.set()


def test_a_cancelled_recheck_stops_its_thread_reading():
    # A promotion's commit-point write that loses a race cancels its storage re-check: the
    # re-hash of an artifact whose identity changed must not read on to the end for no one.
    import asyncio

    from modelreg.domain.model_versions import RetryPolicy
    from modelreg.domain.seals import Sealer
    from modelreg.domain.trust import StatusSeals
    from modelreg.services.model_versions import ModelVersionReconciler

    client = EndlessClient()
    store = ObjectStore(client, chunk_size=1024)

    async def store_for(namespace: str) -> ObjectStore:
        return store

    reconciler = ModelVersionReconciler(
        store_for, RetryPolicy(), 1, StatusSeals(Sealer(b"k" * 32)), max_artifact_bytes=1 << 60
    )
    version = mv("s3://models/huge")
    version["metadata"] = {"name": "m-1"}
    version["status"] = {"artifact": {"etag": "before", "sizeBytes": 1 << 50}}  # storage now says "e"

    async def scenario() -> None:
        recheck = asyncio.ensure_future(reconciler.still_proven("team", version))
        await asyncio.to_thread(wait_until_reading, client.body)
        recheck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await recheck

    asyncio.run(scenario())
    read = client.body.chunks_read
    time.sleep(0.2)
    assert client.body.chunks_read - read <= store.queue_depth + 1
    store.close()


# What identifies proven bytes: their SHA-256, never an MD5 ETag, a size or a whole-second time.
PROVEN = {"sha256": "a" * 64, "etag": "md5", "sizeBytes": 128, "lastModified": "2026-12-06T03:30:00Z"}


def snapshot_of(**changes) -> Snapshot:
    fields = {"size": 128, "etag": "md5", "version_id": None, "last_modified": "2026-12-06T03:30:00Z", **changes}
    return Snapshot(**fields)


def test_an_unchanged_etag_size_and_second_vouch_for_nothing():
    # an MD5-colliding overwrite within the same second keeps all three: only the bytes can tell
    from modelreg.domain.artifacts import vouches_for

    assert vouches_for(snapshot_of(), PROVEN) is None


def test_storage_vouches_by_full_object_sha256_or_the_pinned_version():
    from modelreg.domain.artifacts import vouches_for

    assert vouches_for(snapshot_of(sha256="a" * 64), PROVEN) is True
    assert vouches_for(snapshot_of(sha256="b" * 64), PROVEN) is False
    versioned = {**PROVEN, "versionId": "v1"}
    assert vouches_for(snapshot_of(version_id="v1"), versioned) is True
    assert vouches_for(snapshot_of(version_id="v2", sha256="a" * 64), versioned) is False  # serving pins v1
    # "null" is the one object of an unversioned (or suspended) bucket that any overwrite replaces
    assert vouches_for(snapshot_of(version_id="null"), {**PROVEN, "versionId": "null"}) is None


def test_a_verified_verdict_is_not_kept_on_an_unchanged_etag_alone():
    from modelreg.domain.model_versions import unchanged_since_last_check

    status = {
        "observedGeneration": 1,
        "conditions": [{"type": "ArtifactVerified", "status": "True", "reason": "Verified"}],
        "artifact": PROVEN,
        "lastCheck": {"etag": "md5", "sizeBytes": 128, "lastModified": "2026-12-06T03:30:00Z"},
    }
    assert not unchanged_since_last_check(status, 1, snapshot_of())  # read and hashed again
    assert unchanged_since_last_check(status, 1, snapshot_of(sha256="a" * 64))
    mismatch = {**status, "conditions": [{"type": "ArtifactVerified", "status": "False", "reason": "ChecksumMismatch"}]}
    assert unchanged_since_last_check(mismatch, 1, snapshot_of())  # a failure may rest on metadata


@pytest.mark.parametrize(
    "head",
    [
        {
            "ETag": '"9b14ec2115f8c3619d2b630c7b036fc9-3"',
            "ChecksumSHA256": "orvVqTQxFjz8g6hOZZ/ma9jmKIbWE594h/bwp5KUrHA=",
        },
        {"ETag": '"e"', "ChecksumSHA256": "orvVqTQxFjz8g6hOZZ/ma9jmKIbWE594h/bwp5KUrHA=-3"},
        {"ETag": '"e"', "ChecksumSHA256": "orvVqTQxFjz8g6hOZZ/ma9jmKIbWE594h/bwp5KUrHA=", "ChecksumType": "COMPOSITE"},
    ],
)
def test_a_multipart_uploads_checksum_is_never_taken_for_the_objects_digest(head):
    # moto reports a multipart upload's composite SHA-256 with neither `-N` nor a ChecksumType
    from modelreg.storage.s3 import _full_object_sha256

    assert _full_object_sha256(head) is None
    assert _full_object_sha256({"ETag": '"e"', "ChecksumSHA256": head["ChecksumSHA256"].removesuffix("-3")})
