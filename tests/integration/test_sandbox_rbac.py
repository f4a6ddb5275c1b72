"""The sandbox authorizes every request from its RBAC, through the real kubectl (issue 18, item 9).

dave (an editor) cannot bind himself a role; anonymous requests and token-less impersonation are
refused; only administrators touch RBAC and webhook configurations; only the operator's identity
writes status. The requests go over the wire exactly as a newcomer's would.
"""

from __future__ import annotations

import base64
import json
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.integration.test_sandbox import FORGE_STAGE, start_sandbox, urls

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

OPERATOR = "system:serviceaccount:modelreg-system:modelreg-operator"
VERSION = (
    "apiVersion: modelreg.io/v1alpha1\nkind: ModelVersion\nmetadata: {name: fraud-v1, namespace: default}\n"
    "spec: {modelName: fraud, version: 1, artifact: {uri: 's3://models/fraud/1', sha256: '%s'}}\n" % ("0" * 64)
)
PROMOTION = (
    "apiVersion: modelreg.io/v1alpha1\nkind: ModelPromotion\nmetadata: {name: p, namespace: default}\n"
    "spec: {modelName: fraud, version: 1, targetStage: Production}\n"
)
BINDING = "dave-approves"


class Sandbox:
    def __init__(self, workdir: Path, api: str) -> None:
        self.workdir, self.api = workdir, api
        admin = yaml.safe_load((workdir / "kubeconfig").read_text())
        cluster = admin["clusters"][0]["cluster"]
        ca = cluster.get("certificate-authority-data")
        self.verify: str | bool = False
        if ca:  # the CA the sandbox made, for raw requests
            self.verify = str(workdir / "ca.crt")
            Path(self.verify).write_bytes(base64.b64decode(ca))
        # The sandbox's address (and CA) with a token it never issued. (kubectl cannot send a request
        # without credentials over TLS: it prompts for a password; curl can, see `anonymous`.)
        forged = {**admin, "users": [{"name": "mallory", "user": {"token": "forged"}}]}
        forged["contexts"] = [{**c, "context": {**c["context"], "user": "mallory"}} for c in admin["contexts"]]
        (workdir / "kubeconfig-forged").write_text(yaml.safe_dump(forged))

    def anonymous(self, method: str, path: str, body: object = None, **headers: str) -> requests.Response:
        """What `curl -X METHOD` with no credentials sends."""
        content = {"Content-Type": "application/merge-patch+json" if method == "PATCH" else "application/json"}
        headers = {**content, **{k.replace("_", "-"): v for k, v in headers.items()}}
        data = None if body is None else json.dumps(body)
        return requests.request(method, self.api + path, data=data, headers=headers, verify=self.verify, timeout=10)

    def kubectl(self, user: str | None, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        config = self.workdir / (f"kubeconfig-{user}" if user else "kubeconfig")
        return subprocess.run(
            ["kubectl", "--kubeconfig", str(config), *args], input=stdin, capture_output=True, text=True, timeout=30
        )

    def ok(self, user: str | None, *args: str, stdin: str | None = None) -> str:
        done = self.kubectl(user, *args, stdin=stdin)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def refused(self, user: str | None, *args: str, words: str) -> None:
        done = self.kubectl(user, *args)
        assert done.returncode != 0 and words in done.stderr, (user, args, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    workdir = Path(tempfile.mkdtemp(prefix="modelreg-sandbox-rbac-"))
    process, banner = start_sandbox(workdir)
    try:
        assert "Press Ctrl-C" in banner, banner
        box = Sandbox(workdir, urls(banner)["api"])
        box.ok(None, "apply", "--validate=false", "-f", "-", stdin=VERSION)
        box.ok("alice", "create", "--validate=false", "-f", "-", stdin=PROMOTION)
        deadline = time.monotonic() + 30  # the operator's webhooks are registered once it runs
        while "validatingwebhookconfiguration" not in box.ok(
            None, "get", "validatingwebhookconfigurations", "-o", "name"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.3)
        yield box
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


def test_dave_cannot_bind_himself_a_role(sandbox):
    binding = {  # what dave applied in the issue (JSON is YAML)
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": BINDING},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "modelreg-approver"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dave"}],
    }
    done = sandbox.kubectl("dave", "apply", "-f", "-", stdin=json.dumps(binding))
    assert done.returncode != 0 and 'User "dave" cannot' in done.stderr, done.stdout + done.stderr
    grant = ("create", "clusterrolebinding", BINDING, "--clusterrole=modelreg-approver", "--user=dave")
    sandbox.refused("dave", *grant, words='User "dave" cannot create resource "clusterrolebindings"')
    sandbox.refused(None, "get", "clusterrolebinding", BINDING, words="NotFound")
    # nor a RoleBinding in the namespace he edits, nor one edited in place
    rolebinding = ("create", "rolebinding", BINDING, "--clusterrole=modelreg-approver", "--user=dave")
    sandbox.refused("dave", *rolebinding, words='User "dave" cannot create resource "rolebindings"')
    patch = json.dumps({"subjects": [{"kind": "User", "name": "dave", "apiGroup": "rbac.authorization.k8s.io"}]})
    edit = ("patch", "clusterrolebinding", "modelreg-approver-demo-users", "--type=merge", "-p", patch)
    sandbox.refused("dave", *edit, words='User "dave" cannot')
    # so his approval is still refused by the webhook, as the contract says
    sandbox.refused(
        "dave", "annotate", "mp", "p", "approval.modelreg.io/dave=dave", words="dave may not approve fraud/Production"
    )


def test_anonymous_requests_are_refused(sandbox):
    assert sandbox.anonymous("GET", "/apis/modelreg.io/v1alpha1/modelversions").status_code == 401
    binding = {  # what the anonymous curl of the issue sent
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "curl-approves"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "modelreg-approver"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dave"}],
    }
    response = sandbox.anonymous("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)
    assert response.status_code == 401, response.text
    sandbox.refused(None, "get", "clusterrolebinding", "curl-approves", words="NotFound")
    # a token the sandbox never issued is no identity either
    sandbox.refused("forged", "get", "mv", words="Unauthorized")
    grant = ("create", "clusterrolebinding", "forged-approves", "--clusterrole=modelreg-approver", "--user=dave")
    sandbox.refused("forged", *grant, words="Unauthorized")
    sandbox.refused(None, "get", "clusterrolebinding", "forged-approves", words="NotFound")


def test_impersonation_needs_the_impersonate_verb(sandbox):
    status = FORGE_STAGE
    # no credentials, only a claimed identity (the issue's token-less Impersonate-User): refused
    response = sandbox.anonymous(
        "PATCH",
        "/apis/modelreg.io/v1alpha1/namespaces/default/modelversions/fraud-v1/status",
        {"status": {"stage": "Production"}},
        Impersonate_User=OPERATOR,
    )
    assert response.status_code == 401, response.text
    sandbox.refused("forged", f"--as={OPERATOR}", *status, words="Unauthorized")
    # dave holds no `impersonate`: not on a service account, a user, or (even as himself) a group
    sandbox.refused(
        "dave", f"--as={OPERATOR}", *status, words='cannot impersonate resource "serviceaccounts" in API group ""'
    )
    sandbox.refused("dave", "--as=bob", "get", "mv", words='User "dave" cannot impersonate resource "users"')
    sandbox.refused(
        "dave", "--as=dave", "--as-group=system:masters", "get", "mv", words='User "dave" cannot impersonate'
    )
    assert "Production" not in sandbox.ok(None, "get", "mv", "fraud-v1")
    # an administrator may impersonate; the request is then authorized as the impersonated user
    sandbox.refused(
        None, "--as=dave", "create", "clusterrolebinding", "x", "--clusterrole=view", "--user=dave", words='User "dave"'
    )


def test_only_the_operator_identity_writes_status(sandbox):
    status = FORGE_STAGE
    for user in ("alice", "dave"):
        sandbox.refused(user, *status, words='resource "modelversions/status"')
    assert "Production" not in sandbox.ok(None, "get", "mv", "fraud-v1")
    # the operator's own identity holds status through its ClusterRole
    same = json.dumps({"status": {"observedGeneration": 1}})  # what it wrote already: changes nothing
    sandbox.ok("operator", "patch", "mv", "fraud-v1", "--subresource=status", "--type=merge", "-p", same)


def test_only_administrators_change_webhook_configurations(sandbox):
    for kind in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
        names = sandbox.ok(None, "get", kind, "-o", "name").split()
        assert names, kind
        for user in ("alice", "dave"):
            sandbox.refused(user, "delete", names[0], words=f'cannot delete resource "{kind}"')
            sandbox.refused(user, "get", kind, words=f'cannot list resource "{kind}"')
        assert sandbox.ok(None, "get", kind, "-o", "name").split() == names
    # and RBAC itself: an approver cannot widen a role either
    rule = '[{"op":"add","path":"/rules/-","value":{"apiGroups":["*"],"resources":["*"],"verbs":["*"]}}]'
    sandbox.refused(
        "alice", "patch", "clusterrole", "modelreg-editor", "--type=json", "-p", rule, words='resource "clusterroles"'
    )
