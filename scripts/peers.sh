#!/usr/bin/env bash
# Builds the real peers flax is tested against (issue 22: `npm run test:cluster`)
# from the Go module proxy, by module name, into a cache OUTSIDE the repo.
# None of their code goes into the project.
#
#   scripts/peers.sh [name...]          (default: all peers)
#
# Cache: ${FLAX_PEERS:-/var/cache/flax-peers}
#   gomod/ gocache/      fixed GOMODCACHE / GOCACHE
#   bin/<name>           single-binary peers (flanneld, cnitool, ...)
#   plugins-v1.10.0/     the reference plugins (plugins/main, ipam, meta)
#   cni-flannel/flannel  flannel's CNI plugin (apart from the reference set; see below)
#   versions             "name version" per line
#   src/<name>/          scratch modules for builds that need one
# Idempotent: a peer whose output and versions line exist is not rebuilt, so
# a cached run takes well under a second. Prints `peers: <name> <version>, ...`.
#
# Adding a peer: write build_<name> (build into $FLAX_PEERS, then call
# record <name> <version>) and add it to the PEERS table below.
set -euo pipefail

FLAX_PEERS=${FLAX_PEERS:-/var/cache/flax-peers}
export FLAX_PEERS
export GOMODCACHE=$FLAX_PEERS/gomod GOCACHE=$FLAX_PEERS/gocache
export GOFLAGS=-modcacherw GOTOOLCHAIN=local CGO_ENABLED=0  # flanneld turns cgo on (its udp backend)
export GOPROXY=${GOPROXY:-https://proxy.golang.org} GONOSUMDB= GOFLAGS=-modcacherw
mkdir -p "$FLAX_PEERS/bin" "$FLAX_PEERS/src"
VERSIONS=$FLAX_PEERS/versions
touch "$VERSIONS"

# ---- versions pinned here (what the proxy served; see `go list -m -versions`)
FLANNEL_VERSION=v0.28.10           # github.com/flannel-io/flannel (newest served)
PLUGINS_VERSION=v1.10.0            # github.com/containernetworking/plugins
CNI_VERSION=v1.3.1                 # github.com/containernetworking/cni (cnitool; newest served)
# flannel's own CNI plugin (github.com/flannel-io/cni-plugin) is not served by
# the proxy (403 "This module version is not available", for its version list
# and for v1.7.1-flannel2). Its code began as the reference plugins'
# plugins/meta/flannel, removed there in v1.0.0 (and absent from Debian's
# containernetworking-plugins 1.1.1 too): so cni-flannel is that plugin from
# the newest reference release that still has it and the proxy serves,
# v0.9.1 (CNI spec up to 0.4.0), when flannel-io/cni-plugin cannot be had.
CNI_FLANNEL_MODULE=github.com/flannel-io/cni-plugin
CNI_FLANNEL_VERSION=${CNI_FLANNEL_VERSION:-v1.7.1-flannel2}
CNI_FLANNEL_FALLBACK=v0.9.1        # github.com/containernetworking/plugins/plugins/meta/flannel

log() { echo "peers.sh: $*" >&2; }

recorded() { # name -> version recorded, or empty
  awk -v n="$1" '$1 == n { v = $2 } END { if (v) print v }' "$VERSIONS"
}
record() { # name version
  local tmp; tmp=$(mktemp "$FLAX_PEERS/.versions.XXXXXX")
  awk -v n="$1" '$1 != n' "$VERSIONS" > "$tmp"
  echo "$1 $2" >> "$tmp"
  mv "$tmp" "$VERSIONS"
}
# cached <name> <version> <file...>: true when every file exists and the
# versions file says <name> is at <version>
cached() {
  local name=$1 version=$2; shift 2
  [ "$(recorded "$name")" = "$version" ] || return 1
  local f; for f in "$@"; do [ -x "$f" ] || return 1; done
}

# scratch <name> <module@version>: a scratch module under src/ requiring it
scratch() {
  local dir=$FLAX_PEERS/src/$1
  rm -rf "$dir"; mkdir -p "$dir"
  (cd "$dir" && go mod init "flaxpeers/$1" >/dev/null 2>&1 && go get "$2" >&2)
  echo "$dir"
}

build_flanneld() {
  local out=$FLAX_PEERS/bin/flanneld m=github.com/flannel-io/flannel
  cached flanneld "$FLANNEL_VERSION" "$out" && return 0
  log "building flanneld $FLANNEL_VERSION"
  local ld="-X $m/pkg/version.Version=$FLANNEL_VERSION"
  # flannel's main.go links every backend; tencentvpc needs
  # github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc v1.3.188,
  # which the proxy does not serve (403). So: a scratch module requiring
  # flannel whose main.go is flannel's own, less that one import (a cloud
  # backend these tests never use). The module's code stays in this cache.
  local dir; dir=$(scratch flanneld "$m@$FLANNEL_VERSION") || return 1
  local src=$GOMODCACHE/$m@$FLANNEL_VERSION
  grep -v 'pkg/backend/tencentvpc"' "$src/main.go" > "$dir/main.go" || return 1
  (cd "$dir" && go mod tidy >&2 && CGO_ENABLED=1 go build -ldflags "$ld" -o "$out.tmp" . >&2) || return 1
  mv "$out.tmp" "$out" && record flanneld "$FLANNEL_VERSION"
}

build_plugins() {
  local dir=$FLAX_PEERS/plugins-$PLUGINS_VERSION
  cached plugins "$PLUGINS_VERSION" "$dir/bridge" "$dir/host-local" "$dir/portmap" "$dir/loopback" && return 0
  log "building reference plugins $PLUGINS_VERSION"
  mkdir -p "$dir"
  local m=github.com/containernetworking/plugins
  local ld="-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$PLUGINS_VERSION"
  GOBIN=$dir go install -ldflags "$ld" "$m/plugins/main/...@$PLUGINS_VERSION" "$m/plugins/ipam/...@$PLUGINS_VERSION" "$m/plugins/meta/...@$PLUGINS_VERSION" >&2 || return 1
  record plugins "$PLUGINS_VERSION"
}

build_cnitool() {
  local out=$FLAX_PEERS/bin/cnitool
  cached cnitool "$CNI_VERSION" "$out" && return 0
  log "building cnitool $CNI_VERSION"
  GOBIN=$FLAX_PEERS/bin go install "github.com/containernetworking/cni/cnitool@$CNI_VERSION" >&2 || return 1
  record cnitool "$CNI_VERSION"
}

build_cni_flannel() {
  local dir=$FLAX_PEERS/cni-flannel
  local fb="containernetworking/plugins@$CNI_FLANNEL_FALLBACK"
  local v; v=$(recorded cni-flannel)
  { [ "$v" = "$CNI_FLANNEL_VERSION" ] || [ "$v" = "$fb" ]; } && [ -x "$dir/flannel" ] && return 0
  mkdir -p "$dir"
  log "building flannel CNI plugin $CNI_FLANNEL_MODULE@$CNI_FLANNEL_VERSION"
  if GOBIN=$dir go install "$CNI_FLANNEL_MODULE@$CNI_FLANNEL_VERSION" >&2; then
    [ -x "$dir/cni-plugin" ] && mv "$dir/cni-plugin" "$dir/flannel"
    record cni-flannel "$CNI_FLANNEL_VERSION"
    return 0
  fi
  log "cni-flannel: $CNI_FLANNEL_MODULE@$CNI_FLANNEL_VERSION is not served by the module proxy; building its origin, github.com/$fb plugins/meta/flannel"
  local m=github.com/containernetworking/plugins
  GOBIN=$dir go install -ldflags "-X $m/pkg/utils/buildversion.BuildVersion=$CNI_FLANNEL_FALLBACK" "$m/plugins/meta/flannel@$CNI_FLANNEL_FALLBACK" >&2 || return 1
  record cni-flannel "$fb"
}

# Kubernetes v1.34 (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl):
# scripts/peers-kube.sh (~20 min the first time on 2 cores); Debian's etcd 3.4 serves it.
build_kube() {
  FLAX_PEERS=$FLAX_PEERS bash "$(dirname "$0")/peers-kube.sh"
  local v; v=$(cat "$FLAX_PEERS/bin/.kubelet.version" 2>/dev/null) || return 1
  local e; e=$(etcd --version 2>/dev/null | awk '/etcd Version/ {print "v"$3}')
  [ -z "$e" ] || record etcd "$e"
}

# ---- dispatch table: peer name -> build function (order = default order)
declare -A PEERS=(
  [flanneld]=build_flanneld
  [plugins]=build_plugins
  [cnitool]=build_cnitool
  [cni-flannel]=build_cni_flannel
  [kube]=build_kube
)
ORDER=(plugins cnitool flanneld cni-flannel kube)

names=("$@")
[ "${#names[@]}" -gt 0 ] || names=("${ORDER[@]}")
failed=()
for n in "${names[@]}"; do
  fn=${PEERS[$n]:-}
  if [ -z "$fn" ]; then echo "peers.sh: unknown peer '$n' (known: ${!PEERS[*]})" >&2; exit 2; fi
  "$fn" || failed+=("$n")
done

line=()
for n in "${names[@]}"; do
  v=$(recorded "$n"); [ -n "$v" ] && line+=("$n $v")
done
( IFS=','; echo "peers: ${line[*]}" | sed 's/,/, /g' )
if [ "${#failed[@]}" -gt 0 ]; then
  echo "peers.sh: not built: ${failed[*]}" >&2
  exit 1
fi
