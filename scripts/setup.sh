#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (root, Node 20) for flax: the Debian
# packages the suite and its tests use, then `npm ci` (which builds the
# native addon, the pause binary and dist/bin). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(nftables iptables iproute2 iputils-ping containernetworking-plugins hyperfine util-linux build-essential python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ -x scripts/setup-e2e.sh ]; then scripts/setup-e2e.sh; fi
npm ci --no-fund --no-audit
