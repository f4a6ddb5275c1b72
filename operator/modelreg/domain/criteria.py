"""Evaluation gates on a candidate's metrics; higher is better for `maxRegression`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Evaluation:
    failures: list[str]
    comparison: dict[str, dict[str, float]]

    @property
    def met(self) -> bool:
        return not self.failures


def evaluate(
    criteria: Sequence[Mapping],
    candidate: Mapping[str, float],
    current: Mapping[str, float] | None,
    current_label: str = "the current version",
) -> Evaluation:
    comparison = {
        metric: {
            "candidate": candidate[metric],
            "current": current[metric],
            "delta": round(candidate[metric] - current[metric], 12),
        }
        for metric in sorted(set(candidate) & set(current or {}))
    }
    failures = []
    for criterion in criteria:
        metric = criterion["metric"]
        value = candidate.get(metric)
        if value is None:
            failures.append(f"metric {metric} is missing from the candidate's spec.metrics")
        elif criterion.get("min") is not None and value < criterion["min"]:
            failures.append(f"{metric} = {value} is below the minimum {criterion['min']}")
        elif criterion.get("max") is not None and value > criterion["max"]:
            failures.append(f"{metric} = {value} is above the maximum {criterion['max']}")
        elif criterion.get("maxRegression") is not None and current is not None and metric in current:
            regression = current[metric] - value
            if regression > criterion["maxRegression"]:
                failures.append(
                    f"{metric} = {value} regresses by {regression:.6g} from {current[metric]} "
                    f"({current_label}); at most {criterion['maxRegression']} allowed"
                )
    return Evaluation(failures, comparison)
