// The VIP table in the kernel: one nftables table (family inet) that vxnet owns, kept equal to
// the last desired state handed to `sync`. The shape and its rendering are in vip-plan.ts
// (pure); this file is the I/O shell: the transactions it sends, and the guard.
//
// - sync: diffs the desired state against what this process last applied (in memory) and
//   sends the element deletes and adds as one `nft -f` transaction. The table is never listed.
//   Calls are serialised. A transaction that fails (someone removed an element we meant to
//   delete) is followed by a full replace.
// - apply: the same for a few VIPs put or removed (the others untouched), so a change costs
//   the changed VIPs' elements, not the table's (vip-plan.ts VipIndex keeps the state per VIP).
//   Small diffs go to a long-running `nft -i` (net/nft.ts NftSession): ~1 ms instead of the
//   20-100 ms a new nft process costs on a loaded host; large ones and full replaces to `nft -f`.
// - full replace: every map and set emptied and filled in one transaction, over netlink
//   (net/nft-netlink.ts; the skeleton first with nft when it may be missing); should that fail,
//   `delete table` and rebuild with every element by `nft -f`. Used for the first sync after
//   start (what an earlier vxnetd left is unknown), after a failure, when the guard fires and
//   for diffs of most of the table. Established connections keep their NAT binding: conntrack
//   holds it.
// - start: adds the skeleton (maps, sets, chains; chains flushed and refilled) in one
//   transaction, keeping whatever elements an earlier run left: the kernel keeps balancing
//   between a restart and the first sync.
// - guard: a long-running `nft monitor`. After each transaction it prints `# new generation N
//   by process PID`; a transaction that mentioned this table and was not made by one of our own
//   nft processes makes the table be replaced in full. Our own large batches pause the monitor
//   (it would print every element: 70,000 lines for 10,000 VIPs, a second of its CPU).
import { DatapathFailure, VxnetError } from '../lib/errors';
import { ConntrackRunner, type ConntrackFilter } from '../net/conntrack';
import { NftRunner, type NftMonitor, type NftSession } from '../net/nft';
import { NFPROTO_INET, NftNetlink } from '../net/nft-netlink';
import { VipIndex, renderDiff, renderFull, renderSkeleton, type VipDiff, type VipRef } from './vip-plan';

export type { VipProtocol, VipBackend, VipEntry, VipRef } from './vip-plan';
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

export interface VipSyncStats {
  readonly elementsAdded: number;
  readonly elementsRemoved: number;
  /** The whole call, and of it the time nft took (its process or session, the kernel's transaction). */
  readonly ms: number;
  readonly nftMs?: number;
  readonly full: boolean;
}

/** Some VIPs put (added or replaced, by address, protocol and port) and some removed. */
export interface VipChanges { readonly put: readonly VipEntry[]; readonly remove: readonly VipRef[] }

/** Batches with more element changes than this run with the guard's monitor paused. */
const PAUSE_ABOVE = 2000;
/** Diffs up to this many element changes go through the nft -i session (one line each); larger ones through `nft -f`. */
const SESSION_MAX = 500;
/**
 * A diff with more element changes than this share of the table (and above SESSION_MAX) is
 * sent as a full replace over netlink instead (one transaction either way): nft's parsing of
 * a large text diff costs more than the kernel's refill of the whole table (measured: 40,000
 * elements added as text 0.6 s of nft's CPU, the whole table over netlink ~0.1 s).
 */
const REPLACE_SHARE = 0.25;
/** How long start() waits for the monitor to see its probe transaction. */
const MONITOR_READY_MS = 15_000;

export class VipTable {
  private readonly table: string;
  private readonly log: (msg: string) => void;
  private readonly guardOn: boolean;
  private readonly nft: NftRunner;
  /** Full replaces' elements go over netlink (one transaction, no nft parsing); see replace(). */
  private readonly netlink: NftNetlink;
  /** Whether the skeleton is known to be in place (start or a replace put it there; nothing touched it since). */
  private skeletonOk = false;
  /** A long-running `nft -i` for small diffs (~1 ms each instead of a process start); started on first use. */
  private session: NftSession | undefined;
  /** The state asked for, per VIP. */
  private readonly desired = new VipIndex();
  /** Whether the kernel holds `desired` as far as this process knows; false: unknown (replace in full). */
  private inSync = false;
  /** Whether anything was asked for yet (a restore before the first sync puts the skeleton back only). */
  private everSynced = false;
  private readonly conntrack: ConntrackRunner;
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
    this.netlink = new NftNetlink(options.netns);
  }

  /** Creates or adopts the table (idempotent, never resets conntrack/established flows), starts the guard. */
  start(): Promise<void> {
    return this.enqueue(async () => {
      await this.putSkeleton();
      this.inSync = false;
      if (this.guardOn) {
        this.guarding = true;
        await this.startMonitor();
      }
    });
  }

  /** The whole desired state; diffs against what it last applied and sends one batch. Serialised: concurrent calls queue. */
  sync(entries: readonly VipEntry[]): Promise<VipSyncStats> {
    // Bad entries reject the call (VipIndex validates before it changes anything).
    return this.enqueue(() => this.send((wantDiff) => this.desired.replaceAll(entries, wantDiff), performance.now()));
  }

  /** Puts and removes some VIPs, the others left as they are; one batch of their elements' changes. Serialised with sync. */
  apply(changes: VipChanges): Promise<VipSyncStats> {
    return this.enqueue(() => this.send((wantDiff) => this.desired.change(changes.put, changes.remove, wantDiff), performance.now()));
  }

  /** Changes `desired` and sends the diff (or the whole table when the kernel's state is unknown or the diff fails). */
  private async send(change: (wantDiff: boolean) => VipDiff, t0: number): Promise<VipSyncStats> {
    const diff = change(this.inSync);
    this.everSynced = true;
    if (!this.inSync) return this.replace(t0);
    if (diff.added + diff.removed === 0) return { elementsAdded: 0, elementsRemoved: 0, ms: performance.now() - t0, full: false };
    if (diff.added + diff.removed > SESSION_MAX && diff.added + diff.removed > REPLACE_SHARE * this.desired.elements) return this.replace(t0);
    let t1 = performance.now();
    try {
      const script = renderDiff(this.table, diff);
      const what = `cannot update VIP table ${this.table}`;
      t1 = performance.now();
      if (diff.added + diff.removed <= SESSION_MAX) await (this.session ??= this.nft.session()).run(script, what);
      else await this.paused(diff.added + diff.removed, () => this.nft.run(script, what));
    } catch (err) {
      this.log(`VIP table ${this.table}: update failed (${(err as Error).message}); replacing the table`);
      this.skeletonOk = false;
      return this.replace(t0);
    }
    const t2 = performance.now();
    return { elementsAdded: diff.added, elementsRemoved: diff.removed, ms: t2 - t0, nftMs: t2 - t1, full: false };
  }

  /** Stops the guard; the table stays in the kernel (the kernel keeps balancing while vxnetd is down). */
  stop(): Promise<void> {
    this.guarding = false;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    return this.enqueue(async () => {
      await this.stopMonitor();
      const session = this.session;
      this.session = undefined;
      await session?.close();
      this.netlink.close();
    });
  }

  /** Deletes the table (operator's uninstall, tests). */
  async remove(): Promise<void> {
    await this.stop();
    await this.enqueue(() => this.nft.run(`add table inet ${this.table}\ndelete table inet ${this.table}\n`, `cannot delete VIP table ${this.table}`));
    this.inSync = false;
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

  /**
   * The whole desired state in one transaction. The skeleton first when it is not known to be
   * in place (nft -f: its own transaction, which keeps the elements, so balancing goes on), then
   * one netlink transaction that empties every map and set and fills them (net/nft-netlink.ts:
   * no text for nft to parse: 10,000 VIPs' 40,000 elements cost the kernel's ~0.1 s instead of
   * nft's ~0.6 s of CPU). Should that fail, the text way: the table deleted and rebuilt with
   * every element by `nft -f`, one transaction.
   */
  private async replace(t0: number): Promise<VipSyncStats> {
    const n = this.desired.elements;
    this.inSync = false;
    const what = `cannot replace VIP table ${this.table}`;
    const t1 = performance.now();
    try {
      if (!this.skeletonOk) await this.putSkeleton();
      const ops = this.desired.encodeFull();
      await this.paused(n, () => this.netlink.run(NFPROTO_INET, this.table, ops, what));
    } catch (err) {
      this.log(`VIP table ${this.table}: replace over netlink failed (${(err as Error).message}); replacing it with nft -f`);
      this.skeletonOk = false;
      const script = this.desired.renderFull(this.table);
      await this.paused(n, () => this.nft.run(script, what));
      this.skeletonOk = true;
    }
    const t2 = performance.now();
    this.inSync = true;
    return { elementsAdded: n, elementsRemoved: 0, ms: t2 - t0, nftMs: t2 - t1, full: true };
  }

  /** The skeleton (idempotent, keeps elements); a table of an older shape is rebuilt empty. */
  private async putSkeleton(): Promise<void> {
    try {
      await this.nft.run(renderSkeleton(this.table), `cannot set up VIP table ${this.table}`);
    } catch (err) {
      this.log(`VIP table ${this.table}: existing table not adoptable (${(err as Error).message}); replacing it`);
      await this.nft.run(renderFull(this.table, new Map()), `cannot create VIP table ${this.table}`);
    }
    this.skeletonOk = true;
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
    try {
      return await job();
    } finally {
      // Not awaited: a new `nft monitor` first reads the whole table (with 10,000 VIPs, seconds
      // of its CPU under load) before it reports anything, and the batch is done.
      if (this.guarding) void this.startMonitor().catch((err: unknown) => this.log(`VIP table ${this.table}: ${(err as Error).message}`));
    }
  }

  private async startMonitor(): Promise<void> {
    let mon: NftMonitor | undefined;
    let timer: NodeJS.Timeout | undefined;
    const ready = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => { this.readyWaiter = undefined; resolve(false); }, MONITOR_READY_MS);
      this.readyWaiter = (pid) => { if (this.nft.isOwn(pid)) { clearTimeout(timer); this.readyWaiter = undefined; resolve(true); } };
    });
    mon = this.nft.monitor((line) => this.onMonitorLine(line), (code) => this.onMonitorExit(mon, code));
    this.monitor = mon;
    // The monitor subscribes some time after it starts; a probe transaction of our own tells
    // when it sees changes (hand edits before that would be missed). Repeated until seen.
    const probe = `add chain inet ${this.table} guard-probe\ndelete chain inet ${this.table} guard-probe\n`;
    for (;;) {
      if (this.monitor !== mon) { clearTimeout(timer); return; } // stopped (or replaced) meanwhile
      await this.nft.run(probe, `cannot probe VIP table ${this.table}`);
      const seen = await Promise.race([ready, new Promise<undefined>((r) => setTimeout(r, 200, undefined))]);
      if (seen !== undefined) {
        if (this.monitor !== mon) { clearTimeout(timer); return; }
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
      // Our own netlink batches are made by this process (its main thread).
      if (this.touched && pid !== process.pid && !this.nft.isOwn(pid)) this.scheduleRestore(`a change by process ${pid}`);
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
      this.skeletonOk = false;
      if (!this.everSynced) {
        await this.nft.run(renderSkeleton(this.table), `cannot restore VIP table ${this.table}`);
      } else {
        await this.replace(t0);
      }
      this.log(`VIP table ${this.table}: edited by hand (${why}); restored in ${Math.round(performance.now() - t0)} ms`);
    }).catch((err: unknown) => {
      this.inSync = false;
      this.log(`VIP table ${this.table}: restore failed: ${err instanceof VxnetError ? err.message : String(err)}`);
    });
  }
}

