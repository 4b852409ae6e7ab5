// overlay/apply.ts against the kernel: three "hosts" (namespaces on an underlay bridge), the
// programmer run inside each host namespace through Rtnl.open(ns), a container per host on a
// bridge with addresses from its host's block. Containers ping across hosts (IPv4 and IPv6, both
// directions, full-size packets); hand-made damage is repaired by the next sync; a removed peer's
// entries vanish; an incompatible device is recreated.
import t, { Test } from 'tap';
import { Cidr, parseCidr, parseIp, Ip } from '../../ipam/addr';
import { createLogger } from '../../lib/log';
import { Rtnl } from '../../net/rtnl';
import { openNetns } from '../../net/netns';
import { VtepProgrammer } from '../../overlay/apply';
import { Peer, vtepMacFor, vxlanDeviceName } from '../../overlay/plan';
import { mustExec } from '../helpers/sh';
import { Container, Host, addContainer, cannotRun, newUnderlay, ping, reachable, shown } from './helpers/hosts';

const VNI = 4242;
const DEV = vxlanDeviceName(VNI);
const UNDERLAY_MTU = 1400; // not 1500, so "underlay MTU - 50" is visible
const cidr = (s: string): Cidr => parseCidr(s) as Cidr;
const ip = (s: string): Ip => parseIp(s) as Ip;

interface Node { host: Host; peer: Peer; prog: VtepProgrammer; rtnl: Rtnl; c: Container; v4: string; v6: string }

async function main(t: Test): Promise<void> {
  t.setTimeout(60_000);
  const log = createLogger('overlay-test', 'error');
  const underlay = await newUnderlay(t, UNDERLAY_MTU);
  const nodes: Node[] = [];
  for (const i of [1, 2, 3]) {
    const host = await underlay.addHost(i);
    const id = `host-${i}`;
    const v4 = `10.237.${i}.0/24`;
    const v6 = `fd37:0:0:${i}::/64`;
    const peer: Peer = { id, underlay: ip(host.underlay), mac: vtepMacFor(id, VNI), blocks: [cidr(v4), cidr(v6)] };
    const handle = openNetns(host.ns.path);
    const rtnl = Rtnl.open(handle);
    handle.close();
    t.teardown(() => rtnl.close());
    const prog = new VtepProgrammer(rtnl, { hostId: id, vni: VNI, device: DEV, underlay: peer.underlay, mac: peer.mac, blocks: peer.blocks }, log);
    const c = await addContainer(t, host, UNDERLAY_MTU - 50, { v4, v6 });
    nodes.push({ host, peer, prog, rtnl, c, v4, v6 });
  }
  const peers = nodes.map((n) => n.peer);

  await t.test('first sync creates the device and every peer\'s entries', async (t) => {
    for (const n of nodes) {
      const r = await n.prog.sync(peers);
      t.equal(r.device, 'created', `${n.peer.id}: device created`);
      t.equal(r.mtu, UNDERLAY_MTU - 50, 'MTU = underlay MTU - 50');
      t.equal(r.set, 2 * (2 + 1 + 2), `${n.peer.id}: 2 peers x (2 neigh + 1 fdb + 2 routes)`);
      t.equal(r.deleted, 0);
    }
    const link = (await shown(nodes[0].host.ns, ['-d', 'link', 'show', DEV])).join(' ');
    t.match(link, /mtu 1350 /, 'device MTU');
    t.match(link, new RegExp(`vxlan id ${VNI} local 10\\.238\\.0\\.11 dev eth0 srcport \\d+ \\d+ dstport 4789 nolearning`), 'vni, local, underlay dev, dstport, nolearning');
    t.match(link, new RegExp(`link/ether ${nodes[0].peer.mac}`), 'VTEP MAC');
    t.same((await shown(nodes[0].host.ns, ['-4', 'addr', 'show', 'dev', DEV])).filter((l) => l.startsWith('inet')).map((l) => l.split(' ')[1]), ['10.237.1.0/32']);
    t.same(await shown(nodes[0].host.ns, ['-4', 'route', 'show', 'dev', DEV]).then((l) => l.sort()), [
      '10.237.2.0/24 via 10.237.2.0 onlink', '10.237.3.0/24 via 10.237.3.0 onlink']);
    t.same(await shown(nodes[0].host.ns, ['-4', 'neigh', 'show', 'dev', DEV]).then((l) => l.sort()), [
      `10.237.2.0 lladdr ${nodes[1].peer.mac} PERMANENT`, `10.237.3.0 lladdr ${nodes[2].peer.mac} PERMANENT`]);
    t.same(await shown(nodes[0].host.ns, ['fdb', 'show', 'dev', DEV]).then((l) => l.filter((x) => x.includes('dst')).sort()), [
      `${nodes[1].peer.mac} dst 10.238.0.12 self permanent`, `${nodes[2].peer.mac} dst 10.238.0.13 self permanent`].sort());
  });

  await t.test('a second sync changes nothing', async (t) => {
    for (const n of nodes) {
      const r = await n.prog.sync(peers);
      t.same({ device: r.device, set: r.set, deleted: r.deleted }, { device: 'kept', set: 0, deleted: 0 }, n.peer.id);
    }
  });

  await t.test('containers on three hosts reach each other, IPv4 and IPv6, both directions', async (t) => {
    for (const a of nodes) {
      for (const b of nodes) {
        if (a === b) continue;
        t.ok(await reachable(a.c.ns, b.c.ip4!), `${a.peer.id} -> ${b.peer.id} ${b.c.ip4}`);
        t.ok(await reachable(a.c.ns, b.c.ip6!), `${a.peer.id} -> ${b.peer.id} ${b.c.ip6}`);
      }
    }
  });

  await t.test('full-size packets cross the tunnel (overlay MTU 1350 over a 1400 underlay)', async (t) => {
    // busybox ping leaves DF to the kernel's default (IP_PMTUDISC_WANT: DF set, no local
    // fragmentation below the route MTU): 1350 bytes = 20 IP + 8 ICMP + 1322.
    t.ok(await ping(nodes[0].c.ns, nodes[1].c.ip4!, 1350 - 28), 'IPv4 1350-byte packet');
    t.ok(await ping(nodes[0].c.ns, nodes[1].c.ip6!, 1350 - 48), 'IPv6 1350-byte packet');
    const tx = await mustExec('ip', ['netns', 'exec', nodes[0].host.ns.name, 'cat', `/sys/class/net/${DEV}/statistics/tx_packets`]);
    t.ok(Number(tx.stdout) > 0, 'traffic went through the VXLAN device');
  });

  await t.test('entries deleted by hand come back on the next sync; foreign entries go', async (t) => {
    const h = nodes[0].host.ns.name;
    await mustExec('ip', ['-n', h, 'neigh', 'del', '10.237.2.0', 'dev', DEV]);
    await mustExec('ip', ['-n', h, 'route', 'del', 'fd37:0:0:3::/64', 'dev', DEV]);
    await mustExec('bridge', ['-n', h, 'fdb', 'del', nodes[2].peer.mac, 'dev', DEV, 'dst', '10.238.0.13']);
    await mustExec('ip', ['-n', h, 'neigh', 'add', '10.237.99.0', 'lladdr', '02:00:00:00:00:99', 'dev', DEV, 'nud', 'permanent']);
    await mustExec('bridge', ['-n', h, 'fdb', 'append', '00:00:00:00:00:00', 'dev', DEV, 'dst', '10.238.0.99']);
    await mustExec('ip', ['-n', h, 'route', 'add', '10.237.99.0/24', 'via', '10.237.99.0', 'dev', DEV, 'onlink']);
    t.notOk(await ping(nodes[0].c.ns, nodes[2].c.ip4!), 'broken before the sync: no FDB entry for host-3');
    const r = await nodes[0].prog.sync(peers);
    t.same({ set: r.set, deleted: r.deleted }, { set: 3, deleted: 3 }, '3 restored, 3 foreign removed');
    t.ok(await reachable(nodes[0].c.ns, nodes[2].c.ip4!), 'host-1 -> host-3 again');
    t.ok(await reachable(nodes[0].c.ns, nodes[2].c.ip6!), 'host-1 -> host-3 IPv6 again');
    t.ok(await reachable(nodes[0].c.ns, nodes[1].c.ip4!), 'host-1 -> host-2 again');
    t.notOk((await shown(nodes[0].host.ns, ['route', 'show', 'dev', DEV])).some((l) => l.includes('10.237.99.')), 'foreign route gone');
  });

  await t.test('a wrong entry (peer moved, MAC changed by hand) is replaced in place', async (t) => {
    const h = nodes[0].host.ns.name;
    await mustExec('ip', ['-n', h, 'neigh', 'replace', '10.237.2.0', 'lladdr', '02:00:00:00:00:42', 'dev', DEV, 'nud', 'permanent']);
    const r = await nodes[0].prog.sync(peers);
    t.same({ set: r.set, deleted: r.deleted }, { set: 1, deleted: 0 });
    t.ok(await reachable(nodes[0].c.ns, nodes[1].c.ip4!), 'host-1 -> host-2');
  });

  await t.test('a removed peer\'s entries vanish; the others stay', async (t) => {
    const without3 = peers.filter((p) => p.id !== 'host-3');
    const r = await nodes[0].prog.sync(without3);
    t.same({ set: r.set, deleted: r.deleted }, { set: 0, deleted: 5 }, '2 neigh + 1 fdb + 2 routes removed');
    const all = [
      ...(await shown(nodes[0].host.ns, ['neigh', 'show', 'dev', DEV])),
      ...(await shown(nodes[0].host.ns, ['route', 'show', 'dev', DEV])),
      ...(await shown(nodes[0].host.ns, ['-6', 'route', 'show', 'dev', DEV])),
      ...(await shown(nodes[0].host.ns, ['fdb', 'show', 'dev', DEV])),
    ].join('\n');
    t.notMatch(all, /10\.237\.3\.|fd37:0:0:3:|10\.238\.0\.13/, 'nothing of host-3 left');
    t.notOk(await ping(nodes[0].c.ns, nodes[2].c.ip4!), 'host-3 unreachable from host-1');
    t.ok(await reachable(nodes[0].c.ns, nodes[1].c.ip4!), 'host-2 still reachable');
    await nodes[0].prog.sync(peers);
    t.ok(await reachable(nodes[0].c.ns, nodes[2].c.ip4!), 'host-3 back after it rejoins');
  });

  await t.test('ensure-or-recreate: MTU fixed in place; another VNI recreated', async (t) => {
    const n = nodes[1];
    const h = n.host.ns.name;
    await mustExec('ip', ['-n', h, 'link', 'set', DEV, 'mtu', '1300']);
    let r = await n.prog.sync(peers);
    t.equal(r.device, 'updated', 'MTU drift: updated, not recreated');
    t.match((await shown(n.host.ns, ['link', 'show', DEV])).join(' '), /mtu 1350 /);
    await mustExec('ip', ['-n', h, 'link', 'del', DEV]);
    await mustExec('ip', ['-n', h, 'link', 'add', DEV, 'type', 'vxlan', 'id', '99', 'local', n.host.underlay, 'dstport', '4789']);
    r = await n.prog.sync(peers);
    t.equal(r.device, 'recreated', 'VNI 99 instead of 4242: recreated');
    t.equal(r.set, 10, 'all entries programmed on the new device');
    t.match((await shown(n.host.ns, ['-d', 'link', 'show', DEV])).join(' '), new RegExp(`vxlan id ${VNI} `));
    t.ok(await reachable(nodes[0].c.ns, n.c.ip4!), 'host-1 -> host-2 through the recreated device');
    t.ok(await reachable(n.c.ns, nodes[2].c.ip6!), 'host-2 -> host-3 IPv6 through the recreated device');
  });

  await t.test('remove() deletes the device with its entries', async (t) => {
    t.equal(await nodes[2].prog.remove(), true);
    t.equal(await nodes[2].prog.remove(), false, 'idempotent');
    t.same(await shown(nodes[2].host.ns, ['route', 'show', 'dev', DEV]), []);
  });
}

void (async () => {
  const reason = await cannotRun();
  if (reason) t.plan(0, reason);
  else await t.test('VXLAN programming across three host namespaces', main);
})();
