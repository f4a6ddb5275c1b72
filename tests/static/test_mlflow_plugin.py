"""The MLflow front door is declared where MLflow looks for plugins (entry points), in its own extra,
implements every abstract method of MLflow's registry store, and imports without the operator."""

from __future__ import annotations

import importlib
import inspect
import tomllib

import pytest

from tests.conftest import ROOT
from tests.static.test_client_install import import_without, modules_of

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
mlflow = pytest.importorskip("mlflow")


def _load(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def test_the_entry_points_name_the_store_and_the_verifying_artifact_repository():
    from mlflow.store.artifact.artifact_repo import ArtifactRepository
    from mlflow.store.model_registry.abstract_store import AbstractStore

    points = PROJECT["entry-points"]
    assert points["mlflow.model_registry_store"] == {"modelreg": "modelreg.mlflow_store:ModelregStore"}
    assert points["mlflow.artifact_repository"] == {
        "modelreg-verified": "modelreg.mlflow_store:VerifiedArtifactRepository"
    }
    assert issubclass(_load(points["mlflow.model_registry_store"]["modelreg"]), AbstractStore)
    assert issubclass(_load(points["mlflow.artifact_repository"]["modelreg-verified"]), ArtifactRepository)
    assert PROJECT["optional-dependencies"]["mlflow"] == ["mlflow-skinny>=3"]
    assert "modelreg[mlflow]" in PROJECT["optional-dependencies"]["dev"]


def test_every_abstract_method_of_the_registry_store_is_implemented():
    from mlflow.store.model_registry.abstract_store import AbstractStore

    from modelreg.mlflow_store import ModelregStore

    abstract = {n for n, f in vars(AbstractStore).items() if getattr(f, "__isabstractmethod__", False)}
    assert abstract, "MLflow's AbstractStore declares no abstract methods any more: check this test"
    missing = {n for n in abstract if getattr(ModelregStore, n) is getattr(AbstractStore, n)}
    assert not missing
    for name in abstract:  # MLflow calls them by keyword: same parameter names
        ours = list(inspect.signature(getattr(ModelregStore, name)).parameters)
        theirs = list(inspect.signature(getattr(AbstractStore, name)).parameters)
        assert ours == theirs, name


def test_the_plugin_imports_without_the_operators_dependencies():
    blocked = modules_of(("operator", "sandbox"))
    assert {"kopf", "aiohttp", "kmock", "moto"} <= blocked
    result = import_without(
        blocked,
        "import modelreg.mlflow_store, sys; print(sorted(m for m in ('kopf', 'aiohttp', 'modelreg.config') "
        "if m in sys.modules))",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
