"""Standard Kubernetes status conditions (metav1.Condition shape) as plain dicts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Condition = dict[str, Any]


def find(conditions: Sequence[Condition] | None, type_: str) -> Condition | None:
    return next((c for c in conditions or () if c.get("type") == type_), None)


def set_condition(
    conditions: Sequence[Condition] | None,
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    *,
    now: str,
    generation: int | None,
) -> list[Condition]:
    """Return a new list with `type_` set; lastTransitionTime moves only when the status flips."""
    status_text = {True: "True", False: "False", None: "Unknown"}[status]
    old = find(conditions, type_)
    flipped = old is None or old.get("status") != status_text
    new: Condition = {
        "type": type_,
        "status": status_text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now if flipped else old.get("lastTransitionTime", now),
    }
    if generation is not None:
        new["observedGeneration"] = generation
    others = [c for c in conditions or () if c.get("type") != type_]
    return sorted([*others, new], key=lambda c: c["type"])
