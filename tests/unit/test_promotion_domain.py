import pytest

from modelreg.domain.approvals import Candidate, tally
from modelreg.domain.criteria import evaluate
from modelreg.domain.policy import PolicyError, effective_policy
from modelreg.domain.promotions import (
    Move,
    Policy,
    admission_order,
    blocked_by,
    execution_moves,
    gates,
    history_has,
    moved_version,
    rollback_moves,
    stage_record,
    superseded_by,
)
from modelreg.sandbox.keys import approval_seals, sealed_annotations

SEALS = approval_seals()


def mv(name, version, stage=None, verified=True, created="2026-01-01T00:00:00Z", metrics=None, sha="a" * 64):
    return {
        "metadata": {"name": name, "creationTimestamp": created, "uid": f"uid-{name}-{sha[:4]}"},
        "spec": {"modelName": "fraud", "version": version, "metrics": metrics or {}, "artifact": {"sha256": sha}},
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
        "metadata": {
            "name": name,
            "namespace": "ml",
            "uid": f"uid-{name}",
            "creationTimestamp": created,
            "annotations": annotations or {},
        },
        "spec": {"modelName": "fraud", "version": version, "targetStage": target},
        "status": status,
    }


def approved(promotion, candidate, requester="alice", approvers=()):
    promotion["metadata"]["annotations"].update(sealed_annotations(promotion, candidate, requester, approvers))
    return promotion


def test_tally_counts_distinct_sealed_users_except_the_requester():
    v2 = mv("v2", 2)
    p = approved(promo("p", 2), v2, approvers=["alice", "bob", "carol"])
    p["metadata"]["annotations"]["approval.modelreg.io/b2"] = "bob"  # the same person twice
    p["metadata"]["annotations"]["other"] = "x"
    result = tally(p, Candidate.of(v2), 2, SEALS, [{"user": "bob", "time": "T0"}])
    assert [(a["user"], a["time"], a["via"]) for a in result.counted] == [
        ("bob", "T0", "webhook"),
        ("carol", "2026-01-02T00:00:00Z", "webhook"),
    ]
    assert result.approved and result.summary == "2/2"
    assert "alice requested this promotion and cannot approve it" in result.ignored


def test_hand_written_copied_or_stale_seals_count_for_nothing():
    v2 = mv("v2", 2)
    p = approved(promo("p", 2), v2, approvers=["bob", "carol"])
    annotations = p["metadata"]["annotations"]
    # a seal copied from bob's approval onto dave's, and one written by hand
    annotations.update(
        {"approval.modelreg.io/dave": "dave", "seal.modelreg.io/dave": annotations["seal.modelreg.io/bob"]}
    )
    annotations.update({"approval.modelreg.io/erin": "erin", "seal.modelreg.io/erin": "webhook|T|v1.forged"})
    assert [a["user"] for a in tally(p, Candidate.of(v2), 2, SEALS).counted] == ["bob", "carol"]
    # v2 deleted and re-created with other bytes (new uid, new sha256): earlier approvals bind to nothing
    recreated = mv("v2", 2, sha="b" * 64)
    assert tally(p, Candidate.of(recreated), 2, SEALS).counted == []
    # the same seals on another promotion (another uid) prove nothing either
    other = {**p, "metadata": {**p["metadata"], "uid": "uid-other"}}
    assert tally(other, Candidate.of(v2), 2, SEALS).counted == []
    # a key of another seal key (a different operator) proves nothing
    assert tally(p, Candidate.of(v2), 2, approval_seals(b"another-operator-key-32-bytes!!!")).counted == []


@pytest.mark.parametrize("alias", ["Bob", "bob\u200b", "b\u043eb", "\uff42\uff4f\uff42", " bob"])
def test_one_person_under_lookalike_names_is_one_approver_and_never_the_requester(alias):
    v2 = mv("v2", 2)
    p = approved(promo("p", 2), v2, approvers=["bob", alias])
    assert len(tally(p, Candidate.of(v2), 2, SEALS).counted) == 1
    own = approved(promo("q", 2), v2, requester="bob", approvers=[alias])
    assert tally(own, Candidate.of(v2), 1, SEALS).counted == []


def test_requested_by_without_its_seal_or_copied_onto_a_later_creation_proves_no_requester():
    v2 = mv("v2", 2)
    p = approved(promo("p", 2), v2, approvers=["bob"])
    p["metadata"]["annotations"]["modelreg.io/requested-by"] = "mallory"
    assert SEALS.requester(p) is None and tally(p, Candidate.of(v2), 1, SEALS).counted == []
    late = approved(promo("p", 2), v2, approvers=["bob"])
    late["metadata"]["creationTimestamp"] = "2026-01-02T01:00:00Z"  # re-created an hour after the seal
    assert SEALS.requester(late) is None


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
    assert gates(p, [], policy, SEALS).reason == "WaitingForVersion"
    assert gates(p, [mv("v2", 2, verified=False)], policy, SEALS).reason == "ArtifactInvalid"
    assert gates(p, [mv("v2", 2)], policy, SEALS).reason == "AwaitingApproval"
    ok = approved(promo("p", 2), mv("v2", 2), approvers=["bob"])
    ready = gates(ok, [mv("v1", 1, stage="Production"), mv("v2", 2)], policy, SEALS)
    assert ready.ready and ready.holder["metadata"]["name"] == "v1"


def test_leaving_production_takes_productions_approvals():
    policy = Policy({"Production": 2, "Archived": 0, "Staging": 0})
    holder = mv("v1", 1, stage="Production")
    archive = promo("a", 1, target="Archived")
    waiting = gates(archive, [holder], policy, SEALS)
    assert waiting.reason == "AwaitingApproval" and waiting.approvals.summary == "0/2"
    assert gates(promo("b", 2, target="Archived"), [holder, mv("v2", 2)], policy, SEALS).ready  # not a holder
    two = approved(promo("c", 1, target="Archived"), holder, approvers=["bob", "carol"])
    assert gates(two, [holder], policy, SEALS).ready


def test_stage_record_replays_promoted_and_undoes_rolled_back_moves():
    def done(name, moves, reason, start):
        p = promo(name, 2, reason=reason)
        p["status"].update(moves=[m.to_status() for m in moves], startTime=start, completionTime=start)
        p["status"]["approvals"] = [{"user": "bob"}]
        return p

    v1, v2 = mv("v1", 1), mv("v2", 2)
    first = done("p1", [Move("v1", 1, "", "Production", "uid-v1-aaaa")], "Promoted", "2026-01-01T00:00:00Z")
    second = done(
        "p2",
        [Move("v1", 1, "Production", "Archived", "uid-v1-aaaa"), Move("v2", 2, "", "Production", "uid-v2-aaaa")],
        "RolledBack",
        "2026-01-02T00:00:00Z",
    )
    stage, history = stage_record(v1, [second, first])
    assert stage == "Production"
    assert [(h["stage"], h["promotion"]) for h in history] == [
        ("Production", "p1"),
        ("Archived", "p2"),
        ("Production", "p2"),
    ]
    assert history[0]["approvedBy"] == ["bob"]
    assert stage_record(v2, [first, second])[0] == ""


def test_a_version_registered_again_under_its_name_is_given_no_stage_from_the_records():
    # fraud-v1 held Production; deleted and created again (other bytes): the moves name the old uid
    held = {
        "metadata": {"name": "p1"},
        "status": {"moves": [Move("v1", 1, "", "Production", "uid-v1-aaaa").to_status()]},
    }
    held["status"]["conditions"] = [{"type": "Succeeded", "status": "True", "reason": "Promoted"}]
    again = {**mv("v1", 1), "metadata": {**mv("v1", 1)["metadata"], "uid": "uid-v1-again"}}
    assert stage_record(again, [held]) == ("", [])
    assert stage_record(mv("v1", 1), [held])[0] == "Production"
    legacy = {**held, "status": {**held["status"], "moves": [Move("v1", 1, "", "Production").to_status()]}}
    assert stage_record(mv("v1", 1), [legacy])[0] == ""  # a move without a uid names no object


def test_turns_and_superseding():
    older, newer = promo("old", 1, created="2026-01-01T00:00:00Z"), promo("new", 2, created="2026-01-03T00:00:00Z")
    assert blocked_by(newer, [older, newer], {"old": True, "new": True}) == "old"
    assert blocked_by(newer, [older, newer], {"old": False, "new": True}) is None
    assert blocked_by(older, [promo("x", 3, reason="RollingOut"), older], {}) == "x"
    done = promo("new", 2, created="2026-01-03T00:00:00Z", reason="Promoted")
    assert superseded_by(older, [older, done]) == "new"
    assert superseded_by(promo("arch", 1, target="Archived"), [done]) is None

    # Created within one second (creationTimestamp's resolution): the webhook's sealed, sub-second
    # admission time decides, not the names (promo-9 sorts after promo-10).
    seals = approval_seals()

    def admitted(name, version, at, reason=None):
        body = promo(name, version, created="2026-01-03T00:00:00Z", reason=reason)
        seal = seals.requester_seal("ml", name, "alice", at)
        body["metadata"]["annotations"] = {"modelreg.io/requested-by": "alice", "modelreg.io/requested-by-seal": seal}
        return body

    later = admitted("promo-10", 11, "2026-01-03T00:00:00.900000Z")
    done_9 = admitted("promo-9", 10, "2026-01-03T00:00:00.100000Z", reason="Promoted")
    order = admission_order(seals)
    assert superseded_by(later, [later, done_9], order) is None
    assert superseded_by(later, [later, done_9]) == "promo-9"  # what names alone would have decided
    forged = {**done_9, "metadata": {**done_9["metadata"], "annotations": {}}}  # no seal: whole seconds
    assert order(forged) == ("2026-01-03T00:00:00.000000Z", "promo-9")


def test_moves_archive_the_previous_production_and_roll_back_in_reverse():
    moves = execution_moves("Production", mv("v2", 2, stage="Staging"), mv("v1", 1, stage="Production"))
    v1_uid, v2_uid = "uid-v1-aaaa", "uid-v2-aaaa"  # the very objects judged
    assert moves == [Move("v1", 1, "Production", "Archived", v1_uid), Move("v2", 2, "Staging", "Production", v2_uid)]
    assert rollback_moves(moves) == [
        Move("v2", 2, "Production", "Staging", v2_uid),
        Move("v1", 1, "Archived", "Production", v1_uid),
    ]
    assert history_has([{"stage": "Archived", "promotion": "p"}], moves[0], "p")
    assert not history_has([{"stage": "Archived", "promotion": "q"}], moves[0], "p")
    assert Move.from_status(moves[0].to_status()) == moves[0]


def test_a_move_names_the_very_version_judged_not_one_registered_again_under_its_name():
    judged = mv("v2", 2)
    move = execution_moves("Production", judged, None)[0]
    assert moved_version([judged], move) is judged
    again = {**judged, "metadata": {**judged["metadata"], "uid": "someone-elses"}}
    assert moved_version([again], move) is None
    assert moved_version([again], Move("v2", 2, "", "Production")) is None  # a record from before uids were kept


def test_an_approval_sealed_for_one_stage_move_does_not_count_once_the_candidate_holds_another_stage():
    v1 = mv("v1", 1)  # no stage when approved: only Staging's permission was checked
    p = approved(promo("p", 1, target="Staging"), v1, approvers=["bob", "carol"])
    policy = Policy({"Staging": 0, "Production": 2})
    assert gates(p, [v1], policy, SEALS).ready
    now_in_production = mv("v1", 1, stage="Production")  # leaving Production needs approvals checked for it
    waiting = gates(p, [now_in_production], policy, SEALS)
    assert waiting.reason == "AwaitingApproval" and waiting.approvals.counted == []


def test_a_non_ascii_seal_is_simply_not_valid():
    v2 = mv("v2", 2)
    p = approved(promo("p", 2), v2, approvers=["bob"])
    p["metadata"]["annotations"]["seal.modelreg.io/bob"] = "webhook|T|v1.é"
    assert tally(p, Candidate.of(v2), 1, SEALS).counted == []
    assert not SEALS.sealer.verifies("é", "anything")


def test_a_rotated_key_still_verifies_what_it_sealed_and_seals_nothing_new():
    from modelreg.domain.seals import Sealer

    old, new = b"old-key-of-sixteen-bytes", b"new-key-of-sixteen-bytes"
    sealed = Sealer(old).seal("approval", "x")
    rotated = Sealer(new, [old])
    assert rotated.verifies(sealed, "approval", "x") and not Sealer(new).verifies(sealed, "approval", "x")
    assert rotated.seal("approval", "x") == Sealer(new).seal("approval", "x")
