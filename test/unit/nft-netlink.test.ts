// nftables element batches over netlink (net/nft-netlink.ts) and the VIP table's elements in
// the kernel's binary form (datapath/vip-plan.ts VipIndex.encodeFull): the bytes, no kernel.
// The kernel side (the same elements as nft writes from the text) is
// test/integration/vip-table.test.ts.
import t from 'tap';
import { parseIp, type Ip } from '../../ipam/addr';
import { NFPROTO_INET, acksOf, encodeSetBatch, type NftElement } from '../../net/nft-netlink';
import { MAX_SLOTS, VipIndex, type VipEntry } from '../../datapath/vip-plan';

const ip = (s: string): Ip => { const r = parseIp(s); if (!r) throw new Error(s); return r; };
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** The messages of a batch: type, flags, seq and body. */
function messages(buf: Buffer): Array<{ type: number; flags: number; seq: number; body: Buffer }> {
  const out = [];
  for (let at = 0; at < buf.length;) {
    const len = buf.readUInt32LE(at);
    out.push({ type: buf.readUInt16LE(at + 4), flags: buf.readUInt16LE(at + 6), seq: buf.readUInt32LE(at + 8), body: buf.subarray(at + 16, at + len) });
    at += (len + 3) & ~3;
  }
  return out;
}

/** Attributes of a body (after a 4-byte nfgenmsg when `skip` is 4): [type without flags, payload]. */
function attrs(b: Buffer, skip = 0): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = [];
  for (let at = skip; at + 4 <= b.length;) {
    const len = b.readUInt16LE(at);
    out.push([b.readUInt16LE(at + 2) & 0x3fff, b.subarray(at + 4, at + len)]);
    at += (len + 3) & ~3;
  }
  return out;
}

t.test('a batch: begin, a flush, the adds with their keys, values and verdicts, end', async (t) => {
  const el: NftElement[] = [
    { key: Uint8Array.from([10, 0, 0, 1]), value: Uint8Array.from([1, 2, 3, 4]) },
    { key: Uint8Array.from([10, 0, 0, 2]), value: { goto: 'pick2' } },
  ];
  const { bytes, seqs } = encodeSetBatch(NFPROTO_INET, 'vxt', [{ set: 'm', flush: true, add: el, remove: [Uint8Array.from([9, 9, 9, 9])] }], 7);
  const ms = messages(bytes);
  t.same(ms.map((m) => m.type), [0x10, 0x0a0e, 0x0a0e, 0x0a0c, 0x11], 'BATCH_BEGIN, DELSETELEM (flush), DELSETELEM, NEWSETELEM, BATCH_END');
  t.same(ms.map((m) => m.seq), [7, 8, 9, 10, 11]);
  t.same(seqs, [8, 9, 10], 'every message but begin and end asks for an acknowledgement');
  t.ok(ms.slice(1, 4).every((m) => (m.flags & 0x5) === 0x5), 'REQUEST | ACK');
  t.equal(ms[3]!.flags & 0x400, 0x400, 'adds: CREATE');
  t.equal(ms[0]!.body.readUInt16BE(2), 10, 'begin names the nftables subsystem');
  t.equal(ms[1]!.body[0], NFPROTO_INET, 'family inet');
  const flush = attrs(ms[1]!.body, 4);
  t.same(flush.map(([k, v]) => [k, v.toString('latin1')]), [[1, 'vxt\0'], [2, 'm\0']], 'a flush: table and set, no elements');
  const add = attrs(ms[3]!.body, 4);
  const list = attrs(add[2]![1]);
  t.equal(list.length, 2, 'two elements');
  const first = attrs(list[0]![1]);
  t.equal(hex(attrs(first[0]![1])[0]![1]), '0a000001', 'the key');
  t.equal(hex(attrs(first[1]![1])[0]![1]), '01020304', 'the value');
  const verdict = attrs(attrs(attrs(list[1]![1])[1]![1])[0]![1]);
  t.equal(verdict[0]![1].readInt32BE(0), -4, 'goto');
  t.equal(verdict[1]![1].toString('latin1'), 'pick2\0', 'the chain');
  t.equal(bytes.length % 4, 0);
});

t.test('large element lists are cut into several messages', async (t) => {
  const add = Array.from({ length: 5000 }, (_, i) => ({ key: Uint8Array.from([10, 0, i >> 8, i & 255, 6, 0, 0, 0, 0, 80, 0, 0]) }));
  const { bytes, seqs } = encodeSetBatch(NFPROTO_INET, 'vxt', [{ set: 's', add }]);
  t.ok(seqs.length > 1, `${seqs.length} messages`);
  const count = messages(bytes).slice(1, -1).reduce((n, m) => n + attrs(attrs(m.body, 4)[2]![1]).length, 0);
  t.equal(count, 5000, 'every element once');
});

t.test('packed elements encode as the same elements one by one', async (t) => {
  const keys = Uint8Array.from([10, 0, 0, 1, 10, 0, 0, 2]);
  const values = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
  const one = encodeSetBatch(NFPROTO_INET, 'vxt', [{ set: 'm', add: [{ key: keys.subarray(0, 4), value: values.subarray(0, 4) }, { key: keys.subarray(4), value: values.subarray(4) }] }]);
  const packed = encodeSetBatch(NFPROTO_INET, 'vxt', [{ set: 'm', packed: { count: 2, keyLen: 4, keys, valueLen: 4, values } }]);
  t.equal(packed.bytes.toString('hex'), one.bytes.toString('hex'), 'values');
  const vOne = encodeSetBatch(NFPROTO_INET, 'vxt', [{ set: 'v', add: [{ key: keys.subarray(0, 4), value: { goto: 'pick3' } }, { key: keys.subarray(4), value: { goto: 'pick1' } }] }]);
  const vPacked = encodeSetBatch(NFPROTO_INET, 'vxt', [{ set: 'v', packed: { count: 2, keyLen: 4, keys, gotos: ['pick0', 'pick1', 'pick2', 'pick3'], gotoOf: Uint8Array.from([3, 1]) } }]);
  t.equal(vPacked.bytes.toString('hex'), vOne.bytes.toString('hex'), 'verdicts');
});

t.test('acknowledgements', async (t) => {
  const ack = (seq: number, errno: number): Buffer => {
    const b = Buffer.alloc(36);
    b.writeUInt32LE(36, 0); b.writeUInt16LE(2, 4); b.writeUInt32LE(seq, 8); b.writeInt32LE(-errno, 16);
    return b;
  };
  t.same([...acksOf(Buffer.concat([ack(3, 0), ack(4, 22)]))], [[3, 0], [4, 22]]);
});

t.test('a VIP table in binary form: keys ADDR . PROTO . PORT padded to 4 bytes, values ADDR . PORT, goto pickN', async (t) => {
  const entries: VipEntry[] = [
    { ip: ip('10.96.0.1'), protocol: 'tcp', port: 80, backends: [{ ip: ip('10.0.0.2'), port: 8080, weight: 1 }, { ip: ip('10.0.0.3'), port: 8080, weight: 2 }] },
    { ip: ip('fd00::1'), protocol: 'udp', port: 53, backends: [{ ip: ip('fd01::2'), port: 5353, weight: 1 }] },
    { ip: ip('10.96.0.9'), protocol: 'udp', port: 53, backends: [] },
  ];
  const index = new VipIndex();
  index.replaceAll(entries, false);
  const ops = index.encodeFull();
  t.equal(ops.length, 6 + 2 * MAX_SLOTS, 'every map and set of the skeleton');
  t.ok(ops.every((o) => o.flush), 'each flushed first');
  const of = (set: string) => {
    const p = ops.find((o) => o.set === set)?.packed;
    if (!p) return [];
    return Array.from({ length: p.count }, (_, i) => [
      hex(p.keys.subarray(i * p.keyLen, (i + 1) * p.keyLen)),
      p.values && p.valueLen ? hex(p.values.subarray(i * p.valueLen, (i + 1) * p.valueLen)) : p.gotos && p.gotoOf ? { goto: p.gotos[p.gotoOf[i]!] } : undefined,
    ]);
  };
  t.same(of('services4'), [['0a600001' + '06000000' + '00500000', { goto: 'pick3' }]], 'weights 1:2 are three slots');
  t.same(of('slot0_4'), [['0a60000106000000' + '00500000', '0a000002' + '1f900000']]);
  t.same(of('slot2_4'), [['0a60000106000000' + '00500000', '0a000003' + '1f900000']]);
  t.same(of('services6'), [['fd000000000000000000000000000001' + '11000000' + '00350000', { goto: 'pick1' }]]);
  t.same(of('slot0_6'), [['fd000000000000000000000000000001' + '11000000' + '00350000', 'fd010000000000000000000000000002' + '14e90000']]);
  t.same(of('noep4'), [['0a600009' + '11000000' + '00350000', undefined]]);
  t.same(of('hairpin4').map((e) => e[0]).sort(), ['0a0000020a000002', '0a0000030a000003']);
  t.same(of('hairpin6'), [['fd010000000000000000000000000002'.repeat(2), undefined]]);
  t.equal(index.elements, 1 + 3 + 1 + 1 + 1 + 2 + 1, 'elements counted');
});
