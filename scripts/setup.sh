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
done_list=()

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and writes /opt/cni/bin): sudo bash scripts/setup.sh"

command -v node >/dev/null 2>&1 || die "Node.js >= 20 is required and node is not installed (Debian 12's nodejs package is 18; install Node.js 20, then rerun)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js >= 20 is required, found $(node --version) (Debian 12's nodejs package is 18; install Node.js 20, then rerun)"
command -v npm >/dev/null 2>&1 || die "npm is not installed (it comes with Node.js 20)"
say "Node.js $(node --version)"

# Build: build-essential python3 (node-gyp: vxnet's addon, better-sqlite3).
# Run: iproute2 nftables iptables; containernetworking-plugins for loopback/portmap/bridge.
PKGS=(build-essential python3 iproute2 nftables iptables containernetworking-plugins)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"
  done_list+=("installed Debian packages: ${missing[*]}")
else
  say "Debian packages already installed: ${PKGS[*]}"
fi

# node-gyp cannot download node's headers here: use the nodejs package's /usr/include/node
# unless npm is configured with a nodedir already.
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_version.h ]; then
  cfg=$(npm config get nodedir 2>/dev/null || true)
  if [ -z "$cfg" ] || [ "$cfg" = "undefined" ] || [ "$cfg" = "null" ]; then export npm_config_nodedir=/usr; fi
fi

# npm dependencies: (re)installed when node_modules is missing or older than package.json /
# package-lock.json. The stamp is shared with scripts/test.sh.
stamp=node_modules/.vxnet-deps-stamp
deps_fresh() {
  local ref=$1
  [ -e "$ref" ] || return 1
  [ "$ref" -nt package.json ] || return 1
  [ ! -e package-lock.json ] || [ "$ref" -nt package-lock.json ] || return 1
}
if [ -d node_modules ] && { deps_fresh "$stamp" || { [ ! -e "$stamp" ] && deps_fresh node_modules/.package-lock.json; }; }; then
  say "npm dependencies up to date"
else
  if [ -f package-lock.json ]; then
    say "npm ci (compiles native addons, about a minute)"
    npm ci --no-audit --no-fund
    done_list+=("npm ci")
  else
    say "npm install (compiles native addons, about a minute)"
    npm install --no-audit --no-fund
    done_list+=("npm install")
  fi
fi
touch "$stamp"

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
