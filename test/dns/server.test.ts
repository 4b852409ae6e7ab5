// dns/server.ts + handler.ts on loopback, asked by real `dig` (bind9-dnsutils) and raw sockets:
// zone answers over UDP and TCP, TC then TCP for a large answer, forwarding, refusal, TCP
// pipelining and limits, malformed packets.
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as dnsPacket from 'dns-packet';
import t, { Test } from 'tap';
import { Ip, parseCidr, parseIp } from '../../ipam/addr';
import { Forwarder } from '../../dns/forwarder';
import { allowSources, createHandler, Handler, HandlerOptions, sourceIp } from '../../dns/handler';
import { DnsServer, TcpLimits } from '../../dns/server';
import type { Query, Reply } from '../../dns/wire';
import { Zone } from '../../dns/zone';
import { exec } from '../helpers/sh';
import { startStub } from './helpers/stub';

const ip = (text: string): Ip => parseIp(text)!;
const LO = '127.0.0.1';

function testZone(): Zone {
  const zone = new Zone({ nameserverAddresses: [ip(LO)] });
  zone.set('w1', { name: 'web-1', network: 'blue', service: 'web', addresses: [ip('10.1.0.2'), ip('fd00::2')], ports: [{ port: 8080, protocol: 'tcp', name: 'http' }] });
  zone.set('w2', { name: 'web-2', network: 'blue', service: 'web', addresses: [ip('10.1.0.3')], ports: [{ port: 8080, protocol: 'tcp', name: 'http' }] });
  for (let i = 0; i < 100; i++) {
    zone.set(`b${i}`, { name: `big-${i}`, network: 'blue', service: 'big', addresses: [{ family: 4, value: 0x0a020000n + BigInt(i) }], ports: [] });
  }
  return zone;
}

async function serve(t: Test, opts: Partial<HandlerOptions> = {}, tcp: TcpLimits = {}): Promise<{ port: number; handler: Handler }> {
  const handler = createHandler({ zone: testZone(), ...opts });
  const server = new DnsServer({ listen: [{ ip: ip(LO), port: 0 }], handler, tcp });
  await server.start();
  t.teardown(() => server.stop());
  return { port: server.addresses()[0].port, handler };
}

async function dig(port: number, ...args: string[]): Promise<string> {
  const r = await exec('dig', [`@${LO}`, '-p', String(port), '+time=2', '+tries=1', ...args], { timeoutMs: 10_000 });
  if (r.code !== 0 && r.code !== 9) throw new Error(`dig ${args.join(' ')}: exit ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}
const status = (out: string): string | undefined => /status: (\w+)/.exec(out)?.[1];
const flags = (out: string): string[] => (/flags: ([a-z ]+);/.exec(out)?.[1] ?? '').trim().split(/\s+/);
const answers = (out: string): string[] => out.trim().split('\n').filter((l) => l && !l.startsWith(';')).sort();

t.test('dig over UDP and TCP: A, AAAA, SRV, PTR, SOA, NXDOMAIN and NODATA', async (t) => {
  const { port } = await serve(t);
  for (const tcp of [[], ['+tcp']]) {
    const how = tcp.length ? 'TCP' : 'UDP';
    t.same(answers(await dig(port, ...tcp, '+short', 'web-1.vxnet', 'A')), ['10.1.0.2'], `${how}: A`);
    t.same(answers(await dig(port, ...tcp, '+short', 'WEB-1.Blue.Vxnet.', 'AAAA')), ['fd00::2'], `${how}: AAAA, any case`);
    t.same(answers(await dig(port, ...tcp, '+short', 'web.vxnet')), ['10.1.0.2', '10.1.0.3'], `${how}: the service`);
    t.same(answers(await dig(port, ...tcp, '+short', '_web._tcp.vxnet', 'SRV')), ['0 1 8080 web-1.vxnet.', '0 1 8080 web-2.vxnet.'], `${how}: SRV`);
    t.same(answers(await dig(port, ...tcp, '+short', '_http._tcp.web.vxnet', 'SRV')), ['0 1 8080 web-1.vxnet.', '0 1 8080 web-2.vxnet.'], `${how}: named port`);
    t.same(answers(await dig(port, ...tcp, '+short', '-x', '10.1.0.3')), ['web-2.vxnet.'], `${how}: PTR`);
    t.match(await dig(port, ...tcp, '+short', 'vxnet', 'SOA'), /^ns\.vxnet\. hostmaster\.vxnet\. \d+ 60 10 3600 5$/m, `${how}: SOA`);
    const full = await dig(port, ...tcp, 'web-1.vxnet', 'A');
    t.equal(status(full), 'NOERROR');
    t.ok(flags(full).includes('aa') && flags(full).includes('rd') && flags(full).includes('ra'), `${how}: aa rd ra (${flags(full)})`);
    t.match(full, /web-1\.vxnet\.\s+5\s+IN\s+A\s+10\.1\.0\.2/, `${how}: TTL 5`);
    const nx = await dig(port, ...tcp, 'nope.vxnet', 'A');
    t.equal(status(nx), 'NXDOMAIN', `${how}: NXDOMAIN`);
    t.match(nx, /AUTHORITY SECTION:\nvxnet\.\s+5\s+IN\s+SOA\s+ns\.vxnet\./, `${how}: SOA in the authority section`);
    const nodata = await dig(port, ...tcp, 'blue.vxnet', 'A');
    t.equal(status(nodata), 'NOERROR', `${how}: an empty non-terminal is NODATA`);
    t.match(nodata, /ANSWER: 0, AUTHORITY: 1/);
  }
});

t.test('a large answer: TC over UDP, then dig retries over TCP and gets it all', async (t) => {
  const { port, handler } = await serve(t);
  const truncated = await dig(port, '+ignore', '+noedns', 'big.vxnet', 'A');
  t.ok(flags(truncated).includes('tc'), `TC set (${flags(truncated)})`);
  const n = Number(/ANSWER: (\d+)/.exec(truncated)?.[1]);
  t.ok(n > 0 && n < 100, `${n} of 100 records fit 512 bytes`);
  const before = handler.stats.queries;
  const retried = await dig(port, '+noedns', 'big.vxnet', 'A');
  t.match(retried, /Truncated, retrying in TCP mode/);
  t.match(retried, /ANSWER: 100,/, 'all 100 over TCP');
  t.equal(handler.stats.queries - before, 2, 'one UDP query, one TCP query');
  const edns = await dig(port, '+ignore', '+bufsize=4096', 'big.vxnet', 'A');
  t.ok(flags(edns).includes('tc'), 'EDNS 4096 asked, 1232 is the cap: still TC');
  t.match(edns, /udp: 1232/, 'the OPT says 1232');
});

t.test('names outside the zone go to the forwarder; cached the second time', async (t) => {
  const stub = await startStub(t, 'answer', { records: 2 });
  const forwarder = new Forwarder({ upstreams: [{ ip: ip(LO), port: stub.port }] });
  await forwarder.start();
  t.teardown(() => forwarder.stop());
  const { port } = await serve(t, { forwarder });
  const out = await dig(port, 'www.example.com', 'A');
  t.equal(status(out), 'NOERROR');
  t.notOk(flags(out).includes('aa'), 'not authoritative');
  t.match(out, /ANSWER: 2,/);
  t.same(answers(await dig(port, '+short', '+tcp', 'www.example.com')), ['192.0.2.0', '192.0.2.1'], 'over TCP');
  t.equal(stub.udpReceived + stub.tcpReceived, 1, 'the second answer came from the cache');
  const noForwarder = await serve(t);
  t.equal(status(await dig(noForwarder.port, 'www.example.com')), 'REFUSED', 'no forwarder: REFUSED');
});

t.test('not an open resolver: REFUSED to a source outside the allowed ones, on UDP and TCP', async (t) => {
  const onlyTen = allowSources([parseCidr('10.0.0.0/8')!], false);
  const { port, handler } = await serve(t, { allow: onlyTen });
  t.equal(status(await dig(port, 'web-1.vxnet')), 'REFUSED');
  t.equal(status(await dig(port, '+tcp', 'web-1.vxnet')), 'REFUSED');
  t.equal(handler.stats.refused, 2);
  const allowed = allowSources([parseCidr('10.0.0.0/8')!, parseCidr('fd00::/8')!]);
  for (const [addr, ok] of [['127.0.0.1', true], ['127.9.9.9', true], ['::1', true], ['10.1.2.3', true], ['::ffff:10.1.2.3', true], ['fd00::5', true], ['192.168.1.1', false], ['2001:db8::1', false], ['::ffff:192.168.1.1', false]] as const) {
    t.equal(allowed(sourceIp(addr)!), ok, `${addr}: ${ok ? 'allowed' : 'refused'}`);
  }
});

/** Sends raw UDP datagrams, collects what comes back within `ms`. */
/**
 * Sends messages in order from one socket and collects replies until the last message's reply
 * (its ID) arrived, at most ms: the server answers one socket's datagrams in order, so every
 * reply of the earlier ones has arrived by then, and a missing one was silence.
 */
async function udpExchange(port: number, messages: Buffer[], ms = 2000): Promise<Buffer[]> {
  const s = dgram.createSocket('udp4');
  const got: Buffer[] = [];
  const lastId = (messages[messages.length - 1] as Buffer).readUInt16BE(0);
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    s.on('message', (m) => {
      got.push(m);
      if (m.length >= 2 && m.readUInt16BE(0) === lastId) { clearTimeout(timer); resolve(); }
    });
  });
  await new Promise<void>((r) => s.bind(0, LO, r));
  for (const m of messages) s.send(m, port, LO);
  await done;
  s.close();
  return got;
}

t.test('malformed UDP messages: FORMERR or silence, and the server keeps answering', async (t) => {
  const { port, handler } = await serve(t);
  const good = dnsPacket.encode({ type: 'query', id: 99, questions: [{ name: 'web-1.vxnet', type: 'A' }] });
  const replies = await udpExchange(port, [Buffer.from([1]), Buffer.alloc(600, 0xff), Buffer.from([0, 5, 1, 2, 3]), Buffer.alloc(600, 0x3f), good]);
  const ids = replies.map((r) => r.readUInt16BE(0)).sort((a, b) => a - b);
  t.same(ids, [5, 99, 0x3f3f], 'a one-byte message and a "response" (QR set) got nothing; the others an answer');
  const byId = new Map(replies.map((r) => [r.readUInt16BE(0), r]));
  t.equal(byId.get(5)!.readUInt16BE(2) & 0xf, 1, 'a short header: FORMERR');
  t.equal(byId.get(0x3f3f)!.readUInt16BE(2) & 0xf, 4, 'opcode 7: NOTIMP');
  t.equal(byId.get(99)!.readUInt16BE(2) & 0xf, 0, 'the good query: NOERROR');
  t.equal(handler.stats.internalErrors, 0);
});

/** A raw TCP client: writes `data`, collects framed answers until `count` arrived or the peer closed. */
function tcpClient(port: number): { socket: net.Socket; answers: Buffer[]; closed: Promise<void>; waitFor(n: number, ms?: number): Promise<boolean> } {
  const socket = net.connect(port, LO);
  const answers: Buffer[] = [];
  let buf = Buffer.alloc(0);
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      answers.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      buf = buf.subarray(2 + buf.readUInt16BE(0));
    }
  });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((r) => socket.on('close', () => r()));
  const waitFor = async (n: number, ms = 2000): Promise<boolean> => {
    const end = Date.now() + ms;
    while (answers.length < n && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    return answers.length >= n;
  };
  return { socket, answers, closed, waitFor };
}
const frame = (m: Buffer): Buffer => Buffer.concat([Buffer.from([m.length >> 8, m.length & 255]), m]);
const q = (id: number, name: string): Buffer => dnsPacket.encode({ type: 'query', id, questions: [{ name, type: 'A' }] });

t.test('TCP: pipelined queries on one connection, idle timeout, size limit, connection limit', async (t) => {
  const { port } = await serve(t, {}, { idleMs: 300, maxConnections: 2, maxMessage: 512 });
  const c = tcpClient(port);
  t.teardown(() => c.socket.destroy());
  // Three queries in one write, the last one split across two writes.
  const third = frame(q(3, 'web-2.vxnet'));
  c.socket.write(Buffer.concat([frame(q(1, 'web-1.vxnet')), frame(q(2, 'nope.vxnet')), third.subarray(0, 5)]));
  await new Promise((r) => setTimeout(r, 20));
  c.socket.write(third.subarray(5));
  t.ok(await c.waitFor(3), 'three answers on one connection');
  t.same(c.answers.map((a) => a.readUInt16BE(0)).sort(), [1, 2, 3]);
  const started = Date.now();
  await c.closed;
  const idle = Date.now() - started;
  t.ok(idle >= 250 && idle < 2000, `closed after ${idle} ms idle (limit 300)`);

  const big = tcpClient(port);
  big.socket.write(Buffer.from([0x02, 0x01])); // a length of 513 > maxMessage
  await big.closed;
  t.equal(big.answers.length, 0, 'an oversized length prefix closes the connection');

  const garbage = tcpClient(port);
  garbage.socket.write(frame(Buffer.from([1])));
  await garbage.closed;
  t.pass('a message not worth answering closes the connection');

  const held = [tcpClient(port), tcpClient(port)];
  t.teardown(() => held.forEach((h) => h.socket.destroy()));
  for (const h of held) h.socket.write(frame(q(7, 'web-1.vxnet')));
  for (const h of held) t.ok(await h.waitFor(1), 'the first two connections are served');
  const third2 = tcpClient(port);
  third2.socket.write(frame(q(8, 'web-1.vxnet')));
  await third2.closed;
  t.equal(third2.answers.length, 0, 'a third connection is closed at once (maxConnections 2)');
});

t.test('start fails cleanly on an address in use; stop frees the port', async (t) => {
  const handler = createHandler({ zone: testZone() });
  const a = new DnsServer({ listen: [{ ip: ip(LO), port: 0 }], handler });
  await a.start();
  const port = a.addresses()[0].port;
  const b = new DnsServer({ listen: [{ ip: ip('127.0.0.2'), port: 0 }, { ip: ip(LO), port }], handler });
  await t.rejects(b.start(), { name: 'IoFailure', message: new RegExp(`^dns: cannot listen on 127\\.0\\.0\\.1:${port}/udp: EADDRINUSE$`) });
  t.same(b.addresses(), [], 'nothing left bound');
  await a.stop();
  const c = new DnsServer({ listen: [{ ip: ip(LO), port }], handler });
  await c.start();
  t.equal(c.addresses()[0].port, port, 'the port is free again after stop');
  await c.stop();
});

t.test('a forwarded answer that arrives after stop() is dropped, not a crash', async (t) => {
  const releases: Array<() => void> = [];
  const late = {
    resolve: (query: Query): Promise<Reply> => new Promise((resolve) => {
      releases.push(() => resolve({ rcode: 'NOERROR', aa: false, answers: [{ name: query.question.name, type: 'A', class: 'IN', ttl: 1, data: '192.0.2.9' }], authorities: [], additionals: [] }));
    }),
  };
  const handler = createHandler({ zone: testZone(), forwarder: late });
  const server = new DnsServer({ listen: [{ ip: ip(LO), port: 0 }], handler });
  await server.start();
  const port = server.addresses()[0].port;
  const c = tcpClient(port);
  t.teardown(() => c.socket.destroy());
  c.socket.write(frame(q(1, 'late.example')));
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, LO, r));
  t.teardown(() => s.close());
  s.send(q(2, 'late.example'), port, LO);
  const deadline = Date.now() + 2000;
  while (releases.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  t.equal(releases.length, 2, 'a TCP and a UDP query wait in the forwarder');
  await server.stop();
  releases.forEach((release) => release());
  await new Promise((r) => setTimeout(r, 50));
  t.equal(handler.stats.internalErrors, 0);
  t.pass('no exception from answering on closed sockets');
});
