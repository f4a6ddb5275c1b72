"""Server-side Tables (what `kubectl get` asks for) from a CRD's additionalPrinterColumns."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

# The JSONPath forms printer columns use here: .a.b, .a[0], .a[?(@.k=="v")].b
_STEP = re.compile(r'\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_-]+)==["\']([^"\']*)["\']\)\]')


def json_path(obj: Any, path: str) -> Any:
    values = [obj]
    for match in _STEP.finditer(path):
        field, index, filter_key, filter_value = match.groups()
        nxt: list[Any] = []
        for value in values:
            if field is not None and isinstance(value, dict) and field in value:
                nxt.append(value[field])
            elif index is not None and isinstance(value, list) and int(index) < len(value):
                nxt.append(value[int(index)])
            elif filter_key is not None and isinstance(value, list):
                nxt.extend(v for v in value if isinstance(v, dict) and str(v.get(filter_key)) == filter_value)
        values = nxt
    return values[0] if values else None


def human_age(timestamp: str, now: datetime | None = None) -> str:
    """Like kubectl's AGE: 45s, 3m, 2h, 5d."""
    then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _cell(obj: dict[str, Any], column: dict[str, Any]) -> Any:
    # a built-in kind's column may be computed (a CRD's is always a JSONPath)
    value = column["value"](obj) if "value" in column else json_path(obj, column["jsonPath"])
    if value is None:
        return None
    if column.get("type") == "date":
        return human_age(value)
    return value


def render_table(items: list[dict[str, Any]], columns: list[dict[str, Any]], resource_version: str) -> dict:
    if not columns:
        columns = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    # A CRD's Table starts with Name; a built-in kind (Events) may place its name column elsewhere.
    leading_name = not any(c.get("format") == "name" for c in columns)
    name = {"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}
    definitions = [name] * leading_name
    definitions += [
        {
            "name": c["name"],
            "type": "string" if c.get("type") == "date" else c.get("type", "string"),
            "format": c.get("format", ""),
            "description": c.get("description", ""),
            "priority": c.get("priority", 0),
        }
        for c in columns
    ]
    rows = [
        {
            "cells": [obj["metadata"]["name"]] * leading_name + [_cell(obj, c) for c in columns],
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]},
        }
        for obj in items
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }
