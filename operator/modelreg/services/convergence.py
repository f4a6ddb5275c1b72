"""A Deployment that opted in later, or was edited by hand, serves its stage's version again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelreg.domain import promotions as domain
from modelreg.domain.serving import (
    MODEL_LABEL,
    MisconfiguredDeployment,
    Served,
    rollout_patch,
    served_version,
    stage_of,
)
from modelreg.domain.transitions import Transition
from modelreg.services.reporting import Outcome
from modelreg.services.rollout import Prover
from modelreg.services.view import View
from modelreg.storage.kube import KubeStore


def _holder(view: View, namespace: str, model: str, stage: str) -> dict[str, Any] | None:
    return domain.holder_of(view.trusted_indexed(namespace, model, "stage", stage), stage)


def settled(view: View, namespace: str, model: str, deployment: Mapping[str, Any]) -> bool:
    """Does this state of the Deployment (a watch event's) already serve its stage's holder? Then
    there is nothing to read or do: most Deployment events are its controller's status updates."""
    holder = _holder(view, namespace, model, stage_of(deployment))
    try:
        return holder is None or rollout_patch(deployment, Served.of(holder)) is None
    except MisconfiguredDeployment:
        return False  # judged on a fresh read, which says why


async def converge(kube: KubeStore, view: View, still_proven: Prover, namespace: str, name: str, model: str) -> Outcome:
    """Called under the model's lock (no execution of the model runs meanwhile)."""
    outcome = Outcome()
    deployment = next(
        (d for d in await kube.list_deployments(namespace, f"{MODEL_LABEL}={model}") if d["metadata"]["name"] == name),
        None,
    )
    if deployment is None:
        return outcome
    holder = _holder(view, namespace, model, stage_of(deployment))
    if holder is None:
        return outcome  # nothing holds the stage: leave the Deployment as it is
    served, was = Served.of(holder), served_version(deployment)
    serving = f"v{was}" if was else None

    def refused(message: str) -> Outcome:
        outcome.add(deployment, Transition("Warning", "ModelNotConverged", message, serving, serving))
        return outcome

    try:
        ops = rollout_patch(deployment, served)
    except MisconfiguredDeployment as exc:
        return refused(str(exc))
    if ops is None:
        return outcome
    if not domain.is_verified(holder):
        problem: Any = f"ModelVersion {holder['metadata']['name']} is not verified"
    else:
        problem = getattr(await still_proven(namespace, holder), "message", None)
    if problem:
        return refused(f"not rolling {model} v{served.version} onto it: {problem}")
    await kube.json_patch_deployment(namespace, name, ops)
    message = (
        f"converged to {model} v{served.version} ({stage_of(deployment)}); "
        f"it served {'v' + str(was) if was else 'no registered version'}"
    )
    outcome.add(deployment, Transition("Normal", "ModelConverged", message, serving, f"v{served.version}"))
    return outcome
