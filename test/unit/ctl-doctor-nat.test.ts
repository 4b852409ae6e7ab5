// vxnetctl doctor's masquerade and forwarding rules (ctl/doctor-nat.ts), pure: nft's JSON
// listing parsed; each network's recorded setup read back from its alias; missing, changed and
// stale masquerading; forwarding off while a network routes through the host.
import t from 'tap';
import {
  type KernelNatTable, type NatInput, bridgeSetupOf, forwardingFindings, natFindings, overlaps, parseNatTable, routedSetupOf,
} from '../../ctl/doctor-nat';
import { setupAlias } from '../../datapath/names';
import { masqueradeRule } from '../../net/nat';

/** `nft -j list table ip vxnet` for a table as net/nat.ts makes it. */
const listing = (elems: unknown[], rules: unknown[][] = [[
  { match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: '@masq' } },
  { match: { op: '!=', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: '@masq' } },
  { match: { op: '!=', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: { prefix: { addr: '224.0.0.0', len: 4 } } } },
  { masquerade: null },
]]): unknown => ({
  nftables: [
    { metainfo: { version: '1.0.6' } },
    { table: { family: 'ip', name: 'vxnet', handle: 1 } },
    { set: { family: 'ip', name: 'masq', table: 'vxnet', type: 'ipv4_addr', handle: 1, flags: ['interval'], ...(elems.length ? { elem: elems } : {}) } },
    { chain: { family: 'ip', table: 'vxnet', name: 'postrouting', handle: 2, type: 'nat', hook: 'postrouting', prio: 100, policy: 'accept' } },
    ...rules.map((expr, i) => ({ rule: { family: 'ip', table: 'vxnet', chain: 'postrouting', handle: 3 + i, expr } })),
  ],
});

t.test('parseNatTable reads what nft -j lists', async (t) => {
  const table = parseNatTable(listing([{ prefix: { addr: '10.1.0.0', len: 24 } }, '10.9.9.9', { range: ['10.2.0.1', '10.2.0.9'] }]));
  t.same(table, {
    family: 4, name: 'vxnet', elements: ['10.1.0.0/24', '10.9.9.9/32', '10.2.0.1-10.2.0.9'], setShapeOk: true,
    chain: { hookOk: true, rules: [masqueradeRule(4)] },
  }, 'elements, the set\'s shape, the chain and its rule in nft\'s words');
  t.equal(parseNatTable({ nftables: [{ table: { family: 'inet', name: 'x' } }] }), undefined, 'an inet table is not a masquerade table');
  t.equal(parseNatTable('nonsense'), undefined);
});

t.test('a setup record is read back from its alias', async (t) => {
  const alias = setupAlias('blue', ['blue', ['10.1.0.0/24'], ['10.1.0.1/24'], true, 'vxt-nat']);
  t.same(bridgeSetupOf('blue', ['10.1.0.0/24'], ['10.1.0.1/24'], alias, ['vxnet', 'vxt-nat']), { gateway: true, ipMasq: true, natTable: 'vxt-nat' });
  t.equal(bridgeSetupOf('blue', ['10.1.0.0/24'], ['10.1.0.1/24'], alias, ['vxnet']), undefined, 'a table no candidate names: not judged');
  t.equal(bridgeSetupOf('blue', ['10.1.0.0/24'], ['10.1.0.1/24'], undefined, ['vxt-nat']), undefined, 'no record');
  const routed = setupAlias('ov', ['routed', 'ov', ['10.5.0.0/16'], false, 'vxnet']);
  t.same(routedSetupOf('ov', ['10.5.0.0/16'], routed, ['vxnet']), { gateway: true, ipMasq: false, natTable: 'vxnet' });
});

t.test('masquerading: missing, changed, stale', async (t) => {
  const table = (elements: string[] | undefined, rules = [masqueradeRule(4)]): KernelNatTable =>
    ({ family: 4, name: 'vxnet', elements, setShapeOk: true, chain: { hookOk: true, rules } });
  const base = (tables: Record<string, KernelNatTable>, more: Partial<NatInput> = {}): NatInput => ({
    masqueraded: [{ network: 'blue', subnets: ['10.1.0.0/24'], setup: { gateway: true, ipMasq: true, natTable: 'vxnet' } }],
    known: [{ network: 'blue', subnet: '10.1.0.0/24' }], ownTables: ['vxnet'], nftTables: Object.keys(tables), tables, localAddresses: [], ...more,
  });
  t.same(natFindings(base({ 'ip vxnet': table(['10.1.0.0/24']) })), [], 'as set up: nothing');
  t.same(natFindings(base({ 'ip vxnet': table(['10.0.0.0/8']) })), [], 'a wider element covers the subnet');

  const missing = natFindings(base({ 'ip vxnet': table([]) }));
  t.match(missing, [{ kind: 'masquerade-missing', safe: true, fix: "nft add element ip vxnet masq '{ 10.1.0.0/24 }'",
    actions: [{ op: 'masquerade', table: 'vxnet', network: 'blue', subnets: ['10.1.0.0/24'] }] }]);
  const noTable = natFindings(base({}));
  t.match(noTable, [{ kind: 'masquerade-missing', safe: true, what: /table ip vxnet is missing/ }]);
  t.match(noTable[0]?.fix, /^nft 'add table ip vxnet; .*add element ip vxnet masq \{ 10\.1\.0\.0\/24 \}'$/, 'the setup\'s own script, one line');

  t.match(natFindings(base({ 'ip vxnet': table(['10.1.0.0/24'], ['ip saddr @masq accept']) })),
    [{ kind: 'masquerade-rule-changed', safe: true, what: /holds "ip saddr @masq accept" instead of/ }]);
  const notNat: KernelNatTable = { ...table(['10.1.0.0/24']), chain: { hookOk: false, rules: [masqueradeRule(4)] } };
  t.match(natFindings(base({ 'ip vxnet': notNat })), [{ kind: 'masquerade-rule-changed', safe: false, actions: [] }], 'a chain of another kind: not rewritten');

  const stale = natFindings(base({ 'ip vxnet': table(['10.1.0.0/24', '192.0.2.0/24']) }));
  t.match(stale, [{ kind: 'masquerade-stale', safe: true, actions: [{ op: 'unmasquerade', table: 'vxnet', family: 4, element: '192.0.2.0/24' }] }]);
  const used = natFindings(base({ 'ip vxnet': table(['10.1.0.0/24', '192.0.2.0/24']) }, { localAddresses: ['192.0.2.7/24'] }));
  t.match(used, [{ kind: 'masquerade-stale', safe: false, actions: [], what: /this host has 192\.0\.2\.7\/24 in it/ }], 'an address of this host inside: not deleted');
  t.same(natFindings(base({ 'ip other': { ...table(['192.0.2.0/24']), name: 'other' }, 'ip vxnet': table(['10.1.0.0/24']) })), [], 'a table not vxnet\'s is not judged');
  const moved = natFindings(base({ 'ip vxnet': table(['10.1.0.0/24']) }, {
    masqueraded: [{ network: 'blue', subnets: ['10.1.0.0/24'], setup: { gateway: true, ipMasq: false, natTable: 'vxnet' } }],
  }));
  t.match(moved, [{ kind: 'masquerade-stale', safe: false, what: /no masquerading \(ipMasq false\)/ }], 'a network whose record says no masquerading: reported, left');
});

t.test('forwarding and overlaps', async (t) => {
  t.same(forwardingFindings([{ family: 4, networks: ['blue'] }, { family: 6, networks: [] }], { 4: true, 6: false }), [], 'on where needed');
  t.match(forwardingFindings([{ family: 4, networks: ['blue', 'ov'] }], { 4: false }),
    [{ kind: 'forwarding-off', safe: false, fix: 'sysctl -w net.ipv4.ip_forward=1', what: /network blue, network ov route / }]);
  t.same(forwardingFindings([{ family: 4, networks: ['blue'] }], {}), [], 'not readable: not judged');
  t.ok(overlaps('10.1.0.0/16', '10.1.2.0/24'));
  t.ok(overlaps('10.1.2.5-10.1.2.9', '10.1.2.0/24'));
  t.notOk(overlaps('10.1.0.0/24', '10.2.0.0/24'));
  t.notOk(overlaps('10.1.0.0/24', 'fd00::/64'));
});
