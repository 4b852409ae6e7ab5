// A watch of every key under a prefix that neither loses nor repeats a change, whatever etcd
// does meanwhile. It starts with a read of the prefix at revision R (reset) and watches from
// R + 1. It remembers the revision of the last change it delivered; when the stream breaks
// (a member restarted, the network went away) etcd3 re-creates the watch, and this one makes
// it resume from that revision + 1 rather than from etcd3's own mark (which follows response
// headers, so it can skip changes still queued when the stream broke). Changes at or below
// the mark are dropped, so a replay delivers nothing twice. When the history to resume from
// was compacted, etcd cancels the watch: then the prefix is read again (a new reset) and
// watched from there.
import type { IKeyValue, IWatchResponse, Watcher } from 'etcd3';
import type { VxnetError } from '../lib/errors';
import { etcdError } from './errors';
import type { EtcdClient } from './client';

export interface PrefixWatchHandlers {
  /** Every key under the prefix as of `revision`: at start, and after a compaction. */
  reset(kvs: IKeyValue[], revision: string): void;
  /** One change after the last reset, in revision order, each once. */
  change(type: 'put' | 'delete', kv: IKeyValue): void;
  /** A transient problem (stream broken, a re-read failed); the watch keeps trying. */
  trouble?(err: VxnetError): void;
}

const RESYNC_RETRY_MIN_MS = 100;
const RESYNC_RETRY_MAX_MS = 2000;

export class PrefixWatch {
  private watcher: Watcher | undefined;
  /** Every change at or below this revision has been delivered (or was in the last reset). */
  private seen = 0n;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  /** How many resets were delivered (1 after start; each compaction adds one). */
  resets = 0;

  private constructor(private readonly client: EtcdClient, readonly prefix: string, private readonly h: PrefixWatchHandlers) {}

  /** Reads the prefix, delivers it as the first reset, and starts watching. */
  static async start(client: EtcdClient, prefix: string, handlers: PrefixWatchHandlers): Promise<PrefixWatch> {
    const w = new PrefixWatch(client, prefix, handlers);
    await w.resync();
    return w;
  }

  /** The revision of the last change delivered (or of the last reset). */
  get revision(): string {
    return String(this.seen);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    const w = this.watcher;
    this.watcher = undefined;
    await w?.cancel();
  }

  private async resync(): Promise<void> {
    const { revision, kvs } = await this.client.range(`read ${this.prefix}`, this.prefix);
    if (this.closed) return;
    this.seen = BigInt(revision);
    this.resets++;
    this.h.reset(kvs, revision);
    this.open();
  }

  /** After a failed resync: again, with a growing pause, until it works or the watch is closed. */
  private resyncLater(attempt: number): void {
    if (this.closed) return;
    const ms = Math.min(RESYNC_RETRY_MIN_MS * 2 ** attempt, RESYNC_RETRY_MAX_MS);
    this.retryTimer = setTimeout(() => {
      this.resync().catch((err: unknown) => {
        this.h.trouble?.(etcdError(`watch ${this.prefix}`, err));
        this.resyncLater(attempt + 1);
      });
    }, ms);
  }

  private open(): void {
    // watcher() attaches at once, so no response can arrive before the handlers below exist.
    const w = this.client.raw.watch().prefix(this.prefix).startRevision(String(this.seen + 1n)).watcher();
    this.watcher = w;
    const resumeFromSeen = (): void => { w.request.start_revision = String(this.seen + 1n); };
    // etcd3's own handlers for these events run first (registered when the watcher was made)
    // and move start_revision to the response header's revision + 1; put it back.
    w.on('data', (res: IWatchResponse) => {
      if (this.closed || this.watcher !== w) return;
      let top = this.seen;
      for (const ev of res.events) {
        const rev = BigInt(ev.kv.mod_revision);
        // One revision's events (a transaction's) all come in one response: compare with the
        // mark as it stood before this response, so none of them is dropped.
        if (rev <= this.seen) continue;
        if (rev > top) top = rev;
        this.h.change(ev.type === 'Delete' ? 'delete' : 'put', ev.kv);
      }
      this.seen = top;
      resumeFromSeen();
    });
    w.on('connected', resumeFromSeen);
    w.on('disconnected', (err: Error) => {
      resumeFromSeen();
      if (!this.closed) this.h.trouble?.(etcdError(`watch ${this.prefix}`, err));
    });
    // A watch etcd cancelled (the revision to resume from was compacted, or anything else):
    // etcd3 has dropped it; read everything again and watch from there.
    w.on('error', (err: Error) => {
      if (this.closed || this.watcher !== w) return;
      this.watcher = undefined;
      this.h.trouble?.(etcdError(`watch ${this.prefix}`, err));
      this.resyncLater(0);
    });
  }
}
