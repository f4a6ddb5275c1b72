import hashlib
import subprocess

import pytest

from modelreg.domain.artifacts import (
    InvalidURIError,
    Location,
    Reason,
    Snapshot,
    StoredObject,
    directory_digest,
    directory_snapshot,
    judge_digest,
    judge_size,
    parse_uri,
)


def test_parse_object_and_directory_uris():
    assert parse_uri("s3://models/fraud/1/model.onnx") == Location("models", "fraud/1/model.onnx")
    directory = parse_uri("s3://models/fraud/1/")
    assert directory.is_directory and str(directory) == "s3://models/fraud/1/"


@pytest.mark.parametrize("uri", ["gs://b/k", "https://x/y", "s3://b", "s3://Bucket/k", "s3://bucket/"])
def test_non_s3_or_malformed_uris_are_invalid(uri):
    with pytest.raises(InvalidURIError, match="s3://bucket/key"):
        parse_uri(uri)


def test_directory_digest_matches_sha256sum_of_a_manifest(tmp_path):
    files = {"b.txt": b"bee", "a/x.bin": b"\x00\x01", "c": b""}
    entries = [(key, hashlib.sha256(data).hexdigest()) for key, data in files.items()]
    manifest = "".join(f"{d}  {k}\n" for k, d in sorted(entries))
    (tmp_path / "manifest").write_text(manifest)
    expected = subprocess.run(["sha256sum", tmp_path / "manifest"], capture_output=True, text=True).stdout.split()[0]
    assert directory_digest(reversed(entries)) == expected


def test_directory_fingerprint_changes_when_any_member_changes():
    a = directory_snapshot([StoredObject("x", 1, "e1"), StoredObject("y", 2, "e2")])
    same = directory_snapshot([StoredObject("y", 2, "e2"), StoredObject("x", 1, "e1")])
    changed = directory_snapshot([StoredObject("x", 1, "e1"), StoredObject("y", 2, "e3")])
    assert a.etag == same.etag != changed.etag
    assert a.size == 3 and [m.key for m in a.members] == ["x", "y"]


SNAP = Snapshot(size=10, etag="etag-1", version_id=None)
LOC = Location("b", "k")


def test_size_is_judged_only_when_declared():
    assert judge_size(None, SNAP, LOC) is None
    assert judge_size(10, SNAP, LOC) is None
    verdict = judge_size(11, SNAP, LOC)
    assert verdict.reason is Reason.SIZE_MISMATCH
    assert (
        "expected 11 bytes" in verdict.message and "found 10 bytes" in verdict.message and "s3://b/k" in verdict.message
    )


def test_digest_verdicts():
    ok = judge_digest("a" * 64, "a" * 64, "Stream", SNAP, LOC, None)
    assert ok.verified and ok.method == "Stream"
    mismatch = judge_digest("a" * 64, "b" * 64, "S3Checksum", SNAP, LOC, None)
    assert mismatch.reason is Reason.CHECKSUM_MISMATCH and "a" * 64 in mismatch.message and "b" * 64 in mismatch.message
    assert not mismatch.transient
    changed = judge_digest("a" * 64, "b" * 64, "Stream", SNAP, LOC, {"sha256": "a" * 64, "etag": "old"})
    assert changed.reason is Reason.ARTIFACT_CHANGED and "old" in changed.message and "etag-1" in changed.message
