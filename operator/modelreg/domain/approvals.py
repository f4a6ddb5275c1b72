"""Approvals: annotations `approval.modelreg.io/<label-safe user>: <exact username>`."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

APPROVAL_PREFIX = "approval.modelreg.io/"
REQUESTED_BY = "modelreg.io/requested-by"

# (annotation key, user, all annotations) -> how the approval is proven ("webhook", "gitops",
# "unsealed"), or None when it is not: the seam where the admission webhook's seal is checked.
ProofCheck = Callable[[str, str, Mapping[str, str]], str | None]


@dataclass(frozen=True)
class Tally:
    counted: list[dict]  # status.approvals entries: user, time, via
    ignored: list[str]  # why each uncounted approval does not count
    required: int

    @property
    def approved(self) -> bool:
        return len(self.counted) >= self.required

    @property
    def summary(self) -> str:
        return f"{len(self.counted)}/{self.required}"


def tally(
    annotations: Mapping[str, str],
    requester: str | None,
    required: int,
    prove: ProofCheck,
    previous: Sequence[Mapping] = (),
    now: str = "",
) -> Tally:
    """Distinct proven approvers other than the requester; first-seen times are kept."""
    first_seen = {entry.get("user"): entry.get("time") for entry in previous}
    counted: dict[str, dict] = {}
    ignored: list[str] = []
    for key in sorted(k for k in annotations if k.startswith(APPROVAL_PREFIX)):
        user = annotations[key].strip()
        if not user:
            ignored.append(f"{key} is empty")
        elif user == requester:
            ignored.append(f"{user} requested this promotion and cannot approve it")
        elif user in counted:
            continue  # the same person twice is one approval
        elif (via := prove(key, user, annotations)) is None:
            ignored.append(f"approval by {user} carries no proof that it passed the admission webhook")
        else:
            counted[user] = {"user": user, "time": first_seen.get(user) or now, "via": via}
    return Tally(list(counted.values()), ignored, required)


def trust_policy(trust_unsealed: bool) -> ProofCheck:
    """Until the webhook seals approvals, only an explicit sandbox setting makes them count."""

    def prove(key: str, user: str, annotations: Mapping[str, str]) -> str | None:
        return "unsealed" if trust_unsealed else None

    return prove


def approval_key(user: str) -> str:
    """The annotation key for `user`: a label-safe name part (<= 63 chars), unique per user."""
    safe = re.sub(r"[^A-Za-z0-9._-]", ".", user).strip("._-") or "user"
    if len(safe) > 63 or safe != user:
        digest = hashlib.sha256(user.encode()).hexdigest()[:8]
        safe = f"{safe[:54].rstrip('._-')}.{digest}"
    return APPROVAL_PREFIX + safe
