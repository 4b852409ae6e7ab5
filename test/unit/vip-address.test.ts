// vip/address.ts: a named VIP's address from its name, collisions settled by first claim.
import t from 'tap';
import { contains, formatIp, parseCidr, type Cidr } from '../../ipam/addr';
import { InvalidVip } from '../../lib/errors';
import { type ClaimStore, DEFAULT_VIP_RANGE, DEFAULT_VIP_RANGE6, MemoryClaims, VipAddresses, candidate, parseVipRange, usableCount } from '../../vip/address';

const range = parseVipRange(DEFAULT_VIP_RANGE, 4, '--vip-range');
const range6 = parseVipRange(DEFAULT_VIP_RANGE6, 6, '--vip-range6');

t.test('parseVipRange: a CIDR of the family, its network, room for VIPs', async (t) => {
  t.equal(formatIp(parseVipRange('198.18.7.9/15', 4, '--vip-range').ip), '198.18.0.0', 'host bits dropped');
  t.throws(() => parseVipRange('198.18.0.0', 4, '--vip-range'), InvalidVip);
  t.throws(() => parseVipRange('fd00::/64', 4, '--vip-range'), { message: /expected an IPv4 range/ });
  t.throws(() => parseVipRange('10.0.0.0/31', 4, '--vip-range'), { message: /too small/ });
  t.equal(usableCount(range), 131070n, 'a /15 less its network and broadcast addresses');
});

t.test('candidate: the same name gives the same address, inside the range, never network or broadcast', async (t) => {
  t.equal(formatIp(candidate(range, 'web', 0)), formatIp(candidate(range, 'web', 0)), 'deterministic: every host computes the same');
  t.not(formatIp(candidate(range, 'web', 0)), formatIp(candidate(range, 'api', 0)));
  t.equal(candidate(range, 'web', 1).value, candidate(range, 'web', 0).value + 1n === parseCidr('198.19.255.255/32')!.ip.value
    ? parseCidr('198.18.0.1/32')!.ip.value : candidate(range, 'web', 0).value + 1n, 'probing takes the next address, wrapping');
  const tiny = parseCidr('10.0.0.0/30') as Cidr;
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const ip = candidate(tiny, `n${i}`, i % 3);
    t.ok(contains(tiny, ip), 'in range');
    seen.add(formatIp(ip));
  }
  t.same([...seen].sort(), ['10.0.0.1', '10.0.0.2'], 'a /30 gives only its two host addresses');
  t.ok(contains(range6, candidate(range6, 'web', 0)) && candidate(range6, 'web', 0).value !== range6.ip.value);
  // A pinned value, so a change of the hash (which would move every VIP of a cluster on upgrade) fails here.
  t.equal(formatIp(candidate(range, 'web', 0)), PINNED_WEB, 'the rule itself is stable');
});

const PINNED_WEB = '198.18.209.62';

/** Names whose first candidates in a /29 collide. */
function collidingNames(r: Cidr): [string, string] {
  const first = new Map<string, string>();
  for (let i = 0; ; i++) {
    const n = `svc${i}`;
    const a = formatIp(candidate(r, n, 0));
    const other = first.get(a);
    if (other !== undefined) return [other, n];
    first.set(a, n);
  }
}

t.test('VipAddresses: first claim wins, the loser probes on, an existing VIP never moves', async (t) => {
  const small = parseCidr('10.99.0.0/29') as Cidr;
  const [a, b] = collidingNames(small);
  const claims = new MemoryClaims();
  const one = new VipAddresses(claims, small, undefined);
  const pa = await one.assign(a);
  const pb = await one.assign(b);
  t.equal(formatIp(pa.v4), formatIp(candidate(small, a, 0)), `${a} got its first candidate`);
  t.not(formatIp(pb.v4), formatIp(pa.v4), `${b} collided and probed on`);
  t.equal(formatIp(pb.v4), formatIp(candidate(small, b, 1)), 'to its next candidate');
  // Another host (another VipAddresses) sharing the claims sees the same answer, in the other order.
  const two = new VipAddresses(claims, small, undefined);
  t.equal(formatIp((await two.assign(b)).v4), formatIp(pb.v4), 'the same on the other host, whichever name it meets first');
  t.equal(formatIp((await two.assign(a)).v4), formatIp(pa.v4));
  t.same(one.known(a), pa, 'known without I/O after the claim');
  t.equal(one.known('never'), undefined);
});

t.test('VipAddresses: a restart reads the claims once and places known names with no round trip', async (t) => {
  const claims = new MemoryClaims();
  await new VipAddresses(claims, range, range6).assign('web');
  let calls = 0;
  const counting: ClaimStore = { description: 'counting', list: () => claims.list(), claim: (ad, n) => { calls++; return claims.claim(ad, n); } };
  const again = new VipAddresses(counting, range, range6);
  t.equal(await again.load(), 2, 'the IPv4 and the IPv6 claim');
  const placed = await again.assign('web');
  t.equal(calls, 0, 'no claim sent');
  t.ok(placed.v6 && contains(range6, placed.v6), 'an IPv6 address from the IPv6 range');
});

t.test('VipAddresses: concurrent assigns of one name share one claim; a full range is an InvalidVip', async (t) => {
  let calls = 0;
  const mem = new MemoryClaims();
  const slow: ClaimStore = { description: 'slow', list: () => mem.list(), claim: async (ad, n) => { calls++; await new Promise((r) => setImmediate(r)); return mem.claim(ad, n); } };
  const v = new VipAddresses(slow, range, undefined);
  const [x, y] = await Promise.all([v.assign('web'), v.assign('web')]);
  t.same(x, y);
  t.equal(calls, 1);
  const tiny = parseCidr('10.0.0.0/30') as Cidr;
  const full = new VipAddresses(new MemoryClaims(), tiny, undefined, 4);
  await full.assign('a');
  await full.assign('b');
  await t.rejects(full.assign('c'), { name: 'InvalidVip', message: /no address for VIP \/c in 10.0.0.0\/30 after 4 tries/ });
});
