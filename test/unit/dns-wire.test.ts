// dns/wire.ts: query validation (FORMERR / NOTIMP / drop), answers, truncation, EDNS.
import * as dnsPacket from 'dns-packet';
import type { Answer } from 'dns-packet';
import t from 'tap';
import { Query, Reply, decodeQuery, encodeReply, rcodeReply, udpLimit } from '../../dns/wire';

const RD = dnsPacket.RECURSION_DESIRED;
function query(name = 'Web.VXNET', type: dnsPacket.RecordType = 'A', extra: Partial<dnsPacket.Packet> = {}): Buffer {
  return dnsPacket.encode({ type: 'query', id: 4242, flags: RD, questions: [{ name, type, class: 'IN' }], ...extra });
}
const withEdns = (size: number, version = 0, flags = 0): Partial<dnsPacket.Packet> => ({
  additionals: [{ name: '.', type: 'OPT', udpPayloadSize: size, extendedRcode: 0, ednsVersion: version, flags, flag_do: false, options: [] }],
});
function ok(buf: Buffer): Query {
  const d = decodeQuery(buf);
  if (!d.ok) throw new Error(`expected a query: ${d.reason}`);
  return d.query;
}
const rcodeOf = (buf: Buffer): number => buf.readUInt16BE(2) & 0xf;

t.test('a valid query decodes: normalised name, case kept in the echoed question', async (t) => {
  const q = ok(query());
  t.equal(q.id, 4242);
  t.ok(q.rd);
  t.same(q.question, { name: 'web.vxnet', type: 'A', typeCode: 1, plain: true });
  t.equal(q.edns, undefined);
  const out = dnsPacket.decode(encodeReply(q, { rcode: 'NOERROR', aa: true, answers: [{ name: 'web.vxnet', type: 'A', ttl: 5, data: '10.0.0.1' }], authorities: [], additionals: [] }));
  t.equal(out.id, 4242);
  t.ok(out.flag_qr && out.flag_aa && out.flag_rd && out.flag_ra, 'QR AA RD RA');
  t.notOk(out.flag_tc);
  t.equal(out.questions![0].name, 'Web.VXNET', 'question as the client sent it (0x20 case randomisation)');
  t.match(out.answers, [{ name: 'web.vxnet', type: 'A', ttl: 5, data: '10.0.0.1' }]);
});

t.test('malformed queries: FORMERR when an ID can be read, NOTIMP for other opcodes, silence otherwise', async (t) => {
  const base = query();
  const set16 = (buf: Buffer, at: number, v: number): Buffer => { const b = Buffer.from(buf); b.writeUInt16BE(v, at); return b; };
  const cases: Array<[string, Buffer, number | undefined, RegExp]> = [
    ['empty', Buffer.alloc(0), undefined, /shorter than an ID/],
    ['one byte', Buffer.from([1]), undefined, /shorter than an ID/],
    ['a response', set16(base, 2, 0x8100), undefined, /a response/],
    ['short header', base.subarray(0, 7), 1, /shorter than a DNS header/],
    ['opcode NOTIFY', set16(base, 2, 0x2100), 4, /opcode 4/],
    ['opcode UPDATE', set16(base, 2, 0x2900), 4, /opcode 5/],
    ['no question', set16(base, 4, 0), 1, /0 questions/],
    ['two questions', dnsPacket.encode({ type: 'query', id: 1, questions: [{ name: 'a', type: 'A' }, { name: 'b', type: 'A' }] }), 1, /2 questions/],
    ['an answer in a query', set16(base, 6, 1), 1, /answer or authority/],
    ['cut question', base.subarray(0, base.length - 2), 1, /cut short/],
    ['cut name', base.subarray(0, 15), 1, /runs past/],
    ['class CH', set16(query('version.bind', 'TXT'), query('version.bind', 'TXT').length - 2, 3), 4, /class 3/],
    ['AXFR', query('vxnet', 'AXFR'), 5, /zone transfers/],
    ['trailing garbage', Buffer.concat([base, Buffer.from([1, 2, 3])]), 1, /3 bytes after/],
    ['additional count past the end', set16(base, 10, 3), 1, /undecodable/],
    ['two OPT records', query('a', 'A', { additionals: [...withEdns(1232).additionals!, ...withEdns(1232).additionals!] }), 1, /more than one OPT/],
  ];
  for (const [what, buf, rcode, reason] of cases) {
    const d = decodeQuery(buf);
    t.notOk(d.ok, `${what}: rejected`);
    if (d.ok) continue;
    t.match(d.reason, reason, `${what}: ${d.reason}`);
    if (rcode === undefined) {
      t.equal(d.reply, undefined, `${what}: dropped`);
    } else {
      t.ok(d.reply, `${what}: answered`);
      t.equal(d.reply!.readUInt16BE(0), buf.readUInt16BE(0), `${what}: same ID`);
      t.equal(rcodeOf(d.reply!), rcode, `${what}: rcode ${rcode}`);
      t.ok(d.reply!.readUInt16BE(2) & 0x8000, `${what}: QR set`);
    }
  }
  const notimp = decodeQuery(set16(base, 2, 0x2100));
  t.equal(!notimp.ok && (notimp.reply!.readUInt16BE(2) >> 11) & 0xf, 4, 'the opcode is echoed');
});

t.test('EDNS: size read, OPT echoed, BADVERS for version 1', async (t) => {
  const q = ok(query('web.vxnet', 'A', withEdns(4096, 0, dnsPacket.DNSSEC_OK)));
  t.same(q.edns, { udpSize: 4096, dnssecOk: true });
  t.equal(udpLimit(q), 1232, 'capped at 1232');
  t.equal(udpLimit(q, 4096), 4096);
  t.equal(udpLimit(ok(query('web.vxnet', 'A', withEdns(100)))), 512, 'never below 512');
  t.equal(udpLimit(ok(query())), 512, 'no EDNS: 512');
  const out = dnsPacket.decode(rcodeReply(q, 'NXDOMAIN'));
  t.equal((out as unknown as { rcode: string }).rcode, 'NXDOMAIN');
  t.match(out.additionals, [{ type: 'OPT', udpPayloadSize: 1232, flag_do: true }], 'OPT echoed with DO');
  const bad = decodeQuery(query('web.vxnet', 'A', withEdns(1232, 1)));
  t.notOk(bad.ok);
  if (!bad.ok) {
    const r = dnsPacket.decode(bad.reply!);
    t.match(r.additionals, [{ type: 'OPT', extendedRcode: 1 }], 'BADVERS = extended rcode 1 (16)');
  }
});

t.test('truncation: additionals dropped first (no TC), then answers with TC', async (t) => {
  const many = (n: number): Answer[] => Array.from({ length: n }, (_, i) => ({ name: 'big.vxnet', type: 'A', ttl: 5, data: `10.0.${i >> 8}.${i & 255}` }) as Answer);
  const q = ok(query('big.vxnet'));
  const reply = (answers: Answer[], additionals: Answer[] = []): Reply => ({ rcode: 'NOERROR', aa: true, answers, authorities: [], additionals });
  const fits = encodeReply(q, reply(many(10)), udpLimit(q));
  t.notOk(fits.readUInt16BE(2) & 0x200, '10 records fit 512 bytes');
  const noAdd = dnsPacket.decode(encodeReply(q, reply(many(15), many(30)), 512));
  t.notOk(noAdd.flag_tc, 'only additionals dropped: no TC');
  t.equal(noAdd.answers!.length, 15);
  t.equal(noAdd.additionals!.length, 0);
  const cut = encodeReply(q, reply(many(100)), 512);
  t.ok(cut.length <= 512, `${cut.length} bytes`);
  const d = dnsPacket.decode(cut);
  t.ok(d.flag_tc, 'TC set');
  t.ok(d.answers!.length > 0 && d.answers!.length < 100, `${d.answers!.length} records kept`);
  const full = dnsPacket.decode(encodeReply(q, reply(many(100))));
  t.notOk(full.flag_tc, 'over TCP (65535) it all goes');
  t.equal(full.answers!.length, 100);
  const qe = ok(query('big.vxnet', 'A', withEdns(4096)));
  const e = dnsPacket.decode(encodeReply(qe, reply(many(100)), udpLimit(qe)));
  t.ok(e.flag_tc && e.answers!.length > 40, `EDNS 1232 holds more (${e.answers!.length})`);
  t.match(e.additionals, [{ type: 'OPT' }], 'the OPT survives truncation');
});
