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
    if operation == "DELETE":
        return
    changes = await memo.services.admission.mutate_promotion(operation, userinfo, old, dict(body))
    for key, value in changes.items():
        patch.metadata.annotations[key] = value


def stamp_version(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    labels, annotations = memo.services.admission.stamp_version(dict(body))
    for key, value in labels.items():
        patch.metadata.labels[key] = value
    for key, value in annotations.items():
        patch.metadata.annotations[key] = value


async def check_promotion(operation: str, userinfo: dict, old: Any, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if operation == "DELETE":
        _deny(await memo.services.admission.validate_delete("modelpromotions", userinfo, dict(body)))
    else:
        _deny(await memo.services.admission.validate_promotion(operation, userinfo, old, dict(body)))


async def check_version(operation: str, userinfo: dict, old: Any, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if operation == "DELETE":
        _deny(await memo.services.admission.validate_delete("modelversions", userinfo, dict(body)))
    else:
        _deny(memo.services.admission.validate_version(userinfo, old, dict(body)))


def check_status_writer(userinfo: dict, resource: kopf.Resource, memo: kopf.Memo, **_: Any) -> None:
    _deny(memo.services.admission.validate_status(userinfo, resource.plural))


def register(registry: kopf.OperatorRegistry) -> None:
    # Persistent: the configurations stay when the operator stops, so with `failurePolicy: Fail`
    # promotions, approvals, labels and deletes fail closed while the webhook is down instead of
    # going unchecked (a ModelVersion too: its stage label and its registration time decide).
    guard = {"operations": ["CREATE", "UPDATE"], "persistent": True, "registry": registry}
    checks = {**guard, "operations": ["CREATE", "UPDATE", "DELETE"]}
    kopf.on.mutate(*PROMOTIONS, id="stamp-promotions", **guard)(stamp_promotion)
    kopf.on.validate(*PROMOTIONS, id="check-promotions", **checks)(check_promotion)
    kopf.on.validate(*VERSIONS, id="check-versions", **checks)(check_version)
    # On CREATE only, so the operator's own label writes pay no extra webhook call.
    kopf.on.mutate(*VERSIONS, id="label-versions", **{**guard, "operations": ["CREATE"]})(stamp_version)
    for plural in ("modelversions", "modelpromotions"):
        kopf.on.validate(GROUP, VERSION, plural, subresource="status", id=f"status-{plural}", **guard)(
            check_status_writer
        )
