#!/usr/bin/env bash
# Builds the flax OCI image locally with buildah, from scratch and this
# host's files only (no registry): the multi-call SEA + addons + pause/nsexec
# from dist/pkg (npm run package), nft and iptables (nf_tables variant, the
# firewall tools the plugins and the agent exec) with the shared libraries
# they and node need, and busybox as /bin/sh.
#
#   scripts/build-image.sh [--oci-archive FILE] [--tag NAME]
#
# Tags localhost/flax:<version> (package.json) in buildah's storage (the
# default, or the CONTAINERS_STORAGE_CONF / --root the caller sets up through
# BUILDAH_ARGS), and with --oci-archive writes the image as an OCI archive
# (`podman load -i FILE`). The archive is rebuilt only when an input changed
# (a hash of the staged rootfs is kept beside it as FILE.inputs).
#
# Layout:  /opt/flax/bin/{flax,flax.node,netlink.node,pause,nsexec,cniclient,cni-worker.js,flax-deps.js,PACKAGE.json}
#          /opt/flax/bin/{bridge,host-local,loopback,flannel,portmap,flaxd} -> flax
#          PATH=/opt/flax/bin:/usr/sbin:/usr/bin:/sbin:/bin, no entrypoint,
#          cmd /opt/flax/bin/flaxd (conf/flax.yml runs `flax install` first).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
version=$(node -p 'require("./package.json").version')
tag="localhost/flax:$version"
archive=""
while [ $# -gt 0 ]; do
  case $1 in
    --oci-archive) archive=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    *) echo "build-image: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v buildah >/dev/null || { echo "build-image: buildah not installed (apt-get install buildah; scripts/setup.sh lists it)" >&2; exit 1; }
[ -f dist/pkg/PACKAGE.json ] || { echo "build-image: dist/pkg missing: npm run package" >&2; exit 1; }

stage=$(mktemp -d /tmp/flax-image.XXXXXX)
ctr=""
cleanup() {
  [ -n "$ctr" ] && buildah ${BUILDAH_ARGS:-} rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$stage"
}
trap cleanup EXIT
rootfs=$stage/rootfs
mkdir -p "$rootfs"/{opt/flax/bin,bin,sbin,usr/bin,usr/sbin,etc,tmp,run,var/lib}
chmod 1777 "$rootfs/tmp"

# the package, symlinks kept
cp -a dist/pkg/. "$rootfs/opt/flax/bin/"

# firewall tools: nft, and iptables as the nf_tables multi-call binary
cp -a /usr/sbin/nft /usr/sbin/xtables-nft-multi "$rootfs/usr/sbin/"
for n in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -s xtables-nft-multi "$rootfs/usr/sbin/$n"
done
xt=/usr/lib/x86_64-linux-gnu/xtables
mkdir -p "$rootfs$xt"
cp -a "$xt/." "$rootfs$xt/"
cp -a /bin/busybox "$rootfs/bin/busybox"
ln -s busybox "$rootfs/bin/sh"

# shared libraries of every ELF in the image (node's libstdc++, nft's, the addons', xtables modules'), and the loader
elves=("$rootfs/opt/flax/bin/flax" "$rootfs/opt/flax/bin/flax.node" "$rootfs/opt/flax/bin/netlink.node" "$rootfs/usr/sbin/nft" "$rootfs/usr/sbin/xtables-nft-multi" "$rootfs$xt"/*.so)
for lib in $(ldd "${elves[@]}" 2>/dev/null | awk '/=> \//{print $3} /^\t\/lib64\//{print $1}' | sort -u); do
  cp -L --parents "$lib" "$rootfs/"
done
# Debian is merged-/usr: /lib* -> usr/lib*; keep ldd's paths and the ELF interpreter working
[ -e "$rootfs/lib64/ld-linux-x86-64.so.2" ] || cp -L --parents /lib64/ld-linux-x86-64.so.2 "$rootfs/"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\n' > "$rootfs/etc/group"

inputs=$(cd "$rootfs" && find . -type f -o -type l | LC_ALL=C sort | while read -r f; do
  if [ -L "$f" ]; then echo "$f -> $(readlink "$f")"; else echo "$f $(sha256sum < "$f" | cut -c1-64)"; fi
done | sha256sum | cut -c1-64)
inputs="$inputs $tag"
if [ -n "$archive" ] && [ -f "$archive" ] && [ "$(cat "$archive.inputs" 2>/dev/null)" = "$inputs" ]; then
  echo "build-image: $archive is up to date ($tag)" >&2
  exit 0
fi

ctr=$(buildah ${BUILDAH_ARGS:-} from scratch)
buildah ${BUILDAH_ARGS:-} add "$ctr" "$rootfs/" / >/dev/null
buildah ${BUILDAH_ARGS:-} config \
  --env PATH=/opt/flax/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --entrypoint '[]' --cmd '["/opt/flax/bin/flaxd"]' \
  --label org.opencontainers.image.title=flax \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.description="flax CNI plugins + flaxd, self-contained (Node SEA)" \
  "$ctr"
buildah ${BUILDAH_ARGS:-} commit --quiet --rm "$ctr" "$tag" >/dev/null
ctr=""
if [ -n "$archive" ]; then
  mkdir -p "$(dirname "$archive")"
  rm -f "$archive"
  buildah ${BUILDAH_ARGS:-} push --quiet "$tag" "oci-archive:$archive:$tag" >/dev/null
  echo "$inputs" > "$archive.inputs"
fi
echo "build-image: $tag${archive:+ -> $archive} ($(du -sh "$rootfs" | cut -f1) rootfs)" >&2
