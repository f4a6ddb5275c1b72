"""Drive every ModelVersion's reconcile from watch events and one due-time queue.

No per-object timer: an object is worked on when a watch event says it changed, when its next
storage check falls due (computed from its status), or when a promotion found its artifact
changed. Idle cost is one sleeping task, whatever the number of versions. The bodies come from
the watch stream and from the operator's own writes (write-through), so nothing is read back.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from modelreg import metrics
from modelreg.audit import audit
from modelreg.domain import model_versions as domain
from modelreg.domain.notifications import notice, object_ref
from modelreg.domain.serving import MODEL_LABEL, STAGE_LABEL
from modelreg.domain.trust import STAGE, StatusSeals
from modelreg.services.model_versions import ModelVersionReconciler
from modelreg.services.notifications import Notifier
from modelreg.services.promotions import Outcome, PromotionReconciler
from modelreg.services.scheduler import DueQueue
from modelreg.storage.kube import KubeStore

logger = logging.getLogger(__name__)
Key = tuple[str, str]  # namespace, name


class ModelVersionLoop:
    def __init__(
        self,
        kube: KubeStore,
        reconciler: ModelVersionReconciler,
        promotions: PromotionReconciler,
        status_seals: StatusSeals,
        notifier: Notifier,
        workers: int,
    ) -> None:
        self.kube, self.reconciler, self.promotions = kube, reconciler, promotions
        self.status_seals, self.notifier = status_seals, notifier
        self.workers = workers
        self.queue = DueQueue()
        self.bodies: dict[Key, dict[str, Any]] = {}
        self.by_model: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
        self._written: dict[Key, collections.deque[str]] = collections.defaultdict(lambda: collections.deque(maxlen=8))
        self._failures: collections.Counter[Key] = collections.Counter()
        self._posting: set[asyncio.Task] = set()
        reconciler.wake = lambda namespace, name: self.queue.schedule((namespace, name))
        metrics.RECHECK_QUEUE_DEPTH.set_function(self.queue.depth)
        metrics.RECHECK_LAG.set_function(self.queue.lag)

    # -- watch events ---------------------------------------------------------------------------
    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        model = (meta["namespace"], (body.get("spec") or {}).get("modelName"))
        if event_type == "DELETED":
            self.bodies.pop(key, None)
            self.by_model[model].discard(key[1])
            self.queue.discard(key)
            self._wake_siblings(model)  # a duplicate may own its version now
            return
        if meta.get("resourceVersion") in self._written[key]:
            return  # the echo of the operator's own write: already known
        new = key not in self.bodies
        self.bodies[key] = dict(body)
        self.by_model[model].add(key[1])
        self.queue.schedule(key)
        if new:
            self._wake_siblings(model)  # duplicates and missing parents are judged among siblings

    def _wake_siblings(self, model: tuple[str, str]) -> None:
        for name in self.by_model[model]:
            self.queue.schedule((model[0], name))

    def _siblings(self, namespace: str, model: str) -> list[domain.Sibling]:
        found = []
        for name in self.by_model[(namespace, model)]:
            body = self.bodies.get((namespace, name))
            if body is not None:
                found.append(domain.Sibling(name, body["spec"].get("version"), body["metadata"]["creationTimestamp"]))
        return found

    def _remember(self, written: Mapping[str, Any]) -> dict[str, Any]:
        meta = written["metadata"]
        key = (meta["namespace"], meta["name"])
        self._written[key].append(meta.get("resourceVersion"))
        if key in self.bodies:
            self.bodies[key] = dict(written)
        return dict(written)

    # -- workers --------------------------------------------------------------------------------
    async def run(self) -> None:
        await asyncio.gather(*(self._work() for _ in range(self.workers)))

    async def _work(self) -> None:
        while True:
            key = await self.queue.take()
            next_delay = None
            try:
                next_delay = await self._process(key)
                self._failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the API is down or refused: the same object again, backing off
                self._failures[key] += 1
                next_delay = self.reconciler.policy.delay(self._failures[key])
                logger.warning("ModelVersion %s/%s: %s; again in %.0f s", *key, exc, next_delay)
            finally:
                self.queue.done(key, next_delay if key in self.bodies else None)

    async def _process(self, key: Key) -> float | None:
        body = self.bodies.get(key)
        if body is None:
            return None
        namespace, name = key
        meta, spec = body["metadata"], body["spec"]
        model = spec.get("modelName")
        changes, transitions = await self.reconciler.reconcile(
            body=body,
            namespace=namespace,
            name=name,
            spec=spec,
            status=body.get("status") or {},
            generation=meta.get("generation"),
            created=meta["creationTimestamp"],
            now=datetime.now(UTC),
            siblings=self._siblings(namespace, model),
        )
        if changes:
            body = self._remember(await self.kube.patch_status("modelversions", namespace, name, changes))
        for transition in transitions:
            await self._report_transition(body, transition)
        labels: dict[str, str | None] = {}
        if (body["metadata"].get("labels") or {}).get(MODEL_LABEL) != model:
            labels[MODEL_LABEL] = model
        if not self.status_seals.proven(STAGE, body):
            await self.report(await self.promotions.restore_stage(namespace, name, model))
            return None  # the restored stage's watch event brings the object back
        stage = (body.get("status") or {}).get("stage") or None
        if (body["metadata"].get("labels") or {}).get(STAGE_LABEL) != stage:
            labels[STAGE_LABEL] = stage  # CI/CD selects by it: keep it true
        if labels:
            body = self._remember(await self.kube.patch_labels("modelversions", namespace, name, labels))
        policy = self.reconciler.policy
        return domain.seconds_until_check(body.get("status") or {}, meta.get("generation"), datetime.now(UTC), policy)

    async def _report_transition(self, body: Mapping[str, Any], transition: domain.Transition) -> None:
        await self._event(body, transition.type, transition.reason, transition.message)
        audit(body, transition.previous, transition.current, transition.message)
        if transition.notice:
            stage = (body.get("status") or {}).get("stage")
            item = notice(transition.notice, body, reason=transition.current, message=transition.message, stage=stage)
            self.notifier.publish([item])

    async def report(self, outcome: Outcome) -> None:
        self.notifier.publish(outcome.notices)
        for body, type_, reason, message in outcome.events:
            await self._event(body, type_, reason, message)
        for body, previous, current, why in outcome.audit:
            audit(body, previous, current, why)

    async def _event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Posted in the background, as kopf posts its Events: a worker never waits for one."""
        task = asyncio.create_task(self._post(object_ref(body), type_, reason, message))
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)

    async def _post(self, ref: dict[str, str], type_: str, reason: str, message: str) -> None:
        try:
            await self.kube.post_event(ref, type_, reason, message)
        except Exception as exc:  # an Event is a courtesy: the status and the audit line carry the change
            logger.warning("Event %s on %s not posted: %s", reason, ref["name"], exc)
