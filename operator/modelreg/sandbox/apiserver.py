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
import contextlib
import contextvars
import copy
import dataclasses
import hashlib
import hmac
import json
import logging
import re
import secrets
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp.web
import jsonpatch
import kmock
from kmock._internal import parsing, rendering  # the Request type handed to _handle()
from multidict import CIMultiDict

from modelreg.domain.merge import merge_patch
from modelreg.sandbox import openapi, protobuf
from modelreg.sandbox.admission import AdmissionChain, Rejected
from modelreg.sandbox.rbac import (
    Attributes,
    Authorizer,
    Forbidden,
    authorize,
    impersonate,
    request_info,
    service_account_groups,
)
from modelreg.sandbox.tables import render_table
from modelreg.sandbox.validation import CRDValidator

ADMIN = "admin"  # in system:masters
_TOKEN_PREFIX = "emulator-token-"
# What /version reports: kubectl on this machine is 1.32 (no skew warning), and the chart asks >= 1.28.
KUBERNETES_VERSION = (1, 32, 4)
# Bodies kubectl sends for built-in kinds unless told the server takes JSON only.
_BINARY_CONTENT_TYPES = {protobuf.CONTENT_TYPE, "application/cbor"}
_RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
# Who the request being served acts as (after impersonation): admission and SelfSubjectReview ask.
_ACTING: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("acting_user")
_REQUEST_LOG_LIMIT = 20  # kmock matches each request it serves against the whole log: keep it short

logger = logging.getLogger(__name__)


def bearer_token(key: bytes, user: str) -> str:
    """The emulator's bearer token of `user`: the name and a MAC under the run's key, so that
    knowing a name (the operator's, `admin`) is not being it."""
    mac = hmac.new(key, user.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{_TOKEN_PREFIX}{user}.{mac}"


_NO_SUCH_RESOURCE = "the server could not find the requested resource"  # the API server's words


def _status(code: int, reason: str, message: str, details: Any = None) -> aiohttp.web.Response:
    """A failure as the API server writes it: a Status (kmock's would carry the emulator's traceback)."""
    body = {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure"}
    body.update(code=code, reason=reason, message=message, **({"details": details} if details else {}))
    return aiohttp.web.json_response(body, status=code)


def _content_type(request: rendering.Request) -> str:
    return request.headers.get("Content-Type", "").split(";")[0].strip()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


APPLY_PATCH = "application/apply-patch+yaml"
_TOKEN_PATH = re.compile(r"/api/v1/namespaces/([^/]+)/serviceaccounts/([^/]+)/token")
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_REASONS = {401: "Unauthorized", 403: "Forbidden", 429: "TooManyRequests", 503: "ServiceUnavailable"}


_kmock_parse_path = parsing.parse_path


def _parse_path(path: str) -> parsing.ParsedPath:
    """kmock 0.8 reads /api/v1/namespaces[/NAME[/status]] as a namespace prefix (a 500 on the list,
    the object addressed as nothing): these paths name the Namespace objects themselves."""
    parts = path.strip("/").split("/")
    if len(parts) in (3, 4, 5) and parts[0] == "api" and parts[2] == "namespaces":
        name, subresource = [*parts[3:], None, None][:2]
        if subresource in (None, "status", "finalize"):
            return parsing.ParsedPath("", parts[1], "namespaces", None, name, subresource)
    return _kmock_parse_path(path)


_kmock_guess_k8s = parsing.guess_k8s


def _guess_k8s(k8s: parsing.ParsedPath, method: Any, query: dict[str, str]) -> Any:
    """kmock 0.8 takes a PUT for no action (a 404): it replaces the named object."""
    if k8s.group is not None and k8s.name is not None and method == kmock.method.PUT:
        return kmock.action.UPDATE
    return _kmock_guess_k8s(k8s, method, query)


# kmock is pinned (pyproject); its Request parser calls these names at request time
parsing.parse_path = _parse_path
parsing.guess_k8s = _guess_k8s


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
        self.token_key = secrets.token_bytes(32)  # per run: EmulatedCluster may set its own before serving
        # kube-apiserver answers /version/ too; the official Python client asks for it
        self.fallback["get /version/"] << self._serve_server_version
        self._validators: dict[Any, CRDValidator] = {}
        self._crd_schemas: dict[Any, dict[str, Any] | None] = {}
        self._status_subresource: set[Any] = set()
        self._printer_columns: dict[Any, list[dict[str, Any]]] = {}
        self._selectable_fields: dict[Any, set[str]] = {}
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
        for namespace in ("default", "kube-system", "kube-public", "kube-node-lease"):  # every cluster has them
            meta = {"name": namespace}
            self._seed(kmock.resource("v1/namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": meta})

    # -- set-up -----------------------------------------------------------------------------
    def _seed(self, resource: Any, obj: dict[str, Any]) -> None:
        """Store an object as the cluster's own set-up made it (no admission, no watch event)."""
        stored = copy.deepcopy(obj)
        stored["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        if resource.plural == "namespaces" and not resource.group:
            stored["status"] = {"phase": "Active"}
        self._bump(resource, stored)
        self._store((resource, stored["metadata"].get("namespace"), stored["metadata"]["name"]), stored)

    def install_crd(self, crd: dict[str, Any]) -> None:
        spec, names = crd["spec"], crd["spec"]["names"]
        # `kubectl get crd` lists it, as on a cluster
        self._seed(kmock.resource("apiextensions.k8s.io/v1/customresourcedefinitions"), crd)
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
            self._selectable_fields[resource] = {
                f["jsonPath"].lstrip(".") for f in version.get("selectableFields", []) if f.get("jsonPath")
            }
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
            if request.resource is not None and request.resource.plural == "selfsubjectrulesreviews":
                return aiohttp.web.json_response(self._review_rules(request), status=201)
            if request.method.value == "POST" and (token := _TOKEN_PATH.fullmatch(request.url.path)):
                return aiohttp.web.json_response(self._issue_token(request, *token.groups()), status=201)
            if request.resource is not None and request.resource.plural == "selfsubjectaccessreviews":
                # "may I?": the same review, of whoever asks (after impersonation)
                user = self._user(request)
                spec = {**(request.data.get("spec") or {}), "user": user["username"], "groups": user.get("groups")}
                return aiohttp.web.json_response(self._review_access({**request.data, "spec": spec}), status=201)
            if request.resource is not None and request.subresource and not self._serves(request):
                # e.g. modelversions/NAME/anything: not the object itself (nor a way around admission)
                raise ApiError(404, "NotFound", _NO_SUCH_RESOURCE)
            if request.resource is not None and request.resource.plural and request.action in writes:
                # Served here, every one, not by KubernetesEmulator's own (semantics-free) write.
                status, result = await self._write(request)
                return aiohttp.web.json_response(result, status=status)
            if request.method.value not in ("GET", "HEAD"):  # a write to no resource: nothing serves it
                raise ApiError(404, "NotFound", _NO_SUCH_RESOURCE)
            if request.resource is not None and request.resource.plural and request.action == kmock.action.LIST:
                return aiohttp.web.json_response(await self._list(request))
            if request.resource is not None and request.resource.plural and request.action == kmock.action.WATCH:
                return await self._watch(request)
            return await super()._handle(request)
        except (ApiError, Rejected) as exc:
            return _status(exc.status, exc.reason, exc.message)
        except kmock.KubernetesError as exc:  # e.g. a 404 on fetch: an answer, not a server fault
            return await self._render_error(exc)
        except Exception as exc:  # a fault of the emulator's: a 500 Status, logged, no traceback to the client
            return await self._render_error(exc)

    def _serves(self, request: rendering.Request) -> bool:
        """The subresources the emulator serves: status (where the kind has it), a namespace's finalize."""
        if request.subresource == "status":
            return request.resource in self._status_subresource
        return (
            not request.resource.group and request.resource.plural == "namespaces" and request.subresource == "finalize"
        )

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        """A Status in the API server's words (kmock's name the test double and how to declare what
        is missing, and carry the emulator's traceback)."""
        if isinstance(exc, kmock.KubernetesEndpointNotFoundError | kmock.KubernetesResourceNotFoundError):
            return _status(404, "NotFound", _NO_SUCH_RESOURCE)
        if not isinstance(exc, kmock.KubernetesError):
            logger.error("the emulator failed to serve a request", exc_info=exc)
            return _status(500, "InternalError", f"an error on the server ({exc!r})")
        return _status(exc.status, exc.reason, exc.message, exc.details)

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
            if raw_request.content_type in _BINARY_CONTENT_TYPES:
                request = await self._as_json(raw_request)
            else:
                request = raw_request.clone(client_max_size=MAX_REQUEST_BYTES)
        except ApiError as exc:
            return _status(exc.status, exc.reason, exc.message)
        return await super().__call__(request)

    @staticmethod
    async def _as_json(raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.BaseRequest:
        """A protobuf body (kubectl's typed `create` commands, Helm's release Secrets) as the JSON
        it stands for; CBOR, or protobuf of a kind not decoded, is refused with 415 (client-go falls
        back to JSON after a 415 for CBOR only). kmock reads bodies as JSON text."""
        headers = CIMultiDict(raw_request.headers)
        headers["Content-Type"] = "application/json"
        request = raw_request.clone(client_max_size=MAX_REQUEST_BYTES, headers=headers)
        body = await request.read()
        try:
            if raw_request.content_type != protobuf.CONTENT_TYPE:
                raise protobuf.UndecodableBody("not protobuf")
            decoded = protobuf.decode(body)
        except protobuf.UndecodableBody as exc:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                f"application/json ({exc} by this emulator: `kubectl create ... --dry-run=client -o yaml | "
                "kubectl apply -f -` sends it as JSON)",
            ) from None
        request._read_bytes = json.dumps(decoded).encode()  # what read(), text() and json() return
        return request

    def token_for(self, user: str) -> str:
        return bearer_token(self.token_key, user)

    def _authenticate(self, headers: Mapping[str, str]) -> dict[str, Any]:
        """Authentication, emulated: a token made by `token_for(user)` is user <user>; `admin`
        is also in `system:masters`. Anything else is refused (401), as an API server started with
        --anonymous-auth=false does."""
        token = headers.get("Authorization", "").removeprefix("Bearer ").strip()
        user = token.removeprefix(_TOKEN_PREFIX).rpartition(".")[0]
        if not token.startswith(_TOKEN_PREFIX) or not user or not hmac.compare_digest(token, self.token_for(user)):
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

    def _review_rules(self, request: rendering.Request) -> dict[str, Any]:
        """`kubectl auth can-i --list`: the rules that apply to whoever asks, in a namespace."""
        user, namespace = self._user(request), ((request.data or {}).get("spec") or {}).get("namespace", "")
        rules = self._authorizer().rules(user["username"], tuple(user.get("groups") or ()), namespace)
        return {
            **(request.data or {}),
            "status": {
                "resourceRules": [
                    {k: list(rule[k]) for k in ("verbs", "apiGroups", "resources", "resourceNames") if rule.get(k)}
                    for rule in rules
                    if rule.get("resources")
                ],
                # what the emulator lets every authenticated user do (module rbac), as can-i answers it
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": False,
            },
        }

    def _issue_token(self, request: rendering.Request, namespace: str, name: str) -> dict[str, Any]:
        """`kubectl create token SA`: a token of the emulator's kind for the ServiceAccount, which
        must exist (the emulator's tokens do not expire: a sandbox's)."""
        self._current((kmock.resource("v1/serviceaccounts"), namespace, name))
        spec = (request.data or {}).get("spec") or {}
        seconds = int(spec.get("expirationSeconds") or 3600)
        expires = datetime.now(UTC) + timedelta(seconds=seconds)
        return {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": {**spec, "expirationSeconds": seconds},
            "status": {
                "token": self.token_for(f"system:serviceaccount:{namespace}:{name}"),
                "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
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
        if spec.get("nonResourceAttributes") and not spec.get("resourceAttributes"):
            # non-resource URLs are open to every authenticated user here (module rbac)
            return {**review, "status": {"allowed": True}}
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
            if _dry_run(request):
                return 200, old
            async with self._lock:
                return 200, await self._delete(request)
        applying = _content_type(request) == APPLY_PATCH
        for _ in range(20):
            async with self._lock:
                # a server-side apply creates what does not exist yet
                existing = not applying or request.subresource or self._taken(key)
                if not existing:
                    self._may_apply_create(request)
                old = self._current(key) if request.action == kmock.action.UPDATE and existing else None
                proposed = self._propose_create(request) if old is None else self._propose_patch(request, old)
            admitted = await self._admit(request, old, proposed)
            async with self._lock:
                if old is None:
                    return 201, await self._create(request, admitted, commit=not _dry_run(request))
                if self._current(key)["metadata"].get("resourceVersion") == old["metadata"].get("resourceVersion"):
                    return 200, await self._commit_patch(request, key, old, admitted, commit=not _dry_run(request))
        raise ApiError(409, "Conflict", f'{request.resource.plural} "{request.name}": too many concurrent writes')

    def _may_apply_create(self, request: rendering.Request) -> None:
        """An apply that creates needs `create` too, and names the object of its URL (RBAC was
        asked about that name, for `patch`), as on the API server."""
        name = ((request.data or {}).get("metadata") or {}).get("name") if isinstance(request.data, dict) else None
        if name != request.name:
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({name}) does not match the name on the URL ({request.name})",
            )
        info = dataclasses.replace(request_info("POST", request.url.path, request.url.query), name="")
        try:
            authorize(self._authorizer(), self._user(request), info)
        except Forbidden as exc:
            raise ApiError(403, "Forbidden", exc.message) from None

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
            dry_run=_dry_run(request),
            before_validation=identify,
        )

    def _current(self, key: tuple[Any, Any, Any]) -> dict[str, Any]:
        if key not in self._objects or self._objects[key].deleted:
            resource = key[0]
            qualified = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
            raise ApiError(404, "NotFound", f'{qualified} "{key[2]}" not found')  # the API server's wording
        return copy.deepcopy(self._objects[key].raw)

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
        if not isinstance(request.data, dict):
            raise ApiError(400, "BadRequest", "the body of the request is not an object")
        obj = copy.deepcopy(request.data)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata is not an object")
        if not meta.get("name") and not meta.get("generateName") and not request.name:
            raise ApiError(422, "Invalid", "metadata.name: Required value: name or generateName is required")
        meta["namespace"] = request.namespace or meta.get("namespace")
        if meta["namespace"] is None:
            del meta["namespace"]  # cluster-scoped: no namespace at all, not a null one
        if not meta.get("name") and meta.get("generateName"):
            # the API server's alphabet, and its retries on a taken name (RetryGenerateName, 1.31+)
            for _ in range(8):
                meta["name"] = meta["generateName"] + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
                if not self._taken((request.resource, meta.get("namespace"), meta["name"])):
                    break
        self._exists_not((request.resource, meta.get("namespace"), meta.get("name")))
        if request.resource in self._status_subresource:
            obj.pop("status", None)  # status is written through the /status subresource only
        for field in ("deletionTimestamp", "resourceVersion", "uid", "creationTimestamp", "generation"):
            meta.pop(field, None)
        if not request.subresource and request.resource in self._kinds:
            # What the API server stores and answers carries both, whatever the body omitted
            # (kubectl's delete, for one, reads `kind` from the answer).
            obj["apiVersion"] = _group_version(request.resource)
            obj["kind"] = self._kinds[request.resource]
        if not request.resource.group and request.resource.plural == "namespaces":
            obj["status"] = {"phase": "Active"}
        if not request.resource.group and request.resource.plural == "secrets" and not obj.get("type"):
            obj["type"] = "Opaque"  # the API server's default
        return obj

    def _taken(self, key: tuple[Any, Any, Any]) -> bool:
        return key in self._objects and not self._objects[key].deleted

    def _exists_not(self, key: tuple[Any, Any, Any]) -> None:
        if self._taken(key):
            raise ApiError(409, "AlreadyExists", f'{key[0].plural} "{key[2]}" already exists')

    async def _create(self, request: rendering.Request, obj: dict[str, Any], commit: bool = True) -> dict[str, Any]:
        """Store a new object; with `commit` False (dryRun=All) only say what would be stored."""
        meta = obj["metadata"]
        key = (request.resource, meta.get("namespace"), meta.get("name"))
        self._exists_not(key)
        self._validate(request.resource, obj)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta["generation"] = 1
        if not commit:
            return obj
        self._bump(request.resource, obj)
        self._store(key, obj)
        await self._publish(request.resource, "ADDED", obj)
        return obj

    def _propose_patch(self, request: rendering.Request, old: dict[str, Any]) -> dict[str, Any]:
        content_type = _content_type(request)
        body = request.data
        try:
            if request.method.value == "PUT":  # a replace (Helm updates its release Secrets so)
                if not isinstance(body, dict):
                    raise ApiError(400, "BadRequest", "the body of a replace must be an object")
                self._check_resource_version(request, old, (body.get("metadata") or {}).get("resourceVersion"))
                patched = {**copy.deepcopy(body), "apiVersion": old.get("apiVersion"), "kind": old.get("kind")}
                patched = {k: v for k, v in patched.items() if v is not None}
            elif content_type == "application/json-patch+json":
                patched = jsonpatch.apply_patch(old, body, in_place=False)
            elif content_type == APPLY_PATCH:
                # Server-side apply, reduced: the applied configuration is merged into the object
                # (no managed fields, so no conflicts, and fields left out are kept: docs/decisions.md).
                if not isinstance(body, dict):
                    raise ApiError(400, "BadRequest", "the applied configuration must be an object")
                patched = merge_patch(old, {k: v for k, v in body.items() if k not in ("apiVersion", "kind")})
            elif content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                # Strategic merge is served as a merge patch (lists replaced whole): the operator
                # therefore never relies on it (docs/decisions.md).
                expected = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
                self._check_resource_version(request, old, expected)
                patched = merge_patch(old, body)
            else:
                raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {content_type!r}")
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise ApiError(422, "Invalid", f"the JSON patch could not be applied: {exc}") from exc
        return self._isolate(request, old, patched)

    @staticmethod
    def _check_resource_version(request: rendering.Request, old: dict[str, Any], expected: str | None) -> None:
        if expected and expected != old["metadata"].get("resourceVersion"):
            raise ApiError(
                409,
                "Conflict",
                f"Operation cannot be fulfilled on {request.resource.plural} "
                f'"{request.name}": the object has been modified; please apply your changes '
                "to the latest version and try again",
            )

    async def _commit_patch(
        self,
        request: rendering.Request,
        key: tuple[Any, Any, Any],
        old: dict[str, Any],
        new: dict[str, Any],
        commit: bool = True,
    ) -> dict[str, Any]:
        new = self._isolate(request, old, new)  # what a mutating webhook patched is held to the same rules
        if new == old:
            return old  # a no-op write changes nothing, not even resourceVersion
        if _spec_part(new) != _spec_part(old):
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        self._validate(request.resource, new, old)
        if not commit:
            return new
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
    async def _serve_server_version(self, request: rendering.Request) -> Any:
        major, minor, patch = KUBERNETES_VERSION
        return {  # kube-apiserver's /version body (kmock's says v1.26.4+k3s1: helm refuses charts asking more)
            "major": str(major),
            "minor": str(minor),
            "gitVersion": f"v{major}.{minor}.{patch}",
            "gitCommit": "0" * 40,
            "gitTreeState": "clean",
            "buildDate": "2025-04-22T00:00:00Z",
            "goVersion": "go1.23.8",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    async def _serve_version(self, request: rendering.Request) -> Any:
        listing = await super()._serve_version(request)
        if not request.resource.group:  # the core group's version is "v1", not "/v1"
            listing["groupVersion"] = request.resource.version
        for entry in listing.get("resources", []):
            if "/" in entry["name"]:  # subresources have no short names or categories of their own
                entry.pop("shortNames", None)
                entry.pop("categories", None)
        return listing

    async def _serve_apis(self, request: rendering.Request) -> Any:
        listing = await super()._serve_apis(request)
        for group in listing["groups"]:
            _prefer_stable(group)
        listing["groups"].sort(key=lambda g: g["name"])
        return listing

    async def _serve_group(self, request: rendering.Request) -> Any:
        return _prefer_stable(await super()._serve_group(request))

    def _source(self, request: rendering.Request) -> tuple[Any, Any]:
        """The stored resource a read is served from, and how its objects are shown: events.k8s.io
        serves the core Events, as on a cluster (one store, both APIs)."""
        if request.resource == EVENTS_V1:
            return kmock.resource("v1/events"), _as_events_v1
        return request.resource, lambda obj: obj

    def _selection(self, request: rendering.Request) -> Any:
        """A predicate on stored objects for the request's label and field selectors; 400 for a
        field the kind cannot be selected by, as the API server's field label conversion says."""
        labels = request.params.get("labelSelector") or ""
        fields = request.params.get("fieldSelector") or ""
        supported = {"metadata.name", "metadata.namespace"} | self._field_labels(request.resource)
        renames = EVENTS_V1_FIELD_LABELS if request.resource == EVENTS_V1 else {}
        terms = []
        for path, negate, wanted in _field_terms(fields):
            path = renames.get(path, path)
            if path not in supported:
                raise ApiError(400, "BadRequest", f"field label not supported: {path}")
            terms.append((path, negate, wanted))

        def selected(obj: dict[str, Any]) -> bool:
            return (not labels or _labels_match(obj, labels)) and all(
                (_field_value(obj, path) == wanted) != negate for path, negate, wanted in terms
            )

        return selected

    def _field_labels(self, resource: Any) -> set[str]:
        if resource in self._selectable_fields:
            return self._selectable_fields[resource]
        return CORE_FIELD_LABELS.get((resource.group or "", resource.plural), set())

    def _columns(self, resource: Any) -> list[dict[str, Any]]:
        if resource == EVENTS_V1:
            return EVENT_COLUMNS
        return self._printer_columns.get(resource) or BUILTIN_COLUMNS.get((resource.group or "", resource.plural), [])

    async def _serve_fetch(self, request: rendering.Request) -> Any:
        async with self._lock:
            try:
                obj = self._current((request.resource, request.namespace, request.name))
            except ApiError as exc:
                raise kmock.KubernetesError(exc.status, exc.reason, exc.message, {}) from None
            resource_version = str(self._resource_version)
        if _wants_table(request):  # `kubectl get mv NAME`: the same columns as the listing
            return render_table([obj], self._columns(request.resource), resource_version)
        return obj

    async def _list(self, request: rendering.Request) -> dict[str, Any]:
        if request.resource not in self._kinds and request.resource not in set(self._get_resources()):
            raise ApiError(404, "NotFound", _NO_SUCH_RESOURCE)
        selected = self._selection(request)
        stored, show = self._source(request)
        async with self._lock:
            items = [
                show(copy.deepcopy(o.raw))
                for (_, ns, name), o in self._stored(stored)
                if (request.namespace is None or ns == request.namespace)
                and (request.name is None or name == request.name)
                and selected(o.raw)
            ]
            resource_version = str(self._resource_version)
        items.sort(key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))
        if _wants_table(request):
            return render_table(items, self._columns(request.resource), resource_version)
        kind = self._kinds.get(request.resource) or request.resource.plural.capitalize()
        return {
            "apiVersion": _group_version(request.resource),
            "kind": f"{kind}List",
            "metadata": {"resourceVersion": resource_version},
            "items": items,
        }

    async def _watch(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """A watch as kube-apiserver streams it to a JSON client: `application/json`, one event per
        line; Tables (one row per event, the columns on the first only) when kubectl asks for them;
        selectors applied, with ADDED/DELETED when an object starts/stops matching; ended after
        `timeoutSeconds` (or `timeout`)."""
        selected = self._selection(request)  # a 400 before the stream starts
        stored, show = self._source(request)
        table = _wants_table(request)
        columns = self._columns(request.resource)
        timeout = _watch_timeout(request.params)
        since = int(request.params.get("resourceVersion") or 0)
        bus = self._buses[stored]
        async with self._lock:  # subscribe under the lock that guards writes: no event is lost
            mark = await bus.mark()
            current = [obj for obj in self._matching_in(stored, request) if selected(obj)]
        seen = {(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in current}
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        assert request._raw_request is not None
        await response.prepare(request._raw_request)

        async def send(type_: str, obj: dict[str, Any]) -> None:
            nonlocal table
            shown = show(copy.deepcopy(obj))
            if table:
                shown = render_table([shown], columns, shown["metadata"].get("resourceVersion", ""))
                if table == "sent":
                    shown["columnDefinitions"] = None  # NoHeaders after the first event, as the API server
                table = "sent"
            await response.write(json.dumps({"type": type_, "object": shown}).encode() + b"\n")

        try:
            async with asyncio.timeout(timeout):
                for obj in current:
                    if int(obj["metadata"].get("resourceVersion", 0)) > since:
                        await send("ADDED", obj)
                async for event in bus.stream(since=mark):
                    obj = event.get("object", {})
                    meta = obj.get("metadata", {})
                    key = (meta.get("namespace"), meta.get("name"))
                    if (request.namespace is not None and key[0] != request.namespace) or (
                        request.name is not None and key[1] != request.name
                    ):
                        continue
                    matches = event["type"] != "DELETED" and selected(obj)
                    if matches:
                        await send(event["type"] if key in seen else "ADDED", obj)
                        seen.add(key)
                    elif key in seen:  # deleted, or no longer selected
                        await send("DELETED", obj)
                        seen.discard(key)
        except (TimeoutError, ConnectionResetError):
            pass  # the watch ends, as the API server ends it; or the client went away
        finally:
            await bus.unmark(mark)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    def _matching_in(self, resource: Any, request: rendering.Request) -> list[dict[str, Any]]:
        return [
            obj.raw
            for (_, namespace, name), obj in self._stored(resource)
            if (request.namespace is None or namespace == request.namespace)
            and (request.name is None or name == request.name)
        ]


def _dry_run(request: rendering.Request) -> bool:
    """dryRun=All: admitted and validated, answered, never stored (kubectl's --dry-run=server)."""
    return request.params.get("dryRun") == "All"


def _group_version(resource: Any) -> str:
    return f"{resource.group}/{resource.version}" if resource.group else resource.version


def _wants_table(request: rendering.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _watch_timeout(params: Mapping[str, str]) -> float | None:
    """timeoutSeconds, else the request's `timeout` (a Go duration such as 3s, 1m0s, 500ms)."""
    if params.get("timeoutSeconds"):
        return float(params["timeoutSeconds"])
    duration = params.get("timeout") or ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    return sum(float(n) * units[u] for n, u in parts) if parts else None


def _prefer_stable(group: dict[str, Any]) -> dict[str, Any]:
    """The preferred version as the API server orders them (v1 over v1beta1 over v1alpha1),
    not whichever a set yielded first."""

    def priority(version: str) -> tuple[int, int, int]:
        match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
        if not match:
            return (-1, 0, 0)
        stability = {"alpha": 0, "beta": 1, None: 2}[match.group(2)]
        return (stability, int(match.group(1)), int(match.group(3) or 0))

    group["versions"].sort(key=lambda v: priority(v["version"]), reverse=True)
    group["preferredVersion"] = dict(group["versions"][0])
    return group


EVENTS_V1 = kmock.resource("events.k8s.io/v1/events")


def _object_cell(reference: str) -> Any:
    """An Event's OBJECT cell as kube-apiserver prints it: kind/name, the kind lower-cased."""

    def cell(event: dict[str, Any]) -> str:
        ref = event.get(reference) or {}
        return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"

    return cell


EVENT_COLUMNS = [  # what `kubectl get events` shows from a real API server's Table
    {"name": "Last Seen", "type": "date", "jsonPath": ".deprecatedLastTimestamp"},
    {"name": "Type", "type": "string", "jsonPath": ".type"},
    {"name": "Reason", "type": "string", "jsonPath": ".reason"},
    {"name": "Object", "type": "string", "value": _object_cell("regarding")},
    {"name": "Message", "type": "string", "jsonPath": ".note"},
    {"name": "Name", "type": "string", "format": "name", "priority": 1, "jsonPath": ".metadata.name"},
]


# Field selectors each built-in kind supports besides metadata.name and metadata.namespace (the
# API server's field label conversions); anything else is a 400. Custom resources add their CRD's
# selectableFields.
CORE_FIELD_LABELS: dict[tuple[str, str], set[str]] = {
    ("", "events"): {
        *(f"involvedObject.{f}" for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion")),
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
    ("", "namespaces"): {"status.phase"},
    ("", "secrets"): {"type"},
    ("", "services"): {"spec.clusterIP", "spec.type"},
    ("", "nodes"): {"spec.unschedulable"},
    ("", "replicationcontrollers"): {"status.replicas"},
    ("", "pods"): {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    ("batch", "jobs"): {"status.successful"},
    ("certificates.k8s.io", "certificatesigningrequests"): {"spec.signerName"},
}
# events.k8s.io/v1 names for the core Event's field labels (the API server maps them the same way)
EVENTS_V1_FIELD_LABELS = {
    **{f"regarding.{f}": f"involvedObject.{f}" for f in ("kind", "namespace", "name", "uid", "apiVersion")},
    "regarding.resourceVersion": "involvedObject.resourceVersion",
    "regarding.fieldPath": "involvedObject.fieldPath",
    "reportingController": "reportingComponent",
}
CORE_FIELD_LABELS[("events.k8s.io", "events")] = CORE_FIELD_LABELS[("", "events")]
# A few built-in kinds' Table columns beyond NAME and AGE, as kubectl shows them from a cluster.
BUILTIN_COLUMNS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("", "events"): [
        {"name": "Last Seen", "type": "date", "jsonPath": ".lastTimestamp"},
        {"name": "Type", "type": "string", "jsonPath": ".type"},
        {"name": "Reason", "type": "string", "jsonPath": ".reason"},
        {"name": "Object", "type": "string", "value": _object_cell("involvedObject")},
        {"name": "Message", "type": "string", "jsonPath": ".message"},
        {"name": "Name", "type": "string", "format": "name", "priority": 1, "jsonPath": ".metadata.name"},
    ],
    ("", "namespaces"): [
        {"name": "Status", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
    ("", "secrets"): [
        {"name": "Type", "type": "string", "jsonPath": ".type"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
}


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


def _field_terms(selector: str) -> list[tuple[str, bool, str]]:
    """(path, negated, value) of each term of a field selector: `a.b=v`, `a.b==v`, `a.b!=v`."""
    terms = []
    for term in filter(None, (t.strip() for t in selector.split(","))):
        negate = "!=" in term
        path, _, wanted = term.replace("!=", "=").replace("==", "=").partition("=")
        terms.append((path.strip(), negate, wanted.strip()))
    return terms


def _field_value(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, dict) and path == "source":  # an Event's `source` selects by its component
        value = value.get("component")
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


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
