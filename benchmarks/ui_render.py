"""`kubectl modelreg ui`: a model with 1,000 versions renders its page in under a second.

Renders the model page (versions table, a chart per metric, the stage timeline) through the UI's
own Pages and templates, from in-memory objects shaped as the API server returns them (the list
call itself is the API server's time, not the UI's). Printed with the ratio against a baseline
measured in the same run: the same page for a 10-version model.

Usage: python benchmarks/ui_render.py [--versions 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from modelreg.cli.ui.server import Pages

METRICS = ("auc", "f1", "latency_ms", "precision", "recall")


def version(n: int, total: int) -> dict[str, Any]:
    stage = "Production" if n == total - 1 else "Staging" if n == total else ""
    history = [{"stage": "Staging", "time": f"2026-11-01T00:{n % 60:02d}:00Z", "promotion": f"p{n}"}] if stage else []
    return {
        "apiVersion": "modelreg.io/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": f"fraud-v{n}", "namespace": "ml", "creationTimestamp": "2026-11-01T00:00:00Z"},
        "spec": {
            "modelName": "fraud",
            "version": n,
            "artifact": {"uri": f"s3://models/fraud/{n}/model.onnx", "sha256": "ab" * 32},
            "metrics": {m: round(0.5 + (n * 7919 % 1000) / 2000, 4) for m in METRICS},
            "lineage": {"runId": f"run-{n}", "parentVersion": n - 1} if n > 1 else {"runId": "run-1"},
        },
        "status": {
            "stage": stage,
            "conditions": [{"type": "ArtifactVerified", "status": "True", "reason": "Verified"}],
            "stageHistory": history,
        },
    }


class Listed:
    """What KubeClient.list returns, from memory."""

    def __init__(self, versions: list[dict[str, Any]]) -> None:
        self.items = {"modelversions": versions, "modelpromotions": []}

    def list(self, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        return self.items[plural]


def seconds(count: int, repeat: int) -> tuple[float, int]:
    pages = Pages(Listed([version(n, count) for n in range(1, count + 1)]), "ml", "bob")  # type: ignore[arg-type]
    pages.model("ml", "fraud")  # templates compiled once, as a running server has them
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        html = pages.model("ml", "fraud")
        times.append(time.perf_counter() - start)
    assert html is not None and f">v{count}</a>" in html
    return statistics.median(times), len(html)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    base, base_size = seconds(10, args.repeat)
    big, big_size = seconds(args.versions, args.repeat)
    print(f"model page, 10 versions (baseline): {base * 1000:8.1f} ms  ({base_size / 1024:.0f} KiB)")
    print(f"model page, {args.versions} versions:          {big * 1000:8.1f} ms  ({big_size / 1024:.0f} KiB)")
    print(f"ratio: {big / base:.1f}x the baseline; {'under' if big < 1 else 'OVER'} the 1 s budget")


if __name__ == "__main__":
    main()
