#!/usr/bin/env bash
# e2e suite: owned by the runtime-e2e engineer
# Installs what test/e2e needs (real runtimes driving flax's plugins):
# podman (CNI backend on Debian 12), runc, containerd (+ ctr), busybox-static
# (the test rootfs is built from it at test time, no registry is used) and
# the reference plugins (portmap/firewall/tuning in podman's chain).
# Idempotent: only calls apt when something is missing. Touches no runtime
# configuration: the tests use scratch CONTAINERS_CONF / containerd config.
set -euo pipefail
pkgs=(podman runc containerd busybox-static containernetworking-plugins nftables iptables iproute2 iputils-ping util-linux)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # Debian's containerd package starts containerd.service via systemd where
  # systemd runs; the tests start their own containerd and need none.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  }
fi
