// The per-host forwarder (Spartan's job): names outside vxnet's zone go to upstreams, two of
// them raced per query, the first valid answer wins; a cache in front.
//
// Why race: Mesos-DNS forwarded sequentially, so one dead upstream cost every lookup its
// 5 s timeout. Here each query goes to two upstreams at once (UpstreamPool picks them, failures
// demote), and the first answer that matches (the upstream's address and port, the ID, the
// question) is the one returned; the other attempt still runs to its end, so its success or
// failure is counted.
// UDP: one socket per address family, bound to an ephemeral port, with a 16-bit ID per upstream
// query from the CSPRNG (an off-path attacker must guess it to spoof an answer) (the client's ID is restored on the way back). An answer with TC is fetched
// again over TCP from the same upstream, and so is every query that came over TCP (2-byte
// framing, one connection per exchange). The client's message is forwarded as it came,
// with only the ID rewritten: EDNS options and flags reach the upstream untouched.
import { randomInt } from 'node:crypto';
import * as dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as dnsPacket from 'dns-packet';
import type { Answer } from 'dns-packet';
import { formatIp } from '../ipam/addr';
import { Logger } from '../lib/log';
import { ReplyCache, cacheKey } from './cache';
import { HostPort, UpstreamPool, formatHostPort, parseResolvConf, withoutSelf } from './upstreams';
import { Query, Rcode, Reply } from './wire';

export interface ForwarderOptions {
  readonly upstreams: readonly HostPort[];
  /** Per attempt (one upstream, one transport); default 2000 ms. */
  readonly timeoutMs?: number;
  /** Forwarded queries in flight at most (Spartan: 1024); beyond, SERVFAIL at once. */
  readonly maxInFlight?: number;
  /** Default: a ReplyCache with its defaults. */
  readonly cache?: ReplyCache;
  readonly random?: () => number;
  readonly log?: Logger;
}

export type Transport = 'udp' | 'tcp';

interface Pending {
  readonly question: Buffer;
  resolve(buf: Buffer): void;
}

class AttemptFailed extends Error {}

export const FORWARD_DEFAULTS = { timeoutMs: 2000, maxInFlight: 1024 } as const;
const MAX_TCP_MESSAGE = 65535;

export class Forwarder {
  readonly pool: UpstreamPool;
  readonly cache: ReplyCache;
  private readonly timeoutMs: number;
  private readonly maxInFlight: number;
  private readonly log: Logger | undefined;
  private readonly random: () => number;
  private sockets: Partial<Record<4 | 6, dgram.Socket>> = {};
  private readonly pending = new Map<string, Pending>();
  private readonly tcpSockets = new Set<net.Socket>();
  private inFlight = 0;
  private stopped = false;
  /** Per upstream (the pool's order), since start: attempts sent, attempts failed (metrics). */
  private readonly sent: number[];
  private readonly failed: number[];

  constructor(options: ForwarderOptions) {
    this.random = options.random ?? Math.random;
    this.pool = new UpstreamPool(options.upstreams, this.random);
    this.cache = options.cache ?? new ReplyCache();
    this.timeoutMs = options.timeoutMs ?? FORWARD_DEFAULTS.timeoutMs;
    this.maxInFlight = options.maxInFlight ?? FORWARD_DEFAULTS.maxInFlight;
    this.log = options.log;
    this.sent = options.upstreams.map(() => 0);
    this.failed = options.upstreams.map(() => 0);
  }

  /** Attempts per upstream since this forwarder was made: sent, and failed (timeout, SERVFAIL, REFUSED, an error). */
  upstreamTotals(): Array<{ upstream: string; sent: number; failed: number }> {
    return this.pool.upstreams.map((u, i) => ({ upstream: formatHostPort(u), sent: this.sent[i]!, failed: this.failed[i]! }));
  }

  /** Opens the UDP sockets for the upstreams' address families. */
  async start(): Promise<void> {
    this.stopped = false;
    const families = new Set(this.pool.upstreams.map((u) => u.ip.family));
    for (const family of families) {
      const socket = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
      socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
      socket.on('error', (err) => this.log?.warn('dns forwarder socket error', { family, error: err.message }));
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        // exclusive: in a `cluster` worker a shared socket (Node's default there) would hand the
        // upstreams' answers to whichever worker reads first, not the one waiting for them.
        socket.bind({ port: 0, address: family === 4 ? '0.0.0.0' : '::', exclusive: true }, () => { socket.off('error', reject); resolve(); });
      });
      this.sockets[family] = socket;
    }
  }

  /** Closes the sockets; queries in flight end with SERVFAIL. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const p of this.pending.values()) p.resolve(Buffer.alloc(0));
    this.pending.clear();
    for (const s of this.tcpSockets) s.destroy();
    const sockets = Object.values(this.sockets);
    this.sockets = {};
    await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  /** The answer to `query` (which came over `transport`), from the cache or the upstreams. */
  /** The cached answer to `query`, if any: no promise, so a cache hit costs what a zone answer does. */
  cached(query: Query): Reply | undefined {
    return this.cache.get(cacheKey(query.question, query.questionBytes, query.edns?.dnssecOk ?? false, query.cd));
  }

  async resolve(query: Query, transport: Transport): Promise<Reply> {
    const key = cacheKey(query.question, query.questionBytes, query.edns?.dnssecOk ?? false, query.cd);
    const cached = this.cache.get(key);
    if (cached) return cached;
    const picks = this.pool.pick();
    if (picks.length === 0 || this.stopped || this.inFlight >= this.maxInFlight) return servfail();
    this.inFlight++;
    try {
      const answer = await Promise.any(picks.map((i) => this.attempt(i, query, transport)));
      if (answer.rcode === 'NOERROR' || answer.rcode === 'NXDOMAIN') this.cache.put(key, answer.reply, answer.bytes);
      return answer.reply;
    } catch {
      return servfail();
    } finally {
      this.inFlight--;
    }
  }

  /** One upstream: UDP (then TCP when truncated) or TCP; demotes or restores it. */
  private async attempt(index: number, query: Query, transport: Transport): Promise<{ reply: Reply; rcode: Rcode; bytes: number }> {
    const upstream = this.pool.upstreams[index];
    this.sent[index]!++;
    try {
      let buf = transport === 'udp' ? await this.exchangeUdp(upstream, query) : await this.exchangeTcp(upstream, query);
      let packet = decodeAnswer(buf);
      if (packet.flag_tc && transport === 'udp') {
        buf = await this.exchangeTcp(upstream, query);
        packet = decodeAnswer(buf);
      }
      const rcode = String((packet as { rcode?: unknown }).rcode);
      if (rcode === 'SERVFAIL' || rcode === 'REFUSED') throw new AttemptFailed(`answered ${rcode}`);
      this.pool.succeed(index);
      const known: Rcode = rcode === 'NOERROR' || rcode === 'NXDOMAIN' || rcode === 'FORMERR' || rcode === 'NOTIMP' ? rcode : 'SERVFAIL';
      return { rcode: known, bytes: buf.length, reply: { rcode: known, aa: false, answers: records(packet.answers), authorities: records(packet.authorities), additionals: records(packet.additionals) } };
    } catch (err) {
      this.failed[index]!++;
      this.pool.fail(index);
      this.log?.debug('dns upstream failed', { upstream: formatHostPort(upstream), error: (err as Error).message });
      throw err;
    }
  }

  private exchangeUdp(upstream: HostPort, query: Query): Promise<Buffer> {
    const socket = this.sockets[upstream.ip.family];
    if (!socket) return Promise.reject(new AttemptFailed('forwarder not started'));
    const address = formatIp(upstream.ip);
    let id = 0, key = '';
    for (let tries = 0; tries < 8; tries++) {
      id = randomInt(0x10000);
      key = `${address}|${upstream.port}|${id}`;
      if (!this.pending.has(key)) break;
    }
    if (this.pending.has(key)) return Promise.reject(new AttemptFailed('no free query ID'));
    const out = Buffer.from(query.raw);
    out.writeUInt16BE(id, 0);
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(key);
        reject(new AttemptFailed(`no answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(key, {
        question: query.questionBytes,
        resolve: (buf) => {
          clearTimeout(timer);
          this.pending.delete(key);
          if (buf.length === 0) reject(new AttemptFailed('forwarder stopped'));
          else { buf.writeUInt16BE(query.id, 0); resolve(buf); }
        },
      });
      socket.send(out, upstream.port, address, (err) => {
        if (!err) return;
        clearTimeout(timer);
        this.pending.delete(key);
        reject(new AttemptFailed(`send: ${err.message}`));
      });
    });
  }

  /** An answer counts only from the upstream asked, with the ID given and the same question. */
  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (msg.length < 12) return;
    const key = `${rinfo.address}|${rinfo.port}|${msg.readUInt16BE(0)}`;
    const p = this.pending.get(key);
    if (!p || !(msg.readUInt16BE(2) & 0x8000) || msg.readUInt16BE(4) !== 1) return;
    if (!sameQuestion(msg, p.question)) return;
    p.resolve(msg);
  }

  private exchangeTcp(upstream: HostPort, query: Query): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const socket = net.connect({ host: formatIp(upstream.ip), port: upstream.port });
      this.tcpSockets.add(socket);
      let chunks = Buffer.alloc(0);
      let done = false;
      const finish = (err: Error | undefined, buf?: Buffer): void => {
        if (done) return;
        done = true;
        this.tcpSockets.delete(socket);
        socket.destroy();
        if (err) reject(err);
        else resolve(buf!);
      };
      socket.setTimeout(this.timeoutMs, () => finish(new AttemptFailed(`no TCP answer within ${this.timeoutMs} ms`)));
      socket.on('error', (err) => finish(new AttemptFailed(`tcp: ${err.message}`)));
      socket.on('close', () => finish(new AttemptFailed('tcp: closed before an answer')));
      socket.on('connect', () => {
        const frame = Buffer.alloc(2 + query.raw.length);
        frame.writeUInt16BE(query.raw.length, 0);
        query.raw.copy(frame, 2);
        socket.write(frame);
      });
      socket.on('data', (data) => {
        chunks = Buffer.concat([chunks, data]);
        while (chunks.length >= 2) {
          const len = chunks.readUInt16BE(0);
          if (len > MAX_TCP_MESSAGE) return finish(new AttemptFailed('tcp: oversized frame'));
          if (chunks.length < 2 + len) return;
          const msg = Buffer.from(chunks.subarray(2, 2 + len));
          chunks = chunks.subarray(2 + len);
          if (msg.length >= 12 && msg.readUInt16BE(0) === query.id && msg.readUInt16BE(2) & 0x8000 && sameQuestion(msg, query.questionBytes)) {
            return finish(undefined, msg);
          }
        }
      });
    });
  }
}

/**
 * The host's upstreams: the nameservers of `path` (read once, at start: a resolv.conf rewritten
 * later to point at vxnet must not make it forward to itself) minus the server's own listening
 * addresses. None when the file is missing or unreadable.
 */
export function hostUpstreams(listening: readonly HostPort[], path = '/etc/resolv.conf'): HostPort[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return withoutSelf(parseResolvConf(text), listening);
}

function servfail(): Reply {
  return { rcode: 'SERVFAIL', aa: false, answers: [], authorities: [], additionals: [] };
}

function decodeAnswer(buf: Buffer): dnsPacket.DecodedPacket {
  try {
    return dnsPacket.decode(buf);
  } catch (err) {
    throw new AttemptFailed(`undecodable answer: ${(err as Error).message}`);
  }
}

/** The upstream's records, without its OPT (the client gets vxnet's). */
const records = (list: readonly Answer[] | undefined): Answer[] => (list ?? []).filter((a) => a.type !== 'OPT');

/** True when `msg` holds exactly the question `question`: the name compared without case, type and class byte for byte. */
function sameQuestion(msg: Buffer, question: Buffer): boolean {
  if (msg.length < 12 + question.length) return false;
  const nameEnd = question.length - 4;
  for (let i = 0; i < question.length; i++) {
    let a = msg[12 + i], b = question[i];
    if (i < nameEnd) {
      if (a >= 0x41 && a <= 0x5a) a += 0x20;
      if (b >= 0x41 && b <= 0x5a) b += 0x20;
    }
    if (a !== b) return false;
  }
  return true;
}
