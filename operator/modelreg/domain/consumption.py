"""Consuming what was proven: which ModelVersion a reference names, whether its proof is current,
and where a fetched artifact's files may go. Pure: the callers read the cluster and storage."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelreg.domain import conditions
from modelreg.domain.artifacts import InvalidURIError, parse_uri, pinned_version
from modelreg.domain.model_versions import ARTIFACT_VERIFIED, DUPLICATE_VERSION, READY
from modelreg.domain.serving import MODEL_ENV
from modelreg.models.stages import TARGETS

_MODEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_STAGES = {s.value.lower(): s.value for s in TARGETS}


class InvalidReference(ValueError):
    """The reference itself is malformed (a usage error, not a state of the registry)."""


class Unresolvable(Exception):
    """Nothing proven answers the reference; the message says why, in one line."""


@dataclass(frozen=True)
class Reference:
    model: str
    stage: str | None = None  # exactly one of stage and version
    version: int | None = None

    def __str__(self) -> str:
        return f"{self.model}@{self.stage or self.version}"


def parse_reference(text: str) -> Reference:
    """`fraud@production` (any case), `fraud@Staging`, `fraud@3` or `fraud@v3`."""
    model, sep, what = text.partition("@")
    if not sep or not model or not what:
        raise InvalidReference(f"{text!r}: expected MODEL@STAGE or MODEL@VERSION (e.g. fraud@production, fraud@3)")
    if not _MODEL.match(model):
        raise InvalidReference(f"{text!r}: {model!r} is not a model name (a DNS-1123 label)")
    if what.lower() in _STAGES:
        return Reference(model, stage=_STAGES[what.lower()])
    number = what.removeprefix("v")
    if number.isascii() and number.isdigit() and int(number) >= 1:
        return Reference(model, version=int(number))
    raise InvalidReference(
        f"{text!r}: {what!r} is neither a stage ({', '.join(s.value for s in TARGETS)}) nor a version number"
    )


@dataclass(frozen=True)
class Resolved:
    """A ModelVersion's proven artifact, as the operator recorded it in status."""

    name: str  # the ModelVersion
    namespace: str
    model: str
    version: int
    stage: str  # "" when it holds none
    uri: str
    sha256: str
    version_id: str | None = None  # the S3 VersionId proven (versioned buckets): fetches read exactly it
    etag: str | None = None
    size_bytes: int | None = None
    verified_time: str | None = None
    approvers: tuple[str, ...] = ()  # who approved its move into its current stage

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "model": self.model,
            "version": self.version,
            "stage": self.stage,
            "uri": self.uri,
            "sha256": self.sha256,
            "versionId": self.version_id,
            "etag": self.etag,
            "sizeBytes": self.size_bytes,
            "verifiedTime": self.verified_time,
            "approvers": list(self.approvers),
        }

    def env(self) -> dict[str, str]:
        """The variables the operator sets on a serving container, with their values as the container
        sees them (no `$$` escaping: that is for the pod spec, undone by Kubernetes), and MODEL_STAGE."""
        values = (self.model, str(self.version), self.uri, self.sha256, self.version_id or "")
        found = {k: v for k, v in zip(MODEL_ENV, values, strict=True) if v}
        return {**found, "MODEL_STAGE": self.stage}


def _condition_text(condition: Mapping[str, Any] | None) -> str:
    if condition is None:
        return "not verified yet"
    message = str(condition.get("message", ""))
    message = message if len(message) <= 200 else message[:199] + "…"
    return f"ArtifactVerified={condition.get('status')} ({condition.get('reason')}: {message})"


def proof_problem(model_version: Mapping[str, Any]) -> str | None:
    """Why this ModelVersion's proof is not current, or None when it is: ArtifactVerified True for
    reason Verified, what was proven is what the spec names, and it owns its version number."""
    spec, status = model_version["spec"], model_version.get("status") or {}
    found = status.get("conditions") or []
    ready = conditions.find(found, READY)
    if ready is not None and ready.get("reason") == DUPLICATE_VERSION:
        return f"it does not own version {spec['version']} of {spec['modelName']} (DuplicateVersion)"
    verified = conditions.find(found, ARTIFACT_VERIFIED)
    if verified is None or verified.get("status") != "True" or verified.get("reason") != "Verified":
        return f"its artifact is not proven: {_condition_text(verified)}"
    proven = status.get("artifact") or {}
    if proven.get("sha256") != spec["artifact"]["sha256"]:
        return f"what was proven (sha256 {proven.get('sha256')}) is not the spec's ({spec['artifact']['sha256']})"
    try:
        parse_uri(spec["artifact"]["uri"])
    except InvalidURIError as exc:
        return str(exc)
    version_id = proven.get("versionId")
    if version_id is not None and (not isinstance(version_id, str) or _CONTROL.search(version_id)):
        return "its proven VersionId is not a plain string"
    return None


def _approvers(status: Mapping[str, Any], stage: str) -> tuple[str, ...]:
    entries = [h for h in status.get("stageHistory") or [] if h.get("stage") == stage]
    return tuple(entries[-1].get("approvedBy") or ()) if entries and stage else ()


def resolved(model_version: Mapping[str, Any]) -> Resolved:
    meta, spec, status = model_version["metadata"], model_version["spec"], model_version.get("status") or {}
    proven = status.get("artifact") or {}
    stage = status.get("stage") or ""
    return Resolved(
        name=meta["name"],
        namespace=meta.get("namespace", ""),
        model=spec["modelName"],
        version=spec["version"],
        stage=stage,
        uri=spec["artifact"]["uri"],
        sha256=proven["sha256"],
        version_id=pinned_version(proven.get("versionId")),
        etag=proven.get("etag"),
        size_bytes=proven.get("sizeBytes"),
        verified_time=proven.get("verifiedTime"),
        approvers=_approvers(status, stage),
    )


def resolve(reference: Reference, versions: Iterable[Mapping[str, Any]], namespace: str) -> Resolved:
    """The proven artifact `reference` names among `versions` (every ModelVersion of the namespace),
    or Unresolvable. Stages come from status, which only the operator may write (webhook + RBAC)."""
    mine = [v for v in versions if v["spec"]["modelName"] == reference.model]
    where = f"in namespace {namespace}"
    if not mine:
        raise Unresolvable(f"model {reference.model!r} has no registered versions {where}")
    if reference.stage is not None:
        holders = sorted(
            (v for v in mine if (v.get("status") or {}).get("stage") == reference.stage),
            key=lambda v: v["spec"]["version"],
        )
        if not holders:
            raise Unresolvable(f"no version of {reference.model} holds {reference.stage} {where}")
        if len(holders) > 1:
            numbers = ", ".join(str(v["spec"]["version"]) for v in holders)
            raise Unresolvable(
                f"{len(holders)} versions of {reference.model} hold {reference.stage} ({numbers}): "
                f"name one, e.g. {reference.model}@{holders[-1]['spec']['version']}"
            )
        chosen = holders[0]
        what = f"{chosen['metadata']['name']} holds {reference.stage} but"
    else:
        claims = [v for v in mine if v["spec"]["version"] == reference.version]
        if not claims:
            raise Unresolvable(f"model {reference.model!r} has no version {reference.version} {where}")
        owners = [v for v in claims if _ready_reason(v) != DUPLICATE_VERSION]
        if len(owners) != 1:
            names = ", ".join(sorted(v["metadata"]["name"] for v in (owners or claims)))
            raise Unresolvable(
                f"version {reference.version} of {reference.model} is claimed by {names} and the operator "
                "has not settled which owns it"
            )
        chosen = owners[0]
        what = f"{chosen['metadata']['name']} (version {reference.version} of {reference.model}) is registered but"
    problem = proof_problem(chosen)
    if problem:
        raise Unresolvable(f"{what} {problem}")
    return resolved(chosen)


def _ready_reason(model_version: Mapping[str, Any]) -> str | None:
    ready = conditions.find((model_version.get("status") or {}).get("conditions"), READY)
    return ready.get("reason") if ready else None


# -- fetching --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pinned:
    """What a fetch must deliver: these bytes, read from exactly this object (version)."""

    uri: str
    sha256: str
    version_id: str | None = None
    etag: str | None = None  # IfMatch, when no VersionId pins the object
    size_bytes: int | None = None


def pinned_from(resolved_: Resolved) -> Pinned:
    return Pinned(resolved_.uri, resolved_.sha256, resolved_.version_id, resolved_.etag, resolved_.size_bytes)


def pinned_from_env(env: Mapping[str, str]) -> Pinned:
    """MODEL_URI, MODEL_SHA256 and MODEL_VERSION_ID as a serving container sees them. The operator
    writes `$` as `$$` in the pod spec; Kubernetes turns that back into `$` before the process
    starts, so the values are taken as they are."""
    missing = [k for k in ("MODEL_URI", "MODEL_SHA256") if not env.get(k)]
    if missing:
        raise InvalidReference(f"--from-env: {' and '.join(missing)} not set (the operator sets them on serving pods)")
    uri, sha256 = env["MODEL_URI"], env["MODEL_SHA256"]
    if not _HEX64.match(sha256):
        raise InvalidReference("--from-env: MODEL_SHA256 is not 64 lowercase hex characters")
    try:
        parse_uri(uri)
    except InvalidURIError as exc:
        raise InvalidReference(f"--from-env: MODEL_URI: {exc}") from None
    return Pinned(uri, sha256, pinned_version(env.get("MODEL_VERSION_ID") or None))


class UnsafeKey(ValueError):
    """A directory member whose key could land outside the target directory."""


@dataclass(frozen=True)
class Member:
    key: str  # relative to the artifact's prefix, as storage names it
    parts: tuple[str, ...]  # the path under DIR
    directory: bool = False  # a "folder" marker object (key "" or ending in "/"): made as a directory


def member_paths(keys: Sequence[str]) -> list[Member]:
    """Where each member goes under DIR, refusing the whole artifact if any key could land
    elsewhere or be read two ways: `..` or `.` segments, empty segments, an absolute key,
    backslashes, control characters, or a name that is both a file and a directory. Object keys
    are untrusted: anyone who may write under the prefix chooses them."""
    members, files, directories = [], set(), set()
    for key in keys:
        marker = key == "" or key.endswith("/")
        parts = tuple(key.rstrip("/").split("/")) if key.rstrip("/") else ()
        if key.startswith("/") or "\\" in key or _CONTROL.search(key) or any(p in ("", ".", "..") for p in parts):
            raise UnsafeKey(
                f"member key {key!r} could land outside the target directory (absolute, '..', '.', empty "
                "segments, backslashes or control characters): nothing was written"
            )
        if marker:
            directories.add(parts)
        elif parts:
            files.add(parts)
        directories.update(parts[:i] for i in range(1, len(parts)))
        members.append(Member(key, parts, marker))
    clash = files & directories
    if clash:
        raise UnsafeKey(f"member {'/'.join(min(clash))!r} is both a file and a directory: nothing was written")
    return members
