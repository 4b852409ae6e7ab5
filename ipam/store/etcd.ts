// The etcd store: the IpamStore of a cluster, on etcd v3 through the `etcd3` client.
//
// Why etcd, and why optimistic transactions rather than a lock. Every host's vxnetd, CNI
// plugin and Docker driver allocate from one network's pool, so the store must serialize
// allocators across hosts. An etcd lock (a lease-backed key) would do it, but a holder that
// dies keeps every host of the cluster waiting for its lease TTL, and each withLock would pay
// a lease grant, a lock key and a revoke. Instead withLock runs fn against a snapshot of the
// store (every read at one etcd revision R), buffers fn's writes, and commits them in one etcd
// Txn guarded by "nothing fn read has changed since R". If something did, the Txn writes
// nothing and fn runs again on a fresh snapshot (bounded; then TryAgainLater). So fn's writes
// commit all together or not at all, a process killed half-way leaves nothing, nobody waits on
// a dead peer, and the outcome is as if the withLock calls of all hosts ran one at a time.
// Inside one process a mutex serializes withLock callers, so they never conflict with each
// other; conflicts, and reruns of fn, happen only between processes or hosts.
//
// Key layout (prefix P, default "/vxnet/ipam/"; N, containerId and ifname URI-encoded, so none
// contains "/"; K is ipam/addr's ipKey, fixed-width hex that sorts like the address):
//   P alloc/N/v4/K, P alloc/N/v6/K      the allocation (JSON). One key range per family, so
//                                       takenBetween is one ranged read with a limit.
//   P owner/N/containerId/ifname/K      the same JSON again: listByOwner, releaseByOwner and
//                                       GC read one prefix instead of scanning the network.
//   P last/N/rangeSet                   K of the set's last reserved address (round-robin).
//   P pools/N                           {definition, updated}.
//   P hist/N/K/id                       a released allocation (JSON, with until and reason);
//                                       newest first is etcd's create-revision order.
//   P gen/N, P gen                      written by every commit that writes network N / anything.
//
// Ordering and conflicts. A read of network N's keys adds "mod_revision(P gen/N) < R+1" to the
// commit's guard; a read across networks (list without a network, listPools, history without a
// network) adds the same for P gen. Every commit puts P gen/N for each network it writes and
// P gen. Guarding whole networks instead of single keys also catches phantoms (a key another
// host created inside a range fn scanned, which a per-key guard cannot see), and costs little:
// every reserve in a network writes P last/N/*, so two allocators of one network conflict
// anyway. Allocators of different networks never conflict. Reads inside fn see fn's own
// buffered writes (merged over the snapshot), as a SQL transaction would.
//
// Scaling. An ADD costs about eight round trips (snapshot revision, pool, owner, last,
// takenBetween batches of 512, the reserve's read, the commit) and one Raft write. Contention
// is per network: with H hosts allocating from one network at once, a commit can lose to any
// of the H-1 others and fn runs again, so hosts of a large cluster should allocate from blocks
// of their own (each block its own network scope here) rather than all from one pool. One
// commit writes at most etcd's --max-txn-ops keys (default 128: about 40 releases); a larger
// transaction fails with IoFailure saying so (ipamGc releases in batches of GC_BATCH below it). History is kept to HISTORY_KEEP entries per network,
// trimmed after commits outside any transaction; the history of one address across all
// networks scans the whole history (vxnetctl only).
//
// Errors. etcd unreachable, without a leader or too slow (each call has a deadline) is
// TryAgainLater (11): withLock and view retry it for up to retryBudgetMs (5 s, a leader
// election) or 1 s when no member answers at all (a restart, not an outage), then throw it.
// Anything else etcd says is IoFailure (5); check() turns any failure into PluginNotAvailable
// (50). Errors thrown by fn pass through untouched.
//
// Loading. etcd3 and gRPC come from ./etcd-client, loaded on the first openEtcdStore by a path
// esbuild does not follow, so the CNI plugins' bundles and startup snapshots do not carry them.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { Etcd3, IKeyValue, IRangeRequest, IRequestOp } from 'etcd3';
import { IoFailure, PluginNotAvailable, TryAgainLater, VxnetError } from '../../lib/errors';
import { Mutex } from '../../lib/mutex';
import { bundled, distDir } from '../../lib/native';
import { Ip, formatIp, ipFromKey, ipKey } from '../addr';
import type { Allocation, AllocationFilter, HistoryEntry, IpamStore, IpamTx, Owner, PoolRecord } from './types';

type Client = typeof import('./etcd-client');
let client: Client | undefined;

/**
 * etcd3 and cockatiel, by a path esbuild does not follow (see ./etcd-client.ts): from source
 * ./etcd-client, in dist/ dist/lib/etcd-client.js, or, in a dist/ built without it, the
 * packages themselves as node_modules above dist/ resolves them (a build in the repository).
 * This module itself stays in the bundles, so the errors it makes are the bundle's own classes
 * (instanceof VxnetError holds).
 */
function etcdClient(): Client {
  if (!client) {
    const file = bundled ? path.join(distDir(), 'lib', 'etcd-client.js') : path.join(__dirname, 'etcd-client');
    const load = createRequire(file);
    try {
      client = load(file) as Client;
    } catch (err) {
      try {
        client = { ...(load('etcd3') as object), ...(load('cockatiel') as object) } as Client;
      } catch {
        throw new IoFailure(`cannot load the etcd client ${file}: ${(err as Error).message}`);
      }
    }
  }
  return client;
}

export const DEFAULT_ETCD_PREFIX = '/vxnet/ipam/';
const HISTORY_KEEP = 10_000;
/** Retrying when no member answers at all covers a member restarting, not an outage. */
const UNREACHABLE_BUDGET_MS = 1000;

export interface EtcdStoreOptions {
  /** Key prefix of this store (default /vxnet/ipam/); tests use one per store. */
  readonly prefix?: string;
  /** Deadline of each etcd call (default 2000 ms). */
  readonly callTimeoutMs?: number;
  /** How long withLock keeps rerunning fn after conflicts before TryAgainLater (default 10 s). */
  readonly conflictBudgetMs?: number;
  /**
   * How long withLock and view keep retrying while etcd is unreachable or has no leader before
   * they throw TryAgainLater (default 5 s: a leader election after a member dies takes 1 to 3).
   */
  readonly retryBudgetMs?: number;
  /** History entries kept per network (default 10000). */
  readonly historyKeep?: number;
}

/** An allocation as stored under alloc/ and owner/ (the network and address are in the key). */
interface Record {
  rangeSet: number;
  containerId: string;
  ifname: string;
  runtime: string;
  name?: string;
  aliases?: string[];
  netns?: string;
  since: number;
}
interface HistoryRecord extends Record { until: number; reason: string; seq: number }

const enc = encodeURIComponent;
const dec = decodeURIComponent;
const fam = (k: string): string => (k.length === 8 ? 'v4' : 'v6');
/** The smallest key after every key that starts with prefix (etcd's range_end for a prefix). */
function prefixEnd(prefix: string): string {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i] < 0xff) { const e = Buffer.from(b.subarray(0, i + 1)); e[i]++; return e.toString('latin1'); }
  }
  return '\0';
}
// Every key is ASCII (names are URI-encoded), except prefixEnd's incremented last byte: latin1 keeps bytes as they are.
const toBuf = (key: string): Buffer => Buffer.from(key, 'latin1');
const fromBuf = (key: Buffer): string => key.toString('latin1');

function recordOf(owner: Owner, rangeSet: number, since: number): Record {
  return {
    rangeSet, containerId: owner.containerId, ifname: owner.ifname, runtime: owner.runtime, since,
    ...(owner.name ? { name: owner.name } : {}),
    ...(owner.aliases && owner.aliases.length ? { aliases: [...owner.aliases] } : {}),
    ...(owner.netns ? { netns: owner.netns } : {}),
  };
}

function toAllocation(network: string, key: string, r: Record): Allocation {
  const ip = ipFromKey(key);
  return {
    network, address: formatIp(ip), family: ip.family, rangeSet: r.rangeSet,
    containerId: r.containerId, ifname: r.ifname, runtime: r.runtime,
    ...(r.name ? { name: r.name } : {}),
    ...(r.aliases && r.aliases.length ? { aliases: r.aliases } : {}),
    ...(r.netns ? { netns: r.netns } : {}),
    since: r.since,
  };
}

/** Thrown inside a transaction when its snapshot can no longer be read (compacted): rerun fn. */
class SnapshotGone extends Error {}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

type Kv = [key: string, value: string, createRevision: string];

class EtcdTx implements IpamTx {
  /** The snapshot revision, taken at the first read. */
  private rev: string | undefined;
  private readonly writes = new Map<string, string | null>();
  private readonly guards = new Set<string>();
  private readonly written = new Set<string>();
  private seq = 0;

  constructor(private readonly store: EtcdStore, private readonly readOnly: boolean) {}

  private get p(): string { return this.store.prefix; }
  private allocKey(network: string, k: string): string { return `${this.p}alloc/${enc(network)}/${fam(k)}/${k}`; }
  private ownerPrefix(network: string, containerId: string, ifname?: string): string {
    return `${this.p}owner/${enc(network)}/${enc(containerId)}/${ifname === undefined ? '' : `${enc(ifname)}/`}`;
  }
  private ownerKey(network: string, r: Record, k: string): string { return `${this.ownerPrefix(network, r.containerId, r.ifname)}${k}`; }
  private lastKey(network: string, rangeSet: number): string { return `${this.p}last/${enc(network)}/${rangeSet}`; }
  private poolKey(network: string): string { return `${this.p}pools/${enc(network)}`; }
  private histPrefix(network?: string, k?: string): string {
    return `${this.p}hist/${network === undefined ? '' : `${enc(network)}/${k === undefined ? '' : `${k}/`}`}`;
  }

  // --- reads: at the snapshot revision, with this transaction's own writes merged in -------

  /** Notes that fn's outcome depends on network (undefined: on everything). */
  private reads(network: string | undefined): void {
    this.guards.add(network === undefined ? this.store.genKey : this.store.netGenKey(network));
  }

  private async range(req: IRangeRequest): Promise<{ kvs: IKeyValue[]; count: number }> {
    if (this.rev === undefined) {
      // A linearizable read fixes the snapshot: everything committed before this point.
      const head = await this.store.call((o) => this.store.client.kv.range({ key: toBuf(this.store.genKey) }, o));
      this.rev = head.header.revision;
    }
    try {
      const res = await this.store.call((o) => this.store.client.kv.range({ ...req, revision: this.rev }, o));
      return { kvs: res.kvs, count: Number(res.count) };
    } catch (err) {
      if (err instanceof IoFailure && /compacted/.test(err.message)) throw new SnapshotGone(err.message);
      throw err;
    }
  }

  private async get(key: string): Promise<string | undefined> {
    if (this.writes.has(key)) return this.writes.get(key) ?? undefined;
    const { kvs } = await this.range({ key: toBuf(key) });
    return kvs[0]?.value.toString('utf8');
  }

  /** Keys in [start, end), ascending, merged with buffered writes; at most limit. */
  private async scan(start: string, end: string, limit?: number): Promise<Kv[]> {
    const inRange = (k: string): boolean => k >= start && k < end;
    const buffered = [...this.writes].filter(([k]) => inRange(k));
    const req: IRangeRequest = { key: toBuf(start), range_end: toBuf(end) };
    if (limit !== undefined) req.limit = limit + buffered.filter(([, v]) => v === null).length;
    const { kvs } = await this.range(req);
    const merged = new Map<string, Kv>();
    for (const kv of kvs) {
      const k = fromBuf(kv.key);
      if (!this.writes.has(k)) merged.set(k, [k, kv.value.toString('utf8'), kv.create_revision]);
    }
    for (const [k, v] of buffered) if (v !== null) merged.set(k, [k, v, 'buffered']);
    const out = [...merged.values()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return limit === undefined ? out : out.slice(0, limit);
  }

  private async count(prefix: string): Promise<number> {
    const end = prefixEnd(prefix);
    let n = (await this.range({ key: toBuf(prefix), range_end: toBuf(end), count_only: true })).count;
    for (const [k, v] of this.writes) {
      if (k < prefix || k >= end) continue;
      const onServer = (await this.range({ key: toBuf(k), count_only: true })).count > 0;
      n += (v !== null ? 1 : 0) - (onServer ? 1 : 0);
    }
    return n;
  }

  // --- writes: buffered until commit -----------------------------------------------------

  private put(network: string, key: string, value: string | null): void {
    if (this.readOnly) throw new Error(`${this.store.description}: view() is read-only; write inside withLock()`);
    this.writes.set(key, value);
    this.written.add(network);
  }

  private release(network: string, k: string, r: Record, reason: string, until: number): void {
    this.put(network, this.allocKey(network, k), null);
    this.put(network, this.ownerKey(network, r, k), null);
    const h: HistoryRecord = { ...r, until, reason, seq: this.seq++ };
    this.put(network, `${this.histPrefix(network, k)}${until.toString(16).padStart(12, '0')}-${randomBytes(6).toString('hex')}`, JSON.stringify(h));
  }

  /** Commits the buffered writes guarded by the snapshot; false when something it read changed. */
  async commit(): Promise<{ committed: boolean; history: string[] }> {
    if (this.writes.size === 0) return { committed: true, history: [] };
    const ops: IRequestOp[] = [];
    for (const [k, v] of this.writes) {
      ops.push(v === null ? { request_delete_range: { key: toBuf(k) } } : { request_put: { key: toBuf(k), value: Buffer.from(v) } });
    }
    const stamp = Buffer.from(String(Date.now()));
    for (const network of this.written) ops.push({ request_put: { key: toBuf(this.store.netGenKey(network)), value: stamp } });
    ops.push({ request_put: { key: toBuf(this.store.genKey), value: stamp } });
    const compare = this.rev === undefined ? [] : [...this.guards].map((key) => ({
      key: toBuf(key), target: 'Mod' as const, result: 'Less' as const, mod_revision: String(BigInt(this.rev as string) + 1n),
    }));
    const res = await this.store.call((o) => this.store.client.kv.txn({ compare, success: ops, failure: [] }, o));
    const history = [...this.written].filter((n) => [...this.writes.keys()].some((k) => k.startsWith(this.histPrefix(n))));
    return { committed: res.succeeded, history };
  }

  // --- IpamTx -------------------------------------------------------------------------------

  async reserve(owner: Owner, ip: Ip, rangeSet: number): Promise<boolean> {
    const k = ipKey(ip);
    this.reads(owner.network);
    if ((await this.get(this.allocKey(owner.network, k))) !== undefined) return false;
    const r = recordOf(owner, rangeSet, Date.now());
    const json = JSON.stringify(r);
    this.put(owner.network, this.allocKey(owner.network, k), json);
    this.put(owner.network, this.ownerKey(owner.network, r, k), json);
    this.put(owner.network, this.lastKey(owner.network, rangeSet), k);
    return true;
  }

  private async ownedBy(network: string, containerId: string, ifname?: string): Promise<Array<[string, Record]>> {
    this.reads(network);
    const prefix = this.ownerPrefix(network, containerId, ifname);
    const rows = (await this.scan(prefix, prefixEnd(prefix)))
      .map(([key, value]): [string, Record] => [key.slice(key.lastIndexOf('/') + 1), JSON.parse(value) as Record]);
    return rows.sort(([ka, a], [kb, b]) => a.rangeSet - b.rangeSet || (ka < kb ? -1 : ka > kb ? 1 : 0));
  }

  async listByOwner(network: string, containerId: string, ifname?: string): Promise<Allocation[]> {
    return (await this.ownedBy(network, containerId, ifname)).map(([k, r]) => toAllocation(network, k, r));
  }

  async releaseByOwner(network: string, containerId: string, ifname: string | undefined, reason: string): Promise<Allocation[]> {
    const rows = await this.ownedBy(network, containerId, ifname);
    const until = Date.now();
    for (const [k, r] of rows) this.release(network, k, r, reason, until);
    return rows.map(([k, r]) => toAllocation(network, k, r));
  }

  async updateOwner(network: string, ip: Ip, owner: Owner): Promise<boolean> {
    const k = ipKey(ip);
    this.reads(network);
    const json = await this.get(this.allocKey(network, k));
    if (json === undefined) return false;
    const old = JSON.parse(json) as Record;
    const next = recordOf(owner, old.rangeSet, old.since);
    const value = JSON.stringify(next);
    this.put(network, this.ownerKey(network, old, k), null);
    this.put(network, this.ownerKey(network, next, k), value);
    this.put(network, this.allocKey(network, k), value);
    return true;
  }

  async releaseAddress(network: string, ip: Ip, reason: string): Promise<Allocation | undefined> {
    const k = ipKey(ip);
    this.reads(network);
    const json = await this.get(this.allocKey(network, k));
    if (json === undefined) return undefined;
    const r = JSON.parse(json) as Record;
    this.release(network, k, r, reason, Date.now());
    return toAllocation(network, k, r);
  }

  async ownerOf(network: string, ip: Ip): Promise<Allocation | undefined> {
    const k = ipKey(ip);
    this.reads(network);
    const json = await this.get(this.allocKey(network, k));
    return json === undefined ? undefined : toAllocation(network, k, JSON.parse(json) as Record);
  }

  async lastReserved(network: string, rangeSet: number): Promise<Ip | undefined> {
    this.reads(network);
    const k = await this.get(this.lastKey(network, rangeSet));
    return k === undefined ? undefined : ipFromKey(k);
  }

  async takenBetween(network: string, from: Ip, to: Ip, limit: number): Promise<Ip[]> {
    if (from.family !== to.family || from.value > to.value || limit <= 0) return [];
    this.reads(network);
    const rows = await this.scan(this.allocKey(network, ipKey(from)), `${this.allocKey(network, ipKey(to))}\0`, limit);
    return rows.map(([key]) => ipFromKey(key.slice(key.lastIndexOf('/') + 1)));
  }

  async list(filter: AllocationFilter = {}): Promise<Allocation[]> {
    this.reads(filter.network);
    const prefix = `${this.p}alloc/${filter.network === undefined ? '' : `${enc(filter.network)}/`}`;
    const out: Allocation[] = [];
    for (const [key, value] of await this.scan(prefix, prefixEnd(prefix))) {
      const parts = key.slice(this.p.length).split('/'); // alloc, N, v4|v6, K
      const r = JSON.parse(value) as Record;
      if (filter.containerId !== undefined && r.containerId !== filter.containerId) continue;
      if (filter.runtime !== undefined && r.runtime !== filter.runtime) continue;
      out.push(toAllocation(dec(parts[1]), parts[3], r));
    }
    return out;
  }

  async countByNetwork(network: string): Promise<number> {
    this.reads(network);
    return this.count(`${this.p}alloc/${enc(network)}/`);
  }

  async history(network?: string, ip?: Ip, limit = 1000): Promise<HistoryEntry[]> {
    this.reads(network);
    const k = ip === undefined ? undefined : ipKey(ip);
    const prefix = this.histPrefix(network, k);
    const end = prefixEnd(prefix);
    const wanted = (key: string): boolean => k === undefined || key.slice(this.p.length).split('/')[2] === k;
    const entry = (key: string, value: string): HistoryEntry => {
      const parts = key.slice(this.p.length).split('/'); // hist, N, K, id
      const h = JSON.parse(value) as HistoryRecord;
      return { ...toAllocation(dec(parts[1]), parts[2], h), until: h.until, reason: h.reason };
    };
    // This transaction's own releases are the newest; then etcd's, newest created first.
    const own = [...this.writes].filter(([key, v]) => v !== null && key >= prefix && key < end && wanted(key))
      .map(([key, v]) => ({ key, value: v as string, seq: (JSON.parse(v as string) as HistoryRecord).seq }))
      .sort((a, b) => b.seq - a.seq);
    const scanAll = network === undefined && k !== undefined; // no prefix narrows it: filter here
    const req: IRangeRequest = { key: toBuf(prefix), range_end: toBuf(end), sort_target: 'Create', sort_order: 'Descend' };
    if (!scanAll) req.limit = limit;
    const { kvs } = await this.range(req);
    const stored = kvs.map((kv) => ({ key: fromBuf(kv.key), value: kv.value.toString('utf8'), rev: BigInt(kv.create_revision) }))
      .filter((e) => !this.writes.has(e.key) && wanted(e.key))
      .map((e) => ({ ...e, seq: (JSON.parse(e.value) as HistoryRecord).seq }))
      // one commit's entries share a revision: the later release in it first
      .sort((a, b) => (a.rev === b.rev ? b.seq - a.seq : a.rev > b.rev ? -1 : 1));
    return [...own, ...stored].slice(0, limit).map((e) => entry(e.key, e.value));
  }

  async getPool(network: string): Promise<PoolRecord | undefined> {
    this.reads(network);
    const json = await this.get(this.poolKey(network));
    if (json === undefined) return undefined;
    const { definition, updated } = JSON.parse(json) as { definition: string; updated: number };
    return { network, definition, updated };
  }

  async putPool(network: string, definition: string): Promise<void> {
    this.put(network, this.poolKey(network), JSON.stringify({ definition, updated: Date.now() }));
  }

  async listPools(): Promise<PoolRecord[]> {
    this.reads(undefined);
    const prefix = `${this.p}pools/`;
    return (await this.scan(prefix, prefixEnd(prefix))).map(([key, value]) => {
      const { definition, updated } = JSON.parse(value) as { definition: string; updated: number };
      return { network: dec(key.slice(prefix.length)), definition, updated };
    }).sort((a, b) => (a.network < b.network ? -1 : a.network > b.network ? 1 : 0));
  }

  async deletePool(network: string): Promise<void> {
    this.reads(network);
    const last = `${this.p}last/${enc(network)}/`;
    this.put(network, this.poolKey(network), null);
    for (const [key] of await this.scan(last, prefixEnd(last))) this.put(network, key, null);
  }
}

class EtcdStore implements IpamStore {
  readonly description: string;
  readonly client: Etcd3;
  private readonly lib: Client;
  readonly genKey: string;
  /** Callers inside this process; the commit guard serializes processes. */
  private readonly mutex = new Mutex();
  private readonly callTimeoutMs: number;
  private readonly conflictBudgetMs: number;
  private readonly retryBudgetMs: number;
  /** Errors call() made of etcd being unreachable: withLock and view retry those for a while. */
  private readonly transient = new WeakSet<Error>();
  /** The subset where no member answered at all (as opposed to slow or leaderless). */
  private readonly unreachable = new WeakSet<Error>();
  private lastUnreachable: string | undefined;
  private readonly historyKeep: number;
  private closed = false;

  constructor(endpoints: readonly string[], readonly prefix: string, options: EtcdStoreOptions) {
    this.description = `etcd:${endpoints.join(',')}${prefix}`;
    this.genKey = `${prefix}gen`;
    this.callTimeoutMs = options.callTimeoutMs ?? 2000;
    this.conflictBudgetMs = options.conflictBudgetMs ?? 10_000;
    this.retryBudgetMs = options.retryBudgetMs ?? 5000;
    this.historyKeep = options.historyKeep ?? HISTORY_KEEP;
    const hosts = endpoints.map((e) => (/^https?:\/\//.test(e) ? e : `http://${e}`));
    const lib = etcdClient();
    const { ConsecutiveBreaker, ExponentialBackoff, circuitBreaker, handleWhen, isRecoverableError, retry } = lib;
    this.lib = lib;
    this.client = new lib.Etcd3({
      hosts,
      // A member that fails three calls in a row is skipped for a second, then tried again;
      // a failed call is retried once per member on the others. Each call has a deadline, so a
      // cluster without quorum answers TryAgainLater instead of hanging.
      faultHandling: {
        host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(3) }),
        global: retry(handleWhen(isRecoverableError), { maxAttempts: hosts.length, backoff: new ExponentialBackoff({ initialDelay: 20, maxDelay: 200 }) }),
      },
      grpcOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000 },
    });
  }

  netGenKey(network: string): string { return `${this.prefix}gen/${enc(network)}`; }

  /** One etcd call with a deadline; its failure in the error family. */
  async call<T>(fn: (options: { deadline: number }) => Promise<T>): Promise<T> {
    try {
      return await fn({ deadline: Date.now() + this.callTimeoutMs });
    } catch (err) {
      throw this.storeError(err);
    }
  }

  private storeError(err: unknown): VxnetError {
    if (err instanceof VxnetError) return err;
    const { GRPCDeadlineExceededError, GRPCOutOfRangeError, GRPCUnavailableError, isBrokenCircuitError, isRecoverableError } = this.lib;
    const e = err instanceof Error ? err : new Error(String(err));
    if (isBrokenCircuitError(e) || /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|No connection established/.test(e.message)) {
      // gRPC's text is long ("14 UNAVAILABLE: No connection established. Last error: Error:
      // connect ECONNREFUSED ..."); an open circuit says nothing of why: keep the last cause.
      if (!isBrokenCircuitError(e)) this.lastUnreachable = /Last error: (?:Error: )?(.*?)\.?(?: Resolution note.*)?$/.exec(e.message)?.[1] ?? e.message;
      const mapped = new TryAgainLater(`the IPAM store ${this.description} is unavailable: no etcd member answers (${this.lastUnreachable ?? 'connection refused'}); try again`);
      this.transient.add(mapped);
      this.unreachable.add(mapped);
      return mapped;
    }
    if (!(e instanceof GRPCOutOfRangeError) && (e instanceof GRPCUnavailableError || e instanceof GRPCDeadlineExceededError
      || isRecoverableError(e) || /no leader|leader changed|timed out|deadline|unavailable/i.test(e.message))) {
      const mapped = new TryAgainLater(`the IPAM store ${this.description} is unavailable: ${e.message || e.name}; try again`);
      this.transient.add(mapped);
      return mapped;
    }
    const hint = /too many operations/.test(e.message) ? ' (etcd --max-txn-ops bounds the keys one transaction writes)' : '';
    return new IoFailure(`the IPAM store ${this.description} failed: ${e.message || e.name}${hint}`);
  }

  /** How long to keep retrying after err: a member electing a leader gets longer than no member at all. */
  private budgetFor(err: Error): number {
    return this.unreachable.has(err) ? Math.min(this.retryBudgetMs, UNREACHABLE_BUDGET_MS) : this.retryBudgetMs;
  }

  withLock<T>(fn: (tx: IpamTx) => Promise<T>): Promise<T> {
    return this.mutex.run(async () => {
      const start = Date.now();
      for (let attempt = 1; ; attempt++) {
        let why: 'conflict' | Error;
        try {
          const tx = new EtcdTx(this, false);
          const result = await fn(tx);
          const outcome = await tx.commit();
          if (outcome.committed) {
            for (const network of outcome.history) this.maybeTrimHistory(network);
            return result;
          }
          why = 'conflict';
        } catch (err) {
          if (err instanceof SnapshotGone) why = 'conflict';
          else if (err instanceof Error && this.transient.has(err)) why = err;
          else throw err;
        }
        // Nothing was written, or (a commit that timed out) it was and the rerun of fn sees it.
        if (why === 'conflict') {
          if (Date.now() - start >= this.conflictBudgetMs) {
            throw new TryAgainLater(`the IPAM store ${this.description}: ${attempt} attempts in ${this.conflictBudgetMs / 1000} s all conflicted with other hosts' writes; try again`);
          }
          // Others are writing the same network: back off a little, randomly, so one gets through.
          await delay(Math.random() * Math.min(5 * 2 ** attempt, 100));
        } else {
          if (Date.now() - start >= this.budgetFor(why)) throw why;
          await delay(100 + Math.random() * 150); // a leader election, a member restarting
        }
      }
    });
  }

  async view<T>(fn: (tx: IpamTx) => Promise<T>): Promise<T> {
    const start = Date.now();
    for (;;) {
      try {
        return await fn(new EtcdTx(this, true));
      } catch (err) {
        const transient = err instanceof Error && this.transient.has(err);
        if (!(err instanceof SnapshotGone) && !transient) throw err;
        if (transient && Date.now() - start >= this.budgetFor(err)) throw err;
        await delay(100 + Math.random() * 150);
      }
    }
  }

  /** Best effort, after a commit and outside it: deletes the oldest entries beyond historyKeep. */
  private maybeTrimHistory(network: string): void {
    if (Math.random() >= 0.02) return;
    const prefix = `${this.prefix}hist/${enc(network)}/`;
    const range = { key: toBuf(prefix), range_end: toBuf(prefixEnd(prefix)) };
    void (async () => {
      const n = Number((await this.call((o) => this.client.kv.range({ ...range, count_only: true }, o))).count);
      if (n <= this.historyKeep) return;
      const old = await this.call((o) => this.client.kv.range({ ...range, keys_only: true, sort_target: 'Create', sort_order: 'Ascend', limit: n - this.historyKeep }, o));
      for (let i = 0; i < old.kvs.length; i += 100) {
        const success = old.kvs.slice(i, i + 100).map((kv): IRequestOp => ({ request_delete_range: { key: kv.key } }));
        await this.call((o) => this.client.kv.txn({ success }, o));
      }
    })().catch(() => { /* trimming is retried after a later commit */ });
  }

  async check(): Promise<void> {
    try {
      if (this.closed) throw new Error('the store is closed');
      await this.call((o) => this.client.kv.range({ key: toBuf(this.genKey), count_only: true }, o));
    } catch (err) {
      const why = (err as Error).message.replace(`the IPAM store ${this.description} `, '').replace(/^(is unavailable|failed): /, '').replace(/; try again$/, '');
      throw new PluginNotAvailable(`the IPAM store ${this.description} cannot be used: ${why}`);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
  }
}

/**
 * An IpamStore over the etcd cluster at endpoints ("host:port" or "http://host:port"). Connects
 * lazily: opening never fails because etcd is down; check() and the first operation tell.
 */
export function openEtcdStore(endpoints: readonly string[], options: EtcdStoreOptions = {}): IpamStore {
  if (endpoints.length === 0) throw new IoFailure('the etcd store needs at least one endpoint');
  let prefix = options.prefix ?? DEFAULT_ETCD_PREFIX;
  if (!prefix.endsWith('/')) prefix += '/';
  if (!/^[\x21-\x7e]+$/.test(prefix)) throw new IoFailure(`etcd key prefix ${JSON.stringify(prefix)} must be printable ASCII`);
  return new EtcdStore(endpoints, prefix, options);
}
