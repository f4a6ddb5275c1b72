"""A directory's members are asked for a SHA-256 (a HEAD each) only where their listing allows one."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from modelreg.domain.artifacts import Location, Reason, directory_digest
from modelreg.storage.s3 import ObjectStore, StorageFailure, make_client

FILES = {"config.json": b'{"layers": 2}', "weights/part-0.bin": b"\x01" * 5000, "tokenizer.txt": b"a b c"}


@pytest.fixture
def store(aws_env: dict[str, str]) -> ObjectStore:
    return ObjectStore(make_client())


def upload(s3: Any, bucket: str, **extra: Any) -> str:
    for key, body in FILES.items():
        s3.put_object(Bucket=bucket, Key=f"dir/{key}", Body=body, **extra)
    return directory_digest((k, hashlib.sha256(v).hexdigest()) for k, v in FILES.items())


def heads_made(store: ObjectStore) -> list[str]:
    made: list[str] = []
    store.client.meta.events.register("before-call.s3.HeadObject", lambda params, **_: made.append(params["url_path"]))
    return made


def test_members_listed_without_sha256_are_streamed_without_a_head(s3, bucket, store):
    expected = upload(s3, bucket)  # today's clients add a CRC32 by default: the listing names it
    location = Location(bucket, "dir/")
    snapshot = store.snapshot(location)
    assert all(m.checksum_algorithms is not None and not m.may_carry_sha256 for m in snapshot.members)
    heads = heads_made(store)

    assert store.digest(location, snapshot) == (expected, "Stream", sum(map(len, FILES.values())))
    assert heads == []


def test_members_listed_with_sha256_are_proven_by_storage_without_a_download(s3, bucket, store):
    expected = upload(s3, bucket, ChecksumAlgorithm="SHA256")
    location = Location(bucket, "dir/")
    snapshot = store.snapshot(location)
    heads = heads_made(store)

    assert store.digest(location, snapshot) == (expected, "S3Checksum", 0)
    assert len(heads) == len(FILES)


def test_a_listing_that_names_no_algorithms_still_asks_each_member(s3, bucket, store):
    # Older S3-compatible stores list no ChecksumAlgorithm: nothing can be ruled out.
    expected = upload(s3, bucket, ChecksumAlgorithm="SHA256")

    def forget_algorithms(parsed: dict[str, Any], **_: Any) -> None:
        for item in parsed.get("Contents", []):
            item.pop("ChecksumAlgorithm", None)

    store.client.meta.events.register("after-call.s3.ListObjectsV2", forget_algorithms)
    location = Location(bucket, "dir/")
    snapshot = store.snapshot(location)
    assert all(m.checksum_algorithms is None for m in snapshot.members)
    heads = heads_made(store)

    assert store.digest(location, snapshot) == (expected, "S3Checksum", 0)
    assert len(heads) == len(FILES)


def test_a_mixed_directory_is_proven_member_by_member_method_stream(s3, bucket, store):
    expected = upload(s3, bucket)
    s3.put_object(Bucket=bucket, Key="dir/config.json", Body=FILES["config.json"], ChecksumAlgorithm="SHA256")
    location = Location(bucket, "dir/")
    snapshot = store.snapshot(location)
    heads = heads_made(store)

    digest, method, read = store.digest(location, snapshot)
    assert (digest, method) == (expected, "Stream")
    assert read == sum(len(v) for k, v in FILES.items() if k != "config.json")
    assert len(heads) == 1


def test_a_member_replaced_between_listing_and_head_is_not_vouched_for(s3, bucket, store):
    # The listing's identity (ETag, time) and the HEAD's checksum must describe one object: else
    # bad bytes listed, then good bytes HEADed, would be recorded as proven under the bad identity.
    upload(s3, bucket, ChecksumAlgorithm="SHA256")
    s3.put_object(Bucket=bucket, Key="dir/config.json", Body=b"tampered", ChecksumAlgorithm="SHA256")
    location = Location(bucket, "dir/")
    snapshot = store.snapshot(location)  # lists the tampered member

    def restore_before_the_head(params: dict[str, Any], **_: Any) -> None:
        if params["url_path"].endswith("config.json"):
            s3.put_object(Bucket=bucket, Key="dir/config.json", Body=FILES["config.json"], ChecksumAlgorithm="SHA256")

    store.client.meta.events.register("before-call.s3.HeadObject", restore_before_the_head)
    with pytest.raises(StorageFailure) as failed:
        store.digest(location, snapshot)
    assert failed.value.reason is Reason.STORAGE_UNAVAILABLE  # retried with a fresh listing, never a pass
    assert (
        failed.value.message
        == f"s3://{bucket}/dir/config.json changed while it was being verified (HeadObject); checked again"
    )
