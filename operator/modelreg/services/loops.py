"""Drive every ModelVersion's and ModelPromotion's reconcile from watch events and due-time queues.

No per-object timer: an object is worked on when a watch event says it changed, when its next
storage check (or its promotion's next step) falls due, or when a promotion found its artifact
changed. Idle cost is a few sleeping tasks, whatever the size of the registry. Objects come from
the operator's view (watch events plus its own writes), so nothing is read back from the API.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from modelreg import metrics
from modelreg.domain import model_versions as domain
from modelreg.domain.promotions import TERMINAL, reason_of, registration_order
from modelreg.domain.serving import MODEL_LABEL, STAGE_LABEL, TargetKind
from modelreg.domain.transitions import Transition
from modelreg.domain.trust import STAGE, StatusSeals
from modelreg.services.failures import Failure, FailureReports
from modelreg.services.model_versions import ModelVersionReconciler
from modelreg.services.promotions import PromotionReconciler
from modelreg.services.reporting import Outcome, Reporter
from modelreg.services.scheduler import DueQueue, drain
from modelreg.services.view import PROMOTIONS, VERSIONS, View
from modelreg.storage.kube import KubeStore

Key = tuple[str, str]  # namespace, name
logger = logging.getLogger(__name__)


class Loops:
    def __init__(
        self,
        kube: KubeStore,
        view: View,
        versions: ModelVersionReconciler,
        promotions: PromotionReconciler,
        status_seals: StatusSeals,
        reporter: Reporter,
        workers: int,
        promotion_tick: float,
    ) -> None:
        self.kube, self.view, self.reporter = kube, view, reporter
        self.versions, self.promotions, self.status_seals = versions, promotions, status_seals
        self.workers, self.promotion_tick = workers, promotion_tick
        self.version_queue, self.promotion_queue = DueQueue(), DueQueue()
        self.version_failures = FailureReports("ModelVersion", self._tell(VERSIONS))
        self.promotion_failures = FailureReports("ModelPromotion", self._tell(PROMOTIONS))
        versions.wake = lambda namespace, name: self.version_queue.schedule((namespace, name))
        metrics.RECHECK_QUEUE_DEPTH.set_function(self.version_queue.depth)
        metrics.RECHECK_LAG.set_function(self.version_queue.lag)

    async def prime(self, namespaces: Collection[str]) -> None:
        """Fill the view from one listing of each kind (every watched namespace) and queue it all."""
        await self.resync(namespaces)

    async def resync(self, namespaces: Collection[str]) -> None:
        """Bring the view level with a fresh listing of each kind, taken as a batch of watch events:
        at start, everything; later, what the watches missed. kopf re-lists after a watch lost its
        place (410 Gone) but reports no deletions, and acting on a deleted holder or candidate
        would be wrong until its next write failed."""
        for plural, observe in ((VERSIONS, self.observe_version), (PROMOTIONS, self.observe_promotion)):
            for listing in await self.kube.list_everywhere(plural, namespaces):
                for body in listing.items:
                    observe(None, body)
                listed = {(b["metadata"]["namespace"], b["metadata"]["name"]) for b in listing.items}
                for body in self.view.unlisted(plural, listing.namespace, listing.resource_version, listed):
                    # gone as of the listing: a late event from before it cannot bring it back
                    meta = {**body["metadata"], "resourceVersion": listing.resource_version}
                    observe("DELETED", {**body, "metadata": meta})
        # The view is most of the heap, and Python's full collections walk all of it, stalling
        # every reconcile and webhook (150 ms at 2,000 versions, several a minute). What survives a
        # listing is moved out of their way. Unfrozen and collected first: garbage cycles among what
        # the last freeze kept (tasks, tracebacks) are reclaimed once a period, never kept for good.
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    async def resync_every(self, namespaces: Collection[str], seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.resync(namespaces)
            except Exception as exc:  # the API down: the watches' own retries cover it; try next period
                logger.warning("resync failed; next in %ss: %s", seconds, exc)

    @staticmethod
    async def freeze_every(seconds: float) -> None:
        """Between resyncs, what has lived `seconds` is frozen too (a list merge: cheap), so a burst
        of new versions does not bring back full collections that walk them all (a 200 ms stall at
        2,000 after start-up verification); the next resync reclaims any cycle frozen meanwhile."""
        while True:
            await asyncio.sleep(seconds)
            gc.freeze()

    # -- watch events ---------------------------------------------------------------------------
    def observe_version(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        key, model = (meta["namespace"], meta["name"]), body["spec"].get("modelName")
        known = self.view.has(VERSIONS, *key)
        if not self.view.observe(VERSIONS, event_type, body):
            return  # the echo of the operator's own write
        if event_type == "DELETED":
            self.version_queue.discard(key)
            self.version_failures.forget(key)
        else:
            self.version_queue.schedule(key)
        if event_type == "DELETED" or not known:
            self._wake_relatives(key[0], model, body["spec"].get("version"))
        self._wake_promotions(key[0], model)  # a version verified or gone: its promotions are judged again

    def _wake_relatives(self, namespace: str, model: str, number: Any) -> None:
        """A version came or went: its duplicates and children are judged again."""
        for field in ("version", "parent"):
            for relative in self.view.indexed(namespace, model, field, [number]):
                self.version_queue.schedule((namespace, relative["metadata"]["name"]))

    def observe_promotion(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        if not self.view.observe(PROMOTIONS, event_type, body):
            return
        if event_type == "DELETED":
            self.promotion_queue.discard((meta["namespace"], meta["name"]))
            self.promotion_failures.forget((meta["namespace"], meta["name"]))
        self._wake_promotions(meta["namespace"], body["spec"]["modelName"])  # the model's queue may move

    def _wake_promotions(self, namespace: str, model: str) -> None:
        for promotion in self.view.trusted(PROMOTIONS, namespace, model, fresh=False):
            if reason_of(promotion) not in TERMINAL:
                self.promotion_queue.schedule((namespace, promotion["metadata"]["name"]))

    def _finished(self, promotion: Mapping[str, Any]) -> bool:
        # Through the trust view (seals checked once per resourceVersion): an unproven record has
        # no conditions there, so it counts as open.
        return reason_of(self.view.trusted_body(PROMOTIONS, promotion)) in TERMINAL

    # -- workers --------------------------------------------------------------------------------
    async def run(self) -> None:
        backoff = self.versions.policy.delay
        await asyncio.gather(
            drain(self.version_queue, self._version, self.workers, backoff, self.version_failures),
            drain(self.promotion_queue, self._promotion, max(2, self.workers // 4), backoff, self.promotion_failures),
        )

    def _tell(self, plural: str) -> Callable[[Key, Failure], None]:
        """A failure that escaped a reconcile, as a Warning Event on the object (if it still exists)."""

        def tell(key: Key, failure: Failure) -> None:
            body = self.view.get(plural, *key)
            if body is not None:
                outcome = Outcome()
                outcome.add(body, Transition("Warning", failure.reason, failure.message, None, None))
                self.reporter.report(outcome)

        return tell

    async def _version(self, key: Key) -> float | None:
        body = self.view.get(VERSIONS, *key)
        if body is None:
            return None
        namespace, name = key
        meta, spec = body["metadata"], body["spec"]
        model = spec.get("modelName")
        parent = (spec.get("lineage") or {}).get("parentVersion")
        # who owns a (model, version): the first registration the webhook admitted (sealed time)
        registered = registration_order(self.promotions.seals)
        changes, transitions = await self.versions.reconcile(
            body=body,
            namespace=namespace,
            name=name,
            spec=spec,
            status=body.get("status") or {},
            generation=meta.get("generation"),
            created=registered(body)[0],
            now=datetime.now(UTC),
            siblings=[  # the versions its duplicate and missing-parent conditions depend on
                domain.Sibling(v["metadata"]["name"], v["spec"].get("version"), registered(v)[0])
                for v in self.view.indexed(namespace, model, "version", [spec.get("version"), parent])
            ],
        )
        unwritten: Exception | None = None
        if changes:
            try:
                body = await self.view.write(
                    VERSIONS, namespace, name, self.kube.patch_status(VERSIONS, namespace, name, changes)
                )
            except Exception as exc:  # the labels CI/CD selects by are corrected all the same, then it is retried
                unwritten = exc
        outcome = Outcome()
        for transition in transitions:
            outcome.add(body, transition)
        self.reporter.report(outcome)
        labels: dict[str, str | None] = {}
        if (body["metadata"].get("labels") or {}).get(MODEL_LABEL) != model:
            labels[MODEL_LABEL] = model
        if unwritten is None and not self.status_seals.proven(STAGE, body):
            self.reporter.report(await self.promotions.restore_stage(namespace, name, model))
            body = self.view.get(VERSIONS, namespace, name) or body
        # the sealed stage, never one written by hand: a label CI/CD trusts says only what was proven
        stage = (self.status_seals.trusted_version(body).get("status") or {}).get("stage") or None
        if (body["metadata"].get("labels") or {}).get(STAGE_LABEL) != stage:
            labels[STAGE_LABEL] = stage  # CI/CD selects by it: keep it true
        if labels:
            body = await self.view.write(
                VERSIONS, namespace, name, self.kube.patch_labels(VERSIONS, namespace, name, labels)
            )
        if unwritten is not None:
            raise unwritten
        if changes:
            self._wake_promotions(namespace, model)
        policy = self.versions.policy
        return domain.seconds_until_check(body.get("status") or {}, meta.get("generation"), datetime.now(UTC), policy)

    async def _promotion(self, key: Key) -> float | None:
        promotion = self.view.get(PROMOTIONS, *key)
        if promotion is None or self._finished(promotion):
            return None  # history: no I/O
        self.reporter.report(await self.promotions.reconcile(*key, promotion["spec"]["modelName"]))
        promotion = self.view.get(PROMOTIONS, *key)
        # Pending and rolling-out promotions look again each tick (serving targets becoming available).
        return None if promotion is None or self._finished(promotion) else self.promotion_tick

    async def converge_target(
        self, kind: TargetKind, namespace: str, name: str, model: str, seen: Mapping[str, Any]
    ) -> None:
        self.reporter.report(await self.promotions.converge_target(kind, namespace, name, model, seen))
