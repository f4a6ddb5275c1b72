"""Integration tier: the real operator against the emulated API server and moto's S3, over HTTP."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import kubernetes
import pytest

from modelreg.config import Settings
from modelreg.sandbox.harness import ADMIN, OPERATOR_USER, EmulatedCluster, OperatorThread, S3Endpoint
from tests.conftest import CRD_FILES, KUBECONFIG

NAMESPACE = "ml"
GROUP, VERSION = "modelreg.io", "v1alpha1"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    endpoint = S3Endpoint().start()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def aws_env(s3_endpoint: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in s3_endpoint.environment().items():
        monkeypatch.setenv(key, value)
    return s3_endpoint.environment()


@pytest.fixture
def s3(aws_env: dict[str, str]) -> Any:
    return boto3.client("s3")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"models-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def extra_crds() -> list[Path]:
    """CRD files installed beside modelreg's (a test module overrides it: e.g. KServe's)."""
    return []


@pytest.fixture
def cluster(extra_crds: list[Path]) -> Iterator[EmulatedCluster]:
    emulated = EmulatedCluster([*CRD_FILES, *extra_crds]).start()
    emulated.grant_demo_users()
    # The operator acts as the ServiceAccount rbac.yaml binds: it holds only its ClusterRole.
    emulated.write_kubeconfig(KUBECONFIG, namespace=NAMESPACE, user=OPERATOR_USER)
    yield emulated
    emulated.stop()


@pytest.fixture
def settings() -> Settings:
    # Fast timers so the tests see re-checks and retries within seconds.
    return Settings(
        verification={
            "recheck_seconds": 1.0,
            "retry_base_seconds": 0.5,
            "retry_max_seconds": 2.0,
        }
    )


@pytest.fixture
def start_operator(cluster: EmulatedCluster, aws_env: dict[str, str], settings: Settings) -> Iterator[Callable]:
    started: list[OperatorThread] = []

    def start(custom: Settings | None = None) -> OperatorThread:
        operator = OperatorThread(custom or settings, [NAMESPACE]).start()
        started.append(operator)
        webhook_points_at(cluster, operator)
        return operator

    yield start
    for operator in started:
        operator.stop()


def webhook_points_at(cluster: EmulatedCluster, operator: OperatorThread) -> None:
    """Once the operator runs, wait until the webhook configurations it manages name its port: every
    webhook fails closed, so a write in between would meet a predecessor's (a restart's) dead port."""
    webhook = operator.settings.webhook
    if not operator.running or not webhook.managed:
        return
    with api_client(cluster, ADMIN) as client:
        api = kubernetes.client.AdmissionregistrationV1Api(client)

        def current() -> bool:
            configs = [
                *api.list_mutating_webhook_configuration().items,
                *api.list_validating_webhook_configuration().items,
            ]
            urls = [w.client_config.url or "" for c in configs for w in c.webhooks or []]
            return bool(urls) and all(f":{webhook.port}/" in url for url in urls)

        wait_for(current, timeout=30, what="the webhook configurations to name the new operator")


@pytest.fixture
def operator(start_operator: Callable) -> OperatorThread:
    return start_operator()


def api_client(cluster: EmulatedCluster, user: str) -> kubernetes.client.ApiClient:
    return kubernetes.client.ApiClient(cluster.configuration(user))


@pytest.fixture
def kube(cluster: EmulatedCluster) -> Iterator[Kube]:
    with api_client(cluster, ADMIN) as client:
        yield Kube(client, cluster)


class Kube:
    """What a user does with kubectl, through the official client (the administrator by default)."""

    def __init__(self, client: kubernetes.client.ApiClient, cluster: EmulatedCluster) -> None:
        self.client, self.cluster = client, cluster
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.core = kubernetes.client.CoreV1Api(client)
        self._users: dict[str, Kube] = {}

    def as_user(self, user: str) -> Kube:
        if user not in self._users:
            self._users[user] = Kube(api_client(self.cluster, user), self.cluster)
        return self._users[user]

    def patch_status(self, plural: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, NAMESPACE, plural, name, {"status": status}
        )

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, body)

    def get(self, plural: str, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name)

    def patch(self, plural: str, name: str, body: Any) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name, body)

    def delete(self, plural: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name)

    def exists(self, plural: str, name: str) -> bool:
        try:
            self.get(plural, name)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def events_for(self, name: str) -> list[Any]:
        events = self.core.list_namespaced_event(NAMESPACE).items
        return [e for e in events if e.involved_object and e.involved_object.name == name]

    def event(self, name: str, reason: str) -> Any:
        """The Event `reason` on `name`, once posted (Events follow the status they report, as on a cluster)."""
        return wait_for(
            lambda: next((e for e in self.events_for(name) if e.reason == reason), None), what=f"{reason} Event"
        )


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), None)


def wait_for(probe: Callable[[], Any], timeout: float = 20.0, what: str = "condition", step: float = 0.1) -> Any:
    """Poll until probe() returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")


@pytest.fixture
def apps(cluster: EmulatedCluster) -> Iterator[Any]:
    with api_client(cluster, ADMIN) as client:
        yield kubernetes.client.AppsV1Api(client)


@pytest.fixture
def deployment_controller(cluster: EmulatedCluster) -> Iterator[Any]:
    from modelreg.sandbox.deployments import SimulatedDeploymentController

    controller = SimulatedDeploymentController(cluster.configuration(ADMIN), [NAMESPACE]).start()
    yield controller
    controller.stop()


@pytest.fixture
def bypass(cluster):
    """Writes that skip admission (a webhook not installed yet, or an attacker with etcd access)."""

    class Bypass:
        def __enter__(self):
            cluster.api.admission.bypassed = True

        def __exit__(self, *exc):
            cluster.api.admission.bypassed = False

    return Bypass()
