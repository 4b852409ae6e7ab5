// A stub upstream DNS server on loopback (UDP and TCP on one port) whose behaviour a test
// chooses: answer, stay mute, SERVFAIL, or truncate over UDP. Counts what it received.
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as dnsPacket from 'dns-packet';
import type { Answer } from 'dns-packet';
import type { Test } from 'tap';

export type StubMode = 'answer' | 'mute' | 'servfail' | 'truncate' | 'wrong-question' | 'nxdomain';

export interface Stub {
  readonly port: number;
  mode: StubMode;
  udpReceived: number;
  tcpReceived: number;
  close(): Promise<void>;
}

/** The records a stub answers with for `name`: `count` A records with `ttl`. */
export function stubRecords(name: string, count: number, ttl: number): Answer[] {
  return Array.from({ length: count }, (_, i) => ({ name, type: 'A', class: 'IN', ttl, data: `192.0.2.${i % 250}` }) as Answer);
}

export async function startStub(t: Test, mode: StubMode, opts: { records?: number; ttl?: number; address?: string } = {}): Promise<Stub> {
  const address = opts.address ?? '127.0.0.1';
  const records = opts.records ?? 1;
  const ttl = opts.ttl ?? 60;
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => udp.bind(0, address, resolve));
  const port = udp.address().port;
  const tcp = net.createServer();
  const conns = new Set<net.Socket>();
  await new Promise<void>((resolve, reject) => { tcp.once('error', reject); tcp.listen(port, address, () => resolve()); });
  const stub: Stub = { port, mode, udpReceived: 0, tcpReceived: 0, close: async () => {
    for (const c of conns) c.destroy();
    await Promise.all([new Promise<void>((r) => udp.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]);
  } };
  t.teardown(() => stub.close().catch(() => undefined));

  const answer = (msg: Buffer, overTcp: boolean): Buffer | undefined => {
    const q = dnsPacket.decode(msg);
    const question = q.questions![0];
    const base = { type: 'response' as const, id: q.id, questions: [question] };
    switch (stub.mode) {
      case 'mute': return undefined;
      case 'servfail': return dnsPacket.encode({ ...base, flags: 2 });
      case 'nxdomain': return dnsPacket.encode({ ...base, flags: 3, authorities: [{ name: 'example', type: 'SOA', ttl: 30, data: { mname: 'ns.example', rname: 'h.example', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 10 } }] });
      case 'wrong-question': return dnsPacket.encode({ ...base, questions: [{ ...question, name: `x${question.name}` }], answers: stubRecords(question.name, 1, ttl) });
      case 'truncate':
        if (!overTcp) return dnsPacket.encode({ ...base, flags: dnsPacket.TRUNCATED_RESPONSE });
        return dnsPacket.encode({ ...base, answers: stubRecords(question.name, records, ttl) });
      default: return dnsPacket.encode({ ...base, answers: stubRecords(question.name, records, ttl) });
    }
  };
  udp.on('message', (msg, rinfo) => {
    stub.udpReceived++;
    const out = answer(msg, false);
    if (out) udp.send(out, rinfo.port, rinfo.address);
  });
  tcp.on('connection', (c) => {
    conns.add(c);
    c.on('close', () => conns.delete(c));
    c.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        stub.tcpReceived++;
        const out = answer(msg, true);
        if (out) { const len = Buffer.alloc(2); len.writeUInt16BE(out.length); c.write(Buffer.concat([len, out])); }
      }
    });
  });
  return stub;
}
