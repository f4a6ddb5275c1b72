"""Serving targets (Deployments, KServe InferenceServices, Argo Rollouts): which opt in, what
they should serve, and how their rollout is going. One `TargetKind` per kind says all of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelreg.models.stages import Stage

MODEL_LABEL = "modelreg.io/model"  # on serving targets (opt-in) and on ModelVersions (kept current)
STAGE_LABEL = "modelreg.io/stage"  # on ModelVersions
STAGE_ANNOTATION = "modelreg.io/stage"
CONTAINER_ANNOTATION = "modelreg.io/container"
# An init container that gets the MODEL_* env too: `modelreg fetch --from-env` there makes the pod
# refuse bytes that were not proven before the server starts.
INIT_CONTAINER_ANNOTATION = "modelreg.io/init-container"
VERSION_ANNOTATION = "modelreg.io/version"  # on a pod template; on an InferenceService itself
SHA256_ANNOTATION = "modelreg.io/sha256"  # on an InferenceService: what its storageUri was proven to hold
VERSION_ID_ANNOTATION = "modelreg.io/version-id"  # on an InferenceService: the S3 VersionId proven
MODEL_ENV = ("MODEL_NAME", "MODEL_VERSION", "MODEL_URI", "MODEL_SHA256", "MODEL_VERSION_ID")


def escape_env(value: str) -> str:
    """Kubernetes expands `$(VAR)` in env values at container start; `$$` is a literal `$`."""
    return value.replace("$", "$$")


@dataclass(frozen=True)
class Served:
    """What a serving target serves: one registered version, as it was proven."""

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


def stage_of(target: Mapping[str, Any]) -> str:
    return (target["metadata"].get("annotations") or {}).get(STAGE_ANNOTATION, Stage.PRODUCTION)


class MisconfiguredTarget(ValueError):
    """The target's modelreg annotations or shape cannot be served (e.g. a container that does not exist)."""


@dataclass(frozen=True)
class RolloutState:
    name: str
    updated: bool
    available: bool
    failed: bool
    message: str
    misconfigured: bool = False
    kind: str = "Deployment"

    def to_status(self) -> dict[str, Any]:
        kind = {} if self.kind == "Deployment" else {"kind": self.kind}  # entries from before kinds stay equal
        return {"name": self.name, **kind, "updated": self.updated, "available": self.available}


def _generation_observed(target: Mapping[str, Any]) -> bool:
    observed = (target.get("status") or {}).get("observedGeneration", 0)
    try:  # Argo Rollouts writes it as a string
        return int(observed) >= int(target["metadata"].get("generation", 0))
    except (TypeError, ValueError):  # Argo Rollouts before 0.10 wrote a hash: nothing to compare
        return True


@dataclass(frozen=True)
class TargetKind:
    """A kind of serving target: where it lives in the API, and (its subclasses, pure) what it
    serves now, the JSON patch that makes it serve a version, and whether that rollout is done or
    failed. Everything else (listing, the re-check, rolling back) is the same for every kind."""

    key: str  # its name in operator config `serving.targets`
    kind: str
    group: str
    version: str
    plural: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def crd(self) -> str:
        return f"{self.plural}.{self.group}"

    def served_version(self, target: Mapping[str, Any]) -> int | None:
        """The registered version the target carries (None if never set)."""
        raise NotImplementedError

    def patch(self, target: Mapping[str, Any], served: Served) -> list[dict[str, Any]] | None:
        """JSON-patch ops that make the target serve `served`, or None if it already does; raises
        MisconfiguredTarget. The resourceVersion test makes a concurrent edit fail the patch
        instead of being lost."""
        raise NotImplementedError

    def state(self, target: Mapping[str, Any], version: int) -> RolloutState:
        """How the rollout of `version` onto the target is going, judged from its controller's status."""
        raise NotImplementedError

    def _state(self, target: Mapping[str, Any], updated: bool, available: bool, message: str) -> RolloutState:
        return RolloutState(target["metadata"]["name"], updated, available, False, message, kind=self.kind)

    def _failed(self, target: Mapping[str, Any], why: str) -> RolloutState:
        name = target["metadata"]["name"]
        return RolloutState(name, False, False, True, f"{self.kind} {name}: {why}".strip(), kind=self.kind)


class PodTemplateKind(TargetKind):
    """A workload with a pod template at spec.template: MODEL_* env on one container and the
    template annotation modelreg.io/version, changing nothing else (its controller rolls it)."""

    def served_version(self, target: Mapping[str, Any]) -> int | None:
        template = target["spec"].get("template") or {}
        value = ((template.get("metadata") or {}).get("annotations") or {}).get(VERSION_ANNOTATION)
        return int(value) if value and value.isdigit() else None

    def _container_index(self, target: Mapping[str, Any]) -> int:
        name = target["metadata"]["name"]
        if not (target["spec"].get("template") or {}).get("spec"):  # e.g. an Argo Rollout's workloadRef
            raise MisconfiguredTarget(f"{self.kind} {name} has no spec.template: label the workload it refers to")
        containers = target["spec"]["template"]["spec"]["containers"]
        wanted = (target["metadata"].get("annotations") or {}).get(CONTAINER_ANNOTATION)
        if wanted is None:
            return 0
        for index, container in enumerate(containers):
            if container["name"] == wanted:
                return index
        raise MisconfiguredTarget(f"{self.kind} {name} has no container {wanted!r} (annotation {CONTAINER_ANNOTATION})")

    def _init_container_index(self, target: Mapping[str, Any]) -> int | None:
        wanted = (target["metadata"].get("annotations") or {}).get(INIT_CONTAINER_ANNOTATION)
        if wanted is None:
            return None
        for index, container in enumerate(target["spec"]["template"]["spec"].get("initContainers") or []):
            if container["name"] == wanted:
                return index
        name = target["metadata"]["name"]
        raise MisconfiguredTarget(
            f"{self.kind} {name} has no init container {wanted!r} (annotation {INIT_CONTAINER_ANNOTATION})"
        )

    def patch(self, target: Mapping[str, Any], served: Served) -> list[dict[str, Any]] | None:
        places = [("containers", self._container_index(target))]
        if (init := self._init_container_index(target)) is not None:
            places.append(("initContainers", init))
        template = target["spec"]["template"]
        template_annotations = (template.get("metadata") or {}).get("annotations") or {}
        envs = {place: _with_env(template["spec"][place[0]][place[1]], served.env()) for place in places}
        if not any(changed for _, changed in envs.values()) and template_annotations.get(VERSION_ANNOTATION) == str(
            served.version
        ):
            return None
        ops: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": target["metadata"]["resourceVersion"]},
            *(
                {"op": "add", "path": f"/spec/template/spec/{where}/{index}/env", "value": env}
                for (where, index), (env, _) in envs.items()
            ),
        ]
        if "metadata" not in template:
            ops.append({"op": "add", "path": "/spec/template/metadata", "value": {}})
        ops.append(
            {
                "op": "add",
                "path": "/spec/template/metadata/annotations",
                "value": {**template_annotations, VERSION_ANNOTATION: str(served.version)},
            }
        )
        return ops


def _with_env(container: Mapping[str, Any], wanted: Mapping[str, str]) -> tuple[list[dict[str, Any]], bool]:
    """The container's env with `wanted` set, and whether that changes it."""
    env = [dict(e) for e in container.get("env") or []]
    current = {e["name"]: e.get("value") for e in env}
    if all(current.get(k) == v for k, v in wanted.items()):
        return env, False
    for name, value in wanted.items():
        existing = next((e for e in env if e["name"] == name), None)
        if existing is None:
            env.append({"name": name, "value": value})
        else:
            existing.clear()
            existing.update(name=name, value=value)  # drops a valueFrom: the model is ours to set
    return env, True


class DeploymentKind(PodTemplateKind):
    def state(self, target: Mapping[str, Any], version: int) -> RolloutState:
        """Like `kubectl rollout status`: the controller saw the new template, all replicas are
        updated and available; ProgressDeadlineExceeded means the rollout failed."""
        spec, status = target["spec"], target.get("status") or {}
        replicas = spec.get("replicas", 1)
        observed = _generation_observed(target)
        carries = self.served_version(target) == version
        for condition in status.get("conditions") or []:
            deadline = condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded"
            if deadline and observed and carries:  # a stale condition from an earlier template does not count
                return self._failed(target, f"ProgressDeadlineExceeded: {condition.get('message', '')}")
        updated = carries and observed and status.get("updatedReplicas", 0) >= replicas
        available = updated and status.get("availableReplicas", 0) >= replicas and status.get("replicas", 0) <= replicas
        waiting = (
            f"{self.kind} {target['metadata']['name']}: {status.get('updatedReplicas', 0)}/{replicas} updated, "
            f"{status.get('availableReplicas', 0)}/{replicas} available"
        )
        return self._state(target, updated, available, "available" if available else waiting)


class ArgoRolloutKind(PodTemplateKind):
    def state(self, target: Mapping[str, Any], version: int) -> RolloutState:
        """Done at phase Healthy for the new template (Argo's own canary or blue-green steps, pauses
        and analysis come first); Degraded or aborted is a failure. Argo's phase counts only once
        status.observedGeneration is the object's generation (Argo's own rule)."""
        status = target.get("status") or {}
        current = _generation_observed(target) and self.served_version(target) == version
        phase, message = status.get("phase") or "", status.get("message") or ""
        if current and status.get("abort"):
            return self._failed(target, f"aborted: {message}")
        if current and phase == "Degraded":
            return self._failed(target, f"Degraded: {message}")
        healthy = current and phase == "Healthy"
        waiting = f"{self.kind} {target['metadata']['name']}: {phase or 'not observed yet'} {message}".strip()
        return self._state(target, current, healthy, "Healthy" if healthy else waiting)


# KServe's model status on a load that failed (its TransitionStatus enum)
KSERVE_FAILED = ("BlockedByFailedLoad", "InvalidSpec")


class InferenceServiceKind(TargetKind):
    """KServe: spec.predictor.model.storageUri, and the version and digest it was proven to hold
    in the InferenceService's annotations."""

    def served_version(self, target: Mapping[str, Any]) -> int | None:
        value = (target["metadata"].get("annotations") or {}).get(VERSION_ANNOTATION)
        return int(value) if value and value.isdigit() else None

    def patch(self, target: Mapping[str, Any], served: Served) -> list[dict[str, Any]] | None:
        meta = target["metadata"]
        model = ((target.get("spec") or {}).get("predictor") or {}).get("model")
        if not isinstance(model, Mapping):
            raise MisconfiguredTarget(
                f"{self.kind} {meta['name']} has no spec.predictor.model (modelreg sets its storageUri)"
            )
        # KServe hands storageUri to its storage initializer as a container argument, where
        # Kubernetes expands $(VAR) as in env values.
        uri = escape_env(served.uri)
        annotations = dict(meta.get("annotations") or {})
        wanted = {
            VERSION_ANNOTATION: str(served.version),
            SHA256_ANNOTATION: served.sha256,
            VERSION_ID_ANNOTATION: served.version_id or None,  # KServe cannot pin it: recorded for readers
        }
        if model.get("storageUri") == uri and all(annotations.get(k) == v for k, v in wanted.items()):
            return None
        annotations.update({k: v for k, v in wanted.items() if v})
        if not served.version_id:
            annotations.pop(VERSION_ID_ANNOTATION, None)
        return [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
            {"op": "add", "path": "/spec/predictor/model/storageUri", "value": uri},
            {"op": "add", "path": "/metadata/annotations", "value": annotations},
        ]

    def state(self, target: Mapping[str, Any], version: int) -> RolloutState:
        """Done when Ready for the new generation; failed when KServe reports the model's load
        failed (a Ready=False alone may be a revision still starting: the execution timeout bounds it)."""
        status = target.get("status") or {}
        current = _generation_observed(target) and self.served_version(target) == version
        model_status = status.get("modelStatus") or {}
        if current and model_status.get("transitionStatus") in KSERVE_FAILED:
            info = model_status.get("lastFailureInfo") or {}
            why = ": ".join(str(x) for x in (info.get("reason"), info.get("message")) if x)
            return self._failed(target, f"{model_status['transitionStatus']}: {why}")
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        available = current and ready.get("status") == "True"
        name, message = target["metadata"]["name"], ready.get("message", "")
        waiting = f"{self.kind} {name}: Ready={ready.get('status', 'Unknown')} {message}".strip()
        return self._state(target, current, available, "Ready" if available else waiting)


DEPLOYMENTS = DeploymentKind("deployments", "Deployment", "apps", "v1", "deployments")
INFERENCE_SERVICES = InferenceServiceKind(
    "inferenceServices", "InferenceService", "serving.kserve.io", "v1beta1", "inferenceservices"
)
ROLLOUTS = ArgoRolloutKind("rollouts", "Rollout", "argoproj.io", "v1alpha1", "rollouts")
TARGET_KINDS = (DEPLOYMENTS, INFERENCE_SERVICES, ROLLOUTS)


def target_kind(group: str, plural: str) -> TargetKind:
    return next(k for k in TARGET_KINDS if (k.group, k.plural) == (group, plural))
