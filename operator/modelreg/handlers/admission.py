"""Admission webhooks (served by the operator through kopf): parse, delegate, deny in words."""

from __future__ import annotations

from typing import Any

import kopf

from modelreg import GROUP, VERSION

PROMOTIONS = (GROUP, VERSION, "modelpromotions")
VERSIONS = (GROUP, VERSION, "modelversions")
DENIED = 403


def _deny(denial: str | None) -> None:
    if denial:
        raise kopf.AdmissionError(denial, code=DENIED)


async def stamp_promotion(
    operation: str, userinfo: dict, old: Any, body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any
) -> None:
    changes = await memo.services.admission.mutate_promotion(operation, userinfo.get("username", ""), old, dict(body))
    for key, value in changes.items():
        patch.metadata.annotations[key] = value


def label_version(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    for key, value in memo.services.admission.version_labels(dict(body)).items():
        patch.metadata.labels[key] = value


async def check_promotion(operation: str, userinfo: dict, old: Any, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _deny(await memo.services.admission.validate_promotion(operation, userinfo, old, dict(body)))


def check_version(userinfo: dict, old: Any, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _deny(memo.services.admission.validate_version(userinfo, old, dict(body)))


def check_status_writer(userinfo: dict, resource: kopf.Resource, memo: kopf.Memo, **_: Any) -> None:
    _deny(memo.services.admission.validate_status(userinfo, resource.plural))


def register(registry: kopf.OperatorRegistry) -> None:
    # Persistent: the configurations stay when the operator stops, so with `failurePolicy: Fail`
    # promotions and approvals fail closed while the webhook is down instead of going unchecked.
    guard = {"operations": ["CREATE", "UPDATE"], "persistent": True, "registry": registry}
    kopf.on.mutate(*PROMOTIONS, id="stamp-promotions", **guard)(stamp_promotion)
    kopf.on.validate(*PROMOTIONS, id="check-promotions", **guard)(check_promotion)
    # The CRD's CEL rules enforce the same immutability and the operator rewrites its labels
    # on its next tick: this one need not fail closed.
    kopf.on.validate(*VERSIONS, id="check-versions", **{**guard, "ignore_failures": True})(check_version)
    # A convenience (the operator labels what this misses): fail open, and on CREATE only, so the
    # operator's own label writes pay no extra webhook call.
    label_guard = {**guard, "operations": ["CREATE"], "ignore_failures": True}
    kopf.on.mutate(*VERSIONS, id="label-versions", **label_guard)(label_version)
    for plural in ("modelversions", "modelpromotions"):
        kopf.on.validate(GROUP, VERSION, plural, subresource="status", id=f"status-{plural}", **guard)(
            check_status_writer
        )
