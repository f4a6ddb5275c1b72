"""The webhook configurations' "not the operator" conditions, whoever writes the configurations."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

# The webhooks that always allow the operator's own writes: the API server need not call them for
# those (one call fewer per status or label write of every version and promotion).
SKIP_OPERATOR = ("check-versions", "status-modelversions", "status-modelpromotions")
CONDITION = "not-the-operator"


def not_the_operator(username: str) -> dict[str, str]:
    return {"name": CONDITION, "expression": f"request.userInfo.username != {json.dumps(username)}"}


def skip_operator_patch(webhooks: Sequence[Mapping[str, Any]], username: str) -> list[dict[str, Any]]:
    """JSON-patch operations giving each of SKIP_OPERATOR's webhooks (named `<id>.<suffix>`) the
    condition, where it lacks it: kopf writes the configurations it manages without them, and
    writes them again whenever its webhook server restarts."""
    wanted = not_the_operator(username)
    ops: list[dict[str, Any]] = []
    for index, webhook in enumerate(webhooks):
        if str(webhook.get("name", "")).split(".")[0] not in SKIP_OPERATOR:
            continue
        conditions = list(webhook.get("matchConditions") or [])
        if wanted in conditions:
            continue
        kept = [c for c in conditions if c.get("name") != CONDITION]
        # each index tested first: a configuration rewritten meanwhile fails the patch, never another webhook
        ops.append({"op": "test", "path": f"/webhooks/{index}/name", "value": webhook["name"]})
        ops.append({"op": "add", "path": f"/webhooks/{index}/matchConditions", "value": [*kept, wanted]})
    return ops
