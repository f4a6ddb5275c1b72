"""Peak memory of `modelreg fetch` for a large object, against a plain boto3 download of the same object.

Each download runs in a fresh process of its own (moto's S3 in another), which reports its peak
resident set size (VmHWM); printed with the ratio against the baseline measured in the same run:
  (a) boto3 `download_file` of the object (the baseline)
  (b) `modelreg fetch`: pinned ranged reads, hashed as written, verified, renamed into place
  (c) an interpreter that only imported what (b) imports: the floor under both

Usage: python benchmarks/fetch_memory.py [--mib 1024]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig

from modelreg.sandbox.harness import S3Process

MIB = 1 << 20
BUCKET, KEY = "bench", "large/model.bin"


class Generated:
    """`size` pseudo-random bytes made on the fly (never all in this process's memory), hashed as read."""

    def __init__(self, size: int) -> None:
        self.size, self.position, self.digest = size, 0, hashlib.sha256()
        self.block = os.urandom(MIB)

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.position if n is None or n < 0 else min(n, self.size - self.position)
        out = bytearray()
        while len(out) < n:
            offset = (self.position + len(out)) % MIB
            out += self.block[offset : offset + n - len(out)]
        self.position += n
        self.digest.update(out)
        return bytes(out)


def child(mode: str, sha256: str, to: str) -> None:
    """One measurement, in its own process: prints peak RSS (bytes) and seconds as JSON."""
    from modelreg.domain.consumption import Pinned
    from modelreg.storage import fetching

    start = time.perf_counter()
    if mode == "baseline":
        Path(to).mkdir()
        boto3.client("s3").download_file(BUCKET, KEY, str(Path(to) / "model.bin"))
    elif mode == "fetch":
        fetched = fetching.fetch(Pinned(f"s3://{BUCKET}/{KEY}", sha256), Path(to))
        assert fetched.sha256 == sha256
    seconds = time.perf_counter() - start
    print(json.dumps({"peak": peak_rss(), "seconds": seconds}))


def peak_rss() -> int:
    """This process's peak resident set (VmHWM), in bytes. Not ru_maxrss: Linux carries that over
    exec from the forking parent, so a child would report at least its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def measure(mode: str, sha256: str, to: Path) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--sha256", sha256, "--to", str(to)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--child", choices=["baseline", "fetch", "imports"], help=argparse.SUPPRESS)
    parser.add_argument("--sha256", help=argparse.SUPPRESS)
    parser.add_argument("--to", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.sha256, args.to)
        return

    size = args.mib * MIB
    proc = S3Process().start()
    os.environ.update(proc.environment())
    work = Path(tempfile.mkdtemp(prefix="fetch-memory-"))
    try:
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        source = Generated(size)
        s3.upload_fileobj(source, BUCKET, KEY, Config=TransferConfig(multipart_chunksize=64 * MIB))
        sha256 = source.digest.hexdigest()
        imports = measure("imports", sha256, work / "none")
        baseline = measure("baseline", sha256, work / "baseline")
        shutil.rmtree(work / "baseline")
        fetched = measure("fetch", sha256, work / "fetched")
        ratio = fetched["peak"] / baseline["peak"]
        print(f"object: {args.mib} MiB (multipart upload: no full-object checksum), {os.cpu_count()} cores")
        print(f"(a) boto3 download_file      peak RSS {baseline['peak'] / MIB:7.1f} MiB  {baseline['seconds']:6.1f} s")
        print(
            f"(b) modelreg fetch (verified) peak RSS {fetched['peak'] / MIB:7.1f} MiB  {fetched['seconds']:6.1f} s"
            f"  ratio (b)/(a) {ratio:.2f}"
        )
        print(
            f"(c) imports only              peak RSS {imports['peak'] / MIB:7.1f} MiB"
            f"  above it: (a) {(baseline['peak'] - imports['peak']) / MIB:.1f} MiB,"
            f" (b) {(fetched['peak'] - imports['peak']) / MIB:.1f} MiB"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        proc.stop()


if __name__ == "__main__":
    main()
