#!/usr/bin/env bash
# Build the helm CLI from the Go module proxy into a cache outside the repository, once.
# Prints the path of the helm binary on stdout; exits non-zero if helm cannot be built.
#   KEYGATE_TOOLS_CACHE  cache folder (default ~/.cache/keygate-tools)
#   KEYGATE_HELM_VERSION helm version to build (default below)
#   KEYGATE_HELM         an existing helm binary to use instead (nothing is built)
set -euo pipefail

if [ -n "${KEYGATE_HELM:-}" ] && [ -x "${KEYGATE_HELM}" ]; then
  echo "${KEYGATE_HELM}"
  exit 0
fi

version="${KEYGATE_HELM_VERSION:-v3.22.0}"
cache="${KEYGATE_TOOLS_CACHE:-${HOME}/.cache/keygate-tools}"
bin_dir="${cache}/helm-${version}"
helm="${bin_dir}/helm"

if [ -x "${helm}" ]; then
  echo "${helm}"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "build-helm: go is not installed; cannot build helm ${version}" >&2
  exit 1
fi

mkdir -p "${bin_dir}"
echo "build-helm: building helm ${version} into ${bin_dir} (first time only, takes several minutes)" >&2
start=$(date +%s)
# nice: other builds (kube-apiserver) may share the machine.
GOBIN="${bin_dir}" GOFLAGS=-mod=mod nice -n 10 go install "helm.sh/helm/v3/cmd/helm@${version}" >&2
echo "build-helm: built in $(( $(date +%s) - start ))s" >&2
"${helm}" version --short >&2
echo "${helm}"
