// One DNS question asked of one server, as a stub resolver asks it: over UDP (EDNS, 1232
// bytes), again over TCP when the answer comes back truncated. What `vxnetctl dns query` uses.
//
// Only an answer from the server's address and port, with the ID sent (from the CSPRNG) and
// the question asked, is taken: anything else arriving on the socket is ignored rather than
// believed, as the forwarder does. A lost UDP datagram is sent again once before giving up.
//
// Every way the socket can fail is one IoFailure naming the server and why (socketFailure):
// the connect itself (no route: Node 20 hands the error to connect's callback, and a send
// after it would throw), a send, and the ICMP errors a connected socket reports as 'error'
// (port unreachable: ECONNREFUSED; host or network unreachable after a failed ARP or a
// router's ICMP: EHOSTUNREACH, ENETUNREACH).
import { randomInt } from 'node:crypto';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as dnsPacket from 'dns-packet';
import type { Answer, Packet } from 'dns-packet';
import { formatIp } from '../ipam/addr';
import { IoFailure } from '../lib/errors';
import { EDNS_UDP_SIZE } from './wire';
import { type HostPort, formatHostPort } from './upstreams';

export type Transport = 'udp' | 'tcp';

export interface QueryOptions {
  /** Per attempt; default 2000 ms. */
  readonly timeoutMs?: number;
  /** UDP attempts before giving up; default 2. */
  readonly udpTries?: number;
  /** Skip UDP (dig +tcp). */
  readonly tcp?: boolean;
}

export interface QueryResult {
  readonly server: string;
  /** How the answer came (tcp after a truncated UDP answer). */
  readonly transport: Transport;
  readonly truncatedOverUdp: boolean;
  readonly rcode: string;
  readonly flags: string[];
  readonly answers: Answer[];
  readonly authorities: Answer[];
  readonly additionals: Answer[];
  readonly elapsedMs: number;
}

const MAX_TCP_MESSAGE = 65535;
const TC = 1 << 9;

/** The query's wire form: RD set, an OPT record offering 1232 bytes (RFC 9715's safe size). */
export function encodeQuestion(id: number, name: string, type: string): Buffer {
  return dnsPacket.encode({
    type: 'query', id, flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: type as dnsPacket.RecordType, class: 'IN' }],
    additionals: [{ name: '.', type: 'OPT', udpPayloadSize: EDNS_UDP_SIZE, extendedRcode: 0, ednsVersion: 0, flags: 0, options: [] } as unknown as Answer],
  });
}

/** The answer to (id, name, type) in `buf`, or undefined when `buf` is not that answer. */
export function matchAnswer(buf: Buffer, id: number, name: string, type: string): Packet | undefined {
  let p: Packet;
  try {
    p = dnsPacket.decode(buf);
  } catch {
    return undefined;
  }
  const q = p.questions?.[0];
  if (p.id !== id || p.type !== 'response' || p.questions?.length !== 1 || !q) return undefined;
  const strip = (n: string): string => n.toLowerCase().replace(/\.$/, '');
  if (strip(q.name) !== strip(name) || q.type !== type) return undefined;
  return p;
}

// dns-packet reads QR into `type` and leaves it out of `flags`.
const FLAG_BITS: ReadonlyArray<[string, number]> = [['aa', 1 << 10], ['tc', TC], ['rd', 1 << 8], ['ra', 1 << 7], ['ad', 1 << 5], ['cd', 1 << 4]];

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET', 'NXRRSET', 'NOTAUTH', 'NOTZONE'];

/** The rcode's name: the header's 4 bits and, with EDNS, the OPT record's upper 8 (BADVERS is 16). */
export function rcodeOf(p: Packet): string {
  const opt = (p.additionals ?? []).find((a) => a.type === 'OPT') as { extendedRcode?: number } | undefined;
  const code = ((opt?.extendedRcode ?? 0) << 4) | ((p.flags ?? 0) & 0xf);
  return code === 16 ? 'BADVERS' : RCODES[code] ?? `RCODE${code}`;
}

function result(p: Packet, server: HostPort, transport: Transport, truncatedOverUdp: boolean, started: bigint): QueryResult {
  const flags = p.flags ?? 0;
  return {
    server: formatHostPort(server), transport, truncatedOverUdp,
    rcode: rcodeOf(p),
    flags: [...(p.type === 'response' ? ['qr'] : []), ...FLAG_BITS.filter(([, bit]) => flags & bit).map(([f]) => f)],
    answers: p.answers ?? [],
    authorities: p.authorities ?? [],
    additionals: (p.additionals ?? []).filter((a) => a.type !== 'OPT'),
    elapsedMs: Number(process.hrtime.bigint() - started) / 1e6,
  };
}

const SOCKET_ERRORS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'nothing listens there (connection refused)',
  ENETUNREACH: 'no route to it (network unreachable)',
  EHOSTUNREACH: 'it cannot be reached (host unreachable)',
  EACCES: 'a route or a firewall forbids it (permission denied)',
  EPERM: 'a firewall forbids it (operation not permitted)',
  EINVAL: 'the route to it is a blackhole, or the address cannot be used here (invalid argument)',
  EADDRNOTAVAIL: 'the address cannot be used from here (address not available)',
};

/** A socket error as the IoFailure `dns query` prints: the server and why, by errno. Pure. */
export function socketFailure(server: HostPort, err: NodeJS.ErrnoException, transport: Transport = 'udp'): IoFailure {
  const where = formatHostPort(server);
  if (transport === 'udp' && err.code === 'ECONNREFUSED') return new IoFailure(`nothing listens on ${where} (connection refused over UDP)`);
  const why = err.code !== undefined ? SOCKET_ERRORS[err.code] : undefined;
  return new IoFailure(`dns query to ${where}${transport === 'tcp' ? ' over TCP' : ''}: ${why !== undefined ? `${why}, ${err.code}` : err.message}`);
}

function udpExchange(server: HostPort, message: Buffer, accept: (buf: Buffer) => Packet | undefined, timeoutMs: number, tries: number): Promise<Packet> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(server.ip.family === 4 ? 'udp4' : 'udp6');
    const address = formatIp(server.ip);
    let left = tries;
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (err: Error | undefined, p?: Packet): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try { socket.close(); } catch { /* already closed */ }
      if (err) reject(err); else resolve(p as Packet);
    };
    const fail = (err: NodeJS.ErrnoException): void => finish(socketFailure(server, err));
    const send = (): void => {
      if (done) return;
      left--;
      try {
        socket.send(message, (err) => { if (err) fail(err); });
      } catch (err) {
        fail(err as NodeJS.ErrnoException);
        return;
      }
      timer = setTimeout(() => {
        if (left > 0) send();
        else finish(new IoFailure(`no answer from ${formatHostPort(server)} within ${timeoutMs} ms (${tries} ${tries === 1 ? 'try' : 'tries'} over UDP)`));
      }, timeoutMs);
    };
    socket.on('message', (buf, rinfo) => {
      if (rinfo.port !== server.port || rinfo.address !== address) return;
      const p = accept(buf);
      if (p) finish(undefined, p);
    });
    // Connected, so the kernel drops datagrams from anyone else and an ICMP error (port, host
    // or network unreachable) comes back as an 'error' at once instead of a timeout.
    socket.on('error', fail);
    // Node 20 passes a failed connect's error to this callback (typed without arguments).
    const connect = socket.connect.bind(socket) as (port: number, address: string, callback: (err?: NodeJS.ErrnoException) => void) => void;
    connect(server.port, address, (err) => { if (err) fail(err); else send(); });
  });
}

function tcpExchange(server: HostPort, message: Buffer, accept: (buf: Buffer) => Packet | undefined, timeoutMs: number): Promise<Packet> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: formatIp(server.ip), port: server.port });
    let buffered = Buffer.alloc(0);
    let done = false;
    const finish = (err: Error | undefined, p?: Packet): void => {
      if (done) return;
      done = true;
      socket.destroy();
      if (err) reject(err); else resolve(p as Packet);
    };
    const fail = (why: string): void => finish(new IoFailure(`dns query to ${formatHostPort(server)} over TCP: ${why}`));
    socket.setTimeout(timeoutMs, () => fail(`no answer within ${timeoutMs} ms`));
    socket.on('connect', () => {
      const frame = Buffer.alloc(2 + message.length);
      frame.writeUInt16BE(message.length, 0);
      message.copy(frame, 2);
      socket.write(frame);
    });
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const len = buffered.readUInt16BE(0);
        if (len > MAX_TCP_MESSAGE) return fail('oversized frame');
        if (buffered.length < 2 + len) return;
        const p = accept(buffered.subarray(2, 2 + len));
        if (p) return finish(undefined, p);
        buffered = buffered.subarray(2 + len);
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(socketFailure(server, err, 'tcp')));
    socket.on('close', () => fail('connection closed before an answer'));
  });
}

/** Asks `server` for (name, type) class IN; rejects with IoFailure when no answer comes. */
export async function query(server: HostPort, name: string, type: string, options: QueryOptions = {}): Promise<QueryResult> {
  const timeoutMs = options.timeoutMs ?? 2000;
  const started = process.hrtime.bigint();
  const id = randomInt(0, 0x10000);
  const message = encodeQuestion(id, name, type);
  const accept = (buf: Buffer): Packet | undefined => matchAnswer(buf, id, name, type);
  if (!options.tcp) {
    const p = await udpExchange(server, message, accept, timeoutMs, options.udpTries ?? 2);
    if (!((p.flags ?? 0) & TC)) return result(p, server, 'udp', false, started);
  }
  const p = await tcpExchange(server, message, accept, timeoutMs);
  return result(p, server, 'tcp', !options.tcp, started);
}
