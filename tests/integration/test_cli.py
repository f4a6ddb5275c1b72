"""kubectl-modelreg end to end: the real CLI against the emulated API, moto's S3 and the operator."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from modelreg.cli.main import main as kubectl_modelreg
from modelreg.config import Settings
from modelreg.domain.artifacts import directory_digest
from modelreg.sandbox.validation import CRDValidator
from tests.conftest import ROOT
from tests.integration.conftest import condition, wait_for
from tests.integration.promotion_helpers import succeeded


@pytest.fixture
def settings() -> Settings:
    return Settings(promotions={"tick_seconds": 0.3})


@pytest.fixture
def cli(cluster, tmp_path, capsys, operator, aws_env):
    """Run `kubectl modelreg ...` as a given user; returns (exit code, stdout, stderr)."""

    def run(*args: str, user: str = "alice"):
        # (no ":" in the file name: the client splits kubeconfig paths on it)
        path = tmp_path / f"kubeconfig-{user.replace(':', '_')}"
        kubeconfig = cluster.write_kubeconfig(path, namespace="ml", user=user)
        capsys.readouterr()
        code = kubectl_modelreg([*args, "--kubeconfig", str(kubeconfig)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def verified(kube, name):
    return wait_for(
        lambda: (c := condition(kube.get("modelversions", name), "ArtifactVerified")) and c["reason"] == "Verified",
        what=f"{name} verified",
    )


def test_register_prints_a_valid_manifest_or_applies_it(cli, kube, s3, bucket, tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx bytes" * 100)
    code, out, _ = cli(
        "register",
        "fraud",
        "--version",
        "1",
        "--file",
        str(model),
        "--to",
        f"s3://{bucket}/fraud/1/",
        "--metric",
        "auc=0.91",
        "--param",
        "depth=6",
        "--run-id",
        "r1",
        "--format",
        "onnx",
        "-o",
        "yaml",
    )
    assert code == 0
    manifest = yaml.safe_load(out)
    assert CRDValidator.from_file(ROOT / "crds/modelversions.modelreg.io.yaml").errors(manifest) == []
    assert manifest["spec"]["artifact"]["uri"] == f"s3://{bucket}/fraud/1/model.onnx"
    assert manifest["spec"]["metrics"] == {"auc": 0.91} and manifest["spec"]["hyperparameters"] == {"depth": "6"}
    head = s3.head_object(Bucket=bucket, Key="fraud/1/model.onnx", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"]  # uploaded with a checksum: verification needs no download

    code, out, _ = cli(
        "register", "fraud", "--version", "1", "--file", str(model), "--to", f"s3://{bucket}/fraud/1/", "--apply"
    )
    assert code == 0 and "fraud-v1 registered" in out
    verified(kube, "fraud-v1")
    assert kube.get("modelversions", "fraud-v1")["status"]["artifact"]["method"] == "S3Checksum"


def test_register_a_directory(cli, kube, bucket, tmp_path):
    root = tmp_path / "hf"
    (root / "sub").mkdir(parents=True)
    files = {"config.json": b"{}", "sub/weights.bin": b"\x01" * 999}
    for key, data in files.items():
        (root / key).write_bytes(data)
    code, out, _ = cli(
        "register", "llm", "--version", "3", "--dir", str(root), "--to", f"s3://{bucket}/llm/3/", "--apply"
    )
    assert code == 0, out
    obj = kube.get("modelversions", "llm-v3")
    import hashlib

    assert obj["spec"]["artifact"]["sha256"] == directory_digest(
        (k, hashlib.sha256(v).hexdigest()) for k, v in files.items()
    )
    verified(kube, "llm-v3")


def test_promote_approve_history_diff_lineage(cluster, cli, kube, bucket, tmp_path):
    for version, auc in ((1, "0.90"), (2, "0.93")):
        path = tmp_path / f"m{version}.bin"
        path.write_bytes(f"model {version}".encode())
        extra = ["--parent", "1"] if version == 2 else []
        assert (
            cli(
                "register",
                "fraud",
                "--version",
                str(version),
                "--file",
                str(path),
                "--to",
                f"s3://{bucket}/fraud/{version}/",
                "--metric",
                f"auc={auc}",
                "--run-id",
                f"run-{version}",
                *extra,
                "--apply",
            )[0]
            == 0
        )
        verified(kube, f"fraud-v{version}")

    code, out, _ = cli("promote", "fraud", "2", "--to", "Production", "--criteria", "auc>=0.9", "-o", "json")
    assert code == 0 and json.loads(out)["spec"]["criteria"] == [{"metric": "auc", "min": 0.9}]
    code, out, _ = cli("promote", "fraud", "2", "--to", "Production", "--criteria", "auc>=0.9", "--apply")
    assert code == 0  # created as alice: the webhook stamps requested-by
    cluster.apply(  # a CI service account may approve fraud's Production promotions, nothing else
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "approve-fraud", "namespace": "ml"},
                "rules": [
                    {
                        "apiGroups": ["modelreg.io"],
                        "resources": ["modelstages"],
                        "verbs": ["approve"],
                        "resourceNames": ["fraud/Production"],
                    },
                    # approving is annotating: RBAC must let it read and patch promotions too
                    {"apiGroups": ["modelreg.io"], "resources": ["modelpromotions"], "verbs": ["get", "patch"]},
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "ci-approves-fraud", "namespace": "ml"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "approve-fraud"},
                "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"}],
            },
        ]
    )

    code, _, err = cli("approve", "fraud-v2-to-production", user="alice")
    assert code == 1 and "alice requested promotion fraud-v2-to-production and cannot approve it" in err
    assert cli("approve", "fraud-v2-to-production", user="bob")[0] == 0
    assert cli("approve", "fraud-v2-to-production", user="system:serviceaccount:ci:deployer")[:3:2] == (0, "")
    succeeded(kube, "fraud-v2-to-production", "Promoted")

    code, out, _ = cli("status", "fraud-v2-to-production", "--watch")  # returns once the promotion is terminal
    assert code == 0 and out.count("Promotion:") == 1
    code, out, _ = cli("list", "-A")
    assert out.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"] and "ml" in out
    code, out, _ = cli("status", "fraud-v2-to-production")
    assert "Promoted" in out and "2/2" in out and "system:serviceaccount:ci:deployer" in out
    code, out, _ = cli("history", "fraud")
    assert code == 0 and "Production" in out and "bob,system:serviceaccount:ci:deployer" in out
    code, out, _ = cli("history", "fraud", "-o", "json")
    assert json.loads(out)["items"][0]["approvedBy"] == ["bob", "system:serviceaccount:ci:deployer"]  # a List
    code, out, _ = cli("history", "fraud", "--at", "2099-01-01T00:00:00Z")  # point in time: who held what
    header, row = out.splitlines()[:2]
    assert header.split()[:3] == ["STAGE", "VERSION", "SINCE"] and row.split()[:2] == ["Production", "2"]
    assert "bob,system:serviceaccount:ci:deployer" in row
    assert cli("history", "fraud", "--at", "2000-01-01T00:00:00Z")[1].startswith("no version held a stage")
    if shutil.which("kubectl"):  # the README's kubectl-only answer agrees
        readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
        one_liner = readme.split("<!-- stage-at-time one-liner")[1].split("```bash\n")[1].split("\n```")[0]
        template = shlex.split(one_liner)[-1].removeprefix("go-template=")
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace="ml", user="admin")
        run = ["kubectl", "--kubeconfig", str(kubeconfig), "get", "modelversions", "-l", "modelreg.io/model=fraud"]

        def held_at(day: str) -> str:
            at = f"go-template={template.replace('2026-11-01', day)}"
            return subprocess.run([*run, "-o", at], capture_output=True, text=True, timeout=30, check=True).stdout

        then = held_at("2099-01-01")
        assert then.startswith("Production v2 since ") and then.rstrip().endswith(
            "by fraud-v2-to-production, approved by bob system:serviceaccount:ci:deployer"
        )
        assert held_at("2000-01-01") == ""
    with pytest.raises(SystemExit) as usage:  # argparse: exit code 2, one line naming the problem
        cli("history", "fraud", "--at", "yesterday")
    assert usage.value.code == 2
    code, out, _ = cli("diff", "fraud", "1", "2")
    assert code == 0 and "auc" in out and "0.9" in out and "0.93" in out
    code, out, _ = cli("lineage", "fraud", "2")
    assert out.splitlines()[0].startswith("fraud v2") and "└── fraud v1" in out and "run-1" in out
    code, out, _ = cli("list", "fraud")
    header, *rows = out.splitlines()
    assert header.split()[:6] == ["NAME", "MODEL", "VERSION", "STAGE", "VERIFIED", "METRICS"]
    assert any("Production" in row and "fraud-v2" in row for row in rows)
    code, out, _ = cli("describe", "fraud", "2", "-o", "yaml")
    assert yaml.safe_load(out)["status"]["stage"] == "Production"
    code, out, _ = cli("describe", "fraud", "2")
    assert "Stage:       Production" in out and "ArtifactVerified=True" in out

    code, _, err = cli("unapprove", "fraud-v2-to-production", user="bob")  # history stays as it was
    assert code == 1 and "fraud-v2-to-production is finished (Promoted)" in err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["register", "fraud", "--version", "1", "--file", "/nope/model.onnx", "--to", "s3://models/x"],
            2,
            "error: --file /nope/model.onnx: no such file",
        ),
        (
            ["register", "fraud", "--version", "1", "--file", __file__, "--to", "s3://models/x", "--metric", "auc"],
            2,
            "error: --metric 'auc': expected KEY=VALUE",
        ),
        (
            [
                "register",
                "fraud",
                "--version",
                "1",
                "--file",
                __file__,
                "--to",
                "s3://models/x",
                "--metric",
                "auc=high",
            ],
            2,
            "error: --metric 'auc=high': 'high' is not a number",
        ),
        (
            ["promote", "fraud", "1", "--to", "Production", "--criteria", "auc=>1"],
            2,
            "error: --criteria 'auc=>1': expected METRIC>=N, METRIC<=N or METRIC~N (max regression)",
        ),
        (["history", "ghost"], 1, "error: model 'ghost' has no registered versions in namespace ml"),
        (["approve", "no-such-promotion"], 1, 'error: modelpromotions.modelreg.io "no-such-promotion" not found'),
    ],
)
def test_bad_input_is_one_line_on_stderr_with_an_exit_code(cli, args, code, message):
    got, out, err = cli(*args)
    assert (got, out, err.strip()) == (code, "", message)
