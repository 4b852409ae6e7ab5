// etcd/ against a real etcd (test/helpers/etcd.ts): guarded transactions decide races, reads
// carry their revision, failures arrive in the error family, and a prefix watch survives a
// member restarting (resumes: nothing lost, nothing twice) and a compaction (reads again).
import t from 'tap';
import { randomBytes } from 'node:crypto';
import type { IKeyValue } from 'etcd3';
import { EtcdClient } from '../../etcd/client';
import { PrefixWatch, type PrefixWatchHandlers } from '../../etcd/watch';
import { startEtcd } from '../helpers/etcd';
import { rejected } from '../ipam/helpers/errors';
import { pollUntil } from '../helpers/sh';

t.setTimeout(90_000);

const prefix = (): string => `/vxt-${randomBytes(4).toString('hex')}/`;

t.test('guarded transactions, reads and errors', async (t) => {
  const etcd = await startEtcd(t);
  const c = EtcdClient.connect(etcd.endpoints);
  t.teardown(() => c.close());
  const p = prefix();
  const key = `${p}block`;

  const first = await c.txn('claim', { if: [{ key, absent: true }], then: [{ put: key, value: 'host-1' }] });
  t.ok(first.succeeded, 'the first claim of an absent key wins');
  const second = await c.txn('claim', { if: [{ key, absent: true }], then: [{ put: key, value: 'host-2' }], else: [{ get: key }] });
  t.notOk(second.succeeded, 'the second loses its guard');
  t.equal(second.responses[0]?.response_range?.kvs[0]?.value.toString(), 'host-1', 'and its else branch reads the winner');

  const kv = await c.get('read', key);
  t.equal(kv?.value.toString(), 'host-1');
  t.equal(await c.get('read', `${p}none`), undefined, 'an absent key is undefined');
  const stale = await c.txn('reclaim', { if: [{ key, modRevision: String(BigInt(kv!.mod_revision) - 1n) }], then: [{ delete: key }] });
  t.notOk(stale.succeeded, 'a guard on a revision no longer current fails');
  const fresh = await c.txn('reclaim', { if: [{ key, modRevision: kv!.mod_revision }], then: [{ put: key, value: 'host-3' }] });
  t.ok(fresh.succeeded, 'a guard on the revision read succeeds');
  t.ok(BigInt(fresh.revision) > BigInt(kv!.mod_revision), 'the commit returns the new revision');

  await c.txn('fill', { if: [], then: [{ put: `${p}x/1`, value: 'a' }, { put: `${p}x/2`, value: 'b' }, { put: `${p}y`, value: 'c' }] });
  const r = await c.range('list', `${p}x/`);
  t.strictSame(r.kvs.map((k) => k.key.toString()), [`${p}x/1`, `${p}x/2`], 'a range is exactly the prefix');
  t.ok(BigInt(r.revision) >= BigInt(fresh.revision), 'with the revision it was read at');
  await c.txn('drop', { if: [], then: [{ deletePrefix: `${p}x/` }] });
  t.strictSame((await c.range('list', p)).kvs.map((k) => k.key.toString()), [`${p}block`, `${p}y`], 'deletePrefix removed only the prefix');

  t.equal(await c.leaseTtl('ttl', '12345'), undefined, 'an unknown lease has no TTL');

  const down = EtcdClient.connect(['127.0.0.1:1'], 600);
  t.teardown(() => down.close());
  const start = Date.now();
  const err = await rejected(down.range('read hosts', '/vxt/'));
  t.match(err, { name: 'TryAgainLater', code: 11, message: /^read hosts: no etcd member answers \(.*ECONNREFUSED.*\); try again$/ });
  t.ok(Date.now() - start < 5000, `gave up within the retry budget (${Date.now() - start} ms)`);
});

interface Seen {
  resets: Array<{ keys: string[]; revision: string }>;
  changes: string[];
  /** The revision of each change, in delivery order. */
  revisions: bigint[];
  state: Map<string, string>;
}

function recorder(troubles: string[]): { seen: Seen; handlers: PrefixWatchHandlers } {
  const seen: Seen = { resets: [], changes: [], revisions: [], state: new Map() };
  return {
    seen,
    handlers: {
      reset(kvs: IKeyValue[], revision: string): void {
        seen.resets.push({ keys: kvs.map((k) => k.key.toString()), revision });
        seen.state = new Map(kvs.map((k) => [k.key.toString(), k.value.toString()]));
      },
      change(type: 'put' | 'delete', kv: IKeyValue): void {
        const key = kv.key.toString();
        seen.revisions.push(BigInt(kv.mod_revision));
        seen.changes.push(`${type} ${key.slice(key.lastIndexOf('/') + 1)}${type === 'put' ? `=${kv.value.toString()}` : ''}`);
        if (type === 'put') seen.state.set(key, kv.value.toString()); else seen.state.delete(key);
      },
      trouble: (err) => { troubles.push(err.message); },
    },
  };
}

t.test('a prefix watch across a member restart and a compaction', async (t) => {
  const etcd = await startEtcd(t, { members: 3 });
  // The watcher talks to member 0 only; the writer to the other two, so writes go on while
  // member 0 is down.
  const watching = EtcdClient.connect([etcd.endpoints[0]]);
  const writer = EtcdClient.connect(etcd.endpoints.slice(1));
  t.teardown(() => { watching.close(); writer.close(); });
  const p = prefix();
  // Guarded like every production write: a put retried after a leader change (its first try
  // applied, the answer lost) must not be applied twice, or the watch would rightly see two.
  const put = (k: string, v: string, was?: string): Promise<unknown> => writer.txn('put', {
    if: [was === undefined ? { key: `${p}${k}`, absent: true } : { key: `${p}${k}`, value: was }], then: [{ put: `${p}${k}`, value: v }],
  });
  const del = (k: string): Promise<unknown> => writer.txn('delete', { if: [{ key: `${p}${k}`, version: 0, not: true }], then: [{ delete: `${p}${k}` }] });
  const actual = async (): Promise<Map<string, string>> =>
    new Map((await writer.range('read', p)).kvs.map((k) => [k.key.toString(), k.value.toString()]));

  await put('a', '1');
  await writer.txn('outside', { if: [{ key: `/vxt-other${p}`, absent: true }], then: [{ put: `/vxt-other${p}`, value: 'x' }] });
  const troubles: string[] = [];
  const { seen, handlers } = recorder(troubles);
  const w = await PrefixWatch.start(watching, p, handlers);
  t.teardown(() => w.close());
  t.strictSame(seen.resets.map((r) => r.keys), [[`${p}a`]], 'starts with the prefix as read');

  await put('b', '1');
  await put('c', '1');
  await writer.txn('two at one revision', { if: [{ key: `${p}g`, absent: true }], then: [{ put: `${p}g`, value: '1' }, { put: `${p}h`, value: '1' }] });
  await pollUntil(() => seen.changes.length >= 4, { timeoutMs: 5000, what: 'the first changes' });

  await etcd.kill(0);
  await pollUntil(() => troubles.length > 0, { timeoutMs: 10_000, what: 'the watch noticing member 0 gone' });
  await put('d', '1');
  await put('e', '1');
  await del('b');
  await put('c', '2', '1');
  await etcd.restart(0);
  await put('f', '1');
  await pollUntil(() => seen.changes.includes('put f=1'), { timeoutMs: 15_000, what: 'the change after the restart' });
  t.strictSame(seen.changes, ['put b=1', 'put c=1', 'put g=1', 'put h=1', 'put d=1', 'put e=1', 'delete b', 'put c=2', 'put f=1'],
    'every change once, in order, including those made while member 0 was down');
  t.ok(seen.revisions.every((r, i) => i === 0 || r > seen.revisions[i - 1] || (r === seen.revisions[i - 1] && i === 3)),
    'revisions only grow (g and h share one)');
  t.equal(w.resets, 1, 'resumed: no second read of the prefix');
  t.strictSame(seen.state, await actual(), 'the watched view is the store');
  t.match(troubles[0], /^watch \/vxt-/, 'the outage was reported in the error family');

  // While member 0 is down again, the history the watch would resume from is compacted away.
  await etcd.kill(0);
  await put('i', '1');
  await del('a');
  const top = await writer.txn('j', { if: [{ key: `${p}j`, absent: true }], then: [{ put: `${p}j`, value: '1' }] });
  await writer.raw.kv.compact({ revision: top.revision, physical: true });
  const changesBefore = seen.changes.length;
  await etcd.restart(0);
  await pollUntil(() => w.resets === 2, { timeoutMs: 15_000, what: 'a second read after the compaction' });
  t.equal(seen.changes.length, changesBefore, 'the compacted changes came as a reset, not as changes');
  t.ok(BigInt(seen.resets[1].revision) >= BigInt(top.revision), 'read at or after the compaction');
  t.strictSame(seen.state, await actual(), 'the view after the reset is the store');
  await put('k', '1');
  await pollUntil(() => seen.changes.includes('put k=1'), { timeoutMs: 5000, what: 'a change after the reset' });
  t.strictSame(seen.changes.slice(changesBefore), ['put k=1'], 'and the watch goes on from the reset');
  t.strictSame(seen.state, await actual());
});
