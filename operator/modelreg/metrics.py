"""Prometheus metrics of the operator (served on `metrics.port`, default 9090, at /metrics).

Recorded where the decisions are carried out (services); names follow Prometheus conventions.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram

# `_created` series double every counter's and histogram's series for a value nobody alerts on.
prometheus_client.disable_created_metrics()


def _version() -> str:
    try:
        return importlib.metadata.version("modelreg")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


BUILD_INFO = Gauge("modelreg_build_info", "Always 1: the running operator's build", ["version", "commit", "python"])
# The commit is stamped at image build (Dockerfile ARG MODELREG_COMMIT); a source install has none.
BUILD_INFO.labels(_version(), os.environ.get("MODELREG_COMMIT") or "unknown", platform.python_version()).set(1)

VERIFICATIONS = Counter(
    "modelreg_verifications_total",
    "Artifact checks that reached a verdict, by outcome (reason) and method",
    ["outcome", "method"],
)
VERIFICATION_SECONDS = Histogram(
    "modelreg_verification_duration_seconds",
    "Time to check an artifact against storage (HEAD/listing, and hashing when needed)",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600, 3600),
)
VERIFICATION_BYTES = Counter("modelreg_verification_bytes_read_total", "Artifact bytes downloaded to hash them")
PROMOTIONS = Counter(
    "modelreg_promotions_total", "Promotions that ended, by outcome (the Succeeded reason)", ["outcome"]
)
APPROVAL_TO_ROLLOUT = Histogram(
    "modelreg_approval_to_rollout_seconds",
    "From the last counted approval to the promotion's completion",
    buckets=(0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600),
)
ROLLOUT_SECONDS = Histogram(
    "modelreg_rollout_duration_seconds",
    "From a promotion's start (the commit point) to its end",
    buckets=(0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600),
)
STAGE_VERSION = Gauge(
    "modelreg_model_stage_version",
    "The version that holds an exclusive stage of a model",
    ["namespace", "model", "stage"],
)
# Notifications (outgoing HTTP webhooks), named apart from the admission webhook
NOTIFICATION_DELIVERIES = Counter(
    "modelreg_notification_deliveries_total",
    "Notification delivery attempts by endpoint and outcome (delivered, retried, failed, dropped)",
    ["endpoint", "outcome"],
)
OUTBOX_DEPTH = Gauge(
    "modelreg_notification_outbox_depth", "Notifications not yet delivered, per endpoint", ["endpoint"]
)
RECHECK_QUEUE_DEPTH = Gauge("modelreg_recheck_queue_depth", "ModelVersions whose storage check is due and not yet done")
RECHECK_LAG = Gauge("modelreg_recheck_lag_seconds", "How long the most overdue storage check has waited")
RECONCILE_FAILURES = Counter(
    "modelreg_reconcile_failures_total",
    "Reconciles that failed and were retried with backoff, by kind and reason (races not counted)",
    ["kind", "reason"],
)
