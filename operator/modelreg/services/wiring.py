"""The one place the operator's services are built from settings (kopf's memo holds them)."""

from __future__ import annotations

from dataclasses import dataclass

from modelreg.config import Settings
from modelreg.domain.approvals import ApprovalSeals
from modelreg.domain.seals import Sealer
from modelreg.domain.trust import StatusSeals
from modelreg.services.admission import AdmissionReviewer
from modelreg.services.model_versions import ModelVersionReconciler
from modelreg.services.promotions import PromotionReconciler
from modelreg.storage import kube, s3


@dataclass
class Services:
    model_versions: ModelVersionReconciler
    promotions: PromotionReconciler
    admission: AdmissionReviewer
    status_seals: StatusSeals


async def build(settings: Settings, seal_key: bytes) -> Services:
    sealer = Sealer(seal_key)
    approvals = ApprovalSeals(sealer, settings.approvals.gitops_identity, settings.approvals.gitops_stages)
    status_seals = StatusSeals(sealer)
    store = kube.KubeStore(kube.make_api_client())
    verification = settings.verification
    objects = s3.ObjectStore(s3.make_client(), verification.chunk_size_bytes, verification.queue_depth)
    policy = settings.policy
    return Services(
        model_versions=ModelVersionReconciler(
            objects, verification.retry_policy(), verification.max_concurrent, status_seals
        ),
        promotions=PromotionReconciler(
            store,
            policy.required_approvals,
            {stage: [c.to_k8s() for c in criteria] for stage, criteria in policy.default_criteria.items()},
            policy.namespace_config_map,
            approvals,
            status_seals,
        ),
        admission=AdmissionReviewer(store, approvals, status_seals, operator_user=await store.whoami()),
        status_seals=status_seals,
    )
