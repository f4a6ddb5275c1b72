#!/usr/bin/env bash
# The main job: run the operator. Against the current kubeconfig context when a cluster
# answers; otherwise the embedded default, the sandbox (emulated API + local S3 + operator).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

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
