#!/usr/bin/env node
// Container start cost on a vxnet Docker network against Docker's built-in bridge driver:
// N x `docker run --rm --network NET local/busybox /bin/busybox true` on each, interleaved
// (vxnet, bridge, vxnet, ...) so that drift of the machine hits both alike, then p50/mean/p95
// side by side and their ratio. Target: vxnet within 10% of bridge (ratio <= 1.10).
//
// Usage: node bench/docker-run.mjs [N]           (default N=20; root; after npm run build)
//        node bench/docker-run.mjs --dns [N]     (default N=30): DNS freshness instead (below)
// Env:   BENCH_WARMUP (default 2 per network), BENCH_STRICT=1 (exit 1 when over the target)
//
// --dns (issue 12; run by BENCH_ONLY=dns): vxnetd serves DNS on 127.0.0.66:5366; per container
// `docker run -d --network <vxnet network> --name bnfd<hex>-<i> ... sleep`, then its name asked
// over UDP every millisecond from the moment `docker run` returned until it answers (the
// address checked against docker inspect afterwards, untimed); then `docker rm -f` and asked
// until NXDOMAIN. What is measured is vxnetd's own path (Docker's container start event ->
// container inspect -> catalog -> zone), not a client's. Target p99 < 100 ms both ways;
// DC/OS's Mesos-DNS polled every 30-60 s.
//
// It starts its own vxnetd (dist/bin/vxnetd, plugin vxtbench<hex>, a temp data dir), and a
// dockerd only if none answers (stopped again at the end); it builds local/busybox with
// `docker import` of busybox-static when missing. Every network, bridge and nft table it makes
// is named vxt* and removed at the end, also on failure or SIGINT/SIGTERM.
// Last line: SUMMARY docker-run N=.. vxnet_p50_ms=.. bridge_p50_ms=.. ratio_p50=.. ...
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { f1, freshnessRow, msUntilDns, summarize, table } from './lib.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const DOCKER = '/usr/bin/docker';
const DOCKERD = '/usr/sbin/dockerd';
const IMAGE = 'local/busybox:latest';
const VXNETD = join(root, 'dist', 'bin', 'vxnetd');
const DNS_MODE = process.argv[2] === '--dns';
const N = Number(process.argv[DNS_MODE ? 3 : 2] ?? (DNS_MODE ? 30 : 20));
const DNS = { addr: '127.0.0.66', port: 5366 };
const DNS_TARGET_MS = 100;
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
const TARGET = 1.10;

if (!Number.isInteger(N) || N < 1) { console.error('usage: node bench/docker-run.mjs [--dns] [N]'); process.exit(2); }
if (process.getuid?.() !== 0) { console.error('docker-run.mjs: needs root'); process.exit(2); }
if (!fs.existsSync(VXNETD)) { console.error(`docker-run.mjs: ${VXNETD} missing: run npm run build`); process.exit(2); }

const hex = randomBytes(3).toString('hex');
const plugin = `vxtbench${hex}`;
const socket = `/run/docker/plugins/${plugin}.sock`;
const dataDir = fs.mkdtempSync(join(tmpdir(), 'vxt-bench-'));
const octet = 100 + Math.floor(Math.random() * 150);
const nets = {
  vxnet: { name: `vxt-bv${hex}`, bridge: `vxtbv${hex}`, subnet: `10.233.${octet}.0/24` },
  bridge: { name: `vxt-bb${hex}`, bridge: `vxtbb${hex}`, subnet: `10.234.${octet}.0/24` },
};
const natTable = `vxtbn${hex}`;

const docker = (args, timeout = 120_000) => spawnSync(DOCKER, args, { encoding: 'utf8', timeout });
const must = (args) => {
  const r = docker(args);
  if (r.status !== 0) throw new Error(`docker ${args.join(' ')}: ${(r.stderr || r.stdout || r.error?.message || '').trim()}`);
  return r.stdout.trim();
};
const dockerUp = () => docker(['version', '--format', '{{.Server.Version}}'], 10_000).status === 0;
const waitFor = async (what, fn, ms) => {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};
const activate = () => new Promise((resolve) => {
  const req = http.request({ socketPath: socket, path: '/Plugin.Activate', method: 'POST', timeout: 1000 }, (res) => { res.resume(); resolve(res.statusCode === 200); });
  req.on('error', () => resolve(false));
  req.on('timeout', () => { req.destroy(); resolve(false); });
  req.end();
});

let dockerd;
let vxnetd;
const cleanups = [];
let cleaned = false;
function cleanup() {
  if (cleaned) return;
  cleaned = true;
  for (const fn of cleanups.reverse()) { try { fn(); } catch (e) { console.error(`cleanup: ${e.message}`); } }
}
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => { cleanup(); process.exit(130); });

function env() {
  const e = { ...process.env };
  delete e.NODE_OPTIONS;
  return e;
}

function ensureImage() {
  if (docker(['image', 'inspect', IMAGE]).status === 0) return;
  const work = fs.mkdtempSync(join(tmpdir(), 'vxt-rootfs-'));
  try {
    const r = join(work, 'rootfs');
    for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev']) fs.mkdirSync(join(r, d), { recursive: true });
    fs.copyFileSync('/bin/busybox', join(r, 'bin', 'busybox'));
    fs.chmodSync(join(r, 'bin', 'busybox'), 0o755);
    for (const a of spawnSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter((x) => x && x !== 'busybox')) fs.symlinkSync('busybox', join(r, 'bin', a));
    fs.writeFileSync(join(r, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    const tar = join(work, 'rootfs.tar');
    if (spawnSync('tar', ['-C', r, '--numeric-owner', '-cf', tar, '.']).status !== 0) throw new Error('tar failed');
    must(['import', '-c', 'CMD ["/bin/sh"]', '-c', 'ENV PATH=/bin', tar, IMAGE]);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
  return { n: s.length, min: s[0], p50: q(0.5), p95: q(0.95), max: s[s.length - 1], mean: s.reduce((a, b) => a + b, 0) / s.length };
}
const f = (x) => x.toFixed(1);

async function main() {
  cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  if (!dockerUp()) {
    console.log('# no dockerd answers: starting one for the benchmark');
    dockerd = spawn(DOCKERD, [], { detached: true, stdio: 'ignore', env: env() });
    dockerd.unref();
    cleanups.push(() => {
      process.kill(dockerd.pid, 'SIGTERM');
      spawnSync('sh', ['-c', `for i in $(seq 1 300); do kill -0 ${dockerd.pid} 2>/dev/null || exit 0; sleep 0.1; done`]);
    });
    await waitFor('dockerd', dockerUp, 60_000);
  }
  ensureImage();

  const log = fs.openSync(join(dataDir, 'vxnetd.log'), 'a');
  const dnsFlags = DNS_MODE
    ? ['--dns-listen', `${DNS.addr}:${DNS.port}`, '--dns-state', join(dataDir, 'dns.json'), '--http-listen', '', '--dns-upstream', '127.0.0.1:9']
    : ['--no-dns'];
  vxnetd = spawn(VXNETD, [...dnsFlags, '--no-vip', '--socket', socket, '--cni-socket', '', '--data-dir', dataDir, '--log-level', 'warn'], { stdio: ['ignore', log, log], env: env() });
  cleanups.push(() => {
    if (vxnetd.exitCode === null) vxnetd.kill('SIGTERM');
    spawnSync('sh', ['-c', `for i in $(seq 1 150); do kill -0 ${vxnetd.pid} 2>/dev/null || exit 0; sleep 0.1; done`]);
    fs.rmSync(socket, { force: true });
  });
  await waitFor('vxnetd', activate, 20_000);

  cleanups.push(() => {
    for (const n of Object.values(nets)) docker(['network', 'rm', n.name]);
    for (const n of Object.values(nets)) if (spawnSync('ip', ['link', 'show', n.bridge]).status === 0) spawnSync('ip', ['link', 'del', n.bridge]);
    spawnSync('nft', ['delete', 'table', 'ip', natTable]);
  });
  const t0 = process.hrtime.bigint();
  must(['network', 'create', '-d', plugin, '--ipam-driver', plugin, '--subnet', nets.vxnet.subnet,
    '-o', `bridge=${nets.vxnet.bridge}`, '-o', `natTable=${natTable}`, nets.vxnet.name]);
  const createVx = Number(process.hrtime.bigint() - t0) / 1e6;
  const t1 = process.hrtime.bigint();
  must(['network', 'create', '-d', 'bridge', '--subnet', nets.bridge.subnet, '-o', `com.docker.network.bridge.name=${nets.bridge.bridge}`, nets.bridge.name]);
  const createBr = Number(process.hrtime.bigint() - t1) / 1e6;

  if (DNS_MODE) return dnsFreshness();

  for (const [kind, n] of Object.entries(nets)) {
    const out = must(['run', '--rm', '--network', n.name, IMAGE, '/bin/busybox', 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    const addr = /inet (\S+)/.exec(out)?.[1];
    if (!addr) throw new Error(`verify: a container on ${n.name} got no IPv4 address`);
    console.log(`# verify: ${kind} network ${n.name}: container got ${addr}`);
    for (let i = 1; i < WARMUP; i++) must(['run', '--rm', '--network', n.name, IMAGE, '/bin/busybox', 'true']);
  }

  const times = { vxnet: [], bridge: [] };
  for (let i = 0; i < N; i++) {
    for (const kind of (i % 2 === 0 ? ['vxnet', 'bridge'] : ['bridge', 'vxnet'])) {
      const s = process.hrtime.bigint();
      must(['run', '--rm', '--network', nets[kind].name, IMAGE, '/bin/busybox', 'true']);
      times[kind].push(Number(process.hrtime.bigint() - s) / 1e6);
    }
  }
  const v = stats(times.vxnet);
  const b = stats(times.bridge);
  const ratio = v.p50 / b.p50;
  const ratioMean = v.mean / b.mean;
  console.log(`# docker run --rm --network NET ${IMAGE} /bin/busybox true, N=${N} each, interleaved (ms)`);
  console.log('# network                    min     p50    mean     p95     max');
  for (const [label, s] of [[`vxnet (${plugin})`, v], ['bridge (built-in)', b]]) {
    console.log(`# ${label.padEnd(24)} ${[s.min, s.p50, s.mean, s.p95, s.max].map((x) => f(x).padStart(7)).join(' ')}`);
  }
  console.log(`# ratio vxnet/bridge: p50 ${ratio.toFixed(3)}, mean ${ratioMean.toFixed(3)} (target <= ${TARGET.toFixed(2)}: ${ratio <= TARGET ? 'met' : 'NOT met'})`);
  console.log(`# network create: vxnet ${f(createVx)} ms, bridge ${f(createBr)} ms`);
  console.log(`SUMMARY docker-run N=${N} vxnet_p50_ms=${f(v.p50)} bridge_p50_ms=${f(b.p50)} ratio_p50=${ratio.toFixed(3)} vxnet_mean_ms=${f(v.mean)} bridge_mean_ms=${f(b.mean)} ratio_mean=${ratioMean.toFixed(3)} vxnet_p95_ms=${f(v.p95)} bridge_p95_ms=${f(b.p95)} target_met=${ratio <= TARGET ? 1 : 0}`);
  return ratio <= TARGET || process.env.BENCH_STRICT !== '1' ? 0 : 1;
}

/** docker run -> name in vxnetd's DNS, docker rm -f -> NXDOMAIN, N containers one after the other. */
async function dnsFreshness() {
  const net = nets.vxnet.name;
  const up = [];
  const down = [];
  for (let i = 0; i < N; i++) {
    const name = `bnfd${hex}-${i}`;
    cleanups.push(() => docker(['rm', '-f', name]));
    must(['run', '-d', '--network', net, '--name', name, IMAGE, '/bin/busybox', 'sleep', '600']);
    const started = performance.now();
    let answered;
    up.push(await msUntilDns(DNS, started, `${name}.vxnet`, (r) => { answered = r.address; return r.address !== undefined; }));
    const ip = must(['inspect', '--format', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name]);
    if (answered !== ip) throw new Error(`${name}.vxnet answered ${answered}, docker inspect says ${ip}`);
    must(['rm', '-f', name]);
    const removed = performance.now();
    down.push(await msUntilDns(DNS, removed, `${name}.vxnet`, (r) => r.rcode === 3));
  }
  console.log(`# docker run -d / docker rm -f on a vxnet network -> name in vxnetd's DNS (${DNS.addr}:${DNS.port}), N=${N}, asked every ~1 ms`);
  console.log(table(['after the command returned', 'n', 'p50 ms', 'p99 ms', 'max ms', `target p99 < ${DNS_TARGET_MS} ms`], [
    freshnessRow('docker run -> name resolves', up, DNS_TARGET_MS),
    freshnessRow('docker rm -f -> NXDOMAIN', down, DNS_TARGET_MS),
  ]).replace(/^/gm, '# '));
  console.log(`SUMMARY docker-dns-freshness N=${N} run_p50_ms=${f1(summarize(up).p50)} run_p99_ms=${f1(summarize(up).p99)} rm_p50_ms=${f1(summarize(down).p50)} rm_p99_ms=${f1(summarize(down).p99)} (Mesos-DNS: 30000-60000)`);
  return 0;
}

main().then((code) => { cleanup(); process.exit(code); }, (err) => {
  console.error(`docker-run.mjs: ${err.message}`);
  try { if (fs.existsSync(join(dataDir, 'vxnetd.log'))) console.error(fs.readFileSync(join(dataDir, 'vxnetd.log'), 'utf8').slice(-2000)); } catch { /* gone */ }
  cleanup();
  process.exit(1);
});
