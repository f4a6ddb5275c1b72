"""The admission webhook's rules: who may request, approve and write status.

Mutating: stamp `modelreg.io/requested-by` (sealed) on CREATE, seal each approval the
requesting user gives, and undo any seal a user wrote. Validating: deny, naming the rule,
what the contract forbids. Every decision is re-checked by the operator from the seals, so
a webhook bypassed (or installed late) lets nothing through that it would have denied.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from modelreg.domain import promotions as domain
from modelreg.domain.approvals import (
    GITOPS,
    REGISTERED_AT,
    REQUESTED_BY,
    REQUESTED_BY_SEAL,
    SEAL_PREFIX,
    ApprovalSeals,
    Candidate,
    approval_key,
    approvals_in,
    seal_key,
)
from modelreg.domain.identity import same_person
from modelreg.domain.serving import MODEL_LABEL, STAGE_LABEL
from modelreg.domain.trust import StatusSeals
from modelreg.models.resources import DNS1123_LABEL
from modelreg.models.stages import EXCLUSIVE
from modelreg.services.view import View
from modelreg.storage.kube import KubeStore

Obj = Mapping[str, Any]
STAGE_RESOURCE = "modelstages"
FINALIZER = "modelreg.io/finalizer"  # the operator's own (kopf's, settings.persistence.finalizer)
HISTORY_RESOURCE = "modelhistories"  # virtual, like modelstages: `delete` on it removes a model's history


def _now() -> str:
    # sub-second: the sealed admission time orders promotions created within one second
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _annotations(obj: Obj | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("annotations") or {})


def _labels(obj: Obj | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("labels") or {})


def _held(old: Obj | None, new: Obj) -> str | None:
    """The field by which `new` gains finalizers (other than the operator's) or owner references:
    a finalizer lets its writer choose when a delete admitted long ago completes (after the version
    came to hold a stage), an owner reference lets the garbage collector delete it. Users set neither."""

    def held(obj: Obj | None) -> dict[str, list[Any]]:
        meta = (obj or {}).get("metadata") or {}
        return {
            "metadata.finalizers": [f for f in meta.get("finalizers") or [] if f != FINALIZER],
            "metadata.ownerReferences": list(meta.get("ownerReferences") or []),
        }

    before, after = held(old), held(new)
    return next((field for field, values in after.items() if any(v not in before[field] for v in values)), None)


def _changed(old: Mapping[str, str], new: Mapping[str, str], keys: set[str]) -> dict[str, str | None]:
    return {k: new.get(k) for k in sorted(keys) if old.get(k) != new.get(k)}


class AdmissionReviewer:
    def __init__(
        self,
        kube: KubeStore,
        seals: ApprovalSeals,
        status_seals: StatusSeals,
        operator_user: str,
        clock: Callable[[], str] = _now,
        view: View | None = None,
        namespace_deleters: Collection[str] = (),
    ) -> None:
        self.kube, self.seals, self.status_seals, self.view = kube, seals, status_seals, view
        self.operator_user = operator_user
        self.namespace_deleters = frozenset(namespace_deleters)
        self.clock = clock

    async def _candidate(self, namespace: str, spec: Obj) -> dict[str, Any] | None:
        # The operator's view first (no request in the admission path); a version it has not seen
        # yet (created a moment ago) is looked up in the API. A candidate's identity (uid, sha256)
        # never changes, so a view a moment old seals the same approval.
        if self.view is not None:
            known = self.view.trusted_indexed(namespace, spec.get("modelName"), "version", spec.get("version"))
            if found := domain.candidate_of(known, spec.get("version"), domain.registration_order(self.seals)):
                return {**found, "status": dict(found.get("status") or {})}
        versions = [
            v
            for v in await self.kube.list_custom("modelversions", namespace)
            if v["spec"].get("modelName") == spec.get("modelName")
        ]
        found = domain.candidate_of(versions, spec.get("version"), domain.registration_order(self.seals))
        return self.status_seals.trusted_version(found) if found else None

    # -- mutating ------------------------------------------------------------------------
    async def mutate_promotion(self, operation: str, userinfo: Obj, old: Obj | None, new: Obj) -> dict[str, str | None]:
        """Annotation changes: set a value, or None to remove the key. Seals only what the
        validating webhook admits (the same checks, RBAC included, first): a caller who reaches
        this endpoint some other way gets no seal for what it would deny."""
        user = userinfo.get("username", "")
        before, after = _annotations(old), _annotations(new)
        sealed = {k for k in (*before, *after) if k.startswith(SEAL_PREFIX)}
        # Seals are the webhook's alone: whatever a user wrote there is undone.
        changes: dict[str, str | None] = {k: before.get(k) for k in sealed if before.get(k) != after.get(k)}
        if await self.validate_promotion(operation, userinfo, old, new) is not None:
            return changes  # denied: the validating webhook says why
        meta = new["metadata"]
        if operation == "CREATE":
            now = self.clock()
            changes[REQUESTED_BY] = user
            changes[REQUESTED_BY_SEAL] = self.seals.requester_seal(
                meta.get("namespace"), meta.get("name", ""), user, now
            )
            given = approvals_in(after)
            if given and user == self.seals.gitops_identity:
                found = await self._candidate(meta["namespace"], new["spec"])
                stages = domain.stages_to_approve(new["spec"]["targetStage"], found)
                for key, approver in given.items():
                    if found is not None and key == approval_key(approver):
                        changes[seal_key(key)] = self.seals.approval_seal(
                            new, approver, Candidate.of(found), stages, now, GITOPS
                        )
            return changes
        for key in set(approvals_in(before)) | set(approvals_in(after)):
            value = after.get(key)
            if value is None:
                changes[seal_key(key)] = None  # a withdrawn approval takes its seal along
            elif value == user and key == approval_key(user):
                # Sealed when given, and again when given again after its seal went stale (the
                # version was re-created, or now holds another stage).
                found = await self._candidate(meta["namespace"], new["spec"])
                if found is None:
                    continue
                stages = domain.stages_to_approve(new["spec"]["targetStage"], found)
                current = self.seals.proof(new, key, user, Candidate.of(found), stages) is not None
                if before.get(key) != value or not current:
                    changes[seal_key(key)] = self.seals.approval_seal(
                        new, user, Candidate.of(found), stages, self.clock()
                    )
        return changes

    # -- validating ----------------------------------------------------------------------
    async def validate_promotion(self, operation: str, userinfo: Obj, old: Obj | None, new: Obj) -> str | None:
        """None to admit, else the denial: which rule failed, in words."""
        user = userinfo.get("username", "")
        before, after = _annotations(old), _annotations(new)
        name, namespace = new["metadata"].get("name"), new["metadata"].get("namespace")
        if user != self.operator_user and (field := _held(old, new)):
            return f"{field} of a ModelPromotion are not set by users (its history must not be deletable by them)"
        if operation == "CREATE":
            if new["metadata"].get("generateName"):
                return "a ModelPromotion needs a fixed metadata.name (no generateName): approvals are bound to it"
            given = approvals_in(after)
            if given and user != self.seals.gitops_identity:
                return (
                    f"approvals cannot be given when a promotion is created ({', '.join(sorted(given))}): approvers "
                    "approve it afterwards, as themselves (kubectl modelreg approve)"
                )
            candidate = await self._candidate(namespace, new["spec"]) if given else None
            for key, approver in sorted(given.items()):
                if key != approval_key(approver):
                    return f"{key}: the key for {approver!r} is {approval_key(approver)}"
                if denial := await self._entitled({"username": approver}, new, candidate):
                    return denial
            return None
        for key in (REQUESTED_BY, REQUESTED_BY_SEAL):
            if before.get(key) != after.get(key):
                return f"{key} records who created promotion {name} and is set only by the admission webhook"
        changed = _changed(before, after, set(approvals_in(before)) | set(approvals_in(after)))
        # an approval given again (its value unchanged, its seal renewed) is checked like a new one
        changed.update(
            {k: v for k, v in approvals_in(after).items() if before.get(seal_key(k)) != after.get(seal_key(k))}
        )
        if not changed:
            return None
        finished = domain.reason_of(self.status_seals.trusted_promotion(old or new))
        if finished in domain.TERMINAL or finished == domain.ROLLING_OUT:
            state = "executing" if finished == domain.ROLLING_OUT else "finished"
            return f"promotion {name} is {state} ({finished}): its approvals can no longer change"
        requester = self.seals.requester(old or new)
        candidate = None
        for key, value in changed.items():
            if value is None:
                if before[key] != user:
                    return f"{key}: only {before[key]} can withdraw {before[key]}'s approval ({user} tried)"
                continue
            if value != user:
                return f"{key}: an approval's value must be your own username ({user!r}), not {value!r}"
            if user == self.seals.gitops_identity:
                return f"{user} applies approvals reviewed in git when it creates a promotion; it does not approve"
            if key != approval_key(user):
                return f"{key}: the key for {user!r} is {approval_key(user)}"
            if requester is None:
                return f"promotion {name} has no proven requester (created without the admission webhook): re-create it"
            if same_person(user, requester):
                return f"{user} requested promotion {name} and cannot approve it"
            candidate = candidate or await self._candidate(namespace, new["spec"])
            if denial := await self._entitled(userinfo, new, candidate):
                return denial
        return None

    async def _entitled(self, userinfo: Obj, promotion: Obj, candidate: Obj | None) -> str | None:
        """The approver's permission for the target stage is asked first: to someone who may not
        approve it, the denial is the same whether or not the version exists, or what it holds."""
        spec, namespace = promotion["spec"], promotion["metadata"].get("namespace")
        stages = list(dict.fromkeys([spec["targetStage"], *domain.stages_to_approve(spec["targetStage"], candidate)]))
        for i, stage in enumerate(stages):
            target = f"{spec['modelName']}/{stage}"
            if not await self.kube.may(userinfo, "approve", STAGE_RESOURCE, target, namespace):
                return (
                    f"{userinfo.get('username')} may not approve {target} in namespace {namespace}: "
                    f"no RBAC rule grants verb approve on {STAGE_RESOURCE}.modelreg.io {target!r} "
                    "(bind the modelreg-approver ClusterRole)"
                )
            if i == 0 and candidate is None:
                version = f"{spec['modelName']} v{spec['version']}"
                return f"ModelVersion {version} is not registered in namespace {namespace}: nothing to approve"
        return None

    def validate_status(self, userinfo: Obj, plural: str) -> str | None:
        user = userinfo.get("username")
        if user == self.operator_user:
            return None
        return f"the status of {plural} is written only by the modelreg operator ({self.operator_user}), not by {user}"

    def stamp_version(self, new: Obj) -> tuple[dict[str, str], dict[str, str]]:
        """(labels, annotations) for a ModelVersion being created: its model, so the operator's
        verification needs no write for it, and its sealed admission time, which decides who owns
        its (model, version) (anything a user wrote there is overwritten). A name that is no label
        value is left to the schema to refuse, in its words."""
        spec = new.get("spec") or {}
        stamp = {REGISTERED_AT: self.seals.registration_stamp(new["metadata"].get("namespace"), spec, self.clock())}
        model = spec.get("modelName")
        if isinstance(model, str) and len(model) <= 63 and re.fullmatch(DNS1123_LABEL, model):
            return {MODEL_LABEL: model}, stamp
        return {}, stamp

    def validate_version(self, userinfo: Obj, old: Obj | None, new: Obj) -> str | None:
        for field in ("modelName", "version", "artifact"):
            if old is not None and (old.get("spec") or {}).get(field) != (new.get("spec") or {}).get(field):
                return f"spec.{field} of a ModelVersion is immutable: register a new version instead"
        if userinfo.get("username") == self.operator_user:
            return None
        if field := _held(old, new):
            return f"{field} of a ModelVersion are not set by users (a stage holder must not be deletable by them)"
        if _labels(old).get(STAGE_LABEL) != _labels(new).get(STAGE_LABEL):
            return (
                f"label {STAGE_LABEL} is kept by the modelreg operator (CI/CD selects by it); it cannot be set by hand"
            )
        model = _labels(new).get(MODEL_LABEL)
        if model is not None and model != (new.get("spec") or {}).get("modelName"):
            return f"label {MODEL_LABEL} must equal spec.modelName ({new['spec'].get('modelName')!r}), not {model!r}"
        if old is not None and _annotations(old).get(REGISTERED_AT) != _annotations(new).get(REGISTERED_AT):
            return f"annotation {REGISTERED_AT} records when this version was registered; only the webhook sets it"
        return None

    async def validate_delete(self, plural: str, userinfo: Obj, old: Obj) -> str | None:
        """Stage holders and history stay: a ModelVersion holding Staging or Production, and a
        promotion that moved stages, are not deleted (the namespace controller's deletes excepted,
        so a namespace being deleted still goes). Each denied attempt leaves a Warning Event."""
        user = userinfo.get("username", "")
        if user in self.namespace_deleters:
            return None
        name = old["metadata"].get("name")
        if plural == "modelversions":
            stage = (self.status_seals.trusted_version(old).get("status") or {}).get("stage")
            if stage not in EXCLUSIVE:
                return None
            model = (old.get("spec") or {}).get("modelName")
            denial = (
                f"ModelVersion {name} holds {stage}: archive it first (kubectl modelreg promote {model} "
                f"{(old.get('spec') or {}).get('version')} --to Archived), then delete it"
            )
        else:
            if not (self.status_seals.trusted_promotion(old).get("status") or {}).get("moves"):
                return None
            # removing a model's history is an administrator's deliberate act, with a right of its own
            model = (old.get("spec") or {}).get("modelName", "")
            if await self.kube.may(userinfo, "delete", HISTORY_RESOURCE, model, old["metadata"].get("namespace", "")):
                return None
            denial = (
                f"ModelPromotion {name} moved stages and is history (append-only): only someone granted "
                f"delete on {HISTORY_RESOURCE}.modelreg.io {model!r} removes it"
            )
        ref = {
            "apiVersion": old.get("apiVersion", ""),
            "kind": old.get("kind", ""),
            "namespace": old["metadata"].get("namespace", ""),
            "name": name,
            "uid": old["metadata"].get("uid", ""),
        }
        with contextlib.suppress(Exception):  # the denial stands whether or not its Event is posted
            await self.kube.post_event(ref, "Warning", "DeletionDenied", f"{user} tried to delete it: {denial}")
        return denial
