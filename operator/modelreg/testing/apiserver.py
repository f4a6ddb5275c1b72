"""An emulated Kubernetes API server: kmock's KubernetesEmulator plus the API-server
semantics an operator relies on (see docs/decisions.md, "API emulator").

Added on top of kmock 0.8 (pinned: this module uses its request-handling seams):
uid, creationTimestamp, generation (bumped on spec changes), a global resourceVersion
bumped on every write, generateName, 409 on a stale resourceVersion, 422 on a failed
JSON-patch `test` or on a custom resource the CRD's schema or CEL rules reject,
status-subresource isolation, `kind` on lists, server-side Tables from a CRD's printer
columns, a lossless list-to-watch hand-over and a bounded request log. Every request is
authenticated (bearer token; anonymous refused with 401) and authorized from the stored RBAC
(403), impersonation included, as an API server does.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import copy
import secrets
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp.web
import jsonpatch
import kmock
from kmock._internal import rendering  # the Request type handed to _handle()

from modelreg.domain.merge import merge_patch
from modelreg.testing import openapi
from modelreg.testing.admission import AdmissionChain, Rejected
from modelreg.testing.rbac import (
    Attributes,
    Authorizer,
    Forbidden,
    authorize,
    impersonate,
    request_info,
    service_account_groups,
)
from modelreg.testing.tables import render_table
from modelreg.testing.validation import CRDValidator

ADMIN = "admin"  # the user of `emulator-token-admin`, in system:masters
# Bodies kubectl sends for built-in kinds unless told the server takes JSON only.
_BINARY_CONTENT_TYPES = {"application/vnd.kubernetes.protobuf", "application/cbor"}
_RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
# Who the request being served acts as (after impersonation): admission and SelfSubjectReview ask.
_ACTING: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("acting_user")
_REQUEST_LOG_LIMIT = 20  # kmock matches each request it serves against the whole log: keep it short


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_REASONS = {401: "Unauthorized", 403: "Forbidden", 429: "TooManyRequests", 503: "ServiceUnavailable"}


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


# kube-apiserver reads request bodies up to 3 MiB; aiohttp stops at 1 MiB (a 413 where the API
# server answers what its schema says of an object that large).
MAX_REQUEST_BYTES = 3 * 1024 * 1024


class ApiServerEmulator(kmock.KubernetesEmulator):
    """Use as `async with ApiServerEmulator() as api, kmock.Server(api) as server:`."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._validators: dict[Any, CRDValidator] = {}
        self._crd_schemas: dict[Any, dict[str, Any] | None] = {}
        self._status_subresource: set[Any] = set()
        self._printer_columns: dict[Any, list[dict[str, Any]]] = {}
        self._kinds: dict[Any, str] = {}
        self._resource_version = 0
        self._by_kind: dict[str, list[dict[str, Any]]] = {}
        # Keys stored per resource: lists, watches and per-kind lookups need not scan the whole store.
        self._keys: dict[Any, dict[tuple[Any, Any, Any], None]] = {}
        self.requests_served = 0
        # (HTTP method, plural) -> (status, message): a refusal a test stages (RBAC, an outage)
        self.refusals: dict[tuple[str, str], tuple[int, str]] = {}
        # (HTTP method or "*", plural) -> seconds each such request waits before it is served: a slow
        # (or, with a long wait, silent) API server
        self.delays: dict[tuple[str, str], float] = {}
        self.admission = AdmissionChain(self._stored_kind)
        self._authorizer_cache: tuple[tuple[int, ...], Authorizer] | None = None
        self.resources.load_bundled()
        # Leases (leader election of a second replica) are built in on every API server.
        self.resources["coordination.k8s.io/v1/leases"] = kmock.ResourceInfo(
            kind="Lease",
            singular="lease",
            namespaced=True,
            verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
            shortnames=set(),
            categories=set(),
            subresources=set(),
        )
        for resource in self.resources:
            info = self.resources[resource]
            self._kinds[resource] = info.kind
            if "status" in info.subresources:
                self._status_subresource.add(resource)

    # -- set-up -----------------------------------------------------------------------------
    def install_crd(self, crd: dict[str, Any]) -> None:
        spec, names = crd["spec"], crd["spec"]["names"]
        stored = copy.deepcopy(crd)  # `kubectl get crd` lists it, as on a cluster
        stored["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        crds = kmock.resource("apiextensions.k8s.io/v1/customresourcedefinitions")
        self._bump(crds, stored)
        self._store((crds, None, crd["metadata"]["name"]), stored)
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
            self._crd_schemas[resource] = (version.get("schema") or {}).get("openAPIV3Schema")
            self._printer_columns[resource] = version.get("additionalPrinterColumns", [])
            self._kinds[resource] = names["kind"]
            if "status" in version.get("subresources", {}):
                self._status_subresource.add(resource)

    # -- request handling -------------------------------------------------------------------
    async def _handle(self, request: rendering.Request) -> Any:
        self.requests_served += 1  # benchmarks: API requests per object
        del self._requests[:-_REQUEST_LOG_LIMIT]
        writes = (kmock.action.CREATE, kmock.action.UPDATE, kmock.action.DELETE)
        try:
            plural = request.resource.plural if request.resource is not None else None
            delay = self.delays.get((request.method.value, plural or "")) or self.delays.get(("*", plural or ""))
            if delay:
                await asyncio.sleep(delay)
            if (refusal := self.refusals.get((request.method.value, plural or ""))) is not None:
                raise ApiError(refusal[0], _REASONS.get(refusal[0], "InternalError"), refusal[1])
            if request.url.path.startswith("/openapi/"):
                return self._serve_openapi(request.url.path)
            if request.resource is not None and request.resource.plural == "selfsubjectreviews":
                return aiohttp.web.json_response(self._whoami(request), status=201)
            if request.resource is not None and request.resource.plural == "subjectaccessreviews":
                return aiohttp.web.json_response(self._review_access(request.data), status=201)
            if request.resource is not None and request.action in writes and (request.name or request.data):
                # Served here, not by KubernetesEmulator's own (semantics-free) write.
                status, result = await self._write(request)
                return aiohttp.web.json_response(result, status=status)
            if request.resource is not None and request.resource.plural and request.action == kmock.action.LIST:
                return aiohttp.web.json_response(await self._list(request))
            return await super()._handle(request)
        except (ApiError, Rejected) as exc:
            return await self._render_error(kmock.KubernetesError(exc.status, exc.reason, exc.message, {}))
        except kmock.KubernetesError as exc:  # e.g. a 404 on fetch: an answer, not a server fault
            return await self._render_error(exc)

    def _openapi_kinds(self) -> list[openapi.Kind]:
        kinds = []
        for resource in self.resources:
            info = self.resources[resource]
            if "/" in (resource.plural or "") or not info.kind:
                continue  # subresources
            kinds.append(
                openapi.Kind(
                    resource.group or "",
                    resource.version or "",
                    info.kind,
                    resource.plural,
                    bool(info.namespaced),
                    self._crd_schemas.get(resource),
                )
            )
        return kinds

    def _serve_openapi(self, path: str) -> aiohttp.web.Response:
        kinds = self._openapi_kinds()
        if path == "/openapi/v3":
            document: dict[str, Any] | None = openapi.v3_index(kinds)
        elif path.startswith("/openapi/v3/"):
            document = openapi.v3_document(kinds, path.removeprefix("/openapi/v3/"))
        elif path == "/openapi/v2":
            document = openapi.v2_document(kinds)
        else:
            document = None
        if document is None:
            return aiohttp.web.json_response(
                {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404},
                status=404,
            )
        return aiohttp.web.json_response(document)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """Authentication and authorization come first, as on an API server: before the body is
        read (kmock decodes it as text, which a protobuf body is not)."""
        try:
            _ACTING.set(self._authenticate_and_authorize(raw_request))
            if raw_request.content_type in _BINARY_CONTENT_TYPES:  # JSON only: a clear 415, not a 500
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: application/json",
                )
        except ApiError as exc:
            # A Status as the API server writes it (kmock's would carry the emulator's traceback).
            status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
            body = {**status, "message": exc.message, "reason": exc.reason, "code": exc.status}
            return aiohttp.web.json_response(body, status=exc.status)
        return await super().__call__(raw_request.clone(client_max_size=MAX_REQUEST_BYTES))

    @staticmethod
    def _authenticate(headers: Mapping[str, str]) -> dict[str, Any]:
        """Authentication, emulated: the bearer token `emulator-token-<user>` is user <user>;
        `emulator-token-admin` is also in `system:masters`. Anything else is refused (401), as
        an API server started with --anonymous-auth=false does."""
        token = headers.get("Authorization", "").removeprefix("Bearer ").strip()
        user = token.removeprefix("emulator-token-")
        if not token.startswith("emulator-token-") or not user:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        groups = [*service_account_groups(user), "system:authenticated", *(["system:masters"] if user == ADMIN else [])]
        return {"username": user, "groups": groups}

    def _authorizer(self) -> Authorizer:
        stored = [self._stored_kind(kind) for kind in _RBAC_KINDS]
        identity = tuple(id(objects) for objects in stored)  # _stored_kind keeps a list until a write of its kind
        if self._authorizer_cache is None or self._authorizer_cache[0] != identity:
            self._authorizer_cache = (identity, Authorizer(dict(zip(_RBAC_KINDS, stored, strict=True))))
        return self._authorizer_cache[1]

    def _authenticate_and_authorize(self, raw: aiohttp.web.BaseRequest) -> dict[str, Any]:
        """The user the request acts as, once it is authenticated, its impersonation allowed, and
        what it asks allowed by RBAC; else ApiError 401 or 403."""
        user = self._authenticate(raw.headers)
        authorizer = self._authorizer()
        try:
            # every header, a repeated Impersonate-Group included
            user = dict(impersonate(authorizer, user, raw.headers.items()))
            authorize(authorizer, user, request_info(raw.method, raw.path, raw.query))
        except Forbidden as exc:
            raise ApiError(403, "Forbidden", exc.message) from None
        return user

    @staticmethod
    def _user(request: rendering.Request) -> dict[str, Any]:
        """The user the request being served acts as (set by _handle)."""
        return _ACTING.get()

    def _whoami(self, request: rendering.Request) -> dict[str, Any]:
        return {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "SelfSubjectReview",
            "status": {"userInfo": self._user(request)},
        }

    def _stored_kind(self, kind: str) -> list[dict[str, Any]]:
        # Asked on every write (webhook configurations) and review (RBAC): kept per kind until a
        # write of that kind, so the cost does not grow with the number of ModelVersions stored.
        if kind not in self._by_kind:
            self._by_kind[kind] = [
                obj.raw
                for resource in [r for r, k in self._kinds.items() if k == kind]
                for _, obj in self._stored(resource)
            ]
        return self._by_kind[kind]

    def _store(self, key: tuple[Any, Any, Any], obj: dict[str, Any]) -> None:
        if key in self._objects:
            self._objects[key].history.append(copy.deepcopy(obj))
        else:
            self._objects[key] = copy.deepcopy(obj)
            self._keys.setdefault(key[0], {})[key] = None

    def _stored(self, resource: Any) -> list[tuple[tuple[Any, Any, Any], Any]]:
        """(key, kmock object) of every live object of one resource."""
        found = ((key, self._objects[key]) for key in self._keys.get(resource, ()))
        return [(key, obj) for key, obj in found if not obj.deleted]

    def _review_access(self, review: dict[str, Any]) -> dict[str, Any]:
        spec = review.get("spec") or {}
        attrs = spec.get("resourceAttributes") or {}
        allowed = self._authorizer().allowed(
            Attributes(
                user=spec.get("user") or "",
                groups=tuple(spec.get("groups") or ()),
                verb=attrs.get("verb", ""),
                group=attrs.get("group", ""),
                resource=attrs.get("resource", ""),
                subresource=attrs.get("subresource", ""),
                name=attrs.get("name", ""),
                namespace=attrs.get("namespace", ""),
            )
        )
        return {**review, "status": {"allowed": allowed, **({} if allowed else {"reason": "no RBAC rule allows it"})}}

    def _bump(self, resource: Any, obj: dict[str, Any]) -> None:
        # By the resource's kind, not the body's: a body may omit `kind`, and clearing every
        # kind on each such write made the next write scan the whole store.
        kind = self._kinds.get(resource) or obj.get("kind")
        if kind:
            self._by_kind.pop(kind, None)
        else:
            self._by_kind.clear()
        self._resource_version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._resource_version)

    async def _publish(self, resource: Any, type_: str, obj: dict[str, Any]) -> None:
        await self._buses[resource].put({"type": type_, "object": copy.deepcopy(obj)})

    async def _write(self, request: rendering.Request) -> tuple[int, dict[str, Any]]:
        """Propose under the lock, admit outside it (webhooks call back into this API), then
        commit under the lock if nothing was written meanwhile, as the API server's optimistic
        concurrency does; a concurrent write makes it start over."""
        key = (request.resource, request.namespace, request.name)
        if request.action == kmock.action.DELETE:
            async with self._lock:
                old = self._current(key)
            if not old["metadata"].get("deletionTimestamp"):  # admitted once: finalizers only delay it
                await self._admit(request, old, None)
            async with self._lock:
                return 200, await self._delete(request)
        for _ in range(20):
            async with self._lock:
                old = self._current(key) if request.action == kmock.action.UPDATE else None
                proposed = self._propose_create(request) if old is None else self._propose_patch(request, old)
            admitted = await self._admit(request, old, proposed)
            async with self._lock:
                if old is None:
                    return 201, await self._create(request, admitted)
                if self._current(key)["metadata"].get("resourceVersion") == old["metadata"].get("resourceVersion"):
                    return 200, await self._commit_patch(request, key, old, admitted)
        raise ApiError(409, "Conflict", f'{request.resource.plural} "{request.name}": too many concurrent writes')

    async def _admit(
        self, request: rendering.Request, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> dict[str, Any]:
        resource = request.resource
        meta = (new if new is not None else old or {}).get("metadata") or {}

        def identify(obj: dict[str, Any]) -> None:  # the API server assigns these between the phases
            if old is None:
                obj.setdefault("metadata", {}).update(uid=str(uuid.uuid4()), creationTimestamp=_now())
            # and checks the schema before validating webhooks see the object (checked again at commit)
            self._validate(resource, obj, old)

        return await self.admission.review(
            group=resource.group or "",
            version=resource.version or "",
            kind=self._kinds.get(resource, ""),
            plural=resource.plural,
            subresource=request.subresource,
            operation="DELETE" if new is None else "CREATE" if old is None else "UPDATE",
            namespace=meta.get("namespace"),
            name=meta.get("name"),
            user=self._user(request),
            old=old,
            new=new,
            before_validation=identify,
        )

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
        if resource.plural == "secrets" and not resource.group and "stringData" in obj:
            # The API server folds the write-only stringData into data (base64), as kubectl expects.
            encoded = {k: base64.b64encode(str(v).encode()).decode() for k, v in (obj.pop("stringData") or {}).items()}
            obj["data"] = {**(obj.get("data") or {}), **encoded}
        if (where := _out_of_int64(obj)) is not None:  # the API server's JSON decoder refuses these: 400
            raise ApiError(400, "BadRequest", f"the number at {where} does not fit a 64-bit integer")
        validator = self._validators.get(resource)
        if validator is not None and (errors := validator.errors(obj, old)):
            raise ApiError(422, "Invalid", validator.message(obj, errors))

    def _propose_create(self, request: rendering.Request) -> dict[str, Any]:
        obj = copy.deepcopy(request.data)
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = request.namespace or meta.get("namespace")
        if not meta.get("name") and meta.get("generateName"):
            # the API server's alphabet, and its retries on a taken name (RetryGenerateName, 1.31+)
            for _ in range(8):
                meta["name"] = meta["generateName"] + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
                if not self._taken((request.resource, meta["namespace"], meta["name"])):
                    break
        self._exists_not((request.resource, meta["namespace"], meta.get("name")))
        if request.resource in self._status_subresource:
            obj.pop("status", None)  # status is written through the /status subresource only
        for field in ("deletionTimestamp", "resourceVersion", "uid", "creationTimestamp", "generation"):
            meta.pop(field, None)
        return obj

    def _taken(self, key: tuple[Any, Any, Any]) -> bool:
        return key in self._objects and not self._objects[key].deleted

    def _exists_not(self, key: tuple[Any, Any, Any]) -> None:
        if self._taken(key):
            raise ApiError(409, "AlreadyExists", f'{key[0].plural} "{key[2]}" already exists')

    async def _create(self, request: rendering.Request, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        key = (request.resource, meta["namespace"], meta.get("name"))
        self._exists_not(key)
        self._validate(request.resource, obj)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta["generation"] = 1
        self._bump(request.resource, obj)
        self._store(key, obj)
        await self._publish(request.resource, "ADDED", obj)
        return obj

    def _propose_patch(self, request: rendering.Request, old: dict[str, Any]) -> dict[str, Any]:
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
        return self._isolate(request, old, patched)

    async def _commit_patch(
        self, request: rendering.Request, key: tuple[Any, Any, Any], old: dict[str, Any], new: dict[str, Any]
    ) -> dict[str, Any]:
        new = self._isolate(request, old, new)  # what a mutating webhook patched is held to the same rules
        if new == old:
            return old  # a no-op write changes nothing, not even resourceVersion
        if _spec_part(new) != _spec_part(old):
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        self._validate(request.resource, new, old)
        self._bump(request.resource, new)
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
                self._bump(request.resource, obj)
                self._objects[key].history.append(obj)
                await self._publish(request.resource, "MODIFIED", obj)
            return obj
        self._remove(key, obj)
        await self._publish(request.resource, "DELETED", obj)
        return obj

    def _remove(self, key: tuple[Any, Any, Any], obj: dict[str, Any]) -> None:
        self._bump(key[0], obj)
        self._objects[key].history.append(obj)
        self._objects[key].delete()

    async def delete_unseen(self, resource: Any, namespace: str, name: str) -> None:
        """Delete an object without a watch event: what a watch that lost its place (410 Gone) and
        re-listed never reports. Tests use it to play a watch gap."""
        async with self._lock:
            key = (resource, namespace, name)
            self._remove(key, self._current(key))

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
            for (_, namespace, name), obj in self._stored(request.resource)
            if (request.namespace is None or namespace == request.namespace)
            and (request.name is None or name == request.name)
        ]

    async def _list(self, request: rendering.Request) -> dict[str, Any]:
        if request.resource not in self._kinds and request.resource not in set(self._get_resources()):
            raise ApiError(404, "NotFound", f"the server could not find the requested resource {request.resource}")
        async with self._lock:
            if request.resource == EVENTS_V1:  # one store of Events, served by both APIs as on a cluster
                core = kmock.resource("v1/events")
                items = [
                    _as_events_v1(copy.deepcopy(o.raw))
                    for (_, ns, _), o in self._stored(core)
                    if request.namespace is None or ns == request.namespace
                ]
            else:
                items = copy.deepcopy(self._matching(request))
            resource_version = str(self._resource_version)
        items.sort(key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))
        for selector in filter(None, [request.params.get("labelSelector")]):
            items = [o for o in items if _labels_match(o, selector)]
        for selector in filter(None, [request.params.get("fieldSelector")]):
            items = [o for o in items if _fields_match(o, selector)]
        kind = self._kinds.get(request.resource) or request.resource.plural.capitalize()
        if "as=Table" in request.headers.get("Accept", ""):
            columns = (
                EVENT_COLUMNS if request.resource == EVENTS_V1 else self._printer_columns.get(request.resource, [])
            )
            return render_table(items, columns, resource_version)
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


EVENTS_V1 = kmock.resource("events.k8s.io/v1/events")
EVENT_COLUMNS = [  # what `kubectl get events` shows from a real API server's Table
    {"name": "Last Seen", "type": "date", "jsonPath": ".deprecatedLastTimestamp"},
    {"name": "Type", "type": "string", "jsonPath": ".type"},
    {"name": "Reason", "type": "string", "jsonPath": ".reason"},
    {"name": "Object", "type": "string", "jsonPath": ".regarding.name"},
    {"name": "Message", "type": "string", "jsonPath": ".note"},
]


def _micro_time(timestamp: str | None) -> str:
    return (timestamp or _now()).replace("Z", ".000000Z") if "." not in (timestamp or "") else timestamp or ""


def _as_events_v1(event: dict[str, Any]) -> dict[str, Any]:
    """A core/v1 Event as events.k8s.io/v1 serves it."""
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": event.get("metadata") or {},
        "eventTime": event.get("eventTime")
        or _micro_time(event.get("firstTimestamp") or (event.get("metadata") or {}).get("creationTimestamp")),
        "reportingController": event.get("reportingComponent") or (event.get("source") or {}).get("component"),
        "reportingInstance": event.get("reportingInstance") or "",
        "action": event.get("action") or event.get("reason"),
        "reason": event.get("reason"),
        "regarding": event.get("involvedObject") or {},
        "note": event.get("message"),
        "type": event.get("type"),
        "deprecatedCount": event.get("count"),
        "deprecatedFirstTimestamp": event.get("firstTimestamp"),
        "deprecatedLastTimestamp": event.get("lastTimestamp") or event.get("firstTimestamp"),
        "deprecatedSource": event.get("source"),
    }


def _fields_match(obj: dict[str, Any], selector: str) -> bool:
    """Field selectors as the API server takes them: `a.b=v`, `a.b==v`, `a.b!=v`, comma-joined."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        negate = "!=" in term
        path, _, wanted = term.replace("!=", "=").replace("==", "=").partition("=")
        value: Any = obj
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        actual = "" if value is None else str(value)
        if (actual == wanted.strip()) == negate:
            return False
    return True


def _out_of_int64(value: Any, path: str = "") -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if -(2**63) <= value < 2**63 else (path or ".")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if (found := _out_of_int64(item, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]")) is not None:
            return found
    return None


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
