"""Operator configuration: one YAML file (MODELREG_CONFIG) plus MODELREG_<SECTION>__<KEY> overrides.

Keys are camelCase in the file (as in the chart's values) and snake_case in environment
variables. An unknown key is a start-up error that names it. Object-storage settings are
deliberately absent: boto3 reads the standard AWS_* variables itself.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from modelreg.domain.model_versions import RetryPolicy
from modelreg.domain.notifications import EVENT_TYPES, Endpoint
from modelreg.models.resources import CriterionSpec
from modelreg.models.stages import Stage, TargetStage


class UnknownSectionError(ValueError):
    """A MODELREG_<SECTION>__<KEY> variable whose section does not exist."""


class ConfigFileError(ValueError):
    """MODELREG_CONFIG names a file that is no YAML mapping."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # File spellings beyond plain camelCase (an acronym kept upper-case): file key -> field.
    spellings: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _accept_camel_case(cls, data: Any) -> Any:
        # The file uses camelCase, environment variables snake_case; both reach the same
        # field. Unknown keys keep their spelling so the start-up error names them as typed.
        if not isinstance(data, dict):
            return data
        snake = {to_camel(name): name for name in cls.model_fields} | cls.spellings
        return {snake.get(key, key): value for key, value in data.items()}


class VerificationSettings(Section):
    max_concurrent: Annotated[int, Field(ge=1, le=256)] = 4
    chunk_size_bytes: Annotated[int, Field(ge=64 * 1024, le=64 * 1024 * 1024)] = 1024 * 1024
    queue_depth: Annotated[int, Field(ge=1, le=64)] = 4
    # A large object is read as this many ranged GETs of chunkSizeBytes in flight, hashed in order
    # (memory ~ rangeStreams x chunk): more than one stream's bandwidth, e.g. 8 with 8 MiB chunks on
    # S3 or MinIO. 1 (default): one stream, best where ranges are costly (moto re-reads per range).
    range_streams: Annotated[int, Field(ge=1, le=64)] = 1
    # Transient failures (outage, missing object, denied access) back off from base to max.
    retry_base_seconds: Annotated[float, Field(gt=0)] = 2.0
    retry_max_seconds: Annotated[float, Field(gt=0)] = 300.0
    # Verified artifacts are re-checked this often with a HEAD (or listing) only.
    recheck_seconds: Annotated[float, Field(gt=0)] = 600.0
    # Bounded work: a 1 TiB checkpoint in up to 10,000 files passes; a runaway prefix does not.
    max_directory_objects: Annotated[int, Field(ge=1)] = 10_000
    max_artifact_bytes: Annotated[int, Field(ge=1)] = 2 * 1024**4
    timeout_seconds: Annotated[float, Field(gt=0)] = 3600.0
    # Threads for storage calls, apart from the Kubernetes API's: slow storage delays no promotion.
    storage_workers: Annotated[int, Field(ge=1, le=256)] = 8

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.retry_base_seconds, self.retry_max_seconds, self.recheck_seconds)


class ApprovalSettings(Section):
    # The HMAC key that seals approvals and the operator's status (a Secret mounted as a file,
    # at least 16 bytes). Required: without it nothing could prove an approval.
    seal_key_file: str | None = None
    # Keys sealed with before a rotation: still accepted, never used to seal.
    previous_seal_key_files: list[str] = []
    # The identity Argo CD / Flux applies with: promotions it creates may carry approvals
    # reviewed in git (`via: gitops`), counted only for the stages listed here.
    gitops_identity: str | None = None
    gitops_stages: list[TargetStage] = []


class StorageSettings(Section):
    """Which storage each namespace may use. Empty: single-team mode (every namespace may use
    every bucket the operator's credentials reach; logged at start-up)."""

    # namespace (or "*") -> ["s3://bucket/prefix/", ...]
    allowed_prefixes: dict[str, list[Annotated[str, Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/")]]] = {}
    # namespace -> name of a Secret in the operator's namespace holding AWS_ACCESS_KEY_ID,
    # AWS_SECRET_ACCESS_KEY (and optionally AWS_SESSION_TOKEN) for that namespace's artifacts.
    credentials: dict[str, str] = {}
    operator_namespace: str = "modelreg-system"


class WebhookSettings(Section):
    """The admission webhook the operator serves (HTTPS)."""

    addr: str = "0.0.0.0"
    port: Annotated[int, Field(ge=1, le=65535)] = 9443
    # The hostname the API server dials (and the certificate's name); default: addr.
    host: str | None = None
    # A certificate from files (cert-manager); without them a self-signed one is made at start.
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    # With it, the server requires a client certificate signed by this CA (the API server's
    # webhook client credentials, see the README's AdmissionConfiguration): nobody else can
    # ask it for seals or probe its denials.
    client_ca_file: str | None = None
    # Deletes of stage holders and executed promotions are denied, except by these users: the
    # namespace controller's, so deleting a namespace still completes.
    # (Not `system:kube-controller-manager`: where controllers share its credentials, the garbage
    # collector deletes as it too.)
    namespace_deleters: list[str] = ["system:serviceaccount:kube-system:namespace-controller"]
    # Name of the Mutating/ValidatingWebhookConfigurations the operator keeps current (url and
    # caBundle); null when they are installed otherwise (the Helm chart with cert-manager).
    managed: str | None = "modelreg.io"

    spellings: ClassVar[dict[str, str]] = {"clientCAFile": "client_ca_file"}

    @field_validator("managed", mode="before")
    @classmethod
    def _unmanaged(cls, value: Any) -> Any:
        # From the environment everything is a string: "null", "none" or "" mean "not managed",
        # never configurations named "null".
        if isinstance(value, str) and value.strip().lower() in ("", "null", "none", "~"):
            return None
        return value


_SPELLINGS = WebhookSettings.spellings  # file key -> field, where camelCase is not the spelling


class PolicySettings(Section):
    required_approvals: dict[TargetStage, Annotated[int, Field(ge=0, le=20)]] = {
        Stage.STAGING: 0,
        Stage.PRODUCTION: 2,
        Stage.ARCHIVED: 0,
    }
    default_criteria: dict[TargetStage, list[CriterionSpec]] = {}
    # Of the required approvals, how many must be given in the cluster (through the webhook, by
    # the approver as themselves): a GitOps approval proves only that the committer named them.
    minimum_cluster_approvals: dict[TargetStage, Annotated[int, Field(ge=0, le=20)]] = {}
    # A namespace may raise requirements (never lower them) with this ConfigMap, key policy.yaml.
    namespace_config_map: str = "modelreg-policy"


class PromotionSettings(Section):
    tick_seconds: Annotated[float, Field(gt=0)] = 2.0
    # An execution still rolling out after this long ends RolloutFailed (what it moved undone),
    # so a rollout that never settles cannot hold its model's turn forever.
    execution_timeout_seconds: Annotated[float, Field(gt=0)] = 3600.0
    # The view that promotions decide from is compared with a fresh listing this often: deletions
    # a watch missed (it lost its place, 410 Gone) are noticed within this time.
    resync_seconds: Annotated[float, Field(gt=0)] = 300.0


class MetricsSettings(Section):
    addr: str = "0.0.0.0"
    # Prometheus metrics at http://<addr>:<port>/metrics; 0 serves none.
    port: Annotated[int, Field(ge=0, le=65535)] = 9090


class EndpointSettings(Section):
    """One receiver of signed notifications (Standard Webhooks)."""

    # DNS-label: it names the endpoint in metrics, Events and the outbox.
    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
    # Secret in the operator's namespace whose key `secret` holds the signing key (`whsec_<base64>`).
    signing_key_secret: Annotated[str, Field(min_length=1)]
    # Empty: every event type; else only these.
    events: list[Literal[EVENT_TYPES]] = []  # type: ignore[valid-type]
    # Empty: events of every namespace; else only of these (one team's endpoint hears only its team).
    namespaces: list[str] = []

    def endpoint(self) -> Endpoint:
        return Endpoint(self.name, self.url, frozenset(self.events), frozenset(self.namespaces))


class NotificationSettings(Section):
    endpoints: list[EndpointSettings] = []
    # Undelivered notices kept per namespace (a ConfigMap each in the operator's namespace);
    # beyond it the oldest are dropped, counted and reported in an Event.
    max_pending: Annotated[int, Field(ge=1, le=1000)] = 500
    timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    retry_base_seconds: Annotated[float, Field(gt=0)] = 1.0
    retry_max_seconds: Annotated[float, Field(gt=0)] = 300.0
    # Deliveries under way at once, per endpoint (a hanging receiver holds at most this many).
    concurrency: Annotated[int, Field(ge=1, le=64)] = 4

    @model_validator(mode="after")
    def _unique_names(self) -> NotificationSettings:
        names = [e.name for e in self.endpoints]
        if len(names) != len(set(names)):
            raise ValueError(f"notifications.endpoints: names must be unique, got {names}")
        return self


class ElectionSettings(Section):
    """Replicas take turns through a Lease in the operator's namespace: one runs, the others wait
    alive but not ready, and take over within about leaseSeconds when it stops renewing. As
    client-go's elector: the leader retries a renewal until renewDeadlineSeconds after the last one
    began (each call bounded by the time left), then stops, before a standby may take the Lease."""

    enabled: bool = True
    lease_name: str = "modelreg-operator"
    lease_seconds: Annotated[float, Field(ge=1, le=300)] = 15.0
    renew_deadline_seconds: Annotated[float, Field(ge=0.5, le=300)] = 10.0
    # How often the holder renews (and retries a failed renewal) and a standby asks.
    retry_seconds: Annotated[float, Field(gt=0, le=60)] = 2.0

    @model_validator(mode="after")
    def _renew_within_the_lease(self) -> ElectionSettings:
        # client-go's NewLeaderElector checks, with its JitterFactor 1.2
        if self.lease_seconds <= self.renew_deadline_seconds:
            raise ValueError("election.leaseSeconds must be greater than renewDeadlineSeconds")
        if self.renew_deadline_seconds <= self.retry_seconds * 1.2:
            raise ValueError("election.renewDeadlineSeconds must be greater than retrySeconds x 1.2")
        return self


class ServingTargets(Section):
    """Which kinds of serving target the operator watches and rolls (label modelreg.io/model). An
    enabled kind whose CRD is not installed is skipped, with one log line at start-up."""

    deployments: bool = True
    inference_services: bool = False  # KServe serving.kserve.io/v1beta1
    rollouts: bool = False  # Argo Rollouts argoproj.io/v1alpha1

    def enabled(self) -> set[str]:
        """The enabled kinds, named as in the file (TargetKind.key)."""
        return {to_camel(name) for name, on in self if on}


class ServingSettings(Section):
    targets: ServingTargets = ServingTargets()


class LoggingSettings(Section):
    level: str = "INFO"

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        # any case (`debug` as `DEBUG`), as the chart's logLevel accepts
        level = {"WARN": "WARNING"}.get(value.strip().upper(), value.strip().upper())
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("logging.level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL (any case)")
        return level


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MODELREG_",
        env_nested_delimiter="__",
        extra="forbid",
        populate_by_name=True,
    )

    verification: VerificationSettings = VerificationSettings()
    approvals: ApprovalSettings = ApprovalSettings()
    webhook: WebhookSettings = WebhookSettings()
    storage: StorageSettings = StorageSettings()
    metrics: MetricsSettings = MetricsSettings()
    policy: PolicySettings = PolicySettings()
    promotions: PromotionSettings = PromotionSettings()
    notifications: NotificationSettings = NotificationSettings()
    election: ElectionSettings = ElectionSettings()
    serving: ServingSettings = ServingSettings()
    logging: LoggingSettings = LoggingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        unknown = sorted(
            name
            for name in os.environ
            if name.startswith("MODELREG_")
            and "__" in name
            and name.removeprefix("MODELREG_").split("__")[0].lower() not in cls.model_fields
        )
        if unknown:  # pydantic-settings would ignore them silently: a typo must not
            sections = ", ".join(cls.model_fields)
            raise UnknownSectionError(f"unknown configuration section in {', '.join(unknown)} (sections: {sections})")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("MODELREG_CONFIG")
        if config_file:
            if not os.path.isfile(config_file):
                raise FileNotFoundError(f"MODELREG_CONFIG names {config_file!r}, which is not a file")
            try:
                with open(config_file, encoding="utf-8") as text:
                    content = yaml.safe_load(text)
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                where = getattr(exc, "problem_mark", None)
                line = f" (line {where.line + 1})" if where is not None else ""
                raise ConfigFileError(f"{config_file} is not valid YAML{line}") from None
            if content is not None and not isinstance(content, dict):
                raise ConfigFileError(f"{config_file} must be a YAML mapping of sections, not {type(content).__name__}")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Settings from MODELREG_CONFIG, MODELREG_* and `overrides`; every problem a user can cause
    becomes one InvalidConfiguration whose message is a single line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise InvalidConfiguration(explain(exc)) from exc
    except (FileNotFoundError, UnknownSectionError, ConfigFileError) as exc:
        raise InvalidConfiguration(" ".join(str(exc).split())) from exc


class InvalidConfiguration(Exception):
    """The configuration file or environment is wrong; the message says where, in one line."""


def explain(error: ValidationError) -> str:
    """One line per problem, each key spelled as in the file (camelCase) with its variable's name."""
    lines = []
    for problem in error.errors():
        path = [str(part) for part in problem["loc"]]
        keys = [next((k for k, v in _SPELLINGS.items() if v == p), to_camel(p)) for p in path]
        variable = "MODELREG_" + "__".join(path[:2]).upper()
        lines.append(f"{'.'.join(keys)}: {problem['msg']} (or {variable})")
    return "; ".join(lines)
