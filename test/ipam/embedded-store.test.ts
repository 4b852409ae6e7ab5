// The embedded (SQLite) store: the compliance suite on a temp directory, then what only a
// store shared by processes on one host must survive: many processes allocating at once, and
// a process killed inside a transaction.
import t from 'tap';
import * as fs from 'node:fs/promises';
import { existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatIp } from '../../ipam/addr';
import { closeIdleEmbeddedStores, keepEmbeddedStoresOpen, openStore } from '../../ipam/store';
import { bundleScript, spawnBundle } from './helpers/child';
import { ip, owner, tmpDir } from './helpers/embedded';
import { rejected } from './helpers/errors';
import { storeCompliance } from './store-compliance';

storeCompliance(t, async () => {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vxnet-compliance-'));
  const store = openStore({ dataDir });
  return { store, cleanup: async () => { await store.close(); await fs.rm(dataDir, { recursive: true, force: true }); } };
});

const fixture = (name: string): string => path.join(__dirname, 'fixtures', name);

t.test('persists across close and reopen; mustExist opens only an existing store', async (t) => {
  const dataDir = await tmpDir(t);
  t.strictSame(await rejected((async () => openStore({ dataDir, mustExist: true }))()),
    { name: 'PluginNotAvailable', code: 50, message: `no IPAM store at ${path.join(dataDir, 'ipam.db')}: unable to open database file` });
  const first = openStore({ dataDir });
  t.match(first.description, /^embedded:/);
  await first.withLock(async (tx) => { await tx.putPool('net', '[]'); await tx.reserve(owner('c1'), ip('10.0.0.2'), 0); });
  await first.close();
  await first.close();
  t.pass('close is idempotent');
  const again = openStore({ dataDir, mustExist: true });
  t.teardown(() => again.close());
  t.equal((await again.view((tx) => tx.ownerOf('net', ip('10.0.0.2'))))?.containerId, 'c1');
  t.equal((await again.view((tx) => tx.lastReserved('net', 0)))?.value, ip('10.0.0.2').value);
  t.ok(await again.view((tx) => tx.getPool('net')));
});

t.test('kept open between callers (vxnetd); a store file replaced meanwhile is opened anew', async (t) => {
  keepEmbeddedStoresOpen(60_000);
  t.teardown(async () => { keepEmbeddedStoresOpen(0); await closeIdleEmbeddedStores(); });
  const dataDir = await tmpDir(t);
  const wal = path.join(dataDir, 'ipam.db-wal');
  const a = openStore({ dataDir });
  await a.withLock(async (tx) => { await tx.reserve(owner('c1'), ip('10.0.0.2'), 0); });
  await a.close();
  t.ok(existsSync(wal), 'still open after its last caller closed it (SQLite removes the WAL on the last close)');
  const b = openStore({ dataDir, mustExist: true });
  t.equal((await b.view((tx) => tx.ownerOf('net', ip('10.0.0.2'))))?.containerId, 'c1', 'the next caller sees the data');
  await b.close();
  await fs.rm(dataDir, { recursive: true, force: true });
  t.match(await rejected((async () => openStore({ dataDir, mustExist: true }))()),
    { name: 'PluginNotAvailable', code: 50, message: `no IPAM store at ${path.join(dataDir, 'ipam.db')}` },
    'the deleted file is not used');
  const c = openStore({ dataDir });
  t.equal(await c.view((tx) => tx.ownerOf('net', ip('10.0.0.2'))), undefined, 'a new, empty store');
  await c.close();
  t.ok(existsSync(wal), 'kept open too');
  await closeIdleEmbeddedStores();
  t.notOk(existsSync(wal), 'closed at shutdown');
});

t.test('many processes allocate from one data directory at once', async (t) => {
  const workers = 16;
  const each = 20;
  const dataDir = await tmpDir(t); // empty: the workers also race to create the database
  const worker = await bundleScript(t, fixture('alloc-worker.ts'));
  const children = Array.from({ length: workers }, (_, w) => spawnBundle(t, worker, [dataDir, String(w), String(each)]));
  for (const c of children) t.equal(await c.nextLine(), 'ready');
  for (const c of children) c.send('go', true); // all loaded; start them together
  const results = await Promise.all(children.map(async (c) => {
    const line = await c.nextLine();
    const exit = await c.exited;
    if (exit.code !== 0) t.fail(`worker exited ${exit.code ?? exit.signal}: ${c.stderr()}`);
    return JSON.parse(line) as string[][];
  }));

  const all = results.flat();
  t.equal(all.length, workers * each, 'every ADD returned');
  t.ok(all.every((pair) => pair.length === 2), 'each got one address per range set');
  const v4 = all.map((pair) => pair[0]);
  const v6 = all.map((pair) => pair[1]);
  t.equal(new Set(v4).size, v4.length, 'no IPv4 address handed out twice');
  t.equal(new Set(v6).size, v6.length, 'no IPv6 address handed out twice');
  // Serialized round-robin over an empty pool hands out exactly the first N addresses after the gateway.
  const firstN = (base: bigint, family: 4 | 6): string[] => Array.from({ length: workers * each }, (_, i) => formatIp({ family, value: base + 2n + BigInt(i) }));
  t.same(new Set(v4), new Set(firstN(ip('10.7.0.0').value, 4)), 'IPv4: 10.7.0.2 onwards, no gaps, no gateway');
  t.same(new Set(v6), new Set(firstN(ip('fd07::').value, 6)), 'IPv6: fd07::2 onwards, no gaps, no gateway');

  const store = openStore({ dataDir, mustExist: true });
  t.teardown(() => store.close());
  const held = await store.view((tx) => tx.list({ network: 'conc' }));
  t.equal(held.length, 2 * workers * each, 'the store holds what was returned');
  t.same(new Set(held.map((a) => a.address)), new Set([...v4, ...v6]));
  t.equal(new Set(held.map((a) => a.containerId)).size, workers * each, 'one attachment per container');
});

t.test('a process killed inside a transaction leaves nothing behind', async (t) => {
  const dataDir = await tmpDir(t);
  const store = openStore({ dataDir });
  t.teardown(() => store.close());
  await store.withLock((tx) => tx.reserve(owner('survivor'), ip('10.0.0.2'), 0));

  const walBefore = (await fs.stat(path.join(dataDir, 'ipam.db-wal'))).size;
  const child = spawnBundle(t, await bundleScript(t, fixture('die-in-tx.ts')), [dataDir, '200000']);
  t.equal(await child.nextLine(), 'written', 'the child is inside its transaction, uncommitted');
  const walDuring = (await fs.stat(path.join(dataDir, 'ipam.db-wal'))).size;
  t.ok(walDuring > walBefore, `uncommitted pages reached the WAL (${walBefore} -> ${walDuring} bytes): the kill leaves a torn write on disk`);
  child.proc.kill('SIGKILL');
  t.same(await child.exited, { code: null, signal: 'SIGKILL' });

  const reopened = openStore({ dataDir, mustExist: true });
  t.teardown(() => reopened.close());
  for (const [name, s] of [['the connection open before the kill', store], ['a new connection', reopened]] as const) {
    t.same(await s.view((tx) => tx.list({ network: 'doomed' })), [], `${name}: no reservation of the killed process`);
    t.equal(await s.view((tx) => tx.getPool('doomed')), undefined, `${name}: no pool`);
    t.equal(await s.view((tx) => tx.lastReserved('doomed', 0)), undefined, `${name}: no lastReserved`);
    t.equal((await s.view((tx) => tx.ownerOf('net', ip('10.0.0.2'))))?.containerId, 'survivor', `${name}: its release undone`);
    t.same(await s.view((tx) => tx.history()), [], `${name}: no history`);
  }
  // The write lock died with the process: both connections can write over the torn WAL.
  await reopened.check();
  t.ok(await reopened.withLock((tx) => tx.reserve(owner('after', { network: 'doomed' }), ip('10.8.0.2'), 0)), 'an address it held is free');
  await store.check();
  t.ok(await store.withLock((tx) => tx.reserve(owner('after2', { network: 'doomed' }), ip('10.8.0.3'), 0)), 'from the old connection too');
  t.same((await reopened.view((tx) => tx.list({ network: 'doomed' }))).map((a) => a.containerId), ['after', 'after2']);
});

// The schema of the first release (SCHEMA_VERSION 1), as it created its tables.
const V1_SCHEMA = `
CREATE TABLE pools(network TEXT PRIMARY KEY, definition TEXT NOT NULL, updated INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE allocations(
  network TEXT NOT NULL, addr_key TEXT NOT NULL, range_set INTEGER NOT NULL,
  container_id TEXT NOT NULL, ifname TEXT NOT NULL, runtime TEXT NOT NULL,
  name TEXT, aliases TEXT, netns TEXT, since INTEGER NOT NULL,
  PRIMARY KEY(network, addr_key)) WITHOUT ROWID;
CREATE INDEX allocations_owner ON allocations(network, container_id, ifname);
CREATE TABLE last_reserved(network TEXT NOT NULL, range_set INTEGER NOT NULL, addr_key TEXT NOT NULL,
  PRIMARY KEY(network, range_set)) WITHOUT ROWID;
CREATE TABLE history(
  id INTEGER PRIMARY KEY AUTOINCREMENT, network TEXT NOT NULL, addr_key TEXT NOT NULL, range_set INTEGER NOT NULL,
  container_id TEXT NOT NULL, ifname TEXT NOT NULL, runtime TEXT NOT NULL,
  name TEXT, aliases TEXT, netns TEXT, since INTEGER NOT NULL, until INTEGER NOT NULL, reason TEXT NOT NULL);
CREATE INDEX history_addr ON history(network, addr_key);
`;

function writeV1Database(dataDir: string): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Database = require('better-sqlite3') as typeof import('better-sqlite3');
  const db = new Database(path.join(dataDir, 'ipam.db'));
  db.pragma('journal_mode = WAL');
  db.exec(V1_SCHEMA);
  db.prepare('INSERT INTO pools VALUES (?,?,?)').run('net', '[]', 1);
  // 10.0.0.2 and 10.0.0.3 as the v1 store keyed them (8 hex digits).
  db.prepare('INSERT INTO allocations VALUES (?,?,?,?,?,?,?,?,?,?)').run('net', '0a000002', 0, 'old', 'eth0', 'cni', 'web-0', '["web"]', '/var/run/netns/old', 1000);
  db.prepare('INSERT INTO allocations VALUES (?,?,?,?,?,?,?,?,?,?)').run('net', '0a000003', 0, 'gone', 'eth0', 'docker', null, null, null, 1000);
  db.prepare('INSERT INTO last_reserved VALUES (?,?,?)').run('net', 0, '0a000003');
  db.prepare(`INSERT INTO history(network, addr_key, range_set, container_id, ifname, runtime, name, aliases, netns, since, until, reason)
    VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`).run('net', '0a000009', 0, 'was', 'eth0', 'cni', 'was-0', null, null, 10, 20, 'del');
  db.pragma('user_version = 1');
  db.close();
}

t.test('a version-1 store (the previous release) opens, keeps its rows, and takes labels and ports', async (t) => {
  const dataDir = await tmpDir(t);
  writeV1Database(dataDir);
  const store = openStore({ dataDir, mustExist: true });
  t.teardown(() => store.close());
  const rows = await store.view((tx) => tx.list());
  t.match(rows, [
    { network: 'net', address: '10.0.0.2', containerId: 'old', runtime: 'cni', name: 'web-0', aliases: ['web'], netns: '/var/run/netns/old', since: 1000 },
    { network: 'net', address: '10.0.0.3', containerId: 'gone', runtime: 'docker', since: 1000 },
  ], 'both allocations, as written');
  t.equal(rows[0]?.labels, undefined, 'no labels on an old row');
  t.equal((await store.view((tx) => tx.lastReserved('net', 0)))?.value, ip('10.0.0.3').value, 'lastReserved kept');
  t.match(await store.view((tx) => tx.history()), [{ containerId: 'was', name: 'was-0', reason: 'del', until: 20 }], 'history kept');
  await store.withLock((tx) => tx.reserve(owner('new', { labels: { app: 'x' }, ports: [{ port: 80, protocol: 'tcp' }] }), ip('10.0.0.4'), 0));
  t.match(await store.view((tx) => tx.ownerOf('net', ip('10.0.0.4'))), { labels: { app: 'x' }, ports: [{ port: 80, protocol: 'tcp' }] }, 'a new row has meta');
  await store.withLock((tx) => tx.releaseByOwner('net', 'old', undefined, 'del'));
  t.match((await store.view((tx) => tx.history('net', ip('10.0.0.2'))))[0], { containerId: 'old', name: 'web-0', reason: 'del' }, 'an old row moves to history');
  await store.close();

  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Database = require('better-sqlite3') as typeof import('better-sqlite3');
  const db = new Database(path.join(dataDir, 'ipam.db'), { readonly: true });
  t.equal(db.pragma('user_version', { simple: true }), 2, 'migrated to version 2');
  db.close();
});

t.test('a store a version-1 vxnet opened again (user_version back to 1, meta columns present) opens', async (t) => {
  const dataDir = await tmpDir(t);
  const first = openStore({ dataDir });
  await first.withLock((tx) => tx.reserve(owner('c1', { labels: { a: 'b' } }), ip('10.0.0.2'), 0));
  await first.close();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Database = require('better-sqlite3') as typeof import('better-sqlite3');
  const db = new Database(path.join(dataDir, 'ipam.db'));
  db.pragma('user_version = 1');
  db.close();
  const again = openStore({ dataDir, mustExist: true });
  t.teardown(() => again.close());
  t.same((await again.view((tx) => tx.ownerOf('net', ip('10.0.0.2'))))?.labels, { a: 'b' });
});

t.test('a store from a newer vxnet (schema version 3) is refused, not rewritten', async (t) => {
  const dataDir = await tmpDir(t);
  const first = openStore({ dataDir });
  await first.close();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Database = require('better-sqlite3') as typeof import('better-sqlite3');
  const db = new Database(path.join(dataDir, 'ipam.db'));
  db.pragma('user_version = 3');
  db.close();
  t.match(await rejected((async () => openStore({ dataDir }))()),
    { name: 'IoFailure', code: 5, message: /schema version 3, written by a newer vxnet/ });
  const check = new Database(path.join(dataDir, 'ipam.db'), { readonly: true });
  t.equal(check.pragma('user_version', { simple: true }), 3, 'left as it was');
  check.close();
});
