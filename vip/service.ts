// The VIP service: follows the endpoint catalog, keeps the VIP model and hands the kernel the
// entries that changed (VipTable.apply; a kernel without apply gets the whole table, sync).
//
// The model is incremental (./live-model.ts): each catalog change batch is applied to per-VIP
// backend sets as it arrives, and schedules one recompute on setImmediate, which recomputes
// only the VIPs the batches touched and sends only their entries' changes. A burst of batches
// (a host's endpoints replaced, the cluster's watch catching up) costs one recompute and one
// kernel call, and no timer delays a change. While a kernel call runs, changes wait for the
// pass after it. Start-up builds the model from the whole catalog and syncs the whole table;
// every `verifyMs` the model is compared with a full build (./model.ts), and on a difference
// (a bug) rebuilt and the whole table synced again, logged as an error.
//
// Named VIPs need their addresses claimed (./address.ts) before they reach the kernel: a name
// not placed yet is listed with no address, claimed in the background (32 at a time), and the
// pass after the claim puts it in. start() waits (up to `placeWaitMs`) for the names the catalog
// holds at start, so DNS, which starts after, answers them from its first query.
//
// Listeners (DNS) hear the model after the kernel has it: a name never resolves to a VIP the
// kernel does not balance yet (DC/OS's order: IPVS first, then DNS). A failed kernel call keeps
// its changes and is retried with whatever came after.
import type { EndpointCatalog } from '../catalog/catalog';
import { asVxnetError } from '../lib/errors';
import type { Logger } from '../lib/log';
import type { Service } from '../lib/service';
import type { VipAddresses } from './address';
import type { VipEntry, VipKernel, VipRef } from './kernel';
import { LiveVipModel } from './live-model';
import { type VipProblem, type VipView, textOf } from './model';

export interface VipServiceOptions {
  readonly catalog: EndpointCatalog;
  readonly kernel: VipKernel;
  readonly addresses: VipAddresses;
  readonly log: Logger;
  /** How long start() waits for the names present at start to be placed (default 5000 ms). */
  readonly placeWaitMs?: number;
  /** Retry delay after a failed sync or claim, doubling to 30 s (default 500 ms). */
  readonly retryMs?: number;
  /** How often the incremental model is checked against a full build (default 300,000 ms; 0: never). */
  readonly verifyMs?: number;
}

export type VipListener = (vips: readonly VipView[]) => void;

const CLAIMS_IN_FLIGHT = 32;
const MAX_RETRY_MS = 30_000;

const refKey = (e: VipRef): string => `${e.ip.family}:${e.ip.value}/${e.protocol}/${e.port}`;

export class VipService implements Service {
  readonly name = 'vips';
  private current: readonly VipView[] = [];
  /** The kernel took changes since `current` was made: rebuilt on the next read. */
  private currentStale = false;
  private readonly model: LiveVipModel;
  /** Changes the kernel has not taken yet (a failed call keeps them), by entry key. */
  private readonly pendingPut = new Map<string, VipEntry>();
  private readonly pendingRemove = new Map<string, VipRef>();
  private pendingLines: string[] = [];
  /** All lines held, also those past the first 1,000 kept. */
  private pendingLineCount = 0;
  private pendingViews = false;
  /** Send the whole table next (start, after a rebuild). */
  private fullSync = true;
  private built = false;
  /** start() has run its first pass: passes may run on their own from now on. */
  private started = false;
  private verifyDue = false;
  private verifyTimer: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<VipListener>();
  private unsubscribe: (() => void) | undefined;
  private scheduled = false;
  private running: Promise<void> | undefined;
  private dirty = false;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private syncRetryMs: number;
  private syncFailing = false;
  private readonly claiming = new Set<string>();
  private readonly claimQueue: string[] = [];
  private readonly claimFailed = new Map<string, number>();
  private claimsInFlight = 0;
  private claimWaiters: Array<() => void> = [];

  constructor(private readonly o: VipServiceOptions) {
    this.syncRetryMs = o.retryMs ?? 500;
    this.model = new LiveVipModel((n) => o.addresses.known(n), o.addresses.range6 !== undefined);
  }

  /** The VIPs as last handed to the kernel. */
  vips(): readonly VipView[] {
    if (this.currentStale) {
      this.current = this.model.vips();
      this.currentStale = false;
    }
    return this.current;
  }

  /** Calls listener with the whole model after each change the kernel has taken; returns the unsubscribe function. */
  subscribe(listener: VipListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async start(): Promise<void> {
    try {
      const n = await this.o.addresses.load();
      this.o.log.info('vip address claims read', { claims: n });
    } catch (err) {
      // Names are claimed one by one then (and retried while the store is away).
      this.o.log.warn('cannot read VIP address claims; claiming names one by one', { error: asVxnetError(err).message });
    }
    await this.o.kernel.start();
    // Subscribed before the whole catalog is read: nothing between the two is missed.
    this.unsubscribe = this.o.catalog.subscribe((changes) => {
      if (!this.built) return;
      this.report(this.model.apply(changes).appeared);
      this.schedule();
    });
    this.build();
    // The names are claimed before the first recompute: each VIP is then worked out once, with
    // its addresses (recomputing 10,000 VIPs without, then again with, cost ~40% of a start).
    const names = this.model.namesToPlace();
    if (names.length) {
      for (const name of names) this.claim(name);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.whenClaimsSettle(resolve)),
        new Promise<void>((resolve) => { timer = setTimeout(resolve, this.o.placeWaitMs ?? 5000); }),
      ]);
      clearTimeout(timer);
    }
    const first = this.model.flush();
    this.hold(first);
    // Still pending (the store away): claimed in the background, as later names are.
    for (const name of first.unplaced) this.claim(name);
    this.started = true;
    this.dirty = true;
    await this.pass();
    const verifyMs = this.o.verifyMs ?? 300_000;
    if (verifyMs > 0 && !this.stopped) {
      this.verifyTimer = setInterval(() => { this.verifyDue = true; this.schedule(); }, verifyMs);
      this.verifyTimer.unref();
    }
    const v = this.vips();
    this.o.log.info('vips serving', { vips: v.length, backends: v.reduce((n, x) => n + x.backends.length, 0) });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    clearTimeout(this.retryTimer);
    clearInterval(this.verifyTimer);
    await this.running?.catch(() => undefined);
    // The table stays in the kernel: connections keep being balanced while vxnetd is away.
    await this.o.kernel.stop();
  }

  /** Recomputes on the next turn of the event loop (many batches, one pass). */
  schedule(): void {
    this.dirty = true;
    // Until start() runs its first pass (it waits for claims first), changes only mark the model dirty.
    if (this.scheduled || this.stopped || !this.started) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.pass();
    });
  }

  /** Runs passes until the model is clean; one at a time. Resolves when this call's pass is done. */
  private pass(): Promise<void> {
    if (this.running) return this.running;
    const run = (async () => {
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        await this.once();
      }
    })().finally(() => { this.running = undefined; });
    this.running = run;
    return run;
  }

  private async once(): Promise<void> {
    const { log } = this.o;
    const out = this.model.flush();
    this.hold(out);
    for (const name of out.unplaced) this.claim(name);
    if (this.verifyDue) {
      this.verifyDue = false;
      const problem = this.model.verify(this.o.catalog.list());
      if (problem) {
        log.error('vip model differs from a full build; rebuilt, whole table synced', { problem });
        this.build(false);
        this.hold(this.model.flush());
        this.fullSync = true;
      }
    }
    if (this.fullSync || this.pendingPut.size || this.pendingRemove.size) {
      const full = this.fullSync || this.o.kernel.apply === undefined;
      try {
        const stats = full
          ? await this.o.kernel.sync(this.model.allEntries())
          : await (this.o.kernel.apply as NonNullable<VipKernel['apply']>)({ put: [...this.pendingPut.values()], remove: [...this.pendingRemove.values()] });
        log.debug('vip table synced', { put: this.pendingPut.size, removed: this.pendingRemove.size, whole: full, ...stats });
        this.pendingPut.clear();
        this.pendingRemove.clear();
        this.fullSync = false;
        if (this.syncFailing) log.info('vip table synced again');
        this.syncFailing = false;
        this.syncRetryMs = this.o.retryMs ?? 500;
      } catch (err) {
        if (!this.syncFailing) log.error('vip table sync failed; retrying', { error: asVxnetError(err).message, retryInMs: this.syncRetryMs });
        this.syncFailing = true;
        this.retryLater();
        return; // the listeners keep the model the kernel has
      }
    }
    const lines = this.pendingLines;
    const count = this.pendingLineCount;
    const changed = this.pendingViews;
    this.pendingLines = [];
    this.pendingLineCount = 0;
    this.pendingViews = false;
    for (const line of lines.slice(0, 50)) log.info(line);
    if (count > 50) log.info(`... and ${count - 50} more VIP changes`);
    if (changed) {
      this.currentStale = true;
      if (this.listeners.size) {
        const vips = this.vips();
        for (const l of this.listeners) l(vips);
      }
    }
  }

  /** The whole catalog into the model (start, and a rebuild after a failed check). */
  private build(report = true): void {
    const { appeared } = this.model.rebuild(this.o.catalog.list());
    this.built = true;
    if (report) this.report(appeared);
  }

  /** Keeps a flush's kernel changes, lines and news until the kernel has taken them. */
  private hold(out: ReturnType<LiveVipModel['flush']>): void {
    for (const r of out.remove) { const k = refKey(r); this.pendingPut.delete(k); this.pendingRemove.set(k, r); }
    for (const e of out.put) { const k = refKey(e); this.pendingRemove.delete(k); this.pendingPut.set(k, e); }
    if (this.pendingLines.length < 1000) this.pendingLines.push(...out.lines.slice(0, 1000));
    this.pendingLineCount += out.lines.length;
    if (out.viewsChanged) this.pendingViews = true;
  }

  private retryLater(): void {
    if (this.stopped || this.retryTimer) return;
    this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.schedule(); }, this.syncRetryMs);
    this.syncRetryMs = Math.min(this.syncRetryMs * 2, MAX_RETRY_MS);
  }

  /** Logs each problem that appeared (once while it lasts: the model reports a problem again only after it was fixed). */
  private report(problems: readonly VipProblem[]): void {
    for (const p of problems) this.o.log.warn('VIP label ignored', { endpoint: p.endpoint, label: p.label, problem: p.problem });
  }

  /** Claims a name's addresses in the background (bounded), then recomputes. */
  private claim(name: string): void {
    if (this.claiming.has(name) || this.stopped) return;
    this.claiming.add(name);
    this.claimQueue.push(name);
    this.pump();
  }

  private pump(): void {
    while (this.claimsInFlight < CLAIMS_IN_FLIGHT && this.claimQueue.length) {
      const name = this.claimQueue.shift() as string;
      this.claimsInFlight++;
      this.o.addresses.assign(name).then((a) => {
        this.claimFailed.delete(name);
        this.o.log.debug('vip address claimed', { name, v4: textOf(a.v4), v6: a.v6 ? textOf(a.v6) : null });
        this.claiming.delete(name);
        this.model.touchName(name);
        this.schedule();
      }, (err: unknown) => {
        const delay = Math.min((this.claimFailed.get(name) ?? (this.o.retryMs ?? 500) / 2) * 2, MAX_RETRY_MS);
        if (!this.claimFailed.has(name)) this.o.log.warn('cannot claim an address for a named VIP; retrying', { name, error: asVxnetError(err).message });
        this.claimFailed.set(name, delay);
        setTimeout(() => { this.claiming.delete(name); this.model.touchName(name); if (!this.stopped) this.schedule(); }, delay).unref();
      }).finally(() => {
        this.claimsInFlight--;
        this.pump();
        if (this.claimsInFlight === 0 && this.claimQueue.length === 0) {
          const waiters = this.claimWaiters;
          this.claimWaiters = [];
          for (const w of waiters) w();
        }
      });
    }
  }

  private whenClaimsSettle(resolve: () => void): void {
    if (this.claimsInFlight === 0 && this.claimQueue.length === 0) resolve();
    else this.claimWaiters.push(resolve);
  }
}
