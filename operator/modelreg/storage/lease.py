"""A coordination.k8s.io/v1 Lease as a lock between replicas (blocking calls: the elector runs in
threads of its own, before and beside the operator's event loop)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kubernetes

from modelreg.domain.leadership import LeaseState, may_hold

MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"


class LeaseLock:
    def __init__(
        self,
        client: kubernetes.client.ApiClient,
        namespace: str,
        name: str,
        identity: str,
        duration: float,
        timeout: float,
    ) -> None:
        self.api = kubernetes.client.CoordinationV1Api(client)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.duration = math.ceil(duration)  # what the Lease says is never less than what is waited
        self.timeout = timeout  # the default bound of each call: a hung connection must not keep a leader
        self._seen: tuple[Any, ...] | None = None  # (holder, renewTime) last seen, and when
        self._seen_at = 0.0
        # The resourceVersion our last write left: a renewal is then one call, not a read and a
        # write, so a slow API server costs one round trip per renewal.
        self._ours: str | None = None
        self.holder: str | None = None  # who held it when hold() last answered False (for the log)

    def _read(self, timeout: float) -> Any:
        try:
            return self.api.read_namespaced_lease(self.name, self.namespace, _request_timeout=timeout)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def hold(self, timeout: float | None = None) -> bool:
        """Take or renew the lease; False while another replica holds it (or won a race for it).
        `timeout` bounds the whole attempt, each call getting what is left of it (a renewal passes
        the time left before its renew deadline)."""
        ends = time.monotonic() + (self.timeout if timeout is None else timeout)

        def left() -> float:
            remaining = ends - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the Lease was not answered in time")
            return remaining

        now = datetime.now(UTC)
        stamp = now.strftime(MICRO)
        spec = {"holderIdentity": self.identity, "renewTime": stamp, "leaseDurationSeconds": int(self.duration)}
        if self._ours is not None and self._renew(spec, left()):
            return True
        while True:
            lease = self._read(left())
            ours = lease is not None and lease.spec.holder_identity == self.identity
            try:
                return self._take(lease, spec, stamp, left)
            except kubernetes.client.ApiException as exc:
                if exc.status != 409:
                    raise
                if not ours:  # another replica won the race for it
                    self.holder = "(a concurrent write)"
                    return False
                # Ours, changed since read: a renewal of ours that timed out here but was applied
                # there. Read it again, within the time left.

    def _take(self, lease: Any, spec: dict[str, Any], stamp: str, left: Callable[[], float]) -> bool:
        if lease is None:
            body = {"metadata": {"name": self.name}, "spec": {**spec, "acquireTime": stamp, "leaseTransitions": 0}}
            self._keep(self.api.create_namespaced_lease(self.namespace, body, _request_timeout=left()))
            return True
        seen = (lease.spec.holder_identity, str(lease.spec.renew_time))
        if seen != self._seen:  # renewed (or changed hands) since last asked: the wait starts over
            self._seen, self._seen_at = seen, time.monotonic()
        state = LeaseState(
            lease.spec.holder_identity, time.monotonic() - self._seen_at, lease.spec.lease_duration_seconds or 0
        )
        if not may_hold(state, self.identity):
            self.holder = state.holder
            return False
        if state.holder != self.identity:
            spec = {**spec, "acquireTime": stamp, "leaseTransitions": (lease.spec.lease_transitions or 0) + 1}
        # resourceVersion precondition: of two replicas taking an expired lease, one wins
        patch = {"metadata": {"resourceVersion": lease.metadata.resource_version}, "spec": spec}
        self._keep(self.api.patch_namespaced_lease(self.name, self.namespace, patch, _request_timeout=left()))
        return True

    def _renew(self, spec: dict[str, Any], timeout: float) -> bool:
        """Renew what our last write left, in one call; False (read it again) if anyone wrote since."""
        assert self._ours is not None
        patch = {"metadata": {"resourceVersion": self._ours}, "spec": spec}
        try:
            self._keep(self.api.patch_namespaced_lease(self.name, self.namespace, patch, _request_timeout=timeout))
        except kubernetes.client.ApiException as exc:
            if exc.status not in (404, 409):
                raise
            self._ours = None
            return False
        return True

    def _keep(self, lease: Any) -> None:
        self._ours = lease.metadata.resource_version

    def release(self) -> None:
        """Let a standby take over at once (a graceful stop), if the lease is still ours."""
        self._ours = None
        lease = self._read(self.timeout)
        if lease is None or lease.spec.holder_identity != self.identity:
            return
        patch = {"metadata": {"resourceVersion": lease.metadata.resource_version}, "spec": {"holderIdentity": None}}
        try:
            self.api.patch_namespaced_lease(self.name, self.namespace, patch, _request_timeout=self.timeout)
        except kubernetes.client.ApiException as exc:
            if exc.status != 409:
                raise


LEADER_LABEL = "modelreg.io/leader"


class LeaderLabel:
    """The label on this replica's own pod that the webhook and metrics Services select: both
    replicas are ready (a PodDisruptionBudget can then let a drain evict either), and traffic
    reaches the Lease holder alone. Pod name and namespace come from the Downward API (POD_NAME,
    POD_NAMESPACE); outside a pod there is nothing to label."""

    def __init__(self, client: kubernetes.client.ApiClient, name: str | None, namespace: str | None) -> None:
        self.api = kubernetes.client.CoreV1Api(client)
        self.name, self.namespace = name, namespace

    def mark(self, leading: bool, timeout: float = 5.0) -> None:
        if not self.name or not self.namespace:
            return
        body = {"metadata": {"labels": {LEADER_LABEL: "true" if leading else None}}}
        self.api.patch_namespaced_pod(self.name, self.namespace, body, _request_timeout=timeout)
