// The cluster's endpoints through etcd: this host publishes its own (the local source's, in
// the catalog under its host name) under its own lease, and every other host's come back from
// a watch of the whole prefix into the catalog. Keys and values: ./records.ts.
//
// Publishing is a reconciliation, not a replay: whenever this host's endpoints change (or etcd
// comes back, or the lease is new), one loop writes the difference between the catalog's
// current local set and what it knows etcd holds. Changes made while a write is in flight or
// etcd is down only mark the set dirty, so after an outage the latest set is written once,
// not every step that led to it. After a failure, a new lease or a start, the loop first reads
// what etcd holds under this host (a previous run's keys, a half-applied write) and fixes it.
//
// Other hosts: the watch's reset replaces every host's set (replaceHost), its changes put and
// remove single endpoints; a host whose lease expires loses its keys in etcd, and the watch
// delivers their deletion. Keys under this host's name are skipped (the local source is the
// truth for it). A broken watch leaves the catalog as it is: DNS keeps answering with what was
// known while etcd is away, and PrefixWatch resumes without losing or repeating a change.
import { callOptions, type EtcdClient } from '../etcd/client';
import { LeaseKeeper } from '../etcd/lease';
import type { TxnOp } from '../etcd/txn';
import { PrefixWatch } from '../etcd/watch';
import { asVxnetError } from '../lib/errors';
import type { Logger } from '../lib/log';
import type { Service } from '../lib/service';
import type { EndpointCatalog } from './catalog';
import type { Endpoint } from './endpoint';
import { DEFAULT_PREFIX, decodeEndpoint, encodeEndpoint, endpointKey, hostPrefix, parseEndpointKey } from './records';

export interface ClusterEndpointsOptions {
  client: EtcdClient;
  catalog: EndpointCatalog;
  host: string;
  /** Default 10. */
  ttlSeconds?: number;
  /** Default '/vxnet/endpoints/'. */
  prefix?: string;
  log: Logger;
  /**
   * Only follow the cluster's endpoints, publish nothing (no lease): vxnet-lb --store. Every
   * host's keys then come into the catalog, `host`'s too (`host` only names the reader).
   */
  readOnly?: boolean;
}

/** Operations per transaction: below etcd's default --max-txn-ops (128). */
const TXN_OPS = 100;
/** Pause after a failed publish or watch start: doubling from the first to the last. */
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5000;
/** A lease grant etcd3 has not answered by then is given up (it has no deadline of its own). */
const GRANT_TIMEOUT_MS = 5000;

export class ClusterEndpoints implements Service {
  readonly name = 'cluster endpoints';
  private readonly prefix: string;
  private readonly ttl: number;
  private keeper: LeaseKeeper | undefined;
  private leaseId: string | undefined;
  /** key -> value this host's endpoints have in etcd under leaseId, as far as known. */
  private readonly published = new Map<string, string>();
  /** What etcd holds under this host is not known (start, new lease, a failed write): read it first. */
  private unsure = true;
  private dirty = true;
  private publishing: Promise<void> | undefined;
  private watch: PrefixWatch | undefined;
  private watching: Promise<void> | undefined;
  /** Other hosts whose endpoints this source put into the catalog. */
  private readonly remoteHosts = new Set<string>();
  private unsubscribe: (() => void) | undefined;
  private stopped = false;
  private readonly wakers = new Set<() => void>();
  /** Logged "etcd unreachable" for publishing / watching, until it works again. */
  private publishTrouble = false;
  private watchTrouble = false;
  /** Watches interrupted or failed to start (metrics). */
  interruptions = 0;
  private firstReset: (() => void) | undefined;
  private readonly reset: Promise<void>;

  constructor(private readonly o: ClusterEndpointsOptions) {
    this.prefix = o.prefix ?? DEFAULT_PREFIX;
    this.ttl = o.ttlSeconds ?? 10;
    this.reset = new Promise((r) => { this.firstReset = r; });
  }

  /** Resolves at the watch's first reset (the whole prefix in the catalog), or after `ms`; true if it came. */
  synced(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      this.reset.then(() => true),
      new Promise<boolean>((r) => { timer = setTimeout(() => r(false), ms); }),
    ]).finally(() => clearTimeout(timer));
  }

  /** Resolves at once; publishing and watching start in the background and retry while etcd cannot answer. */
  async start(): Promise<void> {
    if (!this.o.readOnly) {
      this.unsubscribe = this.o.catalog.subscribe((changes) => {
        if (changes.some((c) => (c.after ?? c.before)?.host === this.o.host)) this.kick();
      });
      this.kick();
    }
    this.watching = this.startWatch();
  }

  /**
   * Stops publishing and watching. revoke (default): this host's keys go at once, so the other
   * hosts drop its endpoints now (a clean shutdown); revoke false: renewals just stop and etcd
   * expires them after the TTL (what a crash looks like; tests).
   */
  async stop(options: { revoke?: boolean } = {}): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    for (const wake of this.wakers) wake();
    await this.publishing?.catch(() => undefined);
    await this.watching?.catch(() => undefined);
    await this.watch?.close().catch(() => undefined);
    const keeper = this.keeper;
    this.keeper = undefined;
    if (!keeper) return;
    if (options.revoke ?? true) {
      await keeper.revoke(callOptions()).catch((err: unknown) => {
        keeper.release();
        this.o.log.warn('cluster endpoints: revoking the lease failed; the keys expire with it', { error: asVxnetError(err).message });
      });
    } else {
      keeper.release();
    }
  }

  /** The lease this host's keys are under, once granted (tests, logs). */
  get lease(): string | undefined {
    return this.leaseId;
  }

  /** Resolves when nothing is left to publish (tests; a publish in progress is waited for). */
  async settled(): Promise<void> {
    while (this.publishing) await this.publishing;
  }

  private kick(): void {
    this.dirty = true;
    if (this.stopped || this.publishing || this.o.readOnly) return;
    this.publishing = this.publishLoop().finally(() => { this.publishing = undefined; });
  }

  private async publishLoop(): Promise<void> {
    for (let attempt = 0; this.dirty && !this.stopped;) {
      try {
        if (!this.keeper) await this.grant();
        this.dirty = false;
        await this.publish();
        if (this.publishTrouble) this.o.log.info('cluster endpoints: published again', { endpoints: this.published.size });
        this.publishTrouble = false;
        attempt = 0;
      } catch (err) {
        if (this.stopped) return;
        this.dirty = true;
        this.unsure = true;
        if (!this.publishTrouble) {
          this.o.log.warn('cluster endpoints: cannot publish to etcd; retrying', { error: asVxnetError(err).message });
          this.publishTrouble = true;
        }
        await this.pause(Math.min(RETRY_MIN_MS * 2 ** attempt++, RETRY_MAX_MS));
      }
    }
  }

  private async grant(): Promise<void> {
    const keeper = new LeaseKeeper(this.o.client.raw, { ttlSeconds: this.ttl });
    let timer: NodeJS.Timeout | undefined;
    try {
      const id = await Promise.race([
        keeper.grant(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`etcd did not grant a lease within ${GRANT_TIMEOUT_MS} ms`)), GRANT_TIMEOUT_MS);
        }),
      ]);
      if (this.stopped) {
        await keeper.revoke(callOptions()).catch(() => keeper.release());
        return;
      }
      keeper.on('lost', (err: Error) => {
        if (this.keeper !== keeper || this.stopped) return;
        this.o.log.warn('cluster endpoints: lease lost; publishing again under a new one', { error: err?.message });
        this.keeper = undefined;
        this.leaseId = undefined;
        this.unsure = true;
        this.kick();
      });
      this.keeper = keeper;
      this.leaseId = id;
      this.unsure = true;
    } catch (err) {
      keeper.release();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Makes etcd hold exactly this host's current endpoints, under the current lease. */
  private async publish(): Promise<void> {
    const lease = this.leaseId;
    if (lease === undefined) throw new Error('no lease');
    const wanted = new Map<string, string>();
    for (const e of this.o.catalog.list(this.o.host)) wanted.set(endpointKey(this.prefix, e), encodeEndpoint(e));
    if (this.unsure) {
      // Whatever etcd holds under this host: a previous run's keys (under its lease, until the
      // TTL), or what a failed write left. Keys on another lease are written again onto this one.
      const held = await this.o.client.range('read this host\'s endpoints', hostPrefix(this.prefix, this.o.host));
      this.published.clear();
      for (const kv of held.kvs) if (kv.lease === lease) this.published.set(kv.key.toString(), kv.value.toString());
      for (const kv of held.kvs) if (kv.lease !== lease) this.published.set(kv.key.toString(), '\0stale');
      this.unsure = false;
    }
    // Puts first, then deletes: a watcher never sees this host's set shrink on the way.
    const ops: Array<{ key: string; op: TxnOp; value?: string }> = [];
    for (const [key, value] of wanted) if (this.published.get(key) !== value) ops.push({ key, value, op: { put: key, value, lease } });
    for (const key of this.published.keys()) if (!wanted.has(key)) ops.push({ key, op: { delete: key } });
    for (let i = 0; i < ops.length; i += TXN_OPS) {
      const chunk = ops.slice(i, i + TXN_OPS);
      await this.o.client.txn('publish this host\'s endpoints', { if: [], then: chunk.map((c) => c.op) });
      for (const c of chunk) if (c.value !== undefined) this.published.set(c.key, c.value); else this.published.delete(c.key);
    }
  }

  private async startWatch(): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const w = await PrefixWatch.start(this.o.client, this.prefix, {
          reset: (kvs) => this.onReset(kvs),
          change: (type, kv) => this.onChange(type, kv.key.toString(), kv.value.toString()),
          trouble: (err) => {
            if (!this.stopped) this.interruptions++;
            if (this.watchTrouble || this.stopped) return;
            this.watchTrouble = true;
            this.o.log.warn('cluster endpoints: watch interrupted; the catalog keeps the other hosts\' endpoints until it resumes', { error: err.message });
          },
        });
        if (this.stopped) { await w.close(); return; }
        this.watch = w;
        return;
      } catch (err) {
        if (this.stopped) return;
        this.interruptions++;
        if (!this.watchTrouble) {
          this.watchTrouble = true;
          this.o.log.warn('cluster endpoints: cannot read the endpoints from etcd; retrying', { error: asVxnetError(err).message });
        }
        await this.pause(Math.min(RETRY_MIN_MS * 2 ** attempt, RETRY_MAX_MS));
      }
    }
  }

  private decode(key: string, value: string): Endpoint | undefined {
    const r = decodeEndpoint(this.prefix, key, value);
    if ('error' in r) {
      this.o.log.warn('cluster endpoints: skipping a malformed entry', { key, error: r.error });
      return undefined;
    }
    return r.endpoint;
  }

  private onReset(kvs: ReadonlyArray<{ key: Buffer; value: Buffer }>): void {
    if (this.watchTrouble) this.o.log.info('cluster endpoints: watching etcd again');
    this.watchTrouble = false;
    const byHost = new Map<string, Endpoint[]>();
    for (const kv of kvs) {
      const key = kv.key.toString();
      const k = parseEndpointKey(this.prefix, key);
      if (k?.host === this.o.host && !this.o.readOnly) continue;
      const e = this.decode(key, kv.value.toString());
      if (!e) continue;
      let list = byHost.get(e.host);
      if (!list) byHost.set(e.host, (list = []));
      list.push(e);
    }
    for (const host of this.remoteHosts) if (!byHost.has(host)) this.o.catalog.replaceHost(host, []);
    this.remoteHosts.clear();
    for (const [host, list] of byHost) {
      this.o.catalog.replaceHost(host, list);
      this.remoteHosts.add(host);
    }
    this.firstReset?.();
  }

  private onChange(type: 'put' | 'delete', key: string, value: string): void {
    if (this.watchTrouble) this.o.log.info('cluster endpoints: watching etcd again');
    this.watchTrouble = false;
    const k = parseEndpointKey(this.prefix, key);
    if (!k) {
      if (type === 'put') this.o.log.warn('cluster endpoints: skipping a malformed entry', { key, error: 'not an endpoint key (PREFIX HOST/ID)' });
      return;
    }
    if (k.host === this.o.host && !this.o.readOnly) return;
    const current = this.o.catalog.get(k.id);
    if (type === 'delete') {
      if (current && current.host === k.host) this.o.catalog.remove(k.id);
      return;
    }
    const e = this.decode(key, value);
    if (!e) {
      // A malformed value replaces whatever the key held: that endpoint is no longer known.
      if (current && current.host === k.host) this.o.catalog.remove(k.id);
      return;
    }
    this.o.catalog.put(e);
    this.remoteHosts.add(e.host);
  }

  /** Waits ms, or less when stop() is called. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => { clearTimeout(timer); this.wakers.delete(done); resolve(); };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }
}
