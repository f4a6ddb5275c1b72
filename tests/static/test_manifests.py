"""Every YAML we ship is valid: built-in kinds against Kubernetes' schemas, custom
resources against our CRDs' schemas and CEL rules (as the API server would check them)."""

from __future__ import annotations

import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

from modelreg.models.resources import ModelPromotionSpec, ModelVersionSpec
from modelreg.sandbox.validation import CRDValidator
from tests.conftest import CRD_FILES, ROOT

K8S_VERSION = "1.33"
VALIDATORS = {(v.group, v.kind): v for v in map(CRDValidator.from_file, CRD_FILES)}
MODELS = {"ModelVersion": ModelVersionSpec, "ModelPromotion": ModelPromotionSpec}
# Not Kubernetes objects: tool configuration that lives beside them.
TOOL_KINDS = {"Kustomization"}


def documents(paths):
    for path in paths:
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc:
                yield pytest.param(doc, id=f"{path.relative_to(ROOT)}#{index}")


# Argo CD's health_test.yaml files are test specs, not objects (tests/static/test_argocd_health.py).
EXAMPLES = sorted(p for p in (ROOT / "examples").rglob("*.yaml") if p.name != "health_test.yaml")


def test_there_is_something_to_validate():
    assert len(CRD_FILES) == 2 and len(EXAMPLES) >= 4


@pytest.mark.parametrize("doc", list(documents(CRD_FILES)))
def test_crds_are_valid_kubernetes_objects(doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("doc", list(documents(EXAMPLES)))
def test_examples_are_valid(doc):
    if doc["kind"] in TOOL_KINDS:
        return
    if doc["apiVersion"] == "argoproj.io/v1alpha1":  # Argo CD's own CRD: its source must exist here
        assert doc["kind"] == "Application" and (ROOT / doc["spec"]["source"]["path"]).is_dir()
        return
    group = doc["apiVersion"].split("/")[0]
    validator = VALIDATORS.get((group, doc["kind"]))
    if validator is None:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        return
    assert validator.errors(doc) == []
    MODELS[doc["kind"]].model_validate(doc["spec"])  # the operator reads what the API accepts


def test_validation_catches_a_broken_example():
    """Guards the checks above against passing vacuously."""
    doc = yaml.safe_load((ROOT / "examples/quickstart/modelversion.yaml").read_text())
    doc["spec"]["artifact"]["uri"] = "file:///tmp/model.onnx"
    doc["spec"]["version"] = 0
    errors = VALIDATORS[("modelreg.io", "ModelVersion")].errors(doc)
    assert any("spec.artifact.uri" in e for e in errors) and any("spec.version" in e for e in errors)
    deployment = yaml.safe_load((ROOT / "examples/quickstart/serving-deployment.yaml").read_text())
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


OVERLAYS = sorted(p.parent for p in (ROOT / "examples").rglob("kustomization.yaml"))


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed (it builds kustomizations)")
@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_kustomization_builds_into_valid_objects(overlay):
    built = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    assert docs
    for doc in docs:
        validator = VALIDATORS.get((doc["apiVersion"].split("/")[0], doc["kind"]))
        if validator is None:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        else:
            assert validator.errors(doc) == []


def test_gitops_environments_promote_within_the_policy_they_commit():
    from modelreg.domain.criteria import evaluate

    built = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "examples/gitops/environments/production")], capture_output=True, text=True
    )
    docs = {d["kind"] + "/" + d["metadata"]["name"]: d for d in yaml.safe_load_all(built.stdout) if d}
    policy = yaml.safe_load(docs["ConfigMap/modelreg-policy"]["data"]["policy.yaml"])
    promotion = docs["ModelPromotion/fraud-v2-to-production"]
    candidate, current = (
        docs["ModelVersion/fraud-v2"]["spec"]["metrics"],
        docs["ModelVersion/fraud-v1"]["spec"]["metrics"],
    )
    criteria = [*policy["defaultCriteria"]["Production"], *promotion["spec"]["criteria"]]
    assert evaluate(criteria, candidate, current).met


def test_policy_example_is_a_valid_namespace_policy():
    from modelreg.domain.policy import effective_policy

    config_map = yaml.safe_load((ROOT / "examples/gitops/environments/production/modelreg-policy.yaml").read_text())
    policy = effective_policy({"Production": 2}, {}, yaml.safe_load(config_map["data"]["policy.yaml"]))
    assert policy.required_approvals["Production"] == 3
    assert policy.default_criteria["Production"] == [{"metric": "latency_p99_ms", "max": 50}]


def test_the_krew_manifest_names_the_plugin_and_its_binaries():
    text = (ROOT / "packaging/krew/modelreg.yaml").read_text()
    # krew-release-bot's template: the URI and sha256 line is filled in per release
    manifest = yaml.safe_load(text.replace('{{ addURIAndSha "', "uri: ").replace('" .TagName }}', ""))
    assert manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2" and manifest["kind"] == "Plugin"
    assert manifest["metadata"]["name"] == "modelreg"
    built = {"linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64"}  # build_plugin_archive.sh's
    named = set()
    for platform in manifest["spec"]["platforms"]:
        selected = {e["key"]: e["values"][0] for e in platform["selector"]["matchExpressions"]}
        named.add(f"{selected['os']}-{selected['arch']}")
        assert platform["uri"].endswith(f"/kubectl-modelreg-{selected['os']}-{selected['arch']}.tar.gz")
        assert platform["bin"] == "kubectl-modelreg"
        assert {f["from"] for f in platform["files"]} >= {"kubectl-modelreg", "kubectl_complete-modelreg", "lib"}
    assert named == built
    scripts = (ROOT / "pyproject.toml").read_text()
    assert 'kubectl-modelreg = "modelreg.cli.main:main"' in scripts
    assert 'kubectl_complete-modelreg = "modelreg.cli.main:complete"' in scripts
