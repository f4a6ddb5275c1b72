"""RBAC as the API server's authorizer evaluates it: every request the emulator serves, and
its SubjectAccessReviews.

Covers what the sandbox and tests bind: Roles and ClusterRoles (with aggregation by
matchLabels), RoleBindings and ClusterRoleBindings to Users, Groups and ServiceAccounts,
resourceNames, subresources, `system:masters`, and impersonation (verb `impersonate`).
Non-resource URLs (discovery, OpenAPI, version) are open to every authenticated user, as the
built-in `system:discovery` role makes them; RBAC's escalation checks (`bind`, `escalate`) are
not emulated: only `system:masters` holds any permission on RBAC objects in the sandbox.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Attributes:
    user: str
    groups: tuple[str, ...]
    verb: str
    group: str
    resource: str
    subresource: str = ""
    name: str = ""
    namespace: str = ""


def _has(values: Iterable[str] | None, wanted: str) -> bool:
    values = list(values or [])
    return "*" in values or wanted in values


def _rule_allows(rule: Obj, a: Attributes) -> bool:
    resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    names = rule.get("resourceNames") or []
    return (
        _has(rule.get("apiGroups"), a.group)
        and _has(rule.get("resources"), resource)
        and _has(rule.get("verbs"), a.verb)
        and (not names or a.name in names)
    )


def _subject_is(subject: Obj, binding_namespace: str, a: Attributes) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == a.user
    if kind == "Group":
        return name in a.groups
    if kind == "ServiceAccount":
        return a.user == f"system:serviceaccount:{subject.get('namespace') or binding_namespace}:{name}"
    return False


class Authorizer:
    """`objects` maps each RBAC kind (Role, ClusterRole, RoleBinding, ClusterRoleBinding) to its objects."""

    def __init__(self, objects: Mapping[str, list[Obj]]) -> None:
        self.objects = objects
        # Every request is authorized: the ClusterRoles' rules are gathered once per set of objects.
        self._cluster_rules: dict[str, list[Obj]] = {}

    def _cluster_role_rules(self, name: str) -> list[Obj]:
        if name not in self._cluster_rules:
            self._cluster_rules[name] = self._gather_cluster_role_rules(name)
        return self._cluster_rules[name]

    def _gather_cluster_role_rules(self, name: str) -> list[Obj]:
        roles = {r["metadata"]["name"]: r for r in self.objects.get("ClusterRole", [])}
        role = roles.get(name)
        if role is None:
            return []
        rules = list(role.get("rules") or [])
        for selector in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []:
            wanted = selector.get("matchLabels") or {}
            for other in roles.values():
                labels = other["metadata"].get("labels") or {}
                if other is not role and wanted and all(labels.get(k) == v for k, v in wanted.items()):
                    rules.extend(other.get("rules") or [])
        return rules

    def _rules(self, ref: Obj, namespace: str) -> list[Obj]:
        if ref.get("kind") == "ClusterRole":
            return self._cluster_role_rules(ref.get("name", ""))
        role = next(
            (
                r
                for r in self.objects.get("Role", [])
                if r["metadata"]["name"] == ref.get("name") and r["metadata"].get("namespace") == namespace
            ),
            None,
        )
        return list((role or {}).get("rules") or [])

    def _bound_rules(self, a: Attributes) -> Iterator[Obj]:
        """The rules of each binding whose subjects include `a`'s user or one of its groups: every
        ClusterRoleBinding, and the RoleBindings in `a.namespace` (lazily: `allowed` stops at the first)."""
        for binding in self.objects.get("ClusterRoleBinding", []):
            if any(_subject_is(s, "", a) for s in binding.get("subjects") or []):
                yield from self._rules(binding["roleRef"], "")
        for binding in self.objects.get("RoleBinding", []):
            namespace = binding["metadata"].get("namespace", "")
            if namespace == a.namespace and any(_subject_is(s, namespace, a) for s in binding.get("subjects") or []):
                yield from self._rules(binding["roleRef"], namespace)

    def rules(self, user: str, groups: tuple[str, ...], namespace: str) -> list[Obj]:
        """The rules that apply to `user` in `namespace` (a SelfSubjectRulesReview's answer)."""
        if "system:masters" in groups:
            return [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
        a = Attributes(user=user, groups=groups, verb="", group="", resource="", namespace=namespace)
        return [*BASIC_USER_RULES, *self._bound_rules(a)]

    def allowed(self, a: Attributes) -> bool:
        return "system:masters" in a.groups or any(_rule_allows(rule, a) for rule in self._bound_rules(a))


# -- requests -> attributes (the API server's RequestInfoFactory, reduced) -------------------------
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}
_NAMESPACE_SUBRESOURCES = {"status", "finalize"}
# What every authenticated user may create (the built-in system:basic-user role).
_SELF_REVIEWS = {"selfsubjectreviews", "selfsubjectaccessreviews", "selfsubjectrulesreviews"}
BASIC_USER_RULES: list[Obj] = [  # the built-in system:basic-user role's
    {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"]},
    {
        "verbs": ["create"],
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
    },
]


@dataclass(frozen=True)
class RequestInfo:
    """What a request asks, in RBAC's terms; `resource` empty for a non-resource URL."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    namespace: str = ""
    path: str = ""


def request_info(method: str, path: str, params: Mapping[str, str]) -> RequestInfo:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    elif len(parts) >= 2 and parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        rest = []
    if not rest:  # discovery (/api, /apis/<group>/<version>), /openapi, /version, ...
        return RequestInfo(verb=method.lower(), path=path)
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]  # /namespaces/<ns>/<resource>...; else the namespace object itself
    resource, name, subresource = [*rest, "", "", ""][:3]
    if method in ("GET", "HEAD"):
        verb = "watch" if params.get("watch") in ("true", "1") else "get" if name else "list"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = _VERBS.get(method, method.lower())
    return RequestInfo(verb, group, resource, subresource, name, namespace, path)


def forbidden_message(user: str, info: RequestInfo) -> str:
    """The API server's wording for a 403."""
    qualified = f"{info.resource}.{info.group}" if info.group else info.resource
    what = f'{qualified} "{info.name}"' if info.name else qualified
    resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
    scope = f'in the namespace "{info.namespace}"' if info.namespace else "at the cluster scope"
    return (
        f'{what} is forbidden: User "{user}" cannot {info.verb} resource "{resource}" '
        f'in API group "{info.group}" {scope}'
    )


class Forbidden(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def authorize(authorizer: Authorizer, user: Mapping[str, Any], info: RequestInfo) -> None:
    """Raise Forbidden unless `user` (username, groups) may do what `info` asks."""
    if not info.resource or (info.verb == "create" and info.resource in _SELF_REVIEWS):
        return
    attributes = Attributes(
        user=user["username"],
        groups=tuple(user.get("groups") or ()),
        verb=info.verb,
        group=info.group,
        resource=info.resource,
        subresource=info.subresource,
        name=info.name,
        namespace=info.namespace,
    )
    if not authorizer.allowed(attributes):
        raise Forbidden(forbidden_message(user["username"], info))


def service_account_groups(username: str) -> list[str]:
    parts = username.split(":")
    if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
        return ["system:serviceaccounts", f"system:serviceaccounts:{parts[2]}"]
    return []


def impersonate(
    authorizer: Authorizer, user: Mapping[str, Any], headers: Iterable[tuple[str, str]]
) -> Mapping[str, Any]:
    """The user a request acts as: `user` itself, or the one its Impersonate-* headers name if
    `user` holds `impersonate` on each (users or serviceaccounts, groups, uids, userextras), as
    kube-apiserver checks them. `headers`: every (name, value), repeated names included."""
    found = [(k.lower(), v) for k, v in headers if k.lower().startswith("impersonate-")]
    as_user = next((v for k, v in found if k == "impersonate-user"), None)
    uid = next((v for k, v in found if k == "impersonate-uid"), None)
    groups = [v for k, v in found if k == "impersonate-group"]
    extras = [(k.removeprefix("impersonate-extra-"), v) for k, v in found if k.startswith("impersonate-extra-")]
    if as_user is None:
        if found:
            raise Forbidden("requested impersonation of groups, extra or uid without impersonating a user")
        return user
    sa = as_user.split(":")
    if len(sa) == 4 and sa[:2] == ["system", "serviceaccount"]:
        checks = [RequestInfo("impersonate", "", "serviceaccounts", name=sa[3], namespace=sa[2])]
    else:
        checks = [RequestInfo("impersonate", "", "users", name=as_user)]
    checks += [RequestInfo("impersonate", "", "groups", name=g) for g in groups]
    checks += [RequestInfo("impersonate", "authentication.k8s.io", "uids", name=uid)] if uid else []
    checks += [RequestInfo("impersonate", "authentication.k8s.io", "userextras", k, name=v) for k, v in extras]
    for check in checks:
        authorize(authorizer, user, check)
    implied = service_account_groups(as_user) if not groups else []
    everyone = "system:unauthenticated" if as_user == "system:anonymous" else "system:authenticated"
    impersonated: dict[str, Any] = {"username": as_user, "groups": list(dict.fromkeys([*groups, *implied, everyone]))}
    if uid:
        impersonated["uid"] = uid
    if extras:
        impersonated["extra"] = {k: [v for key, v in extras if key == k] for k, _ in extras}
    return impersonated
