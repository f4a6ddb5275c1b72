"""`modelreg sandbox [--demo]`: the whole registry on loopback, for a machine with no cluster.

Starts the API emulator (an EMULATOR: see modelreg.sandbox.apiserver), moto's S3, a stand-in
Deployment controller and the real operator; writes kubeconfigs for kubectl and
`kubectl modelreg`; runs until Ctrl-C. `--demo` walks register -> verify -> promote ->
approve -> rollout -> rollback and stops.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from modelreg import logs
from modelreg.config import InvalidConfiguration, Settings, load_settings
from modelreg.sandbox.bootstrap import EnsureExists, owned_by_release, sandbox_rbac
from modelreg.sandbox.harness import (
    ADMIN,
    OPERATOR_USER,
    EmulatedCluster,
    OperatorThread,
    S3Endpoint,
    rbac_documents,
)
from modelreg.sandbox.keys import write_seal_key

# The repository's CRDs: beside the package in a clone (editable install), else the working directory.
CRDS = next(
    (p for p in (Path(__file__).resolve().parents[3] / "crds", Path.cwd() / "crds") if p.is_dir()),
    Path.cwd() / "crds",
)
NAMESPACE = "default"
USERS = ("alice", "bob", "carol", "dave")


def crd_files() -> list[Path]:
    files = sorted(CRDS.glob("*.yaml"))
    if not files:
        raise SystemExit(f"modelreg sandbox: no CRDs found in {CRDS} (run it from a clone of the repository)")
    return files


class Sandbox:
    def __init__(self, workdir: Path, api_port: int | None = None, s3_port: int | None = None) -> None:
        self.workdir = workdir
        self.cluster = EmulatedCluster(crd_files(), port=api_port)
        # For `helm install modelreg charts/modelreg -n modelreg-system` to adopt (bootstrap.py)
        self.cluster.crds = [owned_by_release(crd) for crd in self.cluster.crds]
        self.s3 = S3Endpoint(port=s3_port)
        self.parts: list = []

    def start(self, bucket: str) -> Sandbox:
        from modelreg.sandbox.deployments import SimulatedDeploymentController  # imports `kubernetes`

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.parts.append(self.cluster.start())
        self.parts.append(self.s3.start())
        os.environ.update(self.s3.environment())
        self.kubeconfig = self.cluster.write_kubeconfig(self.workdir / "kubeconfig", NAMESPACE, user=ADMIN)
        for user in USERS:  # one identity each: distinct approvers, and dave who may not approve
            self.cluster.write_kubeconfig(self.workdir / f"kubeconfig-{user}", NAMESPACE, user=user)
        # The operator has an identity of its own: only it may write status.
        self.cluster.write_kubeconfig(self.workdir / "kubeconfig-operator", NAMESPACE, user=OPERATOR_USER)
        rbac = sandbox_rbac(rbac_documents())
        self.cluster.grant_demo_users(rbac)
        self.parts.append(EnsureExists(self.cluster.configuration(ADMIN), [*self.cluster.crds, *rbac]).start())
        import boto3  # after the environment points at the sandbox's S3

        boto3.client("s3").create_bucket(Bucket=bucket)
        # Approvals are sealed as on a cluster: the operator's webhook (self-signed, on loopback)
        # is called by the emulator; the seal key is made for this run.
        settings = Settings(
            approvals={"seal_key_file": str(write_seal_key(self.workdir / "seal.key", secrets.token_bytes(32)))},
            promotions={"tick_seconds": 0.5},
            storage={"allowed_prefixes": {"*": [f"s3://{bucket}/"]}},  # every namespace: the sandbox's bucket
        )
        # Every namespace, as `modelreg-operator run --all-namespaces` on a cluster.
        self.parts.append(SimulatedDeploymentController(self.cluster.configuration(ADMIN), None, period=0.3).start())
        self.operator = OperatorThread(settings, []).start()
        self.parts.append(self.operator)
        return self

    def stop(self) -> None:
        for part in reversed(self.parts):
            part.stop()
        self.parts.clear()


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def run_cli(*args: str, user: str | None = None, workdir: Path) -> int:
    from modelreg.cli.main import main as kubectl_modelreg

    kubeconfig = workdir / (f"kubeconfig-{user}" if user else "kubeconfig")
    print(f"$ kubectl modelreg {' '.join(args)}" + (f"   # as {user}" if user else ""), flush=True)
    return kubectl_modelreg([*args, "--kubeconfig", str(kubeconfig)])


def run_fetch(*args: str, workdir: Path) -> int:
    from modelreg.cli.fetch import main as modelreg_fetch

    print(f"$ modelreg fetch {' '.join(args)}", flush=True)
    return modelreg_fetch([*args, "--kubeconfig", str(workdir / "kubeconfig")])


def wait(what: str, probe: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: timed out waiting for {what}")
        time.sleep(0.3)


def demo(sandbox: Sandbox, bucket: str) -> None:
    import kubernetes

    from modelreg.sandbox.deployments import FAIL_VERSIONS
    from modelreg.storage.kube_client import KubeClient

    workdir = sandbox.workdir
    kube = KubeClient(str(sandbox.kubeconfig), None)
    apps = kubernetes.client.AppsV1Api(kube.client)

    def reason(plural: str, name: str, type_: str) -> str | None:
        obj = kube.get(plural, NAMESPACE, name)
        found = [c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_]
        return found[0]["reason"] if found else None

    artifacts = Path(tempfile.mkdtemp(prefix="modelreg-demo-"))
    (artifacts / "fraud-v1.onnx").write_bytes(b"fraud model v1 " * 1000)
    (artifacts / "fraud-v2").mkdir()
    (artifacts / "fraud-v2" / "model.onnx").write_bytes(b"fraud model v2 " * 1000)
    (artifacts / "fraud-v2" / "config.json").write_text('{"threshold": 0.7}')

    say("Register two versions (upload with SHA-256 checksums, apply the ModelVersion)")
    run_cli(
        "register",
        "fraud",
        "--version",
        "1",
        "--file",
        str(artifacts / "fraud-v1.onnx"),
        "--to",
        f"s3://{bucket}/fraud/1/",
        "--metric",
        "auc=0.91",
        "--run-id",
        "run-001",
        "--apply",
        workdir=workdir,
    )
    run_cli(
        "register",
        "fraud",
        "--version",
        "2",
        "--dir",
        str(artifacts / "fraud-v2"),
        "--to",
        f"s3://{bucket}/fraud/2/",
        "--metric",
        "auc=0.93",
        "--parent",
        "1",
        "--run-id",
        "run-002",
        "--apply",
        workdir=workdir,
    )
    wait(
        "verification",
        lambda: all(reason("modelversions", f"fraud-v{v}", "ArtifactVerified") == "Verified" for v in (1, 2)),
    )
    run_cli("list", "fraud", workdir=workdir)

    say("A serving Deployment opts in (label modelreg.io/model=fraud; it fails any rollout to v2)")
    apps.create_namespaced_deployment(
        NAMESPACE,
        {
            "metadata": {
                "name": "fraud-scorer",
                "labels": {"modelreg.io/model": "fraud"},
                "annotations": {FAIL_VERSIONS: "2"},
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "fraud-scorer"}},
                "template": {
                    "metadata": {"labels": {"app": "fraud-scorer"}},
                    "spec": {"containers": [{"name": "server", "image": "example/fraud-scorer:1"}]},
                },
            },
        },
    )

    say("Promote v1 to Production: it waits for 2 approvals")
    run_cli(
        "promote",
        "fraud",
        "1",
        "--to",
        "Production",
        "--reason",
        "first release",
        "--apply",
        user="alice",
        workdir=workdir,
    )
    wait(
        "AwaitingApproval",
        lambda: reason("modelpromotions", "fraud-v1-to-production", "Succeeded") == "AwaitingApproval",
    )
    say("The admission webhook refuses a self-approval, and an approval by dave (no `approve` permission)")
    run_cli("approve", "fraud-v1-to-production", user="alice", workdir=workdir)
    run_cli("approve", "fraud-v1-to-production", user="dave", workdir=workdir)
    say("bob and carol approve: each approval is sealed to v1's exact bytes")
    run_cli("approve", "fraud-v1-to-production", user="bob", workdir=workdir)
    run_cli("approve", "fraud-v1-to-production", user="carol", workdir=workdir)
    wait("v1 promoted", lambda: reason("modelpromotions", "fraud-v1-to-production", "Succeeded") == "Promoted")
    run_cli("status", "fraud-v1-to-production", workdir=workdir)
    say("What CI/CD and serving pods consume: the proven artifact, its bytes checked before they appear")
    run_cli("resolve", "fraud@production", "-o", "json", workdir=workdir)
    run_fetch("fraud@production", "--to", str(artifacts / "serving"), workdir=workdir)

    say("Promote v2: its rollout fails (ProgressDeadlineExceeded), so the operator rolls back to v1")
    run_cli(
        "promote",
        "fraud",
        "2",
        "--to",
        "Production",
        "--criteria",
        "auc~0.01",
        "--apply",
        user="alice",
        workdir=workdir,
    )
    run_cli("approve", "fraud-v2-to-production", user="bob", workdir=workdir)
    run_cli("approve", "fraud-v2-to-production", user="carol", workdir=workdir)
    wait(
        "v2 rolled back",
        lambda: reason("modelpromotions", "fraud-v2-to-production", "Succeeded") in ("RolledBack", "Promoted"),
    )
    run_cli("status", "fraud-v2-to-production", workdir=workdir)
    served = apps.read_namespaced_deployment("fraud-scorer", NAMESPACE).spec.template.metadata.annotations
    print(f"fraud-scorer serves version {served.get('modelreg.io/version')}")

    say("The whole story")
    run_cli("history", "fraud", workdir=workdir)
    run_cli("diff", "fraud", "1", "2", workdir=workdir)
    run_cli("lineage", "fraud", "2", workdir=workdir)
    say("Demo complete.")
    print(
        "To look at the registry in a browser: `modelreg sandbox` (without --demo), then, with the export line "
        "it prints,\n  kubectl modelreg ui --as bob      # models, charts, timelines; Approve as bob",
        flush=True,
    )


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the sandbox like Ctrl-C, wherever the main thread is


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelreg", description="modelreg utilities")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sandbox", help=__doc__.splitlines()[0])
    p.add_argument("--demo", action="store_true", help="run the guided demo, then stop")
    p.add_argument("--dir", default=".sandbox", help="where the kubeconfigs go (default: %(default)s)")
    p.add_argument("--api-port", type=int, help="emulated API server port (default: any free)")
    p.add_argument("--s3-port", type=int, help="S3 endpoint port (default: any free)")
    p.add_argument("--bucket", default="models", help="bucket created at start (default: %(default)s)")
    p.add_argument("--log-level", default="WARNING", help="operator log level (default: %(default)s)")
    args = parser.parse_args(argv)

    try:
        load_settings()  # MODELREG_CONFIG and MODELREG_*: a wrong one is one line, before anything starts
    except InvalidConfiguration as exc:
        print(f"modelreg sandbox: invalid configuration: {exc}", file=sys.stderr)
        return 2
    workdir = Path(args.dir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    # The story on the terminal, the operator's JSON log lines (and library tracebacks) in a file.
    logs.configure(args.log_level, str(workdir / "operator.log"))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines
    # kopf warns that it runs outside the main thread (the sandbox's own choice): not the newcomer's concern
    logging.getLogger("kopf._core.reactor.running").setLevel(logging.ERROR)
    # The official client reads $KUBECONFIG once, at import: set it before anything imports it.
    # In this process that is the operator's identity; people use the kubeconfigs by name.
    os.environ["KUBECONFIG"] = str(workdir / "kubeconfig-operator")
    sandbox = Sandbox(workdir, args.api_port, args.s3_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started with SIGINT ignored (e.g. `cmd &` in a script)
    try:
        sandbox.start(args.bucket)
        print(
            f"""modelreg sandbox is running (an EMULATED Kubernetes API, not a real cluster).
  API server : {sandbox.cluster.url}
  S3 endpoint: {sandbox.s3.url}  (bucket s3://{args.bucket})
  Metrics    : http://127.0.0.1:{sandbox.operator.settings.metrics.port}/metrics
  Logs       : {workdir}/operator.log
  Point your tools at it (kubectl modelreg included):
    export PATH={Path(sys.executable).parent}:$PATH KUBECONFIG={sandbox.kubeconfig} \\
           AWS_ENDPOINT_URL_S3={sandbox.s3.url} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \\
           AWS_REGION=us-east-1
    kubectl get modelversions,modelpromotions
    kubectl modelreg list
    kubectl modelreg ui --as bob     # the web interface, acting as bob (prints its URL)""",
            flush=True,
        )
        if args.demo:
            demo(sandbox, args.bucket)
        else:
            print("Press Ctrl-C to stop.", flush=True)
            stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping: operator, Deployment controller, S3, API emulator", file=sys.stderr, flush=True)
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(cli(["sandbox", *sys.argv[1:]]))
