// vxnetctl doctor's masquerade, forwarding and routed FORWARD rule checks (ctl/doctor-nat.ts,
// through doctor-rules.ts diagnose): a network's setup record -> what its NAT table must hold,
// both ways, which fixes are safe. No root, no kernel.
import t from 'tap';
import { type Believed, type Observed, type ObservedLink, diagnose } from '../../ctl/doctor-rules';
import { type KernelNatTable, masqueradeCommand, parseNatTable, ruleText } from '../../ctl/doctor-nat';
import { hostVethName, setupAlias } from '../../datapath/names';
import { forwardRules, masqueradeRule, routedForwardRules } from '../../net/nat';
import { type Cidr, parseCidr } from '../../ipam/addr';

const NET = 'blue';
const BRIDGE = 'vx-blue';
const TABLE = 'vxtnat';
const cidr = (s: string): Cidr => parseCidr(s) as Cidr;
const aliasOf = (ipMasq: boolean, table = TABLE): string => setupAlias(NET, [NET, ['10.1.0.0/24'], ['10.1.0.1/24'], ipMasq, table]);

const natTable = (elements: string[] | undefined, rules = [masqueradeRule(4)], o: Partial<KernelNatTable> = {}): KernelNatTable => ({
  family: 4, name: TABLE, elements, setShapeOk: true, chain: { hookOk: true, rules }, ...o,
});

function world(alias = aliasOf(true), table: KernelNatTable | null = natTable(['10.1.0.0/24'])): { b: Believed; o: Observed } {
  const links: ObservedLink[] = [
    { index: 10, name: BRIDGE, kind: 'bridge', up: true, master: undefined, alias },
    { index: 11, name: hostVethName('c1', 'eth0'), kind: 'veth', up: true, master: 10, alias: undefined },
  ];
  const b: Believed = {
    allocations: [{ network: NET, address: '10.1.0.2', family: 4, containerId: 'c1', ifname: 'eth0', runtime: 'cni', netns: '/run/netns/c1' }],
    networks: [{ network: NET, subnets: ['10.1.0.0/24'], gateways: ['10.1.0.1/24'] }],
    overlays: [],
  };
  const o: Observed = {
    links, addresses: [{ index: 10, cidr: '10.1.0.1/24' }], hostRoutes: [], netns: { '/run/netns/c1': 'alive' },
    forward: { 4: forwardRules(BRIDGE) },
    nftTables: table ? [`ip ${TABLE}`] : [],
    natTables: table ? { [`ip ${TABLE}`]: table } : {},
    forwarding: { 4: true, 6: false },
  };
  return { b, o };
}

t.test('parseNatTable reads nft -j list table output', async (t) => {
  const json = {
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { table: { family: 'ip', name: TABLE, handle: 1 } },
      { set: { family: 'ip', name: 'masq', table: TABLE, type: 'ipv4_addr', flags: ['interval'], elem: [{ prefix: { addr: '10.1.0.0', len: 24 } }, '10.2.0.5'] } },
      { chain: { family: 'ip', table: TABLE, name: 'postrouting', type: 'nat', hook: 'postrouting', prio: 100, policy: 'accept' } },
      { rule: { family: 'ip', table: TABLE, chain: 'postrouting', expr: [
        { match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: '@masq' } },
        { match: { op: '!=', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: '@masq' } },
        { match: { op: '!=', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: { prefix: { addr: '224.0.0.0', len: 4 } } } },
        { masquerade: null },
      ] } },
    ],
  };
  t.same(parseNatTable(json), { family: 4, name: TABLE, elements: ['10.1.0.0/24', '10.2.0.5/32'], setShapeOk: true, chain: { hookOk: true, rules: [masqueradeRule(4)] } });
  t.same(parseNatTable({ nftables: [{ table: { family: 'ip', name: 'x' } }] }), { family: 4, name: 'x', elements: undefined, setShapeOk: false, chain: undefined });
  t.equal(parseNatTable({ nftables: [{ table: { family: 'inet', name: 'x' } }] }), undefined, 'inet tables are not masquerade tables');
  t.equal(parseNatTable('garbage'), undefined);
  t.equal(ruleText([{ counter: { packets: 0 } }]), '{"counter":{"packets":0}}', 'an unknown expression shows as its JSON');
});

t.test('a masqueraded network with its element, chain and rule: no finding', async (t) => {
  const { b, o } = world();
  t.same(diagnose(b, o), []);
});

t.test('the network\'s subnet missing from the set: found, safe, the exact command', async (t) => {
  const { b, o } = world(aliasOf(true), natTable([]));
  const found = diagnose(b, o);
  t.same(found.map((f) => f.kind), ['masquerade-missing']);
  t.equal(found[0].subject, `network ${NET} (nftables ip ${TABLE})`);
  t.match(found[0].what, /10\.1\.0\.0\/24 is not in the set masq/);
  t.equal(found[0].fix, `nft add element ip ${TABLE} masq '{ 10.1.0.0/24 }'`);
  t.equal(found[0].safe, true);
  t.same(found[0].actions, [{ op: 'masquerade', table: TABLE, network: NET, subnets: ['10.1.0.0/24'] }]);
  t.same(diagnose(b, { ...o, natTables: { [`ip ${TABLE}`]: natTable(['10.0.0.0/8']) } }), [], 'an element covering the subnet is enough');
});

t.test('the table missing: found with the script that re-creates it', async (t) => {
  const { b, o } = world(aliasOf(true), null);
  // The table is gone from nft's list: the record is matched through the configs' names.
  t.same(diagnose(b, o), [], 'a table nothing names cannot be matched: not judged');
  const found = diagnose({ ...b, natTableNames: [TABLE] }, o);
  t.same(found.map((f) => f.kind), ['masquerade-missing']);
  t.match(found[0].what, /NAT table ip vxtnat is missing/);
  t.equal(found[0].fix, masqueradeCommand(TABLE, ['10.1.0.0/24']));
  t.match(found[0].fix, /^nft 'add table ip vxtnat; add set ip vxtnat masq \{ type ipv4_addr; flags interval; \}; .*masquerade; add element ip vxtnat masq \{ 10\.1\.0\.0\/24 \}'$/);
  t.equal(found[0].safe, true);
});

t.test('a network not masqueraded (ipMasq false) needs no element', async (t) => {
  const { b, o } = world(aliasOf(false), natTable([]));
  t.same(diagnose(b, o), []);
});

t.test('the rule missing or changed, the chain gone: found; safe unless the chain is not vxnet\'s shape', async (t) => {
  const { b, o } = world();
  const key = `ip ${TABLE}`;
  const none = diagnose(b, { ...o, natTables: { [key]: natTable(['10.1.0.0/24'], []) } });
  t.same(none.map((f) => f.kind), ['masquerade-rule-changed']);
  t.match(none[0].what, /has no rule/);
  t.equal(none[0].safe, true);
  t.same(none[0].actions, [{ op: 'masquerade', table: TABLE, network: NET, subnets: ['10.1.0.0/24'] }]);
  const changed = diagnose(b, { ...o, natTables: { [key]: natTable(['10.1.0.0/24'], ['ip saddr @masq masquerade']) } });
  t.match(changed[0].what, /holds "ip saddr @masq masquerade" instead of "ip saddr @masq ip daddr != @masq ip daddr != 224\.0\.0\.0\/4 masquerade"/);
  const chainless = diagnose(b, { ...o, natTables: { [key]: natTable(['10.1.0.0/24'], [], { chain: undefined }) } });
  t.match(chainless[0].what, /chain postrouting is missing/);
  t.equal(chainless[0].safe, true);
  const hook = diagnose(b, { ...o, natTables: { [key]: natTable(['10.1.0.0/24'], [masqueradeRule(4)], { chain: { hookOk: false, rules: [masqueradeRule(4)] } }) } });
  t.equal(hook[0].safe, false);
  t.match(hook[0].fix, /^nft delete chain ip vxtnat postrouting; nft /);
  const shape = diagnose(b, { ...o, natTables: { [key]: natTable(['10.1.0.0/24'], [masqueradeRule(4)], { setShapeOk: false }) } });
  t.same(shape.map((f) => [f.kind, f.safe]), [['masquerade-rule-changed', false]]);
});

t.test('stale elements: a subnet no network has is safe to delete; one a network has is judged by its record', async (t) => {
  const { b, o } = world();
  const key = `ip ${TABLE}`;
  const stale = diagnose(b, { ...o, natTables: { [key]: natTable(['10.1.0.0/24', '198.51.100.0/24']) } });
  t.same(stale.map((f) => f.kind), ['masquerade-stale']);
  t.equal(stale[0].subject, `nftables ${key} element 198.51.100.0/24`);
  t.equal(stale[0].fix, `nft delete element ${key} masq '{ 198.51.100.0/24 }'`);
  t.equal(stale[0].safe, true);
  t.same(stale[0].actions, [{ op: 'unmasquerade', table: TABLE, family: 4, element: '198.51.100.0/24' }]);

  const used = diagnose(b, { ...o, addresses: [...o.addresses, { index: 10, cidr: '198.51.100.1/24' }], natTables: { [key]: natTable(['10.1.0.0/24', '198.51.100.0/24']) } });
  t.same(used.map((f) => [f.kind, f.safe]), [['masquerade-stale', false]], 'an address of this host inside it: not deleted');
  t.match(used[0].what, /this host has 198\.51\.100\.1\/24 in it/);

  const docker = diagnose({ ...b, otherSubnets: [{ network: 'dk', subnet: '198.51.100.0/24' }] }, { ...o, natTables: { [key]: natTable(['10.1.0.0/24', '198.51.100.0/24']) } });
  t.same(docker, [], 'a subnet of a network whose record is unread (a Docker network) is not judged');

  // A network reconfigured to ipMasq false keeps its old element: reported, not safe.
  const off = diagnose(b, { ...o, links: o.links.map((l) => (l.index === 10 ? { ...l, alias: aliasOf(false) } : l)) });
  t.same(off.map((f) => [f.kind, f.safe]), [['masquerade-stale', false]]);
  t.match(off[0].what, /no masquerading \(ipMasq false\)/);

  const foreign = diagnose(b, { ...o, nftTables: [...(o.nftTables ?? []), 'ip other'], natTables: { ...o.natTables, 'ip other': { ...natTable(['198.51.100.0/24']), name: 'other' } } });
  t.same(foreign, [], 'a table vxnet does not name is not vxnet\'s');
});

t.test('forwarding off while a gateway bridge routes: found, not safe', async (t) => {
  const { b, o } = world();
  const found = diagnose(b, { ...o, forwarding: { 4: false, 6: false } });
  t.same(found.map((f) => [f.kind, f.safe, f.fix]), [['forwarding-off', false, 'sysctl -w net.ipv4.ip_forward=1']]);
  t.match(found[0].what, /network blue routes/);
});

t.test('routed overlay networks: FORWARD rules by address, masquerading, forwarding', async (t) => {
  const DEV = 'vxlan4747';
  const OV = 'ov';
  const subnets = ['10.9.0.0/16'];
  const alias = setupAlias(OV, ['routed', OV, subnets, true, TABLE]);
  const rules = routedForwardRules(DEV, 4, [cidr('10.9.0.0/16')]);
  const b: Believed = {
    allocations: [{ network: OV, address: '10.9.1.3', family: 4, containerId: 'c9', ifname: 'eth0', runtime: 'cni', netns: '/run/netns/c9' }],
    networks: [], overlays: [{ network: OV, device: DEV, vni: 4747, deviceAddresses: [], subnets }],
  };
  const veth = hostVethName('c9', 'eth0');
  const o: Observed = {
    links: [{ index: 5, name: DEV, kind: 'vxlan', up: true, master: undefined, alias }, { index: 6, name: veth, kind: 'veth', up: true, master: undefined, alias: undefined }],
    addresses: [], hostRoutes: [{ address: '10.9.1.3', family: 4, oif: 6 }], netns: { '/run/netns/c9': 'alive' },
    forward: { 4: rules }, nftTables: [`ip ${TABLE}`], natTables: { [`ip ${TABLE}`]: natTable(['10.9.0.0/16']) }, forwarding: { 4: true },
  };
  t.same(diagnose(b, o), [], 'consistent');
  const gone = diagnose(b, { ...o, forward: { 4: rules.slice(1) }, natTables: { [`ip ${TABLE}`]: natTable([]) }, forwarding: { 4: false } });
  t.same(gone.map((f) => f.kind), ['forward-rules-missing', 'masquerade-missing', 'forwarding-off']);
  t.equal(gone[0].subject, `overlay network ${OV} (device ${DEV}), IPv4`);
  t.equal(gone[0].fix, 'iptables -w -I FORWARD 1 -s 10.9.0.0/16 -m comment --comment vxnet:vxlan4747 -j ACCEPT');
  t.same(gone[0].actions, [{ op: 'add-forward-rules', family: 4, rules: rules.slice(0, 1) }]);
  t.same(gone.map((f) => f.safe), [true, true, false]);
  // Without containers here and without a setup record, nothing is expected of the host.
  const idle = diagnose({ ...b, allocations: [] }, { ...o, links: [{ ...o.links[0], alias: undefined }], hostRoutes: [], forward: { 4: [] }, natTables: { [`ip ${TABLE}`]: natTable([]) } });
  t.same(idle, []);
});
