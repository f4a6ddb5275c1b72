import pytest

from modelreg.domain.approvals import tally, trust_policy
from modelreg.domain.criteria import evaluate
from modelreg.domain.policy import PolicyError, effective_policy
from modelreg.domain.promotions import (
    Move,
    Policy,
    blocked_by,
    execution_moves,
    gates,
    history_has,
    rollback_moves,
    superseded_by,
)

TRUST = trust_policy(True)


def mv(name, version, stage=None, verified=True, created="2026-01-01T00:00:00Z", metrics=None):
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"modelName": "fraud", "version": version, "metrics": metrics or {}},
        "status": {
            "stage": stage,
            "conditions": [
                {
                    "type": "ArtifactVerified",
                    "status": "True" if verified else "False",
                    "reason": "Verified" if verified else "ChecksumMismatch",
                    "message": "m",
                }
            ],
        },
    }


def promo(name, version, target="Production", created="2026-01-02T00:00:00Z", reason=None, annotations=None):
    status = {"conditions": [{"type": "Succeeded", "status": "Unknown", "reason": reason}]} if reason else {}
    return {
        "metadata": {"name": name, "creationTimestamp": created, "annotations": annotations or {}},
        "spec": {"modelName": "fraud", "version": version, "targetStage": target},
        "status": status,
    }


def test_tally_counts_distinct_proven_users_except_the_requester():
    annotations = {
        "approval.modelreg.io/a": "alice",
        "approval.modelreg.io/b": "bob",
        "approval.modelreg.io/b2": "bob",
        "approval.modelreg.io/c": "carol",
        "other": "x",
    }
    result = tally(annotations, "alice", 2, TRUST, [{"user": "bob", "time": "T0"}], now="T1")
    assert [(a["user"], a["time"]) for a in result.counted] == [("bob", "T0"), ("carol", "T1")]
    assert result.approved and result.summary == "2/2"
    assert result.ignored == ["alice requested this promotion and cannot approve it"]
    assert tally(annotations, "alice", 2, trust_policy(False)).counted == []


def test_criteria_bounds_regression_and_comparison():
    result = evaluate(
        [
            {"metric": "auc", "min": 0.9},
            {"metric": "loss", "max": 0.2},
            {"metric": "auc", "maxRegression": 0.01},
            {"metric": "f1", "min": 0},
        ],
        {"auc": 0.92, "loss": 0.3},
        {"auc": 0.95, "loss": 0.1},
    )
    assert result.failures == [
        "loss = 0.3 is above the maximum 0.2",
        "auc = 0.92 regresses by 0.03 from 0.95 (the current version); at most 0.01 allowed",
        "metric f1 is missing from the candidate's spec.metrics",
    ]
    assert result.comparison["loss"] == {"candidate": 0.3, "current": 0.1, "delta": 0.2}
    assert evaluate([{"metric": "auc", "maxRegression": 0.0}], {"auc": 0.5}, None).met  # nothing to regress from


def test_namespace_policy_only_tightens():
    policy = effective_policy(
        {"Production": 2, "Staging": 0}, {}, {"requiredApprovals": {"Production": 1, "Staging": 1}}
    )
    assert policy.required_approvals == {"Production": 2, "Staging": 1}
    with pytest.raises(PolicyError, match="requiredApprovals"):
        effective_policy({}, {}, {"requiredApprovals": {"Prod": 1}})
    with pytest.raises(PolicyError, match="unknown key"):
        effective_policy({}, {}, {"approvals": 1})


def test_gates_in_order_version_artifact_criteria_approval():
    policy = Policy({"Production": 1})
    p = promo("p", 2)
    assert gates(p, [], policy, TRUST, "T").reason == "VersionNotFound"
    assert gates(p, [mv("v2", 2, verified=False)], policy, TRUST, "T").reason == "ArtifactInvalid"
    assert gates(p, [mv("v2", 2)], policy, TRUST, "T").reason == "AwaitingApproval"
    approved = promo("p", 2, annotations={"approval.modelreg.io/bob": "bob"})
    ready = gates(approved, [mv("v1", 1, stage="Production"), mv("v2", 2)], policy, TRUST, "T")
    assert ready.ready and ready.holder["metadata"]["name"] == "v1"


def test_turns_and_superseding():
    older, newer = promo("old", 1, created="2026-01-01T00:00:00Z"), promo("new", 2, created="2026-01-03T00:00:00Z")
    assert blocked_by(newer, [older, newer], {"old": True, "new": True}) == "old"
    assert blocked_by(newer, [older, newer], {"old": False, "new": True}) is None
    assert blocked_by(older, [promo("x", 3, reason="RollingOut"), older], {}) == "x"
    done = promo("new", 2, created="2026-01-03T00:00:00Z", reason="Promoted")
    assert superseded_by(older, [older, done]) == "new"
    assert superseded_by(promo("arch", 1, target="Archived"), [done]) is None


def test_moves_archive_the_previous_production_and_roll_back_in_reverse():
    moves = execution_moves("Production", mv("v2", 2, stage="Staging"), mv("v1", 1, stage="Production"))
    assert moves == [Move("v1", 1, "Production", "Archived"), Move("v2", 2, "Staging", "Production")]
    assert rollback_moves(moves) == [Move("v2", 2, "Production", "Staging"), Move("v1", 1, "Archived", "Production")]
    assert history_has([{"stage": "Archived", "promotion": "p"}], moves[0], "p")
    assert not history_has([{"stage": "Archived", "promotion": "q"}], moves[0], "p")
    assert Move.from_status(moves[0].to_status()) == moves[0]
