"""The Helm chart on a real cluster: install (cert-manager mode), run the quickstart, see the
operator write status through its own admission webhook, and see a self-approval denied."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.conftest import ROOT

CERT_MANAGER = "https://github.com/cert-manager/cert-manager/releases/download/v1.16.2/cert-manager.yaml"
IMAGE = "modelreg-operator:e2e"


def run(*args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(real_cluster):
    kubeconfig = str(real_cluster.kubeconfig_path)
    run("docker", "build", "-t", IMAGE, str(ROOT))
    run("kind", "load", "docker-image", IMAGE, "--name", real_cluster.name)
    real_cluster.kubectl("apply", "-f", CERT_MANAGER)
    real_cluster.kubectl("-n", "cert-manager", "rollout", "status", "deploy/cert-manager-webhook", "--timeout=300s")
    run(
        str(ROOT / ".venv/bin/helm"),
        "install",
        "modelreg",
        str(ROOT / "charts/modelreg"),
        "--kubeconfig",
        kubeconfig,
        "--namespace",
        "modelreg-system",
        "--create-namespace",
        "--set",
        "crds.enabled=false",
        "--set",
        "image.repository=modelreg-operator",
        "--set",
        "image.tag=e2e",
        "--set",
        "image.pullPolicy=Never",
        "--wait",
        "--timeout",
        "300s",
    )
    yield real_cluster


def test_quickstart_through_the_chart(installed):
    installed.kubectl("apply", "-f", str(ROOT / "examples/quickstart/"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        reason = installed.kubectl(
            "get",
            "mv",
            "fraud-v1",
            "-n",
            "ml",
            "-o",
            "jsonpath={.status.conditions[?(@.type=='ArtifactVerified')].reason}",
        )
        if reason:
            break
        time.sleep(2)
    assert reason  # the operator (in the cluster) wrote status: its webhook admitted its own writes
    with pytest.raises(Exception, match="written only by the modelreg operator"):
        installed.kubectl(
            "patch",
            "mv",
            "fraud-v1",
            "-n",
            "ml",
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status":{"stage":"Production"}}',
        )
