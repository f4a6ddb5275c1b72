"""The API emulator authenticates and authorizes every request, as an API server does (the
`cluster` fixture has applied examples/install/rbac.yaml and the demo users' bindings)."""

from __future__ import annotations

import http.client
import json
import ssl

import requests

from modelreg.sandbox.harness import OPERATOR_USER

MVS = "/apis/modelreg.io/v1alpha1/namespaces/ml/modelversions"
WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
RBAC = "/apis/rbac.authorization.k8s.io/v1"


def call(cluster, method: str, path: str, user: str | None, body=None, headers=None) -> requests.Response:
    sent = {**(cluster.headers(user) if user else {}), **(headers or {})}
    if body is not None:
        sent.setdefault("Content-Type", "application/merge-patch+json" if method == "PATCH" else "application/json")
    return requests.request(method, cluster.url + path, json=body, headers=sent, verify=cluster.ca_file, timeout=10)


def whoami(cluster, user: str, headers: list[tuple[str, str]]) -> dict:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", cluster.port, context=ssl.create_default_context(cafile=cluster.ca_file), timeout=10
    )
    connection.putrequest("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews")
    body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode()
    for name, value in [*cluster.headers(user).items(), *headers, ("Content-Type", "application/json")]:
        connection.putheader(name, value)
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    answer = json.loads(connection.getresponse().read())
    connection.close()
    return answer["status"]["userInfo"]


def test_no_token_or_an_unknown_one_is_401_whatever_it_claims(cluster):
    # a user's name is not their token: the MAC of another user's, or none, is refused
    bob_mac = cluster.token("bob").rpartition(".")[2]
    forged = [f"Bearer emulator-token-{user}" for user in ("admin", OPERATOR_USER)] + [
        f"Bearer emulator-token-admin.{bob_mac}"
    ]
    for headers in (
        {},
        {"Authorization": "Bearer forged"},
        {"Impersonate-User": OPERATOR_USER},
        *({"Authorization": token} for token in forged),
    ):
        for method, path in (("GET", MVS), ("GET", "/apis"), ("DELETE", f"{WEBHOOKS}/x")):
            response = call(cluster, method, path, None, headers=headers)
            assert response.status_code == 401 and response.json()["reason"] == "Unauthorized", (headers, path)


def test_the_operator_identity_holds_what_its_cluster_role_grants_and_no_more(cluster):
    mv = {
        "metadata": {"name": "a-v1"},
        "spec": {"modelName": "a", "version": 1, "artifact": {"uri": "s3://models/a", "sha256": "0" * 64}},
    }
    assert call(cluster, "POST", MVS, "alice", {"apiVersion": "modelreg.io/v1alpha1", "kind": "ModelVersion", **mv}).ok
    assert call(cluster, "GET", "/apis/modelreg.io/v1alpha1/modelversions", OPERATOR_USER).ok  # every namespace
    assert call(cluster, "PATCH", f"{MVS}/a-v1/status", OPERATOR_USER, {"status": {"observedGeneration": 1}}).ok
    assert call(cluster, "DELETE", f"{MVS}/a-v1", OPERATOR_USER).status_code == 403  # it deletes nothing
    assert call(cluster, "GET", "/api/v1/namespaces/ml/secrets", OPERATOR_USER).status_code == 403
    assert call(cluster, "PATCH", f"{MVS}/a-v1/status", "alice", {"status": {}}).status_code == 403


def test_only_administrators_delete_webhook_configurations_or_change_rbac(cluster):
    config = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration"}
    assert call(cluster, "POST", WEBHOOKS, "admin", {**config, "metadata": {"name": "w"}}).status_code == 201
    for user in ("alice", "dave"):
        refused = call(cluster, "DELETE", f"{WEBHOOKS}/w", user)
        assert refused.status_code == 403 and f'User "{user}" cannot delete' in refused.json()["message"]
        assert call(cluster, "PATCH", f"{RBAC}/clusterroles/modelreg-editor", user, {"rules": []}).status_code == 403
    assert call(cluster, "DELETE", f"{WEBHOOKS}/w", "admin").ok


def test_impersonation_with_the_verb_acts_as_the_impersonated_user_and_groups(cluster):
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "impersonator"},
        "rules": [{"apiGroups": [""], "resources": ["users", "groups"], "verbs": ["impersonate"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "carol-impersonates"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "impersonator"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "carol"}],
    }
    cluster.apply([role, binding])
    # kubectl --as=dave --as-group=sre --as-group=ops: the header repeated, each value checked
    headers = [("Impersonate-User", "dave"), ("Impersonate-Group", "sre"), ("Impersonate-Group", "ops")]
    assert whoami(cluster, "carol", headers) == {"username": "dave", "groups": ["sre", "ops", "system:authenticated"]}
    as_dave = call(cluster, "POST", f"{RBAC}/clusterrolebindings", "carol", binding, {"Impersonate-User": "dave"})
    assert as_dave.status_code == 403 and 'User "dave" cannot create' in as_dave.json()["message"]
    denied = call(cluster, "GET", MVS, "dave", headers={"Impersonate-User": "carol"})
    assert denied.status_code == 403 and 'User "dave" cannot impersonate resource "users"' in denied.json()["message"]


def test_malformed_writes_and_unknown_subresources_are_refused_and_break_nothing(cluster):
    """A user's empty create reached kmock's own write (no admission, an event without metadata
    that stopped the operator's watch); a write to /apis/x broke discovery for everyone; and
    modelversions/NAME/anything acted on the object itself, past admission."""
    assert call(cluster, "POST", MVS, "dave", {}).status_code == 422
    assert call(cluster, "POST", MVS, "dave", [1]).status_code == 400
    assert call(cluster, "POST", "/apis/x", "dave", {}).status_code == 404
    assert call(cluster, "GET", "/apis", "dave").ok and call(cluster, "GET", MVS, "dave").json()["items"] == []
    mv = {
        "apiVersion": "modelreg.io/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": "b-v1"},
        "spec": {"modelName": "b", "version": 1, "artifact": {"uri": "s3://models/b", "sha256": "0" * 64}},
    }
    assert call(cluster, "POST", MVS, "admin", mv).ok
    for method, body in (("GET", None), ("PATCH", {"spec": {"description": "x"}}), ("DELETE", None)):
        answer = call(cluster, method, f"{MVS}/b-v1/anything", "admin", body)
        assert answer.status_code == 404 and "Traceback" not in answer.text, (method, answer.text)
    kept = call(cluster, "GET", f"{MVS}/b-v1", "admin").json()
    assert "description" not in kept["spec"] and not kept["metadata"].get("deletionTimestamp")
