// dns/batch.ts against DNS servers made in the test on loopback (dns-packet): every answer in
// its question's place, the in-flight bound kept, a lost answer asked again, a silent server
// (every question a TIMEOUT after its tries), a truncated answer asked over TCP, a
// spoofed answer (wrong ID or question) ignored. No root.
import t, { type Test } from 'tap';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as dnsPacket from 'dns-packet';
import { queryBatch } from '../../dns/batch';
import { parseIp } from '../../ipam/addr';
import type { HostPort } from '../../dns/upstreams';

interface Fake { server: HostPort; asked: number; maxInFlight: number }

/**
 * A UDP DNS server: NAME -> A record 10.0.0.N for names "hN.test"; `drop(n)` decides whether the
 * n-th datagram gets no answer; `delayMs` holds answers (to see the in-flight bound); names
 * "big*" are answered with TC over UDP and fully over TCP (same port).
 */
async function fakeServer(t: Test, o: { drop?: (n: number) => boolean; delayMs?: number; silent?: boolean; spoofFirst?: boolean } = {}): Promise<Fake> {
  const udp = dgram.createSocket('udp4');
  const fake: Fake = { server: { ip: parseIp('127.0.0.1')!, port: 0 }, asked: 0, maxInFlight: 0 };
  let inFlight = 0;
  const answer = (q: dnsPacket.Packet, tcp: boolean): Buffer => {
    const question = q.questions![0]!;
    const m = /^h(\d+)\.test$/.exec(question.name);
    const big = question.name.startsWith('big');
    return dnsPacket.encode({
      // rcode is the flags' low 4 bits (3: NXDOMAIN).
      id: q.id, type: 'response', flags: dnsPacket.AUTHORITATIVE_ANSWER | (big && !tcp ? 1 << 9 : 0) | (m || big ? 0 : 3), questions: q.questions,
      answers: m ? [{ type: 'A', name: question.name, ttl: 5, data: `10.0.0.${m[1]}` }]
        : big && tcp ? [{ type: 'A', name: question.name, ttl: 5, data: '10.9.9.9' }] : [],
    } as dnsPacket.Packet);
  };
  udp.on('message', (msg, rinfo) => {
    const n = fake.asked++;
    if (o.silent || o.drop?.(n)) return;
    const q = dnsPacket.decode(msg);
    inFlight++;
    fake.maxInFlight = Math.max(fake.maxInFlight, inFlight);
    setTimeout(() => {
      inFlight--;
      if (o.spoofFirst && n === 0) {
        // Another ID, then the right ID with another question: both must be ignored; then the answer.
        udp.send(answer({ ...q, id: (q.id! + 1) & 0xffff }, false), rinfo.port, rinfo.address);
        udp.send(answer({ ...q, questions: [{ type: 'A', name: 'h99.test' }] }, false), rinfo.port, rinfo.address);
      }
      udp.send(answer(q, false), rinfo.port, rinfo.address);
    }, o.delayMs ?? 0);
  });
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  const port = udp.address().port;
  const tcp = net.createServer((c) => {
    let buf = Buffer.alloc(0);
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      const out = answer(dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0))), true);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(out.length);
      c.end(Buffer.concat([len, out]));
    });
    c.on('error', () => {});
  });
  await new Promise<void>((r) => tcp.listen(port, '127.0.0.1', () => r()));
  t.teardown(() => { udp.close(); tcp.close(); });
  fake.server = { ip: parseIp('127.0.0.1')!, port };
  return fake;
}

t.test('answers in order, the in-flight bound kept', async (t) => {
  const fake = await fakeServer(t, { delayMs: 5 });
  const questions = Array.from({ length: 2000 }, (_, i) => ({ name: `h${i % 250}.test`, type: 'A' }));
  questions.push({ name: 'nobody.test', type: 'A' });
  const started = Date.now();
  const answers = await queryBatch(fake.server, questions, { inFlight: 64, timeoutMs: 1000 });
  t.comment(`2,001 questions, 64 in flight, 5 ms per answer: ${Date.now() - started} ms`);
  t.equal(answers.length, questions.length);
  t.ok(answers.slice(0, 2000).every((a, i) => a.rcode === 'NOERROR' && a.data.length === 1 && a.data[0] === `10.0.0.${i % 250}`), 'each answer in its question\'s place');
  t.same(answers[2000], { rcode: 'NXDOMAIN', data: [] });
  t.ok(fake.maxInFlight <= 64, `at most 64 outstanding (${fake.maxInFlight})`);
  t.equal(fake.asked, questions.length, 'each asked once');
});

t.test('a lost answer is asked again; a spoofed one is ignored', async (t) => {
  const lossy = await fakeServer(t, { drop: (n) => n < 3 });
  const answers = await queryBatch(lossy.server, [{ name: 'h1.test', type: 'A' }, { name: 'h2.test', type: 'A' }, { name: 'h3.test', type: 'A' }], { timeoutMs: 200 });
  t.same(answers.map((a) => a.data[0]), ['10.0.0.1', '10.0.0.2', '10.0.0.3'], 'the three first datagrams lost: each answered on its second try');
  t.equal(lossy.asked, 6);
  const spoofed = await fakeServer(t, { spoofFirst: true });
  t.same(await queryBatch(spoofed.server, [{ name: 'h7.test', type: 'A' }]), [{ rcode: 'NOERROR', data: ['10.0.0.7'] }], 'the wrong ID and the wrong question were not taken');
});

t.test('a silent server: every question a TIMEOUT after its tries, none a rejection', async (t) => {
  const fake = await fakeServer(t, { silent: true });
  const started = Date.now();
  const answers = await queryBatch(fake.server, Array.from({ length: 500 }, (_, i) => ({ name: `h${i}.test`, type: 'A' })), { timeoutMs: 150, tries: 2 });
  const took = Date.now() - started;
  t.ok(answers.every((a) => a.rcode === 'TIMEOUT'), 'every question: TIMEOUT');
  t.equal(fake.asked, 1000, 'each tried twice');
  // How long it took is the bench's business, not a test's; that the questions overlap is shown
  // by the in-flight bound above. The figure, for the reader:
  t.comment(`500 names against a silent server, 256 in flight, 2 tries of 150 ms: ${took} ms`);
});

t.test('a truncated answer is asked over TCP; no server at all is a per-question failure', async (t) => {
  const fake = await fakeServer(t);
  t.same(await queryBatch(fake.server, [{ name: 'big.test', type: 'A' }, { name: 'h4.test', type: 'A' }]), [
    { rcode: 'NOERROR', data: ['10.9.9.9'] }, { rcode: 'NOERROR', data: ['10.0.0.4'] },
  ]);
  const closed = dgram.createSocket('udp4');
  await new Promise<void>((r) => closed.bind(0, '127.0.0.1', () => r()));
  const port = closed.address().port;
  closed.close();
  const answers = await queryBatch({ ip: parseIp('127.0.0.1')!, port }, [{ name: 'h1.test', type: 'A' }], { timeoutMs: 200 });
  t.equal(answers.length, 1);
  t.ok(['TIMEOUT', 'ERROR'].includes(answers[0]!.rcode), `nothing listening: ${answers[0]!.rcode}, never a rejection`);
  t.same(await queryBatch(fake.server, []), [], 'no questions: no answers');
});
