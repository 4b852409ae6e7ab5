// catalog/cluster.ts against a real etcd (test/helpers/etcd.ts): two "hosts" in one process,
// each with its own catalog and EtcdClient, see each other's endpoints; removals and changes
// follow; a host whose lease is not renewed or is revoked leaves the other's catalog (and a
// revoked one publishes again under a new lease); a restart with another local set leaves no
// ghosts; an etcd outage keeps what was known and delivers what changed meanwhile. Measures
// publish-to-visible latency.
import t from 'tap';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { EndpointCatalog } from '../../catalog/catalog';
import { ClusterEndpoints } from '../../catalog/cluster';
import type { Endpoint } from '../../catalog/endpoint';
import { encodeEndpoint, endpointKey, hostPrefix } from '../../catalog/records';
import { EtcdClient } from '../../etcd/client';
import { createLogger, type Logger } from '../../lib/log';
import { ETCD, startEtcd, type EtcdCluster } from '../helpers/etcd';
import { pollUntil } from '../helpers/sh';

t.setTimeout(180_000);

const ep = (host: string, c: string, more: Partial<Endpoint> = {}): Endpoint => ({
  id: `${host}/net/${c}`, host, runtime: 'docker', containerId: c, network: 'net', name: c, aliases: [],
  addresses: ['10.0.0.2'], labels: {}, ports: [{ port: 80, protocol: 'tcp' }], ...more,
});
const ids = (list: readonly Endpoint[]): string[] => list.map((e) => e.id).sort();

interface Host {
  readonly name: string;
  readonly catalog: EndpointCatalog;
  readonly cluster: ClusterEndpoints;
  readonly client: EtcdClient;
  readonly logs: Array<{ level: string; msg: string } & Record<string, unknown>>;
  stop(options?: { revoke?: boolean }): Promise<void>;
}

function capture(): { log: Logger; lines: Host['logs'] } {
  const lines: Host['logs'] = [];
  return { log: createLogger('test', 'debug', (l) => { lines.push(JSON.parse(l)); }), lines };
}

async function host(t: tap.Test, etcd: EtcdCluster, name: string, prefix: string, local: Endpoint[], ttlSeconds = 10, budgetMs?: number): Promise<Host> {
  const catalog = new EndpointCatalog();
  catalog.replaceHost(name, local);
  const client = EtcdClient.connect(etcd.endpoints, budgetMs);
  const { log, lines } = capture();
  const cluster = new ClusterEndpoints({ client, catalog, host: name, prefix, ttlSeconds, log });
  await cluster.start();
  let stopped: Promise<void> | undefined;
  const stop = (options?: { revoke?: boolean }): Promise<void> =>
    (stopped ??= cluster.stop(options).finally(() => client.close()));
  t.teardown(() => stop());
  return { name, catalog, cluster, client, logs: lines, stop };
}

const newPrefix = (): string => `/vxt-${randomBytes(4).toString('hex')}/endpoints/`;

const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;

async function main(): Promise<void> {
  t.test('two hosts', async (t) => {
    const etcd = await startEtcd(t);

    await t.test('see each other; removals and changes follow; own entries and malformed ones are skipped', async (t) => {
      const prefix = newPrefix();
      const a = await host(t, etcd, 'a', prefix, [ep('a', 'a1'), ep('a', 'a2')]);
      const b = await host(t, etcd, 'b', prefix, [ep('b', 'b1')]);
      await pollUntil(() => ids(b.catalog.list('a')).join() === 'a/net/a1,a/net/a2', { timeoutMs: 10_000, what: 'b sees a\'s endpoints' });
      await pollUntil(() => ids(a.catalog.list('b')).join() === 'b/net/b1', { timeoutMs: 10_000, what: 'a sees b\'s endpoints' });
      t.same(b.catalog.list('a').sort((x, y) => x.id.localeCompare(y.id)), a.catalog.list('a').sort((x, y) => x.id.localeCompare(y.id)), 'as published, field for field');

      a.catalog.replaceHost('a', [ep('a', 'a1', { addresses: ['10.0.0.9'], service: 'web' })]);
      await pollUntil(() => b.catalog.get('a/net/a2') === undefined && b.catalog.get('a/net/a1')?.service === 'web',
        { timeoutMs: 10_000, what: 'the removal and the change reach b' });
      t.same(b.catalog.get('a/net/a1')?.addresses, ['10.0.0.9']);

      // Garbage under the prefix (another version, a hand edit): logged, skipped, nothing else disturbed.
      const forged = { ...ep('c', 'c1'), host: 'a' };
      await a.client.txn('test', { if: [], then: [
        { put: `${prefix}c/junk`, value: '{not json' },
        { put: `${prefix}c/${encodeURIComponent('c/net/c2')}`, value: JSON.stringify({ ...ep('c', 'c2'), ports: 'x' }) },
        { put: `${prefix}c/${encodeURIComponent('a/net/a1')}`, value: JSON.stringify(forged) },
        { put: endpointKey(prefix, ep('c', 'c3')), value: encodeEndpoint(ep('c', 'c3')) },
      ] });
      await pollUntil(() => b.catalog.get('c/net/c3'), { timeoutMs: 10_000, what: 'the valid entry after the garbage' });
      t.same(ids(b.catalog.list('c')), ['c/net/c3'], 'only the valid entry of host c');
      t.equal(b.catalog.get('a/net/a1')?.host, 'a', 'a forged entry does not take over a\'s endpoint');
      t.ok(b.logs.filter((l) => l.msg === 'cluster endpoints: skipping a malformed entry').length >= 3, 'each malformed entry logged');

      // An entry under this host's own name (a stale key, anything) does not touch its local set.
      await b.client.txn('test', { if: [], then: [{ put: endpointKey(prefix, ep('a', 'ghost')), value: encodeEndpoint(ep('a', 'ghost')) }] });
      await pollUntil(() => b.catalog.get('a/net/ghost'), { timeoutMs: 10_000, what: 'b sees the extra key under a' });
      t.equal(a.catalog.get('a/net/ghost'), undefined, 'a ignores keys under its own name from the watch');
      a.catalog.put(ep('a', 'a5'));
      await pollUntil(() => b.catalog.get('a/net/a5'), { timeoutMs: 10_000, what: 'a5' });
      await a.cluster.settled();
      t.ok(b.catalog.get('a/net/ghost'), 'a diff write leaves a key it never wrote (only a full publish after start or lease loss reads them)');
    });

    await t.test('publish-to-visible latency: 200 puts one after the other, then a burst of 200', async (t) => {
      const prefix = newPrefix();
      const a = await host(t, etcd, 'a', prefix, []);
      const b = await host(t, etcd, 'b', prefix, []);
      await pollUntil(() => a.cluster.lease && b.cluster.lease, { timeoutMs: 10_000, what: 'both leases' });
      const waiters = new Map<string, () => void>();
      b.catalog.subscribe((changes) => { for (const c of changes) if (c.after) waiters.get(c.id)?.(); });
      const ms: number[] = [];
      for (let i = 0; i < 200; i++) {
        const e = ep('a', `l${i}`);
        const seen = new Promise<void>((resolve) => waiters.set(e.id, resolve));
        const t0 = process.hrtime.bigint();
        a.catalog.put(e);
        await seen;
        ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
        waiters.delete(e.id);
      }
      ms.sort((x, y) => x - y);
      const p50 = percentile(ms, 50);
      const p99 = percentile(ms, 99);
      t.comment(`sequential: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${ms[ms.length - 1]!.toFixed(2)} ms over ${ms.length} puts`);
      t.ok(p99 < 1000, `p99 ${p99.toFixed(1)} ms < 1 s`);

      const t0 = Date.now();
      for (let i = 0; i < 200; i++) a.catalog.put(ep('a', `burst${i}`));
      await pollUntil(() => b.catalog.list('a').length === 400, { timeoutMs: 10_000, intervalMs: 5, what: 'the burst at b' });
      t.comment(`burst of 200 puts (coalesced): all visible after ${Date.now() - t0} ms`);
      t.same(ids(b.catalog.list('a')), ids(a.catalog.list('a')));
    });

    await t.test('a host that stops renewing (TTL 2 s) leaves; a clean stop leaves at once', async (t) => {
      const prefix = newPrefix();
      const a = await host(t, etcd, 'a', prefix, [ep('a', 'a1')], 2);
      const c = await host(t, etcd, 'c', prefix, [ep('c', 'c1')], 2);
      const b = await host(t, etcd, 'b', prefix, []);
      await pollUntil(() => b.catalog.get('a/net/a1') && b.catalog.get('c/net/c1'), { timeoutMs: 10_000, what: 'b sees a and c' });
      const t0 = Date.now();
      await a.stop({ revoke: false });
      await pollUntil(() => b.catalog.get('a/net/a1') === undefined, { timeoutMs: 8000, intervalMs: 20, what: 'a expires from b' });
      const expired = Date.now() - t0;
      t.ok(expired >= 1000, `a left after its lease expired (${expired} ms), not before`);
      t.comment(`not renewed, TTL 2 s: gone from the other catalog after ${expired} ms`);
      t.same(b.catalog.hosts(), ['c'], 'c is still there');
      const t1 = Date.now();
      await c.stop();
      await pollUntil(() => b.catalog.get('c/net/c1') === undefined, { timeoutMs: 2000, intervalMs: 5, what: 'c gone from b' });
      t.comment(`clean stop (lease revoked): gone after ${Date.now() - t1} ms`);
      t.same(b.catalog.hosts(), []);
    });

    await t.test('a lease revoked behind a host\'s back: it leaves, then publishes again under a new lease', async (t) => {
      const prefix = newPrefix();
      const a = await host(t, etcd, 'a', prefix, [ep('a', 'a1'), ep('a', 'a2')], 2);
      const b = await host(t, etcd, 'b', prefix, []);
      await pollUntil(() => b.catalog.list('a').length === 2, { timeoutMs: 10_000, what: 'b sees a' });
      const old = a.cluster.lease!;
      let left = false;
      b.catalog.subscribe((changes) => { if (changes.some((c) => c.before?.host === 'a' && !c.after)) left = true; });
      await b.client.raw.leaseClient.leaseRevoke({ ID: old });
      await pollUntil(() => left, { timeoutMs: 5000, what: 'a\'s endpoints leave b' });
      await pollUntil(() => a.cluster.lease !== undefined && a.cluster.lease !== old && b.catalog.list('a').length === 2,
        { timeoutMs: 10_000, what: 'a publishes again under a new lease' });
      t.ok(a.logs.some((l) => l.msg === 'cluster endpoints: lease lost; publishing again under a new one'), 'the loss is logged');
      const held = await b.client.range('test', hostPrefix(prefix, 'a'));
      t.same(held.kvs.map((kv) => kv.lease), [a.cluster.lease, a.cluster.lease], 'every key on the new lease');
    });

    await t.test('a restart with another local set leaves no ghosts of the previous run', async (t) => {
      const prefix = newPrefix();
      const first = await host(t, etcd, 'a', prefix, [ep('a', 'x'), ep('a', 'y'), ep('a', 'gone')], 10);
      const b = await host(t, etcd, 'b', prefix, []);
      await pollUntil(() => b.catalog.list('a').length === 3, { timeoutMs: 10_000, what: 'b sees the first run' });
      await first.stop({ revoke: false }); // a crash: its keys stay until its 10 s lease expires
      const t0 = Date.now();
      const second = await host(t, etcd, 'a', prefix, [ep('a', 'y', { addresses: ['10.0.0.7'] }), ep('a', 'z')], 10);
      await pollUntil(() => ids(b.catalog.list('a')).join() === 'a/net/y,a/net/z' && b.catalog.get('a/net/y')?.addresses[0] === '10.0.0.7',
        { timeoutMs: 8000, what: 'b sees exactly the second run\'s set' });
      t.ok(Date.now() - t0 < 10_000, 'well before the first run\'s lease would have expired');
      await second.cluster.settled();
      const held = await b.client.range('test', hostPrefix(prefix, 'a'));
      t.same(held.kvs.map((kv) => kv.key.toString()).sort(), [endpointKey(prefix, ep('a', 'y')), endpointKey(prefix, ep('a', 'z'))].sort(), 'etcd holds only the new set');
      t.ok(held.kvs.every((kv) => kv.lease === second.cluster.lease), 'under the new lease');
    });
  });

  t.test('etcd down and back: the other host\'s entries stay; changes made meanwhile arrive, the latest set once', async (t) => {
    const etcd = await startEtcd(t);
    const prefix = newPrefix();
    // A short per-operation budget: a write waits at most 1.5 s for etcd before the loop retries with the latest set.
    const a = await host(t, etcd, 'a', prefix, [ep('a', 'a1'), ep('a', 'a2')], 10, 1500);
    const b = await host(t, etcd, 'b', prefix, [ep('b', 'b1')], 10, 1500);
    await pollUntil(() => b.catalog.list('a').length === 2 && a.catalog.list('b').length === 1, { timeoutMs: 10_000, what: 'both see each other' });

    const a4Seen: string[] = [];
    b.catalog.subscribe((changes) => { for (const c of changes) if (c.id === 'a/net/a4' && c.after) a4Seen.push(c.after.addresses.join()); });
    await etcd.kill(0);
    a.catalog.put(ep('a', 'a3'));
    await pollUntil(() => a.logs.some((l) => l.msg === 'cluster endpoints: cannot publish to etcd; retrying'), { timeoutMs: 10_000, what: 'a fails to publish' });
    await pollUntil(() => b.logs.some((l) => /watch interrupted/.test(l.msg)), { timeoutMs: 10_000, what: 'b\'s watch notices' });
    a.catalog.remove('a/net/a2');
    a.catalog.put(ep('a', 'a4'));
    a.catalog.put(ep('a', 'a4', { addresses: ['10.0.0.44'] }));
    t.same(ids(b.catalog.list('a')), ['a/net/a1', 'a/net/a2'], 'during the outage b keeps a\'s endpoints as they were');
    t.same(ids(a.catalog.list('b')), ['b/net/b1'], 'and a keeps b\'s');
    t.same(ids(a.catalog.list('a')), ['a/net/a1', 'a/net/a3', 'a/net/a4'], 'a\'s own changes are in its catalog');

    const t0 = Date.now();
    await etcd.restart(0);
    await pollUntil(() => ids(b.catalog.list('a')).join() === 'a/net/a1,a/net/a3,a/net/a4' && b.catalog.get('a/net/a4')?.addresses[0] === '10.0.0.44',
      { timeoutMs: 20_000, what: 'the changes made during the outage reach b' });
    t.comment(`etcd healthy again -> b has a's latest set after ${Date.now() - t0} ms`);
    t.ok(a.logs.some((l) => l.msg === 'cluster endpoints: published again'), 'a says it published again');
    t.same(a4Seen, ['10.0.0.44'], 'the latest set was published, not each step made during the outage');
    t.equal(a.logs.filter((l) => l.msg === 'cluster endpoints: cannot publish to etcd; retrying').length, 1, 'the outage logged once');
    b.catalog.put(ep('b', 'b2'));
    await pollUntil(() => a.catalog.get('b/net/b2'), { timeoutMs: 10_000, what: 'and things flow both ways again' });
  });

  t.test('start() does not wait for an unreachable etcd; it publishes once etcd answers', async (t) => {
    const etcd = await startEtcd(t);
    const prefix = newPrefix();
    const b = await host(t, etcd, 'b', prefix, []);
    await etcd.kill(0);
    const t0 = Date.now();
    const a = await host(t, etcd, 'a', prefix, [ep('a', 'a1')], 10, 1000);
    t.ok(Date.now() - t0 < 500, `start resolved in ${Date.now() - t0} ms with etcd down`);
    await pollUntil(() => a.logs.some((l) => /cannot (publish|read)/.test(l.msg)), { timeoutMs: 10_000, what: 'a logs that etcd is unreachable' });
    await etcd.restart(0);
    await pollUntil(() => b.catalog.get('a/net/a1'), { timeoutMs: 20_000, what: 'a published once etcd came up' });
    t.pass('published after etcd came up');
  });
}

void (async () => {
  if (!existsSync(ETCD)) t.plan(0, `needs etcd (${ETCD})`);
  else await main();
})();
