// dns/handler.ts: the policy (allow, malformed, zone, forwarder) and reused answers.
import * as dnsPacket from 'dns-packet';
import t from 'tap';
import { Ip, parseIp } from '../../ipam/addr';
import { createHandler } from '../../dns/handler';
import type { Query, Reply } from '../../dns/wire';
import { Zone } from '../../dns/zone';

const ip = (text: string): Ip => parseIp(text)!;
const LO = ip('127.0.0.1');
function query(name: string, id: number, flags = 0, type: dnsPacket.RecordType = 'A'): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags, questions: [{ name, type, class: 'IN' }] });
}
const decode = (b: Buffer | undefined): dnsPacket.DecodedPacket & { rcode?: string } => dnsPacket.decode(b!) as dnsPacket.DecodedPacket & { rcode?: string };
function answer(h: ReturnType<typeof createHandler>, msg: Buffer, ...source: [Ip | undefined] | []): Buffer | undefined {
  const out = h.handle(msg, source.length ? source[0] : LO, 'udp');
  if (out instanceof Promise) throw new Error('expected a synchronous answer');
  return out;
}

function setup(): { zone: Zone; h: ReturnType<typeof createHandler> } {
  const zone = new Zone();
  zone.set('a', { name: 'web-1', network: 'blue', service: 'web', addresses: [ip('10.0.0.1')], ports: [] });
  zone.set('b', { name: 'web-2', network: 'blue', service: 'web', addresses: [ip('10.0.0.2')], ports: [] });
  return { zone, h: createHandler({ zone }) };
}

t.test("reused answers carry each query's ID, RD and CD, and the question as it was sent", async (t) => {
  const { h } = setup();
  const first = decode(answer(h, query('web-1.vxnet', 1, dnsPacket.RECURSION_DESIRED)));
  t.ok(first.flag_rd);
  const second = decode(answer(h, query('web-1.vxnet', 2, dnsPacket.CHECKING_DISABLED)));
  t.equal(second.id, 2);
  t.notOk(second.flag_rd, 'RD not carried over from the first query');
  t.ok(second.flag_cd && second.flag_aa && second.flag_qr);
  t.match(second.answers, [{ name: 'web-1.vxnet', data: '10.0.0.1' }]);
  const upper = decode(answer(h, query('WEB-1.vxnet', 3)));
  t.equal(upper.questions![0].name, 'WEB-1.vxnet', 'another case is another message: its own question echoed');
  t.equal(h.stats.authoritative, 3);
});

t.test('a change of the zone is seen at once; rotated RRsets are not reused', async (t) => {
  const { zone, h } = setup();
  t.match(decode(answer(h, query('web-1.vxnet', 1))).answers, [{ data: '10.0.0.1' }]);
  zone.set('a', { name: 'web-1', network: 'blue', service: 'web', addresses: [ip('10.0.0.9')], ports: [] });
  t.match(decode(answer(h, query('web-1.vxnet', 1))).answers, [{ data: '10.0.0.9' }], 'the new address');
  zone.delete('a');
  t.equal(decode(answer(h, query('web-1.vxnet', 1))).rcode, 'NXDOMAIN');
  zone.set('a', { name: 'web-1', network: 'blue', service: 'web', addresses: [ip('10.0.0.1')], ports: [] });
  const firsts = new Set<string>();
  for (let i = 0; i < 4; i++) firsts.add(String((decode(answer(h, query('web.vxnet', i))).answers![0] as { data: string }).data));
  t.equal(firsts.size, 2, 'the service still rotates');
});

t.test('sources outside allow get REFUSED, malformed messages FORMERR or nothing', async (t) => {
  const zone = new Zone();
  const h = createHandler({ zone, allow: (s) => s.family === 4 && s.value === LO.value });
  t.equal(decode(answer(h, query('x.vxnet', 1), ip('192.0.2.1'))).rcode, 'REFUSED');
  t.equal(answer(h, Buffer.from([1, 2, 3]), ip('192.0.2.1')), undefined, 'not a query, not allowed: nothing');
  t.equal(decode(answer(h, query('x.vxnet', 1), undefined)).rcode, 'REFUSED', 'no readable source: REFUSED');
  t.equal(decode(answer(h, Buffer.from([0, 9, 0, 0, 0]))).id, 9, 'FORMERR with the ID');
  t.equal(decode(answer(h, query('example.com', 4))).rcode, 'REFUSED', 'no forwarder: REFUSED');
  t.same(h.stats, { queries: 5, refused: 4, malformed: 1, authoritative: 0, forwarded: 0, internalErrors: 0 });
});

t.test("forwarded: the forwarder's reply, fitted; its failure is SERVFAIL", async (t) => {
  const zone = new Zone();
  const ok = { resolve: (q: Query): Promise<Reply> => Promise.resolve({ rcode: 'NOERROR', aa: false, answers: Array.from({ length: 60 }, (_, i) => ({ name: q.question.name, type: 'A', class: 'IN', ttl: 9, data: `192.0.2.${i}` }) as dnsPacket.Answer), authorities: [], additionals: [] }) };
  const out = decode(await createHandler({ zone, forwarder: ok }).handle(query('big.example', 5), LO, 'udp'));
  t.ok(out.flag_tc && !out.flag_aa, 'TC over UDP, not authoritative');
  const full = decode(await createHandler({ zone, forwarder: ok }).handle(query('big.example', 5), LO, 'tcp'));
  t.equal(full.answers!.length, 60);
  const failing = createHandler({ zone, forwarder: { resolve: () => Promise.reject(new Error('boom')) } });
  t.equal(decode(await failing.handle(query('x.example', 6), LO, 'udp')).rcode, 'SERVFAIL');
  t.equal(failing.stats.internalErrors, 1);
});

t.test('a cached forwarded answer comes back synchronously, without the forwarder\'s promise', async (t) => {
  const reply: Reply = { rcode: 'NOERROR', aa: false, answers: [{ name: 'c.example', type: 'A', class: 'IN', ttl: 7, data: '192.0.2.7' }], authorities: [], additionals: [] };
  let resolved = 0;
  const forwarder = {
    cached: (q: Query): Reply | undefined => (q.question.name === 'c.example' ? reply : undefined),
    resolve: (): Promise<Reply> => { resolved++; return Promise.resolve(reply); },
  };
  const h = createHandler({ zone: new Zone(), forwarder });
  const out = h.handle(query('c.example', 8), LO, 'udp');
  t.ok(Buffer.isBuffer(out), 'a Buffer, not a Promise');
  t.match(decode(out as Buffer).answers, [{ data: '192.0.2.7', ttl: 7 }]);
  t.equal(resolved, 0);
  t.ok(h.handle(query('miss.example', 9), LO, 'udp') instanceof Promise, 'a miss goes to resolve');
  t.equal(resolved, 1);
});

t.test('a cached forwarded answer is reused with its TTLs counted down, until a second before it expires, per CD', async (t) => {
  let clock = 1_000_000;
  let data = '192.0.2.1';
  let ttl = 30;
  let asked = 0;
  const forwarder = {
    cached: (): Reply => {
      asked++;
      return { rcode: 'NOERROR', aa: false, answers: [{ name: 'r.example', type: 'A', class: 'IN', ttl, data }], authorities: [], additionals: [] };
    },
    resolve: (): Promise<Reply> => Promise.reject(new Error('not cached')),
  };
  const h = createHandler({ zone: new Zone(), forwarder, now: () => clock });
  const ask = (id: number, flags = 0): dnsPacket.DecodedPacket => decode(h.handle(query('r.example', id, flags), LO, 'udp') as Buffer);
  t.match(ask(1).answers, [{ data: '192.0.2.1', ttl: 30 }]);
  data = '192.0.2.2';
  clock += 999;
  const again = ask(2, dnsPacket.RECURSION_DESIRED);
  t.match(again.answers, [{ data: '192.0.2.1', ttl: 30 }], 'within the second: the same encoded answer');
  t.ok(again.id === 2 && again.flag_rd, 'with its own ID and RD');
  t.equal(asked, 1, 'the cache was not asked again');
  t.match(ask(3, dnsPacket.CHECKING_DISABLED).answers, [{ data: '192.0.2.2' }], 'CD set: another key');
  clock += 1;
  t.match(ask(4).answers, [{ data: '192.0.2.1', ttl: 29 }], 'a second later: the same answer, its TTL one less');
  clock += 27_999;
  t.match(ask(5).answers, [{ data: '192.0.2.1', ttl: 2 }], '28.999 s later: TTL 2');
  t.equal(asked, 2, 'reused all along');
  clock += 1;
  t.match(ask(6).answers, [{ data: '192.0.2.2', ttl: 30 }], 'a second before the TTL runs out: asked again');
  ttl = 1;
  data = '192.0.2.3';
  clock += 30_000;
  t.match(ask(7).answers, [{ data: '192.0.2.3', ttl: 1 }]);
  data = '192.0.2.4';
  t.match(ask(8).answers, [{ data: '192.0.2.4' }], 'one second left: not reused');
  t.equal(h.stats.forwarded, 8);
});

t.test('a reused forwarded answer counts down every record but OPT', async (t) => {
  let clock = 0;
  const forwarder = {
    cached: (): Reply => ({
      rcode: 'NOERROR', aa: false, authorities: [],
      answers: [{ name: 'm.example', type: 'CNAME', class: 'IN', ttl: 100, data: 'n.example' }, { name: 'n.example', type: 'A', class: 'IN', ttl: 60, data: '192.0.2.9' }],
      additionals: [{ name: 'n.example', type: 'AAAA', class: 'IN', ttl: 50, data: '2001:db8::9' }],
    }),
    resolve: (): Promise<Reply> => Promise.reject(new Error('not cached')),
  };
  const h = createHandler({ zone: new Zone(), forwarder, now: () => clock });
  const msg = dnsPacket.encode({ type: 'query', id: 1, flags: 0, questions: [{ name: 'm.example', type: 'A', class: 'IN' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: dnsPacket.DNSSEC_OK } as dnsPacket.Answer] });
  const first = decode(h.handle(msg, LO, 'udp') as Buffer);
  clock += 10_500;
  const later = decode(h.handle(msg, LO, 'udp') as Buffer);
  t.same(later.answers!.map((a) => (a as { ttl: number }).ttl), [90, 50], 'answers: 10 s less');
  const opt = (p: dnsPacket.DecodedPacket): unknown => p.additionals!.find((a) => a.type === 'OPT');
  t.same(later.additionals!.filter((a) => a.type !== 'OPT').map((a) => (a as { ttl: number }).ttl), [40], 'additionals: 10 s less');
  t.same(opt(later), opt(first), 'OPT (its flags in the TTL field) as it was');
});
