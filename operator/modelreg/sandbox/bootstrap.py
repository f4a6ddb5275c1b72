"""What the sandbox installs when it starts, as a platform team would, and keeps installed.

The sandbox stands for a cluster on which Helm release `modelreg` in `modelreg-system` is to be
installed (README: `helm install modelreg charts/modelreg -n modelreg-system ...`). The objects the
chart templates too (the CRDs and the user ClusterRoles of examples/install/rbac.yaml) carry Helm's
ownership metadata for that release, so Helm adopts them instead of refusing to install. The
operator the sandbox runs is bound through names the chart does not use, so no Helm action changes
what it may do. `helm uninstall` deletes the user roles (the CRDs are kept: `crds.keep`); the
sandbox then creates them again, as Kubernetes' addon manager does for objects labelled
`addonmanager.kubernetes.io/mode: EnsureExists`, so alice, bob, carol and dave keep their rights.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from modelreg.sandbox.periodic import Periodic

RELEASE, RELEASE_NAMESPACE = "modelreg", "modelreg-system"
# rbac.yaml's ClusterRole and ClusterRoleBinding for the operator share the chart's names for
# release `modelreg`; the sandbox's own operator is bound under this name instead.
CHART_OPERATOR_NAME = "modelreg-operator"
SANDBOX_OPERATOR_NAME = "modelreg-sandbox-operator"
ENSURE_EXISTS = {"addonmanager.kubernetes.io/mode": "EnsureExists"}


def owned_by_release(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with the ownership metadata Helm checks before it adopts an existing object."""
    doc = copy.deepcopy(doc)
    meta = doc.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), "app.kubernetes.io/managed-by": "Helm", **ENSURE_EXISTS}
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        "meta.helm.sh/release-name": RELEASE,
        "meta.helm.sh/release-namespace": RELEASE_NAMESPACE,
    }
    return doc


def sandbox_rbac(rbac: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """rbac.yaml as the sandbox applies it: cluster-wide objects for Helm to adopt, the operator's
    ClusterRole and binding renamed out of the chart's way."""
    out = []
    for doc in rbac:
        doc = copy.deepcopy(doc)
        kind, meta = doc["kind"], doc["metadata"]
        if kind in ("ClusterRole", "ClusterRoleBinding") and meta["name"] == CHART_OPERATOR_NAME:
            meta["name"] = SANDBOX_OPERATOR_NAME
            if kind == "ClusterRoleBinding":
                doc["roleRef"]["name"] = SANDBOX_OPERATOR_NAME
        elif kind == "ClusterRole":
            doc = owned_by_release(doc)
        out.append(doc)
    return out


class EnsureExists(Periodic):
    """Creates again, every `period` seconds, each cluster-scoped object of `docs` that was deleted
    (never changes one that exists: Helm may own it meanwhile)."""

    def __init__(self, config: Any, docs: Iterable[dict[str, Any]], period: float = 2.0) -> None:
        """`config`: the official client's Configuration of whom it acts as (an administrator)."""
        # Imported here: the official client reads $KUBECONFIG once, at import (sandbox.main sets it).
        import kubernetes

        super().__init__("ensure-exists", period)
        self.retried = (kubernetes.client.ApiException,)  # e.g. created by someone else meanwhile
        self.custom = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(config))
        self.docs = [d for d in docs if (d["metadata"].get("labels") or {}).items() >= ENSURE_EXISTS.items()]

    def tick(self) -> None:
        present: dict[str, set[str]] = {}
        for doc in self.docs:
            group, _, version = doc["apiVersion"].rpartition("/")
            plural = doc["kind"].lower() + "s"  # ClusterRole, CustomResourceDefinition
            if plural not in present:
                listing = self.custom.list_cluster_custom_object(group, version, plural)
                present[plural] = {item["metadata"]["name"] for item in listing["items"]}
            if doc["metadata"]["name"] not in present[plural]:
                self.custom.create_cluster_custom_object(group, version, plural, doc)
