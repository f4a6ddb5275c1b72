"""The one place the operator's services are built from settings (kopf's memo holds them)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import prometheus_client

from modelreg.config import Settings
from modelreg.domain.approvals import ApprovalSeals
from modelreg.domain.artifacts import Reason
from modelreg.domain.notifications import OutboxSeals
from modelreg.domain.redaction import redact
from modelreg.domain.seals import Sealer
from modelreg.domain.serving import DEPLOYMENTS, TargetKind
from modelreg.domain.trust import StatusSeals
from modelreg.domain.webhooks import skip_operator_patch
from modelreg.services.admission import AdmissionReviewer
from modelreg.services.loops import Loops
from modelreg.services.model_versions import ModelVersionReconciler, StoreFor
from modelreg.services.notifications import Notifier
from modelreg.services.promotions import PromotionReconciler
from modelreg.services.reporting import Reporter
from modelreg.services.view import PROMOTIONS, VERSIONS, View
from modelreg.storage import kube, s3
from modelreg.storage.s3 import StorageFailure

logger = logging.getLogger(__name__)
CREDENTIALS_TTL = 300.0


@dataclass
class Services:
    """Everything the handlers reach through kopf's memo (as `memo.services`)."""

    admission: AdmissionReviewer
    loops: Loops
    notifier: Notifier
    metrics_port: int
    metrics_addr: str
    namespaces: Collection[str]  # watched; none: every namespace
    resync_seconds: float
    stores: ObjectStores
    kube: kube.KubeStore | None = None
    managed_webhooks: str | None = None  # the configurations kopf manages (self-signed mode)
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _metrics_server: Any = None

    async def start(self) -> None:
        # The view holds everything that exists before anything is judged from it: a promotion
        # must never find its candidate "deleted" because that watch event has not arrived yet.
        await self.loops.prime(self.namespaces)
        await self.notifier.load()
        self._tasks = [
            asyncio.create_task(self.notifier.run()),
            asyncio.create_task(self.loops.run()),
            asyncio.create_task(self.loops.resync_every(self.namespaces, self.resync_seconds)),
            asyncio.create_task(self.loops.freeze_every(10.0)),
        ]
        if self.managed_webhooks:
            self._tasks.append(asyncio.create_task(self.keep_operator_skipped(self.managed_webhooks)))
        if self.metrics_port:
            self._metrics_server, _ = prometheus_client.start_http_server(self.metrics_port, self.metrics_addr)

    async def keep_operator_skipped(self, name: str, every: float = 5.0) -> None:
        """The configurations kopf manages skip the operator's own writes, as the chart's do (kopf
        writes them without matchConditions, at start and whenever its server restarts): a look
        every few seconds, a patch only when one is missing."""
        assert self.kube is not None
        user = self.admission.operator_user
        while True:
            try:
                webhooks = await self.kube.validating_webhooks(name)
                if webhooks and (ops := skip_operator_patch(webhooks, user)):
                    await self.kube.patch_validating_webhooks(name, ops)
                    logger.info("webhook configuration %s: the operator's own writes skip its webhooks", name)
            except (kube.Conflict, kube.ApiRefused, kube.ApiUnreachable) as exc:  # rewritten meanwhile, or down
                logger.debug("webhook configuration %s not patched yet: %s", name, redact(str(exc)))
            await asyncio.sleep(every)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        gc.unfreeze()  # what the resyncs froze is collectable again (an operator inside a longer-lived process)
        await self.notifier.close()
        self.stores.close()  # downloads in flight stop at their next chunk: their threads would hold the exit
        if self._metrics_server is not None:
            self._metrics_server.shutdown()


class ObjectStores:
    """The ObjectStores the operator made that are still in use (see `object_stores`), to close
    them at shutdown. Weakly held: one replaced by rotated credentials goes (threads and all) once
    the work it still does is done."""

    def __init__(self) -> None:
        self.made: weakref.WeakSet[s3.ObjectStore] = weakref.WeakSet()

    def close(self) -> None:
        for made in list(self.made):
            made.close()


def object_stores(settings: Settings, store: kube.KubeStore, stores: ObjectStores) -> StoreFor:
    """The operator's own ObjectStore, or one with a namespace's credentials from the Secret that
    operator config names for it (re-read every 5 minutes, so rotated keys are picked up)."""
    verification, storage = settings.verification, settings.storage

    def make(**credentials: str) -> s3.ObjectStore:
        client = s3.make_client(**credentials)
        made = s3.ObjectStore(
            client,
            verification.chunk_size_bytes,
            verification.queue_depth,
            verification.max_directory_objects,
            verification.range_streams,
        )
        stores.made.add(made)
        return made

    default = make()
    cache: dict[str, tuple[float, dict[str, str], s3.ObjectStore]] = {}

    async def store_for(namespace: str) -> s3.ObjectStore:
        secret = storage.credentials.get(namespace)
        if secret is None:
            return default
        hit = cache.get(namespace)
        if hit is not None and time.monotonic() - hit[0] < CREDENTIALS_TTL:
            return hit[2]
        try:
            data = await store.secret_data(storage.operator_namespace, secret)
        except Exception as exc:  # 403, a broken Secret: a condition that says so, never a crash
            raise StorageFailure(
                Reason.ACCESS_DENIED, redact(f"cannot read the storage credentials for namespace {namespace}: {exc}")
            ) from exc
        if not data or "AWS_ACCESS_KEY_ID" not in data or "AWS_SECRET_ACCESS_KEY" not in data:
            raise StorageFailure(
                Reason.ACCESS_DENIED,
                f"the storage credentials for namespace {namespace} (Secret {storage.operator_namespace}/{secret}) "
                "are missing or lack AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
            )
        keys = {"aws_access_key_id": data["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": data["AWS_SECRET_ACCESS_KEY"]}
        optional = {
            "AWS_SESSION_TOKEN": "aws_session_token",
            "AWS_ENDPOINT_URL": "endpoint_url",
            "AWS_REGION": "region_name",
        }
        keys.update({arg: data[name] for name, arg in optional.items() if data.get(name)})
        # the same store (and its threads) while the credentials stay the same
        if hit is not None and hit[1] == keys:
            store_ = hit[2]  # the same store (and its threads) while the credentials stay the same
        else:
            try:
                store_ = make(**keys)
            except Exception as exc:  # e.g. an AWS_ENDPOINT_URL that is not a URL
                raise StorageFailure(
                    Reason.STORAGE_UNAVAILABLE, redact(f"the storage credentials for namespace {namespace}: {exc}")
                ) from exc
        cache[namespace] = (time.monotonic(), keys, store_)
        return store_

    return store_for


async def build(
    settings: Settings,
    seal_key: bytes,
    previous_keys: list[bytes] | None = None,
    namespaces: Collection[str] = (),
    kinds: Sequence[TargetKind] = (DEPLOYMENTS,),
) -> Services:
    sealer = Sealer(seal_key, previous_keys or [])
    approvals = ApprovalSeals(sealer, settings.approvals.gitops_identity, settings.approvals.gitops_stages)
    status_seals = StatusSeals(sealer)
    store = kube.KubeStore(kube.make_api_client())
    verification = settings.verification
    if not settings.storage.allowed_prefixes:
        logger.warning(
            "storage.allowedPrefixes is empty: single-team mode, every namespace may use every bucket "
            "the operator's storage credentials reach"
        )
    if not settings.webhook.client_ca_file:
        logger.warning(
            "webhook.clientCAFile is not set: anyone who reaches the webhook's port can ask it, in a user's "
            "name, for what that user may do (seals included); give the API server webhook client "
            "credentials and set it, or keep the port reachable by the API server only (NetworkPolicy)"
        )
    stores = ObjectStores()
    model_versions = ModelVersionReconciler(
        object_stores(settings, store, stores),
        verification.retry_policy(),
        verification.max_concurrent,
        status_seals,
        allowed_prefixes=settings.storage.allowed_prefixes,
        max_artifact_bytes=verification.max_artifact_bytes,
        timeout_seconds=verification.timeout_seconds,
        workers=verification.storage_workers,
    )
    policy = settings.policy
    view = View({VERSIONS: status_seals.trusted_version, PROMOTIONS: status_seals.trusted_promotion})
    promotions = PromotionReconciler(
        store,
        policy.required_approvals,
        {stage: [c.to_k8s() for c in criteria] for stage, criteria in policy.default_criteria.items()},
        policy.namespace_config_map,
        approvals,
        status_seals,
        model_versions.still_proven,
        view,
        execution_timeout=settings.promotions.execution_timeout_seconds,
        minimum_cluster=policy.minimum_cluster_approvals,
        kinds=kinds,
    )
    notifier = Notifier(store, settings.notifications, settings.storage.operator_namespace, OutboxSeals(sealer))
    # Enough workers that HEAD-bound re-checks of many versions overlap; downloads stay gated per namespace.
    loops = Loops(
        store,
        view,
        model_versions,
        promotions,
        status_seals,
        Reporter(store, notifier),
        workers=2 * verification.storage_workers,
        promotion_tick=settings.promotions.tick_seconds,
    )
    return Services(
        admission=AdmissionReviewer(
            store,
            approvals,
            status_seals,
            operator_user=await store.whoami(),
            view=view,
            namespace_deleters=settings.webhook.namespace_deleters,
        ),
        loops=loops,
        notifier=notifier,
        metrics_port=settings.metrics.port,
        metrics_addr=settings.metrics.addr,
        namespaces=list(namespaces),
        resync_seconds=settings.promotions.resync_seconds,
        stores=stores,
        kube=store,
        managed_webhooks=settings.webhook.managed,
    )
