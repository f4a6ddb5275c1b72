"""Streamed verification holds a bounded amount of memory, whatever the artifact's size."""

from __future__ import annotations

import hashlib
import os
import tracemalloc

import boto3
import pytest

from modelreg.domain.artifacts import Location
from modelreg.sandbox.harness import S3Process
from modelreg.storage.s3 import ObjectStore, StorageFailure, make_client

SIZE = 512 * 1024 * 1024
BLOCK = os.urandom(1024 * 1024)


class Generated:
    """SIZE bytes made on the fly (never all in memory), hashed as they are read."""

    def __init__(self) -> None:
        self.position, self.digest = 0, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        remaining = SIZE - self.position
        n = remaining if size is None or size < 0 else min(size, remaining)
        parts, taken = [], 0
        while taken < n:
            offset = (self.position + taken) % len(BLOCK)
            part = BLOCK[offset : offset + n - taken]
            parts.append(part)
            taken += len(part)
        chunk = b"".join(parts)
        self.digest.update(chunk)
        self.position += n
        return chunk


@pytest.fixture
def separate_s3(monkeypatch):
    """moto in its own process, so its buffers are not counted as this process's memory."""
    endpoint = S3Process().start()
    for key, value in endpoint.environment().items():
        monkeypatch.setenv(key, value)
    yield endpoint
    endpoint.stop()


def digest_with_peak(store, location, snapshot):
    """The artifact's digest, and the most memory Python held while computing it."""
    tracemalloc.start()
    try:
        digest, method, read = store.digest(location, snapshot)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return digest, method, read, peak


def test_streaming_512_mib_stays_within_64_mib(separate_s3):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="big")
    source = Generated()
    s3.upload_fileobj(source, "big", "model.bin")  # multipart, no checksum: must be streamed
    store = ObjectStore(make_client())
    location = Location("big", "model.bin")
    snapshot = store.snapshot(location)
    assert snapshot.size == SIZE

    digest, method, read, peak = digest_with_peak(store, location, snapshot)

    assert (digest, method, read) == (source.digest.hexdigest(), "Stream", SIZE)
    print(f"peak traced memory while streaming {SIZE >> 20} MiB: {peak / 2**20:.1f} MiB")
    assert peak < 64 * 1024 * 1024, f"peak traced memory {peak / 2**20:.1f} MiB"


def test_a_runaway_prefix_stops_at_max_directory_objects_in_bounded_memory(separate_s3):
    from concurrent.futures import ThreadPoolExecutor

    from modelreg.domain.artifacts import Reason
    from modelreg.storage.s3 import StorageFailure

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="runaway")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: s3.put_object(Bucket="runaway", Key=f"p/{i:06d}", Body=b"x"), range(3000)))
    location = Location("runaway", "p/")

    def peak_of(store: ObjectStore) -> tuple[int, object]:
        tracemalloc.start()
        try:
            try:
                outcome: object = store.snapshot(location)
            except StorageFailure as failure:
                outcome = failure
            return tracemalloc.get_traced_memory()[1], outcome
        finally:
            tracemalloc.stop()

    bounded, failure = peak_of(ObjectStore(make_client(), max_objects=100))
    unbounded, snapshot = peak_of(ObjectStore(make_client(), max_objects=10**9))
    print(f"listing 3000 keys: peak {unbounded / 2**20:.2f} MiB; stopped at 100: {bounded / 2**20:.2f} MiB")
    assert isinstance(failure, StorageFailure) and failure.reason is Reason.TOO_LARGE
    assert len(snapshot.members) == 3000
    assert bounded < unbounded / 2  # the listing stops: memory does not grow with the prefix


def test_ranged_reads_hash_in_order_in_bounded_memory_and_pin_the_object(separate_s3):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="ranged")
    data = b"".join(hashlib.sha256(str(i).encode()).digest() * 32768 for i in range(48))  # 48 MiB, no repeats
    s3.put_object(Bucket="ranged", Key="model.bin", Body=data)
    store = ObjectStore(make_client(), chunk_size=4 * 1024 * 1024, range_streams=4)
    location = Location("ranged", "model.bin")
    snapshot = store.snapshot(location)
    digest, method, read, peak = digest_with_peak(store, location, snapshot)
    assert (digest, method, read) == (hashlib.sha256(data).hexdigest(), "Stream", len(data))
    assert peak < 4 * 4 * 1024 * 1024 * 2, f"peak traced memory {peak / 2**20:.1f} MiB"  # ~ streams x chunk

    s3.put_object(Bucket="ranged", Key="model.bin", Body=data[::-1])  # overwritten after the HEAD
    with pytest.raises(StorageFailure):
        store.digest(location, snapshot)  # every range is pinned to the object the HEAD saw
