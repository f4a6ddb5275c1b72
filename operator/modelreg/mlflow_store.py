"""MLflow's client as a front door to the registry (`pip install 'modelreg[mlflow]'`).

    mlflow.set_registry_uri("modelreg:///ml")          # the current kubeconfig context, namespace ml
    mlflow.set_registry_uri("modelreg://prod/ml")      # kubeconfig context `prod`
    mlflow.register_model("s3://models/fraud/3/model.onnx", "fraud")     # a ModelVersion, next number
    MlflowClient().set_registered_model_alias("fraud", "production", 3)  # a ModelPromotion (approvals)
    mlflow.artifacts.download_artifacts("models:/fraud@production")      # verified bytes

Two plugins, registered under MLflow's entry points: ModelregStore (`mlflow.model_registry_store`,
scheme `modelreg`) reads and writes the CRDs as the caller, with their kubeconfig (never with
elevated rights: RBAC and the admission webhook judge every write); VerifiedArtifactRepository
(`mlflow.artifact_repository`, scheme `modelreg-verified`) is where download URIs point, so MLflow's
`models:/` loads go through `modelreg.client.fetch`: pinned, hashed, and moved into place only when
the SHA-256 is the proven one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from mlflow.entities import FileInfo, Metric
from mlflow.entities.logged_model_parameter import LoggedModelParameter
from mlflow.entities.model_registry import (
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelAlias,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    INVALID_STATE,
    PERMISSION_DENIED,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
)
from mlflow.store.artifact.artifact_repo import ArtifactRepository
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.model_registry.abstract_store import AbstractStore
from mlflow.utils.search_utils import SearchModelUtils, SearchModelVersionUtils, SearchUtils

from modelreg import GROUP, VERSION, client
from modelreg.domain import mlflow_front as front
from modelreg.domain.artifacts import InvalidURIError, Location, parse_uri
from modelreg.domain.consumption import Reference, Resolved, Unresolvable
from modelreg.domain.consumption import resolve as decide
from modelreg.storage.kube_client import KubeClient, KubeClientError
from modelreg.storage.s3 import StorageFailure, make_client, storage_digest

_logger = logging.getLogger(__name__)
_VERSIONS, _PROMOTIONS = "modelversions", "modelpromotions"


def _error(message: str, code: int = INVALID_PARAMETER_VALUE) -> MlflowException:
    return MlflowException(message, error_code=code)


@contextlib.contextmanager
def _as_mlflow_errors() -> Iterator[None]:
    """Every failure as one MlflowException with the registry's own one-line message."""
    try:
        yield
    except front.NotAllowed as exc:
        raise _error(str(exc)) from None
    except Unresolvable as exc:
        raise _error(str(exc), RESOURCE_DOES_NOT_EXIST) from None
    except KubeClientError as exc:
        status = getattr(exc.__cause__, "status", None)
        code = {403: PERMISSION_DENIED, 404: RESOURCE_DOES_NOT_EXIST, 409: RESOURCE_ALREADY_EXISTS}.get(
            status, INVALID_STATE
        )
        raise _error(f"Kubernetes API: {exc}", code) from None
    except StorageFailure as exc:
        raise _error(f"storage: {exc.message}", INVALID_STATE) from None


def _millis(timestamp: str | None) -> int:
    if not timestamp:
        return 0
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


def _last_change(model_version: Mapping[str, Any]) -> int:
    history = (model_version.get("status") or {}).get("stageHistory") or []
    times = [model_version["metadata"].get("creationTimestamp"), *(h.get("time") for h in history)]
    return max(_millis(t) for t in times)


class ModelregStore(AbstractStore):
    """The registry of a namespace, as the caller's kubeconfig sees it."""

    def __init__(self, store_uri: str | None = None, tracking_uri: str | None = None) -> None:
        super().__init__(store_uri, tracking_uri)
        with _as_mlflow_errors():
            self.target = front.parse_registry_uri(store_uri or "")
        self.store_uri, self.tracking_uri = store_uri, tracking_uri

    # -- the cluster, as the caller ----------------------------------------------------------
    def _kube(self) -> tuple[KubeClient, str]:
        # $KUBECONFIG read at each call (the official client reads it once, at import), so the
        # store always acts as whoever the caller's kubeconfig says now
        kube = KubeClient(os.environ.get("KUBECONFIG") or None, self.target.context)
        return kube, self.target.namespace or kube.default_namespace

    def _all(self) -> tuple[list[dict[str, Any]], str]:
        kube, namespace = self._kube()
        return kube.list(_VERSIONS, namespace), namespace

    def _versions(self, name: str) -> list[Mapping[str, Any]]:
        versions, namespace = self._all()
        mine = front.owners(versions, front.model_name(name))
        if not mine:
            raise _error(f"registered model {name!r} has no versions in namespace {namespace}", RESOURCE_DOES_NOT_EXIST)
        return mine

    def _version(self, name: str, version: Any) -> Mapping[str, Any]:
        number = front.version_number(version)
        found = [v for v in self._versions(name) if v["spec"]["version"] == number]
        if not found:
            raise _error(f"registered model {name!r} has no version {number}", RESOURCE_DOES_NOT_EXIST)
        return found[0]

    # -- entities ------------------------------------------------------------------------------
    def _entity(self, mv: Mapping[str, Any]) -> ModelVersion:
        meta, spec = mv["metadata"], mv["spec"]
        status, message = front.status_of(mv)
        stage = front.stage_of(mv)
        created = _millis(meta.get("creationTimestamp"))
        return ModelVersion(
            name=spec["modelName"],
            version=str(spec["version"]),
            creation_timestamp=created,
            last_updated_timestamp=_last_change(mv),
            description=spec.get("description"),
            user_id=(meta.get("annotations") or {}).get(f"{GROUP}/requested-by"),
            current_stage=stage or "None",
            source=spec["artifact"]["uri"],
            run_id=(spec.get("lineage") or {}).get("runId"),
            status=status,
            status_message=message,
            tags=[ModelVersionTag(k, v) for k, v in front.tags_of(mv).items()],
            aliases=[stage.lower()] if stage else [],
            params=[LoggedModelParameter(k, str(v)) for k, v in (spec.get("hyperparameters") or {}).items()],
            metrics=[Metric(k, float(v), created, 0) for k, v in (spec.get("metrics") or {}).items()],
        )

    def _registered(self, name: str, versions: list[Mapping[str, Any]]) -> RegisteredModel:
        entities = [self._entity(v) for v in versions]
        aliases = [RegisteredModelAlias(e.aliases[0], e.version) for e in entities if e.aliases]
        counts: dict[str, int] = {}
        for alias in aliases:
            counts[alias.alias] = counts.get(alias.alias, 0) + 1
        return RegisteredModel(
            name=name,
            creation_timestamp=min(e.creation_timestamp for e in entities),
            last_updated_timestamp=max(e.last_updated_timestamp for e in entities),
            latest_versions=self._latest(entities, None),
            # an alias names one version: `archived` only while exactly one version is archived
            aliases=[a for a in aliases if counts[a.alias] == 1],
        )

    @staticmethod
    def _latest(entities: list[ModelVersion], stages: list[str] | None) -> list[ModelVersion]:
        wanted = [front.stage_name(s) for s in stages] if stages else list(front.STAGES)
        found = []
        for stage in wanted:
            holders = [e for e in entities if e.current_stage == stage]
            if holders:
                found.append(max(holders, key=lambda e: int(e.version)))
        return found

    # -- registered models (implicit: a model is the name its ModelVersions share) --------------
    def create_registered_model(self, name, tags=None, description=None, deployment_job_id=None):
        with _as_mlflow_errors():
            front.model_name(name)
            if tags or description:
                raise front.NotAllowed(
                    "modelreg keeps no registered-model object (a model is the name its versions share): "
                    "give tags and a description to each version instead"
                )
            versions, namespace = self._all()
            if front.owners(versions, name):
                raise _error(
                    f"registered model {name!r} already exists in namespace {namespace}", RESOURCE_ALREADY_EXISTS
                )
        # nothing is stored: the model exists once its first version is registered
        return RegisteredModel(name=name, creation_timestamp=0, last_updated_timestamp=0)

    def get_registered_model(self, name):
        with _as_mlflow_errors():
            return self._registered(name, self._versions(name))

    def search_registered_models(self, filter_string=None, max_results=None, order_by=None, page_token=None):
        with _as_mlflow_errors():
            versions, _ = self._all()
            by_name: dict[str, list[Mapping[str, Any]]] = {}
            for v in front.owners(versions):
                by_name.setdefault(v["spec"]["modelName"], []).append(v)
            models = [self._registered(n, vs) for n, vs in sorted(by_name.items())]
        found = SearchModelUtils.sort(SearchModelUtils.filter(models, filter_string), order_by)
        return _page(found, max_results, page_token)

    def get_latest_versions(self, name, stages=None):
        with _as_mlflow_errors():
            return self._latest([self._entity(v) for v in self._versions(name)], stages)

    def rename_registered_model(self, name, new_name):
        raise _error(
            f"cannot rename {name!r} to {new_name!r}: a model's name is part of every ModelVersion, promotion "
            "and approval (immutable); register versions under the new name instead"
        )

    def update_registered_model(self, name, description, deployment_job_id=None):
        raise _error("modelreg keeps no registered-model object: describe each version (update_model_version)")

    def delete_registered_model(self, name):
        with _as_mlflow_errors():
            versions = self._versions(name)
            for v in versions:  # the whole model goes only when no version of it holds a stage
                front.refuse_if_holder(v, "delete the model with")
            kube, namespace = self._kube()
            for v in versions:
                kube.delete(_VERSIONS, namespace, v["metadata"]["name"])

    def set_registered_model_tag(self, name, tag):
        raise _error("modelreg keeps no registered-model object: tag versions instead (set_model_version_tag)")

    def delete_registered_model_tag(self, name, key):
        raise _error("modelreg keeps no registered-model tags")

    # -- versions -------------------------------------------------------------------------------
    def create_model_version(
        self,
        name,
        source,
        run_id=None,
        tags=None,
        run_link=None,
        description=None,
        local_model_path=None,
        model_id=None,
    ):
        with _as_mlflow_errors():
            front.model_name(name)
            location = _location(source)
            location, sha256, size = _digest(location)
            metrics, params = self._run_data(run_id)
            spec: dict[str, Any] = {
                "modelName": name,
                "artifact": {"uri": str(location), "sha256": sha256, "sizeBytes": size},
            }
            for key, value in (
                ("lineage", {"runId": run_id} if run_id else {}),
                ("metrics", metrics),
                ("hyperparameters", params),
                ("description", description),
            ):
                if value:
                    spec[key] = value
            tag_map = _tags(tags)
            kube, namespace = self._kube()
            for _ in range(5):  # another writer may take the next number first: take the one after
                number = front.next_version(kube.list(_VERSIONS, namespace), name)
                body = {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "ModelVersion",
                    "metadata": {
                        "name": f"{name}-v{number}",
                        "namespace": namespace,
                        **({"annotations": {front.TAGS_ANNOTATION: front.tags_annotation(tag_map)}} if tag_map else {}),
                    },
                    "spec": {**spec, "version": number},
                }
                try:
                    return self._entity(kube.create(_VERSIONS, namespace, body))
                except KubeClientError as exc:
                    if getattr(exc.__cause__, "status", None) != 409:
                        raise
            raise _error(f"could not take a version number for {name!r}: others kept registering", INVALID_STATE)

    def _run_data(self, run_id: str | None) -> tuple[dict[str, float], dict[str, str]]:
        """The run's metrics and parameters, from the tracking server the caller uses (if it knows it)."""
        if not run_id:
            return {}, {}
        try:
            from mlflow.tracking import MlflowClient

            run = MlflowClient(tracking_uri=self.tracking_uri).get_run(run_id)
        except Exception as exc:  # no such run there: the run id is still recorded
            _logger.warning("run %s: metrics and parameters not carried over (%s)", run_id, exc)
            return {}, {}
        params = {k: v[:256] for k, v in run.data.params.items()}
        return dict(run.data.metrics), params

    def get_model_version(self, name, version):
        with _as_mlflow_errors():
            return self._entity(self._version(name, version))

    def search_model_versions(self, filter_string=None, max_results=None, order_by=None, page_token=None):
        with _as_mlflow_errors():
            versions, _ = self._all()
            entities = [self._entity(v) for v in front.owners(versions)]
        found = SearchModelVersionUtils.filter(entities, filter_string)
        found = SearchModelVersionUtils.sort(found, order_by or ["last_updated_timestamp DESC", "name ASC"])
        return _page(found, max_results, page_token)

    def update_model_version(self, name, version, description):
        with _as_mlflow_errors():
            mv = self._version(name, version)
            kube, namespace = self._kube()
            patched = kube.patch(_VERSIONS, namespace, mv["metadata"]["name"], {"spec": {"description": description}})
            return self._entity(patched)

    def delete_model_version(self, name, version):
        with _as_mlflow_errors():
            mv = self._version(name, version)
            front.refuse_if_holder(mv, "delete")
            kube, namespace = self._kube()
            kube.delete(_VERSIONS, namespace, mv["metadata"]["name"])

    def set_model_version_tag(self, name, version, tag):
        self._retag(name, version, lambda tags: {**tags, tag.key: tag.value})

    def delete_model_version_tag(self, name, version, key):
        self._retag(name, version, lambda tags: {k: v for k, v in tags.items() if k != key})

    def _retag(self, name: str, version: Any, change: Any) -> None:
        with _as_mlflow_errors():
            mv = self._version(name, version)
            kube, namespace = self._kube()
            tags = change(front.tags_of(mv))
            kube.annotate(
                _VERSIONS, namespace, mv["metadata"]["name"], {front.TAGS_ANNOTATION: front.tags_annotation(tags)}
            )

    def get_model_version_download_uri(self, name, version):
        """Where MLflow downloads this version from: the verified scheme, so the bytes are fetched
        by modelreg and checked against the proven SHA-256 (the proven s3:// URI is `source`)."""
        with _as_mlflow_errors():
            versions, namespace = self._all()
            found = decide(
                Reference(front.model_name(name), version=front.version_number(version)), versions, namespace
            )
            return front.verified_uri(self.target, namespace, found.model, found.version, found.sha256)

    # -- stages: aliases and MLflow's legacy stages ---------------------------------------------
    def get_model_version_by_alias(self, name, alias):
        with _as_mlflow_errors():
            stage = front.stage_for_alias(alias)
            versions, namespace = self._all()
            found = decide(Reference(front.model_name(name), stage=stage), versions, namespace)
            return self._entity(next(v for v in versions if v["metadata"]["name"] == found.name))

    def set_registered_model_alias(self, name, alias, version):
        """Requests the move: a ModelPromotion, as the caller. The alias moves once approved."""
        with _as_mlflow_errors():
            self._promote(name, version, front.stage_for_alias(alias), f"set_registered_model_alias {alias!r}")

    def transition_model_version_stage(self, name, version, stage, archive_existing_versions):
        """Requests the move, as set_registered_model_alias does. The registry's own rules apply
        whatever archive_existing_versions says (Production archives its previous holder)."""
        with _as_mlflow_errors():
            target = front.stage_name(stage)
            if target == "None":
                raise front.NotAllowed("a version leaves its stage when another is promoted to it, never by itself")
            self._promote(name, version, target, f"transition_model_version_stage {stage!r}")
            return self._entity(self._version(name, version))

    def delete_registered_model_alias(self, name, alias):
        stage = front.stage_for_alias(alias) if alias.strip().lower() in ("staging", "production", "archived") else None
        raise _error(
            f"cannot delete alias {alias!r} of {name!r}: "
            + (
                f"it is the stage {stage}, which moves only through approved promotions (promote another version)"
                if stage
                else "modelreg's only aliases are its stages"
            )
        )

    def _promote(self, name: str, version: Any, stage: str, how: str) -> str:
        mv = self._version(name, version)  # a typo would otherwise wait forever, "created"
        number = mv["spec"]["version"]
        kube, namespace = self._kube()
        base = f"{name}-v{number}-to-{stage.lower()}"
        for candidate in (base, *(f"{base}-{uuid.uuid4().hex[:5]}" for _ in range(3))):
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ModelPromotion",
                "metadata": {"name": candidate, "namespace": namespace},
                "spec": {
                    "modelName": name,
                    "version": number,
                    "targetStage": stage,
                    "reason": f"requested through MLflow ({how})",
                },
            }
            try:
                kube.create(_PROMOTIONS, namespace, body)
            except KubeClientError as exc:
                if getattr(exc.__cause__, "status", None) != 409:
                    raise
                continue
            print(
                f"modelpromotion {candidate} created: {name} version {number} moves to {stage} once its approvals "
                f"are in (kubectl modelreg status {candidate} -n {namespace})",
                file=sys.stderr,
            )
            return candidate
        raise _error(f"could not name a promotion for {base}", INVALID_STATE)


def _page(items: list[Any], max_results: int | None, page_token: str | None) -> PagedList:
    start = SearchUtils.parse_start_offset_from_page_token(page_token)
    end = start + max_results if max_results else len(items)
    return PagedList(items[start:end], SearchUtils.create_page_token(end) if end < len(items) else None)


def _tags(tags: Any) -> dict[str, str]:
    if not tags:
        return {}
    if isinstance(tags, Mapping):
        return {str(k): str(v) for k, v in tags.items()}
    return {t.key: str(t.value) for t in tags}


def _location(source: str) -> Location:
    try:
        return parse_uri(source)
    except InvalidURIError as exc:
        raise front.NotAllowed(
            f"source {source!r}: modelreg registers artifacts in S3 (s3://bucket/key or s3://bucket/prefix/): {exc}"
        ) from None


def _digest(location: Location) -> tuple[Location, str, int]:
    """The artifact's SHA-256 from storage (its full-object checksum, else streamed). An MLflow model
    is a directory written without a trailing slash: when no object has that key, the prefix."""
    s3 = make_client()
    try:
        sha256, size = storage_digest(s3, location)
    except StorageFailure as exc:
        if location.is_directory or exc.reason != "NotFound":
            raise
        directory = Location(location.bucket, location.key + "/")
        try:
            sha256, size = storage_digest(s3, directory)
        except StorageFailure:
            raise exc from None
        location = directory
    return location, sha256, size


class VerifiedArtifactRepository(ArtifactRepository):
    """`modelreg-verified://[CONTEXT]/NAMESPACE/MODEL/VERSION?sha256=HEX`: the version's proven
    artifact, downloaded by modelreg.client.fetch (pinned to the object version proven, SHA-256
    checked before anything appears) and only if it is still the digest MLflow resolved."""

    def __init__(self, artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None) -> None:
        super().__init__(artifact_uri, tracking_uri, registry_uri)
        with _as_mlflow_errors():
            self.wanted = front.parse_verified_uri(artifact_uri)

    def _resolved(self) -> Resolved:
        wanted = self.wanted
        with _as_mlflow_errors():
            kube = KubeClient(os.environ.get("KUBECONFIG") or None, wanted.target.context)
            namespace = wanted.target.namespace or kube.default_namespace
            found = decide(Reference(wanted.model, version=wanted.version), kube.list(_VERSIONS, namespace), namespace)
        if found.sha256 != wanted.sha256:
            raise _error(
                f"version {wanted.version} of {wanted.model} now names sha256 {found.sha256}, not the "
                f"{wanted.sha256} MLflow resolved: nothing was downloaded",
                INVALID_STATE,
            )
        return found

    def download_artifacts(self, artifact_path, dst_path=None):
        """The whole artifact is fetched and verified first, then moved into `dst_path`. Returns the
        file for a single-object artifact (the directory for a directory artifact), or the member
        `artifact_path` names."""
        found = self._resolved()
        dst = Path(os.path.abspath(dst_path)) if dst_path else Path(tempfile.mkdtemp())
        dst.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".modelreg-fetch-", dir=dst))
        try:
            root = staging / "artifact"
            try:
                client.fetch(found, root)
            except client.FetchError as exc:
                raise _error(f"{found.model}@{found.version}: {exc}", INVALID_STATE) from None
            relative = (artifact_path or "").strip("/")
            source = root / relative if relative else root
            if ".." in Path(relative).parts or not source.exists():
                raise _error(f"{found.model}@{found.version} has no member {artifact_path!r}", RESOURCE_DOES_NOT_EXIST)
            if relative:
                _into(source, dst / relative)
                return str(dst / relative)
            members = list(root.iterdir())
            for member in members:
                _into(member, dst / member.name)
            single = not parse_uri(found.uri).is_directory
            return str(dst / members[0].name) if single and len(members) == 1 else str(dst)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def list_artifacts(self, path=None):
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(self.download_artifacts("", scratch))
            base = root if root.is_dir() else root.parent
            where = base / (path or "")
            if not where.is_dir():
                return []
            return [
                FileInfo(str(p.relative_to(base)), p.is_dir(), None if p.is_dir() else p.stat().st_size)
                for p in sorted(where.iterdir())
            ]

    def _download_file(self, remote_file_path, local_path):
        self.download_artifacts(remote_file_path, os.path.dirname(local_path) or None)

    def _immutable(self, *_: Any, **__: Any) -> None:
        raise _error(
            f"{self.artifact_uri}: a registered artifact is immutable (its SHA-256 is what was approved): "
            "register a new version instead"
        )

    log_artifact = log_artifacts = delete_artifacts = _immutable


def _into(source: Path, target: Path) -> None:
    """Move a verified member into place (replacing what is there, as MLflow's downloads do)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():
        target.unlink()
    os.replace(source, target)


def register() -> None:
    """Register both plugins in this process (the entry points do it for an installed package)."""
    from mlflow.store.artifact.artifact_repository_registry import _artifact_repository_registry
    from mlflow.tracking._model_registry.utils import _get_store_registry

    _get_store_registry().register(front.REGISTRY_SCHEME, ModelregStore)
    _artifact_repository_registry.register(front.VERIFIED_SCHEME, VerifiedArtifactRepository)
