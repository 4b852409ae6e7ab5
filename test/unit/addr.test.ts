import t from 'tap';
import {
  Ip, contains, formatCidr, formatIp, ipFromKey, ipKey, lastOf, networkOf, offsetIp, parseCidr, parseIp, sameIp, subnetSize,
} from '../../ipam/addr';

const v4 = (value: bigint): Ip => ({ family: 4, value });
const v6 = (value: bigint): Ip => ({ family: 6, value });

t.test('parseIp / formatIp', async (t) => {
  // [input, parsed (undefined = rejected), canonical text]
  const cases: Array<[string, Ip | undefined, string?]> = [
    ['10.0.0.1', v4(0x0a000001n), '10.0.0.1'],
    ['0.0.0.0', v4(0n), '0.0.0.0'],
    ['255.255.255.255', v4(0xffffffffn), '255.255.255.255'],
    ['2001:db8::1', v6(0x20010db8000000000000000000000001n), '2001:db8::1'],
    ['2001:DB8::1', v6(0x20010db8000000000000000000000001n), '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', v6(0x20010db8000000000000000000000001n), '2001:db8::1'],
    ['::', v6(0n), '::'],
    ['::1', v6(1n), '::1'],
    ['1::', v6(0x00010000000000000000000000000000n), '1::'],
    ['2001:db8:0:1::', v6(0x20010db8000000010000000000000000n), '2001:db8:0:1::'],
    // RFC 5952: the longest run of zero groups is the one shortened, the first one on a tie.
    ['2001:db8:0:0:1:0:0:1', v6(0x20010db8000000000001000000000001n), '2001:db8::1:0:0:1'],
    ['2001:db8:1:0:1:0:0:1', v6(0x20010db8000100000001000000000001n), '2001:db8:1:0:1::1'],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', v6((1n << 128n) - 1n), 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
    ['', undefined],
    ['1.2.3', undefined],
    ['256.1.1.1', undefined],
    ['010.0.0.1', undefined],
    [' 10.0.0.1', undefined],
    ['10.0.0.1 ', undefined],
    ['10.0.0.1/24', undefined],
    ['2001:db8::1::2', undefined],
    ['2001:db8::g', undefined],
    ['fe80::1%eth0', undefined],
    ['localhost', undefined],
  ];
  for (const [text, want, canonical] of cases) {
    const got = parseIp(text);
    t.same(got, want, `parseIp(${JSON.stringify(text)})`);
    if (got && canonical !== undefined) {
      t.equal(formatIp(got), canonical, `formatIp(parseIp(${JSON.stringify(text)}))`);
      t.same(parseIp(formatIp(got)), got, `${canonical} round-trips`);
    }
  }
  t.equal(parseIp(42 as unknown as string), undefined, 'a non-string is not an address');
});

t.test('parseCidr / formatCidr', async (t) => {
  const cases: Array<[string, { ip: Ip; prefix: number } | undefined]> = [
    ['10.1.0.0/24', { ip: v4(0x0a010000n), prefix: 24 }],
    ['10.1.0.5/24', { ip: v4(0x0a010005n), prefix: 24 }], // host bits kept; networkOf clears them
    ['0.0.0.0/0', { ip: v4(0n), prefix: 0 }],
    ['10.1.0.1/32', { ip: v4(0x0a010001n), prefix: 32 }],
    ['2001:db8::/64', { ip: v6(0x20010db8000000000000000000000000n), prefix: 64 }],
    ['::/0', { ip: v6(0n), prefix: 0 }],
    ['::1/128', { ip: v6(1n), prefix: 128 }],
    ['10.1.0.0', undefined],
    ['10.1.0.0/', undefined],
    ['10.1.0.0/33', undefined],
    ['10.1.0.0/-1', undefined],
    ['10.1.0.0/ 24', undefined],
    ['10.1.0.0/24/1', undefined],
    ['10.1.0.0/2a', undefined],
    ['10.1.0/24', undefined],
    ['2001:db8::/129', undefined],
    ['/24', undefined],
    ['', undefined],
  ];
  for (const [text, want] of cases) t.same(parseCidr(text), want, `parseCidr(${JSON.stringify(text)})`);
  t.equal(formatCidr({ ip: v6(0x20010db8000000000000000000000000n), prefix: 64 }), '2001:db8::/64');
  t.equal(formatCidr({ ip: v4(0x0a010000n), prefix: 16 }), '10.1.0.0/16');
});

t.test('networkOf / lastOf / contains / subnetSize', async (t) => {
  const cases: Array<{ cidr: string; network: string; last: string; size: bigint; inside: string[]; outside: string[] }> = [
    { cidr: '10.1.0.5/24', network: '10.1.0.0/24', last: '10.1.0.255', size: 256n,
      inside: ['10.1.0.0', '10.1.0.1', '10.1.0.255'], outside: ['10.1.1.0', '10.0.255.255', '::a01:5'] },
    { cidr: '10.1.2.3/16', network: '10.1.0.0/16', last: '10.1.255.255', size: 65536n,
      inside: ['10.1.0.0', '10.1.255.255'], outside: ['10.2.0.0', '10.0.255.255'] },
    { cidr: '192.168.7.9/30', network: '192.168.7.8/30', last: '192.168.7.11', size: 4n,
      inside: ['192.168.7.8', '192.168.7.11'], outside: ['192.168.7.7', '192.168.7.12'] },
    { cidr: '0.0.0.0/0', network: '0.0.0.0/0', last: '255.255.255.255', size: 1n << 32n,
      inside: ['0.0.0.0', '255.255.255.255'], outside: ['::'] },
    { cidr: '10.1.0.7/32', network: '10.1.0.7/32', last: '10.1.0.7', size: 1n, inside: ['10.1.0.7'], outside: ['10.1.0.6', '10.1.0.8'] },
    { cidr: '2001:db8::1234/64', network: '2001:db8::/64', last: '2001:db8::ffff:ffff:ffff:ffff', size: 1n << 64n,
      inside: ['2001:db8::', '2001:db8::ffff:ffff:ffff:ffff'], outside: ['2001:db8:0:1::', '2001:db7:ffff:ffff:ffff:ffff:ffff:ffff', '10.1.0.1'] },
    { cidr: 'fd00::5/126', network: 'fd00::4/126', last: 'fd00::7', size: 4n, inside: ['fd00::4', 'fd00::7'], outside: ['fd00::3', 'fd00::8'] },
  ];
  for (const c of cases) {
    const cidr = parseCidr(c.cidr);
    if (!cidr) { t.fail(`${c.cidr} parses`); continue; }
    t.equal(formatCidr(networkOf(cidr)), c.network, `networkOf(${c.cidr})`);
    t.equal(formatIp(lastOf(cidr)), c.last, `lastOf(${c.cidr})`);
    t.equal(subnetSize(cidr), c.size, `subnetSize(${c.cidr})`);
    for (const a of c.inside) t.ok(contains(cidr, parseIp(a) as Ip), `${c.cidr} contains ${a}`);
    for (const a of c.outside) t.notOk(contains(cidr, parseIp(a) as Ip), `${c.cidr} does not contain ${a}`);
  }
});

t.test('sameIp / offsetIp', async (t) => {
  t.ok(sameIp(v4(5n), v4(5n)));
  t.notOk(sameIp(v4(5n), v6(5n)), 'same value, other family');
  t.notOk(sameIp(v4(5n), v4(6n)));
  t.equal(formatIp(offsetIp(parseIp('10.0.0.255') as Ip, 1n)), '10.0.1.0');
  t.equal(formatIp(offsetIp(parseIp('2001:db8::ffff') as Ip, 1n)), '2001:db8::1:0');
  t.equal(formatIp(offsetIp(parseIp('10.0.1.0') as Ip, -1n)), '10.0.0.255');
});

t.test('ipKey: fixed width, sorts like the address, round-trips', async (t) => {
  const texts = [
    '0.0.0.0', '0.0.0.1', '9.255.255.255', '10.0.0.0', '10.0.0.2', '10.0.0.10', '10.0.0.255', '10.0.1.0', '10.10.0.0', '255.255.255.255',
    '::', '::1', '::10', '::ffff:ffff', '1::', '2001:db8::', '2001:db8::2', '2001:db8::a', '2001:db8::1:0', 'fd00::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
  ];
  const ips = texts.map((s) => parseIp(s) as Ip);
  for (const a of ips) {
    const key = ipKey(a);
    t.equal(key.length, a.family === 4 ? 8 : 32, `${formatIp(a)} key width`);
    t.match(key, /^[0-9a-f]+$/, `${formatIp(a)} key is lower-case hex`);
    t.same(ipFromKey(key), a, `${formatIp(a)} round-trips through ${key}`);
  }
  t.equal(ipKey(parseIp('10.0.0.10') as Ip), '0a00000a');
  t.equal(ipKey(parseIp('2001:db8::1') as Ip), '20010db8000000000000000000000001');
  for (const family of [4, 6] as const) {
    const same = ips.filter((a) => a.family === family);
    for (let i = 0; i < same.length; i++) {
      for (let j = 0; j < same.length; j++) {
        const byValue = same[i].value < same[j].value ? -1 : same[i].value > same[j].value ? 1 : 0;
        const ki = ipKey(same[i]);
        const kj = ipKey(same[j]);
        const byKey = ki < kj ? -1 : ki > kj ? 1 : 0;
        if (byKey !== byValue) t.fail(`key order of ${formatIp(same[i])} and ${formatIp(same[j])} differs from address order`);
      }
    }
    t.pass(`IPv${family} keys sort like addresses (${same.length} addresses, every pair)`);
  }
});
