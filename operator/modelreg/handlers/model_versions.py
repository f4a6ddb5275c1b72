"""ModelVersion: watch events feed the operator's view and its due-time queue (services.loops)."""

from __future__ import annotations

from typing import Any

import kopf

from modelreg import GROUP, VERSION

RESOURCE = (GROUP, VERSION, "modelversions")


async def observe(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.services.loops.observe_version(type, body)


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.on.event(*RESOURCE, id="observe", registry=registry)(observe)
