"""The test seal key, and approvals sealed with it for tests that bypass the webhook on purpose."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from modelreg.domain.approvals import (
    REQUESTED_BY,
    REQUESTED_BY_SEAL,
    ApprovalSeals,
    Candidate,
    approval_key,
    seal_key,
)
from modelreg.domain.promotions import stages_to_approve
from modelreg.domain.seals import Sealer
from modelreg.domain.trust import StatusSeals

TEST_SEAL_KEY = b"modelreg-test-seal-key: not a secret"


def write_seal_key(path: str | Path, key: bytes = TEST_SEAL_KEY) -> Path:
    path = Path(path)
    path.write_bytes(key)
    path.chmod(0o600)
    return path


def approval_seals(key: bytes = TEST_SEAL_KEY, **gitops: Any) -> ApprovalSeals:
    return ApprovalSeals(Sealer(key), **gitops)


def status_seals(key: bytes = TEST_SEAL_KEY) -> StatusSeals:
    return StatusSeals(Sealer(key))


def sealed_annotations(
    promotion: Mapping[str, Any],
    candidate: Mapping[str, Any] | None,
    requester: str,
    approvers: Iterable[str] = (),
    time: str | None = None,
    key: bytes = TEST_SEAL_KEY,
) -> dict[str, str]:
    """requested-by and approvals as the webhook would have stamped them on `promotion`
    (which needs its namespace, name, uid and creationTimestamp)."""
    seals = approval_seals(key)
    meta = promotion["metadata"]
    when = time or meta["creationTimestamp"]
    annotations = {
        REQUESTED_BY: requester,
        REQUESTED_BY_SEAL: seals.requester_seal(meta.get("namespace"), meta["name"], requester, when),
    }
    for user in approvers:
        annotations[approval_key(user)] = user
        if candidate is not None:
            stages = stages_to_approve(promotion["spec"]["targetStage"], candidate)
            annotations[seal_key(approval_key(user))] = seals.approval_seal(
                promotion, user, Candidate.of(candidate), stages, when
            )
    return annotations
