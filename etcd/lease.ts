// Keeps one etcd lease alive with a single timer this module owns.
//
// etcd3's built-in keepalive (autoKeepAlive) replaces its teardown on every reconnect: when its
// stream fails twice before the retry lands (an etcd outage does that), two keepalive loops run
// and close() stops only the last one. The leaked setInterval renews nothing useful and keeps
// the process alive forever (seen as a test that never exits after etcd was down). Here the
// lease is granted with autoKeepAlive off and renewed by one keepaliveOnce() per interval.
import { EventEmitter } from 'node:events';
import type { Etcd3, Lease } from 'etcd3';
import { EtcdLeaseInvalidError } from 'etcd3';

export interface LeaseKeeperOptions {
  readonly ttlSeconds: number;
  /** Time source (tests); default Date.now. */
  readonly now?: () => number;
}

/**
 * Emits 'lost' (once) when etcd says the lease is gone or no renewal succeeded for a whole TTL
 * (etcd has expired it by then), 'renewed' after each successful renewal.
 */
export class LeaseKeeper extends EventEmitter {
  readonly lease: Lease;
  private timer: NodeJS.Timeout | undefined;
  private lastRenewed = 0;
  private closed = false;
  private readonly now: () => number;

  constructor(etcd: Etcd3, private readonly options: LeaseKeeperOptions) {
    super();
    this.now = options.now ?? Date.now;
    this.lease = etcd.lease(options.ttlSeconds, { autoKeepAlive: false });
    // etcd3 emits 'lost' itself when the grant fails or a renewal finds the lease expired.
    this.lease.on('lost', (err: Error) => this.lose(err));
  }

  /** Resolves once the lease is granted (rejects if it cannot be) and starts renewing it. */
  async grant(): Promise<string> {
    const id = await this.lease.grant();
    this.lastRenewed = this.now();
    if (!this.closed && !this.timer) this.schedule((this.options.ttlSeconds * 1000) / 3);
    return id;
  }

  get active(): boolean {
    return !this.closed;
  }

  /** Stops renewing; etcd expires the lease after its TTL. */
  release(): void {
    this.close();
    this.lease.release();
  }

  /** Stops renewing and revokes the lease, so its keys go at once. */
  async revoke(options: { deadline: number }): Promise<void> {
    this.close();
    await this.lease.revoke(options);
  }

  private close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private lose(err: Error): void {
    if (this.closed) return;
    this.close();
    this.lease.release();
    this.emit('lost', err);
  }

  // The official Go client renews at a third of the TTL; one attempt may take up to that long.
  // Fixed rate: the next renewal is due an interval after the previous one started, so a slow
  // renewal does not push every later one back (under load that let a whole TTL pass).
  private schedule(delayMs: number): void {
    const intervalMs = (this.options.ttlSeconds * 1000) / 3;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const started = this.now();
      void this.renew(intervalMs).finally(() => {
        if (!this.closed) this.schedule(nextRenewalDelay(started, this.now(), intervalMs));
      });
    }, delayMs);
  }

  private async renew(deadlineMs: number): Promise<void> {
    try {
      await this.lease.keepaliveOnce({ deadline: Date.now() + deadlineMs });
      if (this.closed) return;
      this.lastRenewed = this.now();
      this.emit('renewed');
    } catch (err) {
      if (this.closed) return;
      if (err instanceof EtcdLeaseInvalidError) return this.lose(err);
      if (this.now() - this.lastRenewed >= this.options.ttlSeconds * 1000) {
        this.lose(new EtcdLeaseInvalidError(`no renewal for ${this.options.ttlSeconds} s (${(err as Error).message})`));
      }
    }
  }
}

/**
 * How long after a renewal that started at `startedAt` and finished at `finishedAt` the next
 * one starts: an interval after the previous start, at once when that is already past (never
 * two in flight: the next is scheduled only when the previous finished).
 */
export function nextRenewalDelay(startedAt: number, finishedAt: number, intervalMs: number): number {
  return Math.max(0, startedAt + intervalMs - finishedAt);
}
