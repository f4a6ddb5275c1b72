"""The krew archive runs with each CPython it claims (3.11 to 3.14), and says so in one line with
another (issue 20, item 7: it held dependencies compiled for the builder's Python only)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"


def interpreter(version: str) -> Path | None:
    """A python3 of `version` (e.g. "3.12") on this machine: pyenv's, or python3.12 on PATH."""
    found = sorted(PYENV.glob(f"{version}.*/bin/python3")) if PYENV.is_dir() else []
    if found:
        return found[-1]
    on_path = shutil.which(f"python{version}")
    return Path(on_path) if on_path else None


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """scripts/build_plugin_archive.sh for this machine's platform, unpacked (wheels from PyPI)."""
    dist = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        ["bash", "scripts/build_plugin_archive.sh", "linux-amd64"],
        cwd=ROOT,
        env={**os.environ, "DIST_DIR": str(dist)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    unpacked = tmp_path_factory.mktemp("krew")
    with tarfile.open(dist / "kubectl-modelreg-linux-amd64.tar.gz") as tar:
        tar.extractall(unpacked, filter="tar")
    return unpacked


def run_with(python: Path, archive: Path, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """The plugin as krew runs it, with `python` as the python3 on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python3").unlink(missing_ok=True)
    (bin_dir / "python3").symlink_to(python)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none")}
    return subprocess.run(
        [str(archive / "kubectl-modelreg"), *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the test builds the linux-amd64 archive")
@pytest.mark.parametrize("version", ["3.11", "3.12", "3.13", "3.14"])
def test_the_archive_runs_with_each_python_it_claims(archive, version, tmp_path):
    python = interpreter(version)
    if python is None:
        pytest.skip(f"no Python {version} on this machine to run the archive with")
    assert run_with(python, archive, "--version", tmp_path=tmp_path).stdout.startswith("kubectl-modelreg ")
    # past the imports of the client (pydantic-core, PyYAML, the Kubernetes client): a one-line error
    listed = run_with(python, archive, "list", tmp_path=tmp_path)
    assert listed.returncode == 1 and listed.stderr.startswith("error: cannot load kubeconfig"), listed.stderr
    assert "ImportError" not in listed.stderr


def test_an_unsupported_python_is_told_in_one_line(archive, tmp_path):
    python = interpreter("3.10")
    if python is None:
        pytest.skip("no Python 3.10 on this machine")
    done = run_with(python, archive, "--version", tmp_path=tmp_path)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("kubectl-modelreg needs python3 3.11 to 3.14 on PATH (found: Python 3.10")
