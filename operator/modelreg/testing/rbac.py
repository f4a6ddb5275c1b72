"""RBAC as the API server's authorizer evaluates it, for the emulator's SubjectAccessReviews.

Covers what the sandbox and tests bind: Roles and ClusterRoles (with aggregation by
matchLabels), RoleBindings and ClusterRoleBindings to Users, Groups and ServiceAccounts,
resourceNames, subresources, and `system:masters`. Non-resource URLs are not emulated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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

    def _cluster_role_rules(self, name: str) -> list[Obj]:
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

    def allowed(self, a: Attributes) -> bool:
        if "system:masters" in a.groups:
            return True
        for binding in self.objects.get("ClusterRoleBinding", []):
            if any(_subject_is(s, "", a) for s in binding.get("subjects") or []) and any(
                _rule_allows(rule, a) for rule in self._rules(binding["roleRef"], "")
            ):
                return True
        for binding in self.objects.get("RoleBinding", []):
            namespace = binding["metadata"].get("namespace", "")
            if namespace != a.namespace:
                continue
            if any(_subject_is(s, namespace, a) for s in binding.get("subjects") or []) and any(
                _rule_allows(rule, a) for rule in self._rules(binding["roleRef"], namespace)
            ):
                return True
        return False
