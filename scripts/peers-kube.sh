#!/usr/bin/env bash
# Builds the Kubernetes peers (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl)
# from k8s.io/kubernetes through the Go module proxy, into $FLAX_PEERS/bin. Idempotent: a binary whose
# stamp ($FLAX_PEERS/bin/.<name>.version) matches KUBE_VERSION is not rebuilt.
#
# k8s.io/kubernetes' go.mod replaces every k8s.io staging module with ./staging/src/k8s.io/<name>, which a
# module-mode build of k8s.io/kubernetes ignores (replace only applies in the main module). So the build runs
# in a scratch module ($FLAX_PEERS/src/kube) that requires k8s.io/kubernetes@KUBE_VERSION and pins each
# staging module to its published tag v0.<minor>.<patch> with a replace directive of its own.
#
# Nothing of this goes into the project: sources and caches live under $FLAX_PEERS.
set -euo pipefail

FLAX_PEERS=${FLAX_PEERS:-/var/cache/flax-peers}
KUBE_VERSION=${KUBE_VERSION:-v1.34.4}
KUBE_BINS=${KUBE_BINS:-"kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl"}
export GOMODCACHE=$FLAX_PEERS/gomod GOCACHE=$FLAX_PEERS/gocache
export GOFLAGS="-buildvcs=false -mod=mod" GOTOOLCHAIN=local CGO_ENABLED=0

bin=$FLAX_PEERS/bin
src=$FLAX_PEERS/src/kube
mkdir -p "$bin" "$src"

todo=()
for b in $KUBE_BINS; do
  if [[ -x $bin/$b && "$(cat "$bin/.$b.version" 2>/dev/null)" == "$KUBE_VERSION" ]]; then continue; fi
  todo+=("$b")
done
if ((${#todo[@]} == 0)); then
  echo "peers-kube: $KUBE_BINS $KUBE_VERSION already built in $bin"
  exit 0
fi

# staging version: v1.34.4 -> v0.34.4
stag=v0.${KUBE_VERSION#v1.}

cd "$src"
if [[ "$(cat .version 2>/dev/null)" != "$KUBE_VERSION" ]]; then
  rm -f go.mod go.sum
  go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" >/dev/null
  kmod=$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/$KUBE_VERSION.mod
  gover=$(awk '$1=="go"{print $2; exit}' "$kmod")
  {
    echo "module flax.peers/kube"
    echo
    echo "go $gover"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    # every staging replace of kubernetes' go.mod, pinned to the published tag instead of ./staging
    awk '/=> \.\/staging\/src\//{print "\t" $1 " => " $1 " '"$stag"'"}' "$kmod"
    echo ")"
  } > go.mod
  # other (non-staging) replace directives of kubernetes' go.mod, copied as they are
  awk '/^replace \(/{r=1;next} r&&/^\)/{r=0} r&&/=>/&&!/\.\/staging/{print "replace " $0}' "$kmod" >> go.mod
  cat > tools.go <<'GO'
//go:build tools

package tools
GO
  pkgs=()
  for b in $KUBE_BINS; do pkgs+=("k8s.io/kubernetes/cmd/$b@$KUBE_VERSION"); done
  go get "${pkgs[@]}"
  echo "$KUBE_VERSION" > .version
fi

# the version stamp kubernetes' own build (hack/lib/version.sh) sets
minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  ld+=" -X $p.buildDate=1970-01-01T00:00:00Z"
done

for b in "${todo[@]}"; do
  echo "peers-kube: building $b $KUBE_VERSION"
  go build -trimpath -ldflags "$ld" -o "$bin/$b.tmp" "k8s.io/kubernetes/cmd/$b"
  mv -f "$bin/$b.tmp" "$bin/$b"
  echo "$KUBE_VERSION" > "$bin/.$b.version"
done

if [[ -f $FLAX_PEERS/versions ]] || true; then
  # one line per peer, "name version"; other scripts (peers.sh) keep their own lines
  touch "$FLAX_PEERS/versions"
  for b in $KUBE_BINS; do
    grep -v "^$b " "$FLAX_PEERS/versions" > "$FLAX_PEERS/versions.tmp.$$" || true
    echo "$b $KUBE_VERSION" >> "$FLAX_PEERS/versions.tmp.$$"
    mv -f "$FLAX_PEERS/versions.tmp.$$" "$FLAX_PEERS/versions"
  done
fi
echo "peers-kube: done"
