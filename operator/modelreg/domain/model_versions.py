"""ModelVersion decisions: when to check storage, and the status that follows a check."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelreg.domain import conditions, notifications
from modelreg.domain.artifacts import TRANSIENT, Reason, Snapshot, Verdict, vouches_for
from modelreg.domain.transitions import Transition

ARTIFACT_VERIFIED = "ArtifactVerified"
READY = "Ready"
DUPLICATE_VERSION = "DuplicateVersion"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for transient failures; a slow, cheap re-check once settled."""

    base_seconds: float = 2.0
    max_seconds: float = 300.0
    recheck_seconds: float = 600.0

    def delay(self, consecutive_failures: int) -> float:
        exponent = max(consecutive_failures - 1, 0)
        return min(self.max_seconds, self.base_seconds * 2 ** min(exponent, 30))


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds_until_check(status: Mapping[str, Any], generation: int | None, now: datetime, policy: RetryPolicy) -> float:
    """When storage must next be consulted: 0 for a new generation, after the backoff for
    transient failures, after `recheck_seconds` once settled. Everything it needs is in status,
    so a restart resumes the schedule exactly."""
    last = status.get("lastCheck")
    if not last or status.get("observedGeneration") != generation:
        return 0.0
    elapsed = (now - _parse_time(last["time"])).total_seconds()
    if elapsed < 0:
        return 0.0  # a lastCheck in the future was not written by this clock: postpone nothing
    reason = verification_reason(status)
    if reason in TRANSIENT and reason != Reason.TIMEOUT:  # a timeout retried at once would be unbounded work
        return max(0.0, policy.delay(last.get("consecutiveFailures", 1)) - elapsed)
    return max(0.0, policy.recheck_seconds - elapsed)


def check_due(status: Mapping[str, Any], generation: int | None, now: datetime, policy: RetryPolicy) -> bool:
    return seconds_until_check(status, generation, now, policy) <= 0


def verification_reason(status: Mapping[str, Any]) -> str | None:
    found = conditions.find(status.get("conditions"), ARTIFACT_VERIFIED)
    return found.get("reason") if found else None


def unchanged_since_last_check(status: Mapping[str, Any], generation: int | None, snapshot: Snapshot) -> bool:
    """A settled verdict stands, no body byte re-read, while storage shows the same object. For a
    verified one "the same" means storage vouches for the proven SHA-256 (or object version): an
    equal ETag, size and second can hide an MD5-colliding overwrite. A failed verdict may rest on
    the object's metadata: a collision can only turn it into another failure or a true proof."""
    reason = verification_reason(status)
    if reason in (*TRANSIENT, None) or status.get("observedGeneration") != generation:
        return False
    if reason == Reason.VERIFIED:
        return vouches_for(snapshot, status.get("artifact") or {}) is True
    last = status.get("lastCheck") or {}
    return all(last.get(k) == v for k, v in snapshot.identity().items())


@dataclass(frozen=True)
class Sibling:
    """Another ModelVersion of the same model in the same namespace (from the operator's index)."""

    name: str
    version: int
    created: str


def duplicate_owner(name: str, created: str, version: int, siblings: Iterable[Sibling]) -> str | None:
    """The oldest registration of (model, version) keeps it; later ones are duplicates."""
    same = [s for s in siblings if s.version == version]
    oldest = min([*same, Sibling(name, version, created)], key=lambda s: (s.created, s.name))
    return None if oldest.name == name else oldest.name


def missing_parent(parent_version: int | None, siblings: Iterable[Sibling]) -> bool:
    return parent_version is not None and all(s.version != parent_version for s in siblings)


@dataclass(frozen=True)
class Lineage:
    model: str
    version: int
    duplicate_of: str | None
    parent_version: int | None
    parent_missing: bool


def status_after_check(
    status: Mapping[str, Any],
    *,
    generation: int | None,
    checked: bool,
    verdict: Verdict | None,
    snapshot: Snapshot | None,
    lineage: Lineage,
    now: str,
) -> tuple[dict[str, Any], list[Transition]]:
    """The status after a tick: `checked` if storage was consulted, `verdict` None if it was
    unchanged (nothing re-read); Ready is re-derived every time, as siblings come and go."""
    old = list(status.get("conditions") or [])
    new_status: dict[str, Any] = {"observedGeneration": generation}
    current = old
    if verdict is not None:
        current = conditions.set_condition(
            old,
            ARTIFACT_VERIFIED,
            verdict.verified,
            verdict.reason,
            verdict.message,
            now=now,
            generation=generation,
        )
        if verdict.verified and snapshot is not None:
            new_status["artifact"] = {
                "sha256": verdict.found_sha256,
                "sizeBytes": snapshot.size,
                "etag": snapshot.etag,
                **({"versionId": snapshot.version_id} if snapshot.version_id else {}),
                **({"lastModified": snapshot.last_modified} if snapshot.last_modified else {}),
                "method": verdict.method,
                "verifiedTime": now,
            }
    if checked:
        new_status["lastCheck"] = _last_check(status, verdict, snapshot, now)
    current = _with_ready(current, lineage, generation, now)
    new_status["conditions"] = current
    return new_status, _transitions(old, current, lineage)


def _last_check(
    status: Mapping[str, Any], verdict: Verdict | None, snapshot: Snapshot | None, now: str
) -> dict[str, Any]:
    previous = status.get("lastCheck") or {}
    failures = previous.get("consecutiveFailures", 0) + 1 if verdict and verdict.transient else 0
    record: dict[str, Any] = {"time": now, "consecutiveFailures": failures}
    if snapshot is not None:
        record.update({k: v for k, v in snapshot.identity().items() if v is not None})
    found = verdict.found_sha256 if verdict else previous.get("sha256")
    if found:
        record["sha256"] = found
    return record


def _with_ready(current: list[dict], lineage: Lineage, generation: int | None, now: str) -> list[dict]:
    verified = conditions.find(current, ARTIFACT_VERIFIED)
    note = (
        f"; note: lineage.parentVersion {lineage.parent_version} of model {lineage.model} "
        "is not registered in this namespace"
        if lineage.parent_missing
        else ""
    )
    if lineage.duplicate_of:
        ready, reason = False, DUPLICATE_VERSION
        message = (
            f"version {lineage.version} of model {lineage.model} is already registered "
            f"by ModelVersion {lineage.duplicate_of} in this namespace"
        )
    elif verified is None:
        ready, reason, message = None, Reason.VERIFYING, "artifact not verified yet"
    elif verified["status"] == "True":
        ready, reason, message = True, Reason.VERIFIED, "artifact verified"
    else:
        ready, reason, message = False, verified["reason"], verified["message"]
    return conditions.set_condition(current, READY, ready, reason, message + note, now=now, generation=generation)


def _transitions(old: list[dict], new: list[dict], lineage: Lineage) -> list[Transition]:
    found = []
    if not old:  # the first status the operator writes
        message = f"version {lineage.version} of model {lineage.model} registered"
        # No Event: one per registration is noise (and API load at scale); Verified follows at once.
        found.append(Transition("Normal", "Registered", message, None, "Registered", notifications.REGISTERED, False))
    for type_ in (ARTIFACT_VERIFIED, READY):
        before, after = conditions.find(old, type_), conditions.find(new, type_)
        if after is None or (before and (before["status"], before["reason"]) == (after["status"], after["reason"])):
            continue
        if type_ == READY and after["reason"] != DUPLICATE_VERSION:
            continue  # Ready mirrors ArtifactVerified otherwise: one Event is enough
        found.append(
            Transition(
                type="Normal" if after["status"] == "True" else "Warning",
                reason=after["reason"],
                message=after["message"],
                previous=before["reason"] if before else None,
                current=after["reason"],
                notice=None
                if type_ == READY
                else notifications.VERIFIED
                if after["status"] == "True"
                else notifications.INVALID
                if after["reason"] not in TRANSIENT
                else None,
            )
        )
    return found


def changed_keys(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """Only what differs, so that a quiet tick makes no API call."""
    return {key: value for key, value in desired.items() if current.get(key) != value}
