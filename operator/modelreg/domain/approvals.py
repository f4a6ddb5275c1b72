"""Approvals: annotations `approval.modelreg.io/<label-safe user>: <exact username>`, each
counted only with a seal that the admission webhook wrote beside it.

Seals (annotation `seal.modelreg.io/<same suffix>: <via>:<time>:<seal>`) bind an approval to
the promotion (its uid), the approving user, the target stage and the candidate ModelVersion
(its uid and declared sha256): a copied seal, or one for a version deleted and re-created with
other bytes, verifies for nothing. `modelreg.io/requested-by` is stamped on CREATE, with its
own seal over namespace, name, user and the admission time (a promotion has no uid while it
is being admitted, so the time binds it to this creation: see `REQUESTER_WINDOW`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelreg.domain.identity import same_person, skeleton
from modelreg.domain.seals import Sealer

APPROVAL_PREFIX = "approval.modelreg.io/"
SEAL_PREFIX = "seal.modelreg.io/"
REQUESTED_BY = "modelreg.io/requested-by"
REQUESTED_BY_SEAL = "modelreg.io/requested-by-seal"
# On a ModelVersion: when the webhook admitted its creation (sub-second), sealed over what it
# registers. The first admitted owns its (model, version); whole-second creationTimestamps cannot
# tell two registrations within one second apart, and names must not decide.
REGISTERED_AT = "modelreg.io/registered-at"
WEBHOOK, GITOPS = "webhook", "gitops"
# A requested-by seal counts only for an object created within this many seconds of its
# admission: a copy onto a re-created promotion of the same name, later, proves nothing.
REQUESTER_WINDOW = 300.0

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Candidate:
    """The ModelVersion an approval is for, identified beyond its name."""

    uid: str
    sha256: str

    @classmethod
    def of(cls, model_version: Obj | None) -> Candidate | None:
        if model_version is None:
            return None
        return cls(model_version["metadata"].get("uid", ""), model_version["spec"]["artifact"]["sha256"])


@dataclass(frozen=True)
class Tally:
    counted: list[dict]  # status.approvals entries: user, time, via
    ignored: list[str]  # why each uncounted approval does not count
    required: int
    # of them, given in the cluster through the webhook (a GitOps approval proves only the
    # committer's claim that the named person approved: policy.minimumClusterApprovals)
    cluster_required: int = 0

    @property
    def in_cluster(self) -> int:
        return sum(1 for entry in self.counted if entry.get("via") == WEBHOOK)

    @property
    def approved(self) -> bool:
        return len(self.counted) >= self.required and self.in_cluster >= self.cluster_required

    @property
    def summary(self) -> str:
        return f"{len(self.counted)}/{self.required}"


def approval_key(user: str) -> str:
    """The annotation key for `user`: a label-safe name part (<= 63 chars), unique per user."""
    safe = re.sub(r"[^A-Za-z0-9._-]", ".", user).strip("._-") or "user"
    if len(safe) > 63 or safe != user:
        digest = hashlib.sha256(user.encode()).hexdigest()[:8]
        safe = f"{safe[:54].rstrip('._-')}.{digest}"
    return APPROVAL_PREFIX + safe


def seal_key(approval: str) -> str:
    return SEAL_PREFIX + approval.removeprefix(APPROVAL_PREFIX)


def approvals_in(annotations: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in annotations.items() if k.startswith(APPROVAL_PREFIX)}


def _seconds_between(a: str, b: str) -> float | None:
    try:
        parse = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (a, b)]
    except (TypeError, ValueError):
        return None
    return abs((parse[0] - parse[1]).total_seconds())


class ApprovalSeals:
    """Makes and checks the seals of requested-by and of approvals (pure; the key is given)."""

    def __init__(self, sealer: Sealer, gitops_identity: str | None = None, gitops_stages: Collection[str] = ()) -> None:
        self.sealer = sealer
        self.gitops_identity = gitops_identity
        self.gitops_stages = frozenset(gitops_stages)

    # -- requested-by ------------------------------------------------------------------
    def requester_seal(self, namespace: str, name: str, user: str, time: str) -> str:
        return f"{time}|{self.sealer.seal('requested-by', namespace, name, user, time)}"

    def requester(self, promotion: Obj) -> str | None:
        """The creating user, if the webhook stamped it on this very creation."""
        stamped = self._stamp(promotion)
        return stamped[0] if stamped else None

    def requested_at(self, promotion: Obj) -> str | None:
        """When the webhook admitted this very creation (sub-second; sealed), if it did."""
        stamped = self._stamp(promotion)
        return stamped[1] if stamped else None

    def _stamp(self, promotion: Obj) -> tuple[str, str] | None:
        meta = promotion["metadata"]
        annotations = meta.get("annotations") or {}
        user, value = annotations.get(REQUESTED_BY), annotations.get(REQUESTED_BY_SEAL, "")
        time, _, seal = value.partition("|")
        if not user or not self.sealer.verifies(seal, "requested-by", meta.get("namespace"), meta["name"], user, time):
            return None
        gap = _seconds_between(time, meta.get("creationTimestamp", ""))
        return (user, time) if gap is not None and gap <= REQUESTER_WINDOW else None

    # -- registration (ModelVersions) --------------------------------------------------
    @staticmethod
    def _registration(namespace: str | None, spec: Obj, time: str) -> list[Any]:
        # Not bound to the name (a generateName has none at admission) but to what is registered: a
        # copy onto another object within the window registers the very same bytes.
        artifact = spec.get("artifact") or {}
        return [
            namespace,
            spec.get("modelName"),
            spec.get("version"),
            artifact.get("uri"),
            artifact.get("sha256"),
            time,
        ]

    def registration_stamp(self, namespace: str | None, spec: Obj, time: str) -> str:
        return f"{time}|{self.sealer.seal('registered', *self._registration(namespace, spec, time))}"

    def registered_at(self, model_version: Obj) -> str | None:
        """When the webhook admitted this very registration (sub-second; sealed), if it did."""
        meta = model_version["metadata"]
        time, _, seal = ((meta.get("annotations") or {}).get(REGISTERED_AT) or "").partition("|")
        parts = self._registration(meta.get("namespace"), model_version.get("spec") or {}, time)
        if not time or not self.sealer.verifies(seal, "registered", *parts):
            return None
        gap = _seconds_between(time, meta.get("creationTimestamp", ""))
        return time if gap is not None and gap <= REQUESTER_WINDOW else None

    # -- approvals ---------------------------------------------------------------------
    def approval_seal(
        self, promotion: Obj, user: str, candidate: Candidate, stages: Sequence[str], time: str, via: str = WEBHOOK
    ) -> str:
        """`stages`: those whose `approve` permission was checked (the target, and the stage the
        candidate leaves): if the candidate's stage changes later, the approval must be given again."""
        parts = self._parts(promotion, user, candidate, stages, time, via)
        return f"{via}|{time}|{self.sealer.seal('approval', *parts)}"

    def _parts(
        self, promotion: Obj, user: str, candidate: Candidate, stages: Sequence[str], time: str, via: str
    ) -> list[Any]:
        meta = promotion["metadata"]
        # A gitops approval is sealed during CREATE, before the promotion has a uid: it is bound
        # to the creation instead (namespace, name and the requester's sealed creation).
        where = [meta.get("uid", "")] if via == WEBHOOK else [meta.get("namespace"), meta["name"]]
        return [via, *where, user, list(stages), candidate.uid, candidate.sha256, time]

    def proof(
        self, promotion: Obj, key: str, user: str, candidate: Candidate | None, stages: Sequence[str]
    ) -> tuple[str, str] | None:
        """(via, time) when the approval at `key` carries a seal that verifies, else None."""
        value = (promotion["metadata"].get("annotations") or {}).get(seal_key(key), "")
        via, _, rest = value.partition("|")
        time, _, seal = rest.partition("|")
        if candidate is None or via not in (WEBHOOK, GITOPS):
            return None
        if not self.sealer.verifies(seal, "approval", *self._parts(promotion, user, candidate, stages, time, via)):
            return None
        return via, time


def tally(
    promotion: Obj,
    candidate: Candidate | None,
    required: int,
    seals: ApprovalSeals,
    previous: Sequence[Mapping] = (),
    stages: Sequence[str] | None = None,
    cluster_required: int = 0,
) -> Tally:
    """Distinct, sealed approvers other than the requester (people compared by skeleton).
    `stages`: whose approvals this move takes (default: the target's)."""
    annotations = promotion["metadata"].get("annotations") or {}
    target = promotion["spec"]["targetStage"]
    stages = list(stages or [target])
    requester = seals.requester(promotion)
    first_seen = {entry.get("user"): entry.get("time") for entry in previous}
    counted: dict[str, dict] = {}
    ignored: list[str] = []
    for key, value in sorted(approvals_in(annotations).items()):
        user = value.strip()
        if not user:
            ignored.append(f"{key} is empty")
            continue
        if requester is None:
            ignored.append(
                f"approval by {user}: the promotion's requester is not proven (created without the admission "
                "webhook); re-create the promotion"
            )
            continue
        if same_person(user, requester):
            ignored.append(f"{user} requested this promotion and cannot approve it")
            continue
        if user == seals.gitops_identity:
            ignored.append(f"{user} is the GitOps identity: it applies approvals reviewed in git, it does not give one")
            continue
        if skeleton(user) in counted:
            ignored.append(f"{user} is the same person as {counted[skeleton(user)]['user']}")
            continue
        proof = seals.proof(promotion, key, user, candidate, stages) if key == approval_key(user) else None
        if proof is None:
            ignored.append(f"approval by {user} carries no valid seal from the admission webhook for this version")
            continue
        via, time = proof
        if via == GITOPS and (requester != seals.gitops_identity or not seals.gitops_stages.issuperset(stages)):
            ignored.append(f"approval by {user} came through GitOps, which the policy does not allow for {target}")
            continue
        counted[skeleton(user)] = {"user": user, "time": first_seen.get(user) or time, "via": via}
    return Tally(list(counted.values()), ignored, required, cluster_required)
