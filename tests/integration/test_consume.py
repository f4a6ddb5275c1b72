"""Consuming what was proven: `kubectl modelreg resolve`, `modelreg fetch` and `modelreg.client`
against the real operator, the emulated API server and moto's S3."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelreg import client
from modelreg.cli.main import main as kubectl_modelreg
from modelreg.config import Settings
from modelreg.domain.artifacts import directory_digest
from modelreg.sandbox_cli import cli as modelreg_command
from tests.integration.conftest import condition, wait_for
from tests.integration.promotion_helpers import promote, register, succeeded, version_body


@pytest.fixture
def settings() -> Settings:
    # re-checks every second: an overwritten holder turns ArtifactChanged within the test
    return Settings(
        promotions={"tick_seconds": 0.3},
        verification={"recheck_seconds": 1.0, "retry_base_seconds": 0.5, "retry_max_seconds": 2.0},
    )


@pytest.fixture
def kubeconfig(cluster, tmp_path) -> str:
    return str(cluster.write_kubeconfig(tmp_path / "kubeconfig-alice", namespace="ml", user="alice"))


@pytest.fixture
def cli(kubeconfig, capsys, operator, aws_env):
    """`kubectl modelreg ...` (or, with modelreg=True, the `modelreg` command): (exit code, stdout, stderr)."""

    def run(*args: str, modelreg: bool = False):
        capsys.readouterr()
        code = (modelreg_command if modelreg else kubectl_modelreg)([*args, "--kubeconfig", kubeconfig])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def reason_of(kube, name: str) -> str | None:
    found = condition(kube.get("modelversions", name), "ArtifactVerified")
    return found and found["reason"]


def in_production(kube, bucket, s3) -> dict:
    """fraud v1 (Production, approved by bob and carol) and v2 (no stage), both verified."""
    register(kube, s3, bucket, 1)
    register(kube, s3, bucket, 2)
    promote(kube, "fraud-v1-to-production", 1, approvers=("bob", "carol"))
    succeeded(kube, "fraud-v1-to-production", "Promoted")
    return kube.get("modelversions", "fraud-v1")


def upload_directory(s3, bucket: str, prefix: str, files: dict[str, bytes]) -> str:
    for key, data in files.items():
        s3.put_object(Bucket=bucket, Key=prefix + key, Body=data, ChecksumAlgorithm="SHA256")
    return directory_digest((key, hashlib.sha256(data).hexdigest()) for key, data in files.items())


def register_directory(kube, bucket: str, prefix: str, digest: str, version: int, model: str = "llm") -> str:
    name = f"{model}-v{version}"
    kube.create("modelversions", version_body(name, f"s3://{bucket}/{prefix}", digest, model=model, version=version))
    wait_for(lambda: reason_of(kube, name) == "Verified", what=f"{name} verified")
    return name


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".fetch-" in p.name or ".old-" in p.name)


def test_resolve_answers_the_production_holder_from_verified_state(cli, kube, s3, bucket, kubeconfig):
    holder = in_production(kube, bucket, s3)
    uri, sha256 = holder["spec"]["artifact"]["uri"], holder["status"]["artifact"]["sha256"]
    assert sha256 == hashlib.sha256(b"fraud weights v1").hexdigest()

    assert cli("resolve", "fraud@production") == (0, uri + "\n", "")
    code, out, _ = cli("resolve", "fraud@Production", "-o", "json")
    found = json.loads(out)
    assert code == 0 and {k: found[k] for k in ("uri", "sha256", "version", "name", "stage", "approvers")} == {
        "uri": uri,
        "sha256": sha256,
        "version": 1,
        "name": "fraud-v1",
        "stage": "Production",
        "approvers": ["bob", "carol"],
    }
    assert "versionId" in found and found["namespace"] == "ml"
    assert yaml.safe_load(cli("resolve", "fraud@production", "-o", "yaml")[1]) == found
    code, out, _ = cli("resolve", "fraud@production", "-o", "env")
    assert code == 0 and out.splitlines() == [
        "MODEL_NAME=fraud",
        "MODEL_VERSION=1",
        f"MODEL_URI={uri}",
        f"MODEL_SHA256={sha256}",
        "MODEL_STAGE=Production",
    ]
    code, out, _ = cli("resolve", "fraud@2", "-o", "json")  # a version number: its owner, whatever its stage
    assert code == 0 and json.loads(out)["name"] == "fraud-v2" and json.loads(out)["stage"] == ""

    # the library answers the same, without the CLI
    resolved = client.resolve("fraud@production", namespace="ml", kubeconfig=kubeconfig)
    assert (resolved.uri, resolved.sha256, resolved.approvers) == (uri, sha256, ("bob", "carol"))


def test_resolve_exits_1_with_one_line_when_nothing_proven_holds_it(cli, kube, s3, bucket, kubeconfig):
    in_production(kube, bucket, s3)
    for reference, message in (
        ("fraud@staging", "error: no version of fraud holds Staging in namespace ml"),
        ("ghost@production", "error: model 'ghost' has no registered versions in namespace ml"),
        ("fraud@7", "error: model 'fraud' has no version 7 in namespace ml"),
    ):
        assert cli("resolve", reference) == (1, "", message + "\n")
    code, out, err = cli("resolve", "fraud")
    assert (code, out) == (2, "") and "expected MODEL@STAGE or MODEL@VERSION" in err

    # an unverified version: its bytes are not what it names
    s3.put_object(Bucket=bucket, Key="fraud/3.onnx", Body=b"not what was registered")
    kube.create(
        "modelversions",
        {
            "apiVersion": "modelreg.io/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": "fraud-v3"},
            "spec": {
                "modelName": "fraud",
                "version": 3,
                "artifact": {"uri": f"s3://{bucket}/fraud/3.onnx", "sha256": "0" * 64},
            },
        },
    )
    wait_for(lambda: reason_of(kube, "fraud-v3") == "ChecksumMismatch", what="fraud-v3 ChecksumMismatch")
    code, out, err = cli("resolve", "fraud@3")
    assert (code, out) == (1, "") and err.count("\n") == 1
    assert "fraud-v3 (version 3 of fraud) is registered but its artifact is not proven" in err

    # the Production holder's object overwritten: its proof is no longer current
    s3.put_object(Bucket=bucket, Key="fraud/1.onnx", Body=b"tampered weights")
    wait_for(lambda: reason_of(kube, "fraud-v1") == "ArtifactChanged", what="fraud-v1 ArtifactChanged")
    code, out, err = cli("resolve", "fraud@production")
    assert (code, out) == (1, "") and err.count("\n") == 1
    assert "fraud-v1 holds Production but its artifact is not proven: ArtifactVerified=False (ArtifactChanged" in err
    with pytest.raises(client.Unresolvable):
        client.resolve("fraud@production", namespace="ml", kubeconfig=kubeconfig)


def test_fetch_puts_the_proven_bytes_at_dir(cli, kube, s3, bucket, tmp_path):
    in_production(kube, bucket, s3)
    target = tmp_path / "serve" / "model"
    target.parent.mkdir()
    code, out, err = cli("fetch", "fraud@production", "--to", str(target), modelreg=True)
    assert code == 0, err
    assert err == ""  # no progress bar when stderr is not a terminal
    assert tree(target) == {"1.onnx": b"fraud weights v1"}
    assert hashlib.sha256((target / "1.onnx").read_bytes()).hexdigest() in out
    assert oct(target.stat().st_mode & 0o777) == "0o755"  # readable by a serving container's other user
    assert leftovers(target.parent) == []

    # an existing, non-empty target is never written into; --replace swaps it once proven
    code, _, err = cli("fetch", "fraud@2", "--to", str(target), modelreg=True)
    assert code == 1 and "exists and is not empty" in err and tree(target) == {"1.onnx": b"fraud weights v1"}
    assert cli("fetch", "fraud@2", "--to", str(target), "--replace", modelreg=True)[0] == 0
    assert tree(target) == {"2.onnx": b"fraud weights v2"} and leftovers(target.parent) == []


def test_a_directory_artifact_is_fetched_whole(cli, kube, s3, bucket, tmp_path):
    files = {
        "config.json": b'{"layers": 2}',
        "tokenizer/vocab.txt": b"a\nb\n",
        "weights/shard-00001.bin": os.urandom(3 * 1024 * 1024 + 17),
        "weights/shard-00002.bin": b"",
    }
    digest = upload_directory(s3, bucket, "llm/1/", files)
    register_directory(kube, bucket, "llm/1/", digest, 1)
    target = tmp_path / "llm"
    code, out, err = cli("fetch", "llm@1", "--to", str(target), modelreg=True)
    assert code == 0, err
    assert tree(target) == files and f"sha256 {digest}" in out and "4 file(s)" in out


def test_a_member_keyed_to_escape_writes_nothing_outside_dir(cli, kube, s3, bucket, tmp_path):
    files = {"config.json": b"{}", "../escape": b"planted by whoever may write under the prefix"}
    digest = upload_directory(s3, bucket, "llm/2/", files)
    assert "llm/2/../escape" in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    register_directory(kube, bucket, "llm/2/", digest, 2)  # the operator proves bytes, not names
    work = tmp_path / "work"
    work.mkdir()
    code, out, err = cli("fetch", "llm@2", "--to", str(work / "model"), modelreg=True)
    assert (code, out) == (1, "") and "'../escape' could land outside the target directory" in err
    assert list(work.iterdir()) == []  # no DIR, no escape, no temporary directory
    assert not (tmp_path / "escape").exists()


def test_an_artifact_overwritten_after_verification_is_refused(cli, kube, s3, bucket, tmp_path, kubeconfig):
    holder = in_production(kube, bucket, s3)
    resolved = client.resolve("fraud@production", namespace="ml", kubeconfig=kubeconfig)
    s3.put_object(Bucket=bucket, Key="fraud/1.onnx", Body=b"tampered weights")  # after it was proven
    target = tmp_path / "model"
    with pytest.raises(client.FetchError, match="no longer the object that was proven"):
        client.fetch(resolved, target)
    assert not target.exists() and leftovers(tmp_path) == []

    # the same through the serving container's variables; the target exists (an empty directory)
    target.mkdir()
    env = {
        **os.environ,
        "MODEL_URI": holder["spec"]["artifact"]["uri"],
        "MODEL_SHA256": holder["status"]["artifact"]["sha256"],
    }
    fetch = [sys.executable, "-m", "modelreg.sandbox_cli", "fetch", "--from-env", "--to", str(target)]
    result = subprocess.run(fetch, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"error: sha256 mismatch for {holder['spec']['artifact']['uri']}")
    assert list(target.iterdir()) == [] and leftovers(tmp_path) == []

    # a directory whose member changed after verification: nothing at DIR either
    digest = upload_directory(s3, bucket, "llm/3/", {"a.bin": b"a", "b.bin": b"b"})
    register_directory(kube, bucket, "llm/3/", digest, 3)
    resolved = client.resolve("llm@3", namespace="ml", kubeconfig=kubeconfig)
    s3.put_object(Bucket=bucket, Key="llm/3/b.bin", Body=b"B")
    with pytest.raises(client.FetchError, match=f"sha256 mismatch for s3://{bucket}/llm/3/: expected {digest}"):
        client.fetch(resolved, tmp_path / "llm")
    assert not (tmp_path / "llm").exists() and leftovers(tmp_path) == []
    # and once the operator has seen it, resolve refuses it before any byte is read
    wait_for(lambda: reason_of(kube, "llm-v3") == "ArtifactChanged", what="llm-v3 ArtifactChanged")
    code, _, err = cli("fetch", "llm@3", "--to", str(tmp_path / "llm"), modelreg=True)
    assert code == 1 and "its artifact is not proven" in err and not (tmp_path / "llm").exists()


def test_fetch_from_env_as_a_serving_container_sees_it(cli, kube, s3, bucket, tmp_path):
    in_production(kube, bucket, s3)
    out = cli("resolve", "fraud@production", "-o", "env")[1]
    env = {**os.environ, **dict(line.split("=", 1) for line in out.splitlines())}
    target = tmp_path / "model"
    fetch = [sys.executable, "-m", "modelreg.sandbox_cli", "fetch", "--from-env", "--to", str(target)]
    result = subprocess.run(fetch, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert tree(target) == {"1.onnx": b"fraud weights v1"} and result.stderr == ""

    # a key with `$`: the operator wrote `$$`, Kubernetes made it `$` again; fetch takes it as it is
    s3.put_object(Bucket=bucket, Key="odd/$(HOME)/m.bin", Body=b"dollars")
    env.update(MODEL_URI=f"s3://{bucket}/odd/$(HOME)/m.bin", MODEL_SHA256=hashlib.sha256(b"dollars").hexdigest())
    env.pop("MODEL_VERSION_ID", None)
    result = subprocess.run([*fetch[:-1], str(tmp_path / "odd")], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert tree(tmp_path / "odd") == {"m.bin": b"dollars"}


def test_a_symlink_in_dir_is_not_followed(cli, kube, s3, bucket, tmp_path):
    digest = upload_directory(s3, bucket, "llm/4/", {"sub/weights.bin": b"w", "config.json": b"{}"})
    register_directory(kube, bucket, "llm/4/", digest, 4)
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "model"
    target.mkdir()
    (target / "sub").symlink_to(outside)  # planted before the fetch

    code, _, err = cli("fetch", "llm@4", "--to", str(target), modelreg=True)
    assert code == 1 and "exists and is not empty" in err
    assert cli("fetch", "llm@4", "--to", str(target), "--replace", modelreg=True)[0] == 0
    assert list(outside.iterdir()) == []  # nothing written through the link
    assert not (target / "sub").is_symlink() and tree(target) == {"config.json": b"{}", "sub/weights.bin": b"w"}

    link = tmp_path / "link"
    link.symlink_to(outside)  # DIR itself a symbolic link
    code, _, err = cli("fetch", "llm@4", "--to", str(link), modelreg=True)
    assert code == 1 and "is a symbolic link" in err and list(outside.iterdir()) == []


def test_a_versioned_bucket_serves_the_very_version_proven(cli, kube, s3, bucket, tmp_path, kubeconfig):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    holder = in_production(kube, bucket, s3)
    proven_version = holder["status"]["artifact"]["versionId"]
    resolved = client.resolve("fraud@production", namespace="ml", kubeconfig=kubeconfig)
    assert resolved.version_id == proven_version and proven_version
    assert resolved.env()["MODEL_VERSION_ID"] == proven_version
    s3.put_object(Bucket=bucket, Key="fraud/1.onnx", Body=b"a newer upload")  # a new version on top
    fetched = client.fetch(resolved, tmp_path / "model")  # reads the version proven, not the latest
    assert tree(tmp_path / "model") == {"1.onnx": b"fraud weights v1"} and fetched.sha256 == resolved.sha256
