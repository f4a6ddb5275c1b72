"""Streamed verification holds a bounded amount of memory, whatever the artifact's size."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import tracemalloc

import boto3
import pytest
import requests

from modelreg.domain.artifacts import Location
from modelreg.storage.s3 import ObjectStore, make_client
from modelreg.testing.harness import free_port

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
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.2)
    for key, value in {
        "AWS_ENDPOINT_URL_S3": url,
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    yield url
    server.terminate()
    server.wait(timeout=30)


def test_streaming_512_mib_stays_within_64_mib(separate_s3):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="big")
    source = Generated()
    s3.upload_fileobj(source, "big", "model.bin")  # multipart, no checksum: must be streamed
    store = ObjectStore(make_client())
    location = Location("big", "model.bin")
    snapshot = store.snapshot(location)
    assert snapshot.size == SIZE

    tracemalloc.start()
    try:
        digest, method, read = store.digest(location, snapshot)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (digest, method, read) == (source.digest.hexdigest(), "Stream", SIZE)
    print(f"peak traced memory while streaming {SIZE >> 20} MiB: {peak / 2**20:.1f} MiB")
    assert peak < 64 * 1024 * 1024, f"peak traced memory {peak / 2**20:.1f} MiB"
