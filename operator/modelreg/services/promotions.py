"""Reconcile ModelPromotions of one model, one at a time, from the operator's view of the cluster.

Every step is idempotent and its state lives in the cluster: the promotion's status
(RollingOut, previousVersion, the moves), the versions' stageHistory, the serving targets'
modelreg.io/version annotation. A restart at any point repeats no effect.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from modelreg import metrics
from modelreg.domain import promotions as domain
from modelreg.domain.approvals import ApprovalSeals
from modelreg.domain.artifacts import Reason, Verdict
from modelreg.domain.merge import merge_patch
from modelreg.domain.policy import PolicyError, effective_policy
from modelreg.domain.serving import DEPLOYMENTS, Served, TargetKind
from modelreg.domain.transitions import Transition
from modelreg.domain.trust import RECORD, StatusSeals, forged_keys
from modelreg.models.stages import EXCLUSIVE
from modelreg.services import convergence
from modelreg.services.reporting import Outcome
from modelreg.services.rollout import TAMPERED, Clock, Prover, Rollout
from modelreg.services.view import PROMOTIONS, VERSIONS, View
from modelreg.storage.kube import Conflict, KubeStore

NORMAL_ENDINGS = ("Promoted", "Ready", "Queued", domain.ROLLING_OUT)


def _seconds_between(start: str | None, end: str) -> float:
    if not start:
        return 0.0
    first, last = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (start, end))
    return (last - first).total_seconds()


def _record_end(outcome: str, status: Mapping[str, Any]) -> None:
    metrics.PROMOTIONS.labels(outcome=outcome).inc()
    end = status.get("completionTime")
    if outcome == "Promoted" and end and status.get("startTime"):
        metrics.ROLLOUT_SECONDS.observe(_seconds_between(status["startTime"], end))
        approved = [a["time"] for a in status.get("approvals") or [] if a.get("time")]
        if approved:
            metrics.APPROVAL_TO_ROLLOUT.observe(max(0.0, _seconds_between(max(approved), end)))


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
        clock: Clock = lambda: datetime.now(UTC),
        minimum_cluster: Mapping[str, int] | None = None,
        kinds: Sequence[TargetKind] = (DEPLOYMENTS,),
    ) -> None:
        self.kube, self.view, self.clock = kube, view, clock
        self.minimum_cluster = dict(minimum_cluster or {})
        self.required, self.criteria, self.policy_config_map = required, criteria, policy_config_map
        self.seals, self.status_seals = seals, status_seals
        self.still_proven, self.execution_timeout = still_proven, execution_timeout
        self.rollout = Rollout(kube, view, status_seals, still_proven, clock, kinds)
        self._locks: dict[tuple[str, str], asyncio.Lock] = collections.defaultdict(asyncio.Lock)

    def _now(self) -> str:
        return self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")

    # -- entry points: serialised per model, so every decision sees the previous one's result ---
    async def reconcile(self, namespace: str, name: str, model: str) -> Outcome:
        async with self._locks[(namespace, model)]:
            outcome = Outcome()
            await self._reconcile(namespace, name, model, outcome)
            return outcome

    async def restore_stage(self, namespace: str, name: str, model: str) -> Outcome:
        async with self._locks[(namespace, model)]:
            outcome = Outcome()
            await self.rollout.restore_stage(namespace, name, model, outcome)
            return outcome

    async def converge_target(
        self, kind: TargetKind, namespace: str, name: str, model: str, seen: Mapping[str, Any] | None = None
    ) -> Outcome:
        """`seen`: the target as a watch event showed it; if that already serves its stage's
        version, nothing is read."""
        if seen is not None and convergence.settled(self.view, namespace, model, kind, seen):
            return Outcome()
        async with self._locks[(namespace, model)]:
            return await convergence.converge(self.kube, self.view, self.still_proven, kind, namespace, name, model)

    # -- judging ----------------------------------------------------------------------------
    async def _reconcile(self, namespace: str, name: str, model: str, outcome: Outcome) -> None:
        raw = self.view.get(PROMOTIONS, namespace, name)
        if raw is None:
            return
        promotions = self.view.trusted(PROMOTIONS, namespace, model)  # unproven status is absent
        promotion = next(p for p in promotions if p["metadata"]["name"] == name)
        if not self.status_seals.proven(RECORD, raw):
            promotion["tampered"] = raw.get("status") or {}  # the stored status, to undo it
            why = "its status (approvals, moves, previousVersion, outcome) was not written by the operator"
            transition = Transition(
                "Warning", TAMPERED, f"{why}: restored from the record", domain.reason_of(raw), TAMPERED
            )
            outcome.add(promotion, transition)
        if domain.reason_of(promotion) in domain.TERMINAL:
            return  # finished promotions stay as history, untouched
        versions = self._relevant_versions(namespace, model, promotions)  # read-only: rollout replaces, never edits
        now = self._now()
        if "tampered" in promotion and any(
            h.get("promotion") == name
            for v in self.view.trusted(VERSIONS, namespace, model, fresh=False)  # any version it may have moved
            for h in (v.get("status") or {}).get("stageHistory") or []
        ):
            # It did execute (the versions' sealed history says so), but its own record is gone:
            # end it without moving anything more.
            why = "its status was tampered with after it executed"
            generation = promotion["metadata"].get("generation")
            status = {
                "completionTime": now,
                "conditions": domain.condition_set({}, now, generation, Succeeded=(False, TAMPERED, why)),
            }
            await self._write_status(namespace, promotion, status, outcome)
            return
        if domain.reason_of(promotion) == domain.ROLLING_OUT:
            await self._continue(namespace, promotion, versions, outcome)
            return
        try:
            override = await self.kube.policy_override(namespace, self.policy_config_map)
            policy = effective_policy(self.required, self.criteria, override, self.minimum_cluster)
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
            return
        evaluated = {
            p["metadata"]["name"]: domain.gates(p, versions, policy, self.seals)
            for p in promotions
            if domain.reason_of(p) not in domain.TERMINAL
        }
        order = domain.admission_order(self.seals)
        judgement = domain.judge(promotion, promotions, evaluated, self.seals.requester(promotion), now, order)
        if judgement.execute:
            await self._start(namespace, promotion, versions, evaluated[name], judgement.status, now, outcome)
        else:
            await self._write_status(namespace, promotion, judgement.status, outcome)

    def _relevant_versions(self, namespace: str, model: str, promotions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The model's versions (trusted, read-only) that judging and executing its open promotions
        can touch: those they name (candidates, and the versions they displaced) and the holders of
        the exclusive stages, found through the view's indexes: a decision costs the same with
        2,000 versions as with 2."""
        open_ = [p for p in promotions if domain.reason_of(p) not in domain.TERMINAL]
        numbers = {p["spec"]["version"] for p in open_}
        numbers |= {p["status"]["previousVersion"] for p in open_ if (p.get("status") or {}).get("previousVersion")}
        found = {
            body["metadata"]["name"]: body
            for body in (
                *self.view.indexed(namespace, model, "version", numbers),
                *self.view.indexed(namespace, model, "stage", sorted(EXCLUSIVE)),
            )
        }
        return [self.view.trusted_body(VERSIONS, body) for _, body in sorted(found.items())]

    async def _write_status(
        self,
        namespace: str,
        promotion: dict[str, Any],
        status: dict[str, Any],
        outcome: Outcome,
        resource_version: str | None = None,
    ) -> None:
        """Only what changed, sealed; the record's transitions and notices follow the write."""
        stored = promotion.get("tampered", promotion.get("status") or {})
        changed = {k: v for k, v in status.items() if stored.get(k) != v}
        if "tampered" in promotion:
            changed.update(forged_keys(RECORD, stored, {**(promotion.get("status") or {}), **status}))
        seal = self.status_seals.seal(RECORD, promotion, merge_patch(stored, changed))
        if (stored.get("seals") or {}).get(RECORD) != seal:
            changed["seals"] = {RECORD: seal}
        if not changed:
            return
        name = promotion["metadata"]["name"]
        write = self.kube.patch_status(PROMOTIONS, namespace, name, changed, resource_version)
        await self.view.write(PROMOTIONS, namespace, name, write)
        promotion.pop("tampered", None)  # what is stored now is the operator's
        before, after = domain.reason_of(promotion), domain.reason_of({"status": status})
        outcome.notices.extend(domain.notices(promotion, stored, status, before))
        if before != after and after in domain.TERMINAL:
            _record_end(after, {**(promotion.get("status") or {}), **status})
        if before != after:
            message = next(c["message"] for c in status["conditions"] if c["type"] == domain.SUCCEEDED)
            kind = "Normal" if after in NORMAL_ENDINGS else "Warning"
            outcome.add(promotion, Transition(kind, after or "", message, before, after or ""))

    # -- executing --------------------------------------------------------------------------
    async def _start(
        self,
        namespace: str,
        promotion: dict[str, Any],
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
                RolledOut=(False, domain.ROLLING_OUT, "moving stages and rolling the serving targets"),
                Succeeded=(None, domain.ROLLING_OUT, f"promoting v{promotion['spec']['version']} to {target}"),
            ),
        )
        if gates.holder is not None:
            status["previousVersion"] = gates.holder["spec"]["version"]
        # Storage is asked while the commit point is written, not after: nothing has moved yet
        # either way, and the rollout starts one storage round trip sooner.
        check = asyncio.ensure_future(self.still_proven(namespace, gates.candidate)) if gates.candidate else None
        try:  # only if the promotion is still exactly what was judged (an approval withdrawn meanwhile)
            await self._write_status(namespace, promotion, status, outcome, promotion["metadata"]["resourceVersion"])
        except BaseException as exc:
            if check is not None:  # not executing now: its answer would be stale by the next try
                check.cancel()
                check.add_done_callback(lambda done: done.cancelled() or done.exception())  # nothing left unread
            if isinstance(exc, Conflict):
                return  # judged again on its next event or tick
            raise
        executing = {**promotion, "status": {**(promotion.get("status") or {}), **status}}
        await self._continue(namespace, executing, versions, outcome, check)

    async def _continue(
        self,
        namespace: str,
        promotion: dict[str, Any],
        versions: list[dict[str, Any]],
        outcome: Outcome,
        check: Awaitable[Verdict | None] | None = None,
    ) -> None:
        """`check`: storage's answer for the candidate, if asked already in this execution."""
        status, spec = promotion["status"], promotion["spec"]
        name, target, model = promotion["metadata"]["name"], spec["targetStage"], spec["modelName"]
        moves = [domain.Move.from_status(m) for m in status.get("moves") or []]
        judged = next((m for m in moves if m.to_stage == target and m.version == spec["version"]), None)
        # the very version judged and approved at the commit point, not one re-created since
        serving = (
            domain.moved_version(versions, judged)
            if judged
            else domain.candidate_of(versions, spec["version"], domain.registration_order(self.seals))
        )
        now = self._now()
        # Right before stages move or any serving target is patched: storage still holds what was proven.
        if check is None and serving is not None:
            check = self.still_proven(namespace, serving)
        problem = await check if check is not None else None
        ending = None
        if serving is None:
            ending = ("VersionNotFound", f"ModelVersion {model} v{spec['version']} was deleted (or replaced) meanwhile")
        elif problem is not None and problem.reason == Reason.ARTIFACT_CHANGED:
            ending = ("ArtifactChanged", problem.message)
        elif _seconds_between(status.get("startTime"), now) > self.execution_timeout:
            # a rollout that never ends would hold the model's turn forever
            why = f"; {problem.message}" if problem is not None else ""
            ending = (
                "RolloutFailed",
                f"not completed within promotions.executionTimeoutSeconds ({self.execution_timeout:g} s){why}",
            )
        elif problem is not None:  # storage cannot answer now: nothing moves; the next tick tries again
            await self._write_status(
                namespace, promotion, domain.rolling(promotion, status, now, problem.message), outcome
            )
            return
        if ending is not None:
            ended = await self.rollout.roll_back(namespace, promotion, moves, versions, *ending, now, outcome)
            await self._write_status(namespace, promotion, ended, outcome)
            return
        approved_by = [a["user"] for a in status.get("approvals") or []]
        states = await self.rollout.apply_moves(
            namespace,
            name,
            moves,
            versions,
            approved_by,
            outcome,
            then=lambda: self.rollout.roll(namespace, model, target, Served.of(serving), outcome),
        )
        self.rollout.record_holders(namespace, model, versions)
        new_status: dict[str, Any] = {"rollout": {"deployments": [s.to_status() for s in states]}}
        failed = [s for s in states if s.failed]
        if failed:
            reason = "RolloutFailed" if any(s.misconfigured for s in failed) else "RolledBack"
            message = "; ".join(s.message for s in failed)
            new_status |= await self.rollout.roll_back(
                namespace, promotion, moves, versions, reason, message, now, outcome
            )
        elif all(s.available for s in states):
            version = serving["spec"]["version"]
            new_status["completionTime"] = now
            new_status["conditions"] = domain.condition_set(
                status,
                now,
                promotion["metadata"].get("generation"),
                RolledOut=(True, "RolledOut", f"{len(states)} serving target(s) serve v{version}"),
                Succeeded=(True, "Promoted", f"v{version} is {target}"),
            )
        else:
            new_status |= domain.rolling(promotion, status, now, "; ".join(s.message for s in states))
        await self._write_status(namespace, promotion, new_status, outcome)
