"""A serving target that opted in later, or was edited by hand, serves its stage's version again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelreg.domain import promotions as domain
from modelreg.domain.serving import MODEL_LABEL, MisconfiguredTarget, Served, TargetKind, stage_of
from modelreg.domain.transitions import Transition
from modelreg.services.reporting import Outcome
from modelreg.services.rollout import Prover
from modelreg.services.view import View
from modelreg.storage.kube import KubeStore


def _holder(view: View, namespace: str, model: str, stage: str) -> dict[str, Any] | None:
    return domain.holder_of(view.trusted_indexed(namespace, model, "stage", stage), stage)


def settled(view: View, namespace: str, model: str, kind: TargetKind, target: Mapping[str, Any]) -> bool:
    """Does this state of the target (a watch event's) already serve its stage's holder? Then
    there is nothing to read or do: most of a target's events are its controller's status updates."""
    holder = _holder(view, namespace, model, stage_of(target))
    try:
        return holder is None or kind.patch(target, Served.of(holder)) is None
    except MisconfiguredTarget:
        return False  # judged on a fresh read, which says why


async def converge(
    kube: KubeStore, view: View, still_proven: Prover, kind: TargetKind, namespace: str, name: str, model: str
) -> Outcome:
    """Called under the model's lock (no execution of the model runs meanwhile)."""
    outcome = Outcome()
    target = await kube.get_target(kind, namespace, name)
    if target is None or (target["metadata"].get("labels") or {}).get(MODEL_LABEL) != model:
        return outcome  # deleted, or opted out, meanwhile
    holder = _holder(view, namespace, model, stage_of(target))
    if holder is None:
        return outcome  # nothing holds the stage: leave the target as it is
    served, was = Served.of(holder), kind.served_version(target)
    serving = f"v{was}" if was else None

    def refused(message: str) -> Outcome:
        outcome.add(target, Transition("Warning", "ModelNotConverged", message, serving, serving))
        return outcome

    try:
        ops = kind.patch(target, served)
    except MisconfiguredTarget as exc:
        return refused(str(exc))
    if ops is None:
        return outcome
    if not domain.is_verified(holder):
        problem: Any = f"ModelVersion {holder['metadata']['name']} is not verified"
    else:
        problem = getattr(await still_proven(namespace, holder), "message", None)
    if problem:
        return refused(f"not rolling {model} v{served.version} onto it: {problem}")
    await kube.json_patch_target(kind, namespace, name, ops)
    message = (
        f"converged to {model} v{served.version} ({stage_of(target)}); "
        f"it served {'v' + str(was) if was else 'no registered version'}"
    )
    outcome.add(target, Transition("Normal", "ModelConverged", message, serving, f"v{served.version}"))
    return outcome
