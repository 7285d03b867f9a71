#!/usr/bin/env bash
# Builds kube-apiserver (k8s.io/kubernetes) and etcd + etcdctl (go.etcd.io/etcd) from Go modules into a cache
# folder outside the repository, keyed by version:
#   ${KEYGATE_K8S_CACHE:-$HOME/.cache/keygate-k8s}/kube-apiserver-<version>/bin/kube-apiserver
#   ${KEYGATE_K8S_CACHE:-$HOME/.cache/keygate-k8s}/etcd-<ETCD_VERSION>/bin/{etcd,etcdctl}
# Skips a build whose binaries are already there. Versions come from versions.env: every kube-apiserver of
# K8S_VERSIONS, or only KEYGATE_K8S_VERSION when it is set (KEYGATE_ETCD_VERSION overrides etcd's).
# The tool modules (kube-1.<minor>/, etcd/) keep their go.mod and go.sum in git; when the version differs from the
# one in go.mod, the go.mod is regenerated from the upstream go.mod (staging modules pinned by replace).
# Usage: bash test/k8s/tools/build.sh [--print-paths]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=/dev/null
. "$here/versions.env"
K8S_VERSIONS="${KEYGATE_K8S_VERSION:-$K8S_VERSIONS}"
ETCD_VERSION="${KEYGATE_ETCD_VERSION:-$ETCD_VERSION}"
cache="${KEYGATE_K8S_CACHE:-$HOME/.cache/keygate-k8s}"
etcd_bin="$cache/etcd-$ETCD_VERSION/bin"

if [ "${1:-}" = "--print-paths" ]; then
  for v in $K8S_VERSIONS; do echo "KUBE_APISERVER_$v=$cache/kube-apiserver-$v/bin/kube-apiserver"; done
  echo "ETCD=$etcd_bin/etcd"
  echo "ETCDCTL=$etcd_bin/etcdctl"
  exit 0
fi

command -v go >/dev/null 2>&1 || { echo "k8s-tools: go is not installed (Go 1.24 or later is needed)" >&2; exit 1; }
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" CGO_ENABLED=0 GOFLAGS="-trimpath"
nice_cmd=(nice -n "${KEYGATE_BUILD_NICE:-10}")
log() { echo "k8s-tools: $*" >&2; }
now() { date +%s; }

mkdir -p "$cache"
# One build at a time per cache (CI and a developer's test run may start together).
exec 9>"$cache/.build.lock"
flock 9

# Reads a field of `go mod download -json` output without extra tools.
json_field() { sed -n "s/^[[:space:]]*\"$1\": \"\\(.*\\)\",\\{0,1\\}$/\\1/p" | head -n1; }

# build_kube VERSION: kube-apiserver VERSION from the tool module of its minor release.
build_kube() {
  local K8S_VERSION="$1"
  local kube_bin="$cache/kube-apiserver-$K8S_VERSION/bin"
  if [ -x "$kube_bin/kube-apiserver" ]; then
    log "kube-apiserver $K8S_VERSION cached at $kube_bin"
    return
  fi
  local t0 minor staging dl upstream_mod commit
  t0=$(now)
  minor="${K8S_VERSION#v1.}"   # 34.4
  staging="v0.$minor"          # v0.34.4
  mkdir -p "$here/kube-1.${minor%%.*}"
  cd "$here/kube-1.${minor%%.*}"
  log "downloading k8s.io/kubernetes@$K8S_VERSION"
  dl=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION")
  upstream_mod=$(printf '%s\n' "$dl" | json_field GoMod)
  commit=$(printf '%s\n' "$dl" | json_field Hash)
  if ! grep -Eq "^require k8s\.io/kubernetes $K8S_VERSION( |\$)" go.mod 2>/dev/null; then
    log "generating kube-1.${minor%%.*}/go.mod for $K8S_VERSION (staging modules at $staging)"
    rm -f go.mod go.sum
    go mod init "keygate.local/test/k8s/tools/kube-1.${minor%%.*}" >/dev/null 2>&1
    go mod edit -go="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$upstream_mod")"
    # Every staging module upstream maps to ./staging/src/k8s.io/<name> must point at its published v0.<minor> tag,
    # and the replaces must be in place before k8s.io/kubernetes is required (else MVS asks for v0.0.0).
    for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$upstream_mod" | sort -u); do
      go mod edit -replace="$m=$m@$staging"
    done
    # Upstream's GODEBUG defaults only apply when k8s is the main module: copy them.
    sed -n 's/^godebug[[:space:]]*\(.*\)$/\1/p' "$upstream_mod" | while read -r kv; do
      [ -n "$kv" ] && go mod edit -godebug="$kv"
    done
    go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
    "${nice_cmd[@]}" go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION"
    "${nice_cmd[@]}" go mod tidy
  fi
  log "building kube-apiserver $K8S_VERSION (commit ${commit:-unknown})"
  mkdir -p "$kube_bin.tmp"
  local v=k8s.io/component-base/version
  "${nice_cmd[@]}" go build -o "$kube_bin.tmp/kube-apiserver" -ldflags "-s -w \
    -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=${minor%%.*} \
    ${commit:+-X $v.gitCommit=$commit} -X $v.gitTreeState=clean -X $v.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    k8s.io/kubernetes/cmd/kube-apiserver
  "$kube_bin.tmp/kube-apiserver" --version >&2
  rm -rf "$kube_bin" && mkdir -p "$(dirname "$kube_bin")" && mv "$kube_bin.tmp" "$kube_bin"
  log "kube-apiserver built in $(($(now) - t0)) s"
}

build_etcd() {
  if [ -x "$etcd_bin/etcd" ] && [ -x "$etcd_bin/etcdctl" ]; then
    log "etcd $ETCD_VERSION cached at $etcd_bin"
    return
  fi
  local t0 dl upstream_mod commit
  t0=$(now)
  cd "$here/etcd"
  dl=$(go mod download -json "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
  upstream_mod=$(printf '%s\n' "$dl" | json_field GoMod)
  commit=$(printf '%s\n' "$dl" | json_field Hash)
  if ! grep -Eq "go\.etcd\.io/etcd/server/v3 $ETCD_VERSION( |\$)" go.mod 2>/dev/null; then
    log "generating etcd/go.mod for $ETCD_VERSION"
    rm -f go.mod go.sum
    go mod init keygate.local/test/k8s/tools/etcd >/dev/null 2>&1
    go mod edit -go="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$upstream_mod")"
    # server/v3's own go.mod has replace directives, so `go install …@v` is refused; a wrapper module ignores them.
    "${nice_cmd[@]}" go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION"
    "${nice_cmd[@]}" go mod tidy
  fi
  log "building etcd and etcdctl $ETCD_VERSION (commit ${commit:-unknown})"
  mkdir -p "$etcd_bin.tmp"
  # The proxy usually has no VCS origin for a module; then GitSHA keeps etcd's "Not provided" default.
  local ld="-s -w${commit:+ -X go.etcd.io/etcd/api/v3/version.GitSHA=${commit:0:7}}"
  "${nice_cmd[@]}" go build -o "$etcd_bin.tmp/etcd" -ldflags "$ld" go.etcd.io/etcd/server/v3
  "${nice_cmd[@]}" go build -o "$etcd_bin.tmp/etcdctl" -ldflags "$ld" go.etcd.io/etcd/etcdctl/v3
  "$etcd_bin.tmp/etcd" --version >&2
  rm -rf "$etcd_bin" && mkdir -p "$(dirname "$etcd_bin")" && mv "$etcd_bin.tmp" "$etcd_bin"
  log "etcd built in $(($(now) - t0)) s"
}

start=$(now)
build_etcd
for v in $K8S_VERSIONS; do build_kube "$v"; done
log "done in $(($(now) - start)) s: kube-apiserver $K8S_VERSIONS, etcd $ETCD_VERSION in $cache"
