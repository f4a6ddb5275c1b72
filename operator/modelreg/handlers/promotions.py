"""ModelPromotions and the serving Deployments they roll."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from modelreg import GROUP, VERSION
from modelreg.audit import audit
from modelreg.config import Settings
from modelreg.domain.promotions import TERMINAL, reason_of
from modelreg.domain.serving import MODEL_LABEL
from modelreg.domain.trust import RECORD
from modelreg.services.promotions import Outcome

PROMOTIONS = (GROUP, VERSION, "modelpromotions")


def report(outcome: Outcome, memo: kopf.Memo) -> None:
    memo.notifier.publish(outcome.notices)
    for body, type_, reason, message in outcome.events:
        kopf.event(dict(body), type=type_, reason=reason, message=message)
    for body, previous, current, why in outcome.audit:
        audit(body, previous, current, why)


async def reconcile_promotion(
    body: kopf.Body, name: str, namespace: str, spec: kopf.Spec, memo: kopf.Memo, **_: Any
) -> None:
    if reason_of(body) in TERMINAL and memo.status_seals.proven(RECORD, body):
        return  # history: no I/O
    report(await memo.promotions.reconcile(namespace, name, spec["modelName"]), memo)


async def converge_deployment(
    name: str, namespace: str, labels: Mapping[str, str], memo: kopf.Memo, type: str | None, **_: Any
) -> None:
    if type != "DELETED":
        report(await memo.promotions.converge_deployment(namespace, name, labels[MODEL_LABEL]), memo)


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    # Events react at once (an approval lands); the timer drives rollouts and retries.
    kopf.on.event(*PROMOTIONS, id="promotion_event", registry=registry)(reconcile_promotion)
    kopf.timer(
        *PROMOTIONS, id="promotion_tick", registry=registry, interval=settings.promotions.tick_seconds, sharp=False
    )(reconcile_promotion)
    kopf.on.event(
        "apps", "v1", "deployments", id="serving_deployment", registry=registry, labels={MODEL_LABEL: kopf.PRESENT}
    )(converge_deployment)
