"""kubectl-modelreg as a pipeline and a newcomer use it (issue 20): registering never changes bytes a
version names, kubectl's flags work before or after the subcommand, exit codes a pipeline can gate on."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelreg.cli.main import main as kubectl_modelreg
from modelreg.config import Settings
from tests.integration.conftest import NAMESPACE, condition, wait_for
from tests.integration.promotion_helpers import deployment


@pytest.fixture
def settings() -> Settings:
    return Settings(promotions={"tick_seconds": 0.3})


@pytest.fixture
def kubeconfigs(cluster, tmp_path):
    def path(user: str) -> str:
        return str(cluster.write_kubeconfig(tmp_path / f"kubeconfig-{user}", namespace=NAMESPACE, user=user))

    return path


@pytest.fixture
def run(capsys, operator, aws_env, kubeconfigs):
    """`kubectl modelreg ARGS` exactly as given (flags wherever the test puts them); alice by default."""

    def call(*args: str, user: str | None = "alice"):
        capsys.readouterr()
        code = kubectl_modelreg([*args, *(["--kubeconfig", kubeconfigs(user)] if user else [])])
        out, err = capsys.readouterr()
        return code, out, err

    return call


def verified_reason(kube, name):
    return (condition(kube.get("modelversions", name), "ArtifactVerified") or {}).get("reason")


def register_file(run, tmp_path, bucket, version, data, *extra, to=None):
    path = tmp_path / f"model-{version}.onnx"
    path.write_bytes(data)
    to = to or f"s3://{bucket}/fraud/{version}/"
    return run("register", "fraud", "--version", str(version), "--file", str(path), "--to", to, *extra)


# -- register never changes bytes a ModelVersion names ------------------------------------------


def test_registering_again_changes_no_registered_bytes(run, kube, s3, bucket, tmp_path):
    assert register_file(run, tmp_path, bucket, 3, b"v3 weights", "--apply")[0] == 0
    wait_for(lambda: verified_reason(kube, "fraud-v3") == "Verified", what="v3 verified")
    # a CI retry with other bytes: refused before any upload, v3 and its bytes untouched
    code, _, err = register_file(run, tmp_path, bucket, 3, b"other bytes", "--apply")
    assert code == 1 and "already registered" in err and "nothing was uploaded" in err
    assert s3.get_object(Bucket=bucket, Key="fraud/3/model-3.onnx")["Body"].read() == b"v3 weights"
    # a new version number pointed at v3's key: the key holds other bytes, nothing overwritten
    code, _, err = register_file(
        run, tmp_path, bucket, 4, b"other bytes", "--apply", to=f"s3://{bucket}/fraud/3/model-3.onnx"
    )
    assert code == 1 and "already holds other bytes" in err
    assert s3.get_object(Bucket=bucket, Key="fraud/3/model-3.onnx")["Body"].read() == b"v3 weights"
    assert not kube.exists("modelversions", "fraud-v4")
    wait_for(lambda: verified_reason(kube, "fraud-v3") == "Verified", what="v3 still verified")
    # the same bytes at an existing key: registered, nothing uploaded again
    code, _, err = register_file(
        run, tmp_path, bucket, 5, b"v3 weights", "--apply", to=f"s3://{bucket}/fraud/3/model-3.onnx"
    )
    assert code == 0 and "already in storage with these bytes" in err


def test_an_invalid_name_is_refused_before_any_upload(run, s3, bucket, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"weights")
    code, _, err = run("register", "Fraud_Model", "--version", "1", "--file", str(path), "--to", f"s3://{bucket}/x/")
    assert code == 2 and "DNS label" in err
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_to_is_a_prefix_only_with_a_trailing_slash_and_existing_uploads_nothing(run, kube, s3, bucket, tmp_path):
    code, out, _ = register_file(
        run, tmp_path, bucket, 1, b"one", "-o", "json", to=f"s3://{bucket}/ml/fraud/1/model.onnx"
    )
    assert code == 0 and f'"uri": "s3://{bucket}/ml/fraud/1/model.onnx"' in out
    s3.put_object(Bucket=bucket, Key="made/elsewhere.bin", Body=b"trained elsewhere")  # no checksum: streamed
    code, out, err = run(
        "register", "fraud", "--version", "2", "--existing", f"s3://{bucket}/made/elsewhere.bin", "--apply"
    )
    assert code == 0, err
    spec = kube.get("modelversions", "fraud-v2")["spec"]["artifact"]
    assert spec["sha256"] == hashlib.sha256(b"trained elsewhere").hexdigest() and spec["sizeBytes"] == 17
    wait_for(lambda: verified_reason(kube, "fraud-v2") == "Verified", what="v2 verified")
    code, _, err = run("register", "fraud", "--version", "3", "--existing", f"s3://{bucket}/nothing/here.bin")
    assert code == 1 and "does not exist" in err


# -- kubectl's flags, before or after the subcommand ---------------------------------------------


def test_every_global_flag_works_before_and_after_the_subcommand(run, kube, s3, bucket, tmp_path, kubeconfigs, cluster):
    assert register_file(run, tmp_path, bucket, 1, b"one", "--apply")[0] == 0
    wait_for(lambda: verified_reason(kube, "fraud-v1") == "Verified", what="v1 verified")
    carol = kubeconfigs("carol")
    for before in (True, False):

        def place(flags: list[str], *command: str, before: bool = before) -> list[str]:
            return [*flags, *command] if before else [*command, *flags]

        code, out, _ = run(*place(["-n", "default"], "list"))  # another namespace: nothing there
        assert code == 0 and "fraud-v1" not in out  # listed default, not the kubeconfig's ml
        code, out, _ = run(*place(["-n", NAMESPACE, "-o", "json"], "list"))
        assert code == 0 and out.lstrip().startswith(("[", "{")), out
        code, out, _ = run(*place(["-A"], "list"))
        assert code == 0 and out.splitlines()[0].split()[0] == "NAMESPACE"
        code, out, _ = run(
            *place(["--kubeconfig", carol], "promote", "fraud", "1", "--to", "Staging", "-o", "yaml"), user=None
        )
        assert code == 0 and "ModelPromotion" in out
        code, out, _ = run(*place(["--context", "modelreg-emulator"], "list"))
        assert code == 0 and "fraud-v1" in out
        code, _, err = run(*place(["--context", "no-such-context"], "list"))
        assert code == 1 and "kubeconfig" in err
    # --as: impersonation, which only holders of `impersonate` may use
    code, _, err = run("--as", "bob", "approve", "nothing-here")
    assert code == 1 and "impersonate" in err
    code, out, _ = run("approve", "nothing-here", "--as", "bob", user="admin")
    assert code == 1 and "not found" in _


# -- exit codes a pipeline can gate on ----------------------------------------------------------


def test_status_watch_exits_1_when_the_promotion_ends_otherwise(
    run, kube, apps, s3, bucket, tmp_path, deployment_controller
):
    apps.create_namespaced_deployment(NAMESPACE, deployment("scorer", stage="Staging"))
    assert register_file(run, tmp_path, bucket, 1, b"one", "--apply")[0] == 0
    wait_for(lambda: verified_reason(kube, "fraud-v1") == "Verified", what="v1 verified")
    s3.put_object(Bucket=bucket, Key="fraud/1/model-1.onnx", Body=b"tampered", ChecksumAlgorithm="SHA256")
    assert run("promote", "fraud", "1", "--to", "Staging", "--apply")[0] == 0
    code, out, _ = run("status", "fraud-v1-to-staging", "--watch", "--timeout", "30")
    assert code == 1 and "ArtifactChanged" in out
    assert register_file(run, tmp_path, bucket, 2, b"two", "--apply")[0] == 0
    wait_for(lambda: verified_reason(kube, "fraud-v2") == "Verified", what="v2 verified")
    assert run("promote", "fraud", "2", "--to", "Staging", "--apply")[0] == 0
    assert run("status", "fraud-v2-to-staging", "--watch", "--timeout", "30")[0] == 0
    assert run("promote", "fraud", "2", "--to", "Production", "--apply")[0] == 0  # waits for approvals
    wait_for(
        lambda: (
            (condition(kube.get("modelpromotions", "fraud-v2-to-production"), "Succeeded") or {}).get("reason")
            == "AwaitingApproval"
        ),
        what="the promotion awaiting approval",
    )
    code, out, err = run("status", "fraud-v2-to-production", "--watch", "--timeout", "2", "--interval", "0.2")
    assert code == 1 and "still AwaitingApproval after 2s" in err
    assert out.count("Status:") == 1 and "---" not in out  # printed once: it did not change meanwhile


def test_promote_refuses_what_does_not_exist_and_unapprove_says_when_nothing_was_given(run, kube, s3, bucket, tmp_path):
    code, out, err = run("promote", "frad", "3", "--to", "Production", "--apply")
    assert code == 1 and "no registered versions" in err and out == ""
    assert register_file(run, tmp_path, bucket, 3, b"three", "--apply")[0] == 0
    code, _, err = run("promote", "fraud", "99", "--to", "Production", "--apply")
    assert code == 1 and "has no version 99" in err
    assert run("promote", "fraud", "99", "--to", "Production", "--apply", "--allow-pending")[0] == 0
    code, out, _ = run("unapprove", "fraud-v99-to-production", user="bob")
    assert code == 0 and "bob has no approval on fraud-v99-to-production to remove" in out


def test_a_time_without_a_zone_is_utc_and_a_closed_pipe_is_quiet(run, kube, s3, bucket, tmp_path, kubeconfigs):
    assert register_file(run, tmp_path, bucket, 1, b"one", "--apply")[0] == 0
    assert register_file(run, tmp_path, bucket, 2, b"two", "--apply")[0] == 0
    code, _, err = run("history", "fraud", "--at", "2026-12-06T03:30:00")
    assert code == 0 and "Traceback" not in err
    diff = subprocess.run(
        f"{sys.executable} -m modelreg.cli.main diff fraud 1 2 -o yaml --kubeconfig {kubeconfigs('alice')} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert diff.stderr == "" and diff.stdout.strip()


# -- kubectl plugin conventions -----------------------------------------------------------------


def test_listings_as_kubectl_prints_them(run, kube, s3, bucket, tmp_path):
    assert register_file(run, tmp_path, bucket, 1, b"one", "--apply")[0] == 0
    code, out, _ = run("list", "-o", "json")
    listing = json.loads(out)
    assert code == 0 and listing["kind"] == "List" and listing["items"][0]["metadata"]["name"] == "fraud-v1"
    assert yaml.safe_load(run("list", "-o", "yaml")[1])["kind"] == "List"
    assert run("list", "-o", "name")[1].split() == ["modelversion.modelreg.io/fraud-v1"]
    header = run("list", "-o", "wide")[1].splitlines()[0].split()
    assert header[-3:] == ["FORMAT", "URI", "MESSAGE"]
    code, out, _ = run("list", "-o", "jsonpath={range .items[*]}{.metadata.name}={.spec.version}{end}")
    assert code == 0 and out == "fraud-v1=1"
    code, _, err = run("list", "-o", "jsonpath={.items[?(}")
    assert code == 2 and err.startswith("error: jsonpath")
    code, out, err = run("list", "-o", "jsonpath={.items[")
    assert (code, out) == (2, "") and "unclosed action" in err
    # -o name where there are no objects to name is refused, not an empty line
    code, out, err = run("history", "fraud", "-o", "name")
    assert (code, out) == (2, "") and "history shows no Kubernetes objects" in err
    assert run("list", "nothing-registered", "-o", "name")[1] == ""
    assert run("list", "-n", "empty") == (0, "", "No resources found in empty namespace.\n")
    assert json.loads(run("list", "-n", "empty", "-o", "json")[1])["items"] == []


def test_config_and_listening_errors_are_one_line(run, tmp_path):
    broken_token = 'users:\n- name: a\n  user: {token: "sekrit-token-123"\n'  # unclosed: the error names no token
    for text in ("garbage: [", "[1, 2]", "just text", "apiVersion: v1\nclusters: 5\n", broken_token):
        kubeconfig = tmp_path / "kubeconfig-broken"
        kubeconfig.write_text(text)
        code, out, err = run("list", "--kubeconfig", str(kubeconfig), user=None)
        assert (code, out) == (1, "") and err.startswith(f"error: cannot load kubeconfig {kubeconfig}"), err
        assert len(err.strip().splitlines()) == 1 and "sekrit" not in err
    for port in ("99999", "-1", "http"):
        done = subprocess.run(
            [sys.executable, "-m", "modelreg.cli.main", "ui", "--port", port],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and "a port is a number from 0 to 65535" in done.stderr
        assert len(done.stderr.splitlines()) == 1  # no usage block first
    code, out, err = run("list", "--kubeconfig", str(tmp_path), user=None)  # a directory
    assert (code, out) == (1, "") and err.startswith("error: cannot load kubeconfig") and len(err.splitlines()) == 1


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_runs_the_plugin_and_completes_it(cluster, kubeconfigs, aws_env, operator):
    bin_dir = Path(sys.executable).parent  # kubectl-modelreg and kubectl_complete-modelreg
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "KUBECONFIG": kubeconfigs("alice")}
    version = subprocess.run(["kubectl", "modelreg", "--version"], env=env, capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("kubectl-modelreg ")
    listed = subprocess.run(
        ["kubectl", "modelreg", "-n", NAMESPACE, "list"], env=env, capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0 and listed.stderr == f"No resources found in {NAMESPACE} namespace.\n"
    # kubectl's own completion of a plugin: `kubectl __complete modelreg <partial>`
    completed = subprocess.run(
        ["kubectl", "__complete", "modelreg", "pro"], env=env, capture_output=True, text=True, timeout=60
    )
    assert "promote" in completed.stdout.split(), completed.stdout + completed.stderr
    script = subprocess.run(["kubectl", "modelreg", "completion", "bash"], env=env, capture_output=True, text=True)
    assert script.returncode == 0 and "kubectl-modelreg" in script.stdout


def test_completion_offers_names_from_the_cluster_never_files(run, kube, s3, bucket, tmp_path, kubeconfigs):
    assert register_file(run, tmp_path, bucket, 1, b"one", "--apply")[0] == 0
    assert run("promote", "fraud", "1", "--to", "Staging", "--apply")[0] == 0
    env = {**os.environ, "KUBECONFIG": kubeconfigs("alice")}

    def candidates(*words: str) -> list[str]:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "kubectl_complete-modelreg"), *words],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,  # model-1.onnx is here: it must not be offered
        )
        assert done.returncode == 0 and done.stdout.splitlines()[-1] == ":4", done.stdout  # no file completion
        return done.stdout.splitlines()[:-1]

    assert candidates("approve", "fraud") == ["fraud-v1-to-staging"]
    assert candidates("status", "") == [c for c in candidates("status", "") if not c.endswith(".onnx")]
    assert "fraud-v1-to-staging" in candidates("status", "")
    assert candidates("history", "fr") == ["fraud"]
    assert candidates("resolve", "fraud@p") == ["fraud@production"]
    assert candidates("describe", "fraud", "") == [c for c in candidates("describe", "fraud", "") if c.startswith("-")]
    assert "model-1.onnx" not in candidates("list", "")


def test_every_flag_has_help():
    from modelreg.cli.main import parser

    top = parser()
    commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, command in {"": top, **commands}.items():
        for action in command._actions:
            if action.option_strings and action.help != argparse.SUPPRESS and "-h" not in action.option_strings:
                assert action.help, f"{name} {action.option_strings} has no help text"
                assert "e.g." in action.help, f"{name} {action.option_strings} has no example"
