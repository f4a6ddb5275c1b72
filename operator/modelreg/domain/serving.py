"""Serving Deployments: which opt in, what they should run, and how their rollout is going."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelreg.models.stages import Stage

MODEL_LABEL = "modelreg.io/model"  # on Deployments (opt-in) and on ModelVersions (kept current)
STAGE_LABEL = "modelreg.io/stage"  # on ModelVersions
STAGE_ANNOTATION = "modelreg.io/stage"
CONTAINER_ANNOTATION = "modelreg.io/container"
VERSION_ANNOTATION = "modelreg.io/version"
MODEL_ENV = ("MODEL_NAME", "MODEL_VERSION", "MODEL_URI", "MODEL_SHA256", "MODEL_VERSION_ID")


def escape_env(value: str) -> str:
    """Kubernetes expands `$(VAR)` in env values at container start; `$$` is a literal `$`."""
    return value.replace("$", "$$")


@dataclass(frozen=True)
class Served:
    """What a Deployment serves: one registered version, as it was proven."""

    model: str
    version: int
    uri: str
    sha256: str
    version_id: str = ""  # the S3 VersionId that was verified (versioned buckets)

    @classmethod
    def of(cls, model_version: Mapping[str, Any]) -> Served:
        spec = model_version["spec"]
        proven = (model_version.get("status") or {}).get("artifact") or {}
        return cls(
            spec["modelName"],
            spec["version"],
            spec["artifact"]["uri"],
            spec["artifact"]["sha256"],
            proven.get("versionId") or "",
        )

    def env(self) -> dict[str, str]:
        values = (self.model, str(self.version), escape_env(self.uri), self.sha256, escape_env(self.version_id))
        return {k: v for k, v in zip(MODEL_ENV, values, strict=True) if v or k != "MODEL_VERSION_ID"}


def stage_of(deployment: Mapping[str, Any]) -> str:
    return (deployment["metadata"].get("annotations") or {}).get(STAGE_ANNOTATION, Stage.PRODUCTION)


class MisconfiguredDeployment(ValueError):
    """The Deployment's modelreg annotations cannot be served (e.g. a container that does not exist)."""


def _container_index(deployment: Mapping[str, Any]) -> int:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    wanted = (deployment["metadata"].get("annotations") or {}).get(CONTAINER_ANNOTATION)
    if wanted is None:
        return 0
    for index, container in enumerate(containers):
        if container["name"] == wanted:
            return index
    raise MisconfiguredDeployment(
        f"Deployment {deployment['metadata']['name']} has no container {wanted!r} (annotation {CONTAINER_ANNOTATION})"
    )


def served_version(deployment: Mapping[str, Any]) -> int | None:
    """The version the pod template currently carries (None if never set)."""
    value = (deployment["spec"]["template"].get("metadata", {}).get("annotations") or {}).get(VERSION_ANNOTATION)
    return int(value) if value and value.isdigit() else None


def rollout_patch(deployment: Mapping[str, Any], served: Served) -> list[dict[str, Any]] | None:
    """JSON-patch ops that make the Deployment serve `served`, or None if it already does.

    Only the selected container's MODEL_* variables and one pod-template annotation change;
    other containers, variables and fields stay (a JSON patch replaces exactly these paths).
    The resourceVersion test makes a concurrent edit fail the patch instead of being lost.
    """
    index = _container_index(deployment)
    container = deployment["spec"]["template"]["spec"]["containers"][index]
    wanted = served.env()
    env = [dict(e) for e in container.get("env") or []]
    current = {e["name"]: e.get("value") for e in env}
    template_annotations = deployment["spec"]["template"].get("metadata", {}).get("annotations") or {}
    if all(current.get(k) == v for k, v in wanted.items()) and template_annotations.get(VERSION_ANNOTATION) == str(
        served.version
    ):
        return None
    for name, value in wanted.items():
        existing = next((e for e in env if e["name"] == name), None)
        if existing is None:
            env.append({"name": name, "value": value})
        else:
            existing.clear()
            existing.update(name=name, value=value)  # drops a valueFrom: the model is ours to set
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": deployment["metadata"]["resourceVersion"]},
        {"op": "add", "path": f"/spec/template/spec/containers/{index}/env", "value": env},
    ]
    if "metadata" not in deployment["spec"]["template"]:
        ops.append({"op": "add", "path": "/spec/template/metadata", "value": {}})
    ops.append(
        {
            "op": "add",
            "path": "/spec/template/metadata/annotations",
            "value": {**template_annotations, VERSION_ANNOTATION: str(served.version)},
        }
    )
    return ops


@dataclass(frozen=True)
class RolloutState:
    name: str
    updated: bool
    available: bool
    failed: bool
    message: str
    misconfigured: bool = False

    def to_status(self) -> dict[str, Any]:
        return {"name": self.name, "updated": self.updated, "available": self.available}


def rollout_state(deployment: Mapping[str, Any], version: int) -> RolloutState:
    """Like `kubectl rollout status`: the controller saw the new template, all replicas are
    updated and available; ProgressDeadlineExceeded means the rollout failed."""
    meta, spec, status = deployment["metadata"], deployment["spec"], deployment.get("status") or {}
    name = meta["name"]
    replicas = spec.get("replicas", 1)
    observed = status.get("observedGeneration", 0) >= meta.get("generation", 0)
    carries = served_version(deployment) == version
    for condition in status.get("conditions") or []:
        deadline = condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded"
        if deadline and observed and carries:  # a stale condition from an earlier template does not count
            return RolloutState(
                name,
                False,
                False,
                True,
                f"Deployment {name}: ProgressDeadlineExceeded: {condition.get('message', '')}".strip(),
            )
    updated = carries and observed and status.get("updatedReplicas", 0) >= replicas
    available = updated and status.get("availableReplicas", 0) >= replicas and status.get("replicas", 0) <= replicas
    waiting = (
        f"Deployment {name}: {status.get('updatedReplicas', 0)}/{replicas} updated, "
        f"{status.get('availableReplicas', 0)}/{replicas} available"
    )
    return RolloutState(name, updated, available, False, "available" if available else waiting)
