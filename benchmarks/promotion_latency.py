"""Promotion latency: from the last approval annotation to every matching Deployment patched.

With --versions ModelVersions present (default 200) and --deployments serving Deployments,
each round promotes the next version to Production (1 approval required) and times the
approval -> all Deployments carrying the new version. The baseline, measured in the same run,
is the emulator's own create -> watch-event round trip: the floor any operator could reach.
The operator and moto run in processes of their own, as in production (sharing this process's
GIL with the emulator would time the GIL); the emulator and the simulated Deployment controller
(the "cluster") run here.

Usage: python benchmarks/promotion_latency.py [--versions 200] [--rounds 20] [--deployments 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

# The official client reads $KUBECONFIG at import: point it at this run's emulator first.
KUBECONFIG = Path(tempfile.mkdtemp(prefix="modelreg-bench-")) / "kubeconfig"
os.environ["KUBECONFIG"] = str(KUBECONFIG)

import boto3
import kubernetes
import requests

from modelreg.sandbox.deployments import SimulatedDeploymentController
from modelreg.sandbox.harness import ADMIN, OPERATOR_USER, EmulatedCluster, S3Process

CRD_FILES = sorted((Path(__file__).resolve().parent.parent / "crds").glob("*.yaml"))

NS, GROUP, VERSION = "bench", "modelreg.io", "v1alpha1"
OPERATOR = """
import sys
from modelreg.config import Settings
from modelreg.main import run_operator
from modelreg.sandbox.harness import with_test_trust
settings = Settings(promotions={"tick_seconds": 1}, policy={"required_approvals": {"Production": 1}})
run_operator(with_test_trust(settings), sys.argv[1].split(","))
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Watch:
    """A watch stream in a thread; waiters are woken on every event."""

    def __init__(self, cluster: EmulatedCluster, path: str) -> None:
        self.events: list[tuple[float, dict]] = []
        self.changed = threading.Condition()
        self._stop = False
        threading.Thread(target=self._run, args=(cluster, path), daemon=True).start()

    def _run(self, cluster: EmulatedCluster, path: str) -> None:
        with requests.get(
            cluster.url + path,
            params={"watch": "true"},
            headers=cluster.headers(ADMIN),
            verify=cluster.ca_file,
            stream=True,
            timeout=600,
        ) as response:
            for line in response.iter_lines():
                if self._stop:
                    return
                if line:
                    with self.changed:
                        self.events.append((time.perf_counter(), json.loads(line)))
                        self.changed.notify_all()

    def wait(self, predicate, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for stamp, event in self.events:
                    if predicate(event):
                        return stamp
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("no matching watch event")
                self.changed.wait(remaining)


def as_the_chart_configures(admission: kubernetes.client.AdmissionregistrationV1Api, configs, operator: str) -> None:
    """The chart's matchConditions (charts/modelreg/templates/_helpers.tpl) on kopf's configurations."""
    skip = [{"name": "not-the-operator", "expression": f'request.userInfo.username != "{operator}"'}]
    for config in configs:
        webhooks = admission.api_client.sanitize_for_serialization(config)["webhooks"]
        for webhook in webhooks:
            if webhook["name"].split(".")[0] in ("check-versions", "status-modelversions", "status-modelpromotions"):
                webhook["matchConditions"] = skip
        admission.patch_validating_webhook_configuration(config.metadata.name, {"webhooks": webhooks})


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, deadline: float) -> None:
    """Until the process uses under a tenth of a core for a second (or the deadline passes)."""
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(1.0)
        if cpu_seconds(pid) - before < 0.1:
            return


@dataclass
class Latency:
    """Seconds, per round: the emulator's create -> watch round trip (baseline), approval ->
    every Deployment patched, the approval admitted, the commit point written."""

    baseline: list[float]
    patched: list[float]
    admitted: list[float]
    committed: list[float]

    def report(self, heading: str) -> None:
        b50, b99 = statistics.median(self.baseline), percentile(self.baseline, 0.99)
        p50, p99 = statistics.median(self.patched), percentile(self.patched, 0.99)
        print(heading)
        print(f"emulator create->watch round trip: p50 {b50 * 1000:7.1f} ms  p99 {b99 * 1000:7.1f} ms  (baseline)")
        print(f"approval -> all Deployments patched: p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms")
        print(f"ratio to baseline: p50 {p50 / b50:.1f}x  p99 {p99 / b99:.1f}x")
        slowest = sorted(range(len(self.patched)), key=self.patched.__getitem__)[-3:][::-1]
        print("  slowest rounds: " + ", ".join(f"#{i + 1} {self.patched[i] * 1000:.1f} ms" for i in slowest))
        print(
            f"  of which: approval admitted (webhooks) p50 {statistics.median(self.admitted) * 1000:.1f} ms, "
            f"commit point written p50 {statistics.median(self.committed) * 1000:.1f} ms"
        )
        # the contract's admission (mutating and validating webhook, a SubjectAccessReview) is a floor
        print(
            f"  admission alone is {statistics.median(self.admitted) / b50:.1f}x the round trip at p50, "
            f"{percentile(self.admitted, 0.99) / b99:.1f}x at p99 (the whole path's target: 5x / 3x)"
        )


def measure(
    cluster: EmulatedCluster,
    s3_env: dict[str, str],
    kubeconfig: Path,
    namespaces: list[str],
    ns: str,
    versions: int,
    rounds: int,
    deployments: int = 3,
    webhooks: str = "chart",
) -> Latency:
    """In namespace `ns` (one of `namespaces`, all of which an operator of its own watches, in a
    process of its own, with the webhook): `versions` versions of model "bench", `deployments`
    serving Deployments, then `rounds` promotions, each approved by bob and timed."""
    api = kubernetes.client.ApiClient(cluster.configuration(ADMIN))
    as_user = {}
    for user in ("alice", "bob"):  # the promotion's requester and its approver, through the webhook
        as_user[user] = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(cluster.configuration(user)))
    custom, apps, core = (
        kubernetes.client.CustomObjectsApi(api),
        kubernetes.client.AppsV1Api(api),
        kubernetes.client.CoreV1Api(api),
    )
    # Baseline: the emulator's create -> watch-event round trip.
    cm_watch = Watch(cluster, f"/api/v1/namespaces/{ns}/configmaps")
    baseline = []
    for i in range(rounds):
        name = f"probe-{i}"
        start = time.perf_counter()
        core.create_namespaced_config_map(ns, {"metadata": {"name": name}})
        baseline.append(cm_watch.wait(lambda e, n=name: e["object"]["metadata"]["name"] == n) - start)

    client = boto3.client(
        "s3",
        endpoint_url=s3_env["AWS_ENDPOINT_URL_S3"],
        region_name=s3_env["AWS_REGION"],
        aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"],
    )
    client.create_bucket(Bucket="bench")
    for v in range(1, versions + 1):
        body = f"v{v}".encode()
        client.put_object(Bucket="bench", Key=f"m/{v}", Body=body, ChecksumAlgorithm="SHA256")
        custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            ns,
            "modelversions",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ModelVersion",
                "metadata": {"name": f"bench-{v}"},
                "spec": {
                    "modelName": "bench",
                    "version": v,
                    "artifact": {"uri": f"s3://bench/m/{v}", "sha256": hashlib.sha256(body).hexdigest()},
                },
            },
        )
    for d in range(deployments):
        apps.create_namespaced_deployment(
            ns,
            {
                "metadata": {"name": f"serve-{d}", "labels": {"modelreg.io/model": "bench"}},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": f"serve-{d}"}},
                    "template": {
                        "metadata": {"labels": {"app": f"serve-{d}"}},
                        "spec": {"containers": [{"name": "s", "image": "s:1"}]},
                    },
                },
            },
        )
    script = kubeconfig.parent / "modelreg_operator.py"  # not operator.py: that is a stdlib module
    script.write_text(textwrap.dedent(OPERATOR))
    log = kubeconfig.parent / "operator.log"
    env = {**os.environ, **s3_env, "KUBECONFIG": str(kubeconfig)}
    with log.open("w") as stderr:
        operator = subprocess.Popen([sys.executable, str(script), ",".join(namespaces)], env=env, stderr=stderr)
    controller = SimulatedDeploymentController(cluster.configuration(ADMIN), [ns], period=0.05).start()
    try:
        deadline = time.monotonic() + 600
        while True:
            if operator.poll() is not None:
                raise RuntimeError(f"the operator exited with {operator.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the versions were not verified, or the webhook not configured; see {log}")
            items = custom.list_namespaced_custom_object(
                GROUP, VERSION, ns, "modelversions", label_selector="modelreg.io/model=bench"
            )["items"]
            verified = sum(
                any(
                    c["type"] == "ArtifactVerified" and c["status"] == "True"
                    for c in (i.get("status") or {}).get("conditions", [])
                )
                for i in items
            )
            admission = kubernetes.client.AdmissionregistrationV1Api(api)
            validating = admission.list_validating_webhook_configuration().items
            if verified == versions and validating:  # approvals are sealed and checked at admission
                if webhooks == "chart":
                    as_the_chart_configures(admission, validating, OPERATOR_USER)
                break
            time.sleep(0.5)
        settle(operator.pid, deadline)  # rounds time the steady state, not the start-up listing

        dep_watch = Watch(cluster, f"/apis/apps/v1/namespaces/{ns}/deployments")
        promo_watch = Watch(cluster, f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/modelpromotions")
        latencies, admitted, committed = [], [], []
        for r in range(rounds):
            version = r + 1
            name = f"promo-{r}-{uuid.uuid4().hex[:4]}"
            as_user["alice"].create_namespaced_custom_object(
                GROUP,
                VERSION,
                ns,
                "modelpromotions",
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "ModelPromotion",
                    "metadata": {"name": name},
                    "spec": {"modelName": "bench", "version": version, "targetStage": "Production"},
                },
            )
            while True:  # the promotion is seen and waiting for its approval
                status = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "modelpromotions", name).get("status")
                if status and status.get("approvalSummary") == "0/1":
                    break
                time.sleep(0.02)
            start = time.perf_counter()  # bob's approval: admitted and sealed by the webhook
            as_user["bob"].patch_namespaced_custom_object(
                GROUP,
                VERSION,
                ns,
                "modelpromotions",
                name,
                {"metadata": {"annotations": {"approval.modelreg.io/bob": "bob"}}},
            )
            admitted.append(time.perf_counter() - start)
            committed.append(
                promo_watch.wait(
                    lambda e, n=name: (
                        e["object"]["metadata"]["name"] == n
                        and any(
                            c["type"] == "Succeeded" and c.get("reason") == "RollingOut"
                            for c in (e["object"].get("status") or {}).get("conditions", [])
                        )
                    )
                )
                - start
            )
            patched: dict[str, float] = {}
            for d in range(deployments):
                dep = f"serve-{d}"
                patched[dep] = dep_watch.wait(
                    lambda e, n=dep, v=str(version): (
                        e["object"]["metadata"]["name"] == n
                        and (e["object"]["spec"]["template"]["metadata"].get("annotations") or {}).get(
                            "modelreg.io/version"
                        )
                        == v
                    )
                )
            latencies.append(max(patched.values()) - start)
            while True:  # let the rollout finish before the next round
                status = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "modelpromotions", name)["status"]
                if any(c["type"] == "Succeeded" and c["reason"] == "Promoted" for c in status["conditions"]):
                    break
                time.sleep(0.02)
        return Latency(baseline, latencies, admitted, committed)
    finally:
        controller.stop()
        operator.terminate()
        operator.wait(timeout=60)
        # its webhook is gone with it: left registered, every later write would be refused
        admission = kubernetes.client.AdmissionregistrationV1Api(api)
        for config in admission.list_validating_webhook_configuration().items:
            admission.delete_validating_webhook_configuration(config.metadata.name)
        for config in admission.list_mutating_webhook_configuration().items:
            admission.delete_mutating_webhook_configuration(config.metadata.name)


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--deployments", type=int, default=3)
    parser.add_argument(
        "--webhooks",
        choices=("chart", "managed"),
        default="chart",
        help="chart: the operator's own writes skip the webhooks that always allow them, as the Helm "
        "chart configures them (matchConditions); managed: self-signed mode, where the operator adds the "
        "same conditions to the configurations kopf writes",
    )
    args = parser.parse_args()

    cluster = EmulatedCluster(CRD_FILES).start()
    cluster.grant_demo_users()
    cluster.write_kubeconfig(KUBECONFIG, namespace=NS, user=OPERATOR_USER)
    s3 = S3Process().start()
    try:
        latency = measure(
            cluster, s3.environment(), KUBECONFIG, [NS], NS, args.versions, args.rounds, args.deployments, args.webhooks
        )
    finally:
        s3.stop()
        cluster.stop()
    latency.report(
        f"{args.versions} ModelVersions, {args.deployments} Deployments, {args.rounds} rounds, "
        f"webhooks {'as the chart configures them' if args.webhooks == 'chart' else 'managed by the operator'}"
    )


if __name__ == "__main__":
    main()
