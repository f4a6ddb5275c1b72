"""Shared steps of the promotion scenarios: register verified versions, promote, approve, serve."""

from __future__ import annotations

import hashlib
from typing import Any

from modelreg.domain.approvals import approval_key
from tests.integration.conftest import condition, wait_for


def version_body(name: str, uri: str, sha256: str, model: str = "fraud", version: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "modelreg.io/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": name},
        "spec": {"modelName": model, "version": version, "artifact": {"uri": uri, "sha256": sha256}},
    }


def register(
    kube,
    s3,
    bucket: str,
    version: int,
    metrics: dict[str, float] | None = None,
    model: str = "fraud",
    wait: bool = True,
) -> dict[str, Any]:
    data = f"{model} weights v{version}".encode()
    s3.put_object(Bucket=bucket, Key=f"{model}/{version}.onnx", Body=data, ChecksumAlgorithm="SHA256")
    name = f"{model}-v{version}"
    kube.create(
        "modelversions",
        {
            "apiVersion": "modelreg.io/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": name},
            "spec": {
                "modelName": model,
                "version": version,
                "metrics": metrics or {},
                "artifact": {
                    "uri": f"s3://{bucket}/{model}/{version}.onnx",
                    "sha256": hashlib.sha256(data).hexdigest(),
                },
            },
        },
    )
    if wait:
        wait_for(
            lambda: (c := condition(kube.get("modelversions", name), "ArtifactVerified")) and c["status"] == "True",
            what=f"{name} verified",
        )
    return kube.get("modelversions", name)


def promote(
    kube,
    name: str,
    version: int,
    target: str = "Production",
    model: str = "fraud",
    requester: str = "alice",
    criteria: list[dict] | None = None,
    approvers: tuple[str, ...] = (),
) -> None:
    """Create the promotion as `requester` (the webhook stamps requested-by), then approve it."""
    kube.as_user(requester).create(
        "modelpromotions",
        {
            "apiVersion": "modelreg.io/v1alpha1",
            "kind": "ModelPromotion",
            "metadata": {"name": name},
            "spec": {"modelName": model, "version": version, "targetStage": target, "criteria": criteria or []},
        },
    )
    approve(kube, name, *approvers)


def approve(kube, name: str, *users: str) -> None:
    """Each user approves as themselves, as `kubectl modelreg approve` does."""
    for user in users:
        kube.as_user(user).patch("modelpromotions", name, {"metadata": {"annotations": {approval_key(user): user}}})


def succeeded(kube, name: str, reason: str, timeout: float = 20.0) -> dict[str, Any]:
    def probe() -> Any:
        obj = kube.get("modelpromotions", name)
        found = condition(obj, "Succeeded")
        return obj if found and found["reason"] == reason else None

    obj = wait_for(probe, timeout, what=f"promotion {name} Succeeded reason {reason}")
    generation = obj["metadata"]["generation"]  # every condition says which spec it judged
    assert [c.get("observedGeneration") for c in obj["status"]["conditions"]] == [generation] * len(
        obj["status"]["conditions"]
    ), obj["status"]["conditions"]
    return obj


def stage(kube, name: str) -> str | None:
    return (kube.get("modelversions", name).get("status") or {}).get("stage")


def deployment(
    name: str,
    model: str = "fraud",
    stage: str | None = None,
    container: str | None = None,
    fail_versions: str | None = None,
) -> dict[str, Any]:
    annotations = {}
    if stage:
        annotations["modelreg.io/stage"] = stage
    if container:
        annotations["modelreg.io/container"] = container
    if fail_versions:
        annotations["simulate.modelreg.io/fail-versions"] = fail_versions
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"modelreg.io/model": model}, "annotations": annotations},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"team": "risk"}},
                "spec": {
                    "containers": [
                        {"name": "sidecar", "image": "envoy:1.30", "env": [{"name": "LOG_LEVEL", "value": "info"}]},
                        {
                            "name": "server",
                            "image": "scorer:2.1",
                            "ports": [{"containerPort": 8080}],
                            "env": [{"name": "WORKERS", "value": "4"}, {"name": "MODEL_VERSION", "value": "stale"}],
                        },
                    ]
                },
            },
        },
    }


def env_of(dep: dict[str, Any], container: str) -> dict[str, str]:
    found = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == container)
    return {e["name"]: e.get("value") for e in found.get("env") or []}
