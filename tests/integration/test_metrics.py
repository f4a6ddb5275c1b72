"""The operator's Prometheus endpoint exposes the series of a scenario just run."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelreg.config import Settings
from tests.integration.promotion_helpers import approve, promote, register, succeeded, version_body


@pytest.fixture
def settings() -> Settings:
    return Settings(promotions={"tick_seconds": 0.3})


def scrape(operator) -> dict[tuple[str, tuple], float]:
    url = f"http://127.0.0.1:{operator.settings.metrics.port}/metrics"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_follow_a_register_verify_promote_scenario(operator, kube, s3, bucket):
    before = scrape(operator)
    promoted_key = ("modelreg_promotions_total", (("outcome", "Promoted"),))
    verified_key = ("modelreg_verifications_total", (("method", "S3Checksum"), ("outcome", "Verified")))
    mismatch_key = ("modelreg_verifications_total", (("method", "S3Checksum"), ("outcome", "ChecksumMismatch")))

    register(kube, s3, bucket, 1, model="gauged")
    s3.put_object(Bucket=bucket, Key="other", Body=b"x", ChecksumAlgorithm="SHA256")
    kube.create("modelversions", version_body("gauged-v2", f"s3://{bucket}/other", "0" * 64, model="gauged", version=2))
    promote(kube, "p", 1, model="gauged")
    approve(kube, "p", "bob", "carol")
    succeeded(kube, "p", "Promoted")

    after = scrape(operator)
    assert after[verified_key] >= before.get(verified_key, 0) + 1
    assert after[mismatch_key] >= before.get(mismatch_key, 0) + 1
    assert after[promoted_key] == before.get(promoted_key, 0) + 1
    stage = ("modelreg_model_stage_version", (("model", "gauged"), ("namespace", "ml"), ("stage", "Production")))
    assert after[stage] == 1
    for histogram in ("modelreg_approval_to_rollout_seconds_count", "modelreg_rollout_duration_seconds_count"):
        assert after[(histogram, ())] >= before.get((histogram, ()), 0) + 1
    assert after[("modelreg_verification_duration_seconds_count", ())] >= 2


def declared(operator) -> tuple[set[str], str]:
    """Every series name the operator's /metrics declares (a labelled metric with no sample yet
    still has its HELP/TYPE lines), and the raw text."""
    url = f"http://127.0.0.1:{operator.settings.metrics.port}/metrics"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names, text


def test_every_metric_the_charts_alerts_and_dashboard_use_is_exported(operator):
    from tests.static.test_chart_day_two import monitored_metrics

    names, text = declared(operator)
    used = monitored_metrics()
    assert used and used <= names, sorted(used - names)
    assert "_created" not in text  # series nobody alerts on, doubling every counter's
    assert "modelreg_webhook_" not in text  # notifications are modelreg_notification_*


def test_the_build_is_exported(operator):
    import platform

    info = [(labels, value) for (name, labels), value in scrape(operator).items() if name == "modelreg_build_info"]
    assert len(info) == 1
    labels, value = dict(info[0][0]), info[0][1]
    assert value == 1 and labels["python"] == platform.python_version()
    assert labels["version"] and labels["commit"]
