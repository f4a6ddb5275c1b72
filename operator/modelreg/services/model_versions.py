"""Reconcile one ModelVersion: decide whether storage must be consulted, consult it, derive status."""

from __future__ import annotations

import asyncio
import collections
import functools
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from modelreg import metrics
from modelreg.domain import model_versions as domain
from modelreg.domain.artifacts import (
    InvalidURIError,
    Location,
    Reason,
    Snapshot,
    Verdict,
    forbidden,
    judge_bounds,
    judge_digest,
    judge_size,
    parse_uri,
    vouches_for,
    within,
)
from modelreg.domain.merge import merge_patch
from modelreg.domain.transitions import Transition
from modelreg.domain.trust import VERIFICATION, StatusSeals, forged_keys
from modelreg.models.resources import ArtifactSpec, ModelVersionSpec
from modelreg.storage.s3 import ObjectStore, StorageFailure

TAMPERED = Transition(
    type="Warning",
    reason="StatusTampered",
    message="the artifact's verification in status was not written by the operator: discarded and checked again",
    previous=None,
    current="StatusTampered",
)


T = TypeVar("T")
# namespace -> the ObjectStore with that namespace's credentials (the operator's by default)
StoreFor = Callable[[str], Awaitable[ObjectStore]]


class ModelVersionReconciler:
    def __init__(
        self,
        store_for: StoreFor,
        policy: domain.RetryPolicy,
        max_concurrent: int,
        seals: StatusSeals,
        *,
        allowed_prefixes: Mapping[str, list[str]] | None = None,
        max_artifact_bytes: int = 2 * 1024**4,
        timeout_seconds: float = 3600.0,
        workers: int = 8,
    ) -> None:
        self.store_for = store_for
        self.policy = policy
        self.seals = seals
        self.allowed_prefixes = dict(allowed_prefixes or {})
        self.max_artifact_bytes = max_artifact_bytes
        self.timeout_seconds = timeout_seconds
        # Bounds the streamed downloads (memory and bandwidth) per namespace, so one team's
        # huge or slow artifacts cannot take every slot; HEADs and listings are not gated.
        self._downloads: dict[str, asyncio.Semaphore] = collections.defaultdict(
            lambda: asyncio.Semaphore(max_concurrent)
        )
        # Storage calls block a thread each: they get threads of their own, per store (each
        # namespace with its own credentials has one), so a slow or dead store never queues the
        # Kubernetes calls (promotions, rollbacks) or another team's storage behind it; re-checks
        # made for a promotion get threads apart from verification's, so no backlog delays one.
        self.workers = workers
        self._due_now: set[tuple[str, str]] = set()
        # Called with (namespace, name) when a version must be checked at once (set by its driver).
        self.wake: Callable[[str, str], None] = lambda namespace, name: None

    async def _run(self, store: ObjectStore, purpose: str, fn: Callable[..., T], *args: Any) -> T:
        pool = store.pool(purpose, self.workers if purpose == "verify" else 2)
        return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(fn, *args))

    async def _digest(
        self, store: ObjectStore, purpose: str, location: Location, snapshot: Snapshot
    ) -> tuple[str, str, int]:
        # Cancelling a task does not stop its thread: told so, the thread stops at its next chunk
        # instead of reading on to the end for an answer no one will read.
        cancelled = threading.Event()
        try:
            return await self._run(store, purpose, store.digest, location, snapshot, self.timeout_seconds, cancelled)
        finally:
            cancelled.set()

    def prefixes_for(self, namespace: str) -> list[str] | None:
        """The prefixes `namespace` may use, or None in single-team mode (no list configured)."""
        if not self.allowed_prefixes:
            return None
        return self.allowed_prefixes.get(namespace, self.allowed_prefixes.get("*", []))

    async def reconcile(
        self,
        *,
        body: Mapping[str, Any],
        namespace: str,
        name: str,
        spec: Mapping[str, Any],
        status: Mapping[str, Any],
        generation: int | None,
        created: str,
        siblings: Iterable[domain.Sibling],
        now: datetime,
    ) -> tuple[dict[str, Any], list[Transition]]:
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
        checked = domain.check_due(status, generation, now, self.policy) or self._due_now_for(namespace, name)
        started = time.monotonic()
        verdict, snapshot = await self.check(namespace, mv.artifact, status, generation) if checked else (None, None)
        if verdict is not None:
            metrics.VERIFICATION_SECONDS.observe(time.monotonic() - started)
            metrics.VERIFICATIONS.labels(outcome=verdict.reason.value, method=verdict.method or "none").inc()
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

    def _due_now_for(self, namespace: str, name: str) -> bool:
        if (namespace, name) in self._due_now:
            self._due_now.discard((namespace, name))
            return True
        return False

    async def check(
        self, namespace: str, artifact: ArtifactSpec, status: Mapping[str, Any], generation: int | None
    ) -> tuple[Verdict | None, Snapshot | None]:
        """(None, snapshot) when storage shows the very object last judged: nothing is re-read."""
        try:
            location = parse_uri(artifact.uri)
        except InvalidURIError as exc:
            return Verdict(Reason.INVALID_URI, str(exc)), None
        prefixes = self.prefixes_for(namespace)
        if prefixes is not None and not within(location, prefixes):
            return forbidden(location, namespace, prefixes), None  # zero storage requests
        try:
            store = await self.store_for(namespace)
            snapshot = await self._run(store, "verify", store.snapshot, location)
            if domain.unchanged_since_last_check(status, generation, snapshot):
                return None, snapshot
            if verdict := judge_size(artifact.size_bytes, snapshot, location) or judge_bounds(
                snapshot, self.max_artifact_bytes, location
            ):
                return verdict, snapshot
            async with self._downloads[namespace]:
                found, method, read = await self._digest(store, "verify", location, snapshot)
                metrics.VERIFICATION_BYTES.inc(read)
        except StorageFailure as failure:
            return Verdict(failure.reason, failure.message), None
        return judge_digest(artifact.sha256, found, method, snapshot, location, status.get("artifact")), snapshot

    async def still_proven(self, namespace: str, model_version: Mapping[str, Any]) -> Verdict | None:
        """Right before a version moves or serves: does storage still hold what was proven?

        None if so. Storage vouches by SHA-256 (a full-object checksum, or the very object version
        proven): one HEAD, no byte read. Else the bytes are hashed again (within
        maxArtifactBytes), and the same bytes pass (the version's own status catches up on its
        next tick). An equal ETag, size and LastModified prove nothing: MD5 collides, and an
        overwrite within the same second keeps all three. Else the reason: `ArtifactChanged` when
        the proven object is gone or different, a transient reason when storage cannot answer.
        """
        name = model_version["metadata"]["name"]
        spec = model_version["spec"]["artifact"]
        proven = (model_version.get("status") or {}).get("artifact") or {}
        try:
            location = parse_uri(spec["uri"])
        except InvalidURIError as exc:
            return Verdict(Reason.ARTIFACT_CHANGED, str(exc))
        prefixes = self.prefixes_for(namespace)
        if prefixes is not None and not within(location, prefixes):
            return Verdict(Reason.ARTIFACT_CHANGED, forbidden(location, namespace, prefixes).message)
        try:
            store = await self.store_for(namespace)
            snapshot = await self._run(store, "recheck", store.snapshot, location)
            vouched = vouches_for(snapshot, {**proven, "sha256": spec["sha256"]})
            if vouched is True:
                return None
            self._due_now.add((namespace, name))
            self.wake(namespace, name)
            if vouched is None and not judge_bounds(snapshot, self.max_artifact_bytes, location):
                found, _, _ = await self._digest(store, "recheck", location, snapshot)
                if found == spec["sha256"]:
                    return None  # rewritten with the same bytes
        except StorageFailure as failure:
            if failure.reason in (Reason.NOT_FOUND, Reason.TOO_LARGE):
                return Verdict(
                    Reason.ARTIFACT_CHANGED, f"ModelVersion {name}: the proven {location} is gone: {failure.message}"
                )
            return Verdict(failure.reason, f"ModelVersion {name} could not be re-checked: {failure.message}")
        expected = {k: proven.get(k) for k in ("etag", "versionId", "sizeBytes", "lastModified")}
        changed = ", ".join(f"{k} {expected[k]} -> {v}" for k, v in snapshot.identity().items() if expected[k] != v)
        return Verdict(
            Reason.ARTIFACT_CHANGED,
            f"ModelVersion {name}: {location} changed after it was verified, it no longer holds the bytes "
            f"proven (sha256 {spec['sha256']})"
            + (f": {changed}" if changed else ": same ETag, size and time, other bytes"),
        )
