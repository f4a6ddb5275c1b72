"""`modelreg sandbox`: the whole registry on loopback, for a machine with no cluster.

Starts the API emulator (clearly an emulator: see modelreg.testing.apiserver), moto's S3
and the real operator, writes a kubeconfig for kubectl, and runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from modelreg import logs
from modelreg.config import Settings
from modelreg.testing.harness import EmulatedCluster, OperatorThread, S3Endpoint

CRDS = Path(__file__).resolve().parents[3] / "crds"


def crd_files() -> list[Path]:
    files = sorted(CRDS.glob("*.yaml"))
    if not files:
        raise SystemExit(f"modelreg sandbox: no CRDs found in {CRDS} (run it from a clone of the repository)")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelreg sandbox", description=__doc__)
    parser.add_argument("--dir", default=".sandbox", help="where the kubeconfig goes (default: %(default)s)")
    parser.add_argument("--api-port", type=int, default=0, help="emulated API server port (default: any free)")
    parser.add_argument("--s3-port", type=int, default=0, help="S3 endpoint port (default: any free)")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--bucket", default="models", help="bucket created at start (default: %(default)s)")
    args = parser.parse_args(argv)

    logs.configure("INFO")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines
    workdir = Path(args.dir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = EmulatedCluster(crd_files(), port=args.api_port or None).start()
    s3 = S3Endpoint(port=args.s3_port or None).start()
    os.environ.update(s3.environment())
    kubeconfig = cluster.write_kubeconfig(workdir / "kubeconfig", namespace=args.namespace)
    os.environ["KUBECONFIG"] = str(kubeconfig)
    import boto3  # after the environment points at the sandbox's S3

    boto3.client("s3").create_bucket(Bucket=args.bucket)
    operator = OperatorThread(Settings(), [args.namespace]).start()

    print(
        f"""modelreg sandbox is running (an EMULATED Kubernetes API, not a real cluster).
  API server : {cluster.url}
  S3 endpoint: {s3.url}  (bucket s3://{args.bucket})
  Try:
    export KUBECONFIG={kubeconfig} AWS_ENDPOINT_URL_S3={s3.url} AWS_ACCESS_KEY_ID=testing \\
           AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
    kubectl get modelversions
Press Ctrl-C to stop.""",
        flush=True,
    )

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    print("stopping: operator, S3, API emulator", file=sys.stderr)
    operator.stop()
    s3.stop()
    cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
