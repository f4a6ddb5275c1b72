from datetime import UTC, datetime, timedelta

from modelreg.domain.artifacts import Reason, Snapshot, Verdict
from modelreg.domain.model_versions import (
    Lineage,
    RetryPolicy,
    Sibling,
    changed_keys,
    check_due,
    duplicate_owner,
    missing_parent,
    status_after_check,
    unchanged_since_last_check,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = RetryPolicy(base_seconds=2, max_seconds=60, recheck_seconds=600)
LINEAGE = Lineage("fraud", 1, None, None, False)
SNAP = Snapshot(size=5, etag="e1", version_id="v1")


def status_with(reason, failures=0, ago=0.0, generation=1):
    return {
        "observedGeneration": generation,
        "conditions": [{"type": "ArtifactVerified", "status": "False", "reason": reason}],
        "lastCheck": {
            "time": (NOW - timedelta(seconds=ago)).isoformat(),
            "consecutiveFailures": failures,
            "etag": "e1",
            "versionId": "v1",
            "sizeBytes": 5,
        },
    }


def test_backoff_doubles_and_caps():
    assert [POLICY.delay(n) for n in (1, 2, 3, 4, 10, 100)] == [2, 4, 8, 16, 60, 60]


def test_new_or_changed_objects_are_due_at_once():
    assert check_due({}, 1, NOW, POLICY)
    assert check_due(status_with("Verified", ago=1), 2, NOW, POLICY)  # generation moved


def test_transient_failures_follow_the_backoff():
    assert not check_due(status_with("StorageUnavailable", failures=3, ago=7), 1, NOW, POLICY)
    assert check_due(status_with("StorageUnavailable", failures=3, ago=8), 1, NOW, POLICY)


def test_settled_verdicts_wait_for_the_recheck_interval():
    for reason in ("Verified", "ChecksumMismatch"):
        assert not check_due(status_with(reason, ago=599), 1, NOW, POLICY)
        assert check_due(status_with(reason, ago=600), 1, NOW, POLICY)


def test_unchanged_object_with_settled_verdict_is_not_reread():
    assert unchanged_since_last_check(status_with("ChecksumMismatch"), 1, SNAP)
    assert not unchanged_since_last_check(status_with("ChecksumMismatch"), 1, Snapshot(5, "e2", "v1"))
    assert not unchanged_since_last_check(status_with("NotFound"), 1, SNAP)  # transient: always re-read


def test_oldest_registration_owns_a_version():
    siblings = [Sibling("b", 3, "2026-01-02T00:00:00Z"), Sibling("c", 4, "2026-01-01T00:00:00Z")]
    assert duplicate_owner("a", "2026-01-01T00:00:00Z", 3, siblings) is None
    assert duplicate_owner("a", "2026-01-03T00:00:00Z", 3, siblings) == "b"
    assert missing_parent(5, siblings) and not missing_parent(4, siblings) and not missing_parent(None, siblings)


def test_verified_status_records_what_was_proven():
    verdict = Verdict(Reason.VERIFIED, "ok", "f" * 64, "Stream")
    status, transitions = status_after_check(
        {}, generation=1, checked=True, verdict=verdict, snapshot=SNAP, lineage=LINEAGE, now="T"
    )
    assert status["artifact"] == {
        "sha256": "f" * 64,
        "sizeBytes": 5,
        "etag": "e1",
        "versionId": "v1",
        "method": "Stream",
        "verifiedTime": "T",
    }
    assert status["lastCheck"]["consecutiveFailures"] == 0
    assert [(t.reason, t.type, t.previous, t.notice) for t in transitions] == [
        ("Registered", "Normal", None, "model_version.registered"),  # the first status: registered
        ("Verified", "Normal", None, "model_version.verified"),
    ]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"


def test_transient_failure_counts_up_and_keeps_the_proven_artifact():
    previous = status_with("StorageUnavailable", failures=2)
    previous["artifact"] = {"sha256": "x"}
    verdict = Verdict(Reason.STORAGE_UNAVAILABLE, "down")
    status, transitions = status_after_check(
        previous, generation=1, checked=True, verdict=verdict, snapshot=None, lineage=LINEAGE, now="T"
    )
    assert status["lastCheck"] == {"time": "T", "consecutiveFailures": 3}
    assert "artifact" not in status  # not rewritten: what was proven before stays as it was
    assert transitions == []  # same reason as before: no new Event


def test_duplicate_shows_on_ready_only():
    lineage = Lineage("fraud", 1, "older", 7, True)
    status, transitions = status_after_check(
        {}, generation=1, checked=False, verdict=None, snapshot=None, lineage=lineage, now="T"
    )
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "DuplicateVersion" and "older" in ready["message"]
    assert "parentVersion 7" in ready["message"]  # the lineage note rides along
    assert [t.reason for t in transitions] == ["Registered", "DuplicateVersion"]
    assert "lastCheck" not in status


def test_quiet_ticks_change_nothing():
    current = {"a": 1, "b": [1]}
    assert changed_keys(current, {"a": 1, "b": [1]}) == {}
    assert changed_keys(current, {"a": 2, "b": [1]}) == {"a": 2}


def test_only_a_final_failure_notifies_invalid():
    verdict = Verdict(Reason.CHECKSUM_MISMATCH, "wrong bytes")
    _, transitions = status_after_check(
        status_with("Verifying"), generation=1, checked=True, verdict=verdict, snapshot=SNAP, lineage=LINEAGE, now="T"
    )
    assert [t.notice for t in transitions] == ["model_version.invalid"]
    outage = Verdict(Reason.STORAGE_UNAVAILABLE, "down")
    _, transitions = status_after_check(
        status_with("Verifying"), generation=1, checked=True, verdict=outage, snapshot=None, lineage=LINEAGE, now="T"
    )
    assert [t.notice for t in transitions] == [None]  # an outage is retried, not an invalid artifact
