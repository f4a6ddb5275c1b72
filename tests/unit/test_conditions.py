from modelreg.domain.conditions import find, set_condition


def test_last_transition_time_moves_only_when_status_flips():
    first = set_condition([], "Ready", False, "Verifying", "wait", now="t1", generation=1)
    same_status = set_condition(first, "Ready", False, "NotFound", "missing", now="t2", generation=1)
    flipped = set_condition(same_status, "Ready", True, "Verified", "ok", now="t3", generation=2)

    assert find(same_status, "Ready")["lastTransitionTime"] == "t1"
    assert find(same_status, "Ready")["reason"] == "NotFound"
    assert find(flipped, "Ready") == {
        "type": "Ready",
        "status": "True",
        "reason": "Verified",
        "message": "ok",
        "lastTransitionTime": "t3",
        "observedGeneration": 2,
    }


def test_other_conditions_are_kept_and_order_is_stable():
    conditions = set_condition([], "Ready", None, "Verifying", "", now="t", generation=None)
    conditions = set_condition(conditions, "ArtifactVerified", True, "Verified", "", now="t", generation=None)
    assert [c["type"] for c in conditions] == ["ArtifactVerified", "Ready"]
    assert find(conditions, "Ready")["status"] == "Unknown"
