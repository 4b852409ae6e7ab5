// ipam/config.ts: the ipam section canonicalized once (legacy subnet, runtimeConfig.ipRanges,
// routes, dataDir) and the static addresses a runtime asked for, in precedence order.
import t from 'tap';
import { formatIp } from '../../ipam/addr';
import { parseIpamConf, poolDefinition, requestedIps, subnetsOf } from '../../ipam/config';
import { setToJson } from '../../ipam/range';
import { caught, invalidConf } from '../ipam/helpers/errors';

const subnets = (ipam: unknown, rc?: Record<string, unknown>): string[][] =>
  parseIpamConf('net', ipam, rc).rangeSets.map((set) => set.map((r) => `${formatIp(r.subnet.ip)}/${r.subnet.prefix}`));

t.test('ranges, legacy subnet and runtimeConfig.ipRanges', async (t) => {
  const conf = parseIpamConf('blue', { type: 'vxnet-ipam', ranges: [[{ subnet: '10.1.0.0/24' }]] });
  t.equal(conf.network, 'blue', 'the pool is named after the network');
  t.same(conf.routes, []);
  t.equal(conf.dataDir, undefined);
  t.same(setToJson(conf.rangeSets[0]), [{ subnet: '10.1.0.0/24', rangeStart: '10.1.0.1', rangeEnd: '10.1.0.254', gateway: '10.1.0.1' }]);

  t.same(setToJson(parseIpamConf('n', { subnet: '10.5.0.0/16', rangeStart: '10.5.1.0', rangeEnd: '10.5.1.255', gateway: '10.5.0.254' }).rangeSets[0]),
    [{ subnet: '10.5.0.0/16', rangeStart: '10.5.1.0', rangeEnd: '10.5.1.255', gateway: '10.5.0.254' }], 'legacy top-level subnet with its fields');

  const cases: Array<[string, unknown, Record<string, unknown> | undefined, string[][]]> = [
    ['legacy subnet alone', { subnet: '10.5.0.0/16' }, undefined, [['10.5.0.0/16']]],
    ['legacy subnet goes before ranges', { subnet: '10.5.0.0/16', ranges: [[{ subnet: '10.6.0.0/16' }]] }, undefined, [['10.5.0.0/16'], ['10.6.0.0/16']]],
    ['runtimeConfig.ipRanges prepended', { ranges: [[{ subnet: '10.1.0.0/24' }]] }, { ipRanges: [[{ subnet: '10.9.0.0/24' }]] },
      [['10.9.0.0/24'], ['10.1.0.0/24']]],
    ['ipRanges, then subnet, then ranges', { subnet: '10.5.0.0/16', ranges: [[{ subnet: '10.6.0.0/16' }]] },
      { ipRanges: [[{ subnet: '10.9.0.0/24' }, { subnet: '10.8.0.0/24' }]] }, [['10.9.0.0/24', '10.8.0.0/24'], ['10.5.0.0/16'], ['10.6.0.0/16']]],
    ['ipRanges alone are enough', {}, { ipRanges: [[{ subnet: '10.9.0.0/24' }]] }, [['10.9.0.0/24']]],
    ['runtimeConfig without ipRanges', { ranges: [[{ subnet: '10.1.0.0/24' }]] }, { ips: ['10.1.0.5'] }, [['10.1.0.0/24']]],
    ['dual stack', { ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: '2001:db8::/64' }]] }, undefined, [['10.1.0.0/24'], ['2001:db8::/64']]],
  ];
  for (const [name, ipam, rc, want] of cases) t.same(subnets(ipam, rc), want, name);
});

t.test('rejections', async (t) => {
  const cases: Array<[string, unknown, Record<string, unknown> | undefined, string]> = [
    ['ipam missing', undefined, undefined, 'ipam: must be an object with "ranges" (or "subnet")'],
    ['ipam a list', [], undefined, 'ipam: must be an object with "ranges" (or "subnet")'],
    ['no ranges at all', { type: 'vxnet-ipam' }, undefined, 'ipam.ranges: missing; give at least one range set, e.g. [[{"subnet":"10.22.0.0/16"}]]'],
    ['ranges empty', { ranges: [] }, undefined, 'ipam.ranges: missing; give at least one range set, e.g. [[{"subnet":"10.22.0.0/16"}]]'],
    ['ranges not a list', { ranges: { subnet: '10.1.0.0/24' } }, undefined, 'ipam.ranges: must be a list of range sets, e.g. [[{"subnet":"10.22.0.0/16"}]]'],
    ['host bits set', { ranges: [[{ subnet: '10.1.0.5/24' }]] }, undefined,
      'ipam.ranges[0][0].subnet: 10.1.0.5/24 has host bits set; network is 10.1.0.0/24'],
    ['range outside the subnet', { ranges: [[{ subnet: '10.1.0.0/24', rangeEnd: '10.1.2.0' }]] }, undefined,
      'ipam.ranges[0][0].rangeEnd: 10.1.2.0 is outside subnet 10.1.0.0/24'],
    ['mixed families', { ranges: [[{ subnet: '2001:db8::/64' }, { subnet: '10.1.0.0/24' }]] }, undefined,
      'ipam.ranges[0][1]: mixes IPv4 into an IPv6 range set'],
    // Once the legacy subnet or ipRanges are merged in, indexes are of the merged list, not of ipam.ranges.
    ['ipRanges overlap ranges', { ranges: [[{ subnet: '10.1.0.0/24' }]] }, { ipRanges: [[{ subnet: '10.1.0.0/16' }]] },
      'ipam ranges: range set 1 overlaps with 0'],
    ['routes not a list', { ranges: [[{ subnet: '10.1.0.0/24' }]], routes: { dst: '0.0.0.0/0' } }, undefined,
      'ipam.routes: must be a list of {"dst": CIDR, "gw"?: IP}'],
    ['route dst not a CIDR', { ranges: [[{ subnet: '10.1.0.0/24' }]], routes: [{ dst: '0.0.0.0/0' }, { dst: '10.0.0.0' }] }, undefined,
      'ipam.routes[1].dst: "10.0.0.0" is not a valid CIDR'],
    ['route dst missing', { ranges: [[{ subnet: '10.1.0.0/24' }]], routes: [{ gw: '10.1.0.1' }] }, undefined,
      'ipam.routes[0].dst: undefined is not a valid CIDR'],
    ['route not an object', { ranges: [[{ subnet: '10.1.0.0/24' }]], routes: ['0.0.0.0/0'] }, undefined,
      'ipam.routes[0].dst: "0.0.0.0/0" is not a valid CIDR'],
    ['route gw not an IP', { ranges: [[{ subnet: '10.1.0.0/24' }]], routes: [{ dst: '0.0.0.0/0', gw: 'router' }] }, undefined,
      'ipam.routes[0].gw: "router" is not an IP address'],
    ['dataDir relative', { ranges: [[{ subnet: '10.1.0.0/24' }]], dataDir: 'var/lib/vxnet' }, undefined,
      'ipam.dataDir: "var/lib/vxnet" must be an absolute path'],
    ['dataDir not a string', { ranges: [[{ subnet: '10.1.0.0/24' }]], dataDir: 7 }, undefined, 'ipam.dataDir: 7 must be an absolute path'],
  ];
  for (const [name, ipam, rc, message] of cases) t.strictSame(caught(() => parseIpamConf('net', ipam, rc)), invalidConf(message), name);

  // The legacy form's error carries the same text after the merged list's field name.
  const legacy = caught(() => parseIpamConf('net', { subnet: '10.1.0.5/24' }));
  t.equal(legacy?.code, 7);
  t.match(legacy?.message, /ranges\[0\]\[0\]\.subnet: 10\.1\.0\.5\/24 has host bits set; network is 10\.1\.0\.0\/24$/, 'legacy subnet with host bits');
});

t.test('routes and dataDir', async (t) => {
  const conf = parseIpamConf('net', {
    ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: '2001:db8::/64' }]],
    routes: [{ dst: '0.0.0.0/0' }, { dst: '192.168.0.0/16', gw: '10.1.0.254' }, { dst: '::/0', gw: '2001:db8::1' }],
    dataDir: '/run/vxnet-test',
  });
  t.same(conf.routes, [{ dst: '0.0.0.0/0' }, { dst: '192.168.0.0/16', gw: '10.1.0.254' }, { dst: '::/0', gw: '2001:db8::1' }]);
  t.notOk('gw' in conf.routes[0], 'no gw key when none was given');
  t.equal(conf.dataDir, '/run/vxnet-test');
  t.same(parseIpamConf('net', { ranges: [[{ subnet: '10.1.0.0/24' }]], routes: null }).routes, [], 'routes: null is no routes');
});

t.test('pool definition: canonical JSON; subnets compare sorted', async (t) => {
  const a = parseIpamConf('net', { ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: '2001:db8::/64' }]] });
  const b = parseIpamConf('net', { ranges: [[{ subnet: '10.1.0.0/24', rangeStart: '10.1.0.1', rangeEnd: '10.1.0.254', gateway: '10.1.0.1' }],
    [{ subnet: '2001:0db8::/64' }]] });
  t.equal(poolDefinition(a), poolDefinition(b), 'defaults spelled out or left out define the same pool');
  t.same(JSON.parse(poolDefinition(a)), [
    [{ subnet: '10.1.0.0/24', rangeStart: '10.1.0.1', rangeEnd: '10.1.0.254', gateway: '10.1.0.1' }],
    [{ subnet: '2001:db8::/64', rangeStart: '2001:db8::1', rangeEnd: '2001:db8::ffff:ffff:ffff:ffff', gateway: '2001:db8::1' }],
  ]);
  const c = parseIpamConf('net', { ranges: [[{ subnet: '10.2.0.0/24' }, { subnet: '10.1.0.0/24' }]] });
  t.same(subnetsOf(poolDefinition(c)), ['10.1.0.0/24', '10.2.0.0/24']);
});

t.test('requestedIps: runtimeConfig.ips > args.cni.ips > CNI_ARGS IP', async (t) => {
  const args = (ip?: string): Map<string, string> => new Map(ip === undefined ? [] : [['IP', ip]]);
  const cases: Array<[string, Record<string, unknown>, Map<string, string>, string[]]> = [
    ['all three: runtimeConfig.ips wins',
      { runtimeConfig: { ips: ['10.1.0.5/24'] }, args: { cni: { ips: ['10.1.0.6'] } } }, args('10.1.0.7'), ['10.1.0.5']],
    ['args.cni.ips over CNI_ARGS', { args: { cni: { ips: ['10.1.0.6'] } } }, args('10.1.0.7'), ['10.1.0.6']],
    ['CNI_ARGS IP alone, comma separated, both families', {}, args('10.1.0.7,2001:db8::7'), ['10.1.0.7', '2001:db8::7']],
    ['an empty runtimeConfig.ips falls through', { runtimeConfig: { ips: [] }, args: { cni: { ips: ['10.1.0.6'] } } }, args(), ['10.1.0.6']],
    ['an empty args.cni.ips falls through', { args: { cni: { ips: [] } } }, args('10.1.0.7'), ['10.1.0.7']],
    ['prefixes are dropped', { runtimeConfig: { ips: ['10.1.0.5/24', '2001:db8::5/64'] } }, args(), ['10.1.0.5', '2001:db8::5']],
    ['nothing asked', { runtimeConfig: {}, args: { cni: {} } }, args(), []],
    ['other CNI_ARGS ignored', {}, new Map([['K8S_POD_NAME', 'web-0']]), []],
  ];
  for (const [name, netconf, cniArgs, want] of cases) t.same(requestedIps(netconf, cniArgs).map(formatIp), want, name);

  const bad: Array<[string, Record<string, unknown>, Map<string, string>, string]> = [
    ['runtimeConfig.ips not a list', { runtimeConfig: { ips: '10.1.0.5' } }, args(), 'runtimeConfig.ips: must be a list of addresses'],
    ['runtimeConfig.ips entry not a string', { runtimeConfig: { ips: [5] } }, args(), 'runtimeConfig.ips: 5 is not an IP address'],
    ['args.cni.ips entry not an IP', { args: { cni: { ips: ['bogus'] } } }, args(), 'args.cni.ips: "bogus" is not an IP address'],
    ['CNI_ARGS IP not an IP', {}, args('10.1.0.7,nope'), 'CNI_ARGS IP: "nope" is not an IP address'],
    ['a bad lower-precedence source is not read', { runtimeConfig: { ips: ['10.1.0.5'] } }, args('nope'), ''],
  ];
  for (const [name, netconf, cniArgs, message] of bad) {
    t.strictSame(caught(() => requestedIps(netconf, cniArgs)), message === '' ? undefined : invalidConf(message), name);
  }
});
