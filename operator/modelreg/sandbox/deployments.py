"""A stand-in for the Deployment controller, which an emulated API server does not have (and
the generic stand-in controller that testing.serving_targets uses for KServe and Argo Rollouts).

It completes each new pod template's rollout (observedGeneration, replica counts,
conditions), or fails it with ProgressDeadlineExceeded when the Deployment's annotation
`simulate.modelreg.io/fail-versions` lists the version the template carries.
"""

from __future__ import annotations

from typing import Any

import kubernetes

from modelreg.sandbox.periodic import Periodic

FAIL_VERSIONS = "simulate.modelreg.io/fail-versions"


def simulated_status(deployment: dict[str, Any]) -> dict[str, Any] | None:
    meta, spec, status = deployment["metadata"], deployment["spec"], deployment.get("status") or {}
    if status.get("observedGeneration") == meta.get("generation"):
        return None
    replicas = spec.get("replicas", 1)
    version = ((spec["template"].get("metadata") or {}).get("annotations") or {}).get("modelreg.io/version")
    failing = version and version in (meta.get("annotations") or {}).get(FAIL_VERSIONS, "").split(",")
    if failing:
        return {
            "observedGeneration": meta["generation"],
            "replicas": replicas + 1,
            "updatedReplicas": 1,
            "availableReplicas": replicas,
            "unavailableReplicas": 1,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": f'ReplicaSet "{meta["name"]}-v{version}" has timed out progressing.',
                }
            ],
        }
    return {
        "observedGeneration": meta["generation"],
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        ],
    }


class SimulatedController(Periodic):
    """Writes `simulate(obj)` (when not None) as the status of each object of one resource, every
    `period` seconds: a controller's visible effect, which an emulated API server lacks."""

    resource: tuple[str, str, str]  # group, version, plural

    def __init__(
        self, config: kubernetes.client.Configuration, namespaces: list[str] | None, period: float = 0.2
    ) -> None:
        """`config`: where the API is and who the controller is (EmulatedCluster.configuration);
        `namespaces` None: every namespace."""
        super().__init__(f"{self.resource[2]}-controller", period)
        self.custom = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(config))
        self.namespaces = namespaces

    @staticmethod
    def simulate(obj: dict[str, Any]) -> dict[str, Any] | None:
        raise NotImplementedError

    def tick(self) -> None:
        for namespace in self.namespaces or [None]:
            try:
                self.sync(namespace)
            except kubernetes.client.ApiException:
                continue  # a conflicting write: next round

    def sync(self, namespace: str | None) -> None:
        group, version, plural = self.resource
        listing = (
            self.custom.list_namespaced_custom_object(group, version, namespace, plural)
            if namespace
            else self.custom.list_cluster_custom_object(group, version, plural)
        )
        for obj in listing["items"]:
            status = self.simulate(obj)
            if status is not None:
                meta = obj["metadata"]
                self.custom.patch_namespaced_custom_object_status(
                    group, version, meta["namespace"], plural, meta["name"], {"status": status}
                )


class SimulatedDeploymentController(SimulatedController):
    resource = ("apps", "v1", "deployments")
    simulate = staticmethod(simulated_status)
