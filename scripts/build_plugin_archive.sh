#!/usr/bin/env bash
# The krew archive for this machine's platform: `pip install .` (the client and CLI, not the
# operator) into lib/, and launchers that run it with the python3 on the user's PATH. (Not a
# zipapp: compiled dependencies such as pydantic-core cannot be imported from a zip.)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip install --quiet --target "$work/out/lib" .
for tool in kubectl-modelreg:main kubectl_complete-modelreg:complete; do
  cat > "$work/out/${tool%%:*}" <<SH
#!/usr/bin/env bash
here=\$(dirname "\$(readlink -f "\$0")")
PYTHONPATH="\$here/lib" exec python3 -c 'import sys; from modelreg.cli.main import ${tool##*:}; sys.exit(${tool##*:}())' "\$@"
SH
  chmod +x "$work/out/${tool%%:*}"
done
mkdir -p dist
tar -czf dist/kubectl-modelreg.tar.gz -C "$work/out" .
sha256sum dist/kubectl-modelreg.tar.gz
