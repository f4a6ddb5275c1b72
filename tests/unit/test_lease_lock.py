"""LeaseLock against a stand-in Lease API: renewals are one call, and a renewal of ours that timed
out here but was applied there (the Lease changed under us) does not cost the Lease."""

from __future__ import annotations

from types import SimpleNamespace

import kubernetes
import pytest

from modelreg.storage.lease import LeaseLock


class Leases:
    """One Lease, with resourceVersion preconditions, as the API server keeps it."""

    def __init__(self) -> None:
        self.spec: dict | None = None
        self.version = 0
        self.calls: list[str] = []
        self.applied_late: dict | None = None  # a patch the client gave up on, applied before the next call

    def _obj(self) -> SimpleNamespace:
        spec = self.spec or {}
        return SimpleNamespace(
            metadata=SimpleNamespace(resource_version=str(self.version)),
            spec=SimpleNamespace(
                holder_identity=spec.get("holderIdentity"),
                renew_time=spec.get("renewTime"),
                lease_duration_seconds=spec.get("leaseDurationSeconds"),
                lease_transitions=spec.get("leaseTransitions"),
            ),
        )

    def _late(self) -> None:
        if self.applied_late is not None:
            self.spec, self.applied_late = {**(self.spec or {}), **self.applied_late}, None
            self.version += 1

    def read_namespaced_lease(self, name, namespace, _request_timeout=None):
        self.calls.append("read")
        self._late()
        if self.spec is None:
            raise kubernetes.client.ApiException(status=404)
        return self._obj()

    def create_namespaced_lease(self, namespace, body, _request_timeout=None):
        self.calls.append("create")
        self.spec, self.version = dict(body["spec"]), 1
        return self._obj()

    def patch_namespaced_lease(self, name, namespace, patch, _request_timeout=None):
        self.calls.append("patch")
        self._late()
        if patch["metadata"]["resourceVersion"] != str(self.version):
            raise kubernetes.client.ApiException(status=409)
        self.spec = {**(self.spec or {}), **patch["spec"]}
        self.version += 1
        return self._obj()


@pytest.fixture
def leases(monkeypatch) -> Leases:
    fake = Leases()
    monkeypatch.setattr(kubernetes.client, "CoordinationV1Api", lambda client: fake)
    return fake


def lock(name: str) -> LeaseLock:
    return LeaseLock(None, "modelreg-system", "modelreg-operator", name, duration=15, timeout=10)


def test_a_renewal_is_one_call(leases):
    me = lock("me")
    assert me.hold() and leases.calls == ["read", "create"]
    leases.calls.clear()
    assert me.hold() and leases.calls == ["patch"]  # not a read and a write: one slow round trip


def test_our_own_late_write_does_not_cost_the_lease(leases):
    me = lock("me")
    assert me.hold()
    leases.applied_late = {"renewTime": "later"}  # our previous renewal, timed out here, applied there
    leases.calls.clear()
    assert me.hold(timeout=5)
    assert leases.calls == ["patch", "read", "patch"]  # 409, read again: still ours, renewed


def test_a_lease_another_replica_holds_is_not_taken(leases):
    assert lock("other").hold()
    me = lock("me")
    assert not me.hold() and me.holder == "other"
