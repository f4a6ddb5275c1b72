"""The MLflow front door's pure decisions: URIs, aliases as stages, status, version numbers."""

from __future__ import annotations

import pytest

from modelreg.domain import mlflow_front as front

SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def test_registry_uris_name_a_context_and_a_namespace():
    assert front.parse_registry_uri("modelreg:///ml") == front.Target(None, "ml")
    assert front.parse_registry_uri("modelreg://prod/ml") == front.Target("prod", "ml")
    assert front.parse_registry_uri("modelreg://") == front.Target(None, None)  # the context's namespace
    for bad in ("http://x/ml", "modelreg:///ml/extra", "modelreg:///ML"):
        with pytest.raises(front.NotAllowed):
            front.parse_registry_uri(bad)


def test_verified_uris_round_trip_and_refuse_anything_else():
    uri = front.verified_uri(front.Target("prod", None), "ml", "fraud", 3, SHA)
    assert uri == f"modelreg-verified://prod/ml/fraud/3?sha256={SHA}"
    assert front.parse_verified_uri(uri) == front.VerifiedArtifact(front.Target("prod", "ml"), "fraud", 3, SHA)
    assert front.parse_verified_uri(f"modelreg-verified:///ml/fraud/3?sha256={SHA}").target.context is None
    for bad in (
        "modelreg-verified:///ml/fraud/3",  # no digest: nothing to verify against
        f"modelreg-verified:///ml/fraud/x?sha256={SHA}",
        f"modelreg-verified:///ml/../fraud/3?sha256={SHA}",
        f"s3:///ml/fraud/3?sha256={SHA}",
    ):
        with pytest.raises(front.NotAllowed):
            front.parse_verified_uri(bad)


def test_aliases_are_the_stages_in_any_case():
    assert [front.stage_for_alias(a) for a in ("production", "STAGING", "Archived")] == [
        "Production",
        "Staging",
        "Archived",
    ]
    with pytest.raises(front.NotAllowed, match="aliases are its stages"):
        front.stage_for_alias("champion")
    assert front.stage_name("none") == "None"


def mv(version: int, reason: str | None = "Verified", status: str = "True", stage: str = "", ready: str = "Verified"):
    conditions = [{"type": "Ready", "status": "True", "reason": ready}]
    if reason:
        conditions.append({"type": "ArtifactVerified", "status": status, "reason": reason, "message": "m"})
    return {
        "metadata": {"name": f"fraud-v{version}", "annotations": {}},
        "spec": {
            "modelName": "fraud",
            "version": version,
            "artifact": {"uri": "s3://models/fraud/1.onnx", "sha256": SHA},
        },
        "status": {"conditions": conditions, "artifact": {"sha256": SHA}, "stage": stage},
    }


def test_status_is_ready_only_for_a_current_proof():
    assert front.status_of(mv(1))[0] == "READY"
    assert front.status_of(mv(1, reason=None))[0] == "PENDING_REGISTRATION"
    assert front.status_of(mv(1, "StorageUnavailable", "False"))[0] == "PENDING_REGISTRATION"
    assert front.status_of(mv(1, "ChecksumMismatch", "False"))[0] == "FAILED_REGISTRATION"
    assert front.status_of(mv(1, "ArtifactChanged", "False"))[0] == "FAILED_REGISTRATION"
    assert front.status_of(mv(1, ready="DuplicateVersion"))[0] == "FAILED_REGISTRATION"


def test_next_version_counts_duplicates_and_owners_do_not():
    versions = [mv(1), mv(2), mv(2, ready="DuplicateVersion")]
    assert front.next_version(versions, "fraud") == 3 and front.next_version(versions, "other") == 1
    assert [v["spec"]["version"] for v in front.owners(versions)] == [1, 2]


def test_tags_live_in_one_annotation_and_stage_holders_are_not_deleted():
    holder = mv(1, stage="Production")
    holder["metadata"]["annotations"][front.TAGS_ANNOTATION] = front.tags_annotation({"team": "risk", "n": 1})
    assert front.tags_of(holder) == {"n": "1", "team": "risk"}
    holder["metadata"]["annotations"][front.TAGS_ANNOTATION] = "not json"
    assert front.tags_of(holder) == {}
    with pytest.raises(front.NotAllowed, match="holds Production"):
        front.refuse_if_holder(holder, "delete")
    front.refuse_if_holder(mv(2), "delete")
