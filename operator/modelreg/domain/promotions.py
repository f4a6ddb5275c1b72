"""Promotion decisions: gates, turn-taking, superseding, and the stage moves of an execution."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelreg.domain import conditions, notifications
from modelreg.domain.approvals import ApprovalSeals, Candidate, Tally, tally
from modelreg.domain.criteria import Evaluation, evaluate
from modelreg.domain.notifications import Notice
from modelreg.models.stages import DISPLACED_TO, EXCLUSIVE

SUCCEEDED, APPROVED, CRITERIA_MET, ROLLED_OUT = "Succeeded", "Approved", "CriteriaMet", "RolledOut"
ROLLING_OUT = "RollingOut"
# Endings whose moves were undone (those made; replaying all moves and undoing all nets the same).
UNDONE = frozenset({"RolledBack", "RolloutFailed", "ArtifactChanged", "VersionNotFound"})
TERMINAL = frozenset(
    {"Promoted", "RolledBack", "RolloutFailed", "Superseded", "StatusTampered", "ArtifactChanged", "VersionNotFound"}
)
# Stages that one version holds at a time (an alias); Archived holds any number.
# What happens to the version that held a stage when another one takes it.

Obj = Mapping[str, Any]


def _precise(time: str) -> str:
    """Whole-second and sub-second RFC 3339 times in one sortable form."""
    return time.replace("Z", ".000000Z") if time.endswith("Z") and "." not in time else time


def _created(obj: Obj) -> tuple[str, str]:
    return _precise(obj["metadata"].get("creationTimestamp", "")), obj["metadata"]["name"]


Order = Callable[[Obj], tuple[str, str]]


def admission_order(seals: ApprovalSeals) -> Order:
    """Promotions in the order they were admitted: the webhook's sealed, sub-second admission time
    (nobody can forge it); creationTimestamp (whole seconds) where there is none; then the name."""

    def order(promotion: Obj) -> tuple[str, str]:
        admitted = seals.requested_at(promotion)
        return (_precise(admitted), promotion["metadata"]["name"]) if admitted else _created(promotion)

    return order


def registration_order(seals: ApprovalSeals) -> Order:
    """ModelVersions in the order their registrations were admitted: the webhook's sealed,
    sub-second time; one without it (webhook bypassed, or from before) counts as admitted at the
    very end of its creationTimestamp's second, so it never wins that second by its name."""

    def order(version: Obj) -> tuple[str, str]:
        admitted = seals.registered_at(version)
        created = version["metadata"].get("creationTimestamp", "")
        unsealed = created.replace("Z", ".999999Z") if created.endswith("Z") and "." not in created else created
        return (_precise(admitted) if admitted else unsealed), version["metadata"]["name"]

    return order


def reason_of(promotion: Obj) -> str | None:
    found = conditions.find((promotion.get("status") or {}).get("conditions"), SUCCEEDED)
    return found.get("reason") if found else None


def candidate_of(versions: Sequence[Obj], version: int, order: Order = _created) -> Obj | None:
    """The registration that owns (model, version): the first admitted (duplicates are not Ready)."""
    same = [v for v in versions if v["spec"]["version"] == version]
    return min(same, key=order) if same else None


def is_verified(model_version: Obj) -> bool:
    found = conditions.find((model_version.get("status") or {}).get("conditions"), "ArtifactVerified")
    return bool(found) and found.get("status") == "True"


def holder_of(versions: Sequence[Obj], stage: str) -> Obj | None:
    if stage not in EXCLUSIVE:
        return None
    holders = [v for v in versions if (v.get("status") or {}).get("stage") == stage]
    return max(holders, key=_created) if holders else None


@dataclass(frozen=True)
class Policy:
    required_approvals: Mapping[str, int]
    default_criteria: Mapping[str, Sequence[Mapping]] = field(default_factory=dict)
    # approvals a stage needs given in the cluster (through the webhook), GitOps ones aside
    minimum_cluster_approvals: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Gates:
    """Where a promotion stands before execution: reason is the Succeeded reason while waiting."""

    ready: bool
    reason: str
    message: str
    approvals: Tally
    evaluation: Evaluation | None
    candidate: Obj | None
    holder: Obj | None


def required_approvals(policy: Policy, target: str, candidate: Obj | None, counts: str = "required") -> int:
    """The target stage's approvals, and those of the exclusive stage the candidate leaves:
    archiving the Production version takes Production's approvals, not Archived's zero.
    `counts`: "required" (all), or "cluster" (those that must be given in the cluster)."""
    table = policy.required_approvals if counts == "required" else policy.minimum_cluster_approvals
    leaving = ((candidate or {}).get("status") or {}).get("stage") or ""
    needed = table.get(target, 0)
    if leaving in EXCLUSIVE and leaving != target:
        needed = max(needed, table.get(leaving, 0))
    return needed


def stages_to_approve(target: str, candidate: Obj | None) -> list[str]:
    """The stages whose `approve` permission an approver of this move needs."""
    leaving = ((candidate or {}).get("status") or {}).get("stage") or ""
    return [target, leaving] if leaving in EXCLUSIVE and leaving != target else [target]


def gates(promotion: Obj, versions: Sequence[Obj], policy: Policy, seals: ApprovalSeals) -> Gates:
    """`versions` and `promotion` are trusted views (see domain.trust)."""
    spec = promotion["spec"]
    target, wanted = spec["targetStage"], spec["version"]
    candidate = candidate_of(versions, wanted, registration_order(seals))
    approvals = tally(
        promotion,
        Candidate.of(candidate),
        required_approvals(policy, target, candidate),
        seals,
        (promotion.get("status") or {}).get("approvals") or [],
        stages_to_approve(target, candidate),
        required_approvals(policy, target, candidate, counts="cluster"),
    )
    holder = holder_of(versions, target)
    if candidate is None:
        message = f"ModelVersion {spec['modelName']} v{wanted} is not registered in this namespace"
        return Gates(False, "WaitingForVersion", message, approvals, None, None, holder)
    if candidate["metadata"].get("deletionTimestamp"):  # a version on its way out never takes a stage
        message = f"ModelVersion {candidate['metadata']['name']} is being deleted"
        return Gates(False, "WaitingForVersion", message, approvals, None, candidate, holder)
    verified = conditions.find((candidate.get("status") or {}).get("conditions"), "ArtifactVerified")
    criteria = [*policy.default_criteria.get(target, ()), *(spec.get("criteria") or ())]
    current_label = f"v{holder['spec']['version']} in {target}" if holder else "no current version"
    evaluation = evaluate(
        criteria,
        candidate["spec"].get("metrics") or {},
        holder["spec"].get("metrics") or {} if holder else None,
        current_label,
    )
    name = candidate["metadata"]["name"]
    if verified is None or verified["status"] != "True":
        if verified is not None and verified["reason"] in (
            "ChecksumMismatch",
            "SizeMismatch",
            "ArtifactChanged",
            "InvalidURI",
        ):
            return Gates(
                False,
                "ArtifactInvalid",
                f"ModelVersion {name}: {verified['message']}",
                approvals,
                evaluation,
                candidate,
                holder,
            )
        why = verified["message"] if verified else "not checked yet"
        return Gates(
            False,
            "WaitingForArtifact",
            f"waiting for ModelVersion {name} to be verified: {why}",
            approvals,
            evaluation,
            candidate,
            holder,
        )
    if not evaluation.met:
        return Gates(False, "CriteriaNotMet", "; ".join(evaluation.failures), approvals, evaluation, candidate, holder)
    if not approvals.approved:
        message = f"{approvals.summary} approvals for {target}"
        if approvals.in_cluster < approvals.cluster_required:
            message += (
                f"; {approvals.in_cluster}/{approvals.cluster_required} given in the cluster "
                "(policy.minimumClusterApprovals: GitOps approvals do not count towards it)"
            )
        if approvals.ignored:
            message += "; not counted: " + "; ".join(approvals.ignored)
        return Gates(False, "AwaitingApproval", message, approvals, evaluation, candidate, holder)
    return Gates(True, "Ready", "approved, criteria met, artifact verified", approvals, evaluation, candidate, holder)


def superseded_by(promotion: Obj, promotions: Sequence[Obj], order: Order = _created) -> str | None:
    """An older pending promotion to an exclusive stage is moot once a newer one to the same
    stage has completed: applying it later would undo a newer decision."""
    target = promotion["spec"]["targetStage"]
    if target not in EXCLUSIVE:
        return None  # archiving an old version later still means something
    for other in promotions:
        if (
            other["spec"]["targetStage"] == target
            and order(other) > order(promotion)
            and reason_of(other) == "Promoted"
        ):
            return other["metadata"]["name"]
    return None


def blocked_by(
    promotion: Obj, promotions: Sequence[Obj], ready: Mapping[str, bool], order: Order = _created
) -> str | None:
    """One execution per model at a time, in creation order among those ready to go."""
    for other in promotions:
        name = other["metadata"]["name"]
        if name == promotion["metadata"]["name"]:
            continue
        if reason_of(other) == ROLLING_OUT:
            return name
        if ready.get(name) and order(other) < order(promotion) and reason_of(other) not in TERMINAL:
            return name
    return None


@dataclass(frozen=True)
class Move:
    """One ModelVersion changing stage."""

    version_name: str
    version: int
    from_stage: str
    to_stage: str
    version_uid: str = ""  # the very object judged ("" in records from before it was kept)

    def to_status(self) -> dict[str, Any]:
        entry = {
            "versionName": self.version_name,
            "version": self.version,
            "fromStage": self.from_stage,
            "toStage": self.to_stage,
        }
        return {**entry, "versionUid": self.version_uid} if self.version_uid else entry

    @classmethod
    def from_status(cls, entry: Mapping[str, Any]) -> Move:
        return cls(
            entry["versionName"], entry["version"], entry["fromStage"], entry["toStage"], entry.get("versionUid", "")
        )


def execution_moves(target: str, candidate: Obj, holder: Obj | None) -> list[Move]:
    moves = []
    if holder is not None and holder["metadata"]["name"] != candidate["metadata"]["name"]:
        displaced = DISPLACED_TO[target]
        moves.append(Move(holder["metadata"]["name"], holder["spec"]["version"], target, displaced, _uid(holder)))
    current = (candidate.get("status") or {}).get("stage") or ""
    moves.append(Move(candidate["metadata"]["name"], candidate["spec"]["version"], current, target, _uid(candidate)))
    return moves


def _uid(obj: Obj) -> str:
    return obj["metadata"].get("uid") or ""


def moved_version(versions: Sequence[Obj], move: Move) -> Obj | None:
    """The very object `move` was made for, by the uid the move kept. One deleted and registered
    again (same name or number, other bytes) is not it: it was never judged or approved. A move
    recorded without a uid (before uids were kept) names no object at all."""
    if not move.version_uid:
        return None
    return next((v for v in versions if _uid(v) == move.version_uid), None)


def rollback_moves(moves: Sequence[Move]) -> list[Move]:
    return [Move(m.version_name, m.version, m.to_stage, m.from_stage, m.version_uid) for m in reversed(moves)]


def stage_history_entry(move: Move, promotion: str, now: str, approved_by: Sequence[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {"stage": move.to_stage, "time": now, "promotion": promotion}
    if approved_by:
        entry["approvedBy"] = list(approved_by)
    return entry


def history_has(history: Sequence[Obj], move: Move, promotion: str) -> bool:
    """Moves are applied at most once: a restart finds the entry it wrote and skips the move."""
    return any(h.get("promotion") == promotion and h.get("stage") == move.to_stage for h in history)


def condition_set(status: Obj, now: str, generation: int | None, **states: tuple[bool | None, str, str]) -> list[dict]:
    current = list(status.get("conditions") or [])
    for type_, (value, reason, message) in states.items():
        current = conditions.set_condition(current, type_, value, reason, message, now=now, generation=generation)
    return current


def stage_record(version: Obj, promotions: Sequence[Obj]) -> tuple[str, list[dict[str, Any]]]:
    """A version's stage and stageHistory replayed from the proven promotion records: the
    truth a tampered ModelVersion status is restored from. Moves are matched by the uid they
    kept, never by name: a version deleted and created again under its name was never moved."""
    uid = _uid(version)
    stage: str = ""
    history: list[dict[str, Any]] = []
    executed = [p for p in promotions if (p.get("status") or {}).get("moves")]
    for promotion in sorted(executed, key=lambda p: (p["status"].get("startTime") or "", _created(p))):
        status, name = promotion["status"], promotion["metadata"]["name"]
        moves = [Move.from_status(m) for m in status["moves"]]
        approved = [a["user"] for a in status.get("approvals") or []]
        undone = reason_of(promotion) in UNDONE
        steps = [
            (m, status.get("startTime") or "", approved if m.to_stage == moves[-1].to_stage else []) for m in moves
        ]
        steps += [(m, status.get("completionTime") or "", []) for m in rollback_moves(moves)] if undone else []
        for move, time, approvers in steps:
            if uid and move.version_uid == uid:
                stage = move.to_stage
                history.append(stage_history_entry(move, name, time, approvers))
    return stage, history


@dataclass(frozen=True)
class Judgement:
    """The status a pending promotion should have now, and whether it executes now."""

    status: dict[str, Any]
    execute: bool


def judge(
    promotion: Obj,
    promotions: Sequence[Obj],
    evaluated: Mapping[str, Gates],
    requester: str | None,
    now: str,
    order: Order = _created,
) -> Judgement:
    """Pure: the promotion's gates, then superseded, queued behind another of its model, or its turn
    (mirrors ModelVersions' status_after_check)."""
    name, generation = promotion["metadata"]["name"], promotion["metadata"].get("generation")
    gates = evaluated[name]
    status = gate_status(promotion, gates, requester, now)
    if winner := superseded_by(promotion, promotions, order):
        message = f"promotion {winner} to the same stage completed later"
        status["conditions"] = condition_set(
            promotion.get("status") or {}, now, generation, Succeeded=(False, "Superseded", message)
        )
        status["completionTime"] = now
    elif gates.ready:
        if blocker := blocked_by(promotion, promotions, {n: g.ready for n, g in evaluated.items()}, order):
            message = f"waiting for promotion {blocker} of {promotion['spec']['modelName']}"
            status["conditions"] = condition_set(status, now, generation, Succeeded=(None, "Queued", message))
        else:
            return Judgement(status, True)
    return Judgement(status, False)


def gate_status(promotion: Obj, gates: Gates, requester: str | None, now: str) -> dict[str, Any]:
    generation = promotion["metadata"].get("generation")
    approvals, evaluation = gates.approvals, gates.evaluation
    criteria_state = (
        (None, "WaitingForVersion", "the version is not registered")
        if evaluation is None
        else (True, "CriteriaMet", "all criteria met")
        if evaluation.met
        else (False, "CriteriaNotMet", "; ".join(evaluation.failures))
    )
    ignored = "; not counted: " + "; ".join(approvals.ignored) if approvals.ignored else ""
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "approvals": approvals.counted,
        "requiredApprovals": approvals.required,
        "approvalSummary": approvals.summary,
        "comparison": evaluation.comparison if evaluation else {},
        "conditions": condition_set(
            promotion.get("status") or {},
            now,
            generation,
            Approved=(
                approvals.approved,
                "Approved" if approvals.approved else "AwaitingApproval",
                f"{approvals.summary} approvals{ignored}",
            ),
            CriteriaMet=criteria_state,
            RolledOut=(None, "NotStarted", "not started"),
            Succeeded=(None if gates.reason != "ArtifactInvalid" else False, gates.reason, gates.message),
        ),
    }
    if requester:
        status["requestedBy"] = requester
    return status


def ended(promotion: Obj, base: Obj, now: str, reason: str, message: str) -> dict[str, Any]:
    """The status that ends a promotion unsuccessfully: `reason` on RolledOut and Succeeded."""
    return {
        "completionTime": now,
        "conditions": condition_set(
            base,
            now,
            promotion["metadata"].get("generation"),
            RolledOut=(False, reason, message),
            Succeeded=(False, reason, message),
        ),
    }


def rolling(promotion: Obj, base: Obj, now: str, message: str) -> dict[str, Any]:
    """Still rolling out: why it is not done yet."""
    generation = promotion["metadata"].get("generation")
    return {"conditions": condition_set(base, now, generation, RolledOut=(False, ROLLING_OUT, message))}


def notices(promotion: Obj, stored: Obj, status: Obj, before: str | None) -> list[Notice]:
    """What a status write tells the notification endpoints: requested, each new approval, the end
    (`before`: the outcome the operator had recorded)."""
    after = reason_of({"status": status})
    found = []
    if before is None and after is not None:
        found.append(notifications.notice(notifications.REQUESTED, promotion, requestedBy=status.get("requestedBy")))
    counted = [a.get("user") for a in status.get("approvals") or []]
    already = [a.get("user") for a in stored.get("approvals") or []]
    approved = any(c["type"] == APPROVED and c["status"] == "True" for c in status.get("conditions") or [])
    for user in (u for u in counted if u not in already):
        found.append(
            notifications.notice(notifications.APPROVED, promotion, approver=user, approvers=counted, approved=approved)
        )
    if before != after and after in TERMINAL:
        message = next((c["message"] for c in status.get("conditions") or [] if c["type"] == SUCCEEDED), "")
        kind = notifications.SUCCEEDED if after == "Promoted" else notifications.FAILED
        approvers = [a.get("user") for a in {**stored, **status}.get("approvals") or []]
        found.append(notifications.notice(kind, promotion, reason=after, message=message, approvers=approvers))
    return found
