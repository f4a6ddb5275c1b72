"""Stand-ins for the KServe and Argo Rollouts controllers, which an emulated API server lacks.

Each answers a new generation first with a rollout under way, then with its end: KServe's
InferenceService turns Ready (or its model fails to load), Argo's Rollout turns Healthy (or
Degraded, or is aborted as a failed analysis would abort it). The version a target carries is
the one modelreg wrote; annotations on the target choose which versions fail:
`simulate.modelreg.io/fail-versions` (both kinds) and `simulate.modelreg.io/abort-versions`
(Rollouts), comma-separated.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modelreg.sandbox.deployments import FAIL_VERSIONS, SimulatedController

ABORT_VERSIONS = "simulate.modelreg.io/abort-versions"


def _listed(obj: dict[str, Any], annotation: str, version: str | None) -> bool:
    return bool(version) and version in (obj["metadata"].get("annotations") or {}).get(annotation, "").split(",")


def inference_service_status(isvc: dict[str, Any]) -> dict[str, Any] | None:
    meta, status = isvc["metadata"], isvc.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
    if status.get("observedGeneration") == meta["generation"] and ready.get("status") != "Unknown":
        return None  # this generation's end is written
    version = (meta.get("annotations") or {}).get("modelreg.io/version")
    generation, name = meta["generation"], meta["name"]
    if status.get("observedGeneration") != generation:  # seen: the new revision is starting
        return {
            "observedGeneration": generation,
            "conditions": [{"type": "Ready", "status": "Unknown", "reason": "RevisionMissing"}],
            "modelStatus": {"transitionStatus": "InProgress", "states": {"targetModelState": "Loading"}},
        }
    if _listed(isvc, FAIL_VERSIONS, version):
        failure = {"reason": "ModelLoadFailed", "message": f"model {name} v{version} failed to load"}
        return {
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "ModelLoadFailed"},
                {"type": "PredictorReady", "status": "False", "reason": "ModelLoadFailed"},
            ],
            "modelStatus": {
                "transitionStatus": "BlockedByFailedLoad",
                "states": {"activeModelState": "Loaded", "targetModelState": "FailedToLoad"},
                "lastFailureInfo": failure,
            },
        }
    return {
        "url": f"http://{name}.{meta['namespace']}.example.com",
        "conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "PredictorReady", "status": "True"},
        ],
        "modelStatus": {
            "transitionStatus": "UpToDate",
            "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
            "lastFailureInfo": None,
        },
    }


def rollout_status(rollout: dict[str, Any]) -> dict[str, Any] | None:
    meta, spec, status = rollout["metadata"], rollout["spec"], rollout.get("status") or {}
    generation = str(meta["generation"])
    if status.get("observedGeneration") == generation and status.get("phase") != "Progressing":
        return None
    template = spec.get("template") or {}
    pod_hash = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
    version = ((template.get("metadata") or {}).get("annotations") or {}).get("modelreg.io/version")
    replicas = spec.get("replicas", 1)
    if status.get("observedGeneration") != generation:  # a new template resets an abort, as Argo does
        return {
            "observedGeneration": generation,
            "currentPodHash": pod_hash,
            "phase": "Progressing",
            "message": "more replicas need to be updated",
            "abort": None,
            "abortedAt": None,
        }
    if _listed(rollout, ABORT_VERSIONS, version):  # e.g. its analysis failed: traffic back to stable
        message = f"RolloutAborted: Rollout aborted update to revision {meta['generation']}"
        return {"abort": True, "abortedAt": "2026-01-01T00:00:00Z", "phase": "Degraded", "message": message}
    if _listed(rollout, FAIL_VERSIONS, version):
        message = f'ProgressDeadlineExceeded: ReplicaSet "{meta["name"]}-{pod_hash}" has timed out progressing.'
        return {"phase": "Degraded", "message": message}
    return {
        "phase": "Healthy",
        "message": None,
        "stableRS": pod_hash,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
    }


class SimulatedInferenceServiceController(SimulatedController):
    resource = ("serving.kserve.io", "v1beta1", "inferenceservices")
    simulate = staticmethod(inference_service_status)


class SimulatedRolloutController(SimulatedController):
    resource = ("argoproj.io", "v1alpha1", "rollouts")
    simulate = staticmethod(rollout_status)
