// nftables set elements over netlink (NETLINK_NETFILTER), without the nft binary: for large
// element batches only (a full table's elements, big diffs). nft parses text into objects
// element by element (measured: ~0.4-0.6 s of its CPU for 40,000 elements, most of it in
// malloc); this writes the binary messages straight into one buffer (~30 ms) and the kernel's
// transaction is all that is left. Maps, sets, chains and rules stay with the nft binary
// (net/nft.ts); this only adds, deletes and flushes elements of sets that exist.
//
// One call is one nfnetlink batch (BATCH_BEGIN, the messages, BATCH_END) in one sendmsg: one
// transaction, all or nothing, like `nft -f`. Every message asks for an acknowledgement;
// the call resolves when all of them came back 0 and rejects with the first error otherwise
// (the kernel then aborted the whole batch).
import { RawNetlinkSocket } from 'netlink/dist/raw';
import { DatapathFailure } from '../lib/errors';
import { inNetnsSync, openNetns } from './netns';

const NETLINK_NETFILTER = 12;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_CREATE = 0x400;
const NLMSG_ERROR = 2;
const NFNL_MSG_BATCH_BEGIN = 0x10;
const NFNL_MSG_BATCH_END = 0x11;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_NEWSETELEM = 12;
const NFT_MSG_DELSETELEM = 14;
const NLA_F_NESTED = 0x8000;
// Attribute numbers (linux/netfilter/nf_tables.h).
const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_LIST_ELEM = 1;
const NFTA_SET_ELEM_KEY = 1;
const NFTA_SET_ELEM_DATA = 2;
const NFTA_DATA_VALUE = 1;
const NFTA_DATA_VERDICT = 2;
const NFTA_VERDICT_CODE = 1;
const NFTA_VERDICT_CHAIN = 2;
const NFT_GOTO = -4;

/** nfgenmsg families. */
export const NFPROTO_INET = 1;

/** One element: its key's bytes and, in a map, its value's bytes or a `goto CHAIN` verdict. */
export interface NftElement {
  readonly key: Uint8Array;
  readonly value?: Uint8Array | { readonly goto: string };
}

/**
 * Elements packed for a large add without an object per element: `count` keys of `keyLen`
 * bytes back to back, and either values of `valueLen` bytes likewise or, in a verdict map, per
 * element an index into `gotos` (the chains).
 */
export interface NftPacked {
  readonly count: number;
  readonly keyLen: number;
  readonly keys: Uint8Array;
  readonly valueLen?: number;
  readonly values?: Uint8Array;
  readonly gotos?: readonly string[];
  readonly gotoOf?: Uint8Array;
}

/** What one batch does to one set: flush it, delete some keys, add some elements (in that order per set). */
export interface NftSetOps {
  readonly set: string;
  readonly flush?: boolean;
  readonly remove?: readonly Uint8Array[];
  readonly add?: readonly NftElement[];
  /** More elements to add, packed (after `add`). */
  readonly packed?: NftPacked;
}

/** A message's elements are cut into chunks of about this many bytes (an error's echo then fits a read). */
const CHUNK_BYTES = 32 * 1024;
/**
 * The send buffer asked for. The kernel takes a batch in one sendmsg of at most the socket's
 * send buffer, which SO_SNDBUF caps at net.core.wmem_max (x2): 4 MiB here, 208 KiB on a
 * default host (nft itself uses SO_SNDBUFFORCE, which node-netlink does not offer). A larger
 * batch is refused before it is sent (the caller falls back to nft -f).
 */
const SEND_BUFFER = 8 * 1024 * 1024;

/** A growable byte buffer with netlink attribute writers. */
class Writer {
  buf = Buffer.allocUnsafe(1 << 16);
  at = 0;

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.at + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
  }

  /** Starts an attribute (or a message header's length field); returns where its length goes. */
  begin(type: number): number {
    this.room(4);
    const start = this.at;
    this.buf.writeUInt16LE(type, start + 2);
    this.at += 4;
    return start;
  }

  /** Ends an attribute begun at `start`: its length, then padding to 4 bytes. */
  end(start: number): void {
    this.buf.writeUInt16LE(this.at - start, start);
    this.pad();
  }

  pad(): void {
    const n = (4 - (this.at & 3)) & 3;
    this.room(n);
    for (let i = 0; i < n; i++) this.buf[this.at++] = 0;
  }

  bytes(type: number, data: Uint8Array): void {
    const s = this.begin(type);
    this.room(data.length);
    this.buf.set(data, this.at);
    this.at += data.length;
    this.end(s);
  }

  /** An attribute whose payload is `len` bytes of `src` from `from` (no subarray object). */
  range(type: number, src: Uint8Array, from: number, len: number): void {
    const s = this.begin(type);
    this.room(len);
    const b = this.buf;
    let at = this.at;
    for (let i = 0; i < len; i++) b[at++] = src[from + i] as number;
    this.at = at;
    this.end(s);
  }

  strz(type: number, text: string): void {
    const s = this.begin(type);
    const n = Buffer.byteLength(text);
    this.room(n + 1);
    this.buf.write(text, this.at, 'utf8');
    this.at += n;
    this.buf[this.at++] = 0;
    this.end(s);
  }

  u32be(type: number, v: number): void {
    const s = this.begin(type);
    this.room(4);
    this.buf.writeInt32BE(v, this.at);
    this.at += 4;
    this.end(s);
  }

  /** A netlink message header and nfgenmsg; returns where the message starts (its length is set by endMessage). */
  message(type: number, flags: number, seq: number, family: number, resId: number): number {
    this.room(20);
    const start = this.at;
    const b = this.buf;
    b.writeUInt32LE(0, start);
    b.writeUInt16LE(type, start + 4);
    b.writeUInt16LE(flags, start + 6);
    b.writeUInt32LE(seq, start + 8);
    b.writeUInt32LE(0, start + 12);
    b[start + 16] = family;
    b[start + 17] = 0;
    b.writeUInt16BE(resId, start + 18);
    this.at += 20;
    return start;
  }

  endMessage(start: number): void {
    this.buf.writeUInt32LE(this.at - start, start);
  }
}

/**
 * The batch's bytes and the sequence numbers of its messages (each asks for an acknowledgement). Pure.
 * Per set: a flush, then the deletes, then the adds, each cut into messages of ~32 KiB.
 */
export function encodeSetBatch(family: number, table: string, ops: readonly NftSetOps[], firstSeq = 1): { bytes: Buffer; seqs: number[] } {
  const w = new Writer();
  let seq = firstSeq;
  const seqs: number[] = [];
  const begin = w.message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq++, 0, NFNL_SUBSYS_NFTABLES);
  w.endMessage(begin);
  const head = (type: number, flags: number, set: string): number => {
    const s = seq++;
    seqs.push(s);
    const m = w.message((NFNL_SUBSYS_NFTABLES << 8) | type, NLM_F_REQUEST | NLM_F_ACK | flags, s, family, 0);
    w.strz(NFTA_SET_ELEM_LIST_TABLE, table);
    w.strz(NFTA_SET_ELEM_LIST_SET, set);
    return m;
  };
  for (const op of ops) {
    if (op.flush) w.endMessage(head(NFT_MSG_DELSETELEM, 0, op.set));
    for (const [kind, items] of [[NFT_MSG_DELSETELEM, op.remove ?? []], [NFT_MSG_NEWSETELEM, op.add ?? []]] as const) {
      let i = 0;
      while (i < items.length) {
        const m = head(kind, kind === NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0, op.set);
        const list = w.begin(NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED);
        const from = w.at;
        for (; i < items.length && w.at - from < CHUNK_BYTES; i++) {
          const it = items[i] as Uint8Array | NftElement;
          const el = w.begin(NFTA_LIST_ELEM | NLA_F_NESTED);
          const key = it instanceof Uint8Array ? it : it.key;
          const k = w.begin(NFTA_SET_ELEM_KEY | NLA_F_NESTED);
          w.bytes(NFTA_DATA_VALUE, key);
          w.end(k);
          const value = it instanceof Uint8Array ? undefined : it.value;
          if (value !== undefined) {
            const d = w.begin(NFTA_SET_ELEM_DATA | NLA_F_NESTED);
            if (value instanceof Uint8Array) {
              w.bytes(NFTA_DATA_VALUE, value);
            } else {
              const v = w.begin(NFTA_DATA_VERDICT | NLA_F_NESTED);
              w.u32be(NFTA_VERDICT_CODE, NFT_GOTO);
              w.strz(NFTA_VERDICT_CHAIN, value.goto);
              w.end(v);
            }
            w.end(d);
          }
          w.end(el);
        }
        w.end(list);
        w.endMessage(m);
      }
    }
    const p = op.packed;
    let i = 0;
    while (p && i < p.count) {
      const m = head(NFT_MSG_NEWSETELEM, NLM_F_CREATE, op.set);
      const list = w.begin(NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED);
      const from = w.at;
      for (; i < p.count && w.at - from < CHUNK_BYTES; i++) {
        const el = w.begin(NFTA_LIST_ELEM | NLA_F_NESTED);
        const k = w.begin(NFTA_SET_ELEM_KEY | NLA_F_NESTED);
        w.range(NFTA_DATA_VALUE, p.keys, i * p.keyLen, p.keyLen);
        w.end(k);
        if (p.values && p.valueLen) {
          const d = w.begin(NFTA_SET_ELEM_DATA | NLA_F_NESTED);
          w.range(NFTA_DATA_VALUE, p.values, i * p.valueLen, p.valueLen);
          w.end(d);
        } else if (p.gotos && p.gotoOf) {
          const d = w.begin(NFTA_SET_ELEM_DATA | NLA_F_NESTED);
          const v = w.begin(NFTA_DATA_VERDICT | NLA_F_NESTED);
          w.u32be(NFTA_VERDICT_CODE, NFT_GOTO);
          w.strz(NFTA_VERDICT_CHAIN, p.gotos[p.gotoOf[i] as number] as string);
          w.end(v);
          w.end(d);
        }
        w.end(el);
      }
      w.end(list);
      w.endMessage(m);
    }
  }
  const end = w.message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq++, 0, NFNL_SUBSYS_NFTABLES);
  w.endMessage(end);
  return { bytes: w.buf.subarray(0, w.at), seqs };
}

/** The errno (0: success) of each acknowledgement in `received`, by sequence number. Pure. */
export function acksOf(received: Buffer): Map<number, number> {
  const out = new Map<number, number>();
  for (let at = 0; at + 16 <= received.length;) {
    const len = received.readUInt32LE(at);
    if (len < 16 || at + len > received.length) break;
    if (received.readUInt16LE(at + 4) === NLMSG_ERROR && len >= 20) out.set(received.readUInt32LE(at + 8), -received.readInt32LE(at + 16));
    at += (len + 3) & ~3;
  }
  return out;
}

const errnoName = (e: number): string => {
  const names: Record<number, string> = { 1: 'EPERM', 2: 'ENOENT', 7: 'E2BIG', 12: 'ENOMEM', 16: 'EBUSY', 17: 'EEXIST', 22: 'EINVAL', 28: 'ENOSPC', 34: 'ERANGE', 90: 'EMSGSIZE', 95: 'EOPNOTSUPP' };
  return names[e] ?? `errno ${e}`;
};

/** How long a batch may wait for its acknowledgements. */
const ACK_TIMEOUT_MS = 30_000;

/** A NETLINK_NETFILTER socket of one network namespace (the process's own without one), sending element batches. */
export class NftNetlink {
  private sock: RawNetlinkSocket | undefined;
  private seq = 1;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly netns?: string) {}

  /** The largest batch the socket takes in one sendmsg (known once it is open). */
  private maxBatch = 0;

  private socket(): RawNetlinkSocket {
    if (this.sock) return this.sock;
    const open = (): RawNetlinkSocket => new RawNetlinkSocket(NETLINK_NETFILTER, { recvBufferSize: 1 << 20, sendBufferSize: SEND_BUFFER / 2 });
    try {
      if (this.netns === undefined) {
        this.sock = open();
      } else {
        const ns = openNetns(this.netns.includes('/') ? this.netns : `/run/netns/${this.netns}`);
        try { this.sock = inNetnsSync(ns, open); } finally { ns.close(); }
      }
    } catch (err) {
      throw new DatapathFailure(`cannot open a netfilter netlink socket${this.netns ? ` in ${this.netns}` : ''}: ${(err as Error).message}`);
    }
    // An 'error' event nobody listens to is thrown from the native callback, which aborts the
    // process (net/rtnl.ts saw it): always heard; a batch in flight hears it too and fails.
    this.sock.on('error', () => undefined);
    // Unreferenced: an idle socket must not keep the process alive (a pending batch has its timer).
    this.sock.unref();
    this.maxBatch = this.sock.getSendBufferSize() - 64;
    return this.sock;
  }

  /** Sends the element operations as one transaction; DatapathFailure with `what` and the kernel's error. */
  run(family: number, table: string, ops: readonly NftSetOps[], what: string): Promise<void> {
    const job = (): Promise<void> => this.once(family, table, ops, what);
    const run = this.queue.then(job, job);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private once(family: number, table: string, ops: readonly NftSetOps[], what: string): Promise<void> {
    const { bytes, seqs } = encodeSetBatch(family, table, ops, this.seq);
    this.seq = (this.seq + seqs.length + 2) % 0x7fffffff || 1;
    if (seqs.length === 0) return Promise.resolve();
    let sock: RawNetlinkSocket;
    try { sock = this.socket(); } catch (err) { return Promise.reject(err); }
    if (bytes.length > this.maxBatch) {
      return Promise.reject(new DatapathFailure(`${what}: a batch of ${bytes.length} bytes is more than the netlink socket's send buffer (${this.maxBatch}; raise net.core.wmem_max)`));
    }
    return new Promise<void>((resolve, reject) => {
      const want = new Set(seqs);
      let firstError: string | undefined;
      const done = (err?: Error): void => {
        clearTimeout(timer);
        sock.off('message', onMessage);
        sock.off('error', onError);
        sock.off('truncatedMessage', onTruncated);
        sock.unref();
        if (err) reject(err); else resolve();
      };
      const onMessage = (msg: Buffer): void => {
        for (const [s, errno] of acksOf(msg)) {
          if (!want.delete(s)) continue;
          if (errno !== 0 && firstError === undefined) firstError = errnoName(errno);
        }
        // After an error the kernel aborts the batch; the messages it had not reached are not acknowledged.
        if (want.size === 0 || firstError !== undefined) done(firstError === undefined ? undefined : new DatapathFailure(`${what}: the kernel refused the batch: ${firstError}`));
      };
      const onTruncated = (): void => done(new DatapathFailure(`${what}: a netlink answer was truncated`));
      const onError = (e: Error): void => done(new DatapathFailure(`${what}: netlink: ${e.message}`));
      const timer = setTimeout(() => done(new DatapathFailure(`${what}: no answer from the kernel within ${ACK_TIMEOUT_MS} ms`)), ACK_TIMEOUT_MS);
      sock.on('message', onMessage);
      sock.on('truncatedMessage', onTruncated);
      sock.on('error', onError);
      sock.ref();
      sock.send(bytes, {}, (e) => { if (e) done(new DatapathFailure(`${what}: netlink send: ${e.message}`)); });
    });
  }

  close(): void {
    this.sock?.close();
    this.sock = undefined;
  }
}
