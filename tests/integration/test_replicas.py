"""Two replicas: one runs, the other waits; it takes over within seconds, losing and repeating nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import kubernetes
import pytest

from modelreg.config import Settings
from modelreg.sandbox.harness import OperatorThread
from tests.integration.conftest import NAMESPACE, wait_for
from tests.integration.promotion_helpers import approve, promote, register, succeeded

ELECTION = {"lease_seconds": 3, "renew_deadline_seconds": 2, "retry_seconds": 0.5}


@pytest.fixture
def settings() -> Settings:
    return Settings(promotions={"tick_seconds": 0.3}, election=ELECTION)


@pytest.fixture
def standby(cluster, aws_env, settings):
    started: list[OperatorThread] = []

    def start() -> OperatorThread:
        replica = OperatorThread(settings, [NAMESPACE]).start(wait=False)
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.stop()


def lease(kube):
    leases = kubernetes.client.CoordinationV1Api(kube.client)
    return leases.read_namespaced_lease("modelreg-operator", "modelreg-system")


def test_the_standby_takes_over_when_the_active_replica_stops(operator, standby, kube, s3, bucket):
    second = standby()
    v1 = register(kube, s3, bucket, 1)
    time.sleep(1.5)
    assert not second.running  # alive, not running: no second writer
    promote(kube, "p", 1)

    stopped = time.monotonic()
    operator.stop()
    wait_for(lambda: second.running, timeout=10, what="the standby running")
    took_over = time.monotonic() - stopped
    assert took_over < 3.0, took_over  # a graceful stop hands the Lease over at once

    # Until the new leader serves the webhook (here: its own port, which it writes into the webhook
    # configuration; on a cluster: the same Service once it is ready), approvals fail closed.
    wait_for(lambda: _approved(kube), timeout=10, what="approvals admitted by the new leader")
    done = succeeded(kube, "p", "Promoted")
    assert [m["toStage"] for m in done["status"]["moves"]] == ["Production"]
    after = kube.get("modelversions", "fraud-v1")
    assert [h["stage"] for h in after["status"]["stageHistory"]] == ["Production"]  # moved once
    assert after["status"]["lastCheck"]["time"] == v1["status"]["lastCheck"]["time"]  # not due: not re-checked
    register(kube, s3, bucket, 2)  # and new work is done


REPLICA = """
import sys
from modelreg.config import Settings
from modelreg.main import run_operator
from modelreg.sandbox.harness import with_test_trust
election = {"lease_seconds": 3, "renew_deadline_seconds": 2, "retry_seconds": 0.5}
run_operator(with_test_trust(Settings(election=election)), [sys.argv[1]])
"""


def test_a_replica_stopped_by_sigterm_exits_at_once_and_releases_its_lease(cluster, aws_env, kube, tmp_path):
    # As the kubelet stops a pod: SIGTERM to the main process (which holds the Lease).
    script = tmp_path / "replica.py"
    script.write_text(REPLICA)
    replica = subprocess.Popen([sys.executable, str(script), NAMESPACE], env=dict(os.environ))
    try:
        wait_for(lambda: _holder(kube), timeout=30, what="the replica holding the Lease")
        time.sleep(1)  # running: kopf's watches and the operator's tasks started
        replica.send_signal(signal.SIGTERM)
        assert replica.wait(timeout=15) == 0  # not stuck until the kubelet's SIGKILL
        assert _holder(kube) is None  # a standby takes over at once, not after leaseDurationSeconds
    finally:
        if replica.poll() is None:
            replica.kill()


def _holder(kube) -> str | None:
    try:
        return lease(kube).spec.holder_identity
    except kubernetes.client.ApiException:
        return None


def _approved(kube) -> bool:
    try:
        approve(kube, "p", "bob", "carol")
    except kubernetes.client.ApiException as exc:
        assert exc.status == 500 and "failed calling webhook" in exc.body  # closed, never open
        return False
    return True


def test_a_lease_its_holder_stopped_renewing_is_taken_within_its_duration(cluster, kube, standby, s3, bucket):
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {
        "metadata": {"name": "modelreg-operator"},
        "spec": {"holderIdentity": "crashed-replica", "renewTime": now, "leaseDurationSeconds": 3},
    }
    kubernetes.client.CoordinationV1Api(kube.client).create_namespaced_lease("modelreg-system", body)
    started = time.monotonic()
    replica = standby()
    time.sleep(1.5)
    assert not replica.running  # the crashed holder's lease has not run out yet
    wait_for(lambda: replica.running, timeout=10, what="the takeover")
    assert 2.5 < time.monotonic() - started < 6.0
    assert lease(kube).spec.holder_identity != "crashed-replica" and lease(kube).spec.lease_transitions == 1
    register(kube, s3, bucket, 1)


def test_a_standby_answers_its_liveness_probe():
    import urllib.error
    import urllib.request

    from modelreg.main import _alive_while_waiting
    from modelreg.sandbox.harness import free_port

    port = free_port()
    with _alive_while_waiting(f"http://127.0.0.1:{port}/healthz"):
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).status == 200
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5)
    with pytest.raises(urllib.error.URLError):  # closed before kopf binds the same port
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
