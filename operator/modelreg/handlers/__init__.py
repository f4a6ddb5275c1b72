"""kopf handlers only: parse, delegate, map errors. Registered per operator run by `register`."""

from __future__ import annotations

from typing import Any

import kopf

from modelreg.config import Settings
from modelreg.handlers import model_versions


def register(settings: Settings) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def configure_kopf(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Bookkeeping stays in status (never in annotations that GitOps owns).
        settings.persistence.progress_storage = kopf.StatusProgressStorage(name="modelreg")
        settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(name="modelreg")
        settings.persistence.finalizer = "modelreg.io/finalizer"
        settings.posting.level = 20  # INFO and up become Events; debug chatter does not
        settings.watching.server_timeout = 300
        settings.networking.error_backoffs = [1, 2, 5, 10, 20, 30]

    model_versions.register(registry, settings)
    return registry
