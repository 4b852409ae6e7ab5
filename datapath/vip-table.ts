// The VIP table in the kernel: one nftables table (family inet) that vxnet owns, kept equal to
// the last desired state handed to `sync`. The shape and its rendering are in vip-plan.ts
// (pure); this file is the I/O shell: the transactions it sends, and the guard.
//
// - sync: diffs the desired state against what this process last applied (in memory) and
//   sends the element deletes and adds as one `nft -f` transaction. The table is never listed.
//   Calls are serialised. A transaction that fails (someone removed an element we meant to
//   delete) is followed by a full replace.
// - full replace: `delete table` and rebuild, with every element, in one transaction. Used for
//   the first sync after start (what an earlier vxnetd left is unknown), after a failure and
//   when the guard fires. Established connections keep their NAT binding: conntrack holds it.
// - start: adds the skeleton (maps, sets, chains; chains flushed and refilled) in one
//   transaction, keeping whatever elements an earlier run left: the kernel keeps balancing
//   between a restart and the first sync.
// - guard: a long-running `nft monitor`. After each transaction it prints `# new generation N
//   by process PID`; a transaction that mentioned this table and was not made by one of our own
//   nft processes makes the table be replaced in full. Our own large batches pause the monitor
//   (it would print every element: 70,000 lines for 10,000 VIPs, a second of its CPU).
import { DatapathFailure, VxnetError } from '../lib/errors';
import { ConntrackRunner, type ConntrackFilter } from '../net/conntrack';
import { NftRunner, type NftMonitor } from '../net/nft';
import { desiredState, diffStates, renderDiff, renderFull, renderSkeleton, stateSize, type VipState } from './vip-plan';

export type { VipProtocol, VipBackend, VipEntry } from './vip-plan';
export { MAX_SLOTS } from './vip-plan';
export type { ConntrackFilter } from '../net/conntrack';
import type { VipEntry } from './vip-plan';

export interface VipTableOptions {
  /** nft table name (family inet); default 'vxnet-vip'. */
  readonly table?: string;
  /** One line per notable event (restore, failure). */
  readonly log?: (msg: string) => void;
  /** Default true: watch for hand edits and restore. */
  readonly guard?: boolean;
  /** Program the table in this network namespace (path or name under /run/netns) instead of the process's own (tests, benchmarks). */
  readonly netns?: string;
}

export interface VipSyncStats { readonly elementsAdded: number; readonly elementsRemoved: number; readonly ms: number; readonly full: boolean }

/** Batches with more element changes than this run with the guard's monitor paused. */
const PAUSE_ABOVE = 2000;
/** How long start() waits for the monitor to see its probe transaction. */
const MONITOR_READY_MS = 3000;

export class VipTable {
  private readonly table: string;
  private readonly log: (msg: string) => void;
  private readonly guardOn: boolean;
  private readonly nft: NftRunner;
  private readonly conntrack: ConntrackRunner;
  /** What the kernel holds as far as this process knows; undefined: unknown (replace in full). */
  private applied: VipState | undefined;
  /** The last state asked for; undefined before the first sync. */
  private desired: VipState | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private monitor: NftMonitor | undefined;
  private guarding = false;
  private touched = false;
  private restorePending = false;
  private readyWaiter: ((pid: number) => void) | undefined;
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(options: VipTableOptions = {}) {
    this.table = options.table ?? 'vxnet-vip';
    if (!/^[A-Za-z][A-Za-z0-9_-]{0,63}$/.test(this.table)) throw new DatapathFailure(`"${this.table}" is not a usable nft table name`);
    this.log = options.log ?? (() => undefined);
    this.guardOn = options.guard ?? true;
    this.nft = new NftRunner(options.netns === undefined ? {} : { netns: options.netns });
    this.conntrack = new ConntrackRunner(options.netns === undefined ? {} : { netns: options.netns });
  }

  /** Creates or adopts the table (idempotent, never resets conntrack/established flows), starts the guard. */
  start(): Promise<void> {
    return this.enqueue(async () => {
      try {
        await this.nft.run(renderSkeleton(this.table), `cannot set up VIP table ${this.table}`);
      } catch (err) {
        // A table of an older shape (a map of another type): rebuild it empty.
        this.log(`VIP table ${this.table}: existing table not adoptable (${(err as Error).message}); replacing it`);
        await this.nft.run(renderFull(this.table, new Map()), `cannot create VIP table ${this.table}`);
      }
      this.applied = undefined;
      if (this.guardOn) {
        this.guarding = true;
        await this.startMonitor();
      }
    });
  }

  /** The whole desired state; diffs against what it last applied and sends one batch. Serialised: concurrent calls queue. */
  sync(entries: readonly VipEntry[]): Promise<VipSyncStats> {
    let next: VipState;
    try { next = desiredState(entries); } catch (err) { return Promise.reject(err); }
    return this.enqueue(async () => {
      this.desired = next;
      const t0 = performance.now();
      if (this.applied === undefined) return this.replace(next, t0);
      const diff = diffStates(this.applied, next);
      if (diff.added + diff.removed === 0) return { elementsAdded: 0, elementsRemoved: 0, ms: performance.now() - t0, full: false };
      try {
        await this.paused(diff.added + diff.removed, () => this.nft.run(renderDiff(this.table, diff), `cannot update VIP table ${this.table}`));
      } catch (err) {
        this.log(`VIP table ${this.table}: update failed (${(err as Error).message}); replacing the table`);
        return this.replace(next, t0);
      }
      this.applied = next;
      return { elementsAdded: diff.added, elementsRemoved: diff.removed, ms: performance.now() - t0, full: false };
    });
  }

  /** Stops the guard; the table stays in the kernel (the kernel keeps balancing while vxnetd is down). */
  stop(): Promise<void> {
    this.guarding = false;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    return this.enqueue(() => this.stopMonitor());
  }

  /** Deletes the table (operator's uninstall, tests). */
  async remove(): Promise<void> {
    await this.stop();
    await this.enqueue(() => this.nft.run(`add table inet ${this.table}\ndelete table inet ${this.table}\n`, `cannot delete VIP table ${this.table}`));
    this.applied = undefined;
  }

  /**
   * Deletes the conntrack entries of these flows (a VIP's address, protocol and port, answered
   * by one backend address): for backends whose address is gone, so a UDP "connection" (which
   * conntrack keeps as long as datagrams flow) is balanced again on its next datagram instead
   * of being sent to a dead address, and a TCP client gets a reset instead of retransmitting
   * into nothing. Never for a backend merely taken out of its VIPs (draining: conntrack keeps
   * its connections). Call it after the sync that removed the backend, or a new datagram could
   * be sent to it again. Resolves to the number of entries deleted.
   */
  async forget(flows: readonly ConntrackFilter[]): Promise<number> {
    let n = 0;
    for (const f of flows) n += await this.conntrack.delete(f);
    return n;
  }

  private async replace(state: VipState, t0: number): Promise<VipSyncStats> {
    const n = stateSize(state);
    await this.paused(n, () => this.nft.run(renderFull(this.table, state), `cannot replace VIP table ${this.table}`));
    this.applied = state;
    return { elementsAdded: n, elementsRemoved: 0, ms: performance.now() - t0, full: true };
  }

  private enqueue<T>(job: () => Promise<T>): Promise<T> {
    const run = this.queue.then(job, job);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Runs a batch with the monitor stopped when the batch is large, then restarts it. */
  private async paused<T>(changes: number, job: () => Promise<T>): Promise<T> {
    if (!this.monitor || changes <= PAUSE_ABOVE) return job();
    await this.stopMonitor();
    try { return await job(); } finally { if (this.guarding) await this.startMonitor(); }
  }

  private async startMonitor(): Promise<void> {
    let mon: NftMonitor | undefined;
    const ready = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => { this.readyWaiter = undefined; resolve(false); }, MONITOR_READY_MS);
      this.readyWaiter = (pid) => { if (this.nft.isOwn(pid)) { clearTimeout(timer); this.readyWaiter = undefined; resolve(true); } };
    });
    mon = this.nft.monitor((line) => this.onMonitorLine(line), (code) => this.onMonitorExit(mon, code));
    this.monitor = mon;
    // The monitor subscribes some time after it starts; a probe transaction of our own tells
    // when it sees changes (hand edits before that would be missed). Repeated until seen.
    const probe = `add chain inet ${this.table} guard-probe\ndelete chain inet ${this.table} guard-probe\n`;
    for (let i = 0; i < 30; i++) {
      await this.nft.run(probe, `cannot probe VIP table ${this.table}`);
      const seen = await Promise.race([ready, new Promise<undefined>((r) => setTimeout(r, 100, undefined))]);
      if (seen !== undefined) {
        if (!seen) this.log(`VIP table ${this.table}: the guard's nft monitor does not report changes; hand edits go unnoticed`);
        return;
      }
    }
  }

  private async stopMonitor(): Promise<void> {
    const mon = this.monitor;
    this.monitor = undefined;
    if (mon) await mon.stop();
  }

  private onMonitorLine(line: string): void {
    const gen = /^# new generation \d+ by process (\d+)/.exec(line);
    if (gen) {
      const pid = Number(gen[1]);
      this.readyWaiter?.(pid);
      if (this.touched && !this.nft.isOwn(pid)) this.scheduleRestore(`a change by process ${pid}`);
      this.touched = false;
      return;
    }
    // A flushed map shows as a warning about an unknown set: it may have been ours.
    if (line.includes(` inet ${this.table} `) || line.endsWith(` inet ${this.table}`) || line.startsWith('W:')) this.touched = true;
  }

  private onMonitorExit(mon: NftMonitor | undefined, code: number | null): void {
    if (mon === undefined || this.monitor !== mon || !this.guarding) return;
    this.monitor = undefined;
    this.log(`VIP table ${this.table}: nft monitor exited (${code}); restarting it and restoring the table`);
    this.restartTimer = setTimeout(() => {
      if (!this.guarding) return;
      void this.enqueue(() => this.startMonitor()).catch((err: unknown) => this.log(`VIP table ${this.table}: ${(err as Error).message}`));
      this.scheduleRestore('the monitor restarted');
    }, 500);
  }

  private scheduleRestore(why: string): void {
    if (this.restorePending || !this.guarding) return;
    this.restorePending = true;
    void this.enqueue(async () => {
      this.restorePending = false;
      if (!this.guarding) return;
      const t0 = performance.now();
      if (this.desired === undefined) {
        await this.nft.run(renderSkeleton(this.table), `cannot restore VIP table ${this.table}`);
      } else {
        await this.replace(this.desired, t0);
      }
      this.log(`VIP table ${this.table}: edited by hand (${why}); restored in ${Math.round(performance.now() - t0)} ms`);
    }).catch((err: unknown) => {
      this.applied = undefined;
      this.log(`VIP table ${this.table}: restore failed: ${err instanceof VxnetError ? err.message : String(err)}`);
    });
  }
}
