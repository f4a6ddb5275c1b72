"""The contract's roles, as shipped in examples/install/rbac.yaml (the chart templates the same)."""

from __future__ import annotations

import yaml

from tests.conftest import ROOT

ROLES = {
    d["metadata"]["name"]: d
    for d in yaml.safe_load_all((ROOT / "examples/install/rbac.yaml").read_text())
    if d and d["kind"] == "ClusterRole"
}


def resources(role: str) -> set[str]:
    return {r for rule in ROLES[role]["rules"] for r in rule["resources"]}


def test_the_operator_holds_no_wildcard_and_only_what_it_uses():
    rules = ROLES["modelreg-operator"]["rules"]
    assert all("*" not in rule[k] for rule in rules for k in ("apiGroups", "resources", "verbs"))
    verbs = {(r, v) for rule in rules for r in rule["resources"] for v in rule["verbs"]}
    assert ("modelversions/status", "patch") in verbs and ("subjectaccessreviews", "create") in verbs
    assert not any(v in ("delete", "deletecollection", "escalate", "bind", "impersonate") for _, v in verbs)
    assert not any(r in ("secrets", "pods", "clusterroles", "rolebindings") for r, _ in verbs)


def test_editors_write_no_status_and_approvers_only_approve():
    assert not any("/" in r for r in resources("modelreg-editor"))
    assert resources("modelreg-editor") == {"modelversions", "modelpromotions"}
    approver = ROLES["modelreg-approver"]["rules"]
    assert approver == [{"apiGroups": ["modelreg.io"], "resources": ["modelstages"], "verbs": ["approve"]}]


def test_viewer_and_editor_aggregate_into_the_built_in_roles():
    labels = {name: role["metadata"].get("labels") or {} for name, role in ROLES.items()}
    assert labels["modelreg-viewer"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert labels["modelreg-editor"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert (
        "rbac.authorization.k8s.io/aggregate-to-edit" not in labels["modelreg-approver"]
    )  # approving is granted apart


def test_the_operator_reads_secrets_only_in_its_own_namespace():
    docs = [d for d in yaml.safe_load_all((ROOT / "examples/install/rbac.yaml").read_text()) if d]
    secret_rules = [
        (d["kind"], d["metadata"].get("namespace"))
        for d in docs
        if d["kind"] in ("Role", "ClusterRole")
        for rule in d["rules"]
        if "secrets" in rule["resources"]
    ]
    assert secret_rules == [("Role", "modelreg-system")]


def test_the_operator_writes_configmaps_only_in_its_own_namespace():
    # The outbox holds what the operator will sign and send: no tenant may write it.
    docs = [d for d in yaml.safe_load_all((ROOT / "examples/install/rbac.yaml").read_text()) if d]
    writes = [
        (d["kind"], d["metadata"].get("namespace"))
        for d in docs
        if d["kind"] in ("Role", "ClusterRole") and d["metadata"]["name"].startswith("modelreg-operator")
        for rule in d["rules"]
        if "configmaps" in rule["resources"] and set(rule["verbs"]) - {"get", "list", "watch"}
    ]
    assert writes == [("Role", "modelreg-system")]
