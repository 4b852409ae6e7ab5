// IPAM core scale: allocates every address of a /16 through the core (ipamAdd, one owner per
// address) on an embedded store in a temp dir, then releases them all (ipamDel), and prints
// the per-operation cost of the first and the last thousand of each: it must not grow with
// the number of addresses held. Checks: as many distinct addresses as the range holds, the
// next ADD fails with PoolExhausted, every DEL releases the address its owner got, and the
// store ends empty.
//
// bench/bench.mjs bundles this file with esbuild (better-sqlite3 external) and runs it; its
// last line is `RESULT {json}`. Env: BENCH_IPAM_SUBNET (default 10.125.0.0/16).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseIpamConf } from '../ipam/config';
import { ipamAdd, ipamDel } from '../ipam/core';
import { setCapacity } from '../ipam/range';
import { openStore } from '../ipam/store';
import type { IpamStore } from '../ipam/store/types';
import { PoolExhausted } from '../lib/errors';

const WINDOW = 1000;
const NETWORK = 'bnscale';
const IFNAME = 'eth0';

let stopping: string | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => { stopping ??= sig; });

interface Window { readonly usPerOp: number; readonly p50: number; readonly p99: number }
interface Phase { readonly n: number; readonly totalS: number; readonly meanUs: number; readonly first: Window; readonly last: Window; readonly ratio: number }

function windowOf(us: Float64Array, from: number, to: number): Window {
  const slice = Array.from(us.subarray(from, to)).sort((a, b) => a - b);
  const total = slice.reduce((a, b) => a + b, 0);
  const at = (p: number): number => slice[Math.min(slice.length - 1, Math.max(0, Math.ceil((p / 100) * slice.length) - 1))];
  return { usPerOp: total / slice.length, p50: at(50), p99: at(99) };
}

function phaseOf(us: Float64Array, totalS: number): Phase {
  const n = us.length;
  const w = Math.min(WINDOW, n);
  const first = windowOf(us, 0, w);
  const last = windowOf(us, n - w, n);
  return { n, totalS, meanUs: (totalS * 1e6) / n, first, last, ratio: last.usPerOp / first.usPerOp };
}

const fmt = (x: number): string => x.toFixed(1);
const line = (name: string, p: Phase): string =>
  `IPAM ${name} n=${p.n} total_s=${p.totalS.toFixed(2)} mean_us=${fmt(p.meanUs)}` +
  ` first${WINDOW}: ${fmt(p.first.usPerOp)} us/op (p50 ${fmt(p.first.p50)}, p99 ${fmt(p.first.p99)})` +
  ` last${WINDOW}: ${fmt(p.last.usPerOp)} us/op (p50 ${fmt(p.last.p50)}, p99 ${fmt(p.last.p99)})` +
  ` last/first=${p.ratio.toFixed(2)}`;

function checkStop(): void {
  if (stopping) throw new Error(`interrupted by ${stopping}`);
}

async function main(): Promise<void> {
  const subnet = process.env.BENCH_IPAM_SUBNET || '10.125.0.0/16';
  const conf = parseIpamConf(NETWORK, { type: 'vxnet-ipam', ranges: [[{ subnet }]] });
  const capacity = Number(setCapacity(conf.rangeSets[0]));
  const dir = mkdtempSync(join(tmpdir(), 'bn-vxbench-ipam-'));
  let store: IpamStore | undefined;
  try {
    store = openStore({ dataDir: dir });
    console.log(`# ipam-scale: subnet ${subnet}, ${capacity} allocatable addresses, embedded store in ${dir}, one owner (container id, ${IFNAME}) per address`);
    const owner = (i: number) => ({ network: NETWORK, containerId: `bnscale-${i}`, ifname: IFNAME, runtime: 'cni' });

    const addresses: string[] = new Array(capacity);
    const allocUs = new Float64Array(capacity);
    const t0 = performance.now();
    for (let i = 0; i < capacity; i++) {
      checkStop();
      const s = performance.now();
      const r = await ipamAdd(store, conf, owner(i));
      allocUs[i] = (performance.now() - s) * 1000;
      addresses[i] = r.allocations[0].address;
    }
    const alloc = phaseOf(allocUs, (performance.now() - t0) / 1000);
    console.log(line('alloc  ', alloc));

    const problems: string[] = [];
    const distinct = new Set(addresses).size;
    if (distinct !== capacity) problems.push(`${capacity} allocations gave ${distinct} distinct addresses`);
    let exhausted = false;
    try { await ipamAdd(store, conf, owner(capacity)); } catch (err) { exhausted = err instanceof PoolExhausted; }
    if (!exhausted) problems.push('the ADD after the last address did not fail with PoolExhausted');
    const held = await store.view((tx) => tx.countByNetwork(NETWORK));
    if (held !== capacity) problems.push(`the store holds ${held} allocations, expected ${capacity}`);

    const releaseUs = new Float64Array(capacity);
    const t1 = performance.now();
    for (let i = 0; i < capacity; i++) {
      checkStop();
      const s = performance.now();
      const released = await ipamDel(store, NETWORK, { containerId: `bnscale-${i}`, ifname: IFNAME });
      releaseUs[i] = (performance.now() - s) * 1000;
      if (released.length !== 1 || released[0].address !== addresses[i]) {
        if (problems.length < 8) problems.push(`DEL bnscale-${i} released ${JSON.stringify(released.map((a) => a.address))}, expected ${addresses[i]}`);
      }
    }
    const release = phaseOf(releaseUs, (performance.now() - t1) / 1000);
    console.log(line('release', release));
    const left = await store.view((tx) => tx.countByNetwork(NETWORK));
    if (left !== 0) problems.push(`${left} allocations left after releasing all`);
    console.log(`# ipam-scale checks: distinct=${distinct}/${capacity} exhausted_after_last=${exhausted} left_after_release=${left} -> ${problems.length ? 'FAIL' : 'ok'}`);
    for (const p of problems) console.log(`# ipam-scale problem: ${p}`);
    console.log(`RESULT ${JSON.stringify({ subnet, capacity, alloc, release, ok: problems.length === 0 })}`);
    if (problems.length) process.exitCode = 1;
  } finally {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`ipam-scale: ${(err as Error).message}`);
  process.exitCode = stopping ? 130 : 1;
});
