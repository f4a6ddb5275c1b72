"""One JSON audit line per state change: who, what, from, to, why. Never carries secrets."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

_audit = logging.getLogger("modelreg.audit")


def audit(
    body: Mapping[str, Any], previous: str | None, current: str, why: str, who: str = "modelreg-operator"
) -> None:
    meta = body.get("metadata", {})
    what = f"{body.get('kind')}/{meta.get('namespace')}/{meta.get('name')}"
    _audit.info(
        "%s: %s -> %s",
        what,
        previous,
        current,
        extra={"audit": {"who": who, "what": what, "from": previous, "to": current, "why": why}},
    )
