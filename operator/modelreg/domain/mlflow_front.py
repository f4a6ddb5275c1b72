"""The MLflow front door's decisions, pure: registry and verified-download URIs, aliases as stages,
a ModelVersion's MLflow status, the next version number, MLflow tags kept in an annotation.
The I/O (the user's kubeconfig, S3) is in modelreg.mlflow_store."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from modelreg.domain import conditions
from modelreg.domain.consumption import proof_problem
from modelreg.domain.model_versions import ARTIFACT_VERIFIED, DUPLICATE_VERSION, READY
from modelreg.models.stages import TARGETS

REGISTRY_SCHEME = "modelreg"
VERIFIED_SCHEME = "modelreg-verified"  # what get_model_version_download_uri returns: fetched, then verified
TAGS_ANNOTATION = "mlflow.modelreg.io/tags"  # MLflow's version tags, a JSON object of strings
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ALIASES = {s.value.lower(): s.value for s in TARGETS}  # staging, production, archived
STAGES = ("None", *(s.value for s in TARGETS))  # MLflow's stage names, "None" for no stage
# ArtifactVerified reasons that will not heal by waiting: MLflow's FAILED_REGISTRATION
_FAILED = {"ChecksumMismatch", "SizeMismatch", "ArtifactChanged", "InvalidURI", "Forbidden", "TooLarge"}

PENDING, FAILED, READY_STATUS = "PENDING_REGISTRATION", "FAILED_REGISTRATION", "READY"


class NotAllowed(ValueError):
    """What the registry does not allow, or an argument it cannot take; the message says why."""


@dataclass(frozen=True)
class Target:
    """Where a registry URI points: a kubeconfig context (None: the current one) and a namespace
    (None: the context's)."""

    context: str | None
    namespace: str | None

    def authority(self) -> str:
        return f"{self.context or ''}/{self.namespace or ''}"


def parse_registry_uri(uri: str, scheme: str = REGISTRY_SCHEME) -> Target:
    """`modelreg:///NAMESPACE` (the current context) or `modelreg://CONTEXT/NAMESPACE`."""
    parsed = urlsplit(uri)
    if parsed.scheme != scheme:
        raise NotAllowed(f"{uri!r}: expected {scheme}:///NAMESPACE or {scheme}://CONTEXT/NAMESPACE")
    namespace = parsed.path.strip("/") or None
    if namespace is not None and not _LABEL.match(namespace):
        raise NotAllowed(f"{uri!r}: {namespace!r} is not a namespace (expected {scheme}://CONTEXT/NAMESPACE)")
    return Target(parsed.netloc or None, namespace)


@dataclass(frozen=True)
class VerifiedArtifact:
    target: Target
    model: str
    version: int
    sha256: str  # the proven digest MLflow resolved: the download must deliver exactly these bytes


def verified_uri(target: Target, namespace: str, model: str, version: int, sha256: str) -> str:
    return f"{VERIFIED_SCHEME}://{target.context or ''}/{namespace}/{model}/{version}?sha256={sha256}"


def parse_verified_uri(uri: str) -> VerifiedArtifact:
    parsed = urlsplit(uri)
    parts = parsed.path.strip("/").split("/")
    sha256 = (parse_qs(parsed.query).get("sha256") or [""])[0]
    if (
        parsed.scheme != VERIFIED_SCHEME
        or len(parts) != 3
        or not _LABEL.match(parts[0])
        or not _LABEL.match(parts[1])
        or not parts[2].isdigit()
        or not _HEX64.match(sha256)
    ):
        raise NotAllowed(f"{uri!r}: expected {VERIFIED_SCHEME}://[CONTEXT]/NAMESPACE/MODEL/VERSION?sha256=HEX")
    return VerifiedArtifact(Target(parsed.netloc or None, parts[0]), parts[1], int(parts[2]), sha256)


def stage_for_alias(alias: str) -> str:
    """The aliases are the stages: staging, production, archived (any case)."""
    stage = _ALIASES.get(alias.strip().lower())
    if stage is None:
        raise NotAllowed(
            f"alias {alias!r}: modelreg's aliases are its stages ({', '.join(_ALIASES)}); other aliases are not kept"
        )
    return stage


def stage_name(stage: str) -> str:
    """MLflow's spelling of a stage given to transition_model_version_stage / get_latest_versions."""
    if stage.strip().lower() == "none":
        return "None"
    return stage_for_alias(stage)


def model_name(name: str) -> str:
    if not isinstance(name, str) or not _LABEL.match(name):
        raise NotAllowed(f"model name {name!r}: lowercase letters, digits and '-' only (a DNS label)")
    return name


def version_number(version: Any) -> int:
    text = str(version)
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise NotAllowed(f"version {version!r}: expected a number from 1")
    return int(text)


def owners(versions: Iterable[Mapping[str, Any]], model: str | None = None) -> list[Mapping[str, Any]]:
    """The ModelVersions that own their version numbers (a later registration of one is a duplicate)."""
    return [
        v
        for v in versions
        if (model is None or v["spec"]["modelName"] == model) and _ready_reason(v) != DUPLICATE_VERSION
    ]


def next_version(versions: Iterable[Mapping[str, Any]], model: str) -> int:
    numbers = [v["spec"]["version"] for v in versions if v["spec"]["modelName"] == model]
    return max(numbers, default=0) + 1


def status_of(model_version: Mapping[str, Any]) -> tuple[str, str]:
    """MLflow's (status, message): READY only when its proof is current (as `resolve` judges it)."""
    problem = proof_problem(model_version)
    if problem is None:
        return READY_STATUS, "verified: the bytes at its source hash to its sha256"
    found = (model_version.get("status") or {}).get("conditions") or []
    verified = conditions.find(found, ARTIFACT_VERIFIED)
    if _ready_reason(model_version) == DUPLICATE_VERSION or (verified and verified.get("reason") in _FAILED):
        return FAILED, problem
    return PENDING, problem


def stage_of(model_version: Mapping[str, Any]) -> str:
    return (model_version.get("status") or {}).get("stage") or ""


def tags_of(model_version: Mapping[str, Any]) -> dict[str, str]:
    text = (model_version["metadata"].get("annotations") or {}).get(TAGS_ANNOTATION)
    try:
        found = json.loads(text) if text else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def tags_annotation(tags: Mapping[str, Any]) -> str:
    return json.dumps({str(k): str(v) for k, v in sorted(tags.items())}, separators=(",", ":"))


def refuse_if_holder(model_version: Mapping[str, Any], what: str) -> None:
    stage = stage_of(model_version)
    if stage:
        spec = model_version["spec"]
        raise NotAllowed(
            f"cannot {what} version {spec['version']} of {spec['modelName']}: it holds {stage} "
            "(stages move only through approved promotions; promote another version first)"
        )


def _ready_reason(model_version: Mapping[str, Any]) -> str | None:
    ready = conditions.find((model_version.get("status") or {}).get("conditions"), READY)
    return ready.get("reason") if ready else None
