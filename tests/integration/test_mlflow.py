"""MLflow's own client (mlflow-skinny) as a front door: registry URI modelreg:///ml, against the real
operator, the emulated API server (HTTPS, RBAC, webhooks) and moto's S3."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")

from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

from modelreg import mlflow_store  # noqa: E402
from modelreg.config import Settings  # noqa: E402
from tests.integration.promotion_helpers import approve, register, succeeded  # noqa: E402


@pytest.fixture
def settings() -> Settings:
    # no periodic re-check within a test: a tampered object is caught by the download itself
    return Settings(
        promotions={"tick_seconds": 0.3},
        verification={"recheck_seconds": 600.0, "retry_base_seconds": 0.5, "retry_max_seconds": 2.0},
    )


@pytest.fixture
def ml(cluster, operator, aws_env, tmp_path, monkeypatch) -> MlflowClient:
    """MLflow as alice: her kubeconfig is the current one; runs in a local file store."""
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig-alice", namespace="ml", user="alice")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setattr(
        "mlflow.store.model_registry.abstract_store.AWAIT_MODEL_VERSION_CREATE_SLEEP_INTERVAL_SECONDS", 0.2
    )
    mlflow_store.register()  # what the entry points do for an installed modelreg[mlflow]
    mlflow.set_registry_uri("modelreg:///ml")
    yield MlflowClient()
    mlflow.set_registry_uri("")


def put(s3, bucket: str, key: str, data: bytes) -> str:
    s3.put_object(Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm="SHA256")
    return f"s3://{bucket}/{key}"


def test_register_search_promote_through_an_alias_and_load_the_proven_bytes(ml, kube, s3, bucket, tmp_path):
    v1 = mlflow.register_model(put(s3, bucket, "fraud/1/model.onnx", b"fraud weights v1"), "fraud")
    assert (v1.name, v1.version) == ("fraud", "1")
    assert ml.get_model_version("fraud", "1").status == "READY"  # register_model waited for the proof
    assert (
        kube.get("modelversions", "fraud-v1")["spec"]["artifact"]["sha256"]
        == hashlib.sha256(b"fraud weights v1").hexdigest()
    )

    with mlflow.start_run() as run:
        mlflow.log_metric("auc", 0.94)
        mlflow.log_param("max_depth", 6)
    v2 = ml.create_model_version(
        "fraud",
        put(s3, bucket, "fraud/2/model.onnx", b"fraud weights v2"),
        run_id=run.info.run_id,
        tags={"team": "risk"},
    )
    assert v2.version == "2"
    spec = kube.get("modelversions", "fraud-v2")["spec"]
    assert spec["metrics"] == {"auc": 0.94} and spec["hyperparameters"] == {"max_depth": "6"}
    assert spec["lineage"] == {"runId": run.info.run_id}

    # search: name, run id and tag filters, and the registered model
    assert sorted(v.version for v in ml.search_model_versions("name='fraud'")) == ["1", "2"]
    assert [v.version for v in ml.search_model_versions(f"run_id='{run.info.run_id}'")] == ["2"]
    assert [v.version for v in ml.search_model_versions("tags.team='risk'")] == ["2"]
    assert [m.name for m in ml.search_registered_models()] == ["fraud"]
    assert ml.get_model_version("fraud", "2").tags == {"team": "risk"}

    # promote via the alias: a ModelPromotion requested by alice; the alias moves only once approved
    ml.set_registered_model_alias("fraud", "Production", "2")
    promotion = kube.get("modelpromotions", "fraud-v2-to-production")
    assert promotion["metadata"]["annotations"]["modelreg.io/requested-by"] == "alice"
    assert promotion["spec"]["targetStage"] == "Production"
    with pytest.raises(MlflowException, match="no version of fraud holds Production"):
        ml.get_model_version_by_alias("fraud", "production")
    approve(kube, "fraud-v2-to-production", "bob", "carol")  # each as themselves, through the webhook
    succeeded(kube, "fraud-v2-to-production", "Promoted")

    holder = ml.get_model_version_by_alias("fraud", "production")
    assert (holder.version, holder.current_stage, holder.aliases) == ("2", "Production", ["production"])
    assert ml.get_registered_model("fraud").aliases == {"production": "2"}
    assert [v.version for v in ml.get_latest_versions("fraud", ["Production"])] == ["2"]

    proven = kube.get("modelversions", "fraud-v2")["status"]["artifact"]["sha256"]
    path = mlflow.artifacts.download_artifacts("models:/fraud@production", dst_path=str(tmp_path / "prod"))
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == proven
    assert Path(path).read_bytes() == b"fraud weights v2"
    path = mlflow.artifacts.download_artifacts("models:/fraud/1", dst_path=str(tmp_path / "v1"))
    assert Path(path).read_bytes() == b"fraud weights v1"
    assert ml.get_model_version_download_uri("fraud", "2").startswith("modelreg-verified:///ml/fraud/2?sha256=")


def test_a_tampered_artifact_makes_the_models_load_fail_and_writes_nothing(ml, kube, s3, bucket, tmp_path):
    uri = put(s3, bucket, "fraud/1/model.onnx", b"fraud weights v1")
    mlflow.register_model(uri, "fraud")
    put(s3, bucket, "fraud/1/model.onnx", b"tampered weights")  # after the proof; no re-check yet
    dst = tmp_path / "dl"
    with pytest.raises(MlflowException, match="nothing was written"):
        mlflow.artifacts.download_artifacts("models:/fraud/1", dst_path=str(dst))
    assert list(dst.iterdir()) == []


def test_directory_artifact_registered_without_slash_and_loaded_whole(ml, kube, s3, bucket, tmp_path):
    put(s3, bucket, "runs/7/artifacts/model/MLmodel", b"flavors: {}\n")
    put(s3, bucket, "runs/7/artifacts/model/model.pkl", b"weights")
    mv = mlflow.register_model(f"s3://{bucket}/runs/7/artifacts/model", "fraud")
    assert mv.source == f"s3://{bucket}/runs/7/artifacts/model/"
    path = Path(mlflow.artifacts.download_artifacts("models:/fraud/1", dst_path=str(tmp_path / "m")))
    assert sorted(p.name for p in path.iterdir()) == ["MLmodel", "model.pkl"]
    assert (path / "model.pkl").read_bytes() == b"weights"


def test_what_the_registry_does_not_allow_raises_mlflow_exceptions(ml, kube, s3, bucket):
    register(kube, s3, bucket, 1)
    kube.as_user("alice").create(
        "modelpromotions",
        {
            "apiVersion": "modelreg.io/v1alpha1",
            "kind": "ModelPromotion",
            "metadata": {"name": "fraud-v1-to-production"},
            "spec": {"modelName": "fraud", "version": 1, "targetStage": "Production"},
        },
    )
    approve(kube, "fraud-v1-to-production", "bob", "carol")
    succeeded(kube, "fraud-v1-to-production", "Promoted")

    with pytest.raises(MlflowException, match="cannot rename"):
        ml.rename_registered_model("fraud", "fraud2")
    with pytest.raises(MlflowException, match="it holds Production"):
        ml.delete_model_version("fraud", "1")
    with pytest.raises(MlflowException, match="it holds Production"):
        ml.delete_registered_model("fraud")
    with pytest.raises(MlflowException, match="approved promotions"):
        ml.delete_registered_model_alias("fraud", "production")
    with pytest.raises(MlflowException, match="aliases are its stages"):
        ml.set_registered_model_alias("fraud", "champion", "1")
    with pytest.raises(MlflowException, match="S3"):
        mlflow.register_model("runs-are-not-here/model", "fraud")
    uri = ml.get_model_version_download_uri("fraud", "1")
    repo = mlflow_store.VerifiedArtifactRepository(uri)
    with pytest.raises(MlflowException, match="immutable"):
        repo.log_artifact(__file__)
    assert kube.exists("modelversions", "fraud-v1")


def test_a_context_in_the_uri_acts_as_that_contexts_user_and_never_more(
    ml, cluster, kube, s3, bucket, tmp_path, monkeypatch
):
    """modelreg://CONTEXT/NAMESPACE: the store acts with that context's credentials, nothing else."""
    import yaml

    merged: dict = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []}
    for user in ("alice", "bob", "mallory"):
        config = yaml.safe_load(
            cluster.write_kubeconfig(tmp_path / f"kc-{user}", namespace="default", user=user).read_text()
        )
        merged["clusters"] = config["clusters"]
        merged["users"].append(config["users"][0])
        merged["contexts"].append({"name": user, "context": {**config["contexts"][0]["context"]}})
    merged["current-context"] = "alice"
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(merged))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    register(kube, s3, bucket, 1)

    as_bob = MlflowClient(registry_uri="modelreg://bob/ml")
    as_bob.set_registered_model_alias("fraud", "staging", 1)
    assert (
        kube.get("modelpromotions", "fraud-v1-to-staging")["metadata"]["annotations"]["modelreg.io/requested-by"]
        == "bob"
    )
    assert [v.version for v in MlflowClient(registry_uri="modelreg:///ml").search_model_versions("name='fraud'")] == [
        "1"
    ]

    with pytest.raises(MlflowException, match=r"(?i)forbidden") as refused:
        MlflowClient(registry_uri="modelreg://mallory/ml").search_model_versions("name='fraud'")
    assert refused.value.error_code == "PERMISSION_DENIED"


MLMODEL = b"""flavors:
  python_function:
    loader_module: tests.integration.mlflow_loader
    data: weights.bin
    python_version: 3.11.0
"""


def test_pyfunc_load_model_of_an_alias_gets_the_verified_directory(ml, kube, s3, bucket):
    put(s3, bucket, "fraud/3/model/MLmodel", MLMODEL)
    put(s3, bucket, "fraud/3/model/weights.bin", b"fraud weights v3")
    mlflow.register_model(f"s3://{bucket}/fraud/3/model", "fraud")
    ml.set_registered_model_alias("fraud", "production", 1)
    approve(kube, "fraud-v1-to-production", "bob", "carol")
    succeeded(kube, "fraud-v1-to-production", "Promoted")

    model = mlflow.pyfunc.load_model("models:/fraud@production")
    assert model.predict(None) == [b"fraud weights v3"]

    put(s3, bucket, "fraud/3/model/weights.bin", b"tampered")  # overwritten after the proof
    with pytest.raises(MlflowException, match="nothing was written"):
        mlflow.pyfunc.load_model("models:/fraud/1")
