"""ModelVersion: one timer per object is the single writer of its status (no handler races)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf

from modelreg import GROUP, VERSION
from modelreg.audit import audit
from modelreg.config import Settings
from modelreg.domain.model_versions import Sibling, Transition
from modelreg.domain.notifications import notice
from modelreg.domain.serving import MODEL_LABEL, STAGE_LABEL
from modelreg.domain.trust import STAGE
from modelreg.handlers import promotions

RESOURCE = (GROUP, VERSION, "modelversions")


def index_by_model(namespace: str, name: str, spec: Any, meta: Any, **_: Any) -> dict:
    return {(namespace, spec.get("modelName")): Sibling(name, spec.get("version"), meta["creationTimestamp"])}


async def reconcile(
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    name: str,
    namespace: str,
    patch: kopf.Patch,
    memo: kopf.Memo,
    model_versions_by_model: kopf.Index,
    logger: logging.Logger,
    **_: Any,
) -> None:
    changes, transitions = await memo.model_versions.reconcile(
        body=body,
        namespace=namespace,
        name=name,
        spec=spec,
        status=status,
        generation=meta.get("generation"),
        created=meta["creationTimestamp"],
        now=datetime.now(UTC),
        siblings=model_versions_by_model.get((namespace, spec.get("modelName")), []),
    )
    patch.status.update(changes)
    if meta.labels.get(MODEL_LABEL) != spec.get("modelName"):
        patch.metadata.labels[MODEL_LABEL] = spec.get("modelName")
    for transition in transitions:
        report(body, transition, memo)
    if not memo.status_seals.proven(STAGE, body):
        promotions.report(await memo.promotions.restore_stage(namespace, name, spec.get("modelName")), memo)
    elif meta.labels.get(STAGE_LABEL) != (status.get("stage") or None):
        patch.metadata.labels[STAGE_LABEL] = status.get("stage") or None  # CI/CD selects by it: keep it true


def report(body: kopf.Body, transition: Transition, memo: kopf.Memo) -> None:
    kopf.event(body, type=transition.type, reason=transition.reason, message=transition.message)
    audit(body, transition.previous, transition.current, transition.message)
    if transition.notice:
        stage = (body.get("status") or {}).get("stage")
        memo.notifier.publish(
            [notice(transition.notice, body, reason=transition.current, message=transition.message, stage=stage)]
        )


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    verification = settings.verification
    kopf.index(*RESOURCE, id="model_versions_by_model", registry=registry)(index_by_model)
    kopf.timer(
        *RESOURCE,
        id="reconcile",
        registry=registry,
        interval=verification.tick_seconds,
        initial_delay=0,
        sharp=False,
        backoff=verification.retry_base_seconds,
    )(reconcile)
