"""Run the emulated API server, an S3 endpoint and the real operator on loopback threads.

Used by the integration tests and the sandbox. Everything talks over real HTTP: the
operator through kopf's client and boto3, exactly as against a cluster and S3. The API
emulator serves HTTPS (a CA made per run, written into the kubeconfigs) so that kubectl sends
its bearer token: client-go sends credentials only over TLS.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp.test_utils
import kmock
import yaml

from modelreg.sandbox.apiserver import ApiServerEmulator, bearer_token
from modelreg.sandbox.keys import write_seal_key
from modelreg.storage.tls import self_signed

RBAC_FILE = next(
    (
        p / "examples" / "install" / "rbac.yaml"
        for p in (Path(__file__).resolve().parents[3], Path.cwd())
        if (p / "examples" / "install" / "rbac.yaml").is_file()
    ),
    Path.cwd() / "examples" / "install" / "rbac.yaml",
)
APPROVERS = ("alice", "bob", "carol")
# The operator's identity: the ServiceAccount that rbac.yaml binds to the modelreg-operator ClusterRole.
OPERATOR_USER = "system:serviceaccount:modelreg-system:modelreg-operator"
# Who the emulator's own control plane acts as (the stand-in Deployment controller): system:masters.
ADMIN = "admin"


def rbac_documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(RBAC_FILE.read_text()) if d]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmulatedCluster:
    """The API emulator served on 127.0.0.1 from a background thread with its own loop."""

    def __init__(self, crd_files: Iterable[str | Path], port: int | None = None) -> None:
        self.crds = [yaml.safe_load(Path(f).read_text()) for f in crd_files]
        self.port = port or free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.tls = self_signed(["127.0.0.1", "localhost"])
        self.token_key = secrets.token_bytes(32)  # the emulator's tokens are MACs under it
        self.ca_file = self.tls.ca_file
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="api-emulator", daemon=True)
        self.api: ApiServerEmulator | None = None

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        api = ApiServerEmulator()
        api.token_key = self.token_key
        for crd in self.crds:
            api.install_crd(crd)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls.cert_file, self.tls.key_file)
        async with kmock.Server(api, host="127.0.0.1", port=self.port, server_cls=_tls_server(context)):
            self.api = api
            self._ready.set()
            await self._stop.wait()
            await api.admission.close()

    def start(self) -> EmulatedCluster:
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("the API emulator did not start within 30s")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def delete_unseen(self, resource: str, namespace: str, name: str) -> None:
        """Delete without a watch event (a watch gap), e.g. resource "modelreg.io/v1alpha1/modelversions"."""
        assert self._loop is not None and self.api is not None
        done = asyncio.run_coroutine_threadsafe(
            self.api.delete_unseen(kmock.resource(resource), namespace, name), self._loop
        )
        done.result(timeout=10)

    def refuse(self, method: str, plural: str, status: int, message: str) -> None:
        """Answer every `method` request on `plural` (e.g. "PATCH", "deployments") with `status`."""
        assert self.api is not None
        self.api.refusals[(method.upper(), plural)] = (status, message)

    def delay(self, method: str, plural: str, seconds: float | None) -> None:
        """Answer each `method` ("*": any) request on `plural` only after `seconds` (None: at once again)."""
        assert self.api is not None
        if seconds is None:
            self.api.delays.pop((method.upper(), plural), None)
        else:
            self.api.delays[(method.upper(), plural)] = seconds

    def allow(self, method: str, plural: str) -> None:
        assert self.api is not None
        self.api.refusals.pop((method.upper(), plural), None)

    def configuration(self, user: str) -> Any:
        """The official client's configuration for `user` (its token)."""
        import kubernetes

        config = kubernetes.client.Configuration()
        config.host = self.url
        config.ssl_ca_cert = self.ca_file
        config.api_key = {"authorization": f"Bearer {self.token(user)}"}
        return config

    def token(self, user: str) -> str:
        """`user`'s bearer token (ApiServerEmulator.token_for, under this cluster's key)."""
        return bearer_token(self.token_key, user)

    def headers(self, user: str) -> dict[str, str]:
        """What a raw HTTP request carries to act as `user` (pass `verify=cluster.ca_file` too)."""
        return {"Authorization": f"Bearer {self.token(user)}"}

    def apply(self, documents: Iterable[dict[str, Any]], user: str = ADMIN) -> None:
        """Create objects as `user` (the emulator's administrator by default)."""
        import kubernetes

        with kubernetes.client.ApiClient(self.configuration(user)) as client:
            for doc in documents:
                kubernetes.utils.create_from_dict(client, doc)

    def grant_demo_users(self, rbac: Iterable[dict[str, Any]] | None = None) -> None:
        """`rbac` (default: the repository's, which binds OPERATOR_USER to the operator's
        ClusterRole), and the contract's users: alice, bob and carol edit and approve; dave edits only."""
        self.apply(rbac if rbac is not None else rbac_documents())
        bindings = {"modelreg-editor": (*APPROVERS, "dave"), "modelreg-approver": APPROVERS}
        self.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"{role}-demo-users"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": u} for u in users],
            }
            for role, users in bindings.items()
        )

    def write_kubeconfig(self, path: str | Path, namespace: str = "default", user: str = "developer") -> Path:
        path = Path(path)
        ca_data = base64.b64encode(Path(self.ca_file).read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "modelreg-emulator",
                    "cluster": {"server": self.url, "certificate-authority-data": ca_data},
                }
            ],
            "users": [{"name": user, "user": {"token": self.token(user)}}],
            "contexts": [
                {
                    "name": "modelreg-emulator",
                    "context": {"cluster": "modelreg-emulator", "user": user, "namespace": namespace},
                }
            ],
            "current-context": "modelreg-emulator",
        }
        path.write_text(yaml.safe_dump(config))
        return path


def _tls_server(context: ssl.SSLContext) -> type[aiohttp.test_utils.RawTestServer]:
    """kmock's server class, listening with TLS."""

    class TlsServer(aiohttp.test_utils.RawTestServer):
        async def start_server(self, **kwargs: Any) -> None:
            await super().start_server(ssl=context, **kwargs)

    return TlsServer


class S3Endpoint:
    """moto's S3 in server mode on loopback (a real S3 protocol peer for boto3)."""

    def __init__(self, port: int | None = None) -> None:
        from moto.server import ThreadedMotoServer

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.running = False

    def start(self) -> S3Endpoint:
        self._server.start()
        self.running = True
        return self

    def stop(self) -> None:
        if self.running:
            self._server.stop()
            self.running = False

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL_S3": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }


class S3Process(S3Endpoint):
    """moto's S3 in its own process: its CPU and buffers are not this process's (benchmarks,
    memory measurements)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None
        self.running = False

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> S3Process:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    self.running = True
                    return self
            time.sleep(0.1)
        self._process.kill()
        raise RuntimeError(f"moto server did not listen on {self.url} within 30s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)
            self.running = False


def with_test_trust(settings: Any) -> Any:
    """Settings as a test needs them: the test seal key (unless one is given) and the webhook
    on a free loopback port, self-signed, with configurations the operator manages."""
    approvals, webhook = settings.approvals, settings.webhook
    if approvals.seal_key_file is None:
        key_file = write_seal_key(Path(tempfile.mkdtemp(prefix="modelreg-seal-")) / "seal.key")
        approvals = approvals.model_copy(update={"seal_key_file": str(key_file)})
    if webhook.port == 9443:
        webhook = webhook.model_copy(update={"addr": "127.0.0.1", "host": "127.0.0.1", "port": free_port()})
    metrics = settings.metrics
    if metrics.port == 9090:  # several operators may run in one test process
        metrics = metrics.model_copy(update={"addr": "127.0.0.1", "port": free_port()})
    return settings.model_copy(update={"approvals": approvals, "webhook": webhook, "metrics": metrics})


class OperatorThread:
    """The real operator (`modelreg-operator run` minus argument parsing) on its own loop."""

    def __init__(self, settings: Any, namespaces: Iterable[str]) -> None:
        self.settings = with_test_trust(settings)
        self.namespaces = list(namespaces)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="operator", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        from modelreg.main import run_operator

        try:
            run_operator(self.settings, self.namespaces, stop_flag=self._stop, ready_flag=self._ready)
        except BaseException as exc:  # surfaced to the test that started it
            self.error = exc
            self._ready.set()

    def start(self, wait: bool = True) -> OperatorThread:
        """Start; with `wait`, return once it runs (a standby replica does not, until it leads)."""
        self._thread.start()
        if wait and (not self._ready.wait(timeout=60) or self.error):
            raise RuntimeError(f"the operator did not start: {self.error!r}")
        return self

    @property
    def running(self) -> bool:
        """Its handlers run (it holds the Lease, or leader election is off)."""
        return self._ready.is_set() and self.error is None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
