"""Artifact verification throughput against a local S3 endpoint (moto server, own process).

Prints ratios against baselines measured in the same run (this machine is noisy):
  (a) streamed verification / plain streamed download of the same object (target >= 0.9)
  (b) hashlib sha256 in memory, for reference
  (c) a checksum-carrying object: time and body bytes read (target: 0 bytes, flat in size)
  (d) a 32-member directory: verified side by side / member by member (target >= 2)

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
from modelreg.sandbox.harness import S3Process
from modelreg.storage.s3 import ObjectStore, make_client

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
    parser.add_argument("--chunk-mib", type=int, default=1, help="verification.chunkSizeBytes, in MiB")
    parser.add_argument("--range-streams", type=int, default=4, help="verification.rangeStreams")
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
        store = ObjectStore(make_client(), chunk_size=args.chunk_mib * CHUNK, range_streams=args.range_streams)
        plain = Location("bench", "plain.bin")

        def download() -> None:
            body = store.client.get_object(Bucket="bench", Key="plain.bin")["Body"]
            while body.read(CHUNK):
                pass

        def verify() -> None:  # what the operator does with a single object: ranged reads side by side
            digest, read = store.ranged_sha256(plain, size, store.snapshot(plain).etag)
            assert digest == expected and read == size

        def verify_one_stream() -> None:
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
        t_one_stream = Timing(args.repeat, verify_one_stream, proc.pid)
        t_hash = Timing(args.repeat, lambda: hashlib.sha256(data).hexdigest(), proc.pid)

        def by_checksum(key: str) -> tuple[str, str, int]:
            location = Location("bench", key)
            return store.digest(location, store.snapshot(location))

        checksum_times = {
            key: statistics.median([best_of(1, lambda k=key: by_checksum(k)) for _ in range(5)])
            for key in ("checked.bin", "small-checked.bin")
        }
        digest, method, body_read = by_checksum("checked.bin")

        member_bytes = os.urandom(CHUNK)  # 32 x 1 MiB, no checksums: each member is read and hashed
        for i in range(32):
            s3.put_object(Bucket="bench", Key=f"dir/part-{i:02d}", Body=member_bytes)
        directory = Location("bench", "dir/")
        snapshot = store.snapshot(directory)

        def side_by_side() -> None:
            store.digest(directory, snapshot)

        assert not any(m.may_carry_sha256 for m in snapshot.members)  # so a member's work is one GET

        def member_by_member() -> None:  # the same work for each member, one member at a time
            for member in snapshot.members:
                store.stream_sha256(Location("bench", "dir/" + member.key), member.etag)

        t_side, t_serial_dir = (
            Timing(args.repeat, side_by_side, proc.pid),
            Timing(args.repeat, member_by_member, proc.pid),
        )
        assert digest == expected and method == "S3Checksum"

        ideal = max(t_download.seconds, t_hash.seconds)  # perfect overlap, given spare cores
        print(f"object: {args.mib} MiB, best of {args.repeat}, {os.cpu_count()} cores shared with the S3 server")
        print(f"(a) plain streamed download          {t_download.describe(size)}  (baseline)")
        print(
            f"    streamed verification (overlap)  {t_verify.describe(size)}  "
            f"ratio {t_download.seconds / t_verify.seconds:.2f} (target >= 0.90)"
        )
        print(
            f"    one stream, hashed as it arrives {t_one_stream.describe(size)}  "
            f"ratio {t_download.seconds / t_one_stream.seconds:.2f}"
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
        print(
            f"(d) 32 x 1 MiB directory: side by side {t_side.seconds * 1000:.0f} ms, member by member "
            f"{t_serial_dir.seconds * 1000:.0f} ms: {t_serial_dir.seconds / t_side.seconds:.2f}x faster (target >= 2)"
        )
        # moto serves requests under one GIL, the client (botocore) under another
        for label, timing in (("side by side", t_side), ("member by member", t_serial_dir)):
            print(f"    {label:16} cores busy: client {timing.client_cores:.2f}, S3 server {timing.server_cores:.2f}")
        serial_cores = t_serial_dir.client_cores + t_serial_dir.server_cores
        print(
            f"    ceiling here: member by member already keeps {serial_cores:.2f} cores busy, so side by side "
            f"can be at most {os.cpu_count() / serial_cores:.2f}x faster on {os.cpu_count()} cores"
        )
    finally:
        proc.stop()


if __name__ == "__main__":
    main()
