"""An emulated Kubernetes API server: kmock's KubernetesEmulator plus the API-server
semantics an operator relies on (see docs/decisions.md, "API emulator").

Added on top of kmock 0.8 (pinned: this module uses its request-handling seams):
uid, creationTimestamp, generation (bumped on spec changes), a global resourceVersion
bumped on every write, generateName, 409 on a stale resourceVersion, 422 on a failed
JSON-patch `test` or on a custom resource the CRD's schema or CEL rules reject,
status-subresource isolation, `kind` on lists, server-side Tables from a CRD's printer
columns, a lossless list-to-watch hand-over and a bounded request log.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp.web
import jsonpatch
import kmock
from kmock._internal import rendering  # the Request type handed to _handle()

from modelreg.domain.merge import merge_patch
from modelreg.testing.tables import render_table
from modelreg.testing.validation import CRDValidator

_REQUEST_LOG_LIMIT = 200  # kmock matches each request against the whole log: keep it short


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


class ApiServerEmulator(kmock.KubernetesEmulator):
    """Use as `async with ApiServerEmulator() as api, kmock.Server(api) as server:`."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._validators: dict[Any, CRDValidator] = {}
        self._status_subresource: set[Any] = set()
        self._printer_columns: dict[Any, list[dict[str, Any]]] = {}
        self._kinds: dict[Any, str] = {}
        self._resource_version = 0
        self.resources.load_bundled()
        for resource in self.resources:
            info = self.resources[resource]
            self._kinds[resource] = info.kind
            if "status" in info.subresources:
                self._status_subresource.add(resource)

    # -- set-up -----------------------------------------------------------------------------
    def install_crd(self, crd: dict[str, Any]) -> None:
        spec, names = crd["spec"], crd["spec"]["names"]
        for version in (v for v in spec["versions"] if v.get("served")):
            key = f"{spec['group']}/{version['name']}/{names['plural']}"
            self.resources[key] = kmock.ResourceInfo(
                kind=names["kind"],
                singular=names.get("singular"),
                namespaced=spec["scope"] == "Namespaced",
                verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
                shortnames=set(names.get("shortNames", [])),
                categories=set(names.get("categories", [])),
                subresources=set(version.get("subresources", {})),
            )
            resource = kmock.resource(key)
            self._validators[resource] = CRDValidator(crd, version["name"])
            self._printer_columns[resource] = version.get("additionalPrinterColumns", [])
            self._kinds[resource] = names["kind"]
            if "status" in version.get("subresources", {}):
                self._status_subresource.add(resource)

    # -- request handling -------------------------------------------------------------------
    async def _handle(self, request: rendering.Request) -> Any:
        writes = (kmock.action.CREATE, kmock.action.UPDATE, kmock.action.DELETE)
        try:
            if request.resource is not None and request.resource.plural == "selfsubjectreviews":
                return aiohttp.web.json_response(self._whoami(request), status=201)
            if request.resource is not None and request.action in writes and (request.name or request.data):
                # Served here, not by KubernetesEmulator's own (semantics-free) write.
                async with self._lock:
                    status, result = await self._write(request)
                del self._requests[:-_REQUEST_LOG_LIMIT]
                return aiohttp.web.json_response(result, status=status)
            if request.resource is not None and request.resource.plural and request.action == kmock.action.LIST:
                return aiohttp.web.json_response(await self._list(request))
            return await super()._handle(request)
        except ApiError as exc:
            return await self._render_error(kmock.KubernetesError(exc.status, exc.reason, exc.message, {}))
        except kmock.KubernetesError as exc:  # e.g. a 404 on fetch: an answer, not a server fault
            return await self._render_error(exc)

    @staticmethod
    def _whoami(request: rendering.Request) -> dict[str, Any]:
        """Authentication, emulated: the bearer token `emulator-token-<user>` is user <user>."""
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        user = token.removeprefix("emulator-token-") if token.startswith("emulator-token-") else "system:anonymous"
        return {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "SelfSubjectReview",
            "status": {"userInfo": {"username": user, "groups": ["system:authenticated"]}},
        }

    def _bump(self, obj: dict[str, Any]) -> None:
        self._resource_version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._resource_version)

    async def _publish(self, resource: Any, type_: str, obj: dict[str, Any]) -> None:
        await self._buses[resource].put({"type": type_, "object": copy.deepcopy(obj)})

    async def _write(self, request: rendering.Request) -> tuple[int, dict[str, Any]]:
        if request.action == kmock.action.CREATE:
            return 201, await self._create(request)
        if request.action == kmock.action.UPDATE:
            return 200, await self._patch(request)
        return 200, await self._delete(request)

    def _current(self, key: tuple[Any, Any, Any]) -> dict[str, Any]:
        if key not in self._objects or self._objects[key].deleted:
            resource = key[0]
            qualified = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
            raise ApiError(404, "NotFound", f'{qualified} "{key[2]}" not found')  # the API server's wording
        return copy.deepcopy(self._objects[key].raw)

    async def _serve_fetch(self, request: rendering.Request) -> Any:
        async with self._lock:
            try:
                return self._current((request.resource, request.namespace, request.name))
            except ApiError as exc:
                raise kmock.KubernetesError(exc.status, exc.reason, exc.message, {}) from None

    def _validate(self, resource: Any, obj: dict[str, Any], old: dict[str, Any] | None = None) -> None:
        validator = self._validators.get(resource)
        if validator is not None and (errors := validator.errors(obj, old)):
            raise ApiError(422, "Invalid", validator.message(obj, errors))

    async def _create(self, request: rendering.Request) -> dict[str, Any]:
        obj = copy.deepcopy(request.data)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        meta["namespace"] = request.namespace or meta.get("namespace")
        key = (request.resource, meta["namespace"], meta.get("name"))
        if key in self._objects and not self._objects[key].deleted:
            raise ApiError(409, "AlreadyExists", f'{request.resource.plural} "{meta.get("name")}" already exists')
        if request.resource in self._status_subresource:
            obj.pop("status", None)  # status is written through the /status subresource only
        self._validate(request.resource, obj)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        for field in ("deletionTimestamp", "resourceVersion"):
            meta.pop(field, None)
        self._bump(obj)
        if key in self._objects:
            self._objects[key].history.append(copy.deepcopy(obj))
        else:
            self._objects[key] = copy.deepcopy(obj)
        await self._publish(request.resource, "ADDED", obj)
        return obj

    async def _patch(self, request: rendering.Request) -> dict[str, Any]:
        key = (request.resource, request.namespace, request.name)
        old = self._current(key)
        content_type = request.headers.get("Content-Type", "").split(";")[0]
        body = request.data
        try:
            if content_type == "application/json-patch+json":
                patched = jsonpatch.apply_patch(old, body, in_place=False)
            elif content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                # Strategic merge is served as a merge patch (lists replaced whole): the operator
                # therefore never relies on it (docs/decisions.md).
                expected = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
                if expected and expected != old["metadata"].get("resourceVersion"):
                    raise ApiError(
                        409,
                        "Conflict",
                        f"Operation cannot be fulfilled on {request.resource.plural} "
                        f'"{request.name}": the object has been modified; please apply your changes '
                        "to the latest version and try again",
                    )
                patched = merge_patch(old, body)
            else:
                raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {content_type!r}")
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise ApiError(422, "Invalid", f"the JSON patch could not be applied: {exc}") from exc
        new = self._isolate(request, old, patched)
        if new == old:
            return old  # a no-op write changes nothing, not even resourceVersion
        if _spec_part(new) != _spec_part(old):
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        self._validate(request.resource, new, old)
        self._bump(new)
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._objects[key].history.append(new)
            self._objects[key].delete()
            await self._publish(request.resource, "DELETED", new)
        else:
            self._objects[key].history.append(new)
            await self._publish(request.resource, "MODIFIED", new)
        return new

    def _isolate(self, request: rendering.Request, old: dict[str, Any], patched: dict[str, Any]) -> dict[str, Any]:
        """The status subresource writes only status; the main resource never does (if split)."""
        if request.subresource == "status":
            new = copy.deepcopy(old)
            if "status" in patched:
                new["status"] = patched["status"]
            else:
                new.pop("status", None)
        elif request.resource in self._status_subresource:
            new = copy.deepcopy(patched)
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        else:
            new = copy.deepcopy(patched)
        for field in ("uid", "creationTimestamp", "name", "namespace", "generation", "deletionTimestamp"):
            if field in old["metadata"]:
                new.setdefault("metadata", {})[field] = old["metadata"][field]
        return new

    async def _delete(self, request: rendering.Request) -> dict[str, Any]:
        key = (request.resource, request.namespace, request.name)
        obj = self._current(key)
        meta = obj["metadata"]
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = _now()
                self._bump(obj)
                self._objects[key].history.append(obj)
                await self._publish(request.resource, "MODIFIED", obj)
            return obj
        self._bump(obj)
        self._objects[key].history.append(obj)
        self._objects[key].delete()
        await self._publish(request.resource, "DELETED", obj)
        return obj

    # -- reading ----------------------------------------------------------------------------
    async def _serve_version(self, request: rendering.Request) -> Any:
        listing = await super()._serve_version(request)
        for entry in listing.get("resources", []):
            if "/" in entry["name"]:  # subresources have no short names or categories of their own
                entry.pop("shortNames", None)
                entry.pop("categories", None)
        return listing

    def _matching(self, request: rendering.Request) -> list[dict[str, Any]]:
        return [
            obj.raw
            for (resource, namespace, name), obj in self._objects.items()
            if resource == request.resource
            and not obj.deleted
            and (request.namespace is None or namespace == request.namespace)
            and (request.name is None or name == request.name)
        ]

    async def _list(self, request: rendering.Request) -> dict[str, Any]:
        if request.resource not in self._kinds and request.resource not in set(self._get_resources()):
            raise ApiError(404, "NotFound", f"the server could not find the requested resource {request.resource}")
        async with self._lock:
            items = copy.deepcopy(self._matching(request))
            resource_version = str(self._resource_version)
        items.sort(key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))
        for selector in filter(None, [request.params.get("labelSelector")]):
            items = [o for o in items if _labels_match(o, selector)]
        kind = self._kinds.get(request.resource) or request.resource.plural.capitalize()
        if "as=Table" in request.headers.get("Accept", ""):
            return render_table(items, self._printer_columns.get(request.resource, []), resource_version)
        group_version = (
            f"{request.resource.group}/{request.resource.version}"
            if request.resource.group
            else request.resource.version
        )
        return {
            "apiVersion": group_version,
            "kind": f"{kind}List",
            "metadata": {"resourceVersion": resource_version},
            "items": items,
        }

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[Any]:
        yield b""  # send the headers now, even if nothing happens for a while
        since = int(request.params.get("resourceVersion") or 0)
        bus = self._buses[request.resource]
        async with self._lock:  # subscribe under the lock that guards writes: no event is lost
            mark = await bus.mark()
            snapshot = [
                {"type": "ADDED", "object": copy.deepcopy(obj)}
                for obj in self._matching(request)
                if int(obj["metadata"].get("resourceVersion", 0)) > since
            ]
        try:
            for event in snapshot:
                yield event
            async for event in bus.stream(since=mark):
                meta = event.get("object", {}).get("metadata", {})
                if (request.namespace is None or meta.get("namespace") == request.namespace) and (
                    request.name is None or meta.get("name") == request.name
                ):
                    yield event
        finally:
            await bus.unmark(mark)


def _labels_match(obj: dict[str, Any], selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True
