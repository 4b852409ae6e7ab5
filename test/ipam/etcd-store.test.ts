// The etcd store: the compliance suite against a real etcd (one member, a fresh key prefix per
// subtest), then what only a cluster store must survive: two hosts allocating from one network
// at once, members dying, and etcd gone altogether.
import t from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { Etcd3 } from 'etcd3';
import { formatIp } from '../../ipam/addr';
import { parseIpamConf } from '../../ipam/config';
import { ipamAdd, ipamGc } from '../../ipam/core';
import { openStore, parseStoreUrl } from '../../ipam/store';
import type { IpamStore } from '../../ipam/store/types';
import { startEtcd } from '../helpers/etcd';
import { pollUntil } from '../helpers/sh';
import { ip, owner, tmpDir } from './helpers/embedded';
import { caught, invalidConf, rejected } from './helpers/errors';
import { storeCompliance } from './store-compliance';

t.setTimeout(60_000);

const prefix = (): string => `/vxt-${randomBytes(4).toString('hex')}/`;

t.test('openStore: etcd://host:port[,host:port...] chooses etcd; nothing chooses embedded', async (t) => {
  t.same(parseStoreUrl('etcd://10.0.0.1:2379,h2:2380,[fd00::1]:2379,h4,[::1]'),
    { kind: 'etcd', endpoints: ['10.0.0.1:2379', 'h2:2380', '[fd00::1]:2379', 'h4:2379', '[::1]:2379'] });
  t.same(parseStoreUrl(' etcd://h1:2379/ ').endpoints, ['h1:2379'], 'spaces and a trailing slash');
  for (const [url, why] of [
    ['http://h1:2379', 'is not etcd://host:port[,host:port...]'],
    ['etcd://', 'names no etcd endpoint'],
    ['etcd://h1:99999', ': "h1:99999" is not host:port'],
    ['etcd://fd00::1:2379', ': "fd00::1:2379" is not host:port'],
    ['etcd://h1:2379/prefix', 'is not etcd://host:port[,host:port...]'],
  ]) {
    t.strictSame(caught(() => parseStoreUrl(url)), invalidConf(`store "${url}"${why.startsWith(':') ? '' : ' '}${why}`), url);
  }
  const store = openStore({ store: 'etcd://127.0.0.1:1', etcdPrefix: '/p' });
  t.equal(store.description, 'etcd:127.0.0.1:1/p/', 'opening connects lazily: no etcd needed');
  await store.close();
  const embedded = openStore({ store: '', dataDir: await tmpDir(t) });
  t.match(embedded.description, /^embedded:/, 'an empty store URL is the embedded store');
  await embedded.close();
});

t.test('compliance', async (t) => {
  const etcd = await startEtcd(t);
  storeCompliance(t, async () => {
    const store = openStore({ store: etcd.storeUrl, etcdPrefix: prefix() });
    return { store, cleanup: () => store.close() };
  });
});

const conf = parseIpamConf('conc', { ranges: [[{ subnet: '10.7.0.0/22' }], [{ subnet: 'fd07::/64' }]] });
const add = (store: IpamStore, containerId: string): Promise<string[]> =>
  ipamAdd(store, conf, owner(containerId, { network: 'conc' })).then((r) => r.allocations.map((a) => a.address));

/** Two stores on one prefix: two hosts of one cluster. */
function hosts(t: tap.Test, url: string, n = 2): IpamStore[] {
  const p = prefix();
  return Array.from({ length: n }, () => {
    const store = openStore({ store: url, etcdPrefix: p });
    t.teardown(() => store.close());
    return store;
  });
}

t.test('two hosts allocating from one network at once never collide', async (t) => {
  const etcd = await startEtcd(t);
  const [a, b] = hosts(t, etcd.storeUrl);
  const each = 50;
  const results = await Promise.all([a, b].flatMap((store, h) =>
    Array.from({ length: each }, (_, i) => add(store, `h${h}-c${i}`))));
  t.equal(results.length, 2 * each, 'every ADD returned');
  const v4 = results.map((r) => r[0]);
  const v6 = results.map((r) => r[1]);
  t.equal(new Set(v4).size, v4.length, 'no IPv4 address handed out twice');
  t.equal(new Set(v6).size, v6.length, 'no IPv6 address handed out twice');
  const firstN = (base: bigint, family: 4 | 6): string[] =>
    Array.from({ length: 2 * each }, (_, i) => formatIp({ family, value: base + 2n + BigInt(i) }));
  t.same(new Set(v4), new Set(firstN(ip('10.7.0.0').value, 4)), 'serialized round-robin: 10.7.0.2 onwards, no gaps');
  t.same(new Set(v6), new Set(firstN(ip('fd07::').value, 6)), 'fd07::2 onwards, no gaps');
  const held = await b.view((tx) => tx.list({ network: 'conc' }));
  t.equal(held.length, 4 * each, 'the store holds what was returned, seen from either host');
  t.same(new Set(held.map((x) => x.address)), new Set([...v4, ...v6]));
});

t.test('a withLock that throws leaves nothing, for this host or another', async (t) => {
  const etcd = await startEtcd(t);
  const [a, b] = hosts(t, etcd.storeUrl);
  await a.withLock((tx) => tx.reserve(owner('keep'), ip('10.0.0.1'), 0));
  const boom = new Error('boom');
  const thrown = await a.withLock(async (tx) => {
    await tx.putPool('net', '[]');
    await tx.reserve(owner('c1'), ip('10.0.0.2'), 0);
    await tx.releaseByOwner('net', 'keep', undefined, 'undone');
    t.same((await tx.list()).map((x) => x.address), ['10.0.0.2'], 'fn reads its own writes');
    throw boom;
  }).catch((err: unknown) => err);
  t.equal(thrown, boom, 'the error from fn, as it was thrown');
  for (const [name, s] of [['this host', a], ['another host', b]] as const) {
    t.same((await s.view((tx) => tx.list())).map((x) => `${x.containerId} ${x.address}`), ['keep 10.0.0.1'], `${name}: only what was committed`);
    t.equal(await s.view((tx) => tx.getPool('net')), undefined, `${name}: no pool`);
    t.same(await s.view((tx) => tx.history()), [], `${name}: no history`);
  }
});

t.test('a process killed inside withLock leaves nothing', async (t) => {
  const etcd = await startEtcd(t);
  const p = prefix();
  const child = spawn(process.execPath, [...process.execArgv, path.join(__dirname, 'fixtures', 'etcd-die-in-tx.ts'), etcd.storeUrl, p],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once('close', (code, signal) => resolve(signal ?? code)));
  const line = await new Promise<string>((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).once('line', resolve);
    void exited.then((how) => reject(new Error(`the child exited (${how}) first: ${err}`)));
  });
  t.equal(line, 'written', 'the child is inside withLock with its writes done');
  child.kill('SIGKILL');
  t.equal(await exited, 'SIGKILL');
  const store = openStore({ store: etcd.storeUrl, etcdPrefix: p });
  t.teardown(() => store.close());
  t.same(await store.view((tx) => tx.list()), [], 'no reservation');
  t.equal(await store.view((tx) => tx.getPool('doomed')), undefined, 'no pool');
  t.equal(await store.view((tx) => tx.lastReserved('doomed', 0)), undefined, 'no lastReserved');
  t.ok(await store.withLock((tx) => tx.reserve(owner('after', { network: 'doomed' }), ip('10.8.0.2'), 0)), 'what it reserved is free');
});

t.test('a transaction larger than etcd allows is an IoFailure that says so and writes nothing; GC batches below it', async (t) => {
  const etcd = await startEtcd(t);
  const [store] = hosts(t, etcd.storeUrl, 1);
  for (let i = 0; i < 60; i += 20) {
    await store.withLock(async (tx) => { for (let j = i; j < i + 20; j++) await tx.reserve(owner(`c${j}`), ip(`10.0.1.${j}`), 0); });
  }
  const err = await rejected(store.withLock(async (tx) => {
    for (let j = 0; j < 60; j++) await tx.releaseByOwner('net', `c${j}`, 'eth0', 'test');
  }));
  t.match(err, { name: 'IoFailure', code: 5, message: /too many operations in txn request \(etcd --max-txn-ops bounds the keys one transaction writes\)$/ });
  t.equal(await store.view((tx) => tx.countByNetwork('net')), 60, 'nothing released');
  const kept = Array.from({ length: 10 }, (_, j) => ({ containerId: `c${j}`, ifname: 'eth0' }));
  t.equal((await ipamGc(store, 'net', kept)).length, 50, 'a GC of 50 goes through, in batches');
  t.same((await store.view((tx) => tx.list({ network: 'net' }))).map((a) => a.containerId).sort(), kept.map((a) => a.containerId).sort(), 'the valid ones stay');
});

/** The member that leads, by asking each member for its status. */
async function leaderOf(endpoints: readonly string[]): Promise<number> {
  for (const [i, e] of endpoints.entries()) {
    const client = new Etcd3({ hosts: `http://${e}`, defaultCallOptions: () => ({ deadline: Date.now() + 2000 }) });
    try {
      const s = await client.maintenance.status();
      if (s.leader === s.header.member_id) return i;
    } catch { /* a dead member is not the leader */ } finally { client.close(); }
  }
  throw new Error('no member leads');
}

t.test('three members: killing one, even the leader, mid-run keeps allocations working', async (t) => {
  const etcd = await startEtcd(t, { members: 3 });
  const [a, b] = hosts(t, etcd.storeUrl);
  const got: string[][] = [];
  const run = async (store: IpamStore, h: number, from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i++) got.push(await add(store, `h${h}-c${i}`));
  };
  await Promise.all([run(a, 0, 0, 10), run(b, 1, 0, 10)]);
  const victim = await leaderOf(etcd.endpoints);
  const second = Promise.all([run(a, 0, 10, 30), run(b, 1, 10, 30)]);
  await etcd.kill(victim);
  const started = Date.now();
  await second;
  t.comment(`leader m${victim} killed; the rest took ${Date.now() - started} ms`);
  t.equal(got.length, 60, 'every ADD succeeded');
  t.equal(new Set(got.map((r) => r[0])).size, 60, 'no IPv4 address twice');
  t.equal(new Set(got.map((r) => r[1])).size, 60, 'no IPv6 address twice');
  await a.check();
  t.equal(await b.view((tx) => tx.countByNetwork('conc')), 120, 'the survivors hold all of it');
  await etcd.restart(victim);
  t.ok(etcd.running(victim), 'the member rejoins');
});

t.test('etcd down: check says PluginNotAvailable, operations TryAgainLater, quickly; back: it works', async (t) => {
  const etcd = await startEtcd(t);
  const [store] = hosts(t, etcd.storeUrl, 1);
  t.same(await add(store, 'before'), ['10.7.0.2', 'fd07::2']);
  await etcd.kill(0);

  let started = Date.now();
  const [host, port] = etcd.endpoints[0].split(':');
  t.strictSame(await rejected(store.check()), { name: 'PluginNotAvailable', code: 50,
    message: `the IPAM store ${store.description} cannot be used: no etcd member answers (connect ECONNREFUSED ${host}:${port})` }, 'check');
  t.ok(Date.now() - started < 3000, `check answered in ${Date.now() - started} ms`);
  started = Date.now();
  t.strictSame(await rejected(add(store, 'during')), { name: 'TryAgainLater', code: 11,
    message: `the IPAM store ${store.description} is unavailable: no etcd member answers (connect ECONNREFUSED ${host}:${port}); try again` }, 'ADD');
  t.match(await rejected(store.view((tx) => tx.list())), { name: 'TryAgainLater', code: 11 }, 'a read');
  const took = Date.now() - started;
  t.ok(took < 5000, `both answered in ${took} ms (a short retry, not a hang)`);

  await etcd.restart(0);
  await pollUntil(() => store.check().then(() => true), { timeoutMs: 10_000, what: 'the store usable again' });
  t.same(await add(store, 'after'), ['10.7.0.3', 'fd07::3'], 'allocates again, after what it held before');
  t.equal((await store.view((tx) => tx.ownerOf('conc', ip('10.7.0.2'))))?.containerId, 'before', 'nothing lost');
});
