// The VIP service: follows the endpoint catalog, keeps the VIP model (./model.ts) and hands the
// kernel the whole desired table (VipTable.sync diffs it and sends element changes).
//
// Each catalog change batch schedules one recompute on setImmediate: a burst of batches (a
// host's endpoints replaced, the cluster's watch catching up) costs one rebuild and one sync,
// and no timer delays a change. While a sync runs, changes mark the model dirty and one more
// pass follows it. The model is rebuilt from the whole catalog each pass (a few ms for 10,000
// endpoints); the kernel is only called when its entries differ from the last ones sent.
//
// Named VIPs need their addresses claimed (./address.ts) before they reach the kernel: a name
// not placed yet is listed with no address, claimed in the background (32 at a time), and the
// pass after the claim puts it in. start() waits (up to `placeWaitMs`) for the names the catalog
// holds at start, so DNS, which starts after, answers them from its first query.
//
// Listeners (DNS) hear the model after the kernel has it: a name never resolves to a VIP the
// kernel does not balance yet (DC/OS's order: IPVS first, then DNS).
import type { EndpointCatalog } from '../catalog/catalog';
import { formatIp } from '../ipam/addr';
import { asVxnetError } from '../lib/errors';
import type { Logger } from '../lib/log';
import type { Service } from '../lib/service';
import type { VipAddresses } from './address';
import type { VipEntry, VipKernel } from './kernel';
import { type VipView, buildVips, describeChanges, entriesOf } from './model';

export interface VipServiceOptions {
  readonly catalog: EndpointCatalog;
  readonly kernel: VipKernel;
  readonly addresses: VipAddresses;
  readonly log: Logger;
  /** How long start() waits for the names present at start to be placed (default 5000 ms). */
  readonly placeWaitMs?: number;
  /** Retry delay after a failed sync or claim, doubling to 30 s (default 500 ms). */
  readonly retryMs?: number;
}

export type VipListener = (vips: readonly VipView[]) => void;

const CLAIMS_IN_FLIGHT = 32;
const MAX_RETRY_MS = 30_000;

const entryText = (e: VipEntry): string =>
  `${e.ip.family}:${e.ip.value}/${e.protocol}/${e.port}=${e.backends.map((b) => `${b.ip.value}:${b.port}*${b.weight}`).join(',')}`;

export class VipService implements Service {
  readonly name = 'vips';
  private current: readonly VipView[] = [];
  private readonly listeners = new Set<VipListener>();
  private unsubscribe: (() => void) | undefined;
  private scheduled = false;
  private running: Promise<void> | undefined;
  private dirty = false;
  private stopped = false;
  private lastSent: string | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private syncRetryMs: number;
  private syncFailing = false;
  /** endpoint id + label + problem, logged once while it lasts. */
  private reported = new Set<string>();
  private readonly claiming = new Set<string>();
  private readonly claimQueue: string[] = [];
  private readonly claimFailed = new Map<string, number>();
  private claimsInFlight = 0;
  private claimWaiters: Array<() => void> = [];

  constructor(private readonly o: VipServiceOptions) {
    this.syncRetryMs = o.retryMs ?? 500;
  }

  /** The VIPs as last handed to the kernel. */
  vips(): readonly VipView[] {
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
    const first = buildVips(this.o.catalog.list(), (n) => this.o.addresses.known(n), this.o.addresses.range6 !== undefined);
    if (first.unplaced.length) {
      for (const name of first.unplaced) this.claim(name);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.whenClaimsSettle(resolve)),
        new Promise<void>((resolve) => { timer = setTimeout(resolve, this.o.placeWaitMs ?? 5000); }),
      ]);
      clearTimeout(timer);
    }
    this.unsubscribe = this.o.catalog.subscribe(() => this.schedule());
    this.dirty = true;
    await this.pass();
    const v = this.current;
    this.o.log.info('vips serving', { vips: v.length, backends: v.reduce((n, x) => n + x.backends.length, 0) });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    clearTimeout(this.retryTimer);
    await this.running?.catch(() => undefined);
    // The table stays in the kernel: connections keep being balanced while vxnetd is away.
    await this.o.kernel.stop();
  }

  /** Recomputes on the next turn of the event loop (many batches, one pass). */
  schedule(): void {
    this.dirty = true;
    if (this.scheduled || this.stopped) return;
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
    const model = buildVips(this.o.catalog.list(), (n) => this.o.addresses.known(n), this.o.addresses.range6 !== undefined);
    this.report(model.problems);
    for (const name of model.unplaced) this.claim(name);
    const entries = entriesOf(model.vips);
    const text = entries.map(entryText).sort().join('\n');
    if (text !== this.lastSent) {
      try {
        const stats = await this.o.kernel.sync(entries);
        this.lastSent = text;
        if (this.syncFailing) log.info('vip table synced again');
        this.syncFailing = false;
        this.syncRetryMs = this.o.retryMs ?? 500;
        log.debug('vip table synced', { entries: entries.length, ...stats });
      } catch (err) {
        if (!this.syncFailing) log.error('vip table sync failed; retrying', { error: asVxnetError(err).message, retryInMs: this.syncRetryMs });
        this.syncFailing = true;
        this.retryLater();
        return; // the listeners keep the model the kernel has
      }
    }
    const before = this.current;
    this.current = model.vips;
    const lines = describeChanges(before, model.vips);
    for (const line of lines.slice(0, 50)) log.info(line);
    if (lines.length > 50) log.info(`... and ${lines.length - 50} more VIP changes`);
    if (lines.length) for (const l of this.listeners) l(this.current);
  }

  private retryLater(): void {
    if (this.stopped || this.retryTimer) return;
    this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.schedule(); }, this.syncRetryMs);
    this.syncRetryMs = Math.min(this.syncRetryMs * 2, MAX_RETRY_MS);
  }

  private report(problems: ReturnType<typeof buildVips>['problems']): void {
    const now = new Set<string>();
    for (const p of problems) {
      const key = `${p.endpoint}\0${p.label}\0${p.problem}`;
      now.add(key);
      if (!this.reported.has(key)) this.o.log.warn('VIP label ignored', { endpoint: p.endpoint, label: p.label, problem: p.problem });
    }
    // Forgotten when fixed or gone, so the same mistake made again is logged again.
    this.reported = now;
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
        this.o.log.debug('vip address claimed', { name, v4: formatIp(a.v4), v6: a.v6 ? formatIp(a.v6) : null });
        this.claiming.delete(name);
        this.schedule();
      }, (err: unknown) => {
        const delay = Math.min((this.claimFailed.get(name) ?? (this.o.retryMs ?? 500) / 2) * 2, MAX_RETRY_MS);
        if (!this.claimFailed.has(name)) this.o.log.warn('cannot claim an address for a named VIP; retrying', { name, error: asVxnetError(err).message });
        this.claimFailed.set(name, delay);
        setTimeout(() => { this.claiming.delete(name); if (!this.stopped) this.schedule(); }, delay).unref();
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
