"""The Kubernetes API through the official client (blocking calls, run off the event loop)."""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import functools
import json
import os
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kubernetes
import urllib3
import yaml

from modelreg import GROUP, VERSION
from modelreg.domain.policy import PolicyError
from modelreg.domain.redaction import redact
from modelreg.domain.serving import TargetKind


@dataclass(frozen=True)
class Listing:
    namespace: str | None  # None: every watched namespace (one cluster-wide list)
    resource_version: str | None  # the list's: what it shows is the state as of this version
    items: list[dict[str, Any]]


class Conflict(Exception):
    """Someone else wrote first (409, or a failed JSON-patch test): re-read and try again."""


class Gone(Exception):
    """404: the object is not there (deleted meanwhile)."""


class ApiRefused(Exception):
    """Any other answer that is not a success: the status and the API server's own message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


class ApiUnreachable(Exception):
    """No answer at all: connection refused or reset, DNS, TLS, timeout."""


def api_message(exc: kubernetes.client.ApiException) -> str:
    """The API server's one-line message (its Status body), else the HTTP status line."""
    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return f"{exc.status} {exc.reason}"


class NoCluster(Exception):
    """No Kubernetes API answers: the message says what was tried."""


def probe_cluster(timeout: float = 5.0) -> None:
    """Raise NoCluster, naming what was tried, unless a Kubernetes API answers."""
    tried = []
    try:
        kubernetes.config.load_incluster_config()
        tried.append("the in-cluster service account")
    except kubernetes.config.ConfigException:
        path = os.environ.get("KUBECONFIG", "~/.kube/config")
        try:
            _, context = kubernetes.config.list_kube_config_contexts()
            kubernetes.config.load_kube_config()
        except (kubernetes.config.ConfigException, FileNotFoundError, OSError) as exc:
            raise NoCluster(f"not in a pod (no in-cluster service account), and kubeconfig {path}: {exc}") from None
        tried.append(f"kubeconfig {path}, context {context.get('name')!r}")
    try:
        with kubernetes.client.ApiClient() as client:
            kubernetes.client.VersionApi(client).get_code(_request_timeout=timeout)
    except kubernetes.client.ApiException as exc:  # it answered: say what it said
        raise NoCluster(f"the Kubernetes API at {', '.join(tried)} answered: {api_message(exc)}") from None
    except Exception as exc:
        reason = redact(str(exc).splitlines()[0]) if str(exc) else ""
        raise NoCluster(
            f"no Kubernetes API answers {', '.join(tried)}: {type(exc).__name__} {reason}".rstrip()
        ) from None


# Kubernetes calls block a thread each: their own threads (not asyncio's default few, shared with
# everything else), and as many pooled connections, so admission reviews, reconciles and Event
# posts do not queue behind one another.
API_THREADS = 32


def make_api_client() -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = API_THREADS
    return kubernetes.client.ApiClient(configuration)


def patch_metadata(
    custom: kubernetes.client.CustomObjectsApi, plural: str, namespace: str, name: str, metadata: dict[str, Any]
) -> dict[str, Any]:
    """A merge patch of a modelreg object's labels or annotations (None removes a key)."""
    return custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, {"metadata": metadata})


def whoami(client: kubernetes.client.ApiClient) -> str:
    """The client's own username (SelfSubjectReview, Kubernetes 1.28+)."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    return kubernetes.client.AuthenticationV1Api(client).create_self_subject_review(body).status.user_info.username


def served_kinds(client: kubernetes.client.ApiClient, kinds: Collection[TargetKind]) -> list[TargetKind]:
    """Those of `kinds` the API server serves (their CRD installed), by discovery (no RBAC needed)."""
    custom = kubernetes.client.CustomObjectsApi(client)
    served = []
    for kind in kinds:
        try:
            resources = custom.get_api_resources(kind.group, kind.version).resources
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise
            continue
        if any(r.name == kind.plural for r in resources or []):
            served.append(kind)
    return served


class KubeStore:
    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.core = kubernetes.client.CoreV1Api(client)
        self._threads = ThreadPoolExecutor(API_THREADS, thread_name_prefix="kube")

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            call = functools.partial(fn, *args, **kwargs)
            return await asyncio.get_running_loop().run_in_executor(self._threads, call)
        except kubernetes.client.ApiException as exc:
            if exc.status == 409 or (exc.status == 422 and "test" in (exc.body or "")):
                raise Conflict(str(exc.reason)) from exc
            if exc.status == 404:
                raise Gone(str(exc.reason)) from exc
            raise ApiRefused(exc.status or 0, api_message(exc)) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ApiUnreachable(f"{type(exc).__name__}: {exc}") from exc

    async def validating_webhooks(self, name: str) -> list[dict[str, Any]] | None:
        """The webhooks of ValidatingWebhookConfiguration `name`, None while it does not exist."""
        api = kubernetes.client.AdmissionregistrationV1Api(self.core.api_client)
        try:
            found = await self._call(api.read_validating_webhook_configuration, name)
        except Gone:
            return None
        return api.api_client.sanitize_for_serialization(found).get("webhooks") or []

    async def patch_validating_webhooks(self, name: str, ops: list[dict[str, Any]]) -> None:
        api = kubernetes.client.AdmissionregistrationV1Api(self.core.api_client)
        await self._call(
            api.patch_validating_webhook_configuration, name, ops, _content_type="application/json-patch+json"
        )

    async def whoami(self) -> str:
        return await self._call(whoami, self.custom.api_client)

    async def may(self, user: Mapping[str, Any], verb: str, resource: str, name: str, namespace: str) -> bool:
        """SubjectAccessReview: may `user` (admission userInfo) do `verb` on modelreg.io `resource`?"""
        api = kubernetes.client.AuthorizationV1Api(self.custom.api_client)
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user.get("username"),
                "groups": list(user.get("groups") or []),
                "uid": user.get("uid"),
                "extra": dict(user.get("extra") or {}),
                "resourceAttributes": {
                    "group": GROUP,
                    "resource": resource,
                    "verb": verb,
                    "name": name,
                    "namespace": namespace,
                },
            },
        }
        review = await self._call(api.create_subject_access_review, body)
        return bool(review.status and review.status.allowed)

    async def list_everywhere(self, plural: str, namespaces: Collection[str]) -> list[Listing]:
        """Every object of a modelreg kind in these namespaces (none: the whole cluster): one listing
        per namespace, or one cluster-wide listing matched here when namespaces are patterns."""
        if not namespaces or any(ch in ns for ns in namespaces for ch in "*?["):  # patterns: match them here
            listing = await self._call(self.custom.list_cluster_custom_object, GROUP, VERSION, plural)
            wanted = list(namespaces)
            items = [
                item
                for item in listing["items"]
                if not wanted or any(fnmatch.fnmatchcase(item["metadata"]["namespace"], ns) for ns in wanted)
            ]
            return [Listing(None, (listing.get("metadata") or {}).get("resourceVersion"), items)]
        found = []
        for namespace in namespaces:
            listing = await self._call(self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, plural)
            found.append(Listing(namespace, (listing.get("metadata") or {}).get("resourceVersion"), listing["items"]))
        return found

    async def list_custom(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        return (await self.list_everywhere(plural, [namespace]))[0].items

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any], resource_version: str | None = None
    ) -> dict[str, Any]:
        """A merge patch of status; with `resource_version`, Conflict if the object changed since."""
        body: dict[str, Any] = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        return await self._call(
            self.custom.patch_namespaced_custom_object_status, GROUP, VERSION, namespace, plural, name, body
        )

    async def patch_labels(
        self, plural: str, namespace: str, name: str, labels: dict[str, str | None]
    ) -> dict[str, Any]:
        return await self._call(patch_metadata, self.custom, plural, namespace, name, {"labels": labels})

    async def list_targets(self, kind: TargetKind, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """Serving targets of one kind (any group: the path is the same for apps/v1), as dicts of
        the shape watch events have, each naming its kind (list items do not on a cluster)."""
        listing = await self._call(
            self.custom.list_namespaced_custom_object,
            kind.group,
            kind.version,
            namespace,
            kind.plural,
            label_selector=label_selector,
        )
        return [{**item, "apiVersion": kind.api_version, "kind": kind.kind} for item in listing["items"]]

    async def get_target(self, kind: TargetKind, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = await self._call(
                self.custom.get_namespaced_custom_object, kind.group, kind.version, namespace, kind.plural, name
            )
        except Gone:
            return None
        return {**found, "apiVersion": kind.api_version, "kind": kind.kind}

    async def json_patch_target(self, kind: TargetKind, namespace: str, name: str, ops: list[dict[str, Any]]) -> None:
        await self._call(
            self.custom.patch_namespaced_custom_object,
            kind.group,
            kind.version,
            namespace,
            kind.plural,
            name,
            ops,
            _content_type="application/json-patch+json",
        )

    async def _read_or_none(self, fn: Any, name: str, namespace: str) -> Any:
        try:
            return await self._call(fn, name, namespace)
        except Gone:
            return None

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's values, decoded; None if there is no such Secret."""
        secret = await self._read_or_none(self.core.read_namespaced_secret, name, namespace)
        if secret is None:
            return None
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    async def policy_override(self, namespace: str, name: str) -> dict[str, Any] | None:
        config_map = await self._read_or_none(self.core.read_namespaced_config_map, name, namespace)
        if config_map is None:
            return None
        text = (config_map.data or {}).get("policy.yaml")
        try:
            return yaml.safe_load(text) if text else None
        except yaml.YAMLError as exc:
            raise PolicyError(f"key policy.yaml is not valid YAML: {exc}") from exc

    async def config_maps(self, namespace: str, label_selector: str) -> dict[str, dict[str, str]]:
        """name -> data of the ConfigMaps that carry the label."""
        listing = await self._call(self.core.list_namespaced_config_map, namespace, label_selector=label_selector)
        return {cm.metadata.name: dict(cm.data or {}) for cm in listing.items}

    async def merge_config_map(
        self, namespace: str, name: str, labels: dict[str, str], data: Mapping[str, str | None]
    ) -> None:
        """Add (value) and remove (None) keys in one write; the ConfigMap is made when absent."""
        try:
            await self._call(self.core.patch_namespaced_config_map, name, namespace, {"data": dict(data)})
        except Gone:
            kept = {k: v for k, v in data.items() if v is not None}
            body = {"metadata": {"name": name, "namespace": namespace, "labels": labels}, "data": kept}
            await self._call(self.core.create_namespaced_config_map, namespace, body)

    async def post_event(self, ref: Mapping[str, str], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on the object `ref` names (apiVersion, kind, namespace, name, uid)."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "metadata": {"generateName": f"{ref['name']}.", "namespace": ref["namespace"]},
            "involvedObject": dict(ref),
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "modelreg"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self._call(self.core.create_namespaced_event, ref["namespace"], body)
