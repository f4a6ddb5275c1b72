"""What a failed reconcile tells the object's owner (services.failures)."""

from __future__ import annotations

import pytest

from modelreg import metrics
from modelreg.domain.artifacts import Reason
from modelreg.services.failures import MESSAGE_LIMIT, FailureReports, explain
from modelreg.storage.kube import ApiRefused, ApiUnreachable, Conflict, Gone
from modelreg.storage.s3 import StorageFailure


@pytest.mark.parametrize(
    ("exc", "reason", "says"),
    [
        (ApiRefused(403, 'cannot patch resource "deployments"'), "APIForbidden", 'cannot patch resource "deployments"'),
        (ApiRefused(401, "Unauthorized"), "APIForbidden", "Unauthorized"),
        (ApiRefused(503, "etcdserver: request timed out"), "APIUnavailable", "etcdserver: request timed out"),
        (ApiRefused(429, "too many requests"), "APIUnavailable", "too many requests"),
        (ApiRefused(422, "spec.replicas: Invalid value"), "APIRejected", "spec.replicas: Invalid value"),
        (ApiUnreachable("MaxRetryError: connection refused"), "APIUnavailable", "connection refused"),
        (StorageFailure(Reason.ACCESS_DENIED, "access to s3://b/k denied"), "AccessDenied", "s3://b/k"),
    ],
)
def test_each_failure_gets_a_reason_and_says_what_happened(exc, reason, says):
    failure = explain(exc)
    assert failure is not None and failure.reason == reason
    assert says in failure.message and failure.message.endswith("retried with backoff")


@pytest.mark.parametrize("exc", [Conflict("409"), Gone("404")])
def test_races_of_normal_operation_are_not_told(exc):
    assert explain(exc) is None


def test_a_defect_is_told_without_its_details():
    failure = explain(KeyError("s3://user:hunter2@bucket/secret-path"))
    assert failure is not None and failure.reason == "InternalError"
    assert "KeyError" in failure.message and "hunter2" not in failure.message and "secret-path" not in failure.message


def test_secrets_in_an_api_message_are_redacted_and_long_messages_cut():
    failure = explain(ApiRefused(500, "proxy http://admin:s3cret@proxy:3128 failed: " + "x" * 5000))
    assert failure is not None
    assert "s3cret" not in failure.message and "http://***@proxy:3128" in failure.message
    assert len(failure.message) <= MESSAGE_LIMIT + len("; retried with backoff")


def test_a_failure_streak_is_told_once_and_again_only_when_its_reason_changes():
    told: list[tuple[object, str]] = []
    reports = FailureReports("ModelPromotion", lambda key, failure: told.append((key, failure.reason)))
    key = ("ml", "p")
    lengths = [reports.failed(key, ApiRefused(422, "invalid")) for _ in range(3)]
    lengths.append(reports.failed(key, Conflict("409")))  # a race in a streak neither tells nor ends it
    lengths.append(reports.failed(key, ApiRefused(422, "invalid")))
    assert told == [(key, "APIRejected")]
    assert lengths == [1, 2, 3, 4, 5]  # the backoff grows with the streak

    reports.failed(key, ApiRefused(403, "forbidden"))
    assert told[-1] == (key, "APIForbidden")
    reports.failed(("ml", "other"), ApiRefused(403, "forbidden"))  # each object has its own streak
    assert told[-1] == (("ml", "other"), "APIForbidden")

    reports.succeeded(key)
    assert reports.failed(key, ApiRefused(403, "forbidden")) == 1  # a new streak: told again, backoff anew
    assert told[-1] == (key, "APIForbidden") and len(told) == 4
    reports.forget(key)  # deleted: nothing kept for it
    assert reports.failed(key, Conflict("409")) == 1


def test_an_api_outage_is_counted_not_told_on_every_object():
    told: list[object] = []
    reports = FailureReports("ModelVersion", lambda key, failure: told.append(key))
    before = metrics.RECONCILE_FAILURES.labels(kind="ModelVersion", reason="APIUnavailable")._value.get()
    for n in range(50):
        reports.failed(("ml", f"v{n}"), ApiRefused(429, "too many requests"))
        reports.failed(("ml", f"w{n}"), ApiUnreachable("connection refused"))
    assert told == []  # no Event per object on top of a throttling or absent API server
    assert metrics.RECONCILE_FAILURES.labels(kind="ModelVersion", reason="APIUnavailable")._value.get() == before + 100


def test_an_admission_denial_is_an_info_line_not_an_error():
    import logging

    from modelreg.logs import ExpectedDenials

    denial = logging.LogRecord(
        "kopf.objects",
        logging.ERROR,
        __file__,
        1,
        "Webhook 'check-promotions' failed permanently: dave may not",
        (),
        None,
    )
    assert ExpectedDenials().filter(denial) and denial.levelno == logging.INFO
    assert denial.getMessage() == "admission denied by 'check-promotions': dave may not"
    crash = logging.LogRecord(
        "kopf.objects", logging.ERROR, __file__, 1, "Handler 'x' failed with an exception", (), None
    )
    assert ExpectedDenials().filter(crash) and crash.levelno == logging.ERROR
