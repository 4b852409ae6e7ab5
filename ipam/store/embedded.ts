// The embedded store: one SQLite database per data directory (better-sqlite3).
//
// Why SQLite: many CNI processes allocate at once, each a fresh process. SQLite gives each
// one a real transaction (BEGIN IMMEDIATE takes the database's write lock, waits up to
// busy_timeout for it, and a process killed half-way rolls back on its own through the
// WAL), indexed range scans for the allocator, and a single file an operator can back up.
// host-local's file-per-address with one flock does the same job with more syscalls and no
// history. WAL mode lets vxnetctl read while plugins write.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { IoFailure, PluginNotAvailable, TryAgainLater } from '../../lib/errors';
import { Mutex } from '../../lib/mutex';
import { bundled, loadBundledAddon } from '../../lib/native';
import { trace } from '../../lib/trace';
import { Ip, formatIp, ipFromKey, ipKey } from '../addr';
import type { Allocation, AllocationFilter, HistoryEntry, IpamStore, IpamTx, Owner, OwnerPort, PoolRecord } from './types';

// 1: the first release. 2: `meta` (the owner's CNI labels and ports as JSON) on allocations and
// history, added in place to a version-1 database (migrate()).
const SCHEMA_VERSION = 2;
const HISTORY_KEEP = 100_000;
const BUSY_TIMEOUT_MS = 30_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS pools(
  network TEXT PRIMARY KEY, definition TEXT NOT NULL, updated INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS allocations(
  network TEXT NOT NULL, addr_key TEXT NOT NULL, range_set INTEGER NOT NULL,
  container_id TEXT NOT NULL, ifname TEXT NOT NULL, runtime TEXT NOT NULL,
  name TEXT, aliases TEXT, netns TEXT, since INTEGER NOT NULL, meta TEXT,
  PRIMARY KEY(network, addr_key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS allocations_owner ON allocations(network, container_id, ifname);
CREATE TABLE IF NOT EXISTS last_reserved(
  network TEXT NOT NULL, range_set INTEGER NOT NULL, addr_key TEXT NOT NULL,
  PRIMARY KEY(network, range_set)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history(
  id INTEGER PRIMARY KEY AUTOINCREMENT, network TEXT NOT NULL, addr_key TEXT NOT NULL, range_set INTEGER NOT NULL,
  container_id TEXT NOT NULL, ifname TEXT NOT NULL, runtime TEXT NOT NULL,
  name TEXT, aliases TEXT, netns TEXT, since INTEGER NOT NULL, until INTEGER NOT NULL, reason TEXT NOT NULL, meta TEXT);
CREATE INDEX IF NOT EXISTS history_addr ON history(network, addr_key);
`;

interface AllocationRow {
  network: string; addr_key: string; range_set: number; container_id: string; ifname: string;
  runtime: string; name: string | null; aliases: string | null; netns: string | null; since: number;
  meta: string | null;
}
interface HistoryRow extends AllocationRow { until: number; reason: string }

/** What the `meta` column holds: the owner's fields that only the endpoint catalog reads. */
interface Meta { labels?: Record<string, string>; ports?: OwnerPort[] }

function metaOf(owner: Owner): string | null {
  const meta: Meta = {};
  if (owner.labels && Object.keys(owner.labels).length) meta.labels = { ...owner.labels };
  if (owner.ports && owner.ports.length) meta.ports = owner.ports.map((p) => ({ port: p.port, protocol: p.protocol }));
  return meta.labels || meta.ports ? JSON.stringify(meta) : null;
}

/**
 * The owner's labels and ports from `meta`. A value that does not parse or has the wrong shape
 * reads as none: the allocation itself (who holds the address) must stay readable whatever
 * happened to this column.
 */
function parseMeta(text: string | null): Pick<Owner, 'labels' | 'ports'> {
  if (!text) return {};
  let raw: unknown;
  try { raw = JSON.parse(text); } catch { return {}; }
  if (typeof raw !== 'object' || raw === null) return {};
  const { labels, ports } = raw as { labels?: unknown; ports?: unknown };
  const out: { labels?: Record<string, string>; ports?: OwnerPort[] } = {};
  if (typeof labels === 'object' && labels !== null && !Array.isArray(labels)) {
    const l = Object.entries(labels).filter((e): e is [string, string] => typeof e[1] === 'string');
    if (l.length) out.labels = Object.fromEntries(l);
  }
  if (Array.isArray(ports)) {
    const p = ports.filter((x): x is OwnerPort => typeof x === 'object' && x !== null && Number.isInteger((x as OwnerPort).port)
      && ((x as OwnerPort).protocol === 'tcp' || (x as OwnerPort).protocol === 'udp')).map((x) => ({ port: x.port, protocol: x.protocol }));
    if (p.length) out.ports = p;
  }
  return out;
}

function toAllocation(row: AllocationRow): Allocation {
  const ip = ipFromKey(row.addr_key);
  return {
    network: row.network, address: formatIp(ip), family: ip.family, rangeSet: row.range_set,
    containerId: row.container_id, ifname: row.ifname, runtime: row.runtime,
    ...(row.name ? { name: row.name } : {}),
    ...(row.aliases ? { aliases: JSON.parse(row.aliases) as string[] } : {}),
    ...(row.netns ? { netns: row.netns } : {}),
    ...parseMeta(row.meta),
    since: row.since,
  };
}

class EmbeddedTx implements IpamTx {
  private readonly statements = new Map<string, BetterSqlite3.Statement>();
  constructor(private readonly db: BetterSqlite3.Database) {}

  // Owner lookups name their index: without statistics (no ANALYZE) SQLite prefers the primary
  // key's network prefix and scans every allocation of the network, which grows with the pool.
  private stmt(sql: string): BetterSqlite3.Statement {
    let s = this.statements.get(sql);
    if (!s) { s = this.db.prepare(sql); this.statements.set(sql, s); }
    return s;
  }

  async reserve(owner: Owner, ip: Ip, rangeSet: number): Promise<boolean> {
    const key = ipKey(ip);
    const info = this.stmt(`INSERT OR IGNORE INTO allocations
      (network, addr_key, range_set, container_id, ifname, runtime, name, aliases, netns, since, meta)
      VALUES (?,?,?,?,?,?,?,?,?,?,?)`).run(
      owner.network, key, rangeSet, owner.containerId, owner.ifname, owner.runtime, owner.name ?? null,
      owner.aliases && owner.aliases.length ? JSON.stringify(owner.aliases) : null, owner.netns ?? null, Date.now(), metaOf(owner));
    if (info.changes === 0) return false;
    this.stmt('INSERT OR REPLACE INTO last_reserved(network, range_set, addr_key) VALUES (?,?,?)').run(owner.network, rangeSet, key);
    return true;
  }

  async listByOwner(network: string, containerId: string, ifname?: string): Promise<Allocation[]> {
    const rows = ifname === undefined
      ? this.stmt('SELECT * FROM allocations INDEXED BY allocations_owner WHERE network=? AND container_id=? ORDER BY range_set, addr_key').all(network, containerId)
      : this.stmt('SELECT * FROM allocations INDEXED BY allocations_owner WHERE network=? AND container_id=? AND ifname=? ORDER BY range_set, addr_key').all(network, containerId, ifname);
    return (rows as AllocationRow[]).map(toAllocation);
  }

  private moveToHistory(rows: AllocationRow[], reason: string): void {
    const until = Date.now();
    const insert = this.stmt(`INSERT INTO history
      (network, addr_key, range_set, container_id, ifname, runtime, name, aliases, netns, since, until, reason, meta)
      VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`);
    const remove = this.stmt('DELETE FROM allocations WHERE network=? AND addr_key=?');
    for (const r of rows) {
      insert.run(r.network, r.addr_key, r.range_set, r.container_id, r.ifname, r.runtime, r.name, r.aliases, r.netns, r.since, until, reason, r.meta);
      remove.run(r.network, r.addr_key);
    }
    if (rows.length > 0 && Math.random() < 0.01) {
      this.stmt('DELETE FROM history WHERE id <= (SELECT max(id) FROM history) - ?').run(HISTORY_KEEP);
    }
  }

  async releaseByOwner(network: string, containerId: string, ifname: string | undefined, reason: string): Promise<Allocation[]> {
    const rows = (ifname === undefined
      ? this.stmt('SELECT * FROM allocations INDEXED BY allocations_owner WHERE network=? AND container_id=?').all(network, containerId)
      : this.stmt('SELECT * FROM allocations INDEXED BY allocations_owner WHERE network=? AND container_id=? AND ifname=?').all(network, containerId, ifname)) as AllocationRow[];
    this.moveToHistory(rows, reason);
    return rows.map(toAllocation);
  }

  async updateOwner(network: string, ip: Ip, owner: Owner): Promise<boolean> {
    const info = this.stmt(`UPDATE allocations SET container_id=?, ifname=?, runtime=?, name=?, aliases=?, netns=?, meta=?
      WHERE network=? AND addr_key=?`).run(
      owner.containerId, owner.ifname, owner.runtime, owner.name ?? null,
      owner.aliases && owner.aliases.length ? JSON.stringify(owner.aliases) : null, owner.netns ?? null, metaOf(owner), network, ipKey(ip));
    return info.changes > 0;
  }

  async releaseAddress(network: string, ip: Ip, reason: string): Promise<Allocation | undefined> {
    const row = this.stmt('SELECT * FROM allocations WHERE network=? AND addr_key=?').get(network, ipKey(ip)) as AllocationRow | undefined;
    if (!row) return undefined;
    this.moveToHistory([row], reason);
    return toAllocation(row);
  }

  async ownerOf(network: string, ip: Ip): Promise<Allocation | undefined> {
    const row = this.stmt('SELECT * FROM allocations WHERE network=? AND addr_key=?').get(network, ipKey(ip)) as AllocationRow | undefined;
    return row && toAllocation(row);
  }

  async lastReserved(network: string, rangeSet: number): Promise<Ip | undefined> {
    const row = this.stmt('SELECT addr_key FROM last_reserved WHERE network=? AND range_set=?').get(network, rangeSet) as { addr_key: string } | undefined;
    return row && ipFromKey(row.addr_key);
  }

  async takenBetween(network: string, from: Ip, to: Ip, limit: number): Promise<Ip[]> {
    // IPv4 keys (8 hex digits) sort between IPv6 keys (32): keep to the family of from..to.
    const fromKey = ipKey(from);
    const rows = this.stmt('SELECT addr_key FROM allocations WHERE network=? AND addr_key>=? AND addr_key<=? AND length(addr_key)=? ORDER BY addr_key LIMIT ?')
      .all(network, fromKey, ipKey(to), fromKey.length, limit) as Array<{ addr_key: string }>;
    return rows.map((r) => ipFromKey(r.addr_key));
  }

  async list(filter: AllocationFilter = {}): Promise<Allocation[]> {
    const where: string[] = [];
    const args: string[] = [];
    if (filter.network !== undefined) { where.push('network=?'); args.push(filter.network); }
    if (filter.containerId !== undefined) { where.push('container_id=?'); args.push(filter.containerId); }
    if (filter.runtime !== undefined) { where.push('runtime=?'); args.push(filter.runtime); }
    const sql = `SELECT * FROM allocations${where.length ? ' WHERE ' + where.join(' AND ') : ''} ORDER BY network, addr_key`;
    return (this.stmt(sql).all(...args) as AllocationRow[]).map(toAllocation);
  }

  async countByNetwork(network: string): Promise<number> {
    return (this.stmt('SELECT count(*) AS n FROM allocations WHERE network=?').get(network) as { n: number }).n;
  }

  async history(network?: string, ip?: Ip, limit = 1000): Promise<HistoryEntry[]> {
    const where: string[] = [];
    const args: Array<string | number> = [];
    if (network !== undefined) { where.push('network=?'); args.push(network); }
    if (ip !== undefined) { where.push('addr_key=?'); args.push(ipKey(ip)); }
    const sql = `SELECT * FROM history${where.length ? ' WHERE ' + where.join(' AND ') : ''} ORDER BY id DESC LIMIT ?`;
    return (this.stmt(sql).all(...args, limit) as HistoryRow[]).map((r) => ({ ...toAllocation(r), until: r.until, reason: r.reason }));
  }

  async getPool(network: string): Promise<PoolRecord | undefined> {
    return this.stmt('SELECT network, definition, updated FROM pools WHERE network=?').get(network) as PoolRecord | undefined;
  }

  async putPool(network: string, definition: string): Promise<void> {
    this.stmt('INSERT OR REPLACE INTO pools(network, definition, updated) VALUES (?,?,?)').run(network, definition, Date.now());
  }

  async listPools(): Promise<PoolRecord[]> {
    return this.stmt('SELECT network, definition, updated FROM pools ORDER BY network').all() as PoolRecord[];
  }

  async deletePool(network: string): Promise<void> {
    this.stmt('DELETE FROM pools WHERE network=?').run(network);
    this.stmt('DELETE FROM last_reserved WHERE network=?').run(network);
  }
}

class EmbeddedStore implements IpamStore {
  readonly description: string;
  /** Callers inside this process; BEGIN IMMEDIATE serializes processes. */
  private readonly mutex = new Mutex();
  private readonly tx: EmbeddedTx;
  constructor(private readonly db: BetterSqlite3.Database, file: string) {
    this.description = `embedded:${file}`;
    this.tx = new EmbeddedTx(db);
  }

  withLock<T>(fn: (tx: IpamTx) => Promise<T>): Promise<T> {
    return this.mutex.run(async () => {
      try {
        this.db.exec('BEGIN IMMEDIATE');
        const result = await fn(this.tx);
        this.db.exec('COMMIT');
        return result;
      } catch (err) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw this.storeError(err);
      }
    });
  }

  /** SQLite's own errors in the error family: a lock held too long is transient (11), the rest I/O (5). */
  private storeError(err: unknown): unknown {
    const code = (err as { code?: unknown }).code;
    if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return err;
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
      return new TryAgainLater(`the IPAM store ${this.description} stayed locked for ${BUSY_TIMEOUT_MS / 1000} s; try again`);
    }
    return new IoFailure(`the IPAM store ${this.description} failed: ${(err as Error).message} (${code})`);
  }

  view<T>(fn: (tx: IpamTx) => Promise<T>): Promise<T> {
    return this.mutex.run(async () => {
      this.db.exec('BEGIN');
      try {
        return await fn(this.tx);
      } finally {
        if (this.db.inTransaction) this.db.exec('COMMIT');
      }
    });
  }

  // Queued behind this process's own transactions: BEGIN inside one of them would fail.
  check(): Promise<void> {
    return this.mutex.run(async () => {
      try {
        this.db.prepare('SELECT count(*) FROM pools').get();
        this.db.exec('BEGIN IMMEDIATE; COMMIT');
      } catch (err) {
        throw new PluginNotAvailable(`the IPAM store ${this.description} cannot be used: ${(err as Error).message}`);
      }
    });
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

/**
 * Open databases of this process, one connection each, shared by every caller. vxnetd runs
 * many CNI calls and the Docker driver at once: two connections to one file in one thread
 * would deadlock (one waits, synchronously, for the write lock the other holds across an
 * await), while callers of one connection queue on its mutex.
 */
const openFiles = new Map<string, { store: EmbeddedStore; refs: number; identity: string; idle?: NodeJS.Timeout }>();

/** How long a database nobody uses stays open (0: closed at once, as an exec'd plugin wants). */
let keepIdleMs = 0;

/**
 * For a long-lived process (vxnetd): keep each database open for `ms` after its last caller
 * closes it, so a CNI call skips opening it and closing it (which checkpoints the WAL: about
 * 1.5 ms per call together). A database file replaced or removed meanwhile is reopened.
 */
export function keepStoresOpen(ms: number): void {
  keepIdleMs = ms;
}

/** Closes every database no caller holds (vxnetd's shutdown). */
export async function closeIdleStores(): Promise<void> {
  for (const [key, entry] of [...openFiles]) {
    if (entry.refs > 0) continue;
    clearTimeout(entry.idle);
    openFiles.delete(key);
    await entry.store.close();
  }
}

/** The file's identity: a database deleted and created again under the same name is another one. */
function fileIdentity(file: string): string {
  try {
    const st = fs.statSync(file);
    return `${st.dev}:${st.ino}`;
  } catch {
    return 'gone';
  }
}

export function openEmbeddedStore(dataDir: string, mustExist: boolean): IpamStore {
  const key = path.resolve(dataDir, 'ipam.db');
  let entry = openFiles.get(key);
  if (entry && entry.refs === 0) {
    clearTimeout(entry.idle);
    entry.idle = undefined;
    if (fileIdentity(key) !== entry.identity) {
      openFiles.delete(key);
      void entry.store.close();
      entry = undefined;
    }
  }
  if (!entry) {
    const store = openConnection(dataDir, mustExist);
    entry = { store, refs: 0, identity: fileIdentity(key) };
    openFiles.set(key, entry);
  }
  entry.refs++;
  const shared = entry;
  let closed = false;
  return {
    description: shared.store.description,
    withLock: (fn) => shared.store.withLock(fn),
    view: (fn) => shared.store.view(fn),
    check: () => shared.store.check(),
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      if (--shared.refs > 0) return;
      if (keepIdleMs > 0) {
        shared.idle = setTimeout(() => {
          if (shared.refs > 0 || openFiles.get(key) !== shared) return;
          openFiles.delete(key);
          void shared.store.close();
        }, keepIdleMs);
        shared.idle.unref();
        return;
      }
      openFiles.delete(key);
      await shared.store.close();
    },
  };
}

function openConnection(dataDir: string, mustExist: boolean): EmbeddedStore {
  const file = path.join(dataDir, 'ipam.db');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Database = require('better-sqlite3') as typeof BetterSqlite3;
  trace('store:required');
  let db: BetterSqlite3.Database;
  try {
    if (!mustExist) fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const nativeBinding = bundled ? loadBundledAddon<object>('better_sqlite3.node') : undefined;
    db = new Database(file, { fileMustExist: mustExist, timeout: BUSY_TIMEOUT_MS, ...(nativeBinding ? { nativeBinding: nativeBinding as unknown as string } : {}) });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (mustExist) throw new PluginNotAvailable(`no IPAM store at ${file}: ${e.message}`);
    throw new IoFailure(`cannot open the IPAM store ${file}: ${e.message}`);
  }
  // Switching a new database to WAL needs an exclusive lock and SQLite does not wait for it
  // (busy_timeout does not apply): when many plugins create the store at once, the losers
  // retry until the winner has created it, within the busy timeout.
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (let attempt = 0; ; attempt++) {
    try {
      if (db.pragma('user_version', { simple: true }) !== SCHEMA_VERSION) {
        db.pragma('journal_mode = WAL');
        db.exec('BEGIN IMMEDIATE');
        // Another process may have created or migrated the schema while this one waited for the lock.
        const version = db.pragma('user_version', { simple: true }) as number;
        if (version > SCHEMA_VERSION) {
          db.exec('ROLLBACK');
          db.close();
          throw new IoFailure(`the IPAM store ${file} has schema version ${version}, written by a newer vxnet (this one knows up to ${SCHEMA_VERSION})`);
        }
        if (version !== SCHEMA_VERSION) {
          db.exec(SCHEMA);
          migrate(db);
          db.pragma(`user_version = ${SCHEMA_VERSION}`);
        }
        db.exec('COMMIT');
      }
      db.pragma('synchronous = NORMAL');
      break;
    } catch (err) {
      if (err instanceof IoFailure) throw err;
      if (db.inTransaction) db.exec('ROLLBACK');
      const busy = String((err as { code?: unknown }).code ?? '').startsWith('SQLITE_BUSY');
      if (busy && Date.now() < deadline) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.min(5 * 2 ** attempt, 50));
        continue;
      }
      db.close();
      throw new IoFailure(`cannot initialise the IPAM store ${file}: ${(err as Error).message}`);
    }
  }
  trace('store:open');
  return new EmbeddedStore(db, file);
}

/**
 * Brings tables created by an older release up to SCHEMA_VERSION, in place, keeping their rows.
 * Columns are added only when missing: a database a version-1 vxnet opened after a newer one
 * (it sets user_version back to 1 and changes nothing else) already has them.
 */
function migrate(db: BetterSqlite3.Database): void {
  for (const table of ['allocations', 'history']) {
    const columns = (db.pragma(`table_info(${table})`) as Array<{ name: string }>).map((c) => c.name);
    if (!columns.includes('meta')) db.exec(`ALTER TABLE ${table} ADD COLUMN meta TEXT`);
  }
}

/** Evaluates better-sqlite3's JavaScript now (its addon still loads on first open). */
export function preloadDriver(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('better-sqlite3');
}
