// cnm/model.ts and cnm/state.ts, pure: the IPAM config a Docker pool and an overlay host's
// blocks stand for (built from parsed values, and the same pool definition the CNI side
// registers from text), PoolIDs checked as RequestPool checks them, network records decoded
// into typed values with precise refusals.
import t from 'tap';
import { parseCidr, parseIp } from '../../ipam/addr';
import { parseIpamConf, poolDefinition } from '../../ipam/config';
import { blockRanges } from '../../overlay/local';
import { ipamConfFor, overlayIpamConf, parsePoolId, parsePoolRequest, parseNetworkOptions, poolId, requestPoolSpec, setsOfFamily } from '../../cnm/model';
import { decodeRecord, encodeRecord, type NetworkRecord } from '../../cnm/state';
import { caught } from '../ipam/helpers/errors';

const cidr = (text: string) => {
  const c = parseCidr(text);
  if (!c) throw new Error(`test literal ${text}`);
  return c;
};
const ipOf = (text: string) => {
  const i = parseIp(text);
  if (!i) throw new Error(`test literal ${text}`);
  return i;
};

t.test('a pool\'s IPAM config: what the CNI side parses from the same ranges', async (t) => {
  const whole = ipamConfFor('blue', { pool: cidr('10.232.5.0/24'), subPool: undefined }, ipOf('10.232.5.1'));
  t.equal(poolDefinition(whole), poolDefinition(parseIpamConf('blue', { ranges: [[{ subnet: '10.232.5.0/24' }]] })));
  const cut = ipamConfFor('blue', { pool: cidr('10.232.5.0/24'), subPool: cidr('10.232.5.0/25') }, ipOf('10.232.5.254'));
  t.equal(poolDefinition(cut), poolDefinition(parseIpamConf('blue', { ranges: [[{ subnet: '10.232.5.0/24', rangeStart: '10.232.5.1', rangeEnd: '10.232.5.127', gateway: '10.232.5.254' }]] })),
    '--ip-range cut to the subnet\'s host addresses, --gateway kept');
  t.same(cut.routes, []);
});

t.test('an overlay host\'s IPAM config: the CNI plugin\'s overlay pool, one set per block', async (t) => {
  const blocks = [cidr('10.240.3.0/24'), cidr('fd40:0:0:3::/64')];
  const ov = { network: 'ov1', hostId: 'h', vni: 1, device: 'vxlan.1', mtu: 1400, blocks, updated: 0 };
  t.equal(poolDefinition(overlayIpamConf(ov)), poolDefinition(parseIpamConf('ov1', { ranges: blockRanges(blocks) })));
  t.equal(overlayIpamConf(ov).network, 'ov1');
});

t.test('PoolIDs: round trip, and what RequestPool refuses is refused when Docker hands it back', async (t) => {
  const spec = requestPoolSpec({ Pool: '10.232.5.0/24', SubPool: '10.232.5.128/25' });
  t.same(parsePoolId(poolId(spec), 'RequestAddress'), spec);
  const bad = (id: string, why: string) => ({ name: 'DecodingFailure', code: 6, message: `RequestAddress: PoolID ${JSON.stringify(id)} is not a vxnet pool id (vxnet:CIDR[:CIDR]): ${why}` });
  for (const [id, why] of [
    ['10.0.0.0/24', 'no "vxnet:" prefix'],
    ['vxnet:nope', 'not CIDRs'],
    ['vxnet:10.0.0.0/24:10.0.0.0/25:x', 'not CIDRs'],
    ['vxnet:10.0.0.1/24', '--subnet 10.0.0.1/24 has host bits set; the network is 10.0.0.0/24'],
    ['vxnet:10.0.0.0/31', '--subnet 10.0.0.0/31 is too small to allocate from (at most /30)'],
    ['vxnet:fd00::/64:fd00::/64:fd00::/80', 'not CIDRs'],
    ['vxnet:fd00::1/64', '--subnet fd00::1/64 has host bits set; the network is fd00::/64'],
    ['vxnet:fd00::/127', '--subnet fd00::/127 is too small to allocate from (at most /126)'],
    ['vxnet:fd00::/64:10.0.0.0/25', '--ip-range 10.0.0.0/25 is not an IPv6 CIDR'],
    ['vxnet:10.0.0.0/24:10.9.0.0/25', '--ip-range 10.9.0.0/25 is not inside --subnet 10.0.0.0/24'],
    ['vxnet:10.0.0.0/24:10.0.0.0/32', '--ip-range 10.0.0.0/32 holds no host address of --subnet 10.0.0.0/24'],
  ] as const) {
    t.strictSame(caught(() => parsePoolId(id, 'RequestAddress')), bad(id, why), id);
  }
});

t.test('IPv6 pools: PoolIDs round trip (a CIDR ends in /digits, so the colons split unambiguously)', async (t) => {
  for (const [Pool, SubPool] of [['fd00:232::/64', ''], ['fd00:232::/64', 'fd00:232::8000:0:0/65'], ['fd00::/126', '']] as const) {
    const spec = requestPoolSpec({ Pool, SubPool, V6: true });
    t.same(parsePoolId(poolId(spec), 'RequestAddress'), spec, poolId(spec));
  }
  t.equal(poolId(requestPoolSpec({ Pool: 'fd00:232::/64', SubPool: 'fd00:232::/80', V6: true })), 'vxnet:fd00:232::/64:fd00:232::/80');
  t.strictSame(caught(() => requestPoolSpec({ Pool: '10.0.0.0/24', V6: true })),
    { name: 'InvalidNetworkConfig', code: 7, message: '--subnet (IPv6, with --ipv6) 10.0.0.0/24 is not an IPv6 CIDR such as fd00:232::/64' });
  t.strictSame(caught(() => requestPoolSpec({ Pool: 'fd00::/64', V6: false })),
    { name: 'InvalidNetworkConfig', code: 7, message: '--subnet fd00::/64 is not an IPv4 CIDR such as 10.232.0.0/24' });
  t.strictSame(parsePoolRequest({ Pool: '', Options: { network: 'blue' }, V6: true }), { kind: 'network', network: 'blue', family: 6 }, 'no --subnet, tied by --ipam-opt network=');
  t.strictSame(caught(() => parsePoolRequest({ Pool: '', Options: { network: '-x' }, V6: true }))?.name, 'InvalidNetworkConfig');
});

t.test('a dual-stack pool\'s IPAM config: what the CNI side parses from the same two range sets', async (t) => {
  const conf = ipamConfFor('dual', { pool: cidr('10.232.5.0/24'), subPool: undefined }, ipOf('10.232.5.1'), { spec: { pool: cidr('fd00:5::/64'), subPool: undefined }, gateway: ipOf('fd00:5::1') });
  t.equal(poolDefinition(conf), poolDefinition(parseIpamConf('dual', { ranges: [[{ subnet: '10.232.5.0/24' }], [{ subnet: 'fd00:5::/64' }]] })));
  t.same(setsOfFamily(conf, 6), [1]);
  t.same(setsOfFamily(conf, 4), [0]);
});

t.test('RequestPool: an --ip-range without a host address is refused at network create', async (t) => {
  t.strictSame(caught(() => requestPoolSpec({ Pool: '10.232.5.0/24', SubPool: '10.232.5.255/32' })),
    { name: 'InvalidNetworkConfig', code: 7, message: '--ip-range 10.232.5.255/32 holds no host address of --subnet 10.232.5.0/24' });
  t.same(requestPoolSpec({ Pool: '10.232.5.0/24', SubPool: '10.232.5.7/32' }).subPool, cidr('10.232.5.7/32'), 'one host address is enough');
});

const record: NetworkRecord = {
  id: 'a'.repeat(64), name: 'blue', dockerName: 'blue', pool: cidr('10.232.5.0/24'), gateway: cidr('10.232.5.1/24'),
  options: parseNetworkOptions({ 'com.docker.network.generic': { mtu: '1400', bridge: 'vxtbr' } }), mode: 'bridge', created: 5,
};

t.test('network records: typed in memory, text in the file, refused precisely when wrong', async (t) => {
  const text = encodeRecord(record);
  t.match(JSON.parse(text), { pool: '10.232.5.0/24', gateway: '10.232.5.1/24', mode: 'bridge', options: { mtu: 1400, bridge: 'vxtbr', ipMasq: true, natTable: 'vxnet' } });
  t.same(decodeRecord(text), record, 'round trip');
  const legacy = { ...JSON.parse(text) };
  delete legacy.mode;
  t.equal(decodeRecord(JSON.stringify(legacy)).mode, undefined, 'a record from before the mode: decided by the driver');
  const wrong = (patch: Record<string, unknown>): string | undefined => caught(() => decodeRecord(JSON.stringify({ ...JSON.parse(text), ...patch })))?.message;
  t.equal(wrong({ id: 'x' }), '"id" is not a Docker id');
  t.equal(wrong({ pool: '10.232.5.0' }), '"pool" "10.232.5.0" is not an IPv4 CIDR');
  t.equal(wrong({ gateway: 'fd00::1/64' }), '"gateway" "fd00::1/64" is not an IPv4 address/prefix');
  t.equal(wrong({ mode: 'vlan' }), '"mode" "vlan" is neither bridge nor overlay');
  t.equal(wrong({ pool6: '10.0.0.0/24', gateway6: 'fd00::1/64' }), '"pool6" "10.0.0.0/24" is not an IPv6 CIDR');
  t.equal(wrong({ pool6: 'fd00::/64' }), '"gateway6" null is not an IPv6 address/prefix');
  const dual: NetworkRecord = { ...record, v6: { pool: cidr('fd00:5::/64'), gateway: cidr('fd00:5::1/64') } };
  t.same(decodeRecord(encodeRecord(dual)), dual, 'a dual-stack record round trips');
  t.match(JSON.parse(encodeRecord(dual)), { pool6: 'fd00:5::/64', gateway6: 'fd00:5::1/64' });
  t.equal(wrong({ name: '-x' }), '"name" "-x" is not a network name');
  t.equal(wrong({ options: { mtu: 'big' } }), '"options.mtu" is "big"');
  t.equal(wrong({ options: [] }), '"options" is not an object');
});
