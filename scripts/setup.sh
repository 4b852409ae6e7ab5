#!/usr/bin/env bash
# Quick start, step 1 (as root, on Debian 12):   bash scripts/setup.sh
#
# Installs what vxnet needs to build and run (Debian packages, npm dependencies), builds
# dist/, then installs it with `vxnetctl install --cni-bin-dir /opt/cni/bin --conflist`.
# Safe to run again: packages and npm dependencies already present are left alone.
# Needs Node.js >= 20 already installed (Debian 12's own nodejs is 18).
set -euo pipefail
exec </dev/null

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive

say() { printf '==> %s\n' "$*"; }
die() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/lib.sh
. ./scripts/lib.sh
done_list=()

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and writes /opt/cni/bin): sudo bash scripts/setup.sh"

command -v node >/dev/null 2>&1 || die "Node.js >= 20 is required and node is not installed (Debian 12's nodejs package is 18; install Node.js 20, then rerun)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js >= 20 is required, found $(node --version) (Debian 12's nodejs package is 18; install Node.js 20, then rerun)"
command -v npm >/dev/null 2>&1 || die "npm is not installed (it comes with Node.js 20)"
say "Node.js $(node --version)"

# Build: build-essential python3 (node-gyp: vxnet's addon, better-sqlite3).
# Run: iproute2 nftables iptables; containernetworking-plugins for loopback/portmap/bridge.
PKGS=(build-essential python3 iproute2 nftables iptables conntrack containernetworking-plugins)
mapfile -t missing < <(missing_debs "${PKGS[@]}")
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  install_debs "${missing[@]}"
  done_list+=("installed Debian packages: ${missing[*]}")
else
  say "Debian packages already installed: ${PKGS[*]}"
fi

if npm_deps_fresh; then
  say "npm dependencies up to date"
else
  install_npm_deps
  done_list+=("installed npm dependencies")
fi
use_system_node_headers

say "npm run build"
npm run build
done_list+=("built dist/bin/{vxnet,vxnet-ipam,vxnetctl,vxnetd}")

say "vxnetctl install --cni-bin-dir /opt/cni/bin --conflist --systemd"
node dist/bin/vxnetctl install --cni-bin-dir /opt/cni/bin --conflist --systemd
done_list+=("vxnetctl install --cni-bin-dir /opt/cni/bin --conflist --systemd")

# vxnetd: Docker's network and IPAM driver (the CNI plugins need no daemon). Under systemd
# through its unit; elsewhere (containers, CI) as a background process with a pid file.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  say "systemctl enable --now vxnetd"
  systemctl daemon-reload
  systemctl enable --now vxnetd
  done_list+=("vxnetd running under systemd (journalctl -u vxnetd)")
elif [ -f /run/vxnetd.pid ] && kill -0 "$(cat /run/vxnetd.pid)" 2>/dev/null; then
  done_list+=("vxnetd already running (pid $(cat /run/vxnetd.pid))")
else
  say "starting vxnetd (no systemd here): log /var/log/vxnetd.log, pid /run/vxnetd.pid"
  setsid /usr/local/bin/vxnetd --log-level info >>/var/log/vxnetd.log 2>&1 < /dev/null &
  echo $! > /run/vxnetd.pid
  for _ in $(seq 50); do [ -S /run/docker/plugins/vxnet.sock ] && break; sleep 0.1; done
  [ -S /run/docker/plugins/vxnet.sock ] || die "vxnetd did not start; see /var/log/vxnetd.log"
  done_list+=("vxnetd started (pid $(cat /run/vxnetd.pid), socket /run/docker/plugins/vxnet.sock)")
fi

echo
say "setup done:"
for d in "${done_list[@]}"; do printf '    - %s\n' "$d"; done
