from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CRD_FILES = sorted((ROOT / "crds").glob("*.yaml"))

# The official client reads $KUBECONFIG once, at import: point it at a per-session file
# before anything imports `kubernetes`; each tier writes the cluster it uses into it.
KUBECONFIG = Path(tempfile.mkdtemp(prefix="modelreg-tests-")) / "kubeconfig"
os.environ["KUBECONFIG"] = str(KUBECONFIG)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
