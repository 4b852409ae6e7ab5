// dns/upstreams.ts: upstream addresses, resolv.conf, the server's own addresses left out, picking.
import t from 'tap';
import { parseIp } from '../../ipam/addr';
import { UpstreamPool, formatHostPort, hostPort, parseHostPort, parseResolvConf, withoutSelf } from '../../dns/upstreams';

const hp = (text: string) => parseHostPort(text)!;

t.test('parseHostPort', async (t) => {
  const cases: Array<[string, string | undefined]> = [
    ['10.0.0.1', '10.0.0.1:53'], ['10.0.0.1:5353', '10.0.0.1:5353'], ['2001:db8::1', '[2001:db8::1]:53'],
    ['[2001:db8::1]:5353', '[2001:db8::1]:5353'], ['[::1]', '[::1]:53'], [' 127.0.0.1 ', '127.0.0.1:53'],
    ['dns.example:53', undefined], ['10.0.0.1:99999', undefined], ['10.0.0.1:', undefined], ['', undefined],
  ];
  for (const [text, want] of cases) {
    const got = parseHostPort(text);
    t.equal(got && formatHostPort(got), want, JSON.stringify(text));
  }
  t.throws(() => hostPort('nope', '--dns-upstream'), { name: 'InvalidNetworkConfig', message: '--dns-upstream "nope": expected ADDRESS[:PORT] or [IPV6]:PORT' });
});

t.test('parseResolvConf: nameserver lines in order, the rest ignored', async (t) => {
  const text = `# generated\nsearch example.com\nnameserver 10.255.255.53\n  nameserver   2001:db8::53 # v6\nnameserver fe80::1%eth0\nnameserver bogus\noptions timeout:1\nnameserver 127.0.0.53\n`;
  t.same(parseResolvConf(text).map(formatHostPort), ['10.255.255.53:53', '[2001:db8::53]:53', '127.0.0.53:53']);
  t.same(parseResolvConf(''), []);
});

t.test('withoutSelf: the server never forwards to its own listening addresses', async (t) => {
  const ups = ['127.0.0.1', '198.51.100.1', '10.0.0.2', '::1'].map(hp);
  t.same(withoutSelf(ups, [hp('198.51.100.1:53')]).map(formatHostPort), ['127.0.0.1:53', '10.0.0.2:53', '[::1]:53']);
  t.same(withoutSelf(ups, [hp('0.0.0.0:53')]).map(formatHostPort), ['198.51.100.1:53', '10.0.0.2:53', '[::1]:53'], 'a v4 wildcard covers v4 loopback');
  t.same(withoutSelf(ups, [hp('127.0.0.1:5353')]).length, 4, 'another port is another server');
});

t.test('UpstreamPool: all when fewer than three, else two from the fewest failures; success restores', async (t) => {
  const ups = (n: number) => Array.from({ length: n }, (_, i) => ({ ip: parseIp(`10.0.0.${i + 1}`)!, port: 53 }));
  t.same(new UpstreamPool(ups(1)).pick(), [0]);
  t.same(new UpstreamPool(ups(2)).pick(), [0, 1]);
  t.same(new UpstreamPool([]).pick(), []);
  const pool = new UpstreamPool(ups(4));
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const p = pool.pick();
    t.equal(p.length, 2);
    if (p[0] === p[1]) t.fail('the same upstream twice');
    p.forEach((x) => seen.add(x));
  }
  t.equal(seen.size, 4, 'ties are broken at random: every upstream gets picked');
  pool.fail(0); pool.fail(1); pool.fail(1);
  for (let i = 0; i < 50; i++) t.same(pool.pick().sort(), [2, 3], 'the two with no failures');
  pool.fail(2);
  // failures [1, 2, 1, 0]: 3 from the lowest bucket, then 0 or 2 (one failure each), never 1.
  const seconds = new Set<number>();
  for (let i = 0; i < 100; i++) {
    const [first, second] = pool.pick();
    if (first !== 3 || (second !== 0 && second !== 2)) t.fail(`picked ${first}, ${second}`);
    seconds.add(second);
  }
  t.same([...seconds].sort(), [0, 2], 'fewest failures first, ties at random');
  pool.succeed(1);
  t.same(pool.state().map((s) => s.failures), [1, 0, 1, 0]);
  for (let i = 0; i < 50; i++) t.same(pool.pick().sort(), [1, 3], 'restored by a success');
});
