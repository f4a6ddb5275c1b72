"""What each page shows, decided from the cluster's objects: pure (no I/O), so the pages are
testable and a 1,000-version model is a benchmark of this module and the templates alone.

Everything here is data for autoescaping templates: nothing is marked safe."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from modelreg.cli import render
from modelreg.domain.approvals import APPROVAL_PREFIX, REQUESTED_BY
from modelreg.domain.promotions import TERMINAL, reason_of

Obj = Mapping[str, Any]
STAGES = ("Production", "Staging")
# Chart geometry (SVG user units; the SVG scales to its container's width).
WIDTH, HEIGHT, PAD = 600, 180, 36


def owned(versions: Sequence[Obj]) -> list[Obj]:
    """Each version number's owner only (a later registration of it is a duplicate), as the CLI lists."""
    return [v for v in versions if render.ready_reason(v) != "DuplicateVersion"]


def is_open(promotion: Obj) -> bool:
    return reason_of(promotion) not in TERMINAL


def approvers_of(promotion: Obj) -> list[str]:
    """Who has an approval annotation on it (counted or not yet: the webhook seals what it admits)."""
    annotations = promotion["metadata"].get("annotations") or {}
    return sorted(str(v) for k, v in annotations.items() if k.startswith(APPROVAL_PREFIX))


def requester_of(promotion: Obj) -> str | None:
    status = promotion.get("status") or {}
    return status.get("requestedBy") or (promotion["metadata"].get("annotations") or {}).get(REQUESTED_BY)


def waits_for(promotion: Obj, viewer: str) -> bool:
    """An open promotion the viewer has neither requested nor approved yet (RBAC decides the rest)."""
    return is_open(promotion) and viewer != requester_of(promotion) and viewer not in approvers_of(promotion)


def models(versions: Sequence[Obj], promotions: Sequence[Obj], viewer: str) -> list[dict[str, Any]]:
    grouped: dict[tuple[str, str], list[Obj]] = {}
    for v in owned(versions):
        grouped.setdefault((v["metadata"].get("namespace", ""), v["spec"]["modelName"]), []).append(v)
    rows = []
    for (namespace, model), found in sorted(grouped.items()):
        holders = {}
        for stage in STAGES:
            holder = next((v for v in found if (v.get("status") or {}).get("stage") == stage), None)
            holders[stage] = (
                {"version": holder["spec"]["version"], "verified": verified(holder)} if holder is not None else None
            )
        waiting = [
            p["metadata"]["name"]
            for p in promotions
            if p["metadata"].get("namespace", "") == namespace
            and p["spec"].get("modelName") == model
            and waits_for(p, viewer)
        ]
        latest = max(found, key=lambda v: v["spec"]["version"])
        rows.append(
            {
                "namespace": namespace,
                "model": model,
                "versions": len(found),
                "latest": latest["spec"]["version"],
                "latest_verified": verified(latest),
                "verified": sum(1 for v in found if verified(v) == "True"),
                "holders": holders,
                "waiting": waiting,
            }
        )
    return rows


def verified(v: Obj) -> str:
    return str(render.condition(v, "ArtifactVerified").get("status", "Unknown"))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def chart(metric: str, points: Sequence[tuple[int, float, str]]) -> dict[str, Any]:
    """An inline SVG line chart of one metric across versions; stage holders marked and named."""
    versions = [p[0] for p in points]
    values = [p[1] for p in points]
    x0, x1 = min(versions), max(versions)
    y0, y1 = min(values), max(values)
    if y0 == y1:
        y0, y1 = y0 - 1, y1 + 1
    if x0 == x1:
        x0, x1 = x0 - 1, x1 + 1

    def x(v: float) -> float:
        return round(PAD + (v - x0) / (x1 - x0) * (WIDTH - 2 * PAD), 1)

    def y(v: float) -> float:
        return round(HEIGHT - PAD + (y0 - v) / (y1 - y0) * (HEIGHT - 2 * PAD), 1)

    return {
        "metric": metric,
        "label": f"Chart of metric {metric} across {len(points)} versions"
        + "".join(f"; {stage}: v{version} = {value:g}" for version, value, stage in points if stage),
        "path": " ".join(f"{'M' if i == 0 else 'L'}{x(v)},{y(val)}" for i, (v, val, _) in enumerate(points)),
        "marks": [
            {
                "x": x(v),
                "y": y(val),
                "anchor": "start" if x(v) < WIDTH / 4 else "end" if x(v) > WIDTH * 3 / 4 else "middle",
                "stage": stage,
                "version": v,
                "value": f"{val:g}",
            }
            for v, val, stage in points
            if stage
        ],
        "dots": [{"x": x(v), "y": y(val)} for v, val, _ in points] if len(points) <= 60 else [],
        "min": f"{min(values):g}",
        "max": f"{max(values):g}",
        "first": min(versions),
        "last": max(versions),
        "width": WIDTH,
        "height": HEIGHT,
        "pad": PAD,
    }


def model_page(model: str, versions: Sequence[Obj], promotions: Sequence[Obj]) -> dict[str, Any]:
    found = sorted((v for v in owned(versions) if v["spec"]["modelName"] == model), key=lambda v: v["spec"]["version"])
    rows = [
        {
            "version": v["spec"]["version"],
            "name": v["metadata"]["name"],
            "stage": (v.get("status") or {}).get("stage") or "",
            "verified": verified(v),
            "metrics": sorted((v["spec"].get("metrics") or {}).items()),
            "created": v["metadata"].get("creationTimestamp", ""),
            "age": render.age(v["metadata"].get("creationTimestamp")),
            "run_id": (v["spec"].get("lineage") or {}).get("runId", ""),
        }
        for v in found
    ]
    series: dict[str, list[tuple[int, float, str]]] = {}
    for row in rows:
        for metric, value in row["metrics"]:
            number = _number(value)
            if number is not None:
                series.setdefault(str(metric), []).append((row["version"], number, row["stage"]))
    mine = {p["metadata"]["name"]: p for p in promotions if p["spec"].get("modelName") == model}
    timeline = []
    for entry in render.history(found):
        promotion = mine.get(entry["promotion"]) or {}
        timeline.append({**entry, "reason": (promotion.get("spec") or {}).get("reason", "")})
    rollbacks = [
        {
            "promotion": name,
            "version": p["spec"].get("version"),
            "target": p["spec"].get("targetStage"),
            "reason": reason_of(p),
            "message": render.condition(p, "Succeeded").get("message", ""),
            "time": render.condition(p, "Succeeded").get("lastTransitionTime", ""),
        }
        for name, p in sorted(mine.items())
        if reason_of(p) in ("RolledBack", "RolloutFailed")
    ]
    return {
        "model": model,
        "rows": rows,
        "charts": [chart(metric, points) for metric, points in sorted(series.items())],
        "timeline": timeline,
        "rollbacks": rollbacks,
    }


def version_page(model: str, number: int, versions: Sequence[Obj], other: int | None) -> dict[str, Any] | None:
    found = [v for v in owned(versions) if v["spec"]["modelName"] == model]
    this = next((v for v in found if v["spec"]["version"] == number), None)
    if this is None:
        return None
    status = this.get("status") or {}
    proven = status.get("artifact") or {}
    against = next((v for v in found if other is not None and v["spec"]["version"] == other), None)
    return {
        "model": model,
        "version": number,
        "name": this["metadata"]["name"],
        "namespace": this["metadata"].get("namespace", ""),
        "stage": status.get("stage") or "",
        "uri": this["spec"]["artifact"].get("uri", ""),
        "sha256": this["spec"]["artifact"].get("sha256", ""),
        "version_id": proven.get("versionId", ""),
        "last_proven": proven.get("verifiedTime", ""),
        "method": proven.get("method", ""),
        "verified": verified(this),
        "description": this["spec"].get("description", ""),
        "metrics": sorted((this["spec"].get("metrics") or {}).items()),
        "params": sorted((this["spec"].get("hyperparameters") or {}).items()),
        "annotations": sorted((this["metadata"].get("annotations") or {}).items()),
        "conditions": status.get("conditions") or [],
        "lineage": render.lineage_chain(found, number),
        "others": sorted(v["spec"]["version"] for v in found if v["spec"]["version"] != number),
        "other": other if against is not None else None,
        "diff": render.diff(this, against) if against is not None else [],
    }


def stages_to_ask(promotions: Sequence[Obj]) -> list[tuple[str, str, str, str]]:
    """(namespace, promotion, model, stage) of each open promotion: whose `approve` to ask about."""
    return [
        (
            p["metadata"].get("namespace", ""),
            p["metadata"]["name"],
            p["spec"].get("modelName"),
            p["spec"].get("targetStage"),
        )
        for p in promotions
        if is_open(p)
    ]


def promotions_page(
    promotions: Sequence[Obj],
    versions: Sequence[Obj],
    viewer: str,
    entitled: Mapping[tuple[str, str], bool] | None = None,
) -> list[dict[str, Any]]:
    """Open promotions with their gates: criteria against the current holder, approvals n/required,
    and (`entitled`: the API server's answer for the viewer) whether the viewer may approve."""
    rows = []
    for p in sorted(promotions, key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"])):
        if not is_open(p):
            continue
        spec, status = p["spec"], p.get("status") or {}
        namespace = p["metadata"].get("namespace", "")
        peers = [v for v in owned(versions) if v["metadata"].get("namespace", "") == namespace]
        peers = [v for v in peers if v["spec"]["modelName"] == spec.get("modelName")]
        holder = next((v for v in peers if (v.get("status") or {}).get("stage") == spec.get("targetStage")), None)
        candidate = next((v for v in peers if v["spec"]["version"] == spec.get("version")), None)
        comparison = status.get("comparison") or {}
        criteria = []
        for c in spec.get("criteria") or []:
            metric = c.get("metric", "")
            mine = ((candidate or {}).get("spec") or {}).get("metrics", {}).get(metric)
            current = ((holder or {}).get("spec") or {}).get("metrics", {}).get(metric)
            rule = ", ".join(f"{k} {v}" for k, v in c.items() if k != "metric")
            criteria.append(
                {"metric": metric, "rule": rule, "candidate": mine, "current": current, **comparison.get(metric, {})}
            )
        requester = requester_of(p)
        annotated = approvers_of(p)
        counted = [a.get("user") for a in status.get("approvals") or []]
        required = status.get("requiredApprovals")
        if viewer == requester:
            mine_text, can_approve = "you requested it: someone else approves", False
        elif viewer in annotated:
            mine_text, can_approve = "you approved it", False
        elif entitled is not None and entitled.get((namespace, p["metadata"]["name"])) is False:
            target = f"{spec.get('modelName')}/{spec.get('targetStage')}"
            mine_text, can_approve = f"RBAC does not let you approve {target} (approve on modelstages)", True
        elif entitled is not None and entitled.get((namespace, p["metadata"]["name"])):
            mine_text, can_approve = "you may approve it", True
        else:
            mine_text, can_approve = "waiting for approvers such as you (if RBAC lets you approve this stage)", True
        rows.append(
            {
                "namespace": namespace,
                "name": p["metadata"]["name"],
                "model": spec.get("modelName"),
                "version": spec.get("version"),
                "target": spec.get("targetStage"),
                "reason": spec.get("reason", ""),
                "state": reason_of(p) or "Pending",
                "message": render.condition(p, "Succeeded").get("message", ""),
                "holder": holder["spec"]["version"] if holder is not None else None,
                "criteria": criteria,
                "summary": status.get("approvalSummary") or f"{len(counted)}/{required if required else '?'}",
                "approvals": status.get("approvals") or [],
                "annotated": annotated,
                "requester": requester,
                "still": "anyone with approve on this stage except "
                + ", ".join(sorted({u for u in [requester, *annotated] if u})),
                "you": mine_text,
                "can_approve": can_approve,
                "can_withdraw": viewer in annotated,
            }
        )
    return rows
