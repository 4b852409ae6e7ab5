// Many questions to one server, bounded in time: one connected UDP socket, up to `inFlight`
// questions outstanding, each with its own ID (from the CSPRNG, unique among those in flight),
// sent again once when it gets no answer within `timeoutMs`, and asked over TCP (client.ts)
// when the UDP answer is truncated. What `vxnetctl doctor` uses to ask vxnetd's DNS for every
// name the catalog says it must serve: thousands of names take a fraction of a second, and a
// server that answers nothing costs `timeoutMs * tries` once per window, not per name.
//
// An answer is taken only from the server's address and port, with an ID in flight and that
// ID's question (client.ts matchAnswer), as client.ts does. The socket is not connected: Node
// 20 calls a UDP connect's callback even when the connect failed (no route to the server),
// and the next send then throws; each send's own error settles its question instead.
import { randomInt } from 'node:crypto';
import * as dgram from 'node:dgram';
import { formatIp } from '../ipam/addr';
import { encodeQuestion, matchAnswer, query, rcodeOf } from './client';
import type { HostPort } from './upstreams';

export interface BatchQuestion {
  readonly name: string;
  readonly type: string;
}

export interface BatchAnswer {
  /** The rcode's name, or 'TIMEOUT' (no answer), or 'ERROR' (the socket failed: `error` says why). */
  readonly rcode: string;
  /** The answer section's data of the question's type (A: "10.1.0.2"). */
  readonly data: readonly string[];
  readonly error?: string;
}

export interface BatchOptions {
  /** Per attempt; default 1000 ms. */
  readonly timeoutMs?: number;
  /** UDP attempts per question; default 2. */
  readonly tries?: number;
  /** Questions outstanding at once; default 256. */
  readonly inFlight?: number;
}

const TC = 1 << 9;

/** The answers, in the questions' order. Never rejects: a failure is that question's answer. */
export function queryBatch(server: HostPort, questions: readonly BatchQuestion[], options: BatchOptions = {}): Promise<BatchAnswer[]> {
  const timeoutMs = options.timeoutMs ?? 1000;
  const tries = options.tries ?? 2;
  const window = Math.max(1, options.inFlight ?? 256);
  const answers: Array<BatchAnswer | undefined> = new Array(questions.length);
  if (questions.length === 0) return Promise.resolve([]);
  return new Promise((resolve) => {
    const socket = dgram.createSocket(server.ip.family === 4 ? 'udp4' : 'udp6');
    const address = formatIp(server.ip);
    const pending = new Map<number, { index: number; message: Buffer; left: number; timer: NodeJS.Timeout | undefined }>();
    let next = 0;
    let done = 0;
    let closed = false;
    let tcpOutstanding = 0;
    const finishAll = (): void => {
      if (closed) return;
      closed = true;
      for (const p of pending.values()) clearTimeout(p.timer);
      socket.close();
      resolve(answers.map((a) => a ?? { rcode: 'ERROR', data: [], error: 'not asked' }));
    };
    const settle = (index: number, a: BatchAnswer): void => {
      if (answers[index] !== undefined) return;
      answers[index] = a;
      done++;
      if (done === questions.length) finishAll();
      else fill();
    };
    const send = (id: number): void => {
      const p = pending.get(id);
      if (!p || closed) return;
      p.left--;
      socket.send(p.message, server.port, address, (err) => {
        if (!err || pending.get(id) !== p) return;
        clearTimeout(p.timer);
        pending.delete(id);
        settle(p.index, { rcode: 'ERROR', data: [], error: err.message });
      });
      p.timer = setTimeout(() => {
        if (p.left > 0) send(id);
        else {
          pending.delete(id);
          settle(p.index, { rcode: 'TIMEOUT', data: [] });
        }
      }, timeoutMs);
    };
    const fill = (): void => {
      while (!closed && pending.size + tcpOutstanding < window && next < questions.length) {
        const index = next++;
        const q = questions[index];
        let id = randomInt(0, 0x10000);
        while (pending.has(id)) id = randomInt(0, 0x10000);
        pending.set(id, { index, message: encodeQuestion(id, q.name, q.type), left: tries, timer: undefined });
        send(id);
      }
    };
    socket.on('message', (buf, rinfo) => {
      if (buf.length < 2 || rinfo.port !== server.port || rinfo.address !== address) return;
      const id = buf.readUInt16BE(0);
      const p = pending.get(id);
      if (!p) return;
      const q = questions[p.index];
      const packet = matchAnswer(buf, id, q.name, q.type);
      if (!packet) return;
      clearTimeout(p.timer);
      pending.delete(id);
      if ((packet.flags ?? 0) & TC) {
        tcpOutstanding++;
        query(server, q.name, q.type, { tcp: true, timeoutMs }).then(
          (r) => settle(p.index, { rcode: r.rcode, data: dataOf(r.answers, q.type) }),
          (err: Error) => settle(p.index, { rcode: 'TIMEOUT', data: [], error: err.message }),
        ).finally(() => { tcpOutstanding--; fill(); });
        return;
      }
      settle(p.index, { rcode: rcodeOf(packet), data: dataOf(packet.answers ?? [], q.type) });
    });
    socket.on('error', (err: Error) => {
      const why = err.message;
      for (const [id, p] of pending) {
        clearTimeout(p.timer);
        pending.delete(id);
        answers[p.index] ??= { rcode: 'ERROR', data: [], error: why };
        done++;
      }
      while (next < questions.length) { answers[next++] ??= { rcode: 'ERROR', data: [], error: why }; done++; }
      if (tcpOutstanding === 0) finishAll();
    });
    socket.bind(0, () => fill());
  });
}

function dataOf(records: ReadonlyArray<{ type: string; data?: unknown }>, type: string): string[] {
  return records.filter((r) => r.type === type && typeof r.data === 'string').map((r) => r.data as string);
}
