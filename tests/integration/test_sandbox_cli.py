"""`kubectl modelreg` through the real kubectl against the sandbox, as a newcomer meets it (issue 20):
the README's first-model walkthrough copy-pasted, registering again, flags anywhere, exit codes, and
the examples applied in any order."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.conftest import ROOT
from tests.integration.test_sandbox import start_sandbox, urls

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


class Box:
    def __init__(self, workdir: Path, s3_url: str) -> None:
        self.workdir = workdir
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # kubectl-modelreg
            "KUBECONFIG": str(workdir / "kubeconfig"),
            "AWS_ENDPOINT_URL_S3": s3_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }
        self.s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")

    def run(self, command: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            command, shell=True, capture_output=True, text=True, timeout=120, env=self.env, cwd=cwd or ROOT
        )

    def ok(self, command: str, cwd: Path | None = None) -> str:
        done = self.run(command, cwd)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout

    def until(self, command: str, pattern: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            out = self.run(command).stdout
            if re.search(pattern, out):
                return out
            assert time.monotonic() < deadline, (command, pattern, out)
            time.sleep(0.5)


def sandbox() -> Iterator[Box]:
    workdir = Path(tempfile.mkdtemp(prefix="modelreg-sandbox-cli-"))
    process, banner = start_sandbox(workdir)
    try:
        assert "Press Ctrl-C" in banner, banner
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        yield Box(workdir, urls(banner)["s3"])
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


box = pytest.fixture(scope="module")(sandbox)
fresh_box = pytest.fixture(sandbox, name="fresh_box")  # a sandbox of its own: nothing applied before


def readme_block(after: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split(after, 1)[1].split("```bash\n", 1)[1].split("\n```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_readmes_first_model_walkthrough_copy_pasted_ends_verified(box, tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"a first model")
    for line in readme_block("**First model in 5 minutes**"):
        if " -w" in line:  # watches until interrupted: the same question, asked until answered
            box.until("kubectl get mv -n ml", r"fraud-v1\s+fraud\s+1\s+True")
            continue
        box.ok(line, cwd=tmp_path)
    box.until("kubectl get mv fraud-v1 -n ml -o jsonpath={.status.stage}", "Staging")


def test_registering_again_through_kubectl_changes_no_registered_bytes(box, tmp_path):
    box.ok("kubectl create namespace again")
    (tmp_path / "m.onnx").write_bytes(b"v3 weights")
    register = "kubectl modelreg register fraud --version 3 --file m.onnx --to s3://models/again/3/ -n again --apply"
    box.ok(register, cwd=tmp_path)
    box.until("kubectl get mv fraud-v3 -n again", r"True")
    (tmp_path / "m.onnx").write_bytes(b"other bytes")  # a CI retry after the file changed
    retry = box.run(register, cwd=tmp_path)
    assert retry.returncode == 1 and "already registered" in retry.stderr and "nothing was uploaded" in retry.stderr
    stored = box.s3.get_object(Bucket="models", Key="again/3/m.onnx")["Body"].read()
    assert stored == b"v3 weights"
    reason = box.ok(
        "kubectl get mv fraud-v3 -n again -o jsonpath='{.status.conditions[?(@.type==\"ArtifactVerified\")].reason}'"
    )
    assert reason == "Verified"
    bad = box.run(
        "kubectl modelreg register Fraud_Model --version 1 --file m.onnx --to s3://models/again/x/", cwd=tmp_path
    )
    assert bad.returncode == 2 and "DNS label" in bad.stderr


def test_flags_before_or_after_the_subcommand_and_exit_codes(box, tmp_path):
    box.ok("kubectl create namespace flags")
    (tmp_path / "m.onnx").write_bytes(b"flags")
    box.ok(
        "kubectl modelreg -n flags register fraud --version 1 --file m.onnx --to s3://models/flags/1/ --apply",
        cwd=tmp_path,
    )
    box.until("kubectl get mv fraud-v1 -n flags", r"True")
    for command in ("kubectl modelreg -n flags -o json list", "kubectl modelreg list -n flags -o json"):
        assert '"kind": "List"' in box.ok(command) and "fraud-v1" in box.ok(command)
    box.ok("kubectl modelreg promote fraud 1 --to Production -n flags --apply")
    carol = box.workdir / "kubeconfig-carol"
    for command in (
        f"kubectl modelreg --kubeconfig {carol} -n flags approve fraud-v1-to-production",
        f"kubectl modelreg unapprove fraud-v1-to-production -n flags --kubeconfig {carol}",
    ):
        assert " as carol" in box.ok(command)
    nothing = box.ok(f"kubectl modelreg -n flags --kubeconfig {carol} unapprove fraud-v1-to-production")
    assert "carol has no approval on fraud-v1-to-production to remove" in nothing
    waiting = box.run("kubectl modelreg status fraud-v1-to-production -n flags --watch --timeout 2")
    assert waiting.returncode == 1 and "still AwaitingApproval" in waiting.stderr
    typo = box.run("kubectl modelreg promote frad 1 --to Production -n flags --apply")
    assert typo.returncode == 1 and "no registered versions" in typo.stderr and "created" not in typo.stdout
    usage = box.run("kubectl modelreg status")
    assert usage.returncode == 2


def test_the_examples_apply_in_any_order_and_do_what_their_comments_say(fresh_box):
    box = fresh_box
    for namespace in ("ml-staging", "ml-prod"):
        box.ok(f"kubectl create namespace {namespace}")
    box.ok("kubectl create namespace ml")
    body = b"test"  # what examples/quickstart/modelversion.yaml's sha256 and size name
    assert hashlib.sha256(body).hexdigest().startswith("9f86d081")
    box.s3.put_object(Bucket="models", Key="fraud/1/model.onnx", Body=body, ChecksumAlgorithm="SHA256")
    for command in (  # GitOps first, then the quickstart, then staging: no collisions
        "kubectl apply -k examples/gitops/environments/production",
        "kubectl apply -f examples/quickstart/",
        "kubectl apply -k examples/gitops/environments/staging",
    ):
        box.ok(command)
    assert "fraud-v2-to-production" in box.ok("kubectl get mp -n ml-prod -o name")
    box.until("kubectl get mv fraud-v1 -n ml", r"True")
    promotion = box.until(
        "kubectl get mp fraud-v2-to-production -n ml "
        "-o jsonpath='{.status.conditions[?(@.type==\"Succeeded\")].reason}'",
        r"\w",
    )
    assert promotion != "Superseded"  # the rollback example is no longer applied with it
    box.ok("kubectl apply -f examples/rollback/")
    assert "fraud-rollback-to-v1" in box.ok("kubectl get mp -n ml -o name")
