// Helper of bench/overlay.mjs, which bundles it with esbuild as scripts/build.mjs bundles vxnet's
// executables (native addons and etcd's .proto files from a copy of dist/ in the run's temp dir):
// drives vxnet's VtepProgrammer (overlay/apply.ts) and OverlayAgent inside the bench's namespaces.
//
//   overlay-vtep.ts program DEV VNI NS,ID,UNDERLAY,BLOCK ...   each host syncs all the others
//   overlay-vtep.ts scale DEV VNI NS UNDERLAY BLOCK N          one host: time to program N peers
//   overlay-vtep.ts converge ENDPOINT N1,N2 NS1 NS2 NS3 NS4     etcd convergence (as scale.test.ts)
// Prints one line `RESULT {json}`. Env (diagnosis): BNOV_DEBUG=1 prints a listener's exception
// before it propagates; BNOV_NO_MONITOR=1 runs the agents without kernel notifications.
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Cidr, Ip, formatCidr, parseCidr, parseIp } from '../ipam/addr';
import { OverlayAgent, SyncedEvent, WatchEvent } from '../overlay/agent';
import type { SyncReport } from '../overlay/apply';
import { encodeBlock, encodeHost, encodeMember, keys } from '../overlay/records';
import { EtcdClient, createEtcd } from '../etcd/client';
import type { TxnOp } from '../etcd/txn';
import { createLogger } from '../lib/log';
import { openNetns } from '../net/netns';
import { Rtnl } from '../net/rtnl';
import { VtepProgrammer } from '../overlay/apply';
import { Peer, parseOverlayNetwork, vtepMacFor, vxlanDeviceName } from '../overlay/plan';

// BNOV_DEBUG=1: a listener's exception is printed with its stack before it propagates (thrown
// into a native callback, it would abort the process with only "Error in native callback").
if (process.env.BNOV_DEBUG === '1') {
  const emit = EventEmitter.prototype.emit;
  EventEmitter.prototype.emit = function (this: EventEmitter, event: string | symbol, ...args: unknown[]): boolean {
    try { return emit.call(this, event, ...args); } catch (err) {
      process.stderr.write(`overlay-vtep: listener of ${String(event)} threw: ${err instanceof Error ? err.stack : String(err)}\n`);
      throw err;
    }
  };
}

const ip = (s: string): Ip => parseIp(s) as Ip;
const cidr = (s: string): Cidr => parseCidr(s) as Cidr;
const log = createLogger('bench-overlay', 'error');

function open(ns: string): Rtnl {
  const h = openNetns(`/run/netns/${ns}`);
  try { return Rtnl.open(h); } finally { h.close(); }
}

async function program(dev: string, vni: number, specs: string[]): Promise<unknown> {
  const hosts = specs.map((s) => {
    const [ns, id, underlay, block] = s.split(',');
    const peer: Peer = { id, underlay: ip(underlay), mac: vtepMacFor(id, vni), blocks: [cidr(block)] };
    return { ns, peer };
  });
  const peers = hosts.map((h) => h.peer);
  const out = [];
  for (const h of hosts) {
    const rtnl = open(h.ns);
    try {
      const p = new VtepProgrammer(rtnl, { hostId: h.peer.id, vni, device: dev, underlay: h.peer.underlay, mac: h.peer.mac, blocks: h.peer.blocks }, log);
      const r = await p.sync(peers);
      out.push({ ns: h.ns, device: r.device, mtu: r.mtu, set: r.set, ms: r.ms });
    } finally { rtnl.close(); }
  }
  return out;
}

async function scale(dev: string, vni: number, ns: string, underlay: string, block: string, n: number): Promise<unknown> {
  const self: Peer = { id: 'bn-self', underlay: ip(underlay), mac: vtepMacFor('bn-self', vni), blocks: [cidr(block)] };
  // Simulated peers: underlays 10.79.x.y, blocks 10.(200+i>>8).(i&255).0/24 (as scale.test.ts).
  const sims: Peer[] = Array.from({ length: n }, (_, i) => ({
    id: `bn-sim-${i}`, underlay: ip(`10.79.${(i + 1) >> 8}.${(i + 1) & 255}`), mac: vtepMacFor(`bn-sim-${i}`, vni),
    blocks: [cidr(`10.${200 + (i >> 8)}.${i & 255}.0/24`)],
  }));
  const rtnl = open(ns);
  try {
    const p = new VtepProgrammer(rtnl, { hostId: self.id, vni, device: dev, underlay: self.underlay, mac: self.mac, blocks: self.blocks }, log);
    const t0 = process.hrtime.bigint();
    const first = await p.sync([self, ...sims]);
    const firstMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const routes = (await rtnl.routes(4)).filter((r) => r.oif === first.index && r.gw !== undefined).length;
    const second = await p.sync([self, ...sims]);
    const third = await p.sync([self, ...sims.slice(1)]);
    return { n, firstMs, firstSteps: first.steps, set: first.set, routes, noopMs: second.ms, noopSet: second.set + second.deleted, oneLeftMs: third.ms, oneLeftDeleted: third.deleted };
  } finally { rtnl.close(); }
}

const hr = (): number => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Three real agents (host namespaces NS1..NS3, netlink inside them, etcd client here), then
 * simulated hosts registered straight into etcd up to each N (member, host and block records,
 * the first two under one lease, as an agent writes them; 32 hosts per transaction). At each
 * N: one more simulated host registers (3 times), and the time from its registration (the
 * transaction sent) to its route on all 3 real hosts is measured, with the etcd requests the
 * join cost (etcd's own counters, every client); at the largest N a rolling restart of 100
 * simulated hosts, then a real agent joins in NS4, timed from start() to registered, to its
 * route on the 3 others, and to all peers programmed on it. A single join's route is checked
 * by a FIB lookup per try (every ms; a dump of 5,000 routes on 3 hosts took longer than the
 * join itself), the bulk and the rolling restart by dumps.
 */
async function converge(endpoint: string, sizes: number[], nss: string[]): Promise<unknown> {
  const net = parseOverlayNetwork({ name: 'bn-ovs', vni: 4545, subnets: ['10.64.0.0/10', 'fd37::/48'], blockPrefix: 24, blockPrefix6: 64 });
  const dev = vxlanDeviceName(net.vni);
  const prefix = `/bnov-${process.pid}-${Date.now()}/overlay/`;
  const localRoot = fs.mkdtempSync(path.join(process.env.BNOV_TMP || os.tmpdir(), 'bnov-local-'));
  const cleanups: (() => Promise<void> | void)[] = [() => fs.rmSync(localRoot, { recursive: true, force: true })];
  const pollers = nss.map((ns) => open(ns));
  cleanups.push(() => { for (const p of pollers) p.close(); });
  // No forced gc(): collecting on demand here aborted the process in a native finalizer. The
  // heap in use is taken after the cluster settled; an upper bound of what the agents hold.
  const gc = undefined;
  const heap = (): number => process.memoryUsage().heapUsed;
  const startAgent = async (i: number): Promise<OverlayAgent> => {
    const client = createEtcd([endpoint]);
    const handle = openNetns(`/run/netns/${nss[i]}`);
    const rtnl = Rtnl.open(handle);
    const agent = new OverlayAgent({
      hostId: `bn-host-${i + 1}`, underlay: ip(`10.76.0.${i + 1}`), networks: [net], ttlSeconds: 10, graceMs: 60_000, prefix, retryMs: 200,
      localDir: path.join(localRoot, `h${i + 1}`),
    }, { etcd: client, rtnl, log, ...(process.env.BNOV_NO_MONITOR === '1' ? {} : { monitor: (fn) => Rtnl.monitor(handle, fn) }) });
    cleanups.push(async () => { await agent.stop({ revoke: true }); client.close(); rtnl.close(); handle.close(); });
    await agent.start();
    return agent;
  };

  // Each real host's IPv4 routes on the VXLAN device, followed by notifications; per route the
  // times it was last deleted and added (for the rolling restart's gaps).
  interface Tracked { dsts: Set<string>; index: number | undefined; stale: boolean; deletedAt: Map<string, number>; gaps: Array<{ dst: string; from: number; to: number }> }
  const tracked: Tracked[] = nss.map(() => ({ dsts: new Set(), index: undefined, stale: true, deletedAt: new Map(), gaps: [] }));
  // Followed by dumps (every 20 ms while waiting): netlink notifications would be cheaper, but a
  // monitor socket in this process was seen to stop delivering, or abort the process, under the
  // bursts of thousands of entries (to be investigated; see the report of issue 17).
  // One dump at a time per host (the kernel refuses a second dump on a socket while one runs).
  const busy: Array<Promise<unknown>> = nss.map(() => Promise.resolve());
  const refresh = (i: number): Promise<Set<string>> => {
    const p = busy[i].then(() => refreshNow(i));
    busy[i] = p.catch(() => undefined);
    return p;
  };
  const refreshNow = async (i: number): Promise<Set<string>> => {
    const tr = tracked[i];
    if (!tr.stale) return tr.dsts;
    tr.stale = false;
    const l = (await pollers[i].links()).find((x) => x.name === dev);
    tr.index = l?.index;
    const next: Set<string> = l ? new Set((await pollers[i].routes(4)).filter((r) => r.oif === l.index && r.gw !== undefined).map((r) => formatCidr(r.dst))) : new Set();
    // Gaps between two snapshots: a route gone since the last one, and one back.
    const now = hr();
    for (const d of tr.dsts) if (!next.has(d) && !tr.deletedAt.has(d)) tr.deletedAt.set(d, now);
    for (const [d, from] of tr.deletedAt) if (next.has(d)) { tr.gaps.push({ dst: d, from, to: now }); tr.deletedAt.delete(d); }
    tr.dsts = next;
    if (!l) tr.stale = true;
    return tr.dsts;
  };
  const waitAll = async (hosts: number[], pred: (s: Set<string>) => boolean, timeoutMs: number, what: string): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    const pending = new Set(hosts);
    // Notifications can be lost (a burst overflows the socket, which may then stay quiet): a
    // dump every 500 ms while waiting guards against a stale set.
    while (pending.size > 0) {
      for (const i of pending) tracked[i].stale = true;
      for (const i of [...pending]) if (pred(await refresh(i))) pending.delete(i);
      if (pending.size === 0) break;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} on hosts ${[...pending].map((i) => i + 1).join(',')}`);
      await sleep(20);
    }
  };

  /** Waits for a route to `block` through the VXLAN device on each host: a FIB lookup per try (no dump), every ms. */
  const waitRoute = async (hosts: number[], block: string, timeoutMs: number): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    const b = cidr(block);
    const target: Ip = { family: b.ip.family, value: b.ip.value + 2n };
    const pending = new Set(hosts);
    while (pending.size > 0) {
      for (const i of [...pending]) {
        if (tracked[i].index === undefined) await refresh(i);
        const r = await pollers[i].routeTo(target);
        if (r && r.oif === tracked[i].index && r.gw !== undefined) pending.delete(i);
      }
      if (pending.size === 0) break;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for the route to ${block} on hosts ${[...pending].map((i) => i + 1).join(',')}`);
      await sleep(1);
    }
  };

  /** etcd's count of gRPC requests started, every client (its /metrics). */
  const etcdRequests = async (): Promise<Record<string, number>> => {
    const text = await (await fetch(`${endpoint}/metrics`)).text();
    const out: Record<string, number> = {};
    for (const m of text.matchAll(/^grpc_server_started_total\{[^}]*grpc_method="(\w+)"[^}]*grpc_type="unary"[^}]*\} (\d+)/gm)) out[m[1]] = (out[m[1]] ?? 0) + Number(m[2]);
    return out;
  };
  const delta = (a: Record<string, number>, b: Record<string, number>): Record<string, number> =>
    Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - (a[k] ?? 0)]).filter(([, v]) => (v as number) > 0));

  const client = createEtcd([endpoint]);
  cleanups.push(() => client.close());
  const ec = new EtcdClient(client);
  const k = keys(prefix);
  const lease = client.lease(120);
  try {
    const heap0 = heap();
    const agents = [await startAgent(0), await startAgent(1), await startAgent(2)];
    /** Full reconciliations of the 3 real agents by reason (after start-up). */
    const fullReasons = new Map<string, number>();
    // Per-step timing of the real agents: when each watch event arrived, and every sync's steps.
    const trace: Array<{ events: Array<{ t: number; id: string }>; syncs: Array<{ t: number; report: SyncReport }> }> = agents.map(() => ({ events: [], syncs: [] }));
    agents.forEach((a, i) => {
      a.on('watchEvent', (e: WatchEvent) => trace[i].events.push({ t: hr(), id: e.id }));
      a.on('synced', (e: SyncedEvent) => {
        trace[i].syncs.push({ t: hr(), report: e.report });
        if (e.report.full) { const r = (e.reason ?? '?').replace(/ [0-9a-f:.\/]+.*$/, ''); fullReasons.set(r, (fullReasons.get(r) ?? 0) + 1); }
      });
    });
    /** What the 3 agents did for one join between t0 and t1: watch delivery, syncs, their steps (means per agent). */
    const profile = (id: string, t0: number, t1: number): Record<string, number> => {
      const out: Record<string, number> = { deliverMs: 0, syncs: 0, fullSyncs: 0, syncMs: 0 };
      for (const tr of trace) {
        const ev = tr.events.find((e) => e.id === id && e.t >= t0);
        out.deliverMs += ev ? (ev.t - t0) / trace.length : 0;
        const syncs = tr.syncs.filter((x) => x.t >= t0 && x.t <= t1 + 50);
        out.syncs += syncs.length / trace.length;
        for (const x of syncs) {
          if (x.report.full) out.fullSyncs += 1 / trace.length;
          out.syncMs += x.report.ms / trace.length;
          for (const [key, v] of Object.entries(x.report.steps ?? {})) out[key] = (out[key] ?? 0) + v / trace.length;
        }
        tr.events.length = 0;
        tr.syncs.length = 0;
      }
      for (const key of Object.keys(out)) out[key] = Math.round(out[key] * 100) / 100;
      return out;
    };
    await waitAll([0, 1, 2], (x) => x.size === 2, 10_000, '2 peers');
    const leaseId = await lease.grant();
    let sims = 0;
    const sim = (n: number): { id: string; underlay: Ip; block: Cidr } => {
      const b = 100 + n;
      return { id: `bn-sim-${n}`, underlay: ip(`10.75.${n >> 8}.${n & 255}`), block: cidr(`10.${64 + (b >> 8)}.${b & 255}.0/24`) };
    };
    const memberOf = (x: { id: string; underlay: Ip; block: Cidr }): string => encodeMember({ underlay: x.underlay, mac: vtepMacFor(x.id, net.vni), blocks: [x.block] });
    /** Simulated hosts from..to-1: 32 per transaction (96 operations, under etcd's 128), 8 transactions in flight. */
    const register = async (from: number, to: number): Promise<string[]> => {
      const txns: TxnOp[][] = [];
      const blocks: string[] = [];
      for (let i = from; i < to; i += 32) {
        const ops: TxnOp[] = [];
        for (let n = i; n < Math.min(i + 32, to); n++) {
          const x = sim(n);
          blocks.push(formatCidr(x.block));
          ops.push({ put: k.block(net.name, x.block), value: encodeBlock({ block: x.block, hostId: x.id, since: Date.now() }) });
          ops.push({ put: k.host(x.id), value: encodeHost({ id: x.id, underlay: x.underlay, since: Date.now(), networks: [net.name] }), lease: leaseId });
          ops.push({ put: k.member(net.name, x.id), value: memberOf(x), lease: leaseId });
        }
        txns.push(ops);
      }
      for (let i = 0; i < txns.length; i += 8) await Promise.all(txns.slice(i, i + 8).map((ops) => ec.txn('register simulated hosts', { if: [], then: ops })));
      return blocks;
    };
    const out: Record<string, unknown>[] = [];
    for (const n of sizes) {
      const t0 = Date.now();
      if (n > sims) await register(sims, n);
      const registered = Date.now();
      sims = Math.max(sims, n);
      await waitAll([0, 1, 2], (x) => x.size >= sims + 2, 60_000, `${sims + 2} peers`);
      const bulkMs = Date.now() - registered;
      const heapPerAgent = (heap() - heap0) / 3;
      const joins: number[] = [];
      const profiles: Record<string, number>[] = [];
      const requests: Record<string, number>[] = [];
      for (const tr of trace) { tr.events.length = 0; tr.syncs.length = 0; }
      for (let r = 0; r < 3; r++) {
        const id = `bn-sim-${sims}`;
        const before = await etcdRequests();
        const t1 = hr();
        const start = process.hrtime.bigint();
        const [block] = await register(sims, sims + 1);
        sims += 1;
        await waitRoute([0, 1, 2], block, 10_000);
        joins.push(Number(process.hrtime.bigint() - start) / 1e6);
        profiles.push(profile(id, t1, hr()));
        // Settle: the agents' reactions to the join (none expected beyond the watch) are counted too.
        await sleep(300);
        requests.push(delta(before, await etcdRequests()));
      }
      out.push({ n, registerMs: registered - t0, bulkMs, joins, profiles, requests, heapPerAgentMB: Math.round(heapPerAgent / 1e5) / 10 });
    }

    // A rolling restart of 100 simulated hosts: each one's records deleted (its lease gone, as a
    // stopped host's are) and written again ABSENT ms later, one every STAGGER ms. On every real
    // host: the route of a restarted host may be missing while it is away (no longer), no other
    // route may go, and all are right soon after the last one is back.
    const ROLL = Math.min(100, sims);
    const ABSENT = 200;
    const STAGGER = 50;
    for (const tr of tracked) { tr.gaps.length = 0; tr.deletedAt.clear(); }
    const away = new Map<string, { from: number; to: number }>();
    fullReasons.clear();
    const rollStart = hr();
    let rolling = true;
    // Snapshots of the 3 real hosts' routes all along (a gap shorter than a dump's interval is not seen).
    const watcher = (async () => {
      while (rolling) {
        for (const i of [0, 1, 2]) { tracked[i].stale = true; await refresh(i); }
        await sleep(10);
      }
    })();
    await Promise.all(Array.from({ length: ROLL }, async (_, j) => {
      const x = sim(Math.floor((j * sims) / ROLL));
      await sleep(j * STAGGER);
      await ec.txn('stop a simulated host', { if: [], then: [{ delete: k.member(net.name, x.id) }, { delete: k.host(x.id) }] });
      const from = hr();
      await sleep(ABSENT);
      await ec.txn('start a simulated host', { if: [], then: [
        { put: k.host(x.id), value: encodeHost({ id: x.id, underlay: x.underlay, since: Date.now(), networks: [net.name] }), lease: leaseId },
        { put: k.member(net.name, x.id), value: memberOf(x), lease: leaseId },
      ] });
      away.set(formatCidr(x.block), { from, to: hr() });
    }));
    const lastBack = hr();
    const expected = sims + 2;
    let rollProblem = '';
    try {
      await waitAll([0, 1, 2], (x) => x.size === expected && [...away.keys()].every((b) => x.has(b)), 10_000, 'every route back after the rolling restart');
    } catch {
      rollProblem = [0, 1, 2].map((i) => `host ${i + 1}: ${tracked[i].dsts.size} routes of ${expected}, missing ${[...away.keys()].filter((b) => !tracked[i].dsts.has(b)).slice(0, 5).join(' ')}`).join('; ');
    }
    const rollSettleMs = rollProblem ? Number.NaN : hr() - lastBack;
    rolling = false;
    await watcher;
    let worstExcess = 0;
    let foreignGaps = 0;
    let gaps = 0;
    for (const tr of tracked.slice(0, 3)) {
      for (const g of tr.gaps) {
        gaps++;
        const a = away.get(g.dst);
        if (!a) { foreignGaps++; continue; }
        // Missing longer than the host's own absence: the route came back after the host did.
        worstExcess = Math.max(worstExcess, g.to - a.to);
      }
    }
    const rollFull = Object.fromEntries(fullReasons);
    fullReasons.clear();
    const roll = { fullSyncs: rollFull, hosts: ROLL, absentMs: ABSENT, staggerMs: STAGGER, durationMs: Math.round(lastBack - rollStart), settleMs: Math.round(rollSettleMs * 10) / 10, gaps, foreignGaps, worstExcessMs: Math.round(worstExcess * 10) / 10, problem: rollProblem };

    // A real host joining the largest cluster.
    const before = await etcdRequests();
    const start = process.hrtime.bigint();
    const a4 = await startAgent(3);
    const registeredMs = Number(process.hrtime.bigint() - start) / 1e6;
    const b4 = formatCidr(a4.blocks(net.name)[0]);
    const t1 = process.hrtime.bigint();
    await waitRoute([0, 1, 2], b4, 10_000);
    const realJoinMs = Number(process.hrtime.bigint() - t1) / 1e6;
    const peers = sims + 3;
    const t2 = process.hrtime.bigint();
    await waitAll([3], (x) => x.size >= peers, 30_000, `host-4 programs ${peers} peers`);
    const realProgramMs = registeredMs + Number(process.hrtime.bigint() - t2) / 1e6;
    const startRequests = delta(before, await etcdRequests());
    void agents;
    return { sizes: out, rolling: roll, real: { startMs: registeredMs, joinMs: realJoinMs, peers, programAllMs: realProgramMs, requests: startRequests, fullSyncsOthers: Object.fromEntries(fullReasons) }, gc: gc !== undefined };
  } finally {
    try { await lease.revoke(); } catch { /* etcd gone */ }
    for (const c of cleanups.reverse()) { try { await c(); } catch { /* best effort */ } }
  }
}

void (async () => {
  const [mode, dev, vniS, ...rest] = process.argv.slice(2);
  const vni = Number(vniS);
  const r = mode === 'program' ? await program(dev, vni, rest)
    : mode === 'scale' ? await scale(dev, vni, rest[0], rest[1], rest[2], Number(rest[3]))
      : mode === 'converge' ? await converge(dev, vniS.split(',').map(Number), rest)
      : (() => { throw new Error(`usage: overlay-vtep.ts program|scale ...`); })();
  process.stdout.write(`RESULT ${JSON.stringify(r)}\n`, () => process.exit(0));
})().catch((err: unknown) => {
  process.stderr.write(`overlay-vtep: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
