// LeaseKeeper against a real etcd (loopback): a kept lease outlives its TTL many times over; a
// released one expires; etcd down for longer than the TTL: 'lost' once, and no timer or stream
// of the keeper is left running (etcd3's own keepalive leaked intervals here and kept the
// process alive after an outage); renewals at a fixed rate, from one start to the next.
import t from 'tap';
import { existsSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import { LeaseKeeper } from '../../etcd/lease';
import { ETCD, startEtcd } from '../helpers/etcd';
import { pollUntil } from '../helpers/sh';

const TTL = 1;

const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

async function main(): Promise<void> {
  await t.test('lease keeper through renewals, release and an etcd outage', async (t) => {
    const etcd = await startEtcd(t);
    const client = new Etcd3({ hosts: etcd.clientUrls });
    t.teardown(() => client.close());
    const key = `/vxt-${process.pid}/keeper`;
    t.teardown(() => client.delete().prefix(`/vxt-${process.pid}/`).then(() => undefined, () => undefined));

    await t.test('a kept lease outlives its TTL', async (t) => {
      const keeper = new LeaseKeeper(client, { ttlSeconds: TTL });
      t.teardown(() => keeper.release());
      await keeper.grant();
      await keeper.lease.put(key).value('x').exec();
      let renewals = 0;
      keeper.on('renewed', () => { renewals++; });
      const started = Date.now();
      await pollUntil(() => renewals >= 7, { timeoutMs: 10_000, what: '7 renewals' });
      t.ok(Date.now() - started > 2 * TTL * 1000, `${renewals} renewals over ${Date.now() - started} ms (TTL ${TTL} s)`);
      t.equal(await client.get(key).string(), 'x', 'the key is still there');
      await keeper.revoke({ deadline: Date.now() + 2000 });
      t.equal(await client.get(key).string(), null, 'revoked: the key is gone at once');
      t.notOk(keeper.active, 'inactive after revoke');
    });

    // Renewals are slowed by holding each one's answer back (the gRPC call itself is real), so
    // the keeper sees slow renewals as it would from a loaded etcd.
    const slowed = (keeper: LeaseKeeper, extraMs: number): { starts: number[]; maxInFlight: () => number } => {
      const starts: number[] = [];
      let inFlight = 0;
      let max = 0;
      const lease = keeper.lease;
      const once = lease.keepaliveOnce.bind(lease);
      lease.keepaliveOnce = async (options) => {
        starts.push(Date.now());
        max = Math.max(max, ++inFlight);
        try {
          const res = await once(options);
          await new Promise((r) => setTimeout(r, extraMs));
          return res;
        } finally {
          inFlight--;
        }
      };
      return { starts, maxInFlight: () => max };
    };
    const gaps = (starts: number[]): number[] => starts.slice(1).map((s, i) => s - (starts[i] as number));
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

    await t.test('fixed rate: a slow renewal does not delay the next', async (t) => {
      const interval = (TTL * 1000) / 3;
      for (const [extraMs, bound, what] of [
        // Finishing 150 ms late: still every interval (was interval + 150 ms + the call).
        [150, interval + 100, 'every TTL/3 from the previous start'],
        // Longer than the interval: the next starts as soon as it is done (was 500 ms + interval).
        [500, 500 + 100, 'the next at once after one longer than TTL/3'],
      ] as const) {
        const keeper = new LeaseKeeper(client, { ttlSeconds: TTL });
        t.teardown(() => keeper.release());
        await keeper.grant();
        let lost = false;
        keeper.on('lost', () => { lost = true; });
        const probe = slowed(keeper, extraMs);
        await pollUntil(() => probe.starts.length >= 7, { timeoutMs: 15_000, what: '7 renewals started' });
        keeper.release();
        const g = gaps(probe.starts);
        t.ok(median(g) < bound, `${what}: start-to-start gaps ${g.join(' ')} ms, median < ${bound.toFixed(0)} ms`);
        t.ok(Math.min(...g) >= Math.min(extraMs, interval) - 20, `no renewal started early (min gap ${Math.min(...g)} ms)`);
        t.equal(probe.maxInFlight(), 1, 'never two renewals in flight');
        t.notOk(lost, 'the lease was never lost');
      }
    });

    await t.test('a released lease expires after its TTL', async (t) => {
      const keeper = new LeaseKeeper(client, { ttlSeconds: TTL });
      await keeper.grant();
      await keeper.lease.put(key).value('y').exec();
      keeper.release();
      await pollUntil(async () => (await client.get(key).string()) === null, { timeoutMs: TTL * 1000 + 4000, what: 'released key expires' });
      t.pass('the key expired');
    });

    await t.test('etcd down for longer than the TTL: lost once, nothing left running', async (t) => {
      const before = timers();
      const keepers = [1, 2, 3].map(() => new LeaseKeeper(client, { ttlSeconds: TTL }));
      await Promise.all(keepers.map((k) => k.grant()));
      let lost = 0;
      for (const k of keepers) k.on('lost', () => { lost++; });
      await etcd.kill(0);
      await pollUntil(() => lost === 3, { timeoutMs: TTL * 1000 + 5000, what: 'all three keepers report lost' });
      t.pass('each keeper reported its lease lost');
      t.ok(keepers.every((k) => !k.active), 'all inactive');
      await etcd.restart(0);
      // Nothing of the keepers is left to fire: the count of timers is back where it was (the
      // etcd client's own reconnect timers settle within a few seconds once etcd answers).
      await pollUntil(() => timers() <= before, { timeoutMs: 10_000, intervalMs: 100, what: `timers back to ${before} (now ${timers()})` });
      t.equal(lost, 3, 'no second lost event');
    });
  });
}

void (async () => {
  if (!existsSync(ETCD)) t.plan(0, `needs etcd (${ETCD})`);
  else await main();
})();
