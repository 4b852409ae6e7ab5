// overlay/apply.ts against the kernel: three "hosts" (namespaces on an underlay bridge), the
// programmer run inside each host namespace through Rtnl.open(ns), a container per host
// attached routed with addresses from its host's block. Containers ping across hosts (IPv4 and IPv6, both
// directions, full-size packets); hand-made damage is repaired by the next sync; a removed peer's
// entries vanish; an incompatible device is recreated.
import t, { Test } from 'tap';
import { Cidr, parseCidr, parseIp, Ip } from '../../ipam/addr';
import { createLogger } from '../../lib/log';
import { Rtnl } from '../../net/rtnl';
import { openNetns } from '../../net/netns';
import { VtepProgrammer, detectUnderlay } from '../../overlay/apply';
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
    t.same((await shown(nodes[0].host.ns, ['-4', 'addr', 'show', 'dev', DEV])).filter((l) => l.startsWith('inet')).map((l) => l.split(' ')[1]), ['10.237.1.0/32', '10.237.1.1/32'], 'the VTEP IP and the containers\' gateway');
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
    // fragmentation below the route MTU): 1350 bytes = 20 IP + 8 ICMP + 1322. The VXLAN
    // device would fragment an oversized OUTER packet silently (its DF is unset), so "the
    // ping arrived" is not enough: the hosts' IPv4 fragment counters must not move either.
    const fragCreates = async (ns: string): Promise<number> => {
      const snmp = (await mustExec('ip', ['netns', 'exec', ns, 'cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Ip: '));
      const [names, values] = snmp.map((l) => l.split(' '));
      return Number(values[names.indexOf('FragCreates')]);
    };
    const hostsNs = [nodes[0].host.ns.name, nodes[1].host.ns.name];
    const before = await Promise.all(hostsNs.map(fragCreates));
    t.ok(await ping(nodes[0].c.ns, nodes[1].c.ip4!, 1350 - 28), 'IPv4 1350-byte packet');
    t.ok(await ping(nodes[0].c.ns, nodes[1].c.ip6!, 1350 - 48), 'IPv6 1350-byte packet');
    t.same(await Promise.all(hostsNs.map(fragCreates)), before, 'no fragment created on either host: the encapsulated packets fit the underlay');
    const tx = await mustExec('ip', ['netns', 'exec', nodes[0].host.ns.name, 'cat', `/sys/class/net/${DEV}/statistics/tx_packets`]);
    t.ok(Number(tx.stdout) > 0, 'traffic went through the VXLAN device');
    // Control: the counter does count. A 1400-byte packet host-to-host over the 1400 underlay
    // fits; 1401 does not and is fragmented.
    t.ok(await ping(nodes[0].host.ns, nodes[1].host.underlay, UNDERLAY_MTU - 28 + 1), 'oversized underlay ping (fragmented)');
    t.ok((await fragCreates(hostsNs[0])) > before[0], 'control: fragmenting is visible in FragCreates');
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

  await t.test('one host programs 1000 peers (the bench times it); a no-op sync of 1000 is cheap; 500 leaving are removed', async (t) => {
    const host = await underlay.addHost(9);
    const handle = openNetns(host.ns.path);
    const rtnl = Rtnl.open(handle);
    handle.close();
    t.teardown(() => rtnl.close());
    const prog = new VtepProgrammer(rtnl, { hostId: 'big', vni: VNI, device: DEV, underlay: ip(host.underlay), mac: vtepMacFor('big', VNI), blocks: [cidr('10.237.9.0/24')] }, log);
    const many: Peer[] = Array.from({ length: 1000 }, (_, i) => ({
      id: `p${i}`, underlay: ip(`10.239.${i >> 8}.${i & 255}`), mac: vtepMacFor(`p${i}`, VNI), blocks: [cidr(`10.${224 + (i >> 8)}.${i & 255}.0/24`)],
    }));
    let r = await prog.sync(many);
    t.equal(r.set, 3000, '1000 x (neigh + fdb + route)');
    t.comment(`1000 peers programmed in ${r.ms.toFixed(0)} ms (device creation included)`);
    t.equal((await shown(host.ns, ['route', 'show', 'dev', DEV])).length, 1000, '1000 routes in the kernel');
    r = await prog.sync(many);
    t.same({ set: r.set, deleted: r.deleted }, { set: 0, deleted: 0 });
    t.ok(r.ms < 1000, `no-op sync of 1000 peers: ${r.ms.toFixed(0)} ms`);
    r = await prog.sync(many.slice(0, 500));
    t.same({ set: r.set, deleted: r.deleted }, { set: 0, deleted: 1500 });
    t.ok(r.ms < 2000, `500 peers removed in ${r.ms.toFixed(0)} ms`);
    t.equal((await shown(host.ns, ['neigh', 'show', 'dev', DEV])).length, 500);
  });

  await t.test('IPv6 underlay: two hosts tunnel over fd38::/64 (local6, MTU = underlay - 70)', async (t) => {
    const six: Array<{ host: Host; peer: Peer; prog: VtepProgrammer; c: Container }> = [];
    for (const i of [6, 7]) {
      const host = await underlay.addHost(i);
      const u6 = `fd38::${i}`;
      await mustExec('ip', ['-n', host.ns.name, 'addr', 'add', `${u6}/64`, 'dev', 'eth0', 'nodad']);
      const id = `six-${i}`;
      const peer: Peer = { id, underlay: ip(u6), mac: vtepMacFor(id, VNI), blocks: [cidr(`10.237.${i}.0/24`), cidr(`fd37:0:0:${i}::/64`)] };
      const handle = openNetns(host.ns.path);
      const rtnl = Rtnl.open(handle);
      handle.close();
      t.teardown(() => rtnl.close());
      const prog = new VtepProgrammer(rtnl, { hostId: id, vni: VNI, device: DEV, underlay: peer.underlay, mac: peer.mac, blocks: peer.blocks }, log);
      const c = await addContainer(t, host, UNDERLAY_MTU - 70, { v4: `10.237.${i}.0/24`, v6: `fd37:0:0:${i}::/64` });
      six.push({ host, peer, prog, c });
    }
    for (const n of six) {
      const r = await n.prog.sync(six.map((x) => x.peer));
      t.same({ device: r.device, mtu: r.mtu, set: r.set }, { device: 'created', mtu: UNDERLAY_MTU - 70, set: 5 }, `${n.peer.id}: created, MTU ${UNDERLAY_MTU - 70}`);
    }
    t.match((await shown(six[0].host.ns, ['-d', 'link', 'show', DEV])).join(' '), /vxlan id 4242 local fd38::6 dev eth0 .*dstport 4789 nolearning/, 'local6');
    t.same((await shown(six[0].host.ns, ['fdb', 'show', 'dev', DEV])).filter((l) => l.includes('dst')), [`${six[1].peer.mac} dst fd38::7 self permanent`]);
    t.ok(await reachable(six[0].c.ns, six[1].c.ip4!), 'IPv4 containers over an IPv6 underlay');
    t.ok(await reachable(six[1].c.ns, six[0].c.ip6!), 'IPv6 containers over an IPv6 underlay, other direction');
    t.ok(await ping(six[0].c.ns, six[1].c.ip4!, UNDERLAY_MTU - 70 - 28), `full-size ${UNDERLAY_MTU - 70}-byte packet`);
    t.equal((await six[0].prog.sync(six.map((x) => x.peer))).set, 0, 'idempotent');
  });

  await t.test('detectUnderlay: the address of the default route\'s link', async (t) => {
    const n = nodes[0];
    t.equal(await detectUnderlay(n.rtnl), undefined, 'no default route: undefined');
    await mustExec('ip', ['-n', n.host.ns.name, 'route', 'add', 'default', 'via', '10.238.0.1']);
    t.same(await detectUnderlay(n.rtnl), ip(n.host.underlay));
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
