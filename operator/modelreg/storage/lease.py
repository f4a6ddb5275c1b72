"""A coordination.k8s.io/v1 Lease as a lock between replicas (blocking calls: the elector runs in
threads of its own, before and beside the operator's event loop)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kubernetes

from modelreg.domain.leadership import LeaseState, may_hold

MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"


def _parse(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class LeaseLock:
    def __init__(
        self, client: kubernetes.client.ApiClient, namespace: str, name: str, identity: str, duration: float
    ) -> None:
        self.api = kubernetes.client.CoordinationV1Api(client)
        self.namespace, self.name, self.identity, self.duration = namespace, name, identity, duration

    def _read(self) -> Any:
        try:
            return self.api.read_namespaced_lease(self.name, self.namespace)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def hold(self) -> bool:
        """Take or renew the lease; False while another replica holds it (or won a race for it)."""
        now = datetime.now(UTC)
        stamp = now.strftime(MICRO)
        spec = {"holderIdentity": self.identity, "renewTime": stamp, "leaseDurationSeconds": int(self.duration)}
        lease = self._read()
        try:
            if lease is None:
                body = {"metadata": {"name": self.name}, "spec": {**spec, "acquireTime": stamp, "leaseTransitions": 0}}
                self.api.create_namespaced_lease(self.namespace, body)
                return True
            state = LeaseState(
                lease.spec.holder_identity, _parse(lease.spec.renew_time), lease.spec.lease_duration_seconds or 0
            )
            if not may_hold(state, self.identity, now):
                return False
            if state.holder != self.identity:
                spec.update(acquireTime=stamp, leaseTransitions=(lease.spec.lease_transitions or 0) + 1)
            # resourceVersion precondition: of two replicas taking an expired lease, one wins
            patch = {"metadata": {"resourceVersion": lease.metadata.resource_version}, "spec": spec}
            self.api.patch_namespaced_lease(self.name, self.namespace, patch)
            return True
        except kubernetes.client.ApiException as exc:
            if exc.status == 409:
                return False
            raise

    def release(self) -> None:
        """Let a standby take over at once (a graceful stop), if the lease is still ours."""
        lease = self._read()
        if lease is None or lease.spec.holder_identity != self.identity:
            return
        patch = {"metadata": {"resourceVersion": lease.metadata.resource_version}, "spec": {"holderIdentity": None}}
        try:
            self.api.patch_namespaced_lease(self.name, self.namespace, patch)
        except kubernetes.client.ApiException as exc:
            if exc.status != 409:
                raise
