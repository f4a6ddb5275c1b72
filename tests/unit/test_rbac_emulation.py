"""The emulator's RBAC answers (the sandbox's SubjectAccessReviews) match the API server's rules."""

from modelreg.testing.rbac import Attributes, Authorizer


def approve(user, name, namespace="ml", groups=()):
    return Attributes(user, tuple(groups), "approve", "modelreg.io", "modelstages", name=name, namespace=namespace)


RBAC = {
    "ClusterRole": [
        {
            "metadata": {"name": "modelreg-approver"},
            "rules": [{"apiGroups": ["modelreg.io"], "resources": ["modelstages"], "verbs": ["approve"]}],
        },
        {"metadata": {"name": "agg"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}},
        {
            "metadata": {"name": "part", "labels": {"x": "y"}},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        },
    ],
    "Role": [
        {
            "metadata": {"name": "fraud-prod", "namespace": "ml"},
            "rules": [
                {
                    "apiGroups": ["modelreg.io"],
                    "resources": ["modelstages"],
                    "verbs": ["approve"],
                    "resourceNames": ["fraud/Production"],
                }
            ],
        }
    ],
    "ClusterRoleBinding": [
        {
            "metadata": {"name": "b"},
            "roleRef": {"kind": "ClusterRole", "name": "modelreg-approver"},
            "subjects": [{"kind": "User", "name": "bob"}],
        },
        {
            "metadata": {"name": "g"},
            "roleRef": {"kind": "ClusterRole", "name": "agg"},
            "subjects": [{"kind": "Group", "name": "sre"}],
        },
    ],
    "RoleBinding": [
        {
            "metadata": {"name": "ci", "namespace": "ml"},
            "roleRef": {"kind": "Role", "name": "fraud-prod"},
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"}],
        }
    ],
}


def test_bindings_resource_names_namespaces_groups_and_aggregation():
    rbac = Authorizer(RBAC)
    assert rbac.allowed(approve("bob", "fraud/Production"))
    assert not rbac.allowed(approve("dave", "fraud/Production"))
    ci = "system:serviceaccount:ci:deployer"
    assert rbac.allowed(approve(ci, "fraud/Production"))
    assert not rbac.allowed(approve(ci, "fraud/Staging"))  # resourceNames narrow it
    assert not rbac.allowed(approve(ci, "fraud/Production", namespace="other"))  # a RoleBinding is namespaced
    pods = Attributes("erin", ("sre",), "get", "", "pods", namespace="ml")
    assert rbac.allowed(pods) and not rbac.allowed(Attributes("erin", (), "get", "", "pods"))
    assert rbac.allowed(Attributes("root", ("system:masters",), "delete", "", "nodes"))
