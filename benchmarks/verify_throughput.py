"""Artifact verification throughput against a local S3 endpoint (moto server, own process).

Prints ratios against baselines measured in the same run (this machine is noisy):
  (a) streamed verification / plain streamed download of the same object (target >= 0.9)
  (b) hashlib sha256 in memory, for reference
  (c) a checksum-carrying object: time and body bytes read (target: 0 bytes, flat in size)

Usage: python benchmarks/verify_throughput.py [--mib 256] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import boto3

from modelreg.domain.artifacts import Location
from modelreg.storage.s3 import ObjectStore, make_client
from modelreg.testing.harness import S3Process

CHUNK = 1024 * 1024


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Timing:
    """Best wall time of `repeat` runs, and the cores the client and the S3 server kept busy."""

    def __init__(self, repeat: int, fn: Callable[[], object], server_pid: int) -> None:
        walls, cores = [], []
        for _ in range(repeat):
            wall0, client0, server0 = time.perf_counter(), time.process_time(), cpu_seconds(server_pid)
            fn()
            wall = time.perf_counter() - wall0
            walls.append(wall)
            cores.append(((time.process_time() - client0) / wall, (cpu_seconds(server_pid) - server0) / wall))
        best = walls.index(min(walls))
        self.seconds, (self.client_cores, self.server_cores) = walls[best], cores[best]

    def describe(self, size: int) -> str:
        return (
            f"{size / self.seconds / 1e6:8.0f} MB/s  cores busy: client {self.client_cores:.2f}, "
            f"S3 server {self.server_cores:.2f}"
        )


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    return min(Timing(1, fn, os.getpid()).seconds for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = args.mib * CHUNK
    proc = S3Process().start()
    os.environ.update(proc.environment())
    try:
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bench")
        data = os.urandom(CHUNK) * args.mib
        s3.put_object(Bucket="bench", Key="plain.bin", Body=data)
        s3.put_object(Bucket="bench", Key="checked.bin", Body=data, ChecksumAlgorithm="SHA256")
        s3.put_object(Bucket="bench", Key="small-checked.bin", Body=data[:CHUNK], ChecksumAlgorithm="SHA256")
        expected = hashlib.sha256(data).hexdigest()
        store = ObjectStore(make_client())
        plain = Location("bench", "plain.bin")

        def download() -> None:
            body = store.client.get_object(Bucket="bench", Key="plain.bin")["Body"]
            while body.read(CHUNK):
                pass

        def verify() -> None:
            digest, read = store.stream_sha256(plain)
            assert digest == expected and read == size

        def serial_download_then_hash() -> None:
            body = store.client.get_object(Bucket="bench", Key="plain.bin")["Body"]
            h = hashlib.sha256()
            while chunk := body.read(CHUNK):
                h.update(chunk)

        t_download = Timing(args.repeat, download, proc.pid)
        t_verify = Timing(args.repeat, verify, proc.pid)
        t_serial = Timing(args.repeat, serial_download_then_hash, proc.pid)
        t_hash = Timing(args.repeat, lambda: hashlib.sha256(data).hexdigest(), proc.pid)

        def by_checksum(key: str) -> tuple[str, str, int]:
            location = Location("bench", key)
            return store.digest(location, store.snapshot(location))

        checksum_times = {
            key: statistics.median([best_of(1, lambda k=key: by_checksum(k)) for _ in range(5)])
            for key in ("checked.bin", "small-checked.bin")
        }
        digest, method, body_read = by_checksum("checked.bin")
        assert digest == expected and method == "S3Checksum"

        ideal = max(t_download.seconds, t_hash.seconds)  # perfect overlap, given spare cores
        print(f"object: {args.mib} MiB, best of {args.repeat}, {os.cpu_count()} cores shared with the S3 server")
        print(f"(a) plain streamed download          {t_download.describe(size)}  (baseline)")
        print(
            f"    streamed verification (overlap)  {t_verify.describe(size)}  "
            f"ratio {t_download.seconds / t_verify.seconds:.2f} (target >= 0.90)"
        )
        print(
            f"    serial download then hash        {t_serial.describe(size)}  "
            f"ratio {t_download.seconds / t_serial.seconds:.2f}"
        )
        print(
            f"    no-overlap bound {t_download.seconds + t_hash.seconds:.3f}s, perfect-overlap bound {ideal:.3f}s, "
            f"verification {t_verify.seconds:.3f}s"
        )
        print(f"(b) hashlib sha256 in memory         {t_hash.describe(size)}")
        print(
            f"(c) checksum-carrying object: {checksum_times['checked.bin'] * 1000:.1f} ms for {args.mib} MiB, "
            f"{checksum_times['small-checked.bin'] * 1000:.1f} ms for 1 MiB "
            f"(ratio {checksum_times['checked.bin'] / checksum_times['small-checked.bin']:.2f}); "
            f"body bytes read: {body_read}"
        )
    finally:
        proc.stop()


if __name__ == "__main__":
    main()
