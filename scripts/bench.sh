#!/usr/bin/env bash
# vxnet's benchmark (`npm run bench`). Needs root. Runs bench/bench.mjs, which builds vxnet
# into the run's temp dir (scripts/build.mjs, as `npm run build` does; BENCH_DIST=dist uses
# the existing build instead), then measures CNI ADD/DEL latency and ADD throughput of vxnet
# against Debian's reference bridge+host-local (both with ipMasq) at concurrency 1 and 8,
# `node -e 0` as the floor of any Node entry point, and the IPAM core over a whole /16.
# Prints PASS/MISS per target and a final `SUMMARY ...` line; the whole output also goes to
# bench/results/<UTC>.log.
# Exit status: 0 when it ran and every check passed (whatever the figures), 1 when something
# is broken, 130/143 when interrupted (after cleaning up).
#
# Usage: bash scripts/bench.sh              # or: npm run bench
#        bash scripts/bench.sh --cleanup    # remove leftovers of a killed run (bench names only)
# Env:   BENCH_N=200 BENCH_ONLY=cni|ipam|docker|overlay|dns|edge|vip|vip-propagation BENCH_DOCKER_N=20 BENCH_ROUNDS=2 BENCH_CONC=1,8 BENCH_NODE_N=N
#        BENCH_VERIFY_EVERY=1 BENCH_IPAM_SUBNET=10.125.0.0/16 BENCH_DIST=(build now)
#        BENCH_OVERLAY_SECONDS=10 BENCH_OVERLAY_ROUNDS=6 BENCH_OVERLAY_PEERS=1000
#        BENCH_DNS_SECONDS=10 BENCH_DNS_ROUNDS=2 BENCH_DNS_WORKERS=2 BENCH_DNS_NAMES=1000 BENCH_FRESH_N=100
#        BENCH_FRESH_CLUSTER_N=30 BENCH_FRESH_DOCKER_N=30 BENCH_EDGE_SECONDS=10 BENCH_EDGE_CYCLES=10
#        BENCH_VIP_CONNECTS=300 BENCH_VIP_IPERF_SECONDS=3 BENCH_VIP_IPERF_ROUNDS=6 BENCH_VIP_ROUNDS=5 BENCH_VIP_PROP_N=20
# Only names starting with "bn" are created: netns bnvx-*/bnvd-*/bnrf-*, bridges bnvx0/bn-cni0,
# the vxnetd it starts for the hand-off (plugin socket /run/docker/plugins/bnvxd.sock),
# netns bnov<pid>-* (overlay bench), netns bnfr-* / bridge bnfr0 / nft table bnfr (DNS freshness),
# netns bnfx-* (DNS freshness across hosts), netns bned-* / bridge bned0 / nft table bned (edge),
# netns bnvip-<pid>-* with bridge bnvipbr0 and nft tables bnvip/bnvips inside it (VIP bench),
# netns bnvp-* (VIP propagation across hosts; its tables and links live inside them),
# nft table bnvx (plus the veths the plugins name, the iptables rules they add for them).
set -euo pipefail
exec </dev/null
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

[ "$(id -u)" -eq 0 ] || { echo "bench.sh: needs root (netns, bridges, nftables, iptables)" >&2; exit 1; }

# One bench at a time on this host: the netns, bridge and table names are fixed.
LOCK=/run/lock/bn-vxnet-bench.lock
mkdir -p "$(dirname "$LOCK")"
exec 9>"$LOCK"
flock -n 9 || { echo "bench.sh: another vxnet bench holds $LOCK" >&2; exit 1; }

if [ "${1:-}" = "--cleanup" ]; then
  node bench/overlay.mjs --cleanup
  node bench/vip.mjs --cleanup
  exec node bench/bench.mjs --cleanup
fi

mkdir -p bench/results
LOG=bench/results/$(date -u +%Y%m%dT%H%M%SZ).log
# Everything from here on goes to the terminal and the log. tee ignores INT/TERM so that the
# cleanup's lines still reach the log after a Ctrl-C.
exec > >(trap '' INT TERM; exec tee -a "$LOG") 2>&1
tee_pid=$!
echo "# log: $LOG  commit: $(git rev-parse --short HEAD 2>/dev/null || echo ?)$(git diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"

# node runs in the background so that a TERM sent to this script reaches it (a trap would
# otherwise wait for it to finish); a Ctrl-C reaches both. Either way node lets the plugins
# in flight finish, cleans up, and exits 130/143.
# run_node ARGS...: runs node in the background and waits, forwarding TERM/INT to it.
run_node() {
  local child rc=0
  node "$@" &
  child=$!
  trap 'kill -TERM "$child" 2>/dev/null || true' TERM
  trap 'kill -INT "$child" 2>/dev/null || true' INT
  wait "$child" || rc=$?
  while kill -0 "$child" 2>/dev/null; do
    rc=0
    wait "$child" || rc=$?
  done
  trap - TERM INT
  return "$rc"
}

rc=0
only=${BENCH_ONLY:-all}
if [ "$only" != docker ] && [ "$only" != overlay ] && [ "$only" != dns ] && [ "$only" != edge ] && [ "$only" != vip ] && [ "$only" != vip-propagation ]; then
  run_node bench/bench.mjs || rc=$?
fi
# Docker: `docker run --rm` on a vxnet network against the built-in bridge (issue 3). It needs
# dist/bin/vxnetd (npm run build) and dockerd (it starts one when none answers).
if [ "$rc" -eq 0 ] && { [ "$only" = all ] || [ "$only" = docker ]; }; then
  if [ -x /usr/sbin/dockerd ]; then
    [ -x dist/bin/vxnetd ] || npm run build 9>&-
    echo "== docker run: vxnet network vs Docker's bridge driver =="
    run_node bench/docker-run.mjs "${BENCH_DOCKER_N:-20}" || rc=$?
  else
    echo "# docker run bench skipped: dockerd is not installed (apt-get install docker.io)"
  fi
fi
# Overlay (issue 4): TCP throughput container-to-container across two host namespaces through
# vxnet's overlay (VtepProgrammer) vs a hand-built kernel VXLAN (iperf3), and one host
# programming 1000 peers. Needs iperf3 (installed here when missing) and dist/native (npm run build).
if [ "$rc" -eq 0 ] && { [ "$only" = all ] || [ "$only" = overlay ]; }; then
  if ! command -v iperf3 >/dev/null; then
    echo "# installing iperf3 (apt-get install -y iperf3) for the overlay bench"
    DEBIAN_FRONTEND=noninteractive apt-get install -y iperf3 >/dev/null 9>&- || echo "# apt-get install iperf3 failed"
  fi
  [ -x dist/bin/vxnetd ] || npm run build 9>&-
  run_node bench/overlay.mjs || rc=$?
fi
# DNS (issue 12): vxnet's authoritative server vs dnsmasq on the same 1,000 names, dnsperf on
# loopback (127.0.0.61-62). Needs dnsperf and dnsmasq (installed here when missing).
if [ "$rc" -eq 0 ] && { [ "$only" = all ] || [ "$only" = dns ]; }; then
  if ! command -v dnsperf >/dev/null || ! command -v dnsmasq >/dev/null; then
    echo "# installing dnsperf dnsmasq-base for the DNS bench"
    DEBIAN_FRONTEND=noninteractive apt-get install -y dnsperf dnsmasq-base >/dev/null 9>&- || echo "# apt-get install dnsperf dnsmasq-base failed"
  fi
  echo "== DNS: vxnet's authoritative server vs dnsmasq, 1000 names, dnsperf =="
  run_node bench/dns.mjs || rc=$?
  # Freshness: CNI ADD/DEL returned -> the name resolves / NXDOMAIN, through the built vxnetd.
  [ -x dist/bin/vxnetd ] || npm run build 9>&-
  echo "== DNS freshness: CNI ADD/DEL through vxnetd -> name in DNS =="
  [ "$rc" -eq 0 ] && { run_node bench/dns-freshness.mjs || rc=$?; }
  # Across hosts: two vxnetd in host namespaces with etcd; ADD/DEL on one -> DNS of the other.
  echo "== DNS freshness across hosts: CNI ADD/DEL on host B -> name in host A's DNS (etcd) =="
  [ "$rc" -eq 0 ] && { run_node bench/dns-freshness-cluster.mjs || rc=$?; }
  # Docker: docker run / docker rm -f -> name in vxnetd's DNS (a real dockerd; started when none answers).
  if [ -x /usr/sbin/dockerd ]; then
    echo "== DNS freshness: docker run / rm -f on a vxnet network -> name in vxnetd's DNS =="
    [ "$rc" -eq 0 ] && { run_node bench/docker-run.mjs --dns "${BENCH_FRESH_DOCKER_N:-30}" || rc=$?; }
  else
    echo "# docker DNS freshness skipped: dockerd is not installed (apt-get install docker.io)"
  fi
fi
# Edge (issue 14): vxnet-lb + HAProxy in front of CNI containers, wrk at constant load while a
# backend scales and while the config reloads; first request of a new container; requests/s vs
# the same HAProxy with a hand-written config. Needs haproxy and wrk (installed here when missing).
# VIP datapath (issue 13): VipTable in a bench namespace; programming 10k VIPs (the kernel step
# and end to end through VipService), connect p50, iperf3 through a VIP, distribution (~1-2 min).
if [ "$rc" -eq 0 ] && { [ "$only" = all ] || [ "$only" = vip ]; }; then
  command -v iperf3 >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y iperf3 >/dev/null 9>&- || echo "# apt-get install iperf3 failed"
  echo "== VIP datapath: programming, first-packet cost, iperf3, distribution =="
  run_node bench/vip.mjs || rc=$?
fi
# VIP propagation (issue 13): a backend ADDed on host B of a two-host overlay (two vxnetd, etcd)
# -> the first connection to its VIP from host A reaches it; Minuteman's ~11 s beside it.
if [ "$rc" -eq 0 ] && { [ "$only" = all ] || [ "$only" = vip-propagation ]; }; then
  [ -x dist/bin/vxnetd ] || npm run build 9>&-
  echo "== VIP propagation across hosts: backend ADD on host B -> first connection from host A =="
  run_node bench/vip-propagation.mjs || rc=$?
fi
if [ "$rc" -eq 0 ] && { [ "$only" = all ] || [ "$only" = edge ]; }; then
  if ! command -v haproxy >/dev/null || ! command -v wrk >/dev/null; then
    echo "# installing haproxy wrk for the edge bench"
    DEBIAN_FRONTEND=noninteractive apt-get install -y haproxy wrk >/dev/null 9>&- || echo "# apt-get install haproxy wrk failed"
  fi
  [ -x dist/bin/vxnet-lb ] || npm run build 9>&-
  echo "== edge: vxnet-lb + HAProxy under wrk: scaling, reloads, first request, requests/s vs a hand-written config =="
  run_node bench/edge.mjs || rc=$?
fi
echo "# log: $LOG"
exec >&- 2>&-
wait "$tee_pid" 2>/dev/null || true  # the log and the terminal have everything before we return
exit "$rc"
