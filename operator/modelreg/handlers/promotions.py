"""ModelPromotions and the serving Deployments they roll: watch events feed services.loops."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from modelreg import GROUP, VERSION
from modelreg.domain.serving import MODEL_LABEL

PROMOTIONS = (GROUP, VERSION, "modelpromotions")


async def observe(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.services.loops.observe_promotion(type, body)


async def converge_deployment(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    body: kopf.Body,
    memo: kopf.Memo,
    type: str | None,
    **_: Any,
) -> None:
    if type != "DELETED":
        await memo.services.loops.converge_deployment(namespace, name, labels[MODEL_LABEL], body)


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.on.event(*PROMOTIONS, id="observe", registry=registry)(observe)
    kopf.on.event(
        "apps", "v1", "deployments", id="serving_deployment", registry=registry, labels={MODEL_LABEL: kopf.PRESENT}
    )(converge_deployment)
