"""The sandbox: starts, serves `kubectl get mv` with the CRD's columns, runs the demo, stops cleanly."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

# a forged stage, written through the status subresource (only the operator may)
FORGE_STAGE = (
    "patch",
    "mv",
    "fraud-v1",
    "--subresource=status",
    "--type=merge",
    "-p",
    '{"status":{"stage":"Production"}}',
)
MODELREG = [sys.executable, "-c", "from modelreg.sandbox.main import cli; import sys; sys.exit(cli())"]


def port_is_closed(url: str) -> bool:
    host, port = re.match(r"https?://([\d.]+):(\d+)", url).groups()
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) != 0


def urls(text: str) -> dict[str, str]:
    return {
        "api": re.search(r"API server : (https?://\S+)", text).group(1),
        "s3": re.search(r"S3 endpoint: (http://\S+)", text).group(1),
    }


def tools_env(workdir: Path, banner: str) -> dict[str, str]:
    """What the banner's `export` line sets: kubectl and AWS tooling pointed at the sandbox."""
    return {
        **os.environ,
        "KUBECONFIG": str(workdir / "kubeconfig"),
        "AWS_ENDPOINT_URL_S3": urls(banner)["s3"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }


def start_sandbox(tmp_path: Path) -> tuple[subprocess.Popen, str]:
    """`modelreg sandbox` in the background, and what it printed up to "Press Ctrl-C"."""
    sandbox = subprocess.Popen(
        [*MODELREG, "sandbox", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    banner = ""
    deadline = time.monotonic() + 60
    while "Press Ctrl-C" not in banner and time.monotonic() < deadline:
        banner += sandbox.stdout.readline()
    return sandbox, banner


def test_demo_runs_to_completion_and_leaves_nothing_behind(tmp_path):
    result = subprocess.run(
        [*MODELREG, "sandbox", "--demo", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=240, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for step in (
        "Register two versions",
        "Promote v1 to Production",
        "Status:     Promoted: v1 is Production",
        '"approvers": [\n    "bob",\n    "carol"\n  ]',  # resolve -o json, after the first promotion
        "fetched fraud v1 (Production): 1 file(s)",
        "Status:     RolledBack",
        "restored v1",
        "fraud-scorer serves version 1",
        "└── fraud v1",
        "Demo complete.",
        "kubectl modelreg ui --as bob",
    ):
        assert step in out, step
    # the webhook's denials, as the CLI prints them
    assert "alice requested promotion fraud-v1-to-production and cannot approve it" in result.stderr
    assert "dave may not approve fraud/Production in namespace default" in result.stderr
    assert all(port_is_closed(url) for url in urls(out).values())


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_sees_the_columns_meets_the_webhook_and_ctrl_c_stops_everything(tmp_path):
    sandbox, banner = start_sandbox(tmp_path)
    try:
        env = tools_env(tmp_path, banner)
        model = tmp_path / "m.onnx"
        model.write_bytes(b"weights")
        register = subprocess.run(
            [
                sys.executable,
                "-m",
                "modelreg.cli.main",
                "register",
                "fraud",
                "--version",
                "1",
                "--file",
                str(model),
                "--to",
                "s3://models/fraud/1",
                "--apply",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert register.returncode == 0, register.stderr

        def kubectl(*args: str) -> str:
            done = subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=30)
            assert done.returncode == 0, done.stderr
            return done.stdout + done.stderr

        deadline = time.monotonic() + 30
        while "True" not in (table := kubectl("get", "mv")) and time.monotonic() < deadline:
            time.sleep(0.5)
        header, row = table.splitlines()[:2]
        assert header.split() == ["NAME", "MODEL", "VERSION", "STAGE", "VERIFIED", "AGE"]
        assert row.split()[:3] == ["fraud-v1", "fraud", "1"] and "True" in row.split()
        wide = kubectl("get", "modelversions", "-o", "wide").splitlines()[0].split()
        assert wide[-3:] == ["FORMAT", "URI", "MESSAGE"]
        assert "No resources found" in kubectl("get", "mp")  # the short name resolves; nothing promoted yet

        # The trust boundary, through kubectl as each user: the emulator calls the operator's webhooks.
        def as_user(user: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
            config = str(tmp_path / f"kubeconfig-{user}")
            return subprocess.run(
                ["kubectl", "--kubeconfig", config, *args], env=env, input=stdin, capture_output=True, text=True
            )

        promotion = (
            "apiVersion: modelreg.io/v1alpha1\nkind: ModelPromotion\nmetadata: {name: p, namespace: default,"
            " annotations: {modelreg.io/requested-by: bob}}\n"
            "spec: {modelName: fraud, version: 1, targetStage: Production}\n"
        )
        assert as_user("alice", "create", "--validate=false", "-f", "-", stdin=promotion).returncode == 0
        assert kubectl("get", "mp", "p", "-o", "jsonpath={.metadata.annotations.modelreg\\.io/requested-by}") == "alice"
        attacks = {  # user, kubectl arguments -> the denial's words
            ("alice", "annotate", "mp", "p", "approval.modelreg.io/alice=alice"): "alice requested promotion p",
            ("dave", "annotate", "mp", "p", "approval.modelreg.io/dave=dave"): "dave may not approve fraud/Production",
            ("alice", "annotate", "mp", "p", "approval.modelreg.io/bob=bob"): "must be your own username",
            (
                "alice",
                "annotate",
                "--overwrite",
                "mp",
                "p",
                "modelreg.io/requested-by=carol",
            ): "set only by the admission",
            # RBAC gives users no status (kubectl reads first)
            ("alice", *FORGE_STAGE): 'is forbidden: User "alice" cannot get resource "modelversions/status"',
        }
        for (user, *args), denial in attacks.items():
            done = as_user(user, *args)
            assert done.returncode != 0 and denial in done.stderr, (args, done.stderr)
        as_admin = subprocess.run(["kubectl", *FORGE_STAGE], env=env, capture_output=True, text=True)
        assert "written only by the modelreg operator" in as_admin.stderr  # the administrator meets the webhook
        assert as_user("bob", "annotate", "mp", "p", "approval.modelreg.io/bob=bob").returncode == 0
        assert kubectl("get", "mp", "p", "-o", "jsonpath={.metadata.annotations.seal\\.modelreg\\.io/bob}").startswith(
            "webhook|"
        )
        assert "Production" not in kubectl("get", "mv", "fraud-v1")
    finally:
        sandbox.send_signal(signal.SIGINT)
        sandbox.wait(timeout=60)
    assert sandbox.returncode == 0
    assert all(port_is_closed(url) for url in urls(banner).values())
    assert Path(tmp_path / "kubeconfig").exists()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_applies_the_quickstart_without_flags_and_sees_versions_and_events(tmp_path):
    import boto3

    sandbox, banner = start_sandbox(tmp_path)
    try:
        assert "WARNING" not in banner and "Warning" not in banner  # a newcomer's first lines are not noise
        env = {**os.environ, "KUBECONFIG": str(tmp_path / "kubeconfig")}

        def kubectl(*args: str) -> str:
            done = subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=30, cwd=ROOT)
            assert done.returncode == 0, done.stderr
            return done.stdout

        s3 = boto3.client(
            "s3",
            endpoint_url=urls(banner)["s3"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        s3.put_object(Bucket="models", Key="fraud/1/model.onnx", Body=b"test", ChecksumAlgorithm="SHA256")
        applied = kubectl("apply", "-f", "examples/quickstart/")  # validation on, as kubectl's default
        assert "modelversion.modelreg.io/fraud-v1 created" in applied
        assert "deployment.apps/fraud-scorer created" in applied

        deadline = time.monotonic() + 30
        while not re.search(r"ml\s+fraud-v1\s+fraud\s+1\s+True", table := kubectl("get", "mv", "-A")):
            assert time.monotonic() < deadline, table  # namespace ml is reconciled: every namespace is watched
            time.sleep(0.5)
        described = kubectl("describe", "mv", "fraud-v1", "-n", "ml")
        events_section = described.split("Events:")[1]
        assert "Verified" in events_section and "fraud-v2" not in events_section  # its own Events only
        events = kubectl("get", "events", "-n", "ml")
        assert re.search(r"Normal\s+Verified\s+modelversion/fraud-v1", events), events
        assert "modelversions.modelreg.io" in kubectl("get", "crd")
        bad = subprocess.run(
            ["kubectl", "apply", "-f", "-"],
            input="apiVersion: modelreg.io/v1alpha1\nkind: ModelVersion\nmetadata: {name: bad, namespace: ml}\n"
            "spec: {modelName: fraud, version: 99999999999999999999, artifact: {uri: 's3://models/x', sha256: '0'}}\n",
            env=env,
            capture_output=True,
            text=True,
        )
        assert bad.returncode != 0 and "Traceback" not in bad.stderr and "InternalError" not in bad.stderr
    finally:
        sandbox.send_signal(signal.SIGINT)
        sandbox.wait(timeout=60)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_a_200_mib_artifact_registered_in_parts_is_verified(tmp_path):
    # register uploads it in parts: the store reports their composite SHA-256, never the digest
    sandbox, banner = start_sandbox(tmp_path)
    try:
        env = tools_env(tmp_path, banner)
        model = tmp_path / "big.bin"
        with model.open("wb") as out:
            for _ in range(200):
                out.write(os.urandom(1 << 20))
        command = ["register", "big", "--version", "1", "--file", str(model), "--to", "s3://models/big/1", "--apply"]
        register = subprocess.run(
            [sys.executable, "-m", "modelreg.cli.main", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert register.returncode == 0, register.stderr
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = subprocess.run(
                [
                    "kubectl",
                    "get",
                    "mv",
                    "big-v1",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type=='ArtifactVerified')]}",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            if '"status":"True"' in done.stdout.replace(" ", "") or '"reason":"ChecksumMismatch"' in done.stdout:
                break
            time.sleep(1)
        assert '"reason":"Verified"' in done.stdout.replace(" ", ""), done.stdout
        assert '"method":"Stream"' in subprocess.run(
            ["kubectl", "get", "mv", "big-v1", "-o", "jsonpath={.status.artifact}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.replace(" ", "")
    finally:
        sandbox.send_signal(signal.SIGINT)
        sandbox.wait(timeout=60)
