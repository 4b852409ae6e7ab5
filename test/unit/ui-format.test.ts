// The web view's pure parts under Node (ui/format.ts, ui/sse.ts): what the page prints for
// usage and times, the allocation search, address order, the event-stream parser.
import t from 'tap';
import { ago, blocksByHost, compareAddresses, count, looksLikeAddress, percent, searchAllocations, shortId, sortAllocations, timeline } from '../../ui/format';
import { parseSse } from '../../ui/sse';
import type { Allocation } from '../../ui/types';

const alloc = (address: string, more: Partial<Allocation> = {}): Allocation => ({ network: 'net1', address, containerId: `c-${address}`, ...more });

t.test('usage and numbers', async (t) => {
  t.equal(percent(0, 254), '0%');
  t.equal(percent(1, 254), '<1%');
  t.equal(percent(127, 254), '50%');
  t.equal(percent(65533, 65534), '>99%');
  t.equal(percent(254, 254), '100%');
  t.equal(percent(3, 0), '0%', 'an empty pool is 0%, not NaN');
  t.equal(count(65534), '65,534');
  t.equal(count(Number.NaN), '-');
  t.equal(count('18446744073709551616'), '18,446,744,073,709,551,616', 'a decimal string past 2^53: exact');
  t.equal(count(null), '-');
  t.equal(percent(1, '18446744073709551616'), '<1%', 'of an IPv6 pool');
  t.equal(percent(64, '256'), '25%', 'size as a string');
});

t.test('times', async (t) => {
  const now = Date.parse('2026-12-05T14:00:00Z');
  t.equal(ago('2026-12-05T13:59:48Z', now), '12s ago');
  t.equal(ago('2026-12-05T13:55:00Z', now), '5m ago');
  t.equal(ago('2026-12-05T11:00:00Z', now), '3h ago');
  t.equal(ago('2026-12-03T14:00:00Z', now), '2d ago');
  t.equal(ago('2026-12-05T14:00:20Z', now), 'in 20s', 'a lease expiring ahead');
  t.equal(ago('not a time', now), '');
  t.equal(shortId('0123456789abcdef0123'), '0123456789ab');
});

t.test('search: every word somewhere in address, name, container, network, host', async (t) => {
  const all = [alloc('10.1.0.2', { name: 'web-0' }), alloc('10.1.0.10', { name: 'db-0', host: 'h2' }), alloc('10.1.0.3', { network: 'other', name: 'web-1' })];
  t.same(searchAllocations(all, '').length, 3, 'nothing typed: everything');
  t.same(searchAllocations(all, '10.1.0.1').map((a) => a.address), ['10.1.0.10'], 'an address prefix');
  t.same(searchAllocations(all, 'WEB').map((a) => a.name), ['web-0', 'web-1'], 'a name, any case');
  t.same(searchAllocations(all, 'web other').map((a) => a.name), ['web-1'], 'two words: both must match');
  t.same(searchAllocations(all, 'h2').map((a) => a.name), ['db-0'], 'a host');
  t.same(searchAllocations(all, 'nothing-like-this'), []);
});

t.test('address order', async (t) => {
  t.ok(compareAddresses('10.0.0.9', '10.0.0.10') < 0, 'numeric, not text');
  t.ok(compareAddresses('10.0.0.9/24', '10.0.0.10/24') < 0, 'CIDRs by their address');
  t.ok(compareAddresses('255.0.0.1', 'fd00::1') < 0, 'IPv4 before IPv6');
  t.ok(compareAddresses('fd00::2', 'fd00::10') < 0, 'IPv6 groups as numbers');
  t.ok(compareAddresses('fd00:0:0:1::', 'fd00::2') > 0, ':: expanded');
  t.same(sortAllocations([alloc('10.1.0.10'), alloc('10.1.0.9', { network: 'b' }), alloc('10.1.0.2')]).map((a) => `${a.network} ${a.address}`),
    ['b 10.1.0.9', 'net1 10.1.0.2', 'net1 10.1.0.10']);
  t.same([...blocksByHost([{ network: 'n', cidr: '10.1.1.0/26', host: 'h1', size: 64, used: 1, free: 63 }, { network: 'n', cidr: '10.1.0.0/26', host: 'h1', size: 64, used: 0, free: 64 },
    { network: 'n', cidr: '10.1.0.64/26', host: 'h2', size: 64, used: 0, free: 64 }]).entries()].map(([h, bs]) => `${h}: ${bs.map((b) => b.cidr).join(' ')}`),
  ['h1: 10.1.0.0/26 10.1.1.0/26', 'h2: 10.1.0.64/26']);
});

t.test('timeline newest first; what looks like an address', async (t) => {
  const ev = (at: string, action: string) => ({ network: 'n', address: '10.1.0.2', action, containerId: 'c', at });
  t.same(timeline([ev('2026-12-05T14:00:00Z', 'allocate'), ev('2026-12-05T14:05:00Z', 'release'), ev('2026-12-05T14:06:00Z', 'allocate')]).map((e) => e.at),
    ['2026-12-05T14:06:00Z', '2026-12-05T14:05:00Z', '2026-12-05T14:00:00Z']);
  for (const a of ['10.1.0.2', 'fd00::1', '2001:db8::']) t.ok(looksLikeAddress(a), a);
  for (const a of ['web-0', '10.1', 'cafe', '']) t.notOk(looksLikeAddress(a), JSON.stringify(a));
});

t.test('the event stream parser', async (t) => {
  let r = parseSse('event: change\ndata: {"resource":"allocations"}\n\n: keep-alive\n\nevent: change\ndata: {"res');
  t.same(r.events, [{ event: 'change', data: '{"resource":"allocations"}' }], 'one complete event; the comment skipped');
  t.equal(r.rest, 'event: change\ndata: {"res', 'the unfinished event stays in the buffer');
  r = parseSse(`${r.rest}ource":"vips"}\r\n\r\n`);
  t.same(r.events, [{ event: 'change', data: '{"resource":"vips"}' }], 'completed by the next chunk; CRLF line ends');
  r = parseSse('data: a\ndata: b\nid: 7\n\n');
  t.same(r.events, [{ event: 'message', data: 'a\nb', id: '7' }], 'multi-line data; the default event type');
  t.same(parseSse('event: change\n\n').events, [], 'an event without data is not dispatched');
});
