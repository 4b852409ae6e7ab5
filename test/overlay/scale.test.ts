// Convergence at scale: three real agents (host namespaces, real etcd), then N = 1000 simulated
// hosts registered straight into etcd (member, host and block records under one lease, as an
// agent writes them). Every real host must program all of them; a real host joining afterwards
// must still reach every peer; the simulated hosts' lease revoked, all their
// entries must leave every real host. Prints the timings (the bench's convergence figures).
import t, { Test } from 'tap';
import { existsSync } from 'node:fs';
import { Cidr, Ip, parseCidr, parseIp } from '../../ipam/addr';
import { parseOverlayNetwork, vtepMacFor } from '../../overlay/plan';
import { encodeBlock, encodeHost, encodeMember, keys } from '../../overlay/records';
import { createEtcd } from '../../etcd/client';
import { ETCD, startEtcd } from '../helpers/etcd';
import { exec, pollUntil } from '../helpers/sh';
import { cannotRun, newUnderlay } from './helpers/hosts';
import { Node, overlayCluster } from './helpers/cluster';

const N = 1000;
const NET = parseOverlayNetwork({ name: 'vxt-ovs', vni: 4545, subnets: ['10.224.0.0/12', 'fd37::/48'], blockPrefix: 24, blockPrefix6: 64 });
const ip = (s: string): Ip => parseIp(s) as Ip;
const cidr = (s: string): Cidr => parseCidr(s) as Cidr;

async function main(t: Test): Promise<void> {
  t.setTimeout(60_000);
  const etcd = await startEtcd(t);
  const underlay = await newUnderlay(t, 1500);
  const cl = overlayCluster(t, underlay, { endpoints: etcd.clientUrls, network: NET, ttlSeconds: 10 });
  const nodes: Node[] = [];
  for (const i of [1, 2, 3]) nodes.push(await cl.addNode(i));
  const routeCount = async (n: Node): Promise<number> => {
    const r = await exec('ip', ['-n', n.host.ns.name, '-4', 'route', 'show', 'dev', cl.dev]);
    return r.stdout.split('\n').filter(Boolean).length;
  };
  await Promise.all(nodes.map((n) => pollUntil(async () => (await routeCount(n)) === 2, { timeoutMs: 5000, what: `${n.id}: 2 peers` })));

  const client = createEtcd(etcd.endpoints);
  t.teardown(() => client.close());
  const k = keys(cl.prefix);
  const lease = client.lease(30);
  await lease.grant();

  await t.test(`${N} simulated hosts registered straight into etcd reach every real host`, async (t) => {
    // Blocks 100.. onwards: above the real hosts' 0..2, as the allocator would hand them out.
    const sims = Array.from({ length: N }, (_, i) => {
      const b = 100 + i;
      return { id: `sim-${i}`, underlay: ip(`10.239.${i >> 8}.${i & 255}`), block: cidr(`10.${224 + (b >> 8)}.${b & 255}.0/24`) };
    });
    const started = Date.now();
    for (let i = 0; i < sims.length; i += 64) {
      await Promise.all(sims.slice(i, i + 64).flatMap((s) => [
        client.put(k.block(NET.name, s.block)).value(encodeBlock({ block: s.block, hostId: s.id, since: Date.now() })).exec(),
        lease.put(k.host(s.id)).value(encodeHost({ id: s.id, underlay: s.underlay, since: Date.now(), networks: [NET.name] })).exec(),
        lease.put(k.member(NET.name, s.id)).value(encodeMember({ underlay: s.underlay, mac: vtepMacFor(s.id, NET.vni), blocks: [s.block] })).exec(),
      ]));
    }
    const registered = Date.now();
    await Promise.all(nodes.map((n) => pollUntil(async () => (await routeCount(n)) === N + 2, { timeoutMs: 20_000, intervalMs: 50, what: `${n.id}: ${N + 2} peers` })));
    const done = Date.now();
    t.pass(`${N} hosts registered in ${registered - started} ms; all 3 real hosts had ${N + 2} peers' routes ${done - registered} ms after the last registration`);
  });

  await t.test(`a real host joining a cluster of ${N + 3} is programmed on every real peer`, async (t) => {
    const n4 = await cl.addNode(4);
    const registered = Date.now();
    await Promise.all(nodes.map((n) => pollUntil(() => cl.hasRoutesTo(n, n4), { timeoutMs: 5000, intervalMs: 10, what: `${n.id} routes to host-4` })));
    const ms = Date.now() - registered;
    t.pass(`host-4 on all 3 real peers ${ms} ms after its registration`);
    t.equal(n4.v4, '10.224.3.0/24', 'the lowest free block, below the simulated ones');
    await pollUntil(async () => (await routeCount(n4)) === N + 3, { timeoutMs: 5000, what: 'host-4 programs every peer' });
    t.pass(`host-4 programmed ${N + 3} peers`);
  });

  await t.test(`the ${N} simulated hosts leave: their entries leave every real host`, async (t) => {
    const started = Date.now();
    await lease.revoke();
    await Promise.all(nodes.map((n) => pollUntil(async () => (await routeCount(n)) === 3, { timeoutMs: 10_000, intervalMs: 50, what: `${n.id}: back to 3 peers` })));
    const ms = Date.now() - started;
    t.pass(`${N} hosts removed from all 3 real hosts in ${ms} ms`);
  });
}

void (async () => {
  const reason = (await cannotRun()) ?? (existsSync(ETCD) ? undefined : `needs etcd (${ETCD})`);
  if (reason) t.plan(0, reason);
  else await t.test(`overlay convergence with ${N} simulated hosts`, main);
})();
