// vxnetctl doctor's rules (ctl/doctor-rules.ts): believed vs observed -> findings, both ways,
// which are safe, the exit status; and the command line. No root, no kernel.
import t from 'tap';
import { parseCommandLine } from '../../ctl/args';
import {
  type Believed, type BelievedAllocation, type Finding, type Observed, type ObservedLink,
  diagnose, exitStatus, gatewayExpected,
} from '../../ctl/doctor-rules';
import { hostVethName, setupAlias } from '../../datapath/names';
import { forwardRules } from '../../net/nat';
import { type Cidr, type Ip, parseCidr, parseIp } from '../../ipam/addr';
import { desiredEntries } from '../../overlay/plan';

const ip = (text: string): Ip => parseIp(text) as Ip;

const NET = 'blue';
const BRIDGE = 'vx-blue';
const ALIAS_GW = setupAlias(NET, [NET, ['10.1.0.0/24'], ['10.1.0.1/24'], false, 'vxnet']);
const ALIAS_NOGW = setupAlias(NET, [NET, ['10.1.0.0/24'], [], true, 'vxtnat']);

const alloc = (id: string, address: string, o: Partial<BelievedAllocation> = {}): BelievedAllocation => ({
  network: NET, address, family: 4, containerId: id, ifname: 'eth0', runtime: 'cni', netns: `/run/netns/${id}`, ...o,
});

/** A consistent host: two containers on blue's bridge, everything in place. */
function world(): { b: Believed; o: Observed; links: ObservedLink[] } {
  const a1 = alloc('c1', '10.1.0.2');
  const a2 = alloc('c2', '10.1.0.3');
  const links: ObservedLink[] = [
    { index: 1, name: 'lo', kind: undefined, up: true, master: undefined, alias: undefined },
    { index: 10, name: BRIDGE, kind: 'bridge', up: true, master: undefined, alias: ALIAS_GW },
    { index: 11, name: hostVethName('c1', 'eth0'), kind: 'veth', up: true, master: 10, alias: undefined },
    { index: 12, name: hostVethName('c2', 'eth0'), kind: 'veth', up: true, master: 10, alias: undefined },
  ];
  const b: Believed = {
    allocations: [a1, a2],
    networks: [{ network: NET, subnets: ['10.1.0.0/24'], gateways: ['10.1.0.1/24'] }],
    overlays: [],
  };
  const o: Observed = {
    links,
    addresses: [{ index: 10, cidr: '10.1.0.1/24' }],
    hostRoutes: [],
    netns: { '/run/netns/c1': 'alive', '/run/netns/c2': 'alive' },
    forward: { 4: forwardRules(BRIDGE) },
    nftTables: ['ip vxnet'],
  };
  return { b, o, links };
}

const kinds = (fs: readonly Finding[]): string[] => fs.map((f) => f.kind);

t.test('a consistent host has no findings', async (t) => {
  const { b, o } = world();
  t.same(diagnose(b, o), []);
  t.equal(exitStatus(0, 0), 0);
});

t.test('a leaked allocation (netns gone) is found and safe to release', async (t) => {
  const { b, o } = world();
  const found = diagnose(b, { ...o, netns: { ...o.netns, '/run/netns/c2': 'gone' }, links: o.links.filter((l) => l.index !== 12) });
  t.same(kinds(found), ['leaked-allocation']);
  const f = found[0];
  t.equal(f.safe, true);
  t.match(f.subject, /container c2 eth0 \(network blue: 10\.1\.0\.3\)/);
  t.match(f.what, /network namespace \/run\/netns\/c2 is gone/);
  t.match(f.why, /without a CNI DEL/);
  t.equal(f.fix, 'vxnetctl ipam release --container c2 --ifname eth0 --network blue');
  t.same(f.actions, [{ op: 'release', network: NET, containerId: 'c2', ifname: 'eth0', netns: '/run/netns/c2', veth: hostVethName('c2', 'eth0') }]);
});

t.test('an unknown netns is never taken as gone', async (t) => {
  const { b, o } = world();
  t.same(diagnose(b, { ...o, netns: { '/run/netns/c1': 'unknown', '/run/netns/c2': 'alive' } }), []);
});

t.test('a missing veth of a live container is reported, not fixed', async (t) => {
  const { b, o } = world();
  const found = diagnose(b, { ...o, links: o.links.filter((l) => l.index !== 11) });
  t.same(kinds(found), ['missing-veth']);
  t.equal(found[0].safe, false);
  t.match(found[0].what, /host veth vx[0-9a-f]{12} is missing, while its network namespace \/run\/netns\/c1 exists/);
});

t.test('Docker endpoints are left to vxnetd', async (t) => {
  const { b, o } = world();
  const docker = alloc('ep1', '10.1.0.9', { runtime: 'docker', ifname: 'docker', netns: undefined });
  t.same(diagnose({ ...b, allocations: [...b.allocations, docker] }, o), []);
  // Its veth is accounted for (not an orphan).
  const link = { index: 13, name: hostVethName('ep1', 'docker'), kind: 'veth', up: true, master: 10, alias: undefined };
  t.same(diagnose({ ...b, allocations: [...b.allocations, docker] }, { ...o, links: [...o.links, link] }), []);
});

t.test('orphan and retired veths are found and safe to delete; other links are not vxnet\'s', async (t) => {
  const { b, o } = world();
  const extra: ObservedLink[] = [
    { index: 20, name: 'vx0123456789ab', kind: 'veth', up: true, master: 10, alias: undefined },
    { index: 21, name: 'vxz0123456789ab', kind: 'veth', up: false, master: undefined, alias: undefined },
    { index: 22, name: 'vxt-1234', kind: 'veth', up: true, master: undefined, alias: undefined },
    { index: 23, name: 'veth12ab', kind: 'veth', up: true, master: undefined, alias: undefined },
    { index: 24, name: 'vxABCDEF012345', kind: 'veth', up: true, master: undefined, alias: undefined },
    { index: 25, name: 'vx0123456789cd', kind: 'bridge', up: true, master: undefined, alias: undefined },
  ];
  const found = diagnose(b, { ...o, links: [...o.links, ...extra] });
  t.same(kinds(found), ['orphan-veth', 'retired-veth']);
  t.same(found.map((f) => f.actions), [[{ op: 'delete-link', name: 'vx0123456789ab' }], [{ op: 'delete-link', name: 'vxz0123456789ab' }]]);
  t.ok(found.every((f) => f.safe));
  t.match(found[0].what, /on vx-blue/);
  t.equal(found[0].fix, 'ip link del dev vx0123456789ab');
  // No store in the data directory: reported, never deleted.
  const noStore = diagnose({ ...b, storeFound: false, allocations: [] }, { ...o, forward: {}, links: [...o.links, ...extra] });
  const orphans = noStore.filter((f) => f.kind === 'orphan-veth');
  t.equal(orphans.length, 3);
  t.ok(orphans.every((f) => !f.safe && f.actions.length === 0));
});

t.test('bridge: missing, down, off-bridge veth, gateway', async (t) => {
  const { b, o } = world();
  // Missing: no bridge of the network anywhere, veths on no bridge.
  const noBridge = o.links.filter((l) => l.index !== 10).map((l) => ({ ...l, master: undefined }));
  // Its FORWARD rules now name a link that is gone.
  t.same(kinds(diagnose(b, { ...o, links: noBridge })), ['bridge-missing', 'orphan-forward-rules', 'orphan-forward-rules']);
  // A network with no CNI container here needs no bridge.
  t.same(diagnose({ ...b, allocations: [] }, { ...o, forward: {}, links: noBridge.filter((l) => !l.name.startsWith('vx')) }), []);
  // Down.
  t.same(kinds(diagnose(b, { ...o, links: o.links.map((l) => (l.index === 10 ? { ...l, up: false } : l)) })), ['bridge-down']);
  // A veth moved off the bridge.
  const off = diagnose(b, { ...o, links: o.links.map((l) => (l.index === 12 ? { ...l, master: undefined } : l)) });
  t.same(kinds(off), ['veth-off-bridge']);
  t.equal(off[0].fix, `ip link set dev ${hostVethName('c2', 'eth0')} master vx-blue`);
  // Gateway gone from a bridge whose setup record says it is the gateway.
  const gw = diagnose(b, { ...o, addresses: [] });
  t.same(kinds(gw), ['bridge-gateway-missing']);
  t.equal(gw[0].fix, 'ip addr add 10.1.0.1/24 dev vx-blue');
  // A bridge set up without a gateway (isGateway false, masquerading in table vxtnat) holds none: fine.
  const noGw = { ...o, addresses: [], nftTables: ['ip vxtnat'], links: o.links.map((l) => (l.index === 10 ? { ...l, alias: ALIAS_NOGW } : l)) };
  t.same(diagnose(b, noGw), []);
});

t.test('gatewayExpected reads the setup record', async (t) => {
  const net = { network: NET, subnets: ['10.1.0.0/24'], gateways: ['10.1.0.1/24'] };
  t.equal(gatewayExpected(net, ALIAS_GW, []), true);
  t.equal(gatewayExpected(net, ALIAS_NOGW, ['ip vxtnat', 'inet filter']), false);
  t.equal(gatewayExpected(net, ALIAS_NOGW, []), undefined, 'the nat table is a candidate only when it exists');
  t.equal(gatewayExpected(net, undefined, []), undefined);
  t.equal(gatewayExpected(net, 'something else', []), undefined);
});

t.test('FORWARD rules: missing for a bridge, orphaned for a link that is gone', async (t) => {
  const { b, o } = world();
  const missing = diagnose(b, { ...o, forward: { 4: forwardRules(BRIDGE).slice(0, 1) } });
  t.same(kinds(missing), ['forward-rules-missing']);
  t.equal(missing[0].safe, true, 're-inserting vxnet\'s own accept rules is safe');
  t.same(missing[0].actions, [{ op: 'add-forward-rules', family: 4, rules: forwardRules(BRIDGE).slice(1) }]);
  t.equal(missing[0].fix, 'iptables -w -I FORWARD 1 -o vx-blue -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment vxnet:vx-blue -j ACCEPT');
  // No iptables for a family: nothing to expect.
  t.same(diagnose(b, { ...o, forward: {} }), []);
  const stale = forwardRules('vx-gone');
  const orphan = diagnose(b, { ...o, forward: { 4: [...forwardRules(BRIDGE), ...stale, ['-i', 'docker0', '-j', 'ACCEPT']] } });
  t.same(kinds(orphan), ['orphan-forward-rules', 'orphan-forward-rules']);
  t.ok(orphan.every((f) => f.safe));
  t.same(orphan[0].actions, [{ op: 'delete-forward-rule', family: 4, rule: stale[0] }]);
});

t.test('overlay: device, its addresses, host routes both ways', async (t) => {
  const a = alloc('c9', '10.237.3.2', { network: 'ov1' });
  const veth = hostVethName('c9', 'eth0');
  const b: Believed = {
    allocations: [a], networks: [{ network: 'ov1', subnets: ['10.237.3.0/24'], gateways: ['10.237.3.1/24'] }],
    overlays: [{ network: 'ov1', device: 'vxlan.42', vni: 42, deviceAddresses: ['10.237.3.0/32', '10.237.3.1/32'], subnets: ['10.237.0.0/16'] }],
  };
  const o: Observed = {
    links: [
      { index: 5, name: 'vxlan.42', kind: 'vxlan', up: true, master: undefined, alias: undefined },
      { index: 6, name: veth, kind: 'veth', up: true, master: undefined, alias: undefined },
    ],
    addresses: [{ index: 5, cidr: '10.237.3.0/32' }, { index: 5, cidr: '10.237.3.1/32' }],
    hostRoutes: [{ address: '10.237.3.2', family: 4, oif: 6 }],
    netns: { '/run/netns/c9': 'alive' },
    forward: {},
    nftTables: [],
  };
  t.same(diagnose(b, o), [], 'consistent (no bridge expected for an overlay network)');
  t.same(kinds(diagnose(b, { ...o, hostRoutes: [] })), ['missing-host-route']);
  const orphan = diagnose(b, { ...o, hostRoutes: [...o.hostRoutes, { address: '10.237.3.7', family: 4, oif: 6 }] });
  t.same(kinds(orphan), ['orphan-host-route']);
  t.same(orphan[0].actions, [{ op: 'delete-route', address: '10.237.3.7', family: 4, link: veth }]);
  t.equal(orphan[0].fix, `ip route del 10.237.3.7/32 dev ${veth}`);
  t.same(kinds(diagnose(b, { ...o, links: o.links.slice(1) })), ['overlay-device-missing']);
  t.same(kinds(diagnose(b, { ...o, addresses: o.addresses.slice(0, 1) })), ['overlay-device-address-missing']);

  // Peer entries from etcd against the device's.
  const peer = { id: 'h2', underlay: ip('192.0.2.2'), mac: '02:00:00:00:00:02', blocks: [parseCidr('10.237.4.0/24') as Cidr] };
  const want = desiredEntries([peer], 'h1').entries;
  const withPeers: Believed = { ...b, overlays: [{ ...b.overlays[0], peerEntries: want, peers: 1 }] };
  t.same(diagnose(withPeers, { ...o, overlayEntries: { 'vxlan.42': want } }), [], 'the device holds what etcd says');
  t.same(diagnose(withPeers, o), [], 'entries not read: nothing to compare');
  const stale = { neigh: [{ ip: ip('10.237.9.0'), mac: '02:00:00:00:00:09' }], fdb: [], routes: [] };
  const drift = diagnose(withPeers, { ...o, overlayEntries: { 'vxlan.42': { ...stale, fdb: want.fdb, routes: want.routes } } });
  t.same(kinds(drift), ['overlay-peer-entries']);
  t.match(drift[0].what, /missing or wrong: neigh 10\.237\.4\.0 lladdr 02:00:00:00:00:02; not in etcd: neigh 10\.237\.9\.0/);
  t.equal(drift[0].safe, false);
});

t.test('the VIP table is expected only while vxnetd balances VIPs', async (t) => {
  const { b, o } = world();
  const views = [{ vip: '10.40.0.1:80/tcp', addresses: ['10.40.0.1'], protocol: 'tcp' as const, port: 80, backends: [] }];
  t.same(kinds(diagnose({ ...b, vips: { views, table: 'vxnet-vip' } }, { ...o, vipTable: null })), ['vip-table-missing']);
  t.same(diagnose({ ...b, vips: { views: [], table: 'vxnet-vip' } }, { ...o, vipTable: null }), []);
  t.same(diagnose({ ...b, vips: { views, table: 'vxnet-vip' } }, o), [], 'nft could not tell');
});

t.test('exit status', async (t) => {
  t.equal(exitStatus(0, 0), 0);
  t.equal(exitStatus(2, 0), 3);
  t.equal(exitStatus(2, 1), 3);
  t.equal(exitStatus(2, 2), 4);
});

t.test('command line', async (t) => {
  const inv = parseCommandLine(['doctor', '--fix', '--json', '--overlay-dir', '/tmp/x', '--data-dir', '/tmp/d']);
  t.match(inv, { kind: 'run', command: 'doctor', values: { fix: true, json: true, 'overlay-dir': '/tmp/x' } });
  t.throws(() => parseCommandLine(['doctor', '--network', 'x']), /does not apply to "vxnetctl doctor"/);
  t.throws(() => parseCommandLine(['doctor', 'extra']), /unexpected argument/);
  const help = parseCommandLine(['doctor', '--help']);
  t.equal(help.kind, 'help');
  if (help.kind === 'help') t.match(help.text, /Exit status: 0 nothing found; 3 problems found/);
});
