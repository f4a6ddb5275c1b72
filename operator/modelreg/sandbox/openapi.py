"""OpenAPI documents for kubectl, built from what the emulator serves.

`kubectl apply` (validation on, its default) first asks whether the server validates fields
itself (the `fieldValidation` query parameter on each kind's PATCH, found through
`x-kubernetes-group-version-kind` in /openapi/v3, else /openapi/v2); where it does, kubectl
leaves validation to the server, which this emulator does from the CRDs' schemas and CEL rules.
The documents carry each CRD's schema as a component, as a real API server's do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    schema: dict[str, Any] | None = None  # a CRD's openAPIV3Schema

    @property
    def group_version_path(self) -> str:
        return f"apis/{self.group}/{self.version}" if self.group else f"api/{self.version}"

    @property
    def definition(self) -> str:
        return f"{self.group or 'core'}.{self.version}.{self.kind}"

    def paths(self) -> dict[str, Any]:
        gvk = {"group": self.group, "version": self.version, "kind": self.kind}
        base = f"/{self.group_version_path}/" + ("namespaces/{namespace}/" if self.namespaced else "")
        patch = {
            "operationId": f"patch{self.kind}",
            "x-kubernetes-group-version-kind": gvk,
            "x-kubernetes-action": "patch",
            "parameters": [
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}, "type": "string"},
                {"name": "dryRun", "in": "query", "schema": {"type": "string"}, "type": "string"},
            ],
            "responses": {"200": {"description": "OK"}},
        }
        create = {**patch, "operationId": f"create{self.kind}", "x-kubernetes-action": "post"}
        return {base + self.plural + "/{name}": {"patch": patch}, base + self.plural: {"post": create}}


def _schema(kind: Kind) -> dict[str, Any]:
    schema = dict(kind.schema or {"type": "object"})
    schema["x-kubernetes-group-version-kind"] = [{"group": kind.group, "version": kind.version, "kind": kind.kind}]
    return schema


def v3_index(kinds: Iterable[Kind]) -> dict[str, Any]:
    paths = {}
    for gv in sorted({k.group_version_path for k in kinds}):
        digest = hashlib.sha256(gv.encode()).hexdigest()[:16]
        paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
    return {"paths": paths}


def v3_document(kinds: Iterable[Kind], group_version_path: str) -> dict[str, Any] | None:
    chosen = [k for k in kinds if k.group_version_path == group_version_path]
    if not chosen:
        return None
    paths: dict[str, Any] = {}
    for kind in chosen:
        paths.update(kind.paths())
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (modelreg emulator)", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {k.definition: _schema(k) for k in chosen if k.schema}},
    }


def v2_document(kinds: Iterable[Kind]) -> dict[str, Any]:
    kinds = list(kinds)
    paths: dict[str, Any] = {}
    for kind in kinds:
        for path, operations in kind.paths().items():
            paths[path] = {
                verb: {**op, "parameters": [{k: v for k, v in p.items() if k != "schema"} for p in op["parameters"]]}
                for verb, op in operations.items()
            }
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes (modelreg emulator)", "version": "v1.33.0"},
        "paths": paths,
        "definitions": {},  # kubectl leaves validation to the server (fieldValidation), as above
    }
