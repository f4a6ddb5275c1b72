"""Scale: N ModelVersions over K namespaces plus P promotions; the operator's time to verify all,
idle CPU and RSS, each next to a no-op kopf operator (one event handler) on the same emulator in
the same run; then approval -> all Deployments patched for P promotions in the first namespace, by
an operator (with its webhook) that watches all K, next to the emulator's write -> watch round trip
(benchmarks/promotion_latency.py's rounds).

The operator under test runs in its own process (so its CPU and memory are its own); the API
emulator runs in this process, moto in another. Artifacts carry an S3 SHA-256 checksum, so each
verification is one HEAD and one status patch.

Last, the floor: the contract's I/O for each version (one HEAD, one status patch, one Event)
made by a bare client in a process of its own (raw HTTP on kept-alive connections, no decisions,
no watches of its own), so "how close can any operator get here" is measured, not guessed.

Usage: python benchmarks/scale.py [--versions 1000] [--namespaces 10] [--promotions 20] [--idle 15] [--labelled]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import kubernetes
import requests

import promotion_latency
from modelreg.sandbox.harness import ADMIN, OPERATOR_USER, EmulatedCluster, S3Process, free_port
from modelreg.sandbox.keys import TEST_SEAL_KEY

ROOT = Path(__file__).resolve().parent.parent
CRD_FILES = sorted((ROOT / "crds").glob("*.yaml"))

NOOP = """
import sys, kopf
seen = set()
@kopf.on.event("modelreg.io", "v1alpha1", "modelversions")
def count(body, **_):
    seen.add(body["metadata"]["uid"])
    if len(seen) == int(sys.argv[1]):
        print("ALL", flush=True)
@kopf.on.startup()
def configure(settings, **_):
    settings.scanning.disabled = True  # exact namespaces, as modelreg's own settings do
kopf.run(standalone=True, namespaces=sys.argv[2].split(","))
"""

MODELREG = """
import sys
from modelreg.config import Settings
from modelreg.main import run_operator
# chart: the chart's configurations spare the operator's own writes, so no webhook is asked for them;
# managed: the operator serves its webhook and keeps the configurations itself (self-signed mode)
managed = {"addr": "127.0.0.1", "host": "127.0.0.1", "port": int(sys.argv[5])}
webhook = {"managed": None} if sys.argv[4] == "chart" else managed
settings = Settings(
    approvals={"seal_key_file": sys.argv[3]}, webhook=webhook, metrics={"port": 0},
    verification={"recheck_seconds": 600},
)
run_operator(settings, sys.argv[2].split(","))
"""


FLOOR = """
import http.client, json, ssl, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
api, s3, n, namespaces, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(","), int(sys.argv[5])
tls = ssl.create_default_context(cafile=sys.argv[6])  # the emulator's CA
local = threading.local()
# moto checks no signature; the header only tells it which service is asked
S3_AUTH = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"
KUBE = {"Authorization": "Bearer " + sys.argv[7]}  # the operator's token

def connection(url):
    if not hasattr(local, url):
        setattr(local, url, http.client.HTTPSConnection(url.removeprefix("https://"), context=tls)
                if url.startswith("https://") else http.client.HTTPConnection(url.removeprefix("http://")))
    return getattr(local, url)

def ask(url, method, path, body=None, headers={}):
    c = connection(url)
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = c.getresponse()
    r.read()
    if r.status >= 300:
        raise RuntimeError(f"{method} {path}: {r.status}")

def head(i):
    ask(s3, "HEAD", f"/models/m/{i}", headers={"Authorization": S3_AUTH, "x-amz-checksum-mode": "ENABLED"})

def write(i):
    ns, name, now = namespaces[i % len(namespaces)], f"m-v{i}", time.strftime("%Y-%m-%dT%H:%M:%SZ")
    message = f"floor {time.monotonic_ns()}"  # each pass a real change
    condition = {"status": "True", "reason": "Verified", "message": message, "lastTransitionTime": now}
    status = {"status": {"observedGeneration": 1, "conditions": [
        {"type": "ArtifactVerified", **condition}, {"type": "Ready", **condition}]}}
    ask(api, "PATCH", f"/apis/modelreg.io/v1alpha1/namespaces/{ns}/modelversions/{name}/status", status,
        {**KUBE, "Content-Type": "application/merge-patch+json"})
    event = {"metadata": {"generateName": f"{name}."}, "type": "Normal", "reason": "Verified", "message": "floor",
             "involvedObject": {"apiVersion": "modelreg.io/v1alpha1", "kind": "ModelVersion", "namespace": ns,
                                "name": name}}
    ask(api, "POST", f"/api/v1/namespaces/{ns}/events", event, {**KUBE, "Content-Type": "application/json"})

def both(i):
    head(i)
    write(i)

for each in (both, head, write):  # the floor, then what each side of it costs alone
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(each, range(n)))
    print(time.monotonic() - started)
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class VerifiedCounter:
    """Counts verified ModelVersions from one cluster-wide watch (no listing load on the emulator)."""

    def __init__(self, cluster: EmulatedCluster) -> None:
        self.verified: set[str] = set()
        threading.Thread(target=self._run, args=(cluster,), daemon=True).start()

    def _run(self, cluster: EmulatedCluster) -> None:
        with requests.get(
            f"{cluster.url}/apis/modelreg.io/v1alpha1/modelversions",
            params={"watch": "true"},
            headers=cluster.headers(ADMIN),
            verify=cluster.ca_file,
            stream=True,
        ) as r:
            for line in r.iter_lines():
                if line:
                    item = json.loads(line)["object"]
                    conditions = (item.get("status") or {}).get("conditions") or []
                    if any(c["type"] == "ArtifactVerified" and c["status"] == "True" for c in conditions):
                        self.verified.add(item["metadata"]["uid"])


def measure(name: str, argv: list[str], env: dict, done, idle: float, cluster: EmulatedCluster) -> dict[str, float]:
    requests0 = cluster.api.requests_served
    started = time.monotonic()
    log = Path(tempfile.mkstemp(prefix=f"modelreg-scale-{name}-", suffix=".log")[1])
    with log.open("w") as stderr:
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        while not done(process):
            if process.poll() is not None:
                tail = "\n".join(log.read_text().splitlines()[-20:])
                raise RuntimeError(f"{name} exited with {process.returncode}; the end of {log}:\n{tail}")
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        busy_cpu = promotion_latency.cpu_seconds(process.pid) / elapsed
        requests = cluster.api.requests_served - requests0
        time.sleep(2)  # settle: trailing writes and their echoes
        before, t0 = promotion_latency.cpu_seconds(process.pid), time.monotonic()
        time.sleep(idle)
        idle_cpu = (promotion_latency.cpu_seconds(process.pid) - before) / (time.monotonic() - t0)
        idle_requests = cluster.api.requests_served - requests0 - requests
        return {
            "requests": requests,
            "idle_requests_per_s": idle_requests / idle,
            "seconds": elapsed,
            "busy_cpu": busy_cpu,
            "idle_cpu": idle_cpu,
            "rss_mib": rss_mib(process.pid),
        }
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--promotions", type=int, default=20, help="rounds of approval -> Deployments patched")
    parser.add_argument("--idle", type=float, default=15.0)
    parser.add_argument(
        "--labelled",
        action="store_true",
        help="versions carry modelreg.io/model, as the label-versions webhook sets it at creation on a cluster "
        "(here they are created past admission, so by default the operator writes the label)",
    )
    parser.add_argument(
        "--webhooks",
        choices=("chart", "managed"),
        default="chart",
        help="chart: the Helm chart's webhook configurations (the operator's own writes skip them); "
        "managed: self-signed mode, the operator serves and keeps the configurations itself",
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="modelreg-scale-"))
    kubeconfig, seal = workdir / "kubeconfig", workdir / "seal.key"
    seal.write_bytes(TEST_SEAL_KEY)
    cluster = EmulatedCluster(CRD_FILES).start()
    cluster.grant_demo_users()
    cluster.write_kubeconfig(kubeconfig, user=OPERATOR_USER)
    s3 = S3Process().start()
    env = {**os.environ, **s3.environment(), "KUBECONFIG": str(kubeconfig)}
    namespaces = [f"team-{i}" for i in range(args.namespaces)]
    try:
        client = boto3.client(
            "s3",
            endpoint_url=s3.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_bucket(Bucket="models")
        custom = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(cluster.configuration(ADMIN)))

        def create(i: int) -> None:
            data = f"weights {i}".encode()
            client.put_object(Bucket="models", Key=f"m/{i}", Body=data, ChecksumAlgorithm="SHA256")
            ns = namespaces[i % len(namespaces)]
            body = {
                "apiVersion": "modelreg.io/v1alpha1",
                "kind": "ModelVersion",
                "metadata": {"name": f"m-v{i}", **({"labels": {"modelreg.io/model": "m"}} if args.labelled else {})},
                "spec": {
                    "modelName": "m",
                    "version": i + 1,
                    "artifact": {"uri": f"s3://models/m/{i}", "sha256": hashlib.sha256(data).hexdigest()},
                },
            }
            custom.create_namespaced_custom_object("modelreg.io", "v1alpha1", ns, "modelversions", body)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(args.versions)))

        noop_file = workdir / "noop.py"
        noop_file.write_text(textwrap.dedent(NOOP))
        lines: list[str] = []

        def noop_done(process: subprocess.Popen) -> bool:
            lines.append(process.stdout.readline())
            return "ALL" in lines[-1]

        noop = measure(
            "no-op",
            [sys.executable, str(noop_file), str(args.versions), ",".join(namespaces)],
            env,
            noop_done,
            args.idle,
            cluster,
        )
        print(f"no-op kopf operator: {noop}", flush=True)  # kept if the next phase does not finish
        counter = VerifiedCounter(cluster)
        modelreg_file = workdir / "modelreg_op.py"
        modelreg_file.write_text(textwrap.dedent(MODELREG))
        ours = measure(
            "modelreg",
            [
                *(sys.executable, str(modelreg_file), str(args.versions), ",".join(namespaces), str(seal)),
                *(args.webhooks, str(free_port())),
            ],
            env,
            lambda _: len(counter.verified) >= args.versions,
            args.idle,
            cluster,
        )
        if args.webhooks == "managed":  # its configurations stay (fail closed) pointing at its stopped server
            admission = kubernetes.client.AdmissionregistrationV1Api(
                kubernetes.client.ApiClient(cluster.configuration(ADMIN))
            )
            for config in admission.list_validating_webhook_configuration().items:
                admission.delete_validating_webhook_configuration(config.metadata.name)
            for config in admission.list_mutating_webhook_configuration().items:
                admission.delete_mutating_webhook_configuration(config.metadata.name)
        # Before the floor, whose writes carry no seal: an operator would re-verify them all.
        latency = promotion_latency.measure(
            cluster,
            s3.environment(),
            kubeconfig,
            namespaces,
            namespaces[0],
            args.promotions,
            args.promotions,
            webhooks=args.webhooks,
        )
        floor_file = workdir / "floor.py"
        floor_file.write_text(textwrap.dedent(FLOOR))
        run = subprocess.run(
            [
                *(sys.executable, str(floor_file), cluster.url, s3.url, str(args.versions), ",".join(namespaces)),
                *("16", cluster.ca_file, cluster.token(OPERATOR_USER)),
            ],
            capture_output=True,
            text=True,
        )
        if run.returncode:
            raise RuntimeError(f"the floor's client failed:\n{run.stderr[-2000:]}")
        floor, heads, writes = map(float, run.stdout.split())
    finally:
        s3.stop()
        cluster.stop()
    n = args.versions
    print(f"{n} ModelVersions over {args.namespaces} namespaces (same emulator, same run), webhooks: {args.webhooks}")
    print(f"{'':28}{'modelreg':>12}{'no-op kopf':>12}{'ratio':>8}")
    rows = [
        ("time to verify / see all (s)", ours["seconds"], noop["seconds"]),
        ("versions per second", n / ours["seconds"], n / noop["seconds"]),
        ("CPU until then (% of a core)", 100 * ours["busy_cpu"], 100 * noop["busy_cpu"]),
        ("idle CPU (% of a core)", 100 * ours["idle_cpu"], 100 * noop["idle_cpu"]),
        ("RSS (MiB)", ours["rss_mib"], noop["rss_mib"]),
        ("API requests per version", ours["requests"] / n, noop["requests"] / n),
        ("idle API requests per s", ours["idle_requests_per_s"], noop["idle_requests_per_s"]),
    ]
    for label, a, b in rows:
        print(f"{label:28}{a:12.2f}{b:12.2f}{(a / b if b else float('nan')):8.2f}")
    print(
        f"floor: the contract's I/O alone (HEAD + status patch + Event per version, bare client, 16 threads): "
        f"{floor:.2f} s, {floor / noop['seconds']:.2f}x the no-op (target for modelreg: <= 1.5x); "
        f"modelreg takes {ours['seconds'] / floor:.2f}x the floor"
    )
    print(f"  of which alone: the HEADs (moto) {heads:.2f} s, the status patches and Events (emulator) {writes:.2f} s")
    latency.report(
        f"{args.promotions} promotions in {namespaces[0]} ({n // len(namespaces) + args.promotions} versions there), "
        f"by an operator watching all {len(namespaces)} namespaces, webhooks "
        + ("as the chart configures them" if args.webhooks == "chart" else "managed by the operator (self-signed)")
    )


if __name__ == "__main__":
    main()
