// Helper of bench/overlay.mjs, which bundles it with esbuild as scripts/build.mjs bundles vxnet's
// executables (native addons and etcd's .proto files from a copy of dist/ in the run's temp dir):
// drives vxnet's VtepProgrammer (overlay/apply.ts) and OverlayAgent inside the bench's namespaces.
//
//   overlay-vtep.ts program DEV VNI NS,ID,UNDERLAY,BLOCK ...   each host syncs all the others
//   overlay-vtep.ts scale DEV VNI NS UNDERLAY BLOCK N          one host: time to program N peers
//   overlay-vtep.ts converge ENDPOINT N1,N2 NS1 NS2 NS3 NS4     etcd convergence (as scale.test.ts)
// Prints one line `RESULT {json}`.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Cidr, Ip, formatCidr, parseCidr, parseIp } from '../ipam/addr';
import { OverlayAgent, SyncedEvent, WatchEvent } from '../overlay/agent';
import type { SyncReport } from '../overlay/apply';
import { encodeBlock, encodeHost, encodeMember, keys } from '../overlay/records';
import { createEtcd } from '../etcd/client';
import { createLogger } from '../lib/log';
import { openNetns } from '../net/netns';
import { Rtnl } from '../net/rtnl';
import { VtepProgrammer } from '../overlay/apply';
import { Peer, parseOverlayNetwork, vtepMacFor, vxlanDeviceName } from '../overlay/plan';

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
    return { n, firstMs, set: first.set, routes, noopMs: second.ms, noopSet: second.set + second.deleted, oneLeftMs: third.ms, oneLeftDeleted: third.deleted };
  } finally { rtnl.close(); }
}

const hr = (): number => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Three real agents (host namespaces NS1..NS3, netlink inside them, etcd client here), then
 * simulated hosts registered straight into etcd up to each N (member, host and block records
 * under one lease, as an agent writes them). At each N: one more simulated host registers
 * (3 times), and the time from its registration (the put acknowledged) to its route on all 3
 * real hosts is measured; at the largest N a real agent joins in NS4, timed from start()
 * returning (registered) to its route on the 3 others. Routes are polled every 2 ms over netlink.
 */
async function converge(endpoint: string, sizes: number[], nss: string[]): Promise<unknown> {
  const net = parseOverlayNetwork({ name: 'bn-ovs', vni: 4545, subnets: ['10.224.0.0/12', 'fd37::/48'], blockPrefix: 24, blockPrefix6: 64 });
  const dev = vxlanDeviceName(net.vni);
  const prefix = `/bnov-${process.pid}-${Date.now()}/overlay/`;
  const localRoot = fs.mkdtempSync(path.join(process.env.BNOV_TMP || os.tmpdir(), 'bnov-local-'));
  const cleanups: (() => Promise<void> | void)[] = [() => fs.rmSync(localRoot, { recursive: true, force: true })];
  const pollers = nss.map((ns) => open(ns));
  cleanups.push(() => { for (const p of pollers) p.close(); });
  const startAgent = async (i: number): Promise<OverlayAgent> => {
    const client = createEtcd([endpoint]);
    const handle = openNetns(`/run/netns/${nss[i]}`);
    const rtnl = Rtnl.open(handle);
    const agent = new OverlayAgent({
      hostId: `bn-host-${i + 1}`, underlay: ip(`10.76.0.${i + 1}`), networks: [net], ttlSeconds: 10, graceMs: 60_000, prefix, retryMs: 200,
      localDir: path.join(localRoot, `h${i + 1}`),
    }, { etcd: client, rtnl, log, monitor: (fn) => Rtnl.monitor(handle, fn) });
    cleanups.push(async () => { await agent.stop({ revoke: true }); client.close(); rtnl.close(); handle.close(); });
    await agent.start();
    return agent;
  };
  /** Destinations of the IPv4 routes on the VXLAN device in real host i. */
  const routeDsts = async (i: number): Promise<Set<string>> => {
    const links = await pollers[i].links();
    const l = links.find((x) => x.name === dev);
    if (!l) return new Set();
    return new Set((await pollers[i].routes(4)).filter((r) => r.oif === l.index && r.gw !== undefined).map((r) => formatCidr(r.dst)));
  };
  const waitAll = async (hosts: number[], pred: (s: Set<string>) => boolean, timeoutMs: number, what: string): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    const pending = new Set(hosts);
    while (pending.size > 0) {
      for (const i of [...pending]) if (pred(await routeDsts(i))) pending.delete(i);
      if (pending.size === 0) break;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} on hosts ${[...pending].map((i) => i + 1).join(',')}`);
      await sleep(2);
    }
  };
  const client = createEtcd([endpoint]);
  cleanups.push(() => client.close());
  const k = keys(prefix);
  const lease = client.lease(60);
  try {
    const agents = [await startAgent(0), await startAgent(1), await startAgent(2)];
    // Per-step timing of the real agents: when each watch event arrived, and every sync's steps.
    const trace: Array<{ events: Array<{ t: number; id: string }>; syncs: Array<{ t: number; report: SyncReport }> }> = agents.map(() => ({ events: [], syncs: [] }));
    agents.forEach((a, i) => {
      a.on('watchEvent', (e: WatchEvent) => trace[i].events.push({ t: hr(), id: e.id }));
      a.on('synced', (e: SyncedEvent) => trace[i].syncs.push({ t: hr(), report: e.report }));
    });
    /** What the 3 agents did for one join between t0 and t1: watch delivery, syncs, their steps (means per agent). */
    const profile = (id: string, t0: number, t1: number): Record<string, number> => {
      const out: Record<string, number> = { deliverMs: 0, syncs: 0, syncMs: 0 };
      for (const tr of trace) {
        const ev = tr.events.find((e) => e.id === id && e.t >= t0);
        out.deliverMs += ev ? (ev.t - t0) / trace.length : 0;
        const syncs = tr.syncs.filter((s) => s.t >= t0 && s.t <= t1 + 50);
        out.syncs += syncs.length / trace.length;
        for (const s of syncs) {
          out.syncMs += s.report.ms / trace.length;
          for (const [k, v] of Object.entries(s.report.steps ?? {})) out[k] = (out[k] ?? 0) + v / trace.length;
        }
        tr.events.length = 0;
        tr.syncs.length = 0;
      }
      for (const k of Object.keys(out)) out[k] = Math.round(out[k] * 10) / 10;
      return out;
    };
    await waitAll([0, 1, 2], (s) => s.size === 2, 10_000, '2 peers');
    await lease.grant();
    let sims = 0;
    const register = async (from: number, to: number): Promise<string[]> => {
      const blocks: string[] = [];
      for (let i = from; i < to; i += 64) {
        await Promise.all(Array.from({ length: Math.min(64, to - i) }, (_, j) => {
          const n = i + j;
          const b = 100 + n;
          const s = { id: `bn-sim-${n}`, underlay: ip(`10.75.${n >> 8}.${n & 255}`), block: cidr(`10.${224 + (b >> 8)}.${b & 255}.0/24`) };
          blocks.push(formatCidr(s.block));
          return Promise.all([
            client.put(k.block(net.name, s.block)).value(encodeBlock({ block: s.block, hostId: s.id, since: Date.now() })).exec(),
            lease.put(k.host(s.id)).value(encodeHost({ id: s.id, underlay: s.underlay, since: Date.now(), networks: [net.name] })).exec(),
            lease.put(k.member(net.name, s.id)).value(encodeMember({ underlay: s.underlay, mac: vtepMacFor(s.id, net.vni), blocks: [s.block] })).exec(),
          ]);
        }));
      }
      return blocks;
    };
    const out: Record<string, unknown>[] = [];
    for (const n of sizes) {
      const t0 = Date.now();
      if (n > sims) await register(sims, n);
      const registered = Date.now();
      sims = Math.max(sims, n);
      await waitAll([0, 1, 2], (s) => s.size >= sims + 2, 30_000, `${sims + 2} peers`);
      const bulkMs = Date.now() - registered;
      const joins: number[] = [];
      const profiles: Record<string, number>[] = [];
      for (const tr of trace) { tr.events.length = 0; tr.syncs.length = 0; }
      for (let r = 0; r < 3; r++) {
        const id = `bn-sim-${sims}`;
        const [block] = await register(sims, sims + 1);
        const start = process.hrtime.bigint();
        const t0 = hr();
        sims += 1;
        await waitAll([0, 1, 2], (s) => s.has(block), 10_000, `route to ${block}`);
        joins.push(Number(process.hrtime.bigint() - start) / 1e6);
        profiles.push(profile(id, t0, hr()));
      }
      out.push({ n, registerMs: registered - t0, bulkMs, joins, profiles });
    }
    // A real host joining the largest cluster.
    const start = process.hrtime.bigint();
    const a4 = await startAgent(3);
    const registeredMs = Number(process.hrtime.bigint() - start) / 1e6;
    const b4 = formatCidr(a4.blocks(net.name)[0]);
    const t1 = process.hrtime.bigint();
    await waitAll([0, 1, 2], (s) => s.has(b4), 10_000, `route to host-4 ${b4}`);
    const realJoinMs = Number(process.hrtime.bigint() - t1) / 1e6;
    const peers = sims + 3;
    const t2 = process.hrtime.bigint();
    await waitAll([3], (s) => s.size >= peers, 30_000, `host-4 programs ${peers} peers`);
    const realProgramMs = registeredMs + Number(process.hrtime.bigint() - t2) / 1e6;
    void agents;
    return { sizes: out, real: { startMs: registeredMs, joinMs: realJoinMs, peers, programAllMs: realProgramMs } };
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
