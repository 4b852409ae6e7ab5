// The overlay agents when etcd fails: a real three-member etcd on loopback, three host
// namespaces with an agent each. One member killed: nothing noticeable (a host joining is still
// programmed everywhere). All members down for longer than the TTL: containers
// keep talking over what was programmed and nothing is torn down. etcd back: the agents
// register again, reconcile, and a host joining is programmed everywhere again.
import t, { Test } from 'tap';
import { existsSync } from 'node:fs';
import { parseOverlayNetwork } from '../../overlay/plan';
import { listHosts } from '../../overlay/registry';
import { ETCD, startEtcd } from '../helpers/etcd';
import { pollUntil } from '../helpers/sh';
import { addContainer, cannotRun, newUnderlay, reachable } from './helpers/hosts';
import { Node, overlayCluster } from './helpers/cluster';

const NET = parseOverlayNetwork({ name: 'vxt-ovf', vni: 4444, subnets: ['10.237.0.0/16', 'fd37::/48'], blockPrefix: 24, blockPrefix6: 64 });
const TTL = 2;

async function main(t: Test): Promise<void> {
  t.setTimeout(60_000);
  const root = t;
  const etcd = await startEtcd(t, { members: 3 });
  const underlay = await newUnderlay(t, 1500);
  const cl = overlayCluster(t, underlay, { endpoints: etcd.clientUrls, network: NET, ttlSeconds: TTL });
  const nodes: Node[] = [];
  for (const i of [1, 2, 3]) {
    const n = await cl.addNode(i);
    n.c = await addContainer(root, n.host, 1450, { v4: n.v4, v6: n.v6 });
    nodes.push(n);
  }
  const allProgrammed = async (ns: Node[], timeoutMs = 3000): Promise<void> => {
    await Promise.all(ns.flatMap((a) => ns.filter((b) => b !== a).map((b) =>
      pollUntil(() => cl.hasRoutesTo(a, b), { timeoutMs, intervalMs: 10, what: `${a.id} routes to ${b.id}` }))));
  };
  await allProgrammed(nodes);
  t.ok(await reachable(nodes[0].c!.ns, nodes[2].c!.ip4!), 'baseline: host-1 -> host-3');

  await t.test('one of three members killed: a joining host is still programmed everywhere', async (t) => {
    await etcd.kill(0);
    const n4 = await cl.addNode(4);
    const registered = Date.now();
    await Promise.all(nodes.map((n) => pollUntil(() => cl.hasRoutesTo(n, n4), { timeoutMs: 5000, intervalMs: 10, what: `${n.id} routes to host-4` })));
    const ms = Date.now() - registered;
    t.pass(`host-4 on all peers ${ms} ms after registering, with member 0 down`);
    n4.c = await addContainer(root, n4.host, 1450, { v4: n4.v4, v6: n4.v6 });
    t.ok(await reachable(n4.c.ns, nodes[0].c!.ip4!), 'host-4 -> host-1');
    nodes.push(n4);
    await etcd.restart(0);
  });

  await t.test('etcd fully down for longer than the TTL: containers keep talking, nothing is torn down', async (t) => {
    const lost = Promise.all(nodes.map((n) => new Promise<void>((resolve) => n.agent.once('leaseLost', () => resolve()))));
    await Promise.all([0, 1, 2].map((i) => etcd.kill(i)));
    // The agents' leases run out (etcd3 reports 'lost' once the TTL passed without a renewal).
    await Promise.race([lost, new Promise((_, reject) => setTimeout(() => reject(new Error('no leaseLost within 15 s')), 15_000))]);
    t.pass('every agent saw its lease lost');
    for (const a of nodes) {
      for (const b of nodes) if (a !== b) t.ok(await cl.hasRoutesTo(a, b), `${a.id} still has ${b.id}'s routes`);
    }
    t.ok(await reachable(nodes[0].c!.ns, nodes[1].c!.ip4!), 'host-1 -> host-2 with etcd down');
    t.ok(await reachable(nodes[3].c!.ns, nodes[2].c!.ip6!), 'host-4 -> host-3 IPv6 with etcd down');
  });

  await t.test('etcd back: agents register again and reconcile; a joining host is programmed everywhere', async (t) => {
    await Promise.all([0, 1, 2].map((i) => etcd.restart(i)));
    const again = await pollUntil(async () => {
      const l = await listHosts(nodes[0].agent.registry, Date.now(), 60_000);
      return l.hosts.length === 4 && l.hosts.every((h) => /^alive/.test(h.lease)) && l;
    }, { timeoutMs: 15_000, intervalMs: 100, what: 'all four hosts registered again' });
    t.same(again.hosts.map((h) => h.id), ['host-1', 'host-2', 'host-3', 'host-4'], 'all four hosts alive again');
    await allProgrammed(nodes, 10_000);
    t.pass('every host has every peer\'s routes');
    const n5 = await cl.addNode(5);
    const registered = Date.now();
    await Promise.all(nodes.map((n) => pollUntil(() => cl.hasRoutesTo(n, n5), { timeoutMs: 5000, intervalMs: 10, what: `${n.id} routes to host-5` })));
    t.pass(`host-5 on all peers ${Date.now() - registered} ms after registering`);
    n5.c = await addContainer(root, n5.host, 1450, { v4: n5.v4, v6: n5.v6 });
    t.ok(await reachable(n5.c.ns, nodes[0].c!.ip4!), 'host-5 -> host-1');
    t.ok(await reachable(nodes[2].c!.ns, n5.c.ip6!), 'host-3 -> host-5 IPv6');
  });
}

void (async () => {
  const reason = (await cannotRun()) ?? (existsSync(ETCD) ? undefined : `needs etcd (${ETCD})`);
  if (reason) t.plan(0, reason);
  else await t.test('overlay agents through etcd member and cluster failures', main);
})();
