"""The outbox: notices persisted in the cluster, then delivered signed, in order per object, with
retries, by one background task that never holds up a reconcile.

Each namespace's undelivered notices live in one ConfigMap in the operator's namespace, one key per
delivery, sorted by publication, each sealed with the operator's seal key. A restart reloads them
and delivers what is left, but only entries whose seal verifies: whoever may write ConfigMaps in
the operator's namespace cannot plant or alter a notice that the operator would then sign with an
endpoint's key. What fails is dropped, logged, and told as a Warning Event on the outbox ConfigMap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from modelreg import metrics
from modelreg.config import NotificationSettings
from modelreg.domain import notifications as domain
from modelreg.domain.notifications import Notice, OutboxSeals, Pending
from modelreg.domain.redaction import redact
from modelreg.storage import webhooks
from modelreg.storage.kube import KubeStore

logger = logging.getLogger(__name__)
OUTBOX_LABEL = "modelreg.io/outbox"
PREFIX = "modelreg-outbox-"
SECRET_TTL = 300.0
TAMPERED = "OutboxTampered"


class Notifier:
    def __init__(
        self,
        kube: KubeStore,
        settings: NotificationSettings,
        operator_namespace: str,
        seals: OutboxSeals,
        sender: webhooks.Sender | None = None,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.kube, self.settings, self.namespace, self.seals = kube, settings, operator_namespace, seals
        self.endpoints = {e.name: e for e in settings.endpoints}
        self.filters = [e.endpoint() for e in settings.endpoints]
        self.sender = sender or webhooks.Sender(settings.timeout_seconds)
        self.clock, self.jitter = clock, jitter
        self.pending: dict[str, dict[str, Pending]] = defaultdict(dict)  # namespace -> key -> delivery
        self.unsaved: dict[str, dict[str, str | None]] = defaultdict(dict)  # namespace -> key -> record, None: remove
        self.saved: dict[str, set[str]] = defaultdict(set)  # namespace -> keys in its ConfigMap
        self._wake = asyncio.Event()
        self._last_ns = 0
        self._turn = 0  # round-robin start among namespaces
        self._secrets: dict[str, tuple[float, str]] = {}
        self._tasks: set[asyncio.Task] = set()
        for name in self.endpoints:  # counted when scraped, not on every publish and delivery
            metrics.OUTBOX_DEPTH.labels(name).set_function(lambda name=name: self._depth(name))

    # -- publishing (called from reconciles: no I/O, never waits) -------------------------------
    def publish(self, notices: Iterable[Notice]) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for item in notices:
            wanted = [e.name for e in self.filters if e.wants(item)]
            if not wanted:
                continue
            id_ = f"msg_{uuid.uuid4().hex}"  # the same on every retry and for every endpoint
            body = domain.payload(item, id_, now)
            namespace = item.ref["namespace"]
            for endpoint in wanted:
                entry = Pending(self._next_key(endpoint), endpoint, id_, item.type, item.ref, body)
                self._put(namespace, self.seals.sealed(namespace, entry))
        self._wake.set()

    def _next_key(self, endpoint: str) -> str:
        # Wall-clock time (sorts across restarts), never below the last key made or loaded: a clock
        # stepped back must not put a later notice ahead of an earlier one about the same object.
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        return f"{self._last_ns:020d}.{endpoint}"

    def _put(self, namespace: str, entry: Pending) -> None:
        self.pending[namespace][entry.key] = entry
        self.unsaved[namespace][entry.key] = entry.record
        for dropped in domain.overflow(list(self.pending[namespace].values()), self.settings.max_pending):
            self._remove(namespace, dropped)
            metrics.NOTIFICATION_DELIVERIES.labels(dropped.endpoint, "dropped").inc()
            self._report(
                dropped,
                "NotificationDropped",
                f"{dropped.type} {dropped.id} to endpoint {dropped.endpoint} dropped undelivered: "
                f"the outbox of namespace {namespace} holds at most {self.settings.max_pending}",
            )

    def _remove(self, namespace: str, entry: Pending) -> None:
        self.pending[namespace].pop(entry.key, None)
        if entry.key in self.saved[namespace]:
            self.unsaved[namespace][entry.key] = None
        else:
            self.unsaved[namespace].pop(entry.key, None)  # never written (or being written: see _save)

    # -- the background task --------------------------------------------------------------------
    async def load(self) -> None:
        """What a previous run left undelivered (for endpoints no longer configured: dropped, logged).
        Only entries sealed by the operator count: anything else is dropped unsent (see `_reject`).
        No endpoints: nothing is read (nor needs the right to)."""
        if not self.endpoints:
            return
        for name, data in (await self.kube.config_maps(self.namespace, f"{OUTBOX_LABEL}=true")).items():
            if not name.startswith(PREFIX) or name == PREFIX:  # labelled, but never one the operator made
                if data:
                    self._reject(name, dict.fromkeys(data, "in a ConfigMap the operator never writes"))
                continue
            namespace = name.removeprefix(PREFIX)
            rejected: dict[str, str] = {}
            for key, text in data.items():
                self.saved[namespace].add(key)
                try:
                    entry = Pending.from_record(key, text)
                except (ValueError, KeyError, TypeError):
                    entry = None
                if entry is None or not self.seals.proven(namespace, entry):
                    rejected[key] = "unreadable" if entry is None else "altered" if entry.seal else "unsealed"
                    self.unsaved[namespace][key] = None
                    continue
                self._last_ns = max(self._last_ns, int(key.split(".")[0]) if key.split(".")[0].isdigit() else 0)
                wanted = {e.name for e in self.filters if e.wants(Notice(entry.type, entry.ref, {}))}
                if entry.endpoint not in wanted:  # no longer configured, or no longer for this namespace/type
                    logger.warning(
                        "outbox %s: %s for endpoint %s (no longer configured for it) dropped",
                        name,
                        entry.id,
                        entry.endpoint,
                    )
                    self.unsaved[namespace][key] = None
                    continue
                self.pending[namespace][key] = entry
            if rejected:
                self._reject(name, rejected)

    def _reject(self, config_map: str, rejected: Mapping[str, str]) -> None:
        """Entries the operator cannot prove it wrote: never signed nor sent. One log line each, one
        Warning Event on the outbox ConfigMap itself: the entry's own object reference is as untrusted
        as the rest of it (taken at its word, a planter would choose where the operator's Events land),
        and the operator's namespace is where whoever may write there looks. Keys only: no body,
        no seal, nothing the planter wrote beyond the (clipped) key."""
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "namespace": self.namespace, "name": config_map}
        for key, why in rejected.items():
            logger.warning(
                "outbox %s/%s: entry %s %s, dropped: not sealed by this operator, never signed nor delivered",
                self.namespace,
                config_map,
                key[:80],
                why,
                extra={"k8s_ref": ref},
            )
        keys = sorted(rejected)
        named = ", ".join(k[:80] for k in keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        message = (
            f"{len(keys)} outbox entr{'y' if len(keys) == 1 else 'ies'} dropped, never signed nor delivered: "
            f"unsealed or altered since the operator wrote {'it' if len(keys) == 1 else 'them'} ({named})"
        )
        self._spawn(self._post_event(ref, TAMPERED, message))

    async def run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                await self._save()
                failures = 0
            except Exception as exc:  # the API is down: everything stays in memory; tried again
                failures += 1
                logger.warning("outbox not saved (attempt %d): %s", failures, redact(str(exc)))
            next_due = self._dispatch()
            timeout = max(0.01, next_due - self.clock())
            if failures:
                timeout = min(timeout, domain.retry_delay(failures, 0.5, 30.0, self.jitter()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _save(self) -> None:
        """Every namespace's changes; one that fails (raised after all were tried) keeps no other waiting."""
        failed: Exception | None = None
        for namespace, changes in list(self.unsaved.items()):
            if not changes:
                continue
            batch = dict(changes)
            labels = {OUTBOX_LABEL: "true", "app.kubernetes.io/managed-by": "modelreg"}
            try:
                await self.kube.merge_config_map(self.namespace, PREFIX + namespace, labels, batch)
            except Exception as exc:
                failed = exc
                continue
            for key, value in batch.items():
                if changes.get(key) == value:
                    del changes[key]
                if value is None:
                    self.saved[namespace].discard(key)
                    continue
                self.saved[namespace].add(key)
                if key not in self.pending[namespace]:
                    changes.setdefault(key, None)  # delivered while it was being written
        if failed is not None:
            raise failed

    def _dispatch(self) -> float:
        """Start every delivery that may go now; the time the next one falls due."""
        now, next_due = self.clock(), self.clock() + 60.0
        busy: dict[str, int] = defaultdict(int)
        for queue in self.pending.values():
            for entry in queue.values():
                busy[entry.endpoint] += entry.in_flight
        namespaces = list(self.pending)
        self._turn += 1  # a namespace with many objects cannot keep an endpoint's slots to itself
        start = self._turn % len(namespaces) if namespaces else 0
        for namespace in namespaces[start:] + namespaces[:start]:
            for entry in domain.heads(self.pending[namespace].values()):
                if entry.in_flight:
                    continue
                if entry.due > now:
                    next_due = min(next_due, entry.due)
                elif busy[entry.endpoint] < self.settings.concurrency:
                    busy[entry.endpoint] += 1
                    entry.in_flight = True
                    self._spawn(self._deliver(namespace, entry))
        return next_due

    async def _deliver(self, namespace: str, entry: Pending) -> None:
        endpoint = self.endpoints[entry.endpoint]
        secret, status = None, None
        try:
            secret = await self._signing_key(entry.endpoint)
            if secret is not None:
                headers = webhooks.signed_headers(secret, entry.id, entry.body)
                status = await self.sender.post(endpoint.url, headers, entry.body)
        except Exception as exc:  # whatever happened: the slot is freed and the delivery retried
            logger.warning("notification %s to %s: %s", entry.id, entry.endpoint, redact(str(exc)))
            status = None
        finally:
            entry.in_flight = False
        if domain.delivered(status):
            metrics.NOTIFICATION_DELIVERIES.labels(entry.endpoint, "delivered").inc()
            self._remove(namespace, entry)
        elif secret is not None and not domain.retryable(status):
            metrics.NOTIFICATION_DELIVERIES.labels(entry.endpoint, "failed").inc()
            self._remove(namespace, entry)
            message = f"{entry.type} {entry.id}: endpoint {entry.endpoint} answered HTTP {status}; not retried"
            self._report(entry, "NotificationFailed", message)
        else:
            metrics.NOTIFICATION_DELIVERIES.labels(entry.endpoint, "retried").inc()
            entry.attempts += 1
            settings = self.settings
            delay = domain.retry_delay(
                entry.attempts, settings.retry_base_seconds, settings.retry_max_seconds, self.jitter()
            )
            entry.due = self.clock() + delay
            what = "no signing key" if secret is None else "no answer" if status is None else f"HTTP {status}"
            logger.info("notification %s to %s: %s; retry in %.1f s", entry.id, entry.endpoint, what, delay)
        self._wake.set()

    async def _signing_key(self, endpoint: str) -> str | None:
        """The endpoint's key from its Secret (re-read every 5 minutes); None, logged, if unusable:
        nothing is ever sent unsigned."""
        hit = self._secrets.get(endpoint)
        if hit is not None and self.clock() - hit[0] < SECRET_TTL:
            return hit[1]
        name = self.endpoints[endpoint].signing_key_secret
        try:
            data = await self.kube.secret_data(self.namespace, name)
        except Exception as exc:
            logger.warning(
                "endpoint %s: cannot read Secret %s/%s: %s", endpoint, self.namespace, name, redact(str(exc))
            )
            return None
        secret = (data or {}).get("secret")
        if not secret or not webhooks.valid_secret(secret):
            logger.warning(
                "endpoint %s: Secret %s/%s lacks a key `secret` of the form whsec_<base64>",
                endpoint,
                self.namespace,
                name,
            )
            return None
        self._secrets[endpoint] = (self.clock(), secret)
        return secret

    def _report(self, entry: Pending, reason: str, message: str) -> None:
        logger.warning("%s: %s", reason, message)
        self._spawn(self._post_event(entry.ref, reason, message))

    async def _post_event(self, ref: Mapping[str, str], reason: str, message: str) -> None:
        with contextlib.suppress(Exception):  # a courtesy: the metric and the log line remain
            await self.kube.post_event(ref, "Warning", reason, message)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _depth(self, endpoint: str) -> int:
        return sum(entry.endpoint == endpoint for queue in self.pending.values() for entry in queue.values())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.sender.close()
