#!/usr/bin/env bash
# Builds kube-apiserver from the Go module proxy (no other network needed)
# and prints the binary's path. The tests of watcher/kubernetes run it with
# Debian's etcd. The binary is cached by version:
#   ${TAGWATCH_KUBE_CACHE:-$(go env GOCACHE)/../tagwatch-kube}/kube-apiserver-<version>
# so a machine builds it once (some 15 CPU-minutes: about 8 minutes on 2 idle cores).
#
# k8s.io/kubernetes is not meant to be required as a module: its go.mod
# replaces each staging module (k8s.io/api, k8s.io/apimachinery, …) with a
# directory of its own tree. A throwaway module outside the repository
# requires it and replaces each of those with its published v0.x release.
set -euo pipefail
version=${1:-${TAGWATCH_KUBE_VERSION:-v1.37.2}}
cache=${TAGWATCH_KUBE_CACHE:-$(go env GOCACHE)/../tagwatch-kube}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
bin="$cache/kube-apiserver-$version"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

staging="v0.${version#v1.}"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
export GOFLAGS=-mod=mod GOWORK=off
go mod init tagwatch.invalid/kube-apiserver-build >/dev/null 2>&1
gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
[ -n "$gomod" ] || { echo "build-apiserver: cannot download k8s.io/kubernetes@$version" >&2; exit 1; }
mods=$(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/.*#\1#p' "$gomod")
[ -n "$mods" ] || { echo "build-apiserver: no staging replaces in $gomod" >&2; exit 1; }
args=(-require "k8s.io/kubernetes@$version")
for m in $mods; do args+=(-replace "$m=$m@$staging"); done
go mod edit "${args[@]}"
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
echo "build-apiserver: k8s.io/kubernetes $version with $(echo "$mods" | wc -l) staging modules at $staging" >&2
go mod tidy -e >/dev/null 2>&1 || true
start=$(date +%s)
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin.tmp" k8s.io/kubernetes/cmd/kube-apiserver
mv "$bin.tmp" "$bin"
echo "build-apiserver: built in $(( $(date +%s) - start ))s: $bin" >&2
echo "$bin"
