// Helper of bench/overlay.mjs (run from source through ts-node, as the tests run): drives
// vxnet's VtepProgrammer (overlay/apply.ts) inside the bench's host namespaces.
//
//   overlay-vtep.ts program DEV VNI NS:ID:UNDERLAY:BLOCK ...   each host syncs all the others
//   overlay-vtep.ts scale DEV VNI NS UNDERLAY BLOCK N          one host: time to program N peers
// Prints one line `RESULT {json}`.
import { Cidr, Ip, parseCidr, parseIp } from '../ipam/addr';
import { createLogger } from '../lib/log';
import { openNetns } from '../net/netns';
import { Rtnl } from '../net/rtnl';
import { VtepProgrammer } from '../overlay/apply';
import { Peer, vtepMacFor } from '../overlay/plan';

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

void (async () => {
  const [mode, dev, vniS, ...rest] = process.argv.slice(2);
  const vni = Number(vniS);
  const r = mode === 'program' ? await program(dev, vni, rest)
    : mode === 'scale' ? await scale(dev, vni, rest[0], rest[1], rest[2], Number(rest[3]))
      : (() => { throw new Error(`usage: overlay-vtep.ts program|scale ...`); })();
  process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
})().catch((err: unknown) => {
  process.stderr.write(`overlay-vtep: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
