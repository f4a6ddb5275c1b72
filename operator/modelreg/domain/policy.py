"""Promotion policy: the operator's, tightened (never loosened) by a namespace's own."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from modelreg.domain.promotions import Policy
from modelreg.models.stages import TARGETS


class PolicyError(ValueError):
    pass


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _criterion_ok(criterion: Any) -> bool:
    bounds = ("min", "max", "maxRegression")
    return (
        isinstance(criterion, dict)
        and isinstance(criterion.get("metric"), str)
        and set(criterion) <= {"metric", *bounds}
        and sum(b in criterion for b in bounds) == 1
        and all(_finite_number(criterion[b]) for b in bounds if b in criterion)
    )


def effective_policy(
    required: Mapping[str, int],
    criteria: Mapping[str, Sequence[Mapping]],
    override: Mapping[str, Any] | None,
    cluster: Mapping[str, int] | None = None,
) -> Policy:
    """A team can commit stricter rules for its namespace; a weaker number is ignored, since
    the namespace's own editors must not be able to waive the platform's approvals.
    `cluster`: policy.minimumClusterApprovals (the operator's only)."""
    cluster = dict(cluster or {})
    if not override:
        return Policy(dict(required), {k: list(v) for k, v in criteria.items()}, cluster)
    if not isinstance(override, Mapping):
        raise PolicyError(f"policy.yaml must be a mapping with requiredApprovals and defaultCriteria, not {override!r}")
    unknown = set(override) - {"requiredApprovals", "defaultCriteria"}
    if unknown:
        raise PolicyError(f"unknown key(s) {sorted(unknown)}; expected requiredApprovals, defaultCriteria")
    for key in ("requiredApprovals", "defaultCriteria"):
        if not isinstance(override.get(key) or {}, Mapping):
            raise PolicyError(f"{key} must map stages to values, not {override[key]!r}")
    merged_required = dict(required)
    for stage, count in (override.get("requiredApprovals") or {}).items():
        valid_count = isinstance(count, int) and not isinstance(count, bool) and count >= 0
        if stage not in TARGETS or not valid_count:
            raise PolicyError(f"requiredApprovals.{stage}: expected a stage and a count >= 0, got {count!r}")
        merged_required[stage] = max(merged_required.get(stage, 0), count)
    merged_criteria = {k: list(v) for k, v in criteria.items()}
    for stage, extra in (override.get("defaultCriteria") or {}).items():
        if not isinstance(extra, list) or not all(_criterion_ok(c) for c in extra):
            raise PolicyError(
                f"defaultCriteria.{stage}: expected a list of {{metric, min|max|maxRegression: number}}, got {extra!r}"
            )
        merged_criteria[stage] = [*merged_criteria.get(stage, []), *extra]
    return Policy(merged_required, merged_criteria, cluster)
