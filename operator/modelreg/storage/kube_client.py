"""The Kubernetes API as the CLI (a user) sees it: blocking calls, one-line errors. Shares its
request shapes with the operator's KubeStore (storage/kube.py)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import kubernetes.watch
import yaml

from modelreg import GROUP, VERSION
from modelreg.storage.kube import api_message, patch_metadata, whoami

_SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class KubeClientError(Exception):
    """A one-line, user-facing error (the API server's own message when it has one)."""


class KubeClient:
    def __init__(self, kubeconfig: str | None, context: str | None, as_user: str | None = None) -> None:
        try:
            self.client = kubernetes.config.new_client_from_config(config_file=kubeconfig, context=context)
            if as_user:  # kubectl's --as: the API server checks the `impersonate` permission
                self.client.set_default_header("Impersonate-User", as_user)
            _, active = kubernetes.config.list_kube_config_contexts(config_file=kubeconfig)
            if context:
                contexts, _ = kubernetes.config.list_kube_config_contexts(config_file=kubeconfig)
                active = next(c for c in contexts if c["name"] == context)
        except (kubernetes.config.ConfigException, StopIteration, FileNotFoundError, IsADirectoryError) as exc:
            # in a pod (e.g. `modelreg fetch` as an init container): its service account, as kubectl does
            if kubeconfig or context or not os.environ.get("KUBERNETES_SERVICE_HOST"):
                raise KubeClientError(f"cannot load kubeconfig: {' '.join(str(exc).split())}") from exc
        except (yaml.YAMLError, TypeError, AttributeError, KeyError, ValueError) as exc:
            # not YAML, or not a kubeconfig's shape (the client assumes one and fails deep inside)
            where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
            detail = "not a kubeconfig"
            if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
                # where, never the text around it: a kubeconfig holds tokens and keys
                mark = exc.problem_mark
                detail = f"not valid YAML ({exc.problem}, line {mark.line + 1}, column {mark.column + 1})"
            elif isinstance(exc, yaml.YAMLError):
                detail = "not valid YAML"
            raise KubeClientError(f"cannot load kubeconfig {where}: {detail}") from exc
            self._in_cluster(as_user)
        else:
            self.default_namespace = active.get("context", {}).get("namespace", "default")
        self.custom = kubernetes.client.CustomObjectsApi(self.client)

    def _in_cluster(self, as_user: str | None) -> None:
        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        except kubernetes.config.ConfigException as exc:
            raise KubeClientError(f"no kubeconfig, and the in-cluster service account cannot be used: {exc}") from exc
        self.client = kubernetes.client.ApiClient(configuration)
        if as_user:
            self.client.set_default_header("Impersonate-User", as_user)
        try:
            self.default_namespace = Path(_SERVICE_ACCOUNT_NAMESPACE).read_text().strip() or "default"
        except OSError:
            self.default_namespace = "default"

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except kubernetes.client.ApiException as exc:
            raise KubeClientError(api_message(exc)) from exc
        except Exception as exc:  # connection refused, DNS, TLS: one line, no traceback
            raise KubeClientError(f"cannot reach the Kubernetes API: {exc.__class__.__name__}: {exc}") from exc

    def list(self, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        if namespace is None:
            return self._call(self.custom.list_cluster_custom_object, GROUP, VERSION, plural)["items"]
        return self._call(self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, plural)["items"]

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        return self._call(self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name)

    def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call(self.custom.create_namespaced_custom_object, GROUP, VERSION, namespace, plural, body)

    def patch(self, plural: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """A merge patch of the object (not its status)."""
        return self._call(self.custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, plural, name, body)

    def delete(self, plural: str, namespace: str, name: str) -> None:
        self._call(self.custom.delete_namespaced_custom_object, GROUP, VERSION, namespace, plural, name)

    def annotate(self, plural: str, namespace: str, name: str, annotations: dict[str, str | None]) -> dict:
        return self._call(patch_metadata, self.custom, plural, namespace, name, {"annotations": annotations})

    def may(self, verb: str, resource: str, name: str, namespace: str, group: str = GROUP) -> bool:
        """SelfSubjectAccessReview: may the current user do this? (Every user may ask about themselves.)"""
        api = kubernetes.client.AuthorizationV1Api(self.client)
        attributes = {"group": group, "resource": resource, "verb": verb, "name": name, "namespace": namespace}
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        }
        review = self._call(api.create_self_subject_access_review, body)
        return bool(review.status and review.status.allowed)

    def whoami(self) -> str:
        return self._call(whoami, self.client)

    def watch(self, plural: str, namespace: str | None, stop: threading.Event) -> Iterator[dict[str, Any]]:
        """Events on modelreg objects (type, object) after a list, until `stop` is set: a watch as
        the user, resumed from its last resourceVersion (re-listed when the server says 410 Gone)."""
        if namespace is None:
            fn, args = self.custom.list_cluster_custom_object, (GROUP, VERSION, plural)
        else:
            fn, args = self.custom.list_namespaced_custom_object, (GROUP, VERSION, namespace, plural)
        version = self._call(fn, *args)["metadata"].get("resourceVersion")
        while not stop.is_set():
            watcher = kubernetes.watch.Watch()
            try:
                for event in watcher.stream(fn, *args, resource_version=version, timeout_seconds=5):
                    if stop.is_set():
                        break
                    if event.get("type") == "ERROR":
                        version = self._call(fn, *args)["metadata"].get("resourceVersion")
                        break
                    version = (event["object"].get("metadata") or {}).get("resourceVersion", version)
                    yield event
            except kubernetes.client.ApiException as exc:
                if exc.status != 410:
                    raise KubeClientError(api_message(exc)) from exc
                version = self._call(fn, *args)["metadata"].get("resourceVersion")
            finally:
                watcher.stop()
