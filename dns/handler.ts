// One DNS message in, one answer (or nothing) out, whatever the transport: the policy between
// the listeners (server.ts) and the zone, the forwarder and the codec. No sockets here.
//
// Order: the source first (not an open resolver: REFUSED to anyone outside the allowed
// sources, silence when their message is not even a query), then the message's checks
// (FORMERR / NOTIMP / silence, wire.ts), then the zone, then the forwarder. Zone answers are
// produced synchronously, with no promise on the way: that path is the one measured against
// dnsmasq. Nothing thrown below escapes: an internal failure answers SERVFAIL and is counted.
//
// Reused answers: an authoritative answer with at most one record (nothing to rotate) is kept,
// encoded, under the message's bytes after the ID and flags (counts, question as sent, OPT),
// its CD bit and the transport; a later message with the same bytes gets a copy with its own
// ID, RD and CD. Those bytes and the opcode/QR bits are all the full path reads, so the copy is
// what it would answer. A cached forwarded answer is kept the same way, with the offsets of its
// records' TTLs: a copy gets them counted down by the whole seconds since it was encoded (as
// the cache counts them; within a second of what the full path would say), and the copy is
// given only until a second before its lowest TTL runs out, so it never outlives the cache
// entry. (Re-encoding it every second instead cost the cached path ~10-30% of its rate.) All
// dropped whenever the zone's serial moves; bounded. Measured: ~1 us per answer against ~5 us
// (decode, lookup, encode), which is what the UDP path is short of.
import { Cidr, Ip, contains, parseIp } from '../ipam/addr';
import { Logger } from '../lib/log';
import type { Transport } from './forwarder';
import type { ZoneAnswer } from './zone';
import { EDNS_UDP_SIZE, Query, Reply, decodeQuery, encodeReply, rcodeReply, recordTtlOffsets, udpLimit } from './wire';

export interface Authority {
  lookup(qname: string, qtype: string): ZoneAnswer | undefined;
  /** Changes with every change of the zone; without it, answers are never reused. */
  readonly serial?: number;
}

export interface Resolver {
  resolve(query: Query, transport: Transport): Promise<Reply>;
  /** A cached answer, synchronously (optional). */
  cached?(query: Query): Reply | undefined;
}

export interface HandlerOptions {
  readonly zone: Authority;
  /** Names outside the zone; without one, they are REFUSED. */
  readonly forwarder?: Resolver;
  /** Milliseconds, for how long a reused forwarded answer stays; default Date.now. */
  readonly now?: () => number;
  /** Who may ask; default: loopback only. */
  readonly allow?: (source: Ip) => boolean;
  /** The most a UDP answer may have, whatever the client's EDNS size says; default 1232. */
  readonly udpSizeCap?: number;
  readonly log?: Logger;
}

export interface HandlerStats {
  queries: number;
  refused: number;
  malformed: number;
  authoritative: number;
  forwarded: number;
  internalErrors: number;
}

export type Answer = Buffer | undefined | Promise<Buffer | undefined>;

export interface Handler {
  /** The answer to `message` from `source` (undefined: say nothing). Never throws or rejects. */
  handle(message: Buffer, source: Ip | undefined, transport: Transport): Answer;
  readonly stats: HandlerStats;
}

const isLoopback = (ip: Ip): boolean => (ip.family === 4 ? ip.value >> 24n === 127n : ip.value === 1n);

/** Loopback (this host) and the given networks (vxnet's own, configurable). */
export function allowSources(cidrs: readonly Cidr[], loopback = true): (source: Ip) => boolean {
  return (source) => (loopback && isLoopback(source)) || cidrs.some((c) => contains(c, source));
}

/** The address a socket reports, IPv4-mapped IPv6 ("::ffff:10.0.0.1") read as IPv4. */
export function sourceIp(address: string): Ip | undefined {
  const ip = parseIp(address);
  if (ip && ip.family === 6 && ip.value >> 32n === 0xffffn) return { family: 4, value: ip.value & 0xffffffffn };
  return ip;
}

const REUSE_MAX_ENTRIES = 10_000;
const REUSE_MAX_MESSAGE = 300;
const RD_CD = 0x0110;

export function createHandler(options: HandlerOptions): Handler {
  const allow = options.allow ?? allowSources([]);
  const cap = options.udpSizeCap ?? EDNS_UDP_SIZE;
  const { zone, forwarder, log } = options;
  const stats: HandlerStats = { queries: 0, refused: 0, malformed: 0, authoritative: 0, forwarded: 0, internalErrors: 0 };
  const now = options.now ?? Date.now;
  /**
   * Encoded answers with RD and CD clear; `until` is Infinity for the zone's. A forwarded one
   * has its TTL offsets and values as encoded at `at` (ms).
   */
  interface Kept {
    readonly buf: Buffer;
    readonly until: number;
    readonly authoritative: boolean;
    readonly at: number;
    readonly ttls?: { readonly offsets: readonly number[]; readonly values: readonly number[] };
  }
  const reuse = new Map<string, Kept>();
  const keep = (key: string, out: Buffer, until: number, authoritative: boolean, at = 0, ttlOffsets?: readonly number[]): void => {
    if (reuse.size >= REUSE_MAX_ENTRIES) reuse.clear();
    const buf = Buffer.from(out);
    buf.writeUInt16BE(buf.readUInt16BE(2) & ~RD_CD, 2);
    const ttls = ttlOffsets ? { offsets: ttlOffsets, values: ttlOffsets.map((o) => buf.readUInt32BE(o)) } : undefined;
    reuse.set(key, { buf, until, authoritative, at, ...(ttls ? { ttls } : {}) });
  };
  let reuseSerial = zone.serial;

  /** The key of a reusable message (QR=0, opcode QUERY, small), else undefined. */
  const reuseKey = (message: Buffer, transport: Transport): string | undefined => {
    if (zone.serial === undefined || message.length > REUSE_MAX_MESSAGE || message.length < 17) return undefined;
    if ((message[2] & 0xf8) !== 0) return undefined; // QR and opcode
    if (zone.serial !== reuseSerial) {
      reuse.clear();
      reuseSerial = zone.serial;
    }
    // CD changes what an upstream answers (the forwarder's cache keys on it too).
    return (transport === 'udp' ? 'u' : 't') + (message[3] & 0x10 ? 'c' : 'n') + message.toString('latin1', 4);
  };

  const failed = (query: Query | undefined, err: unknown): Buffer | undefined => {
    stats.internalErrors++;
    log?.error('dns: answering failed', { error: err instanceof Error ? err.message : String(err), name: query?.question.name });
    try {
      return query ? rcodeReply(query, 'SERVFAIL') : undefined;
    } catch {
      return undefined;
    }
  };

  const handle = (message: Buffer, source: Ip | undefined, transport: Transport): Answer => {
    stats.queries++;
    let query: Query | undefined;
    try {
      if (!source || !allow(source)) {
        const decoded = decodeQuery(message);
        stats.refused++;
        return decoded.ok ? rcodeReply(decoded.query, 'REFUSED') : undefined;
      }
      const key = reuseKey(message, transport);
      const kept = key === undefined ? undefined : reuse.get(key);
      const at = kept && kept.until !== Infinity ? now() : 0;
      if (kept && (kept.until === Infinity || kept.until > at)) {
        if (kept.authoritative) stats.authoritative++;
        else stats.forwarded++;
        const out = Buffer.allocUnsafe(kept.buf.length);
        kept.buf.copy(out);
        out.writeUInt16BE(message.readUInt16BE(0), 0);
        out.writeUInt16BE(kept.buf.readUInt16BE(2) | (message.readUInt16BE(2) & RD_CD), 2);
        const aged = kept.ttls ? Math.floor((at - kept.at) / 1000) : 0;
        if (aged > 0) {
          const { offsets, values } = kept.ttls!;
          for (let i = 0; i < offsets.length; i++) out.writeUInt32BE(Math.max(0, values[i]! - aged), offsets[i]!);
        }
        return out;
      }
      const decoded = decodeQuery(message);
      if (!decoded.ok) {
        stats.malformed++;
        return decoded.reply;
      }
      const q = decoded.query;
      query = q;
      const limit = transport === 'udp' ? udpLimit(q, cap) : 65535;
      if (q.question.plain) {
        const answer = zone.lookup(q.question.name, q.question.type);
        if (answer) {
          stats.authoritative++;
          const out = encodeReply(q, { ...answer, aa: true }, limit);
          if (key !== undefined && answer.answers.length <= 1) keep(key, out, Infinity, true);
          return out;
        }
      }
      if (!forwarder) {
        stats.refused++;
        return rcodeReply(q, 'REFUSED');
      }
      stats.forwarded++;
      const hit = forwarder.cached?.(q);
      if (hit) {
        const out = encodeReply(q, hit, limit);
        const left = minTtl(hit);
        const offsets = key !== undefined && left >= 2 ? recordTtlOffsets(out) : undefined;
        if (key !== undefined && offsets) {
          const t = now();
          keep(key, out, t + (left - 1) * 1000, false, t, offsets);
        }
        return out;
      }
      return forwarder.resolve(q, transport).then(
        (reply) => {
          try {
            return encodeReply(q, reply, limit);
          } catch (err) {
            return failed(q, err);
          }
        },
        (err: unknown) => failed(q, err),
      );
    } catch (err) {
      return failed(query, err);
    }
  };
  return { handle, stats };
}

/** The lowest TTL of a reply's records, seconds (OPT has none). */
function minTtl(reply: Reply): number {
  let min = Infinity;
  for (const list of [reply.answers, reply.authorities, reply.additionals]) {
    for (const a of list) if (a.type !== 'OPT') min = Math.min(min, (a as { ttl?: number }).ttl ?? 0);
  }
  return min === Infinity ? 0 : min;
}
