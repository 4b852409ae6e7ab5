// dns/cache.ts with an injected clock: TTLs honoured and capped, negative caching, bounds.
import type { Answer } from 'dns-packet';
import t from 'tap';
import { ReplyCache, cacheKey } from '../../dns/cache';
import type { Reply } from '../../dns/wire';

function clock(): { now: () => number; advance: (s: number) => void } {
  let ms = 1_000_000;
  return { now: () => ms, advance: (s) => { ms += s * 1000; } };
}
const a = (ttl: number, data = '192.0.2.1'): Answer => ({ name: 'example.com', type: 'A', class: 'IN', ttl, data });
const soa = (ttl: number, minimum: number): Answer => ({
  name: 'example.com', type: 'SOA', class: 'IN', ttl,
  data: { mname: 'ns.example.com', rname: 'h.example.com', serial: 1, refresh: 1, retry: 1, expire: 1, minimum },
});
const positive = (...answers: Answer[]): Reply => ({ rcode: 'NOERROR', aa: true, answers, authorities: [], additionals: [] });
const negative = (rcode: 'NOERROR' | 'NXDOMAIN', ...authorities: Answer[]): Reply => ({ rcode, aa: true, answers: [], authorities, additionals: [] });

t.test('cacheKey separates type, DO and CD, and names that only read alike', async (t) => {
  const q = { name: 'example.com', type: 'A', typeCode: 1, plain: true };
  const wire = Buffer.from('076578616d706c6503636f6d0000010001', 'hex');
  const keys = new Set([cacheKey(q, wire, false, false), cacheKey(q, wire, true, false), cacheKey(q, wire, false, true), cacheKey({ ...q, type: 'AAAA', typeCode: 28 }, wire, false, false)]);
  t.equal(keys.size, 4);
  // "a.b" as one label and "a", "b" as two: the same text, not the same name.
  const oneLabel = Buffer.from('03612e62076578616d706c650000010001', 'hex');
  const dotted = { name: 'a.b.example', type: 'A', typeCode: 1, plain: false };
  const twoLabels = Buffer.from('016101620765786d706c650000010001', 'hex');
  t.not(cacheKey(dotted, oneLabel, false, false), cacheKey({ ...dotted, plain: true }, twoLabels, false, false));
  const upper = Buffer.from('03412e42076578616d706c650000010001', 'hex');
  t.equal(cacheKey(dotted, oneLabel, false, false), cacheKey(dotted, upper, false, false), 'case does not matter');
});

t.test('positive answers: kept for the lowest TTL, TTLs counted down, gone after', async (t) => {
  const c = clock();
  const cache = new ReplyCache({ now: c.now });
  t.equal(cache.put('k', positive(a(60), a(30, '192.0.2.2')), 100), 30, 'the lowest TTL');
  t.match(cache.get('k'), { rcode: 'NOERROR', aa: false, answers: [{ ttl: 30 }, { ttl: 30 }] }, 'not authoritative from the cache');
  c.advance(10);
  t.match(cache.get('k')!.answers, [{ ttl: 20 }, { ttl: 20 }], 'aged by 10 s');
  c.advance(19.5);
  t.match(cache.get('k')!.answers, [{ ttl: 1 }], 'half a second left');
  c.advance(0.5);
  t.equal(cache.get('k'), undefined, 'expired at 30 s');
  t.equal(cache.size, 0, 'and removed');
});

t.test('TTLs are capped; TTL 0 is not cached', async (t) => {
  const c = clock();
  const cache = new ReplyCache({ now: c.now, maxTtl: 60 });
  t.equal(cache.put('k', positive(a(86400)), 100), 60);
  t.match(cache.get('k')!.answers, [{ ttl: 60 }]);
  c.advance(60);
  t.equal(cache.get('k'), undefined);
  t.equal(cache.put('z', positive(a(0)), 100), 0);
  t.equal(cache.get('z'), undefined);
});

t.test('negative caching: min(SOA TTL, SOA minimum), capped; no SOA or SERVFAIL: not cached', async (t) => {
  const c = clock();
  const cache = new ReplyCache({ now: c.now, maxNegativeTtl: 100 });
  t.equal(cache.put('nx', negative('NXDOMAIN', soa(300, 20)), 80), 20, 'NXDOMAIN: the minimum');
  t.equal(cache.put('nodata', negative('NOERROR', soa(15, 900)), 80), 15, 'NODATA: the SOA TTL');
  t.equal(cache.put('capped', negative('NXDOMAIN', soa(3600, 3600)), 80), 100, 'capped');
  t.equal(cache.put('nosoa', negative('NXDOMAIN'), 80), 0, 'no SOA');
  t.equal(cache.put('fail', { rcode: 'SERVFAIL', aa: false, answers: [], authorities: [], additionals: [] }, 80), 0, 'SERVFAIL');
  t.match(cache.get('nx'), { rcode: 'NXDOMAIN', answers: [], authorities: [{ type: 'SOA', ttl: 20 }] });
  c.advance(16);
  t.equal(cache.get('nodata'), undefined, 'NODATA gone after 15 s');
  t.match(cache.get('nx')!.authorities, [{ ttl: 4 }]);
  c.advance(4);
  t.equal(cache.get('nx'), undefined, 'NXDOMAIN gone after 20 s');
});

t.test('OPT records are not kept', async (t) => {
  const cache = new ReplyCache({ now: clock().now });
  const opt = { name: '.', type: 'OPT', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] } as Answer;
  cache.put('k', { ...positive(a(30)), additionals: [opt] }, 100);
  t.same(cache.get('k')!.additionals, []);
});

t.test('bounded: entries and bytes, least recently used first', async (t) => {
  const c = clock();
  const cache = new ReplyCache({ now: c.now, maxEntries: 3, maxBytes: 1000 });
  for (const k of ['a', 'b', 'c']) cache.put(k, positive(a(60)), 100);
  cache.get('a'); // a is now the most recent
  cache.put('d', positive(a(60)), 100);
  t.equal(cache.size, 3);
  t.equal(cache.get('b'), undefined, 'b, the least recently used, went');
  t.ok(cache.get('a') && cache.get('c') && cache.get('d'));
  cache.put('big', positive(a(60)), 950);
  t.ok(cache.get('big'), 'the new entry stays');
  t.equal(cache.size, 1, 'the others made room for its bytes');
  t.equal(cache.put('huge', positive(a(60)), 1001), 0, 'larger than the whole budget: not kept');
  for (let i = 0; i < 10_000; i++) cache.put(`k${i}`, positive(a(60)), 10);
  t.equal(cache.size, 3, 'never above maxEntries');
});
