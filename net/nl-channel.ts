// Route netlink requests over a socket of vxnet's own (native/rtnl.c), for net/rtnl.ts.
//
// Requests made in the same tick go to the kernel together, in one sendmsg, and are answered
// in one exchange: an ADD's link, address and route settings in the container cost one system
// call and one wait instead of one each. A request asked to run off the main thread (a veth
// pair's creation: about half a millisecond of the kernel's time) is exchanged on libuv's
// threadpool, so JavaScript goes on meanwhile (an ADD allocates its address).
import { closeSync } from 'node:fs';
import { getSystemErrorName } from 'node:util';
import { netnsBinding } from '../lib/native';

const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLMSG_ERROR = 2;
/**
 * At most this many requests per exchange: each acknowledgement takes a socket buffer of its own
 * in the receive queue, which must hold them all until the exchange reads them.
 */
const MAX_BATCH = 32;

/** A reply: its type, flags and body. */
export interface NlReply { readonly type: number; readonly flags: number; readonly data: Buffer }

interface Pending {
  readonly message: Buffer;
  readonly seq: number;
  readonly offThread: boolean;
  readonly resolve: (replies: NlReply[]) => void;
  readonly reject: (err: Error) => void;
}

let nextSeq = 1;

/** One request as a whole netlink message (struct nlmsghdr, then the body), padded to 4 bytes. Pure. */
export function formatRequest(type: number, flags: number, seq: number, body: Buffer): Buffer {
  const message = Buffer.alloc(16 + ((body.length + 3) & ~3));
  message.writeUInt32LE(16 + body.length, 0);
  message.writeUInt16LE(type, 4);
  message.writeUInt16LE(flags | NLM_F_REQUEST | NLM_F_ACK, 6);
  message.writeUInt32LE(seq, 8);
  body.copy(message, 16);
  return message;
}

/**
 * Splits an exchange's replies by request: each request's messages, and the kernel's verdict
 * (0, or a negative errno) from its acknowledgement. Pure.
 */
export function splitReplies(received: Buffer, seqs: readonly number[]): Map<number, { replies: NlReply[]; errno: number | undefined }> {
  const out = new Map(seqs.map((seq) => [seq, { replies: [] as NlReply[], errno: undefined as number | undefined }]));
  for (let at = 0; at + 16 <= received.length;) {
    const len = received.readUInt32LE(at);
    if (len < 16 || at + len > received.length) break;
    const type = received.readUInt16LE(at + 4);
    const entry = out.get(received.readUInt32LE(at + 8));
    if (entry && type === NLMSG_ERROR) entry.errno = len >= 20 ? received.readInt32LE(at + 16) : undefined;
    else if (entry) entry.replies.push({ type, flags: received.readUInt16LE(at + 6), data: received.subarray(at + 16, at + len) });
    at += (len + 3) & ~3;
  }
  return out;
}

/** Kernel errors read as node-netlink words them ("Request rejected: EEXIST"), which callers match. */
const rejected = (errno: number): Error => new Error(`Request rejected: ${getSystemErrorName(errno)}`);

export class NlChannel {
  private queue: Pending[] = [];
  private closed = false;
  /**
   * An exchange running on the threadpool: later ones wait for it (two exchanges at once on one
   * socket could read each other's replies), and the fd is closed only after it (it could be
   * reused).
   */
  private inFlight = false;

  private constructor(readonly fd: number) {}

  /** A socket in the calling thread's namespace (use netns.ts's inNetnsSync for another). */
  static open(): NlChannel {
    return new NlChannel(netnsBinding().nlOpen());
  }

  /** An fd of the namespace the socket belongs to; the caller closes it. */
  namespaceFd(): number {
    return netnsBinding().nlNamespaceOf(this.fd);
  }

  /** Sends a request; resolves with its replies once the kernel acknowledged it, rejects with its error. */
  request(type: number, flags: number, body: Buffer, options: { offThread?: boolean } = {}): Promise<NlReply[]> {
    if (this.closed) return Promise.reject(new Error('netlink channel closed'));
    const seq = nextSeq;
    nextSeq = nextSeq >= 0x7fffffff ? 1 : nextSeq + 1;
    const message = formatRequest(type, flags, seq, body);
    return new Promise((resolve, reject) => {
      if (this.queue.length === 0 && !options.offThread) queueMicrotask(() => this.flush());
      this.queue.push({ message, seq, offThread: options.offThread === true, resolve, reject });
      // Sent at once (with whatever this tick queued before it): the caller's next synchronous
      // work is what it should overlap with.
      if (options.offThread) this.flush();
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new Error('netlink channel closed'));
    if (!this.inFlight) closeSync(this.fd);
  }

  /** Exchanges what is queued, in order; resumed by the end of an exchange on the threadpool. */
  private flush(): void {
    while (this.queue.length > 0 && !this.inFlight) this.exchange(this.queue.splice(0, MAX_BATCH));
  }

  private exchange(batch: Pending[]): void {
    if (this.closed) { for (const p of batch) p.reject(new Error('netlink channel closed')); return; }
    const request = batch.length === 1 ? batch[0].message : Buffer.concat(batch.map((p) => p.message));
    const settle = (received: Buffer): void => {
      const byReq = splitReplies(received, batch.map((p) => p.seq));
      for (const p of batch) {
        const r = byReq.get(p.seq);
        if (!r || r.errno === undefined) p.reject(new Error('netlink: the kernel did not acknowledge the request'));
        else if (r.errno !== 0) p.reject(rejected(r.errno));
        else p.resolve(r.replies);
      }
    };
    const fail = (err: Error & { errno?: number }): void => {
      const e = new Error(`netlink socket: ${err.message}`);
      for (const p of batch) p.reject(e);
    };
    const binding = netnsBinding();
    if (batch.some((p) => p.offThread)) {
      this.inFlight = true;
      binding.nlExchange(this.fd, request).then(settle, fail).finally(() => {
        this.inFlight = false;
        if (this.closed) closeSync(this.fd); else this.flush();
      });
      return;
    }
    let received: Buffer;
    try {
      received = binding.nlExchangeSync(this.fd, request);
    } catch (err) {
      fail(err as Error);
      return;
    }
    settle(received);
  }
}
