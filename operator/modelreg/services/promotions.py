"""Reconcile ModelPromotions of one model, one at a time, from the operator's view of the cluster.

Every step is idempotent and its state lives in the cluster: the promotion's status
(RollingOut, previousVersion, the moves), the versions' stageHistory, the Deployments'
pod-template annotation. A restart at any point repeats no effect.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from modelreg import metrics
from modelreg.domain import notifications
from modelreg.domain import promotions as domain
from modelreg.domain.approvals import ApprovalSeals
from modelreg.domain.artifacts import Reason, Verdict
from modelreg.domain.merge import merge_patch
from modelreg.domain.notifications import Notice
from modelreg.domain.policy import PolicyError, effective_policy
from modelreg.domain.serving import (
    MODEL_LABEL,
    STAGE_LABEL,
    MisconfiguredDeployment,
    RolloutState,
    Served,
    rollout_patch,
    rollout_state,
    served_version,
    stage_of,
)
from modelreg.domain.trust import RECORD, STAGE, StatusSeals, forged_keys
from modelreg.services.reporting import Outcome
from modelreg.services.view import PROMOTIONS, VERSIONS, View
from modelreg.storage.kube import Conflict, KubeStore

TAMPERED = "StatusTampered"
# (namespace, ModelVersion) -> None while storage still holds the proven bytes, else why not
Prover = Callable[[str, Mapping[str, Any]], Awaitable[Verdict | None]]


def _record_end(outcome: str, status: Mapping[str, Any]) -> None:
    metrics.PROMOTIONS.labels(outcome=outcome).inc()
    end = status.get("completionTime")
    if outcome == "Promoted" and end and status.get("startTime"):
        metrics.ROLLOUT_SECONDS.observe(_seconds_since(status["startTime"], end))
        approved = [a["time"] for a in status.get("approvals") or [] if a.get("time")]
        if approved:
            metrics.APPROVAL_TO_ROLLOUT.observe(max(0.0, _seconds_since(max(approved), end)))


def _seconds_since(start: str | None, now: str) -> float:
    if not start:
        return 0.0
    parse = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (start, now)]
    return (parse[1] - parse[0]).total_seconds()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _notices(
    promotion: Mapping[str, Any],
    stored: Mapping[str, Any],
    status: Mapping[str, Any],
    before: str | None,
    after: str | None,
) -> list[Notice]:
    """What a status write tells the notification endpoints: requested, each new approval, the end."""
    found = []
    if before is None and after is not None:
        found.append(notifications.notice(notifications.REQUESTED, promotion, requestedBy=status.get("requestedBy")))
    counted = [a.get("user") for a in status.get("approvals") or []]
    for user in counted:
        if user not in [a.get("user") for a in stored.get("approvals") or []]:
            approved = any(c["type"] == "Approved" and c["status"] == "True" for c in status.get("conditions") or [])
            found.append(
                notifications.notice(
                    notifications.APPROVED, promotion, approver=user, approvers=counted, approved=approved
                )
            )
    if before != after and after in domain.TERMINAL:
        message = next((c["message"] for c in status.get("conditions") or [] if c["type"] == domain.SUCCEEDED), "")
        kind = notifications.SUCCEEDED if after == "Promoted" else notifications.FAILED
        approvers = [a.get("user") for a in {**stored, **status}.get("approvals") or []]
        found.append(notifications.notice(kind, promotion, reason=after, message=message, approvers=approvers))
    return found


class PromotionReconciler:
    def __init__(
        self,
        kube: KubeStore,
        required: Mapping[str, int],
        criteria: Mapping[str, Sequence[Mapping]],
        policy_config_map: str,
        seals: ApprovalSeals,
        status_seals: StatusSeals,
        still_proven: Prover,
        view: View,
        execution_timeout: float = 3600.0,
    ) -> None:
        self.view = view
        self.still_proven = still_proven
        self.execution_timeout = execution_timeout
        self.kube = kube
        self.required, self.criteria = required, criteria
        self.policy_config_map = policy_config_map
        self.seals = seals
        self.status_seals = status_seals
        self._locks: dict[tuple[str, str], asyncio.Lock] = collections.defaultdict(asyncio.Lock)

    def _of_model(self, plural: str, namespace: str, model: str) -> list[dict[str, Any]]:
        """This model's objects, read through the trust views: status the operator cannot prove it
        wrote is absent from what every decision below sees."""
        return self.view.trusted(plural, namespace, model)

    async def reconcile(self, namespace: str, name: str, model: str) -> Outcome:
        """Serialised per model: every decision below sees the result of the previous one."""
        async with self._locks[(namespace, model)]:
            return await self._reconcile(namespace, name, model)

    async def _reconcile(self, namespace: str, name: str, model: str) -> Outcome:
        outcome = Outcome()
        raw = self.view.get(PROMOTIONS, namespace, name)
        if raw is None:
            return outcome
        promotions = self._of_model(PROMOTIONS, namespace, model)
        promotion = next(p for p in promotions if p["metadata"]["name"] == name)
        if not self.status_seals.proven(RECORD, raw):
            promotion["tampered"] = raw.get("status") or {}  # the stored status, to undo it
            why = "its status (approvals, moves, previousVersion, outcome) was not written by the operator"
            outcome.events.append((promotion, "Warning", TAMPERED, f"{why}: restored from the record"))
            outcome.audit.append((promotion, domain.reason_of(raw), TAMPERED, why))
        if domain.reason_of(promotion) in domain.TERMINAL:
            return outcome  # finished promotions stay as history, untouched
        versions = self._of_model(VERSIONS, namespace, model)
        if "tampered" in promotion and any(
            h.get("promotion") == name for v in versions for h in (v.get("status") or {}).get("stageHistory") or []
        ):
            # It did execute (the versions' sealed history says so), but its own record is gone:
            # end it without moving anything more.
            status = {
                "completionTime": _now(),
                "conditions": domain.condition_set(
                    {},
                    _now(),
                    promotion["metadata"].get("generation"),
                    Succeeded=(False, TAMPERED, "its status was tampered with after it executed"),
                ),
            }
            await self._write_status(namespace, promotion, status, outcome)
            return outcome
        if domain.reason_of(promotion) == domain.ROLLING_OUT:
            await self._continue(namespace, promotion, versions, outcome)
            return outcome
        now = _now()
        try:
            policy = effective_policy(
                self.required, self.criteria, await self.kube.policy_override(namespace, self.policy_config_map)
            )
        except PolicyError as exc:  # heals when the ConfigMap is fixed; decides nothing meanwhile
            message = f"namespace policy ConfigMap {namespace}/{self.policy_config_map}: {exc}"
            generation = promotion["metadata"].get("generation")
            status = {
                "observedGeneration": generation,  # observed, and judged: Argo CD shows Degraded, not Progressing
                "conditions": domain.condition_set(
                    promotion.get("status") or {}, now, generation, Succeeded=(False, "InvalidPolicy", message)
                ),
            }
            await self._write_status(namespace, promotion, status, outcome)
            return outcome
        evaluated = {
            p["metadata"]["name"]: domain.gates(p, versions, policy, self.seals)
            for p in promotions
            if domain.reason_of(p) not in domain.TERMINAL
        }
        gates = evaluated[name]
        status = self._gate_status(promotion, gates, now)
        if winner := domain.superseded_by(promotion, promotions):
            status["conditions"] = domain.condition_set(
                promotion.get("status") or {},
                now,
                promotion["metadata"].get("generation"),
                Succeeded=(False, "Superseded", f"promotion {winner} to the same stage completed later"),
            )
            status["completionTime"] = now
        elif gates.ready:
            ready = {n: g.ready for n, g in evaluated.items()}
            if blocker := domain.blocked_by(promotion, promotions, ready):
                status["conditions"] = domain.condition_set(
                    status,
                    now,
                    promotion["metadata"].get("generation"),
                    Succeeded=(None, "Queued", f"waiting for promotion {blocker} of {model}"),
                )
            else:
                await self._start(namespace, promotion, versions, gates, status, now, outcome)
                return outcome
        await self._write_status(namespace, promotion, status, outcome)
        return outcome

    def _gate_status(self, promotion: Mapping[str, Any], gates: domain.Gates, now: str) -> dict[str, Any]:
        old = promotion.get("status") or {}
        approvals = gates.approvals
        evaluation = gates.evaluation
        criteria_state = (
            (None, "WaitingForVersion", "the version is not registered")
            if evaluation is None
            else (True, "CriteriaMet", "all criteria met")
            if evaluation.met
            else (False, "CriteriaNotMet", "; ".join(evaluation.failures))
        )
        status: dict[str, Any] = {
            "observedGeneration": promotion["metadata"].get("generation"),
            "approvals": approvals.counted,
            "requiredApprovals": approvals.required,
            "approvalSummary": approvals.summary,
            "comparison": evaluation.comparison if evaluation else {},
            "conditions": domain.condition_set(
                old,
                now,
                promotion["metadata"].get("generation"),
                Approved=(
                    approvals.approved,
                    "Approved" if approvals.approved else "AwaitingApproval",
                    f"{approvals.summary} approvals"
                    + ("; not counted: " + "; ".join(approvals.ignored) if approvals.ignored else ""),
                ),
                CriteriaMet=criteria_state,
                RolledOut=(None, "NotStarted", "not started"),
                Succeeded=(None if gates.reason != "ArtifactInvalid" else False, gates.reason, gates.message),
            ),
        }
        requester = self.seals.requester(promotion)
        if requester:
            status["requestedBy"] = requester
        return status

    async def _write_status(
        self,
        namespace: str,
        promotion: Mapping[str, Any],
        status: dict[str, Any],
        outcome: Outcome,
        resource_version: str | None = None,
    ) -> None:
        stored = promotion.get("tampered", promotion.get("status") or {})
        changed = {k: v for k, v in status.items() if stored.get(k) != v}
        if "tampered" in promotion:
            changed.update(forged_keys(RECORD, stored, {**(promotion.get("status") or {}), **status}))
        seal = self.status_seals.seal(RECORD, promotion, merge_patch(stored, changed))
        if (stored.get("seals") or {}).get(RECORD) != seal:
            changed["seals"] = {RECORD: seal}
        if not changed:
            return
        written = await self.kube.patch_status(
            PROMOTIONS, namespace, promotion["metadata"]["name"], changed, resource_version
        )
        self.view.remember(PROMOTIONS, written)
        promotion.pop("tampered", None)
        before, after = domain.reason_of(promotion), domain.reason_of({"status": status})
        outcome.notices.extend(_notices(promotion, stored, status, before, after))
        if before != after and after in domain.TERMINAL:
            _record_end(after, {**(promotion.get("status") or {}), **status})
        if before != after:
            message = next(c["message"] for c in status["conditions"] if c["type"] == domain.SUCCEEDED)
            kind = "Normal" if after in ("Promoted", "Ready", "Queued", domain.ROLLING_OUT) else "Warning"
            outcome.events.append((promotion, kind, after or "", message))
            outcome.audit.append((promotion, before, after or "", message))

    # -- execution ------------------------------------------------------------------------
    async def _start(
        self,
        namespace: str,
        promotion: Mapping[str, Any],
        versions: list[dict[str, Any]],
        gates: domain.Gates,
        status: dict[str, Any],
        now: str,
        outcome: Outcome,
    ) -> None:
        """The commit point: status says RollingOut (with the moves) before anything moves."""
        target = promotion["spec"]["targetStage"]
        moves = domain.execution_moves(target, gates.candidate, gates.holder)
        status.update(
            startTime=now,
            moves=[m.to_status() for m in moves],
            conditions=domain.condition_set(
                status,
                now,
                promotion["metadata"].get("generation"),
                RolledOut=(False, domain.ROLLING_OUT, "moving stages and rolling the serving Deployments"),
                Succeeded=(None, domain.ROLLING_OUT, f"promoting v{promotion['spec']['version']} to {target}"),
            ),
        )
        if gates.holder is not None:
            status["previousVersion"] = gates.holder["spec"]["version"]
        try:  # only if the promotion is still exactly what was judged (an approval withdrawn meanwhile)
            await self._write_status(namespace, promotion, status, outcome, promotion["metadata"]["resourceVersion"])
        except Conflict:
            return  # judged again on its next event or tick
        await self._continue(
            namespace, {**promotion, "status": {**(promotion.get("status") or {}), **status}}, versions, outcome
        )

    async def _continue(
        self, namespace: str, promotion: Mapping[str, Any], versions: list[dict[str, Any]], outcome: Outcome
    ) -> None:
        status = promotion["status"]
        name, target = promotion["metadata"]["name"], promotion["spec"]["targetStage"]
        moves = [domain.Move.from_status(m) for m in status.get("moves") or []]
        approved_by = [a["user"] for a in status.get("approvals") or []]
        serving = domain.candidate_of(versions, promotion["spec"]["version"])
        now = _now()
        new_status: dict[str, Any] = {}
        # Right before stages move or any Deployment is patched: storage still holds what was proven.
        overdue = _seconds_since(status.get("startTime"), now) > self.execution_timeout
        problem = await self.still_proven(namespace, serving) if serving is not None else None
        ending = None
        if serving is None:
            spec = promotion["spec"]
            ending = ("VersionNotFound", f"ModelVersion {spec['modelName']} v{spec['version']} was deleted")
        elif problem is not None and problem.reason == Reason.ARTIFACT_CHANGED:
            ending = ("ArtifactChanged", problem.message)
        elif overdue:  # a rollout that never ends would hold the model's turn forever
            why = f"; {problem.message}" if problem is not None else ""
            timeout = f"not completed within promotions.executionTimeoutSeconds ({self.execution_timeout:g} s){why}"
            ending = ("RolloutFailed", timeout)
        elif problem is not None:  # storage cannot answer now: nothing moves; the next tick tries again
            new_status["conditions"] = domain.condition_set(
                status,
                now,
                promotion["metadata"].get("generation"),
                RolledOut=(False, domain.ROLLING_OUT, problem.message),
            )
            await self._write_status(namespace, promotion, new_status, outcome)
            return
        if ending is not None:
            await self._roll_back(namespace, promotion, moves, versions, *ending, new_status, now, outcome)
            await self._write_status(namespace, promotion, new_status, outcome)
            return
        await self._apply_moves(namespace, name, moves, versions, approved_by, outcome)
        self._record_holders(namespace, promotion["spec"]["modelName"], versions)
        states = await self._roll(namespace, promotion["spec"]["modelName"], target, Served.of(serving), outcome)
        new_status["rollout"] = {"deployments": [s.to_status() for s in states]}
        failed = [s for s in states if s.failed]
        if failed:
            reason = "RolloutFailed" if any(s.misconfigured for s in failed) else "RolledBack"
            message = "; ".join(s.message for s in failed)
            await self._roll_back(namespace, promotion, moves, versions, reason, message, new_status, now, outcome)
        elif all(s.available for s in states):
            new_status.update(
                completionTime=now,
                conditions=domain.condition_set(
                    status,
                    now,
                    promotion["metadata"].get("generation"),
                    RolledOut=(True, "RolledOut", f"{len(states)} Deployment(s) serve v{serving['spec']['version']}"),
                    Succeeded=(True, "Promoted", f"v{serving['spec']['version']} is {target}"),
                ),
            )
        else:
            new_status["conditions"] = domain.condition_set(
                status,
                now,
                promotion["metadata"].get("generation"),
                RolledOut=(False, domain.ROLLING_OUT, "; ".join(s.message for s in states)),
            )
        await self._write_status(namespace, promotion, new_status, outcome)

    async def _apply_moves(
        self,
        namespace: str,
        promotion: str,
        moves: Sequence[domain.Move],
        versions: list[dict[str, Any]],
        approved_by: list[str],
        outcome: Outcome,
    ) -> None:
        by_name = {v["metadata"]["name"]: v for v in versions}
        for move in moves:
            version = by_name.get(move.version_name)
            if version is None:
                continue  # deleted meanwhile: nothing left to move
            history = list((version.get("status") or {}).get("stageHistory") or [])
            if domain.history_has(history, move, promotion):
                continue
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # sub-second: keeps the timeline ordered
            history.append(
                domain.stage_history_entry(
                    move, promotion, now, approved_by if move.to_stage == moves[-1].to_stage else []
                )
            )
            await self._write_stage(namespace, version, move.to_stage, history)
            why = f"promotion {promotion}"
            outcome.events.append(
                (
                    version,
                    "Normal",
                    "StageChanged",
                    f"{move.from_stage or 'no stage'} -> {move.to_stage or 'no stage'} ({why})",
                )
            )
            outcome.audit.append((version, move.from_stage, move.to_stage, why))
            outcome.notices.append(
                notifications.notice(
                    notifications.STAGE_CHANGED,
                    version,
                    **{"from": move.from_stage or None, "to": move.to_stage or None},
                    promotion=promotion,
                    approvers=approved_by if move.to_stage == moves[-1].to_stage else [],
                )
            )

    async def _write_stage(self, namespace: str, version: dict[str, Any], stage: str, history: list) -> None:
        """Stage and history with their seal in one write; then the label CI/CD selects by."""
        record = {"stage": stage or None, "stageHistory": history or None}
        seal = self.status_seals.seal(STAGE, version, record)
        name = version["metadata"]["name"]
        self.view.remember(
            VERSIONS, await self.kube.patch_status(VERSIONS, namespace, name, {**record, "seals": {STAGE: seal}})
        )
        self.view.remember(
            VERSIONS, await self.kube.patch_labels(VERSIONS, namespace, name, {STAGE_LABEL: stage or None})
        )
        version.setdefault("status", {}).update(stage=stage, stageHistory=history, seals={STAGE: seal})

    async def restore_stage(self, namespace: str, name: str, model: str) -> Outcome:
        """A ModelVersion whose stage the operator cannot prove gets the one its promotions record."""
        async with self._locks[(namespace, model)]:
            outcome = Outcome()
            raw = self.view.get(VERSIONS, namespace, name)
            if raw is None or self.status_seals.proven(STAGE, raw):
                return outcome
            stage, history = domain.stage_record(name, self._of_model(PROMOTIONS, namespace, model))
            raw = {**raw, "status": dict(raw.get("status") or {})}
            forged = raw["status"].get("stage") or ""
            await self._write_stage(namespace, raw, stage, history)
            why = f"status.stage {forged or '(none)'} was not written by the operator; restored from the promotions"
            outcome.events.append((raw, "Warning", TAMPERED, f"{why}: {stage or 'no stage'}"))
            outcome.audit.append((raw, forged, stage, why))
            return outcome

    @staticmethod
    def _record_holders(namespace: str, model: str, versions: Sequence[Mapping[str, Any]]) -> None:
        for stage in domain.EXCLUSIVE:
            holder = domain.holder_of(versions, stage)
            if holder is not None:
                metrics.STAGE_VERSION.labels(namespace, model, stage).set(holder["spec"]["version"])
            else:
                with contextlib.suppress(KeyError):
                    metrics.STAGE_VERSION.remove(namespace, model, stage)

    async def _roll(self, namespace: str, model: str, stage: str, served: Served, outcome: Outcome) -> list:
        deployments = await self.kube.list_deployments(namespace, f"{MODEL_LABEL}={model}")
        states = []
        for deployment in (d for d in deployments if stage_of(d) == stage):
            try:
                ops = rollout_patch(deployment, served)
            except MisconfiguredDeployment as exc:  # named in the promotion's condition; nothing patched
                states.append(RolloutState(deployment["metadata"]["name"], False, False, True, str(exc), True))
                continue
            if ops is not None:
                with contextlib.suppress(Conflict):  # edited meanwhile: the next tick re-reads and retries
                    await self.kube.json_patch_deployment(namespace, deployment["metadata"]["name"], ops)
                    outcome.events.append(
                        (deployment, "Normal", "ModelRolled", f"serving {served.model} v{served.version} ({stage})")
                    )
            states.append(
                rollout_state(deployment, served.version)
                if ops is None
                else rollout_state({**deployment, "status": {}}, served.version)
            )
        return states

    async def _roll_back(
        self,
        namespace: str,
        promotion: Mapping[str, Any],
        moves: list[domain.Move],
        versions: list[dict[str, Any]],
        reason: str,
        message: str,
        new_status: dict[str, Any],
        now: str,
        outcome: Outcome,
    ) -> None:
        """End the promotion with `reason`: undo the moves it made, serve the previous version
        again if storage still holds it as proven."""
        name, target = promotion["metadata"]["name"], promotion["spec"]["targetStage"]
        by_name = {v["metadata"]["name"]: v for v in versions}
        made = [
            m
            for m in moves
            if m.version_name in by_name
            and domain.history_has((by_name[m.version_name].get("status") or {}).get("stageHistory") or [], m, name)
        ]
        await self._apply_moves(namespace, name, domain.rollback_moves(made), versions, [], outcome)
        self._record_holders(namespace, promotion["spec"]["modelName"], versions)
        previous = promotion["status"].get("previousVersion")
        restored = domain.candidate_of(versions, previous) if previous else None
        problem = await self.still_proven(namespace, restored) if restored is not None else None
        if restored is not None and problem is None:
            await self._roll(namespace, promotion["spec"]["modelName"], target, Served.of(restored), outcome)
            message += f"; restored v{previous}"
        else:  # nothing restored: a rollout failure is no rollback
            reason = "RolloutFailed" if reason == "RolledBack" else reason
            if previous:
                why = problem.message if problem is not None else "it is not registered"
                message += f"; v{previous} not restored ({why}): the Deployments keep what they have"
            else:
                message += "; no previous version to restore"
        new_status.update(
            completionTime=now,
            conditions=domain.condition_set(
                promotion["status"],
                now,
                promotion["metadata"].get("generation"),
                RolledOut=(False, reason, message),
                Succeeded=(False, reason, message),
            ),
        )

    async def converge_deployment(self, namespace: str, name: str, model: str) -> Outcome:
        """A Deployment that opted in later or was edited by hand serves its stage's version again."""
        async with self._locks[(namespace, model)]:
            outcome = Outcome()
            deployment = next(
                (
                    d
                    for d in await self.kube.list_deployments(namespace, f"{MODEL_LABEL}={model}")
                    if d["metadata"]["name"] == name
                ),
                None,
            )
            if deployment is None:
                return outcome
            versions = self._of_model(VERSIONS, namespace, model)
            holder = domain.holder_of(versions, stage_of(deployment))
            if holder is None:
                return outcome  # nothing holds the stage: leave the Deployment as it is
            served = Served.of(holder)
            try:
                ops = rollout_patch(deployment, served)
            except MisconfiguredDeployment as exc:
                outcome.events.append((deployment, "Warning", "ModelNotConverged", str(exc)))
                return outcome
            if ops is None:
                return outcome
            if not domain.is_verified(holder):
                problem = f"ModelVersion {holder['metadata']['name']} is not verified"
            else:
                problem = getattr(await self.still_proven(namespace, holder), "message", None)
            if problem:
                message = f"not rolling {model} v{served.version} onto it: {problem}"
                outcome.events.append((deployment, "Warning", "ModelNotConverged", message))
                return outcome
            await self.kube.json_patch_deployment(namespace, name, ops)
            was = served_version(deployment)
            message = (
                f"converged to {model} v{served.version} ({stage_of(deployment)}); "
                f"it served {'v' + str(was) if was else 'no registered version'}"
            )
            outcome.events.append((deployment, "Normal", "ModelConverged", message))
            outcome.audit.append((deployment, f"v{was}" if was else None, f"v{served.version}", message))
            return outcome
