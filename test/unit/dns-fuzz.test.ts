// Fuzzing the decode+answer path (dns/handler.ts over wire.ts and zone.ts): a few hundred
// thousand packets mutated from valid queries (bit flips, truncations, splices of random bytes,
// repeated fields) and plain random bytes. Nothing may throw, every answer must be a DNS
// message a client can decode with the query's ID and within the UDP limit, no packet may take
// long, and the heap may not grow with the number of packets.
import * as dnsPacket from 'dns-packet';
import type { Answer } from 'dns-packet';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import { Ip, parseIp } from '../../ipam/addr';
import { createHandler } from '../../dns/handler';
import { createLogger } from '../../lib/log';
import type { Query, Reply } from '../../dns/wire';
import { Zone } from '../../dns/zone';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const PACKETS = Number(process.env.VXNET_DNS_FUZZ ?? 300_000);
const seed = Number(process.env.VXNET_DNS_FUZZ_SEED ?? Date.now() % 0x7fffffff);

/** xorshift32: reproducible from the seed printed in the test name. */
function rng(s: number): () => number {
  let x = s || 1;
  return () => {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

const ip = (text: string): Ip => parseIp(text)!;
const zone = new Zone({ nameserverAddresses: [ip('127.0.0.1')] });
for (let i = 0; i < 50; i++) {
  zone.set(`e${i}`, { name: `web-${i}`, network: 'blue', service: i % 2 ? 'web' : 'api', addresses: [{ family: 4, value: 0x0a000000n + BigInt(i) }, { family: 6, value: 0xfd00n << 112n | BigInt(i) }], ports: [{ port: 80 + i, protocol: i % 3 ? 'tcp' : 'udp', name: 'http' }] });
}
// The forwarder's stand-in answers at once with records named after the question, as an
// upstream would, so the forwarded path's encoding is fuzzed too. A name that is not plain
// (a dot inside a label) cannot be re-encoded as it was asked: encodeReply refuses it
// (SERVFAIL, an internal error), so the stand-in names those records otherwise.
const forwarder = {
  resolve: (q: Query): Promise<Reply> => Promise.resolve({
    rcode: 'NOERROR', aa: false, additionals: [], authorities: [],
    answers: [{ name: q.question.plain ? q.question.name : 'other.example', type: 'A', class: 'IN', ttl: 30, data: '192.0.2.1' } as Answer],
  }),
};
const handler = createHandler({ zone, forwarder, allow: () => true, log: process.env.FUZZ_LOG ? createLogger('fuzz', 'error') : undefined });

const seeds: Buffer[] = [];
const names = ['web-1.vxnet', 'web.vxnet', 'api.blue.vxnet', '_web._tcp.vxnet', '_http._udp.api.vxnet', 'vxnet', 'nope.vxnet', '1.0.0.10.in-addr.arpa', 'www.example.com', 'a.b.c.d.e.f.example'];
const types: dnsPacket.RecordType[] = ['A', 'AAAA', 'SRV', 'PTR', 'SOA', 'NS', 'TXT', 'MX'];
for (const name of names) {
  for (const type of types) {
    seeds.push(dnsPacket.encode({ type: 'query', id: seeds.length, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }] }));
    seeds.push(dnsPacket.encode({
      type: 'query', id: seeds.length, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }],
      additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: dnsPacket.DNSSEC_OK, flag_do: true, options: [{ code: 10, data: Buffer.alloc(8, 7) } as unknown as dnsPacket.PacketOpt] }],
    }));
  }
}

function mutate(r: () => number): Buffer {
  const pick = (n: number): number => Math.floor(r() * n);
  const base = seeds[pick(seeds.length)];
  switch (pick(6)) {
    case 0: { // bit flips
      const b = Buffer.from(base);
      for (let i = 1 + pick(8); i > 0; i--) b[pick(b.length)] ^= 1 << pick(8);
      return b;
    }
    case 1: // truncation
      return base.subarray(0, pick(base.length));
    case 2: { // random bytes spliced in or over
      const b = Buffer.from(base);
      const at = pick(b.length);
      const junk = Buffer.from(Array.from({ length: 1 + pick(16) }, () => pick(256)));
      return r() < 0.5 ? Buffer.concat([b.subarray(0, at), junk, b.subarray(at)]) : Buffer.concat([b.subarray(0, at), junk]);
    }
    case 3: { // header counts and flags at random
      const b = Buffer.from(base);
      b.writeUInt16BE(pick(0x10000), 2 * (1 + pick(5)));
      return b;
    }
    case 4: { // a segment repeated (compression-pointer and label soup)
      const at = pick(base.length);
      const seg = base.subarray(at, at + 1 + pick(20));
      return Buffer.concat([base, seg, seg, seg]);
    }
    default: // random bytes
      return Buffer.from(Array.from({ length: pick(600) }, () => pick(256)));
  }
}

t.test(`${PACKETS} mutated packets through the handler (seed ${seed})`, async (t) => {
  t.setTimeout(240_000);
  const r = rng(seed);
  let answered = 0, silent = 0, slowest = 0, bad = 0;
  const byRcode = new Map<number, number>();
  const check = (input: Buffer, out: Buffer | undefined): void => {
    if (!out) { silent++; return; }
    answered++;
    const rcode = out.readUInt16BE(2) & 0xf;
    byRcode.set(rcode, (byRcode.get(rcode) ?? 0) + 1);
    let ok = out.length <= 1232 && out.readUInt16BE(0) === input.readUInt16BE(0) && (out.readUInt16BE(2) & 0x8000) !== 0;
    try { dnsPacket.decode(out); } catch { ok = false; }
    if (!ok && bad++ < 5) t.fail('an answer a client cannot use', { input: input.toString('hex'), output: out.toString('hex') });
  };
  let heapAtWarm = 0;
  const started = Date.now();
  for (let i = 0; i < PACKETS; i++) {
    const input = mutate(r);
    const t0 = process.hrtime.bigint();
    let out: ReturnType<typeof handler.handle>;
    try {
      out = handler.handle(input, ip('127.0.0.1'), 'udp');
    } catch (err) {
      t.fail(`threw on ${input.toString('hex')}: ${(err as Error).stack}`);
      return;
    }
    if (out instanceof Promise) check(input, await out);
    else check(input, out);
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    if (us > slowest) slowest = us;
    if (i === 50_000) { gc(); heapAtWarm = process.memoryUsage().heapUsed; }
  }
  const seconds = (Date.now() - started) / 1000;
  gc();
  const growth = (process.memoryUsage().heapUsed - heapAtWarm) / 1048576;
  t.equal(bad, 0, 'every answer decodes, carries the ID, has QR set and fits 1232 bytes');
  t.equal(handler.stats.internalErrors, 0, 'no internal error (SERVFAIL) on the way');
  t.ok(answered > PACKETS / 10 && silent > 0, `answered ${answered}, silent ${silent}; rcodes ${JSON.stringify(Object.fromEntries(byRcode))}`);
  // A GC pause on a loaded machine reaches ~100-200 ms; a pathological decode would be seconds.
  t.ok(slowest < 500_000, `slowest packet ${(slowest / 1000).toFixed(2)} ms (< 500 ms)`);
  t.ok(seconds < 180, `${PACKETS} packets in ${seconds.toFixed(1)} s`);
  t.ok(growth < 16, `heap after 50k packets vs after ${PACKETS}: ${growth.toFixed(2)} MiB (< 16)`);
});
