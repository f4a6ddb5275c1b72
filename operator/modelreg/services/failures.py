"""What a failed reconcile tells the object's owner: every failure that escapes a reconcile is
mapped here, to one reason and message, and told once per failure streak as a Warning Event.

Failures a reconcile expects are decided where they happen and shown in conditions (a storage
failure's reason is set by storage/s3 and becomes the ArtifactVerified reason; a broken policy
ConfigMap is InvalidPolicy; a misconfigured Deployment is RolloutFailed). What escapes (the
Kubernetes API refusing or not answering, a defect) is retried with backoff by the scheduler;
without this, the owner would see nothing but a status that does not move.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from modelreg import metrics
from modelreg.domain.redaction import redact
from modelreg.storage.kube import ApiRefused, ApiUnreachable, Conflict, Gone
from modelreg.storage.s3 import Stopped, StorageFailure

MESSAGE_LIMIT = 512  # the API server's messages can quote whole objects


@dataclass(frozen=True)
class Failure:
    reason: str
    message: str


def explain(exc: BaseException) -> Failure | None:
    """None for the races of normal operation (someone wrote first; the object was deleted; the
    operator is stopping): the next attempt sees the new state and there is nothing to tell."""
    if isinstance(exc, Conflict | Gone | Stopped):
        return None
    if isinstance(exc, StorageFailure):
        failure = Failure(exc.reason.value, exc.message)
    elif isinstance(exc, ApiRefused) and exc.status in (401, 403):
        failure = Failure("APIForbidden", f"the Kubernetes API refused the operator ({exc.status}): {exc.message}")
    elif isinstance(exc, ApiRefused) and (exc.status == 429 or exc.status >= 500):
        failure = Failure("APIUnavailable", f"the Kubernetes API failed ({exc.status}): {exc.message}")
    elif isinstance(exc, ApiRefused):
        failure = Failure("APIRejected", f"the Kubernetes API rejected a write ({exc.status}): {exc.message}")
    elif isinstance(exc, ApiUnreachable):
        failure = Failure("APIUnavailable", f"the Kubernetes API did not answer: {exc}")
    else:  # a defect: its details are for the operator's log, not for every reader of Events
        failure = Failure("InternalError", f"the operator failed ({type(exc).__name__}); details in its log")
    message = redact(failure.message)
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 1] + "…"
    return Failure(failure.reason, f"{message}; retried with backoff")


class FailureReports:
    """Each object's failure streak: its length (for the backoff), told once, and again only when
    the reason changes. Only objects in a streak are kept; a success or a deletion ends it."""

    def __init__(self, kind: str, tell: Callable[[Any, Failure], None]) -> None:
        self.kind, self.tell = kind, tell
        self._streaks: dict[Hashable, tuple[int, str | None]] = {}  # key -> (failures, reason told)

    def failed(self, key: Hashable, exc: BaseException) -> int:
        """The streak's length, this failure included."""
        count, told = self._streaks.get(key, (0, None))
        failure = explain(exc)
        if failure is not None:
            metrics.RECONCILE_FAILURES.labels(kind=self.kind, reason=failure.reason).inc()
            # an overloaded or unreachable API gets no Event per object on top (log and metric only)
            if failure.reason != "APIUnavailable" and told != failure.reason:
                told = failure.reason
                self.tell(key, failure)
        self._streaks[key] = (count + 1, told)
        return count + 1

    def succeeded(self, key: Hashable) -> None:
        self._streaks.pop(key, None)

    forget = succeeded  # the object is gone: its streak with it
