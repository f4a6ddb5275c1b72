"""ModelPromotions and the serving targets they roll: watch events feed services.loops."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import kopf

from modelreg import GROUP, VERSION
from modelreg.domain.serving import MODEL_LABEL, TargetKind, target_kind

PROMOTIONS = (GROUP, VERSION, "modelpromotions")


async def observe(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.services.loops.observe_promotion(type, body)


async def converge_target(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    body: kopf.Body,
    resource: kopf.Resource,
    memo: kopf.Memo,
    type: str | None,
    **_: Any,
) -> None:
    if type != "DELETED":
        kind = target_kind(resource.group, resource.plural)
        await memo.services.loops.converge_target(kind, namespace, name, labels[MODEL_LABEL], body)


def register(registry: kopf.OperatorRegistry, kinds: Collection[TargetKind]) -> None:
    kopf.on.event(*PROMOTIONS, id="observe", registry=registry)(observe)
    for kind in kinds:  # only kinds enabled and installed: kopf would warn of the others on every re-scan
        kopf.on.event(
            kind.group,
            kind.version,
            kind.plural,
            id=f"serving_{kind.key}",
            registry=registry,
            labels={MODEL_LABEL: kopf.PRESENT},
        )(converge_target)
