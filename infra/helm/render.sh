#!/usr/bin/env bash
# Renders the keygate-gateway chart with `helm template`, building helm first when it is not cached
# (infra/helm/build-helm.sh; KEYGATE_TOOLS_CACHE, KEYGATE_HELM_VERSION).
#   infra/helm/render.sh [extra helm template args...]      e.g. --set replicaCount=5 -f my-values.yaml
#   infra/helm/render.sh --build-only                       build/cache helm, render nothing
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
helm="$("${here}/build-helm.sh")"
if [ "${1:-}" = "--build-only" ]; then
  echo "${helm}"
  exit 0
fi
exec "${helm}" template keygate-gateway "${here}/keygate-gateway" --namespace keygate \
  --kube-version "${KEYGATE_KUBE_VERSION:-1.31.0}" "$@"
