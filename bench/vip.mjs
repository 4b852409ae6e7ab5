// The VIP datapath bench (issue 13): VipTable (datapath/vip-table.ts, bundled here with
// esbuild) programming a table inside a bench namespace, and traffic through it.
// Setup as test/integration/vip-table.test.ts: netns bnvip-<pid>-h is the "host" (bridge
// bnvipbr0, the nft table bnvip, routes), bnvip-<pid>-b1..b3 are backends on the bridge,
// bnvip-<pid>-c a client routed through the host. Everything is removed at the end, also on
// error and SIGINT/SIGTERM. Prints each figure beside its reference and PASS/FAIL.
//   1. programming: 10,000 VIPs x 3 backends from empty; one VIP added / one backend changed
//      with 10,000 present (kube-proxy nftables: 141 ms for one service next to 10k, PR #126013),
//      the kernel step alone (VipTable.sync / apply) and end to end (a catalog of 30,000
//      endpoints -> VipService -> VipTable on its own table bnvips, the time split into the
//      service's part and the kernel's)
//   2. TCP connect p50 through a VIP with 10 VIPs present vs 10,000 present (ratio <= 1.1), ABBA rounds
//   3. iperf3 through a VIP vs straight to the backend (>= 0.95x), pairs in ABBA order, the median of their ratios
//   4. distribution: 3,000 connections over 3 equal backends (30-37% each), weights 1:2
// Env: BENCH_VIP_CONNECTS=300 BENCH_VIP_CONNECT_ROUNDS=4 BENCH_VIP_IPERF_SECONDS=3 BENCH_VIP_IPERF_ROUNDS=6 BENCH_VIP_ROUNDS=5 (one-change repeats)
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { f1, f2, intEnv, pct, run, say, table } from './lib.mjs';
import { netlinkAddon } from '../scripts/esbuild-netlink.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const CONNECTS = intEnv('BENCH_VIP_CONNECTS', 300);
const IPERF_S = intEnv('BENCH_VIP_IPERF_SECONDS', 3);
const ROUNDS = intEnv('BENCH_VIP_ROUNDS', 5);
const IPERF_ROUNDS = intEnv('BENCH_VIP_IPERF_ROUNDS', 6);
const CONNECT_ROUNDS = intEnv('BENCH_VIP_CONNECT_ROUNDS', 4);
const P = `bnvip-${process.pid}`;
const H = `${P}-h`;
const NS = [H, `${P}-b1`, `${P}-b2`, `${P}-b3`, `${P}-c`];
const TABLE = 'bnvip';
const tmp = mkdtempSync(join(tmpdir(), 'bnvip-'));
const children = new Set();

async function sh(script) {
  const r = await run('bash', ['-euo', 'pipefail', '-c', script], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`${script}\n${r.stderr}`);
  return r.stdout;
}

// One cleanup, however many callers: a signal's handler and main's own unwinding both await
// the same run (an early return let main exit while the handler was half-way through).
let cleaning;
function cleanup() {
  cleaning ??= doCleanup();
  return cleaning;
}
async function doCleanup() {
  for (const c of children) if (c.exitCode === null && c.pid !== undefined) { try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ } }
  // Deleting the host namespace takes its nft table, bridge and veths with it.
  for (const ns of NS) await run('ip', ['netns', 'del', ns]);
  rmSync(tmp, { recursive: true, force: true });
}
// A reader that went away (`| head`) must not end the run before its cleanup.
process.stdout.on('error', () => undefined);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { void cleanup().then(() => process.exit(sig === 'SIGINT' ? 130 : 143)); });
}

// A small client run inside a namespace: N sequential connects, prints JSON
// { who: [first line per connect], ms: [connect-to-first-byte ms] }.
const CLIENT = `
import net from 'node:net';
const [host, port, n] = process.argv.slice(2);
const who = [], ms = [];
for (let i = 0; i < Number(n); i++) {
  const t0 = process.hrtime.bigint();
  await new Promise((resolve) => {
    const s = net.connect({ host, port: Number(port) });
    let buf = '';
    const timer = setTimeout(() => { s.destroy(); who.push('ERR:TIMEOUT'); resolve(); }, 3000);
    s.on('connect', () => ms.push(Number(process.hrtime.bigint() - t0) / 1e6));
    s.on('data', (d) => { buf += d; if (buf.includes('\\n')) { clearTimeout(timer); who.push(buf.split('\\n')[0]); s.end(); resolve(); } });
    s.on('error', (e) => { clearTimeout(timer); who.push('ERR:' + e.code); resolve(); });
  });
}
console.log(JSON.stringify({ who, ms }));
`;

async function client(host, port, n) {
  const r = await run('ip', ['netns', 'exec', NS[4], process.execPath, join(tmp, 'client.mjs'), host, String(port), String(n)], { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`client: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function spawnIn(ns, args, ready) {
  const c = spawn('ip', ['netns', 'exec', ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(c);
  return new Promise((resolve, reject) => {
    c.once('exit', (code) => reject(new Error(`${args[0]} in ${ns} exited ${code}`)));
    createInterface({ input: c.stdout }).on('line', (l) => { if (ready.test(l)) resolve(c); });
  });
}

async function iperf(host, port) {
  const r = await run('ip', ['netns', 'exec', NS[4], 'iperf3', '-c', host, '-p', String(port), '-t', String(IPERF_S), '-J'], { timeoutMs: (IPERF_S + 30) * 1000 });
  if (r.code !== 0) throw new Error(`iperf3 -c ${host}:${port}: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout).end.sum_received.bits_per_second / 1e9;
}

const verdict = (ok) => (ok ? 'PASS' : 'FAIL');
const med = (xs) => pct([...xs].sort((a, b) => a - b), 50);

async function main() {
  const { build } = await import('esbuild');
  const bundle = join(tmp, 'vip.cjs');
  await build({
    stdin: {
      contents: [
        "export { VipTable } from './datapath/vip-table';",
        "export { enableBridgeNetfilter, enableHairpin } from './net/nat';",
        "export { parseIp } from './ipam/addr';",
        "export { VipService } from './vip/service';",
        "export { EndpointCatalog } from './catalog/catalog';",
        "export { MemoryClaims, VipAddresses, parseVipRange } from './vip/address';",
        "export { createLogger } from './lib/log';",
      ].join('\n'),
      resolveDir: root, loader: 'ts',
    },
    outfile: bundle, bundle: true, platform: 'node', target: 'node20', format: 'cjs', logLevel: 'warning',
    // As scripts/build.mjs bundles vxnetd: native addons (node-netlink's, for VipTable's netlink
    // batches) from a built dist/native.
    external: ['*.node', 'bindings'], define: { __VXNET_BUNDLED__: 'true' }, plugins: [netlinkAddon],
  });
  process.env.VXNET_DIST = resolvePath(root, process.env.BENCH_DIST || 'dist');
  if (!existsSync(join(process.env.VXNET_DIST, 'native', 'netlink.node'))) throw new Error(`${process.env.VXNET_DIST}/native/netlink.node is missing: run npm run build (or set BENCH_DIST)`);
  const { VipTable, enableBridgeNetfilter, enableHairpin, parseIp, VipService, EndpointCatalog, MemoryClaims, VipAddresses, parseVipRange, createLogger } = createRequire(import.meta.url)(bundle);
  writeFileSync(join(tmp, 'client.mjs'), CLIENT);
  const ip = (s) => parseIp(s);

  for (const ns of NS) await sh(`ip netns add ${ns}; ip -n ${ns} link set lo up`);
  await sh(`
    ip netns exec ${H} sysctl -qw net.ipv4.ip_forward=1
    ip -n ${H} link add bnvipbr0 type bridge
    ip -n ${H} addr add 10.77.0.1/24 dev bnvipbr0
    ip -n ${H} link set bnvipbr0 up
    ip -n ${H} link add bnvipr0 type veth peer name eth0 netns ${NS[4]}
    ip -n ${H} addr add 10.78.0.1/24 dev bnvipr0
    ip -n ${H} link set bnvipr0 up
    ip -n ${NS[4]} addr add 10.78.0.2/24 dev eth0
    ip -n ${NS[4]} link set eth0 up
    ip -n ${NS[4]} route add default via 10.78.0.1
    ip -n ${H} route add 10.96.0.0/12 dev bnvipbr0
  `);
  enableBridgeNetfilter('bnvipbr0', H);
  for (let i = 1; i <= 3; i++) {
    await sh(`
      ip -n ${H} link add bnvipv${i} type veth peer name eth0 netns ${NS[i]}
      ip -n ${H} link set bnvipv${i} master bnvipbr0 up
      ip -n ${NS[i]} addr add 10.77.0.${10 + i}/24 dev eth0
      ip -n ${NS[i]} link set eth0 up
      ip -n ${NS[i]} route add default via 10.77.0.1
    `);
    enableHairpin(`bnvipv${i}`, H);
    await spawnIn(NS[i], [process.execPath, join(root, 'test', 'integration', 'helpers', 'vip-peer.mjs'), 'serve', `b${i}`, '8080', '5353'], /ready/);
  }
  // --forceflush: iperf3 block-buffers its stdout into a pipe, so without it the "listening"
  // line never arrives (what hung this bench in its first version, not VipTable.start()).
  await spawnIn(NS[1], ['iperf3', '-s', '-p', '5201', '--forceflush'], /listening/i);

  const B = (n, port = 8080, weight = 1) => ({ ip: ip(`10.77.0.${10 + n}`), port, weight });
  const base = [
    { ip: ip('10.96.0.1'), protocol: 'tcp', port: 80, backends: [B(1), B(2), B(3)] },
    { ip: ip('10.96.0.2'), protocol: 'tcp', port: 80, backends: [B(1)] },
    { ip: ip('10.96.0.3'), protocol: 'tcp', port: 80, backends: [B(1, 8080, 1), B(2, 8080, 2)] },
    { ip: ip('10.96.0.4'), protocol: 'tcp', port: 5201, backends: [B(1, 5201)] },
  ];
  for (let i = base.length; i < 10; i++) base.push({ ip: ip(`10.96.0.${10 + i}`), protocol: 'tcp', port: 80, backends: [B(1), B(2), B(3)] });
  const many = [...base];
  for (let i = 0; i < 10_000; i++) many.push({ ip: ip(`10.97.${i >> 8}.${i & 255}`), protocol: 'tcp', port: 80, backends: [B(1), B(2), B(3)] });

  const vips = new VipTable({ table: TABLE, netns: H, guard: false });

  // 10,000 named VIPs, each backed by 3 endpoints (30,000 in the catalog) as labels ask for
  // them; VipService over its own table (bnvips, removed after: the traffic tests use bnvip).
  async function e2eProgramming() {
    const EP = (i, k, extra = {}) => ({
      id: `bench/blue/s${i}-${k}`, host: 'bench', runtime: 'cni', containerId: `s${i}-${k}`, network: 'blue', name: `s${i}-${k}`, aliases: [],
      addresses: [`10.77.0.${10 + k}`], labels: { VIP_0: `/s${i}:80` }, ports: [{ port: 8080, protocol: 'tcp' }], ...extra,
    });
    const catalog = new EndpointCatalog();
    for (let i = 0; i < 10_000; i++) for (let k = 1; k <= 3; k++) catalog.put(EP(i, k));
    const table2 = new VipTable({ table: `${TABLE}s`, netns: H, guard: false });
    let waiter;
    let applyStart = 0;
    let syncMs = NaN;
    let syncNftMs = NaN;
    const kernel = {
      start: () => table2.start(),
      stop: () => table2.stop(),
      sync: async (e) => {
        const t = performance.now();
        const st = await table2.sync(e);
        syncMs = performance.now() - t;
        syncNftMs = st.nftMs;
        return st;
      },
      apply: async (c) => {
        applyStart = performance.now();
        const st = await table2.apply(c);
        waiter?.(performance.now());
        return st;
      },
    };
    const addresses = new VipAddresses(new MemoryClaims(), parseVipRange('198.18.0.0/15', 4, 'vip-range'), undefined);
    const svc = new VipService({ catalog, kernel, addresses, log: createLogger('bench', 'error', () => undefined), verifyMs: 0 });
    const change = async (fn) => {
      const done = new Promise((r) => { waiter = r; });
      const t = performance.now();
      fn();
      const end = await done;
      return { ms: end - t, model: applyStart - t, kernel: end - applyStart };
    };
    try {
      const t1 = performance.now();
      await svc.start();
      const startMs = performance.now() - t1;
      const adds = [];
      const changes = [];
      for (let k = 1; k <= ROUNDS; k++) {
        adds.push(await change(() => catalog.put(EP(20_000 + k, 1))));
        changes.push(await change(() => catalog.put(EP(4000, 3, { health: k % 2 ? 'unhealthy' : 'healthy' }))));
      }
      const m = (xs, f) => med(xs.map((x) => x[f]));
      say(`== VIP programming end to end: catalog change -> VipService -> kernel done (30,000 endpoints, 10,000 named VIPs; medians of ${ROUNDS}) ==`);
      say(table(['what', 'vxnet ms', 'model ms', 'kernel ms', 'reference ms', 'ratio', 'target', 'result'], [
        [`10,000 VIPs x 3 from the catalog: VipService.start() (claims, skeleton, whole table; of the kernel's part nft ${f1(syncNftMs)} ms)`, f1(startMs), f1(startMs - syncMs), f1(syncMs), 'n/a', '', '< 1000 ms', verdict(startMs < 1000)],
        ['one VIP added (an endpoint with a new VIP label)', f1(m(adds, 'ms')), f1(m(adds, 'model')), f1(m(adds, 'kernel')), '141 (kube-proxy nft)', f2(m(adds, 'ms') / 141), '< 50 ms', verdict(m(adds, 'ms') < 50)],
        ['one backend changed (an endpoint turning unhealthy / healthy)', f1(m(changes, 'ms')), f1(m(changes, 'model')), f1(m(changes, 'kernel')), '141 (kube-proxy nft)', f2(m(changes, 'ms') / 141), '< 50 ms', verdict(m(changes, 'ms') < 50)],
      ]));
    } finally {
      await svc.stop().catch(() => undefined);
      await table2.remove().catch(() => undefined);
    }
  }
  try {
    say(`# load: ${(await sh('uptime')).trim()}`);
    await vips.start();
    // ---- 1. programming: the kernel step alone (VipTable) ----
    const t0 = performance.now();
    const s0 = await vips.sync(many);
    const full = performance.now() - t0;
    const extra = (k) => ({ ip: ip(`10.96.1.${k}`), protocol: 'tcp', port: 8000, backends: [B(3)] });
    const target = many[5000];
    const addMs = [];
    const changeMs = [];
    for (let k = 1; k <= ROUNDS; k++) {
      addMs.push((await vips.apply({ put: [extra(k)], remove: [] })).ms);
      changeMs.push((await vips.apply({ put: [{ ...target, backends: k % 2 ? [B(1), B(2), B(3, 8081)] : [B(1), B(2), B(3)] }], remove: [] })).ms);
    }
    await vips.apply({ put: [], remove: Array.from({ length: ROUNDS }, (_, i) => extra(i + 1)) });
    // The whole-table path (sync with every entry: a full diff per change), for comparison.
    const wholeMs = [];
    for (let k = 1; k <= 3; k++) wholeMs.push((await vips.sync([...many, extra(k)])).ms);
    await vips.sync(many);
    say(`== VIP programming, kernel step alone (VipTable in a bench namespace; medians of ${ROUNDS}) ==`);
    say(table(['what', 'vxnet ms', 'reference ms', 'ratio', 'target', 'result'], [
      [`10,000 VIPs x 3 backends, empty -> kernel (${s0.elementsAdded} elements; of it nft ${f1(s0.nftMs)} ms)`, f1(full), 'n/a', '', '< 1000 ms', verdict(full < 1000)],
      ['one VIP added next to 10,000 (VipTable.apply)', f1(med(addMs)), '141 (kube-proxy nft, PR #126013)', f2(med(addMs) / 141), '< 50 ms', verdict(med(addMs) < 50)],
      ['one backend changed next to 10,000 (VipTable.apply)', f1(med(changeMs)), '141 (kube-proxy nft, PR #126013)', f2(med(changeMs) / 141), '< 50 ms', verdict(med(changeMs) < 50)],
      ['one VIP added, whole table handed over (VipTable.sync; for scale)', f1(med(wholeMs)), '141 (kube-proxy nft, PR #126013)', f2(med(wholeMs) / 141), '', ''],
    ]));

    // ---- 1b. programming end to end: catalog change -> VipService -> kernel done ----
    await e2eProgramming();

    // ---- 2. first-packet cost ----
    // Rounds in ABBA order (10 VIPs, 10,000, 10,000, 10 VIPs, ...), the samples of each side
    // pooled: a change in the machine's load during the run falls on both sides.
    const few = [];
    const lots = [];
    const direct = [];
    const per = Math.max(20, Math.ceil(CONNECTS / CONNECT_ROUNDS));
    for (let r = 0; r < CONNECT_ROUNDS; r++) {
      for (const side of r % 2 === 0 ? ['few', 'lots'] : ['lots', 'few']) {
        await vips.sync(side === 'few' ? base : many);
        await client('10.96.0.1', 80, 10); // warm-up
        (side === 'few' ? few : lots).push(...(await client('10.96.0.1', 80, per)).ms);
      }
      direct.push(...(await client('10.77.0.11', 8080, per)).ms);
    }
    for (const xs of [few, lots, direct]) xs.sort((a, b) => a - b);
    await vips.sync(many); // the rest runs with 10,000 VIPs present
    const r2 = pct(lots, 50) / pct(few, 50);
    say(`== VIP first-packet cost: TCP connect latency, ${few.length} sequential connects per side in ${CONNECT_ROUNDS} ABBA rounds from a routed client ==`);
    say(table(['what', 'p50 ms', 'p99 ms', 'reference p50 ms', 'ratio', 'target', 'result'], [
      ['through a VIP, 10,000 VIPs present', f2(pct(lots, 50)), f2(pct(lots, 99)), `${f2(pct(few, 50))} (10 VIPs)`, f2(r2), '<= 1.10', verdict(r2 <= 1.1)],
      ['straight to the backend (for scale)', f2(pct(direct, 50)), f2(pct(direct, 99)), '', '', '', ''],
    ]));

    // ---- 3. throughput ----
    // Pairs of runs in ABBA order (via, straight, straight, via, ...), same duration and one
    // stream each; the figure is the median of the pairs' ratios (each pair's two runs are
    // seconds apart, so a change in the machine's load mostly falls on both), the medians of
    // each side beside it.
    const viaRuns = [];
    const straightRuns = [];
    const ratios = [];
    for (let k = 0; k < IPERF_ROUNDS; k++) {
      const pair = {};
      for (const side of k % 2 === 0 ? ['via', 'straight'] : ['straight', 'via']) {
        pair[side] = side === 'via' ? await iperf('10.96.0.4', 5201) : await iperf('10.77.0.11', 5201);
      }
      viaRuns.push(pair.via);
      straightRuns.push(pair.straight);
      ratios.push(pair.via / pair.straight);
    }
    const viaVip = med(viaRuns);
    const straight = med(straightRuns);
    const r3 = med(ratios);
    say(`== VIP throughput: iperf3 -t ${IPERF_S}, one stream, ${IPERF_ROUNDS} pairs in ABBA order, server in a backend namespace, 10,000 VIPs present ==`);
    say(table(['what', 'vxnet Gbit/s', 'reference Gbit/s', 'ratio', 'target', 'result'], [
      ['through a VIP vs straight to the backend (median of the pairs\' ratios; medians per side)', f2(viaVip), f2(straight), f2(r3), '>= 0.95', verdict(r3 >= 0.95)],
    ]));
    say(`# iperf3 pairs (via / straight = ratio): ${viaRuns.map((v, i) => `${f2(v)} / ${f2(straightRuns[i])} = ${f2(ratios[i])}`).join('; ')}`);

    // ---- 4. distribution ----
    const tally = (xs) => xs.reduce((m, x) => { m[x] = (m[x] ?? 0) + 1; return m; }, {});
    const eq = tally((await client('10.96.0.1', 80, 3000)).who);
    const shares = ['b1', 'b2', 'b3'].map((b) => (eq[b] ?? 0) / 3000);
    const eqOk = shares.every((s) => s >= 0.30 && s <= 0.37);
    const w = tally((await client('10.96.0.3', 80, 3000)).who);
    const w2 = (w.b2 ?? 0) / 3000;
    const wOk = w2 >= 0.63 && w2 <= 0.70;
    say('== VIP distribution: 3,000 sequential connections ==');
    say(table(['what', 'vxnet', 'reference', 'ratio', 'target', 'result'], [
      ['3 equal backends', shares.map((s) => `${(s * 100).toFixed(1)}%`).join(' / '), '33.3% each', f2(Math.max(...shares) / Math.min(...shares)), 'each 30-37%', verdict(eqOk)],
      ['weights 1:2 (share of weight 2)', `${(w2 * 100).toFixed(1)}%`, '66.7%', f2(w2 / (2 / 3)), '63-70%', verdict(wOk)],
    ]));
    const bad = Object.keys({ ...eq, ...w }).filter((k) => k.startsWith('ERR'));
    if (bad.length) say(`# errors: ${JSON.stringify({ ...eq, ...w })}`);
  } finally {
    await vips.remove().catch(() => undefined);
  }
}

// `--cleanup` (scripts/bench.sh --cleanup): what a killed (SIGKILL) run left: the processes
// inside bnvip-* namespaces (only the bench starts any there), the namespaces (their tables,
// bridges and veths go with them) and the temp dirs.
async function cleanupLeftovers() {
  const names = (await run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]).filter((n) => /^bnvip-/.test(n));
  for (const ns of names) {
    for (const pid of (await run('ip', ['netns', 'pids', ns])).stdout.split('\n').filter(Boolean).map(Number)) {
      try { process.kill(pid, 'SIGKILL'); say(`# cleanup: killed ${pid} in ${ns}`); } catch { /* gone */ }
    }
    await run('ip', ['netns', 'del', ns]);
    say(`# cleanup: removed netns ${ns}`);
  }
  for (const d of readdirSync(tmpdir())) if (/^bnvip-/.test(d)) rmSync(join(tmpdir(), d), { recursive: true, force: true });
}

let rc = 0;
if (process.argv.includes('--cleanup')) {
  rmSync(tmp, { recursive: true, force: true });
  await cleanupLeftovers();
  process.exit(0);
}
try { await main(); } catch (err) { say(`vip bench: ${err instanceof Error ? err.stack : err}`); rc = 1; }
await cleanup();
process.exit(rc);
