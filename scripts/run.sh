#!/usr/bin/env bash
# The main job. `scripts/run.sh --demo`: the guided sandbox demo (no cluster needed).
# Otherwise: the operator against the current kubeconfig context when a cluster answers, or the
# embedded default, the sandbox (emulated API + local S3 + operator), when none does.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

if [ "${1:-}" = "--demo" ]; then
  exec .venv/bin/modelreg sandbox "$@"
fi
if [ -z "${MODELREG_SANDBOX:-}" ] && .venv/bin/python - <<'PY' 2>/dev/null
import kubernetes
kubernetes.config.load_kube_config()
kubernetes.client.VersionApi().get_code(_request_timeout=3)
PY
then
  exec .venv/bin/modelreg-operator run --all-namespaces "$@"
fi
echo "No Kubernetes cluster answers the current kubeconfig: starting the sandbox instead." >&2
exec .venv/bin/modelreg sandbox "$@"
