"""Layering is enforced: domain imports no I/O library; handlers -> services -> storage -> domain."""

import shutil
import subprocess
import sys

from tests.conftest import ROOT


def test_import_contracts_hold():
    lint_imports = shutil.which("lint-imports", path=str(ROOT / ".venv/bin")) or shutil.which("lint-imports")
    assert lint_imports, "import-linter is not installed"
    result = subprocess.run(
        [lint_imports],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": "operator", "PATH": f"{sys.prefix}/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken" in result.stdout
