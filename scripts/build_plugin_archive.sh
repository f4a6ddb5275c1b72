#!/usr/bin/env bash
# The krew archive: kubectl-modelreg (and its completion helper) as zipapps of `pip install .`
# (the client and CLI, not the operator), run by the python3 on the user's PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip install --quiet --target "$work/app" .
mkdir -p dist "$work/out"
python3 -m zipapp "$work/app" -p "/usr/bin/env python3" -m "modelreg.cli.main:main" -o "$work/out/kubectl-modelreg"
python3 -m zipapp "$work/app" -p "/usr/bin/env python3" -m "modelreg.cli.main:complete" -o "$work/out/kubectl_complete-modelreg"
cp LICENSE "$work/out/" 2>/dev/null || echo "modelreg" > "$work/out/LICENSE"
tar -czf dist/kubectl-modelreg.tar.gz -C "$work/out" .
sha256sum dist/kubectl-modelreg.tar.gz
