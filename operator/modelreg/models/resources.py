"""Pydantic models of ModelVersion and ModelPromotion, mirroring crds/*.yaml.

The CRD is the source of truth for what the API server accepts; these models give the
operator typed access. tests/static/test_models_match_crds.py keeps the two in agreement.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from modelreg.models.stages import Stage, TargetStage

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
SHA256_HEX = r"^[0-9a-f]{64}$"


class CamelModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=AliasGenerator(alias=to_camel),
        populate_by_name=True,
        extra="forbid",
    )

    def to_k8s(self) -> dict:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ArtifactFormat(StrEnum):
    ONNX = "onnx"
    PYTORCH = "pytorch"
    TENSORFLOW = "tensorflow"
    SKLEARN = "sklearn"
    XGBOOST = "xgboost"
    LIGHTGBM = "lightgbm"
    MLFLOW = "mlflow"
    HUGGINGFACE = "huggingface"
    OTHER = "other"


class ArtifactSpec(CamelModel):
    uri: Annotated[
        str, Field(max_length=2048, pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^?#%\\\x00-\x1f\x7f]+$")
    ]
    sha256: Annotated[str, Field(pattern=SHA256_HEX)]
    size_bytes: Annotated[int | None, Field(ge=0)] = None
    format: ArtifactFormat | None = None


class Lineage(CamelModel):
    experiment_name: str | None = None
    run_id: str | None = None
    code_commit: str | None = None
    training_data_uri: str | None = None
    training_data_sha256: Annotated[str | None, Field(pattern=SHA256_HEX)] = None
    parent_version: Annotated[int | None, Field(ge=1)] = None


class ModelVersionSpec(CamelModel):
    model_name: Annotated[str, Field(min_length=1, max_length=63, pattern=DNS1123_LABEL)]
    version: Annotated[int, Field(ge=1)]
    artifact: ArtifactSpec
    lineage: Lineage | None = None
    hyperparameters: dict[str, str] | None = None
    metrics: dict[str, float] | None = None
    description: Annotated[str | None, Field(max_length=4096)] = None


class Condition(CamelModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = None
    observed_generation: int | None = None


class VerifiedArtifact(CamelModel):
    sha256: str
    size_bytes: int
    etag: str | None = None
    version_id: str | None = None
    last_modified: str | None = None
    method: Literal["S3Checksum", "Stream"]
    verified_time: str


class LastCheck(CamelModel):
    time: str
    sha256: str | None = None
    size_bytes: int | None = None
    etag: str | None = None
    version_id: str | None = None
    last_modified: str | None = None
    consecutive_failures: int = 0


class StageHistoryEntry(CamelModel):
    stage: Stage
    time: str
    promotion: str | None = None
    approved_by: list[str] | None = None


class ModelVersionStatus(CamelModel):
    model_config = ConfigDict(extra="ignore")  # kopf's bookkeeping lives here too

    observed_generation: int | None = None
    stage: Stage | None = None
    conditions: list[Condition] = []
    artifact: VerifiedArtifact | None = None
    last_check: LastCheck | None = None
    stage_history: list[StageHistoryEntry] = []
    seals: dict[str, str] = {}


class CriterionSpec(CamelModel):
    metric: Annotated[str, Field(min_length=1, max_length=253)]
    min: float | None = None
    max: float | None = None
    max_regression: Annotated[float | None, Field(ge=0)] = None


class ModelPromotionSpec(CamelModel):
    model_name: Annotated[str, Field(min_length=1, max_length=63, pattern=DNS1123_LABEL)]
    version: Annotated[int, Field(ge=1)]
    target_stage: TargetStage
    reason: Annotated[str | None, Field(max_length=4096)] = None
    criteria: Annotated[list[CriterionSpec] | None, Field(max_length=64)] = None
