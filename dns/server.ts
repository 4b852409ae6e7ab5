// The DNS listeners: UDP and TCP on each ADDR:PORT, every message handed to the handler
// (handler.ts), its answer sent back. Only sockets and their limits live here.
//
// TCP (RFC 7766): 2-byte length framing, several queries per connection answered as each is
// ready (pipelined, in any order), at most `maxPipelined` in flight per connection (reading
// pauses beyond), an idle timeout, a maximum message size (a larger length prefix closes the
// connection), a maximum number of connections (the kernel accepts, Node closes the excess at
// once), and a connection whose peer does not read its answers is dropped rather than buffered.
// A message the handler answers with nothing closes a TCP connection: the stream is not DNS.
// Node 20's dgram has no SO_REUSEPORT (22.12 has), so one process owns each UDP socket.
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { formatIp } from '../ipam/addr';
import { IoFailure } from '../lib/errors';
import { Logger } from '../lib/log';
import type { Handler } from './handler';
import { sourceIp } from './handler';
import { HostPort, formatHostPort } from './upstreams';

export interface TcpLimits {
  /** Milliseconds without a complete query before the connection is closed; default 10 s. */
  readonly idleMs?: number;
  readonly maxConnections?: number;
  /** Largest query accepted, bytes; default 4096 (queries are small; answers are not bounded by it). */
  readonly maxMessage?: number;
  readonly maxPipelined?: number;
}

export interface DnsServerOptions {
  readonly listen: readonly HostPort[];
  readonly handler: Handler;
  readonly tcp?: TcpLimits;
  /**
   * In a `cluster` worker: share the primary's sockets with the other workers (Node 20 has no
   * SO_REUSEPORT, so this is how more than one core serves one address). Default false: the
   * sockets are this process's own, and a second server on the same port fails.
   */
  readonly shared?: boolean;
  readonly log?: Logger;
}

export const TCP_DEFAULTS = { idleMs: 10_000, maxConnections: 256, maxMessage: 4096, maxPipelined: 32 } as const;
/** Answers queued to a TCP peer that does not read, bytes, before it is dropped. */
const MAX_UNREAD = 1 << 20;

export class DnsServer {
  private readonly udp: dgram.Socket[] = [];
  private readonly tcp: net.Server[] = [];
  private readonly connections = new Set<net.Socket>();
  private bound: HostPort[] = [];
  private readonly limits: Required<TcpLimits>;

  constructor(private readonly options: DnsServerOptions) {
    this.limits = { ...TCP_DEFAULTS, ...options.tcp };
  }

  /** The addresses actually listened on (port 0 in `listen` becomes the port the kernel chose). */
  addresses(): HostPort[] {
    return this.bound.slice();
  }

  /** Binds every address, UDP and TCP on the same port; on any failure, closes what it opened. */
  async start(): Promise<void> {
    try {
      for (const at of this.options.listen) this.bound.push(await this.listenOn(at));
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    for (const c of this.connections) c.destroy();
    this.connections.clear();
    const closing = [
      ...this.udp.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
      ...this.tcp.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
    ];
    this.udp.length = 0;
    this.tcp.length = 0;
    this.bound = [];
    await Promise.all(closing);
  }

  private async listenOn(at: HostPort): Promise<HostPort> {
    // With port 0, TCP must take the port the kernel gave UDP; another process may hold it.
    for (let tries = 0; ; tries++) {
      const udp = await this.bindUdp(at);
      const port = udp.address().port;
      try {
        const tcp = await this.listenTcp({ ip: at.ip, port });
        this.udp.push(udp);
        this.tcp.push(tcp);
        return { ip: at.ip, port };
      } catch (err) {
        await new Promise<void>((resolve) => udp.close(() => resolve()));
        if (at.port !== 0 || tries >= 9) throw err;
      }
    }
  }

  private bindUdp(at: HostPort): Promise<dgram.Socket> {
    // Answers go to the address a query came from, always a literal: the identity `lookup`
    // spares each send dns.lookup's deferral to the next tick. Sends without a callback let
    // Node use uv_udp_try_send with no request object; a failed send (the client's loss, like
    // a dropped packet) surfaces as an 'error' event, logged at debug.
    const family = at.ip.family;
    const socket = dgram.createSocket({
      type: family === 4 ? 'udp4' : 'udp6',
      lookup: (address: string, _opts: unknown, cb: (err: Error | null, address: string, family: number) => void) => cb(null, address, family),
    } as dgram.SocketOptions);
    const { handler, log } = this.options;
    // A forwarded answer may arrive after stop() closed the socket, when send throws.
    const sendTo = (buf: Buffer, rinfo: dgram.RemoteInfo): void => {
      try {
        socket.send(buf, rinfo.port, rinfo.address);
      } catch (err) {
        log?.debug('dns udp send failed', { error: (err as Error).message });
      }
    };
    socket.on('message', (msg, rinfo) => {
      const reply = handler.handle(msg, sourceIp(rinfo.address), 'udp');
      if (reply instanceof Promise) void reply.then((buf) => { if (buf) sendTo(buf, rinfo); });
      else if (reply) sendTo(reply, rinfo);
    });
    return new Promise((resolve, reject) => {
      socket.once('error', (err) => {
        socket.close();
        reject(listenFailure(at, 'udp', err));
      });
      socket.bind({ port: at.port, address: formatIp(at.ip), exclusive: !this.options.shared }, () => {
        socket.removeAllListeners('error');
        // After the bind, errors (a send to a client gone, ...) are logged, never fatal.
        socket.on('error', (err) => log?.debug('dns udp socket error', { error: err.message }));
        resolve(socket);
      });
    });
  }

  private listenTcp(at: HostPort): Promise<net.Server> {
    const server = net.createServer((socket) => this.serveConnection(socket));
    server.maxConnections = this.limits.maxConnections;
    server.on('error', (err) => this.options.log?.warn('dns tcp listener error', { error: err.message }));
    return new Promise((resolve, reject) => {
      const failed = (err: Error): void => reject(listenFailure(at, 'tcp', err));
      server.once('error', failed);
      server.listen({ host: formatIp(at.ip), port: at.port, exclusive: !this.options.shared }, () => {
        server.off('error', failed);
        resolve(server);
      });
    });
  }

  private serveConnection(socket: net.Socket): void {
    const { idleMs, maxMessage, maxPipelined } = this.limits;
    const { handler } = this.options;
    const source = sourceIp(socket.remoteAddress ?? '');
    this.connections.add(socket);
    let pending = Buffer.alloc(0);
    let inFlight = 0;
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      this.connections.delete(socket);
      socket.destroy();
    };
    socket.on('close', close);
    socket.on('error', close);
    socket.setTimeout(idleMs, close);
    socket.setNoDelay(true);

    const send = (reply: Buffer | undefined): void => {
      inFlight--;
      if (closed) return;
      if (!reply) return close();
      const frame = Buffer.allocUnsafe(2 + reply.length);
      frame.writeUInt16BE(reply.length, 0);
      reply.copy(frame, 2);
      socket.write(frame);
      if (socket.writableLength > MAX_UNREAD) return close();
      if (inFlight < maxPipelined && socket.isPaused()) socket.resume();
    };

    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (!closed && pending.length >= 2) {
        const length = pending.readUInt16BE(0);
        if (length === 0 || length > maxMessage) return close();
        if (pending.length < 2 + length) break;
        const message = Buffer.from(pending.subarray(2, 2 + length));
        pending = pending.subarray(2 + length);
        inFlight++;
        const reply = handler.handle(message, source, 'tcp');
        if (reply instanceof Promise) void reply.then(send);
        else send(reply);
      }
      if (!closed && inFlight >= maxPipelined) socket.pause();
    });
  }
}

function listenFailure(at: HostPort, transport: 'udp' | 'tcp', err: Error): IoFailure {
  const code = (err as NodeJS.ErrnoException).code ?? err.message;
  return new IoFailure(`dns: cannot listen on ${formatHostPort(at)}/${transport}: ${code}`, err.message);
}
