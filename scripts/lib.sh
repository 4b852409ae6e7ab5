# shellcheck shell=bash
# Shared by scripts/setup.sh and scripts/test.sh (sourced, after `say` and `die` are defined):
# Debian packages and npm dependencies, each installed only when missing or stale.
# Commands get `9>&-` so nothing they leave running keeps test.sh's lock (fd 9) open.

# Prints the packages of "$@" that dpkg does not have installed, one per line.
missing_debs() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || printf '%s\n' "$p"
  done
}

install_debs() {
  apt-get -o DPkg::Lock::Timeout=300 update -qq 9>&-
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$@" 9>&-
}

# node-gyp cannot download node's headers here: use the ones the nodejs package ships in
# /usr/include/node, unless npm is configured with a nodedir already.
use_system_node_headers() {
  local cfg
  if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_version.h ]; then
    cfg=$(npm config get nodedir 2>/dev/null || true)
    if [ -z "$cfg" ] || [ "$cfg" = "undefined" ] || [ "$cfg" = "null" ]; then export npm_config_nodedir=/usr; fi
  fi
}

NPM_DEPS_STAMP=node_modules/.vxnet-deps-stamp

_deps_fresh() {
  local ref=$1
  [ -e "$ref" ] || return 1
  [ "$ref" -nt package.json ] || return 1
  [ ! -e package-lock.json ] || [ "$ref" -nt package-lock.json ] || return 1
}

# Whether node_modules is newer than package.json and package-lock.json.
npm_deps_fresh() {
  [ -d node_modules ] && { _deps_fresh "$NPM_DEPS_STAMP" || { [ ! -e "$NPM_DEPS_STAMP" ] && _deps_fresh node_modules/.package-lock.json; }; }
}

# npm ci when there is a lock file (npm install otherwise); prints which one ran.
install_npm_deps() {
  use_system_node_headers
  if [ -f package-lock.json ]; then
    say "npm ci (compiles native addons, about a minute)"
    npm ci --no-audit --no-fund 9>&-
  else
    say "npm install (compiles native addons, about a minute)"
    npm install --no-audit --no-fund 9>&-
  fi
  touch "$NPM_DEPS_STAMP"
}
