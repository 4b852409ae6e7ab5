// ipam/range.ts: host-local's canonical ranges (defaults, rejections with the field named).
import t from 'tap';
import { caught, invalidConf } from '../ipam/helpers/errors';
import { Ip, parseIp } from '../../ipam/addr';
import {
  RangeSet, canonicalRange, canonicalRangeSets, describeSet, isGateway, rangeHolding, setCapacity, setFamily, setToJson,
} from '../../ipam/range';

const ip = (s: string): Ip => parseIp(s) as Ip;

t.test('defaults: gateway = network+1, rangeStart = network+1, rangeEnd = broadcast-1 (v4) / last (v6)', async (t) => {
  const cases: Array<{ input: Record<string, unknown>; want: ReturnType<typeof setToJson>[number] }> = [
    { input: { subnet: '10.1.0.0/24' },
      want: { subnet: '10.1.0.0/24', rangeStart: '10.1.0.1', rangeEnd: '10.1.0.254', gateway: '10.1.0.1' } },
    { input: { subnet: '10.1.0.0/16' },
      want: { subnet: '10.1.0.0/16', rangeStart: '10.1.0.1', rangeEnd: '10.1.255.254', gateway: '10.1.0.1' } },
    { input: { subnet: '192.168.7.8/30' },
      want: { subnet: '192.168.7.8/30', rangeStart: '192.168.7.9', rangeEnd: '192.168.7.10', gateway: '192.168.7.9' } },
    { input: { subnet: '2001:db8::/64' },
      want: { subnet: '2001:db8::/64', rangeStart: '2001:db8::1', rangeEnd: '2001:db8::ffff:ffff:ffff:ffff', gateway: '2001:db8::1' } },
    { input: { subnet: 'fd00::4/126' },
      want: { subnet: 'fd00::4/126', rangeStart: 'fd00::5', rangeEnd: 'fd00::7', gateway: 'fd00::5' } },
    { input: { subnet: '10.1.0.0/24', rangeStart: '10.1.0.100', rangeEnd: '10.1.0.200' },
      want: { subnet: '10.1.0.0/24', rangeStart: '10.1.0.100', rangeEnd: '10.1.0.200', gateway: '10.1.0.1' } },
    { input: { subnet: '10.1.0.0/24', gateway: '10.1.0.254' },
      want: { subnet: '10.1.0.0/24', rangeStart: '10.1.0.1', rangeEnd: '10.1.0.254', gateway: '10.1.0.254' } },
    { input: { subnet: '10.1.0.0/24', rangeStart: '', rangeEnd: null, gateway: '' },
      want: { subnet: '10.1.0.0/24', rangeStart: '10.1.0.1', rangeEnd: '10.1.0.254', gateway: '10.1.0.1' } },
    { input: { subnet: '2001:DB8:0:0::/64', rangeStart: '2001:db8::1:0', rangeEnd: '2001:db8::1:ffff' },
      want: { subnet: '2001:db8::/64', rangeStart: '2001:db8::1:0', rangeEnd: '2001:db8::1:ffff', gateway: '2001:db8::1' } },
  ];
  for (const c of cases) {
    t.same(setToJson([canonicalRange(c.input, 'r')]), [c.want], JSON.stringify(c.input));
  }
});

t.test('rejections name the field, with exact text', async (t) => {
  const cases: Array<[string, unknown, string]> = [
    ['host bits set (v4)', [[{ subnet: '10.1.0.5/24' }]],
      'ipam.ranges[0][0].subnet: 10.1.0.5/24 has host bits set; network is 10.1.0.0/24'],
    ['host bits set (v6)', [[{ subnet: '2001:db8::1/64' }]],
      'ipam.ranges[0][0].subnet: 2001:db8::1/64 has host bits set; network is 2001:db8::/64'],
    ['host bits set in a later range', [[{ subnet: '10.1.0.0/24' }], [{ subnet: '10.2.0.0/24' }, { subnet: '10.3.0.9/16' }]],
      'ipam.ranges[1][1].subnet: 10.3.0.9/16 has host bits set; network is 10.3.0.0/16'],
    ['not a list', 'x', 'ipam.ranges: must be a non-empty list of range sets, e.g. [[{"subnet":"10.22.0.0/16"}]]'],
    ['empty list', [], 'ipam.ranges: must be a non-empty list of range sets, e.g. [[{"subnet":"10.22.0.0/16"}]]'],
    ['empty set', [[]], 'ipam.ranges[0]: must be a non-empty list of ranges'],
    ['set not nested', [{ subnet: '10.1.0.0/24' }], 'ipam.ranges[0]: must be a non-empty list of ranges'],
    ['range not an object', [[null]], 'ipam.ranges[0][0]: must be an object with a "subnet"'],
    ['subnet missing', [[{}]], 'ipam.ranges[0][0].subnet: missing (a CIDR such as "10.22.0.0/16" is required)'],
    ['subnet not a string', [[{ subnet: 24 }]], 'ipam.ranges[0][0].subnet: missing (a CIDR such as "10.22.0.0/16" is required)'],
    ['subnet not a CIDR', [[{ subnet: '10.1.0.0' }]], 'ipam.ranges[0][0].subnet: "10.1.0.0" is not a valid CIDR'],
    ['subnet /31', [[{ subnet: '10.1.0.0/31' }]], 'ipam.ranges[0][0].subnet: 10.1.0.0/31 is too small to allocate from (at most /30)'],
    ['subnet /32', [[{ subnet: '10.1.0.1/32' }]], 'ipam.ranges[0][0].subnet: 10.1.0.1/32 is too small to allocate from (at most /30)'],
    ['subnet /127', [[{ subnet: 'fd00::/127' }]], 'ipam.ranges[0][0].subnet: fd00::/127 is too small to allocate from (at most /126)'],
    ['rangeStart not an IP', [[{ subnet: '10.1.0.0/24', rangeStart: 'ten' }]], 'ipam.ranges[0][0].rangeStart: "ten" is not an IP address'],
    ['rangeEnd a number', [[{ subnet: '10.1.0.0/24', rangeEnd: 5 }]], 'ipam.ranges[0][0].rangeEnd: 5 is not an IP address'],
    ['gateway a CIDR', [[{ subnet: '10.1.0.0/24', gateway: '10.1.0.1/24' }]], 'ipam.ranges[0][0].gateway: "10.1.0.1/24" is not an IP address'],
    ['rangeStart outside the subnet', [[{ subnet: '10.1.0.0/24', rangeStart: '10.2.0.5' }]],
      'ipam.ranges[0][0].rangeStart: 10.2.0.5 is outside subnet 10.1.0.0/24'],
    ['rangeEnd outside the subnet', [[{ subnet: '10.1.0.0/24', rangeEnd: '10.1.1.0' }]],
      'ipam.ranges[0][0].rangeEnd: 10.1.1.0 is outside subnet 10.1.0.0/24'],
    ['gateway outside the subnet', [[{ subnet: '10.1.0.0/24', gateway: '10.2.0.1' }]],
      'ipam.ranges[0][0].gateway: 10.2.0.1 is outside subnet 10.1.0.0/24'],
    ['rangeStart of the other family', [[{ subnet: '10.1.0.0/24', rangeStart: '2001:db8::5' }]],
      'ipam.ranges[0][0].rangeStart: 2001:db8::5 is outside subnet 10.1.0.0/24'],
    ['rangeStart is the network address', [[{ subnet: '10.1.0.0/24', rangeStart: '10.1.0.0' }]],
      "ipam.ranges[0][0].rangeStart: 10.1.0.0 is the subnet's network address"],
    ['rangeEnd is the broadcast address', [[{ subnet: '10.1.0.0/24', rangeEnd: '10.1.0.255' }]],
      "ipam.ranges[0][0].rangeEnd: 10.1.0.255 is the subnet's broadcast address"],
    ['v6 rangeStart is the network address', [[{ subnet: '2001:db8::/64', rangeStart: '2001:db8::' }]],
      "ipam.ranges[0][0].rangeStart: 2001:db8:: is the subnet's network address"],
    ['rangeStart after rangeEnd', [[{ subnet: '10.1.0.0/24', rangeStart: '10.1.0.50', rangeEnd: '10.1.0.10' }]],
      'ipam.ranges[0][0]: rangeStart 10.1.0.50 is after rangeEnd 10.1.0.10'],
    ['mixed families in a set', [[{ subnet: '10.1.0.0/24' }, { subnet: '2001:db8::/64' }]],
      'ipam.ranges[0][1]: mixes IPv6 into an IPv4 range set'],
    ['overlapping ranges in a set', [[{ subnet: '10.1.0.0/24' }, { subnet: '10.1.0.0/16' }]],
      'ipam.ranges[0][1]: overlaps ipam.ranges[0][0]'],
    ['overlapping custom ranges in a set', [[
      { subnet: '10.1.0.0/24', rangeStart: '10.1.0.10', rangeEnd: '10.1.0.20' },
      { subnet: '10.1.0.0/24', rangeStart: '10.1.0.20', rangeEnd: '10.1.0.30' }]],
    'ipam.ranges[0][1]: overlaps ipam.ranges[0][0]'],
    ['overlapping sets', [[{ subnet: '10.1.0.0/24' }], [{ subnet: '10.1.0.0/24', rangeStart: '10.1.0.200' }]],
      'ipam.ranges: range set 1 overlaps with 0'],
    ['overlapping sets, later range', [[{ subnet: '10.1.0.0/24' }], [{ subnet: '10.2.0.0/24' }], [{ subnet: '10.3.0.0/24' }, { subnet: '10.2.0.0/16' }]],
      'ipam.ranges: range set 2 overlaps with 1'],
  ];
  for (const [name, input, message] of cases) {
    t.strictSame(caught(() => canonicalRangeSets(input)), invalidConf(message), name);
  }
});

t.test('what is allowed', async (t) => {
  const ok: Array<[string, unknown]> = [
    ['two subnets in one set', [[{ subnet: '10.1.0.0/24' }, { subnet: '10.2.0.0/24' }]]],
    ['two disjoint ranges of one subnet', [[
      { subnet: '10.1.0.0/24', rangeStart: '10.1.0.10', rangeEnd: '10.1.0.19' },
      { subnet: '10.1.0.0/24', rangeStart: '10.1.0.20', rangeEnd: '10.1.0.30' }]]],
    ['dual stack: one set per family', [[{ subnet: '10.1.0.0/24' }], [{ subnet: '2001:db8::/64' }]]],
    ['two v6 sets', [[{ subnet: '2001:db8::/64' }], [{ subnet: '2001:db8:1::/64' }]]],
    ['v6 rangeEnd is the last address', [[{ subnet: '2001:db8::/64', rangeEnd: '2001:db8::ffff:ffff:ffff:ffff' }]]],
    ['gateway outside the range', [[{ subnet: '10.1.0.0/24', rangeStart: '10.1.0.10', gateway: '10.1.0.1' }]]],
    ['single address range', [[{ subnet: '10.1.0.0/24', rangeStart: '10.1.0.7', rangeEnd: '10.1.0.7' }]]],
  ];
  for (const [name, input] of ok) t.doesNotThrow(() => canonicalRangeSets(input), name);
  const sets = canonicalRangeSets([[{ subnet: '10.1.0.0/24' }], [{ subnet: '2001:db8::/64' }]]);
  t.same(sets.map(setFamily), [4, 6], 'families of a dual-stack config');
});

t.test('rangeHolding / isGateway / describeSet / setCapacity', async (t) => {
  const [set] = canonicalRangeSets([[
    { subnet: '10.1.0.0/29' },
    { subnet: '10.2.0.0/24', rangeStart: '10.2.0.10', rangeEnd: '10.2.0.19', gateway: '10.2.0.1' },
  ]]);
  t.equal(describeSet(set), '10.1.0.1-10.1.0.6,10.2.0.10-10.2.0.19');
  t.equal(setCapacity(set), 5n + 10n, 'the gateway inside a range is not counted; one outside is not subtracted');
  t.equal(rangeHolding(set, ip('10.1.0.3')), set[0]);
  t.equal(rangeHolding(set, ip('10.2.0.19')), set[1]);
  t.equal(rangeHolding(set, ip('10.2.0.9')), undefined, 'in the subnet but before rangeStart');
  t.equal(rangeHolding(set, ip('10.1.0.7')), undefined, 'the broadcast address');
  t.equal(rangeHolding(set, ip('::a01:3')), undefined, 'same value, other family');
  t.ok(isGateway(set, ip('10.1.0.1')));
  t.ok(isGateway(set, ip('10.2.0.1')));
  t.notOk(isGateway(set, ip('10.1.0.2')));
  t.notOk(isGateway(set, ip('::a01:1')), 'same value, other family');
  const [v6]: RangeSet[] = canonicalRangeSets([[{ subnet: 'fd00::/120' }]]);
  t.equal(setCapacity(v6), 254n, 'v6: ::1..::ff minus the gateway');
  t.equal(describeSet(v6), 'fd00::1-fd00::ff');
});
