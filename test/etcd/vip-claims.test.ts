// vip/claims-etcd.ts against a real etcd: named-VIP addresses claimed by first come, the same
// answer on every "host" (each its own client and VipAddresses), whichever order they meet the
// names in, also when they race; a restart reads the claims back and moves nothing.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { EtcdClient } from '../../etcd/client';
import { type Cidr, formatIp, parseCidr } from '../../ipam/addr';
import { VipAddresses, candidate } from '../../vip/address';
import { EtcdClaims } from '../../vip/claims-etcd';
import { startEtcd } from '../helpers/etcd';

t.setTimeout(60_000);

/** Names whose first candidates in `r` collide. */
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

t.test('claims in etcd: first claim wins everywhere, a loser probes on, races settle the same, restarts keep them', async (t) => {
  const etcd = await startEtcd(t);
  const prefix = `/vxt-${randomBytes(4).toString('hex')}/vips/`;
  const clients = [0, 1, 2].map(() => EtcdClient.connect(etcd.endpoints));
  t.teardown(() => { for (const c of clients) c.close(); });
  const range = parseCidr('10.77.0.0/27') as Cidr;
  const range6 = parseCidr('fd77::/64') as Cidr;
  const [a, b] = collidingNames(range);
  const host = (i: number): VipAddresses => new VipAddresses(new EtcdClaims(clients[i]!, prefix), range, range6);

  const h0 = host(0);
  const h1 = host(1);
  const pb = await h1.assign(b); // host 1 meets b first: b wins the shared candidate
  const pa = await h0.assign(a); // host 0 meets a: the candidate is b's, a probes on
  t.equal(formatIp(pb.v4), formatIp(candidate(range, b, 0)), `${b} (claimed first) has its first candidate`);
  t.equal(formatIp(pa.v4), formatIp(candidate(range, a, 1)), `${a} probed to its next`);
  t.same(await h0.assign(b), pb, 'host 0 gets the same address for b from etcd');
  t.same(await h1.assign(a), pa, 'host 1 the same for a');

  // Racing hosts: 20 names claimed by three hosts at once in different orders.
  const names = Array.from({ length: 20 }, (_, i) => `race${i}`);
  const racers = [host(0), host(1), host(2)];
  await Promise.all(racers.map((h, i) => Promise.all((i % 2 ? [...names].reverse() : names).map((n) => h.assign(n)))));
  const byHost = racers.map((h) => names.map((n) => formatIp(h.known(n)!.v4)));
  t.same(byHost[1], byHost[0], 'host 1 agrees with host 0 on all 20');
  t.same(byHost[2], byHost[0], 'host 2 too');
  const all = [...byHost[0]!, formatIp(pa.v4), formatIp(pb.v4)];
  t.equal(new Set(all).size, all.length, 'no address given to two names');

  // A restart: a new VipAddresses reads the claims and places every name where it was, no claim sent.
  const claims = new EtcdClaims(clients[2]!, prefix);
  t.equal((await claims.list()).size, (names.length + 2) * 2, 'one claim per name and family');
  const again = new VipAddresses(claims, range, range6);
  await again.load();
  t.same(formatIp((await again.assign(a)).v4), formatIp(pa.v4));
  t.same(formatIp((await again.assign('race7')).v4), byHost[0]![7]);
});
