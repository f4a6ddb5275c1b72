"""Status the operator can prove it wrote.

Users cannot write `status` (the webhook denies it and RBAC grants none), but where that is
bypassed a forged status must still act on nothing. So the operator seals the parts it acts
on, keyed per object uid, and reads every object through a view that drops unproven parts:
a forged stage holds no stage, a forged verification verifies nothing, a forged promotion
record (RollingOut with invented moves, approvals or previousVersion) is a fresh request.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from modelreg.domain import conditions
from modelreg.domain.seals import Sealer

Obj = Mapping[str, Any]

VERIFICATION, STAGE, RECORD = "verification", "stage", "record"
# What each seal covers: the status keys the operator acts on (plus one condition each).
SEALED_KEYS = {
    VERIFICATION: ("artifact", "lastCheck"),
    STAGE: ("stage", "stageHistory"),
    RECORD: ("requestedBy", "approvals", "moves", "previousVersion", "startTime", "completionTime"),
}
SEALED_CONDITION = {VERIFICATION: "ArtifactVerified", STAGE: None, RECORD: "Succeeded"}
# Unproven promotion records lose everything derived from them, conditions included.
RECORD_DERIVED = (*SEALED_KEYS[RECORD], "conditions", "rollout", "approvalSummary")


def _parts(part: str, uid: str, status: Obj) -> list[Any]:
    values = [status.get(key) or None for key in SEALED_KEYS[part]]
    condition_type = SEALED_CONDITION[part]
    found = conditions.find(status.get("conditions"), condition_type) if condition_type else None
    return [uid, *values, [found.get("status"), found.get("reason")] if found else None]


def _present(part: str, status: Obj) -> bool:
    return _parts(part, "", status)[1:] != [None] * (len(SEALED_KEYS[part]) + 1)


class StatusSeals:
    def __init__(self, sealer: Sealer) -> None:
        self.sealer = sealer

    def seal(self, part: str, obj: Obj, status: Obj) -> str:
        """The seal for `status` (the whole status as it will be stored) of `obj`."""
        return self.sealer.seal(part, *_parts(part, obj["metadata"].get("uid", ""), status))

    def proven(self, part: str, obj: Obj) -> bool:
        """Nothing to prove, or a seal that verifies for exactly these values of this object."""
        status = obj.get("status") or {}
        if not _present(part, status):
            return True
        seal = (status.get("seals") or {}).get(part)
        return self.sealer.verifies(seal, part, *_parts(part, obj["metadata"].get("uid", ""), status))

    def trusted_version(self, mv: Obj) -> dict[str, Any]:
        """`mv` itself when all is proven (no copy: views are read-mostly and fresh per read)."""
        verified, staged = self.proven(VERIFICATION, mv), self.proven(STAGE, mv)
        if verified and staged:
            return mv  # type: ignore[return-value]
        status = dict(mv.get("status") or {})
        if not verified:
            for key in SEALED_KEYS[VERIFICATION]:
                status.pop(key, None)
            status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != "ArtifactVerified"]
        if not staged:
            status.pop("stage", None)
            status.pop("stageHistory", None)
        return {**mv, "status": status}

    def trusted_promotion(self, promotion: Obj) -> dict[str, Any]:
        view = copy.deepcopy(dict(promotion))
        if not self.proven(RECORD, promotion):
            view["status"] = {k: v for k, v in (view.get("status") or {}).items() if k not in RECORD_DERIVED}
        return view


def forged_keys(part: str, stored: Obj, written: Obj) -> dict[str, None]:
    """Merge-patch deletions for sealed keys a forger added that the restored status lacks."""
    keys = RECORD_DERIVED if part == RECORD else SEALED_KEYS[part]
    return {k: None for k in keys if k in stored and k not in written}
