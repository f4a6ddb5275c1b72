"""The emulator's RBAC answers (the sandbox's SubjectAccessReviews) match the API server's rules."""

from modelreg.sandbox.rbac import Attributes, Authorizer


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


# -- every request, as the emulator authorizes it ------------------------------------------------
def test_requests_map_to_rbac_attributes_as_the_api_server_parses_them():
    from modelreg.sandbox.rbac import RequestInfo, request_info

    mvs = "/apis/modelreg.io/v1alpha1/namespaces/ml/modelversions"
    assert request_info("GET", mvs, {}) == RequestInfo("list", "modelreg.io", "modelversions", namespace="ml", path=mvs)
    assert request_info("GET", mvs, {"watch": "true"}).verb == "watch"
    assert request_info("GET", f"{mvs}/a", {}).verb == "get"
    assert request_info("DELETE", mvs, {}).verb == "deletecollection"
    status = request_info("PATCH", f"{mvs}/a/status", {})
    assert (status.verb, status.resource, status.subresource, status.name) == ("patch", "modelversions", "status", "a")
    assert request_info("POST", "/api/v1/namespaces/ml/events", {}).resource == "events"
    namespace = request_info("GET", "/api/v1/namespaces/ml", {})
    assert (namespace.resource, namespace.name, namespace.namespace) == ("namespaces", "ml", "ml")
    crb = request_info("DELETE", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/x", {})
    assert (crb.verb, crb.group, crb.resource, crb.namespace) == (
        "delete",
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "",
    )
    assert request_info("GET", "/apis/modelreg.io/v1alpha1", {}).resource == ""  # discovery
    assert request_info("GET", "/openapi/v3", {}).resource == ""


def test_every_request_is_authorized_and_the_denial_reads_as_the_api_servers():
    import pytest

    from modelreg.sandbox.rbac import Forbidden, authorize, request_info

    rbac = Authorizer(RBAC)
    dave = {"username": "dave", "groups": ["system:authenticated"]}
    with pytest.raises(Forbidden) as denied:
        authorize(rbac, dave, request_info("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {}))
    assert denied.value.message == (
        'clusterrolebindings.rbac.authorization.k8s.io is forbidden: User "dave" cannot create resource '
        '"clusterrolebindings" in API group "rbac.authorization.k8s.io" at the cluster scope'
    )
    authorize(rbac, dave, request_info("GET", "/apis", {}))  # discovery: every authenticated user
    authorize(rbac, dave, request_info("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {}))
    authorize(rbac, {"username": "erin", "groups": ["sre"]}, request_info("GET", "/api/v1/namespaces/ml/pods/p", {}))
    authorize(rbac, {"username": "root", "groups": ["system:masters"]}, request_info("DELETE", "/api/v1/nodes/n", {}))


def test_impersonation_needs_the_impersonate_verb_on_each_user_group_and_service_account():
    import pytest

    from modelreg.sandbox.rbac import Forbidden, impersonate

    rbac = Authorizer(
        {
            **RBAC,
            "ClusterRole": [
                *RBAC["ClusterRole"],
                {
                    "metadata": {"name": "support"},
                    "rules": [
                        {"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"], "resourceNames": ["bob"]},
                        {
                            "apiGroups": [""],
                            "resources": ["groups"],
                            "verbs": ["impersonate"],
                            "resourceNames": ["sre"],
                        },
                        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]},
                    ],
                },
            ],
            "ClusterRoleBinding": [
                *RBAC["ClusterRoleBinding"],
                {
                    "metadata": {"name": "s"},
                    "roleRef": {"kind": "ClusterRole", "name": "support"},
                    "subjects": [{"kind": "User", "name": "sam"}],
                },
            ],
        }
    )
    sam = {"username": "sam", "groups": ["system:authenticated"]}
    dave = {"username": "dave", "groups": ["system:authenticated"]}
    assert impersonate(rbac, dave, [("Accept", "application/json")]) is dave  # no Impersonate-*: itself
    assert impersonate(rbac, sam, [("Impersonate-User", "bob")]) == {
        "username": "bob",
        "groups": ["system:authenticated"],
    }
    as_sre = impersonate(rbac, sam, [("impersonate-user", "bob"), ("Impersonate-Group", "sre")])
    assert as_sre["groups"] == ["sre", "system:authenticated"]
    operator = "system:serviceaccount:modelreg-system:modelreg-operator"
    assert impersonate(rbac, sam, [("Impersonate-User", operator)])["groups"] == [
        "system:serviceaccounts",
        "system:serviceaccounts:modelreg-system",
        "system:authenticated",
    ]
    refusals = {
        ("dave", (("Impersonate-User", operator),)): 'cannot impersonate resource "serviceaccounts"',
        ("dave", (("Impersonate-User", "dave"),)): 'cannot impersonate resource "users"',  # not even himself
        ("sam", (("Impersonate-User", "carol"),)): 'users "carol" is forbidden',  # resourceNames narrow it
        ("sam", (("Impersonate-User", "bob"), ("Impersonate-Group", "system:masters"))): 'groups "system:masters"',
        ("sam", (("Impersonate-Group", "sre"),)): "without impersonating a user",
    }
    users = {"dave": dave, "sam": sam}
    for (user, headers), words in refusals.items():
        with pytest.raises(Forbidden, match=words):
            impersonate(rbac, users[user], list(headers))
