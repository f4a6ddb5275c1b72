"""Consume what the registry proved, from Python (CI/CD, serving code, notebooks).

    from modelreg import client
    prod = client.resolve("fraud@production", namespace="ml")     # or "fraud@3"
    prod.uri, prod.sha256, prod.version_id, prod.approvers
    client.fetch("fraud@production", "/models/fraud", namespace="ml")   # verified before it appears

Installed by `pip install modelreg` alone: importing this module loads the Kubernetes client,
never the operator's dependencies (kopf, aiohttp, ...) nor boto3 (only `fetch` needs it).

Answers come only from verified status (ArtifactVerified=True, reason Verified, the proven sha256
equal to the spec's, the owner of its version number). This library cannot check the operator's
HMAC seals (it holds no key): it relies on status being writable by the operator alone (its
admission webhook and RBAC), as every reader of the cluster does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from modelreg.domain.consumption import (
    InvalidReference,
    Pinned,
    Resolved,
    Unresolvable,
    parse_reference,
    pinned_from,
    pinned_from_env,
)
from modelreg.domain.consumption import resolve as _decide
from modelreg.storage.kube_client import KubeClient, KubeClientError

if TYPE_CHECKING:
    from modelreg.storage.fetching import Fetched

__all__ = [
    "ClusterError",
    "FetchError",
    "InvalidReference",
    "Resolved",
    "Unresolvable",
    "fetch",
    "fetch_from_env",
    "resolve",
]

ClusterError = KubeClientError  # the Kubernetes API refused or did not answer (one line)


class FetchError(Exception):
    """Nothing was put at the target: storage refused, or the bytes are not the proven ones."""


def resolve(
    reference: str,
    namespace: str | None = None,
    context: str | None = None,
    kubeconfig: str | None = None,
    as_user: str | None = None,
) -> Resolved:
    """The proven artifact of `MODEL@STAGE` (any case) or `MODEL@VERSION` in `namespace` (default:
    the context's; in a pod, its own). Raises Unresolvable when nothing proven answers it.
    `as_user` impersonates (kubectl's --as)."""
    ref = parse_reference(reference)
    kube = KubeClient(kubeconfig, context, as_user)
    namespace = namespace or kube.default_namespace
    return _decide(ref, kube.list("modelversions", namespace), namespace)


def fetch(
    reference: str | Resolved,
    to: str | os.PathLike[str],
    namespace: str | None = None,
    context: str | None = None,
    kubeconfig: str | None = None,
    replace: bool = False,
    progress: Callable[[int], None] | None = None,
    started: Callable[[int], None] | None = None,
) -> Fetched:
    """Download the proven artifact into directory `to` (absent, or empty unless `replace`),
    pinned to the object version proven, its SHA-256 checked before anything appears there."""
    resolved = reference if isinstance(reference, Resolved) else resolve(reference, namespace, context, kubeconfig)
    return _fetch(pinned_from(resolved), to, replace, progress, started)


def fetch_from_env(
    to: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    replace: bool = False,
    progress: Callable[[int], None] | None = None,
    started: Callable[[int], None] | None = None,
) -> Fetched:
    """The same from MODEL_URI, MODEL_SHA256 and MODEL_VERSION_ID (as the operator sets them on a
    serving container, or `kubectl modelreg resolve -o env` writes them): no cluster access."""
    return _fetch(pinned_from_env(os.environ if env is None else env), to, replace, progress, started)


def _fetch(
    pinned: Pinned,
    to: str | os.PathLike[str],
    replace: bool,
    progress: Callable[[int], None] | None,
    started: Callable[[int], None] | None,
) -> Fetched:
    from modelreg.storage import fetching  # boto3: only when something is fetched

    try:
        return fetching.fetch(pinned, Path(to), progress=progress, started=started, replace=replace)
    except fetching.FetchFailure as exc:
        raise FetchError(str(exc)) from exc
