"""e2e tier: the same scenarios on a real cluster (kind, through pytest-kind).

Runs wherever `kind` is on PATH and a Docker daemon answers; skips with the reason otherwise.
The operator runs on the host against the kind cluster's kubeconfig; S3 is moto on loopback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import CRD_FILES, KUBECONFIG


def missing_prerequisite() -> str | None:
    if shutil.which("kind") is None:
        return "`kind` is not on PATH (install kind to run the e2e tier)"
    if shutil.which("docker") is None:
        return "the Docker CLI is not installed"
    socket = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://")
    if not os.path.exists(socket):
        return f"no Docker daemon socket at {socket}"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "the Docker daemon does not answer `docker info`"
    return None


REASON = missing_prerequisite()


def pytest_collection_modifyitems(config, items):
    if REASON is None:
        return
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=f"e2e needs a real cluster: {REASON}"))


@pytest.fixture(scope="session")
def real_cluster(kind_cluster) -> Iterator[object]:
    """A kind cluster with our CRDs, its kubeconfig where the official client will read it."""
    KUBECONFIG.write_text(kind_cluster.kubeconfig_path.read_text())
    for crd in CRD_FILES:
        kind_cluster.kubectl("apply", "-f", str(crd))
    for crd in ("modelversions.modelreg.io", "modelpromotions.modelreg.io"):
        kind_cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    kind_cluster.kubectl("create", "namespace", "ml")
    yield kind_cluster
