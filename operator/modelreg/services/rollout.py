"""Carrying out an execution: stage moves on the versions, the serving targets, and undoing both.

Every step is idempotent against what the cluster records (the versions' sealed stageHistory, the
targets' modelreg.io/version annotation), so a step repeated after a restart changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from modelreg import metrics
from modelreg.domain import notifications
from modelreg.domain import promotions as domain
from modelreg.domain.artifacts import Verdict
from modelreg.domain.serving import (
    DEPLOYMENTS,
    MODEL_LABEL,
    STAGE_LABEL,
    MisconfiguredTarget,
    RolloutState,
    Served,
    TargetKind,
    stage_of,
)
from modelreg.domain.transitions import Transition
from modelreg.domain.trust import STAGE, StatusSeals
from modelreg.models.stages import EXCLUSIVE
from modelreg.services.reporting import Outcome
from modelreg.services.view import VERSIONS, View
from modelreg.storage.kube import Conflict, KubeStore

TAMPERED = "StatusTampered"
T = TypeVar("T")
# (namespace, ModelVersion) -> None while storage still holds the proven bytes, else why not
Prover = Callable[[str, Mapping[str, Any]], Awaitable[Verdict | None]]
Clock = Callable[[], datetime]


class Rollout:
    def __init__(
        self,
        kube: KubeStore,
        view: View,
        status_seals: StatusSeals,
        still_proven: Prover,
        clock: Clock,
        kinds: Sequence[TargetKind] = (DEPLOYMENTS,),
    ):
        self.kube, self.view, self.status_seals = kube, view, status_seals
        self.still_proven, self.clock, self.kinds = still_proven, clock, kinds

    async def apply_moves(
        self,
        namespace: str,
        promotion: str,
        moves: Sequence[domain.Move],
        versions: list[dict[str, Any]],
        approved_by: list[str],
        outcome: Outcome,
        then: Callable[[], Awaitable[T]] | None = None,
    ) -> T | None:
        """Each move's stage and history in its version's status; then `then` (e.g. the rollout),
        alongside the stage labels CI/CD selects by: a label follows its stage, never leads it,
        and nothing waits for it. Returns what `then` returns."""

        async def move_one(move: domain.Move) -> tuple[str, str] | None:
            version = domain.moved_version(versions, move)
            if version is None:
                return None  # deleted (or replaced) meanwhile: nothing left to move
            history = list((version.get("status") or {}).get("stageHistory") or [])
            if domain.history_has(history, move, promotion):  # made before (a retry): its label may not be
                return self._unlabelled(namespace, version)
            approvers = approved_by if move.to_stage == moves[-1].to_stage else []
            now = self.clock().strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # sub-second: keeps the timeline ordered
            history.append(domain.stage_history_entry(move, promotion, now, approvers))
            updated = await self.write_stage(namespace, version, move.to_stage, history)
            versions[next(i for i, v in enumerate(versions) if v is version)] = updated  # later steps see it
            version = updated
            why = f"{move.from_stage or 'no stage'} -> {move.to_stage or 'no stage'} (promotion {promotion})"
            outcome.add(version, Transition("Normal", "StageChanged", why, move.from_stage, move.to_stage))
            outcome.notices.append(
                notifications.notice(
                    notifications.STAGE_CHANGED,
                    version,
                    **{"from": move.from_stage or None, "to": move.to_stage or None},
                    promotion=promotion,
                    approvers=approvers,
                )
            )
            return self._unlabelled(namespace, version)

        # Each move is another version's (and recorded in its own history): they go side by side.
        unlabelled = [found for found in await asyncio.gather(*(move_one(move) for move in moves)) if found]
        labels = (self.label_stage(namespace, name, stage) for name, stage in unlabelled)
        # Both finish before a failure of either is raised: a rollout is never left running unowned.
        first = [then()] if then is not None else []
        results = await asyncio.gather(*first, *labels, return_exceptions=True)
        if failed := next((r for r in results if isinstance(r, BaseException)), None):
            raise failed
        return results[0] if first else None

    def _unlabelled(self, namespace: str, version: Mapping[str, Any]) -> tuple[str, str] | None:
        """(name, stage) if the version's stage label, as last written (the view: `version` may be
        a copy from before this execution's own label writes), does not name its stage."""
        name = version["metadata"]["name"]
        stored = self.view.get(VERSIONS, namespace, name) or version
        stage = (version.get("status") or {}).get("stage") or ""
        if ((stored["metadata"].get("labels") or {}).get(STAGE_LABEL) or "") == stage:
            return None
        return name, stage

    async def write_stage(
        self, namespace: str, version: Mapping[str, Any], stage: str, history: list
    ) -> dict[str, Any]:
        """Stage and history with their seal in one write; the version as it now is (the one given,
        read from the view, is not changed). Its label follows (label_stage): a reader between the
        two sees the new stage and an old label (and sets the same label), never a label ahead of
        the stage it names."""
        record = {"stage": stage or None, "stageHistory": history or None}
        seal = self.status_seals.seal(STAGE, version, record)
        name = version["metadata"]["name"]
        status = {**record, "seals": {STAGE: seal}}
        await self.view.write(VERSIONS, namespace, name, self.kube.patch_status(VERSIONS, namespace, name, status))
        status = dict(version.get("status") or {})
        status.update(stage=stage, stageHistory=history, seals={**(status.get("seals") or {}), STAGE: seal})
        return {**version, "status": status}

    async def label_stage(self, namespace: str, name: str, stage: str) -> None:
        labels = {STAGE_LABEL: stage or None}
        await self.view.write(VERSIONS, namespace, name, self.kube.patch_labels(VERSIONS, namespace, name, labels))

    async def restore_stage(self, namespace: str, name: str, model: str, outcome: Outcome) -> None:
        """A ModelVersion whose stage the operator cannot prove gets the one its promotions record."""
        raw = self.view.get(VERSIONS, namespace, name)
        if raw is None or self.status_seals.proven(STAGE, raw):
            return
        stage, history = domain.stage_record(raw, self.view.trusted("modelpromotions", namespace, model))
        forged = (raw.get("status") or {}).get("stage") or ""
        await self.write_stage(namespace, raw, stage, history)
        await self.label_stage(namespace, name, stage)
        why = f"status.stage {forged or '(none)'} was not written by the operator; restored from the promotions"
        outcome.add(raw, Transition("Warning", TAMPERED, f"{why}: {stage or 'no stage'}", forged, stage))

    @staticmethod
    def record_holders(namespace: str, model: str, versions: Sequence[Mapping[str, Any]]) -> None:
        for stage in EXCLUSIVE:
            holder = domain.holder_of(versions, stage)
            if holder is not None:
                metrics.STAGE_VERSION.labels(namespace, model, stage).set(holder["spec"]["version"])
            else:
                with contextlib.suppress(KeyError):
                    metrics.STAGE_VERSION.remove(namespace, model, stage)

    async def roll(self, namespace: str, model: str, stage: str, served: Served, outcome: Outcome) -> list:
        """Every serving target of the stage, of every kind, onto `served`; how each rollout is going."""
        selector = f"{MODEL_LABEL}={model}"
        listings = await asyncio.gather(*(self.kube.list_targets(kind, namespace, selector) for kind in self.kinds))

        async def roll_one(kind: TargetKind, target: dict[str, Any]) -> RolloutState:
            name = target["metadata"]["name"]
            try:
                ops = kind.patch(target, served)
            except MisconfiguredTarget as exc:  # named in the promotion's condition; nothing patched
                return RolloutState(name, False, False, True, str(exc), True, kind.kind)
            if ops is None:
                return kind.state(target, served.version)
            with contextlib.suppress(Conflict):  # edited meanwhile: the next tick re-reads and retries
                await self.kube.json_patch_target(kind, namespace, name, ops)
                was = kind.served_version(target)
                message = f"serving {served.model} v{served.version} ({stage})"
                transition = Transition(
                    "Normal", "ModelRolled", message, f"v{was}" if was else None, f"v{served.version}"
                )
                outcome.add(target, transition)
            return kind.state({**target, "status": {}}, served.version)

        # Every target of the stage at once: the rollout takes the slowest one's time, not the sum.
        return list(
            await asyncio.gather(
                *(
                    roll_one(kind, target)
                    for kind, targets in zip(self.kinds, listings, strict=True)
                    for target in targets
                    if stage_of(target) == stage
                )
            )
        )

    async def roll_back(
        self,
        namespace: str,
        promotion: Mapping[str, Any],
        moves: list[domain.Move],
        versions: list[dict[str, Any]],
        reason: str,
        message: str,
        now: str,
        outcome: Outcome,
    ) -> dict[str, Any]:
        """End the promotion with `reason`: undo the moves it made, serve the previous version again if
        storage still holds it as proven. Returns the ending status."""
        name, target = promotion["metadata"]["name"], promotion["spec"]["targetStage"]
        made = [
            m
            for m in moves
            if (moved := domain.moved_version(versions, m)) is not None
            and domain.history_has((moved.get("status") or {}).get("stageHistory") or [], m, name)
        ]
        await self.apply_moves(namespace, name, domain.rollback_moves(made), versions, [], outcome)
        self.record_holders(namespace, promotion["spec"]["modelName"], versions)
        previous = promotion["status"].get("previousVersion")
        displaced = next((m for m in moves if m.from_stage == target and m.version == previous), None)
        # the very version displaced (one registered again under its number since is not restored)
        restored = domain.moved_version(versions, displaced) if displaced else None
        problem = await self.still_proven(namespace, restored) if restored is not None else None
        if restored is not None and problem is None:
            await self.roll(namespace, promotion["spec"]["modelName"], target, Served.of(restored), outcome)
            message += f"; restored v{previous}"
        else:  # nothing restored: a rollout failure is no rollback
            reason = "RolloutFailed" if reason == "RolledBack" else reason
            if previous:
                why = problem.message if problem is not None else "it is not registered"
                message += f"; v{previous} not restored ({why}): the serving targets keep what they have"
            else:
                message += "; no previous version to restore"
        return domain.ended(promotion, promotion["status"], now, reason, message)
