"""A stand-in for the Deployment controller, which an emulated API server does not have.

It completes each new pod template's rollout (observedGeneration, replica counts,
conditions), or fails it with ProgressDeadlineExceeded when the Deployment's annotation
`simulate.modelreg.io/fail-versions` lists the version the template carries.
"""

from __future__ import annotations

import threading
from typing import Any

import kubernetes

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


class SimulatedDeploymentController:
    def __init__(
        self, config: kubernetes.client.Configuration, namespaces: list[str] | None, period: float = 0.2
    ) -> None:
        """`config`: where the API is and who the controller is (EmulatedCluster.configuration);
        `namespaces` None: every namespace."""
        self.apps = kubernetes.client.AppsV1Api(kubernetes.client.ApiClient(config))
        self.namespaces, self.period = namespaces, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deployment-controller", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            for namespace in self.namespaces or [None]:
                try:
                    self.sync(namespace)
                except kubernetes.client.ApiException:
                    continue  # a conflicting write: next round

    def sync(self, namespace: str | None) -> None:
        client = self.apps.api_client
        listing = client.sanitize_for_serialization(
            self.apps.list_namespaced_deployment(namespace)
            if namespace
            else self.apps.list_deployment_for_all_namespaces()
        )
        for deployment in listing["items"]:
            status = simulated_status(deployment)
            if status is not None:
                self.apps.patch_namespaced_deployment_status(
                    deployment["metadata"]["name"],
                    deployment["metadata"]["namespace"],
                    {"status": status},
                    _content_type="application/merge-patch+json",
                )

    def start(self) -> SimulatedDeploymentController:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
