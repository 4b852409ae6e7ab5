// vxnet's benchmark (`npm run bench` -> scripts/bench.sh -> this file). A benchmark reports:
// it exits 0 when it ran and every check passed, whatever the figures; non-zero only when
// something is broken (a plugin failed, a check failed) or it was interrupted.
//
//   node bench/bench.mjs            the CNI comparison and the IPAM scale run
//   node bench/bench.mjs --cleanup  removes leftovers of a killed run (the bench's names only)
//
// vxnet is built for the run into the run's temp dir (scripts/build.mjs with VXNET_BUILD_OUT,
// the same build `npm run build` makes), so a concurrent `npm test` or `npm run build`, which
// rebuild dist/ and node_modules/ in place, cannot pull the binaries from under a running
// bench; BENCH_DIST=dist uses an existing build instead.
//
// Env: BENCH_N (netns per round and system, default 200), BENCH_ONLY=cni|ipam,
//      BENCH_ROUNDS (rounds per concurrency, default 2), BENCH_CONC (default "1,8"),
//      BENCH_NODE_N (node -e 0 samples per c=1 round, default N),
//      BENCH_VERIFY_EVERY (check every k-th netns after ADD/DEL, default 1 = all),
//      BENCH_IPAM_SUBNET (default 10.125.0.0/16), BENCH_DIST (a built dist/ to use; default:
//      build one now).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { aggregate, cleanup, runCniBench, systems } from './cni-latency.mjs';
import { Interrupted, f1, f2, intEnv, interrupt, ratio, run, say, summarize, table } from './lib.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const started = performance.now();


let ipamChild;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (interrupt.signal) return;
    interrupt.signal = sig;
    say(`# ${sig}: finishing the operations in flight, then cleaning up`);
    ipamChild?.kill('SIGTERM');
  });
}

// ---- builds --------------------------------------------------------------------------------

/** vxnet's dist/ for this run: BENCH_DIST, or a fresh build into the temp dir. */
async function vxnetDist(tmp) {
  if (process.env.BENCH_DIST) {
    const dist = resolvePath(root, process.env.BENCH_DIST);
    say(`# vxnet: using the existing build ${dist} (BENCH_DIST)`);
    return dist;
  }
  const dist = join(tmp, 'dist');
  const r = await run(process.execPath, [join(root, 'scripts', 'build.mjs')], { env: { ...process.env, VXNET_BUILD_OUT: dist }, timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`building vxnet (scripts/build.mjs) failed:\n${r.stdout}${r.stderr}`);
  say(`# vxnet: built for this run into ${dist} (scripts/build.mjs, VXNET_BUILD_OUT): ${r.stdout.trim()}`);
  return dist;
}

/**
 * bench/ipam-scale.ts bundled the way scripts/build.mjs bundles vxnet's executables (so the
 * store loads dist/native/better_sqlite3.node, as the plugins do, and nothing is read from
 * node_modules once the run started).
 */
async function bundleIpamBench(tmp) {
  const { build } = await import('esbuild');
  const out = join(tmp, 'ipam-scale.cjs');
  await build({
    entryPoints: [join(root, 'bench', 'ipam-scale.ts')], outfile: out, bundle: true, platform: 'node', target: 'node20',
    format: 'cjs', external: ['*.node', 'bindings'], define: { __VXNET_BUNDLED__: 'true' }, logLevel: 'warning',
  });
  return out;
}

// ---- IPAM scale ----------------------------------------------------------------------------

async function runIpamBench(bundle, dist) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bundle], {
      env: { ...process.env, VXNET_DIST: dist }, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
    });
    ipamChild = child;
    let result;
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (l) => { if (l.startsWith('RESULT ')) result = JSON.parse(l.slice(7)); else say(l); });
    createInterface({ input: child.stderr }).on('line', (l) => say(`# ipam-scale stderr: ${l}`));
    child.on('error', reject);
    child.on('close', (code) => {
      ipamChild = undefined;
      if (interrupt.signal) reject(new Interrupted());
      else if (code !== 0 || !result) reject(new Error(`ipam-scale exited ${code}${result ? '' : ' without a result'}`));
      else resolve(result);
    });
  });
}

// ---- report --------------------------------------------------------------------------------

function report(cni, ipam, cfg) {
  const targets = [];
  const target = (ok, text) => targets.push(`${Number.isFinite(ok) || typeof ok === 'boolean' ? (ok ? 'PASS' : 'MISS') : 'n/a '}  ${text}`);
  const kv = [];
  say('');
  say('================================ SUMMARY ================================');
  if (cni) {
    const agg = aggregate(cni.results);
    const get = (sys, c) => agg.get(`${sys}/${c}`);
    const node = summarize(cni.results.node);
    say(`CNI chain latency (ms, nearest-rank) and throughput; N=${cfg.n} netns x ${cfg.rounds} round(s) per system and concurrency, ABBA order`);
    const rows = [];
    const VX = [['vxd', 'vxnet via vxnetd'], ['vx', 'vxnet in-process']];
    for (const c of cfg.concs) {
      const r = get('ref', c);
      if (!r) continue;
      const row = (label, a) => [label, c, f1(a.addS.p50), f1(a.addS.p95), f1(a.delS.p50), f1(a.delS.p95), f1(a.addsPerS), f1(a.delsPerS), f1(a.settledDelsPerS)];
      rows.push(row('bridge+host-local', r));
      kv.push(`ref_c${c}_add_p50=${f1(r.addS.p50)}`, `ref_c${c}_add_p95=${f1(r.addS.p95)}`, `ref_c${c}_del_p50=${f1(r.delS.p50)}`,
        `ref_c${c}_del_p95=${f1(r.delS.p95)}`, `ref_c${c}_adds_s=${f1(r.addsPerS)}`);
      for (const [k, label] of VX) {
        const v = get(k, c);
        if (!v) continue;
        rows.push(row(label, v));
        rows.push([`  ratio to ref`, c, f2(ratio(v.addS.p50, r.addS.p50)), f2(ratio(v.addS.p95, r.addS.p95)), f2(ratio(v.delS.p50, r.delS.p50)),
          f2(ratio(v.delS.p95, r.delS.p95)), f2(ratio(v.addsPerS, r.addsPerS)), f2(ratio(v.delsPerS, r.delsPerS)), f2(ratio(v.settledDelsPerS, r.settledDelsPerS))]);
        kv.push(`${k}_c${c}_add_p50=${f1(v.addS.p50)}`, `${k}_c${c}_add_p95=${f1(v.addS.p95)}`, `${k}_c${c}_del_p50=${f1(v.delS.p50)}`,
          `${k}_c${c}_del_p95=${f1(v.delS.p95)}`, `${k}_c${c}_adds_s=${f1(v.addsPerS)}`);
      }
    }
    say(table(['system', 'c', 'ADD p50', 'ADD p95', 'DEL p50', 'DEL p95', 'adds/s', 'dels/s', 'dels/s settled'], rows));
    say(`node -e 0: p50 ${f1(node.p50)} ms, p95 ${f1(node.p95)} ms, min ${f1(node.min)} ms (n=${node.n}, run next to vxnet's c=1 phases)`);
    const beside = summarize(cni.results.nodeBeside);
    if (beside.n) say(`node -e 0 beside vxnetd's c=1 ADDs (one after each ADD, same moments and containers attached): p50 ${f1(beside.p50)} ms (n=${beside.n})`);
    say('("dels/s settled": until the last veth of the phase is gone; vxnet deletes its host veth after DEL returns, in the background)');
    kv.push(`node_e0_p50=${f1(node.p50)}`);

    const r1 = get('ref', 1), r8 = get('ref', 8);
    for (const [k, label] of VX) {
      const v1 = get(k, 1), v8 = get(k, 8);
      if (v1) {
        const x = ratio(v1.addS.p50, node.p50);
        target(x <= 1.25, `${label}: ADD p50 (c=1) / node -e 0 p50 = ${f1(v1.addS.p50)} / ${f1(node.p50)} = ${f2(x)}  (target <= 1.25)`);
        kv.push(`${k}_add_over_node=${f2(x)}`);
        if (k === 'vxd' && beside.n) {
          const y = ratio(v1.addS.p50, beside.p50);
          say(`  info  ${label}: ADD p50 (c=1) / node -e 0 p50 beside those ADDs = ${f1(v1.addS.p50)} / ${f1(beside.p50)} = ${f2(y)}`);
          kv.push(`node_e0_beside_p50=${f1(beside.p50)}`, `vxd_add_over_node_beside=${f2(y)}`);
        }
      }
      for (const [v, r, c] of [[v1, r1, 1], [v8, r8, 8]]) {
        if (!v || !r) continue;
        target(v.delS.p50 < r.delS.p50, `${label}: DEL p50 (c=${c}) faster than reference: ${f1(v.delS.p50)} vs ${f1(r.delS.p50)} ms, ratio ${f2(ratio(v.delS.p50, r.delS.p50))}  (target < 1)`);
      }
      if (v8 && r8) {
        target(v8.addsPerS >= r8.addsPerS, `${label}: adds/s (c=8) >= reference: ${f1(v8.addsPerS)} vs ${f1(r8.addsPerS)}, ratio ${f2(ratio(v8.addsPerS, r8.addsPerS))}  (target >= 1)`);
      }
    }
  }
  if (ipam) {
    say('');
    say(`IPAM core, every address of ${ipam.subnet} (${ipam.capacity}) allocated then released, embedded store (us/op)`);
    const row = (name, p) => [name, f1(p.first.usPerOp), f1(p.last.usPerOp), f2(p.ratio), f1(p.meanUs), p.totalS.toFixed(1)];
    say(table(['operation', 'first 1000', 'last 1000', 'last/first', 'mean', 'total s'], [row('allocate', ipam.alloc), row('release', ipam.release)]));
    // Allocations fill the pool and releases empty it: "grows with the addresses held" is
    // last/first for allocate and first/last for release. A window of 1000 ops also carries
    // WAL checkpoints and JIT warm-up, which move its mean by up to ~2x on their own.
    const full = { allocate: ipam.alloc.ratio, release: 1 / ipam.release.ratio };
    for (const [name, x] of Object.entries(full)) {
      target(x <= 2, `IPAM ${name} cost does not grow with the addresses held: cost with the pool full / empty = ${f2(x)}  (target <= 2, i.e. flat within noise)`);
    }
    kv.push(`ipam_alloc_first_us=${f1(ipam.alloc.first.usPerOp)}`, `ipam_alloc_last_us=${f1(ipam.alloc.last.usPerOp)}`, `ipam_alloc_ratio=${f2(ipam.alloc.ratio)}`,
      `ipam_release_first_us=${f1(ipam.release.first.usPerOp)}`, `ipam_release_last_us=${f1(ipam.release.last.usPerOp)}`, `ipam_release_ratio=${f2(ipam.release.ratio)}`);
  }
  say('');
  say('Targets (a benchmark reports; a MISS does not fail the run):');
  for (const t of targets) say(`  ${t}`);
  const pass = targets.filter((t) => t.startsWith('PASS')).length;
  const elapsed = (performance.now() - started) / 1000;
  say('');
  say(`SUMMARY vxnet-bench ${cni ? `N=${cfg.n} rounds=${cfg.rounds} ` : ''}${kv.join(' ')} targets_pass=${pass}/${targets.length} checks=ok elapsed_s=${elapsed.toFixed(0)}`);
}

// ---- main ----------------------------------------------------------------------------------

async function main() {
  if (process.getuid?.() !== 0) throw new Error('needs root (netns, bridges, nftables, iptables)');
  const tmp = mkdtempSync(join(tmpdir(), 'bn-vxbench-'));
  try {
    if (process.argv.includes('--cleanup')) {
      await cleanup(systems(root, join(root, 'dist'), tmp));
      // Temp dirs of killed runs (scripts/bench.sh holds the lock: no other run uses one).
      for (const d of readdirSync(tmpdir())) {
        if (/^bn-vxbench-/.test(d) && join(tmpdir(), d) !== tmp) {
          rmSync(join(tmpdir(), d), { recursive: true, force: true });
          say(`# cleanup: removed ${join(tmpdir(), d)}`);
        }
      }
      say('# cleanup done');
      return 0;
    }
    const only = process.env.BENCH_ONLY || 'all';
    if (!['all', 'cni', 'ipam'].includes(only)) throw new Error(`BENCH_ONLY=${only}: must be cni or ipam`);
    const n = intEnv('BENCH_N', 200);
    const cfg = {
      root, tmp, n,
      rounds: intEnv('BENCH_ROUNDS', 2),
      concs: (process.env.BENCH_CONC || '1,8').split(',').map(Number),
      nodeN: intEnv('BENCH_NODE_N', n),
      verifyEvery: intEnv('BENCH_VERIFY_EVERY', 1),
    };
    if (cfg.concs.some((c) => !Number.isInteger(c) || c < 1)) throw new Error(`BENCH_CONC=${process.env.BENCH_CONC}: must be positive integers, comma separated`);
    say(`# vxnet bench ${new Date().toISOString()}  node ${process.version}  ${cpus().length} CPU(s)  loadavg ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    say(`# N=${n} rounds=${cfg.rounds} concurrency=${cfg.concs.join(',')} node_e0_samples=${cfg.nodeN}/round verify_every=${cfg.verifyEvery} only=${only}`);

    const dist = await vxnetDist(tmp);
    const ipamBundle = only !== 'cni' ? await bundleIpamBench(tmp) : undefined;
    let cni;
    let ipam;
    if (only !== 'ipam') {
      for (const f of ['bin/vxnet', 'bin/vxnetctl']) if (!existsSync(join(dist, f))) throw new Error(`${join(dist, f)} is missing: npm run build`);
      for (const f of ['/usr/lib/cni/bridge', '/usr/lib/cni/host-local']) if (!existsSync(f)) throw new Error(`${f} is missing: apt-get install containernetworking-plugins`);
      say('');
      say('== CNI ADD/DEL: vxnet (calls handed to vxnetd, and in-process) vs bridge+host-local (all ipMasq), and node -e 0 ==');
      cni = await runCniBench({ ...cfg, dist });
    }
    if (only !== 'cni') {
      say('');
      say('== IPAM core scale ==');
      ipam = await runIpamBench(ipamBundle, dist);
    }
    report(cni, ipam, cfg);
    return ipam && !ipam.ok ? 1 : 0;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().then((code) => { process.exitCode = code; }, (err) => {
  if (err instanceof Interrupted || interrupt.signal) {
    say(`bench: interrupted (${interrupt.signal}); cleaned up`);
    process.exitCode = interrupt.signal === 'SIGTERM' ? 143 : 130;
  } else {
    say(`bench: FAILED: ${err.message}`);
    process.exitCode = 1;
  }
});
