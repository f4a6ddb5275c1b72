"""`pip install modelreg` alone gives the client, `kubectl modelreg` and `modelreg fetch`: none of
them imports the operator's dependencies (the `operator` extra) nor the test doubles; and
`modelreg.client` does not even import boto3 until something is fetched."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib

from tests.conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _distribution(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def modules_of(extras: tuple[str, ...]) -> set[str]:
    """Top-level modules of the distributions these extras add (as pyproject names them)."""
    names = {_distribution(r) for e in extras for r in PYPROJECT["optional-dependencies"][e]} - {"modelreg"}
    installed = importlib.metadata.packages_distributions()
    return {module for module, dists in installed.items() if {d.lower().replace("_", "-") for d in dists} & names}


def import_without(modules: set[str], code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter where importing any of `modules` fails, as if not installed."""
    blocker = f"""
import importlib.abc, sys
BLOCKED = {sorted(modules)!r}
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, NotInstalled())
"""
    return subprocess.run([sys.executable, "-c", blocker + code], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_the_base_install_leaves_the_operator_to_an_extra():
    base = {_distribution(r) for r in PYPROJECT["dependencies"]}
    assert {"kubernetes", "boto3"} <= base and not base & {"kopf", "aiohttp", "prometheus-client", "cryptography"}
    assert "kopf" in {_distribution(r) for r in PYPROJECT["optional-dependencies"]["operator"]}
    assert "modelreg[operator]" in PYPROJECT["optional-dependencies"]["sandbox"]  # the sandbox runs the operator
    assert 'pip install --no-cache-dir ".[operator]"' in (ROOT / "Dockerfile").read_text()


def test_modelreg_client_imports_without_kopf_or_boto3():
    blocked = modules_of(("operator", "sandbox")) | {"boto3", "botocore", "s3transfer"}
    assert {"kopf", "aiohttp", "kmock", "moto"} <= blocked
    result = import_without(
        blocked,
        "import modelreg.client as c; import sys; "
        "print(sorted(m for m in ('kopf', 'boto3', 'aiohttp', 'modelreg.config') if m in sys.modules)); "
        "print(c.resolve.__doc__ is not None)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "True"]


def test_the_commands_of_the_base_install_run_without_the_operator():
    result = import_without(
        modules_of(("operator", "sandbox")),
        "import sys; import modelreg.cli.main; from modelreg.sandbox_cli import cli; "
        "sys.argv = ['modelreg', 'fetch', '--help']; cli()",
    )
    assert result.returncode == 0, result.stderr
    assert "usage: modelreg fetch" in result.stdout and "--from-env" in result.stdout
    sandbox = import_without(
        modules_of(("operator", "sandbox")), "from modelreg.sandbox_cli import cli; cli(['sandbox'])"
    )
    assert "pip install 'modelreg[sandbox]'" in sandbox.stderr
