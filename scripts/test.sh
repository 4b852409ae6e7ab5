#!/usr/bin/env bash
# vxnet's test command (`npm test`, and what .ci/run calls). Works on a clean clone, as root,
# with CI=true and no stdin:
#   1. installs the Debian packages the tests need, if any is missing (apt-get update only then);
#   2. installs npm dependencies when node_modules is missing or older than package.json /
#      package-lock.json;
#   3. builds (npm run build);
#   4. removes leftovers of earlier crashed runs, by the test prefix only: network namespaces,
#      links and nft tables named vxt*, podman containers named vxt*;
#   5. runs tap over every test file under test/ except test/integration ("unit": test/unit,
#      test/ipam, ...), then over test/integration (root only; one file at a time);
#   6. prints `N passed, N failed, N skipped` as its last line (also when a step before the
#      tests fails: then `0 passed, 1 failed`), and exits non-zero if anything failed.
# Runs hold a machine-wide lock (/run/lock/vxnet-test.lock), so two runs on one machine do not
# sweep or collide with each other's namespaces; the second waits.
#
# Usage: bash scripts/test.sh                 # everything
#        bash scripts/test.sh FILE|DIR...     # only these tap files/dirs (one group)
# Env:   VXNET_TEST_JOBS     parallel test files in the unit group (default: tap's, = CPUs)
#        VXNET_TEST_INTEGRATION_JOBS   same for test/integration (default 1)
#        VXNET_TEST_NO_SWEEP=1   skip step 4 (e.g. while someone else's tests run on this
#                                machine outside scripts/test.sh and its lock)
set -euo pipefail
exec </dev/null

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export DEBIAN_FRONTEND=noninteractive

say() { printf '==> %s\n' "$*"; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/lib.sh
. ./scripts/lib.sh
# Whatever stops the script before the tests ran (missing node, apt, npm ci, build) still
# ends with the counts line, counting the failed step as one failure.
summary_printed=0
trap 'rc=$?; if [ "$summary_printed" -eq 0 ]; then printf "test.sh: stopped before the tests finished (exit %s)\n0 passed, 1 failed\n" "$rc"; [ "$rc" -ne 0 ] || rc=1; fi; exit "$rc"' EXIT

# --- node ----------------------------------------------------------------------------------
command -v node >/dev/null 2>&1 || die "node is not installed (vxnet needs Node.js 20)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js >= 20 required, found $(node --version)"

is_root=0
[ "$(id -u)" -eq 0 ] && is_root=1

# --- one run per machine -------------------------------------------------------------------
# fd 9 holds the lock; commands that may leave daemons behind (podman's conmon) get `9>&-`
# so no stray process keeps it.
if [ "$is_root" -eq 1 ]; then lock=/run/lock/vxnet-test.lock; else lock="${TMPDIR:-/tmp}/vxnet-test-$(id -u).lock"; fi
exec 9>"$lock"
if ! flock -n 9; then
  say "another vxnet test run holds $lock; waiting for it (up to 1 h)"
  flock -w 3600 9 || die "timed out waiting for $lock"
fi

# --- Debian packages -----------------------------------------------------------------------
# runc: podman runs containers with runc (deploy/containers.conf: crun refuses cgroup hybrid).
# etcd-server: the etcd store's tests (test/helpers/etcd.ts starts its own members).
# iputils-ping: the overlay MTU test (ping -M do sets DF; busybox ping cannot).
# docker.io: the Docker driver's end-to-end tests (test/helpers/docker.ts starts its own dockerd
# when none runs, and stops it by pid afterwards).
# bind9-dnsutils: dig, the real client the DNS server's tests ask (test/dns/server.test.ts).
# haproxy, wrk: the edge balancer's tests and bench (test/edge/, bench/edge.mjs; Debian's haproxy
# service is left alone: the tests start their own HAProxy through vxnet-lb).
# conntrack: the VIP table forgets flows of gone backends with it (net/conntrack.ts); openssl: the
# edge TLS tests' test CA; curl: the VIP cluster test's requests inside namespaces.
# chromium: the web view's browser test (test/integration/ui-browser.test.ts, driven by playwright-core).
PKGS=(build-essential python3 iproute2 nftables iptables conntrack iputils-ping podman runc containernetworking-plugins busybox-static docker.io etcd-server bind9-dnsutils haproxy wrk openssl curl chromium)
mapfile -t missing < <(missing_debs "${PKGS[@]}")
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$is_root" -eq 1 ] || die "missing Debian packages (${missing[*]}); run as root or apt-get install them"
  say "installing ${missing[*]}"
  install_debs "${missing[@]}"
else
  say "Debian packages present"
fi

# --- npm dependencies ----------------------------------------------------------------------
if npm_deps_fresh; then
  say "npm dependencies up to date"
else
  install_npm_deps
fi
use_system_node_headers

# --- build ---------------------------------------------------------------------------------
say "npm run build"
npm run build 9>&-

# --- leftovers of crashed runs (test prefix vxt only) ---------------------------------------
sweep() {
  local n
  if command -v podman >/dev/null 2>&1; then
    for n in $(CONTAINERS_CONF="$ROOT/deploy/containers.conf" podman ps -a --format '{{.Names}}' 2>/dev/null | grep '^vxt' || true); do
      say "removing leftover container $n"
      CONTAINERS_CONF="$ROOT/deploy/containers.conf" podman rm -f -t 0 "$n" >/dev/null 2>&1 9>&- || true
    done
  fi
  if [ -x /usr/bin/docker ] && timeout 5 /usr/bin/docker version >/dev/null 2>&1; then
    for n in $(/usr/bin/docker ps -a --format '{{.Names}}' 2>/dev/null | grep '^vxt' || true); do
      say "removing leftover docker container $n"
      timeout 60 /usr/bin/docker rm -f "$n" >/dev/null 2>&1 9>&- || true
    done
    for n in $(/usr/bin/docker network ls --format '{{.Name}}' 2>/dev/null | grep '^vxt' || true); do
      say "removing leftover docker network $n"
      timeout 60 /usr/bin/docker network rm "$n" >/dev/null 2>&1 9>&- || true
    done
  fi
  rm -f /run/docker/plugins/vxt*.sock
  for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^vxt' || true); do
    say "removing leftover netns $n"
    ip netns delete "$n" || true
  done
  for n in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^(vxt|vxy)' || true); do
    if ip link show dev "$n" >/dev/null 2>&1; then  # a veth may have gone with its peer
      say "removing leftover link $n"
      ip link delete dev "$n" || true
    fi
  done
  if command -v nft >/dev/null 2>&1; then
    # "table <family> <name>"
    nft list tables 2>/dev/null | while read -r _ fam name; do
      case "$name" in
        vxt*) say "removing leftover nft table $fam $name"; nft delete table "$fam" "$name" || true ;;
      esac
    done
  fi
}
if [ "$is_root" -eq 1 ] && [ -z "${VXNET_TEST_NO_SWEEP:-}" ]; then sweep; fi

# --- tap -----------------------------------------------------------------------------------
TAP="$ROOT/node_modules/.bin/tap"
LOGDIR="$ROOT/.tap"
mkdir -p "$LOGDIR"
passed=0 failed=0 skipped=0

# run_group LABEL JOBS FILE...: runs tap (TAP reporter, echoed and saved to .tap/LABEL.tap),
# then adds the counts of tap's closing summary `# { total: T, pass: P, fail: F, todo: D,
# skip: S }` (leaf assertions plus failed files; zero fields are omitted). If tap died before
# printing it, the top-level `ok`/`not ok` lines (one per test file) count instead.
run_group() {
  local label=$1 jobs=$2; shift 2
  local files=("$@") log rc p f s
  if [ "${#files[@]}" -eq 0 ]; then
    say "$label: no test files"
    return 0
  fi
  say "$label: ${#files[@]} test file(s)"
  log="$LOGDIR/$label.tap"
  local jobarg=()
  [ -n "$jobs" ] && jobarg=(--jobs="$jobs")
  set +e
  "$TAP" --reporter=tap "${jobarg[@]}" "${files[@]}" 2>&1 9>&- | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  local summary
  summary=$(grep -E '^# \{ total: ' "$log" | tail -n 1 || true)
  if [ -n "$summary" ]; then
    field() { printf '%s\n' "$summary" | grep -oE "$1: [0-9]+" | grep -oE '[0-9]+' || echo 0; }
    p=$(field pass); f=$(field fail); s=$(( $(field skip) + $(field todo) ))
  else
    p=$(grep -cE '^ok [0-9]+' "$log" || true)
    f=$(grep -cE '^not ok [0-9]+|^Bail out!' "$log" || true)
    s=0
  fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    printf 'test.sh: tap exited %s for %s without a counted failure; counting 1\n' "$rc" "$label" >&2
    f=1
  fi
  say "$label: $p passed, $f failed, $s skipped (tap exit $rc; TAP in ${log#"$ROOT"/})"
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
}

# tap list applies .taprc's include/exclude (helpers, fixtures); it exits 1 when nothing matches.
list() { "$TAP" list "$@" 2>/dev/null | sort || true; }
if [ "$#" -gt 0 ]; then
  mapfile -t sel < <(list "$@")
  run_group selected "${VXNET_TEST_JOBS:-}" "${sel[@]}"
else
  # Root groups: test/integration (kernel, podman) and the Docker end-to-end tests (test/docker/*e2e*, real dockerd).
  mapfile -t unit < <(list test | grep -v -e '^test/integration/' -e '^test/overlay/' -e '^test/docker/.*e2e' || true)
  # test/overlay: multi-host namespaces, VXLAN and real etcd; serial with the kernel tests.
  mapfile -t integ < <(list test/integration test/overlay)
  mapfile -t dockere2e < <(list test/docker | grep -e '^test/docker/.*e2e' || true)
  run_group unit "${VXNET_TEST_JOBS:-}" "${unit[@]}"
  if [ "$is_root" -eq 1 ]; then
    run_group integration "${VXNET_TEST_INTEGRATION_JOBS:-1}" "${integ[@]}"
    run_group docker 1 "${dockere2e[@]}"
  elif [ "$(( ${#integ[@]} + ${#dockere2e[@]} ))" -gt 0 ]; then
    say "integration, docker: not root, skipping $(( ${#integ[@]} + ${#dockere2e[@]} )) test file(s)"
    skipped=$((skipped + ${#integ[@]} + ${#dockere2e[@]}))
  fi
fi

summary_printed=1
printf '%s passed, %s failed, %s skipped\n' "$passed" "$failed" "$skipped"
[ "$failed" -eq 0 ]
