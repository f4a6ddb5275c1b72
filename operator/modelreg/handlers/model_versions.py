"""ModelVersion: watch events feed the one loop that reconciles them (services.model_version_loop)."""

from __future__ import annotations

from typing import Any

import kopf

from modelreg import GROUP, VERSION

RESOURCE = (GROUP, VERSION, "modelversions")


async def observe(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.model_version_loop.observe(type, body)


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.on.event(*RESOURCE, id="observe", registry=registry)(observe)
