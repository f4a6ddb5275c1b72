"""Leader election against a slow and a silent API server: renew-deadline semantics, as client-go's."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import kubernetes

from modelreg.config import Settings
from modelreg.sandbox.harness import OperatorThread
from tests.integration.conftest import NAMESPACE, wait_for


def lease(kube):
    leases = kubernetes.client.CoordinationV1Api(kube.client)
    return leases.read_namespaced_lease("modelreg-operator", "modelreg-system")


def test_an_api_answering_lease_calls_after_3s_keeps_one_leader(cluster, aws_env, kube, start_operator):
    settings = Settings(promotions={"tick_seconds": 0.3})  # the defaults: lease 15 s, deadline 10 s, retry 2 s
    leader = start_operator(settings)
    standby = OperatorThread(settings, [NAMESPACE]).start(wait=False)
    try:
        time.sleep(2)
        before = lease(kube).spec
        cluster.delay("*", "leases", 3.0)  # each Lease call, the leader's and the standby's
        time.sleep(32)  # two leases' worth
        cluster.delay("*", "leases", None)
        after = lease(kube).spec
        assert leader.running and leader.error is None  # renewed within the deadline all along
        assert not standby.running
        assert after.holder_identity == before.holder_identity
        assert after.lease_transitions == before.lease_transitions  # no handover
        assert (after.renew_time - before.renew_time).total_seconds() > 20  # renewed while slow
    finally:
        standby.stop()


def test_an_api_that_stops_answering_stops_the_leader_before_its_lease_ends(cluster, aws_env, kube, start_operator):
    election = {"lease_seconds": 5, "renew_deadline_seconds": 2.5, "retry_seconds": 0.5}
    settings = Settings(promotions={"tick_seconds": 0.3}, election=election)
    leader = start_operator(settings)
    standby = OperatorThread(settings, [NAMESPACE]).start(wait=False)
    try:
        time.sleep(1.5)
        assert not standby.running
        cluster.delay("*", "leases", 8.0)  # silent: no Lease call is answered in time
        wait_for(lambda: not leader.running, timeout=10, what="the leader stopping")
        stopped = datetime.now(UTC)
        assert isinstance(leader.error, SystemExit) and leader.error.code == 1  # lost, restarted by its Deployment
        cluster.delay("*", "leases", None)
        held = lease(kube).spec
        # The last renewal it wrote: a standby may take over only a lease after it (as it sees it)
        assert (stopped - held.renew_time).total_seconds() < held.lease_duration_seconds
        wait_for(lambda: standby.running, timeout=20, what="the standby taking over")
        taken = lease(kube).spec
        assert taken.holder_identity != held.holder_identity
        assert taken.lease_transitions == (held.lease_transitions or 0) + 1
    finally:
        standby.stop()


def test_the_lease_holder_labels_its_own_pod_and_unlabels_it_when_it_stops(
    cluster, aws_env, kube, start_operator, monkeypatch
):
    # The webhook and metrics Services select the pod labelled modelreg.io/leader: every replica is
    # ready (a disruption budget can let a drain evict either), traffic reaches the Lease holder.
    core = kubernetes.client.CoreV1Api(kube.client)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "modelreg-0", "labels": {"modelreg.io/leader": "true"}},  # left by a crash
        "spec": {"containers": [{"name": "operator", "image": "modelreg"}]},
    }
    core.create_namespaced_pod("modelreg-system", pod)
    monkeypatch.setenv("POD_NAME", "modelreg-0")
    monkeypatch.setenv("POD_NAMESPACE", "modelreg-system")

    def leader_label() -> str | None:
        return (core.read_namespaced_pod("modelreg-0", "modelreg-system").metadata.labels or {}).get(
            "modelreg.io/leader"
        )

    settings = Settings(promotions={"tick_seconds": 0.3})
    leader = start_operator(settings)
    wait_for(lambda: leader_label() == "true", what="the leader's label on its pod")
    leader.stop()
    wait_for(lambda: leader_label() is None, what="the label gone with the leadership")
