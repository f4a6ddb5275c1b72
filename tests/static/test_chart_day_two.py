"""Day-two chart features: alerts and a dashboard, pod scheduling extras, a disruption budget, log
levels in any case, a packaged chart, and a Kustomize base equal to the chart's self-signed install."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile

import kubernetes_validate
import promql_parser
import pytest
import yaml

from modelreg.config import Settings
from tests.conftest import ROOT
from tests.static.test_chart import CHART, HELM, K8S_VERSION, MODES, NOT_BUILT_IN, by_kind, helm, render

sys.path.insert(0, str(ROOT / "scripts"))
from render_kustomize_base import chart_objects, without_helm

MONITORING = MODES["monitoring"]
OPERATIONS = ROOT / "docs" / "operations.md"


def rules(objects: list[dict]) -> list[dict]:
    return [r for o in by_kind(objects, "PrometheusRule") for g in o["spec"]["groups"] for r in g["rules"]]


def dashboard(objects: list[dict]) -> dict:
    (config,) = [c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]
    return json.loads(config["data"]["modelreg.json"])


def dashboard_exprs(board: dict) -> list[str]:
    # Grafana's $__rate_interval is not PromQL: any range stands in for it
    return [t["expr"].replace("$__rate_interval", "5m") for p in board["panels"] for t in p["targets"]]


NESTED = (promql_parser.AggregateExpr, promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)


def metric_names(expr: str) -> set[str]:
    """Every metric name an expression selects (parsing it: a syntax error raises)."""
    names: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)
        elif isinstance(node, promql_parser.MatrixSelector):
            walk(node.vector_selector)
        elif isinstance(node, promql_parser.Call):
            for arg in node.args:
                walk(arg)
        elif isinstance(node, promql_parser.BinaryExpr):
            walk(node.lhs), walk(node.rhs)
        elif isinstance(node, NESTED):
            walk(node.expr)

    walk(promql_parser.parse(expr))
    return names


def monitored_metrics() -> set[str]:
    """The metric names the chart's alerts and dashboard use (tests/integration/test_metrics.py
    checks the operator exports each)."""
    objects = render(*MONITORING)
    exprs = [r["expr"] for r in rules(objects)] + dashboard_exprs(dashboard(objects))
    return set().union(*(metric_names(e) for e in exprs))


@pytest.mark.parametrize("mode", MODES)
def test_monitoring_and_a_budget_render_valid_in_every_mode(mode):
    extra = [*MONITORING, "--set", "podDisruptionBudget.enabled=true"]
    objects = render(*MODES[mode], *extra)
    for obj in objects:
        if obj["kind"] not in NOT_BUILT_IN:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    metrics = "metrics.enabled=false" not in MODES[mode]
    assert len(by_kind(objects, "PrometheusRule")) == metrics
    assert len([c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]) == metrics
    (budget,) = by_kind(objects, "PodDisruptionBudget")
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"  # standbys are never ready
    (deployment,) = by_kind(objects, "Deployment")
    assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_the_budget_is_on_by_default_and_never_with_one_replica():
    (budget,) = by_kind(render(), "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1  # both replicas ready: a drain evicts one at a time
    one = render("--set", "replicaCount=1")
    assert not by_kind(one, "PodDisruptionBudget")  # a budget for one pod blocks every drain


def test_the_service_monitor_rules_and_dashboard_carry_the_labels_their_selectors_pick():
    objects = render(*MONITORING, "--set", "prometheusRule.labels.release=kube-prometheus-stack")
    (monitor,) = by_kind(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (rule,) = by_kind(objects, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (board,) = [c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_every_alert_parses_and_has_a_runbook_paragraph():
    alerts = rules(render(*MONITORING))
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    assert {a["alert"] for a in alerts} >= {
        "ModelregRolloutFailing",
        "ModelregVerificationStuck",
        "ModelregNotificationFailing",
    }  # the README's example alerts
    for alert in alerts:
        assert metric_names(alert["expr"]), alert["alert"]
        assert alert["annotations"]["runbook_url"].endswith(f"docs/operations.md#{alert['alert'].lower()}")
        assert alert["alert"].lower() in headings, f"docs/operations.md has no paragraph for {alert['alert']}"
        assert (
            "{{ $labels" in alert["annotations"]["summary"]
            or "{{ $value" in alert["annotations"]["summary"]
            or (alert["alert"] == "ModelregOperatorAbsent")
        )  # Prometheus' templates reach it unrendered by Helm


def test_the_dashboard_shows_what_operators_watch():
    board = dashboard(render(*MONITORING))
    used = set().union(*(metric_names(e) for e in dashboard_exprs(board)))
    assert used >= {
        "modelreg_verifications_total",
        "modelreg_recheck_lag_seconds",
        "modelreg_promotions_total",
        "modelreg_approval_to_rollout_seconds_bucket",
        "modelreg_rollout_duration_seconds_bucket",
        "modelreg_notification_deliveries_total",
        "modelreg_notification_outbox_depth",
        "modelreg_reconcile_failures_total",
    }
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])


def test_pod_extras_reach_the_operators_pods():
    objects = render(*MODES["pod-extras"])
    pod = by_kind(objects, "Deployment")[0]["spec"]["template"]
    spec, (container,) = pod["spec"], pod["spec"]["containers"]
    assert pod["metadata"]["labels"]["team"] == "ml-platform"
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"  # the selector's stay
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["tolerations"][0]["key"] == "dedicated" and "nodeAffinity" in spec["affinity"]
    assert {"name": "HTTPS_PROXY", "value": "http://proxy:3128"} in container["env"]
    assert {"name": "ca", "configMap": {"name": "corp-ca"}} in spec["volumes"]
    assert {"name": "ca", "mountPath": "/etc/ssl/corp", "readOnly": True} in container["volumeMounts"]
    assert {"MODELREG_CONFIG", "AWS_REGION"} <= {e["name"] for e in container["env"]}  # the chart's own stay


@pytest.mark.parametrize("level", ["debug", "DEBUG", "Info", "warning", "error"])
def test_log_levels_are_accepted_in_any_case(level, tmp_path, monkeypatch):
    config = by_kind(render("--set", f"logLevel={level}"), "ConfigMap")[0]["data"]["modelreg.yaml"]
    (tmp_path / "modelreg.yaml").write_text(config)
    monkeypatch.setenv("MODELREG_CONFIG", str(tmp_path / "modelreg.yaml"))
    assert Settings().logging.level == level.upper()


def test_an_unknown_log_level_is_rejected():
    done = helm("template", "modelreg", str(CHART), "--set", "logLevel=verbose")
    assert done.returncode != 0 and "logLevel" in done.stderr


def test_the_election_deadline_reaches_the_operator_and_is_checked_as_client_go_does(tmp_path, monkeypatch):
    config = by_kind(render(), "ConfigMap")[0]["data"]["modelreg.yaml"]
    (tmp_path / "modelreg.yaml").write_text(config)
    monkeypatch.setenv("MODELREG_CONFIG", str(tmp_path / "modelreg.yaml"))
    election = Settings().election
    assert (election.lease_seconds, election.renew_deadline_seconds, election.retry_seconds) == (15, 10, 2)


def test_the_cert_manager_check_is_skipped_where_lookup_sees_no_cluster():
    # `helm template` (and Argo CD) cannot see the cluster: the default cert-manager mode still renders.
    assert by_kind(render(), "Certificate")
    check = (CHART / "templates" / "checks.yaml").read_text()
    assert 'lookup "v1" "Namespace" "" "kube-system"' in check and "certificates.cert-manager.io" in check


def test_the_packaged_chart_shows_the_values_of_the_source(tmp_path):
    done = helm("package", str(CHART), "--destination", str(tmp_path))
    assert done.returncode == 0, done.stderr
    (archive,) = tmp_path.glob("modelreg-*.tgz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "modelreg/files/prometheus-rules.yaml" in names and "modelreg/files/grafana-dashboard.json" in names
    shown = helm("show", "values", str(archive))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == (CHART / "values.yaml").read_text().strip()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed (it builds kustomizations)")
def test_the_kustomize_base_installs_what_the_chart_installs_in_self_signed_mode():
    built = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "examples" / "install" / "kustomize")], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    base = {_key(o): o for o in yaml.safe_load_all(built.stdout) if o}
    chart = {_key(o): o for o in chart_objects(HELM)}
    assert set(base) == set(chart), "regenerate with: python scripts/render_kustomize_base.py"
    for key, obj in chart.items():
        assert base[key] == obj, f"{key} differs: regenerate with python scripts/render_kustomize_base.py"
    (deployment,) = [o for k, o in base.items() if k[0] == "Deployment"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["seal-key"]["secret"]["secretName"] == "modelreg-seal-key"  # created by hand (see its README)
    assert not any(k[0] == "Secret" for k in base)
    assert without_helm(base[key]) == base[key]  # nothing of Helm's left


def _key(obj: dict) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
