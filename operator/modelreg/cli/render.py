"""Pure rendering of registry objects for the terminal (tables, timelines, diffs, trees)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

from modelreg.domain.consumption import Resolved
from modelreg.models.stages import DISPLAY_ORDER


def condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def ready_reason(obj: Mapping[str, Any]) -> str | None:
    return condition(obj, "Ready").get("reason")


def age(timestamp: str | None, now: datetime | None = None) -> str:
    if not timestamp:
        return "<unknown>"
    seconds = int(
        ((now or datetime.now(UTC)) - datetime.fromisoformat(timestamp.replace("Z", "+00:00"))).total_seconds()
    )
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def dump(data: Any, output: str) -> str:
    if output == "json":
        return json.dumps(data, indent=2, sort_keys=False)
    return yaml.safe_dump(data, sort_keys=False).rstrip()


def as_list(data: Any) -> Any:
    """A listing as kubectl prints one (`kind: List`); anything else as it is."""
    if isinstance(data, list):
        return {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": data}
    return data


class JsonPathError(ValueError):
    pass


_TEMPLATE = re.compile(r"\{((?:[^{}\"]|\"(?:[^\"\\]|\\.)*\")*)\}")


def jsonpath(template: str, data: Any) -> str:
    """kubectl's -o jsonpath=TEMPLATE: text with `{.field}`, `{.items[*].x}`, filters
    `[?(@.type=="Ready")]`, `{"\\n"}` and `{range EXPR}…{end}`, each EXPR JSONPath (jsonpath-ng)."""
    parts: list[tuple[str, str]] = []  # ("text", s) or ("expr", s)
    position = 0
    for match in _TEMPLATE.finditer(template):
        parts.append(("text", template[position : match.start()]))
        parts.append(("expr", match.group(1).strip()))
        position = match.end()
    parts.append(("text", template[position:]))
    if any(kind == "text" and "{" in text for kind, text in parts):
        raise JsonPathError(f"jsonpath {template!r}: unclosed action (a {{ without its }})")
    out, rest = _render(parts, data)
    if rest:
        raise JsonPathError("jsonpath: {end} without {range}")
    return out


def _render(parts: list[tuple[str, str]], context: Any) -> tuple[str, list[tuple[str, str]]]:
    """The text for `parts` up to an unmatched {end}, and what follows it."""
    out = []
    while parts:
        (kind, value), parts = parts[0], parts[1:]
        if kind == "text":
            out.append(value)
        elif value == "end":
            return "".join(out), parts
        elif value.startswith('"'):
            out.append(json.loads(value))
        elif value.startswith("range "):
            body = parts
            for item in _query(value.removeprefix("range ").strip(), context):
                text, parts = _render(body, item)
                out.append(text)
            if not _query(value.removeprefix("range ").strip(), context):
                _, parts = _render(body, None)
        else:
            out.append(" ".join(v if isinstance(v, str) else json.dumps(v) for v in _query(value, context)))
    return "".join(out), []


def _query(expression: str, context: Any) -> list[Any]:
    from jsonpath_ng.exceptions import JsonPathParserError
    from jsonpath_ng.ext import parse

    if context is None:
        return []
    path = "$" if expression in ("@", "$", ".") else "$" + expression.removeprefix("$").removeprefix("@")
    try:
        return [found.value for found in parse(path).find(context)]
    except (JsonPathParserError, Exception) as exc:  # the library raises bare Exceptions for some input
        raise JsonPathError(f"jsonpath {expression!r}: {exc}") from None


def resource_name(obj: Mapping[str, Any]) -> str:
    """kubectl's -o name: `<kind>.<group>/<name>`."""
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return f"{str(obj['kind']).lower()}{'.' + group if group else ''}/{obj['metadata']['name']}"


def version_rows(versions: Sequence[Mapping[str, Any]], wide_namespace: bool = False, wide: bool = False) -> str:
    headers = ["NAMESPACE"] * wide_namespace + ["NAME", "MODEL", "VERSION", "STAGE", "VERIFIED", "METRICS", "AGE"]
    headers += ["FORMAT", "URI", "MESSAGE"] * wide
    rows = []
    for v in sorted(versions, key=lambda v: (v["spec"]["modelName"], v["spec"]["version"])):
        metrics = ",".join(f"{k}={m}" for k, m in sorted((v["spec"].get("metrics") or {}).items()))
        rows.append(
            [v["metadata"].get("namespace")] * wide_namespace
            + [
                v["metadata"]["name"],
                v["spec"]["modelName"],
                v["spec"]["version"],
                (v.get("status") or {}).get("stage") or "",
                condition(v, "ArtifactVerified").get("status", "Unknown"),
                metrics,
                age(v["metadata"].get("creationTimestamp")),
            ]
            + [
                v["spec"]["artifact"].get("format", ""),
                v["spec"]["artifact"].get("uri", ""),
                condition(v, "Ready").get("message", ""),
            ]
            * wide
        )
    return table(headers, rows)


def describe_version(v: Mapping[str, Any]) -> str:
    spec, status = v["spec"], v.get("status") or {}
    artifact = spec["artifact"]
    lines = [
        f"Name:        {v['metadata']['name']}",
        f"Namespace:   {v['metadata'].get('namespace')}",
        f"Model:       {spec['modelName']} v{spec['version']}",
        f"Stage:       {status.get('stage') or '-'}",
        f"Artifact:    {artifact['uri']}",
        f"  sha256:    {artifact['sha256']}",
        f"  format:    {artifact.get('format', '-')}",
    ]
    if spec.get("description"):
        lines.append(f"Description: {spec['description']}")
    for title, values in (
        ("Metrics", spec.get("metrics")),
        ("Hyperparameters", spec.get("hyperparameters")),
        ("Lineage", spec.get("lineage")),
    ):
        if values:
            lines.append(f"{title}:")
            lines += [f"  {k}: {val}" for k, val in values.items()]
    if verified := status.get("artifact"):
        lines.append(f"Verified:    {verified['method']} at {verified['verifiedTime']} (etag {verified.get('etag')})")
    lines.append("Conditions:")
    lines += [
        f"  {c['type']}={c['status']} {c.get('reason', '')}: {c.get('message', '')}"
        for c in status.get("conditions") or []
    ]
    return "\n".join(lines)


def history(versions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    entries = [
        {
            "time": h["time"],
            "version": v["spec"]["version"],
            "stage": h["stage"] or "(none)",
            "promotion": h.get("promotion", ""),
            "approvedBy": h.get("approvedBy", []),
        }
        for v in versions
        for h in (v.get("status") or {}).get("stageHistory") or []
    ]
    return sorted(entries, key=lambda e: e["time"])  # stable: a version's own entries keep their order


def history_table(entries: Sequence[Mapping[str, Any]]) -> str:
    return table(
        ["TIME", "VERSION", "STAGE", "PROMOTION", "APPROVED BY"],
        [[e["time"], e["version"], e["stage"], e["promotion"], ",".join(e["approvedBy"])] for e in entries],
    )


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def held_at(entries: Sequence[Mapping[str, Any]], at: str, reasons: Mapping[str, str]) -> list[dict[str, Any]]:
    """What held each stage at `at`: each version's last stage change up to then (point in time,
    from stageHistory), with the promotion that made it, its approvers and its reason."""
    moment = _instant(at)
    last: dict[int, Mapping[str, Any]] = {}
    for entry in entries:  # sorted by time
        if _instant(entry["time"]) <= moment:
            last[entry["version"]] = entry
    held = [
        {**entry, "since": entry["time"], "reason": reasons.get(entry["promotion"], "")}
        for entry in last.values()
        if entry["stage"] != "(none)"
    ]
    order = DISPLAY_ORDER
    return sorted(held, key=lambda e: (order.get(e["stage"], 3), -e["version"]))


def held_at_table(rows: Sequence[Mapping[str, Any]]) -> str:
    return table(
        ["STAGE", "VERSION", "SINCE", "PROMOTION", "APPROVED BY", "REASON"],
        [[r["stage"], r["version"], r["since"], r["promotion"], ",".join(r["approvedBy"]), r["reason"]] for r in rows],
    )


def diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for section in ("metrics", "hyperparameters", "lineage"):
        left, right = a["spec"].get(section) or {}, b["spec"].get(section) or {}
        for key in sorted(set(left) | set(right)):
            rows.append(
                {
                    "section": section,
                    "key": key,
                    "a": left.get(key),
                    "b": right.get(key),
                    "changed": left.get(key) != right.get(key),
                }
            )
    return rows


def diff_table(rows: Sequence[Mapping[str, Any]], a: int, b: int) -> str:
    return table(
        ["SECTION", "KEY", f"v{a}", f"v{b}", ""],
        [[r["section"], r["key"], r["a"], r["b"], "*" if r["changed"] else ""] for r in rows],
    )


def lineage_chain(versions: Sequence[Mapping[str, Any]], version: int) -> list[dict[str, Any]]:
    """The version, its parent, its parent's parent ... (stops at a missing parent or a cycle)."""
    by_version = {v["spec"]["version"]: v for v in versions}
    chain, seen, current = [], set(), version
    while current is not None and current not in seen:
        seen.add(current)
        found = by_version.get(current)
        if found is None:
            chain.append({"version": current, "missing": True})
            break
        lineage = found["spec"].get("lineage") or {}
        chain.append({"version": current, "name": found["metadata"]["name"], "lineage": lineage})
        current = lineage.get("parentVersion")
    return chain


def lineage_tree(model: str, chain: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for depth, node in enumerate(chain):
        indent = "    " * depth + ("└── " if depth else "")
        if node.get("missing"):
            lines.append(f"{indent}{model} v{node['version']} (not registered)")
            continue
        lineage = node["lineage"]
        lines.append(f"{indent}{model} v{node['version']} ({node['name']})")
        pad = "    " * (depth + 1)
        for key in ("runId", "experimentName", "codeCommit"):
            if lineage.get(key):
                lines.append(f"{pad}{key}: {lineage[key]}")
        if lineage.get("trainingDataUri"):
            data = lineage["trainingDataUri"]
            if lineage.get("trainingDataSha256"):
                data += f" (sha256 {lineage['trainingDataSha256'][:12]}…)"
            lines.append(f"{pad}training data: {data}")
    return "\n".join(lines)


def promotion_status(p: Mapping[str, Any]) -> str:
    status = p.get("status") or {}
    succeeded = condition(p, "Succeeded")
    lines = [
        f"Promotion:  {p['metadata']['name']}: {p['spec']['modelName']} v{p['spec']['version']} -> "
        f"{p['spec']['targetStage']}",
        f"Status:     {succeeded.get('reason', 'Pending')}: {succeeded.get('message', '')}",
        f"Approvals:  {status.get('approvalSummary', '?')} "
        + ", ".join(f"{a['user']} ({a.get('via')})" for a in status.get("approvals") or []),
    ]
    if status.get("requestedBy"):
        lines.append(f"Requested by: {status['requestedBy']}")
    for metric, values in (status.get("comparison") or {}).items():
        lines.append(f"  {metric}: {values['candidate']} vs {values['current']} (delta {values['delta']:+g})")
    for d in (status.get("rollout") or {}).get("deployments") or []:
        lines.append(
            f"{d.get('kind', 'Deployment')} {d['name']}: updated={d.get('updated')} available={d.get('available')}"
        )
    return "\n".join(lines)


def resolved(found: Resolved, output: str) -> str:
    if output == "uri":
        return found.uri
    if output == "env":
        # KEY=value lines, read literally by $GITHUB_ENV, docker --env-file and `modelreg fetch --from-env`
        # (values were checked free of line breaks when resolved)
        return "\n".join(f"{key}={value}" for key, value in found.env().items())
    return dump(found.as_dict(), output)
