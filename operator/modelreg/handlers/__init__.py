"""kopf handlers only: parse, delegate, map errors. Registered per operator run by `register`."""

from __future__ import annotations

import logging
from collections.abc import Collection

import kopf

from modelreg.config import Settings
from modelreg.handlers import model_versions, promotions


def register(settings: Settings) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    # The official client's login: the in-cluster service account, else the current kubeconfig context.
    kopf.on.login(registry=registry)(kopf.login_via_client)

    model_versions.register(registry, settings)
    promotions.register(registry, settings)
    return registry


def kopf_settings(namespaces: Collection[str]) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    # Bookkeeping stays in status (never in annotations that GitOps owns).
    settings.persistence.progress_storage = kopf.StatusProgressStorage(name="modelreg")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(name="modelreg")
    settings.persistence.finalizer = "modelreg.io/finalizer"
    settings.posting.level = logging.INFO  # INFO and up become Events; debug chatter does not
    settings.watching.server_timeout = 300
    settings.networking.error_backoffs = [1, 2, 5, 10, 20, 30]
    # Exact namespace names need no namespace scanning, and so no cluster-wide
    # `list namespaces` permission; only glob patterns do.
    settings.scanning.disabled = not any(ch in ns for ns in namespaces for ch in "*?[!")
    return settings
