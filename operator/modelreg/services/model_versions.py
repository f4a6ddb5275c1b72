"""Reconcile one ModelVersion: decide whether storage must be consulted, consult it, derive status."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from modelreg.domain import model_versions as domain
from modelreg.domain.artifacts import (
    InvalidURIError,
    Reason,
    Snapshot,
    Verdict,
    judge_digest,
    judge_size,
    parse_uri,
)
from modelreg.domain.merge import merge_patch
from modelreg.domain.trust import VERIFICATION, StatusSeals, forged_keys
from modelreg.models.resources import ArtifactSpec, ModelVersionSpec
from modelreg.storage.s3 import ObjectStore, StorageFailure

TAMPERED = domain.Transition(
    type="Warning",
    reason="StatusTampered",
    message="the artifact's verification in status was not written by the operator: discarded and checked again",
    previous=None,
    current="StatusTampered",
)


class ModelVersionReconciler:
    def __init__(self, store: ObjectStore, policy: domain.RetryPolicy, max_concurrent: int, seals: StatusSeals) -> None:
        self.store = store
        self.policy = policy
        self.seals = seals
        # Bounds the streamed downloads (memory and bandwidth); HEADs and listings are not gated.
        self._downloads = asyncio.Semaphore(max_concurrent)

    async def reconcile(
        self,
        *,
        body: Mapping[str, Any],
        name: str,
        spec: Mapping[str, Any],
        status: Mapping[str, Any],
        generation: int | None,
        created: str,
        siblings: Iterable[domain.Sibling],
        now: datetime,
    ) -> tuple[dict[str, Any], list[domain.Transition]]:
        """Status keys that changed (with the verification seal), and the transitions worth an Event.

        A verification the operator cannot prove it wrote is discarded and checked afresh."""
        tampered = not self.seals.proven(VERIFICATION, body)
        stored = dict(status)  # kopf hands a read-only view
        if tampered:
            status = self.seals.trusted_version(body)["status"]
        mv = ModelVersionSpec.model_validate(spec)
        others = [s for s in siblings if s.name != name]
        lineage = domain.Lineage(
            model=mv.model_name,
            version=mv.version,
            duplicate_of=domain.duplicate_owner(name, created, mv.version, others),
            parent_version=mv.lineage.parent_version if mv.lineage else None,
            parent_missing=domain.missing_parent(mv.lineage.parent_version if mv.lineage else None, others),
        )
        checked = domain.check_due(status, generation, now, self.policy)
        verdict, snapshot = await self.check(mv.artifact, status, generation) if checked else (None, None)
        desired, transitions = domain.status_after_check(
            status,
            generation=generation,
            checked=checked,
            verdict=verdict,
            snapshot=snapshot,
            lineage=lineage,
            now=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        changes = domain.changed_keys(stored, desired)
        if tampered:
            changes.update(forged_keys(VERIFICATION, stored, desired))
            transitions.append(TAMPERED)
        seal = self.seals.seal(VERIFICATION, body, merge_patch(stored, changes))
        if (stored.get("seals") or {}).get(VERIFICATION) != seal:
            changes["seals"] = {VERIFICATION: seal}
        return changes, transitions

    async def check(
        self, artifact: ArtifactSpec, status: Mapping[str, Any], generation: int | None
    ) -> tuple[Verdict | None, Snapshot | None]:
        """(None, snapshot) when storage shows the very object last judged: nothing is re-read."""
        try:
            location = parse_uri(artifact.uri)
        except InvalidURIError as exc:
            return Verdict(Reason.INVALID_URI, str(exc)), None
        try:
            snapshot = await asyncio.to_thread(self.store.snapshot, location)
            if domain.unchanged_since_last_check(status, generation, snapshot):
                return None, snapshot
            if size_verdict := judge_size(artifact.size_bytes, snapshot, location):
                return size_verdict, snapshot
            async with self._downloads:
                found, method, _ = await asyncio.to_thread(self.store.digest, location, snapshot)
        except StorageFailure as failure:
            return Verdict(failure.reason, failure.message), None
        return judge_digest(artifact.sha256, found, method, snapshot, location, status.get("artifact")), snapshot
