// ipam/allocator.ts over a real embedded store in a temp dir: table cases in the manner of
// host-local's AllocatorTestCase (a pool, what is held, the last reserved address, what the
// next allocation must be), then sequences: round-robin, idempotence, static requests, dual stack.
import t from 'tap';
import { AllocationRequest, allocate } from '../../ipam/allocator';
import { RangeInput, RangeSet, canonicalRangeSets } from '../../ipam/range';
import type { Allocation, IpamStore } from '../../ipam/store/types';
import { ErrorShape, rejected } from '../ipam/helpers/errors';
import { ip, owner, tmpStore } from '../ipam/helpers/embedded';

const sets = (...input: RangeInput[][]): RangeSet[] => canonicalRangeSets(input);
const alloc = (store: IpamStore, request: AllocationRequest): Promise<Allocation[]> => store.withLock((tx) => allocate(tx, request));
const addresses = (allocations: readonly Allocation[]): string[] => allocations.map((a) => a.address);
const exhausted = (message: string): ErrorShape => ({ name: 'PoolExhausted', code: 100, message });
const unavailable = (message: string): ErrorShape => ({ name: 'AddressUnavailable', code: 101, message });

/** host-local's AllocatorTestCase: the pool (one range set), addresses held, lastReserved, and the expected next address. */
interface AllocatorTestCase {
  readonly name: string;
  readonly set: RangeInput[];
  readonly held?: readonly string[];
  readonly lastReserved?: string;
  readonly expect: string | ErrorShape;
}

const A: RangeInput[] = [{ subnet: '10.0.0.0/29' }]; // hands out .2-.6; .1 is the gateway
const B: RangeInput[] = [{ subnet: '10.0.0.0/29' }, { subnet: '10.0.1.0/29' }];
const hosts = (prefix: string, from: number, to: number): string[] => Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}`);

const cases: AllocatorTestCase[] = [
  { name: 'empty pool: the first address after the gateway', set: A, expect: '10.0.0.2' },
  { name: 'the address after lastReserved', set: A, lastReserved: '10.0.0.2', expect: '10.0.0.3' },
  { name: 'lastReserved released: still the one after it', set: A, lastReserved: '10.0.0.4', expect: '10.0.0.5' },
  { name: 'held addresses are skipped', set: A, held: ['10.0.0.2', '10.0.0.3'], lastReserved: '10.0.0.2', expect: '10.0.0.4' },
  { name: 'wrap-around at rangeEnd', set: A, lastReserved: '10.0.0.6', expect: '10.0.0.2' },
  { name: 'wrap-around past held addresses', set: A, held: ['10.0.0.6', '10.0.0.2'], lastReserved: '10.0.0.5', expect: '10.0.0.3' },
  { name: 'only the address before lastReserved is free', set: A, held: ['10.0.0.2', '10.0.0.3', '10.0.0.5', '10.0.0.6'], lastReserved: '10.0.0.5', expect: '10.0.0.4' },
  { name: 'lastReserved outside the ranges (the config changed): from rangeStart', set: A, lastReserved: '10.9.9.9', expect: '10.0.0.2' },
  { name: 'exhausted', set: A, held: hosts('10.0.0.', 2, 6),
    expect: exhausted('no free address in network "net" pool 10.0.0.1-10.0.0.6: all 5 addresses are in use') },
  { name: 'gateway inside a custom range is skipped', set: [{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.1', rangeEnd: '10.0.0.3', gateway: '10.0.0.2' }],
    lastReserved: '10.0.0.1', expect: '10.0.0.3' },
  { name: 'gateway at rangeEnd: wrap instead', set: [{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.12', gateway: '10.0.0.12' }],
    lastReserved: '10.0.0.11', expect: '10.0.0.10' },
  { name: 'custom range: starts at rangeStart', set: [{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.100', rangeEnd: '10.0.0.102' }], expect: '10.0.0.100' },
  { name: 'custom range: wraps within itself', set: [{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.100', rangeEnd: '10.0.0.102' }],
    lastReserved: '10.0.0.102', expect: '10.0.0.100' },
  { name: 'custom range exhausted while the subnet is not', set: [{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.100', rangeEnd: '10.0.0.101' }],
    held: ['10.0.0.100', '10.0.0.101'], expect: exhausted('no free address in network "net" pool 10.0.0.100-10.0.0.101: all 2 addresses are in use') },
  { name: 'two ranges: empty', set: B, expect: '10.0.0.2' },
  { name: 'two ranges: end of the first goes to the second, past its gateway', set: B, lastReserved: '10.0.0.6', expect: '10.0.1.2' },
  { name: 'two ranges: end of the last wraps to the first', set: B, lastReserved: '10.0.1.6', expect: '10.0.0.2' },
  { name: 'two ranges: rest of the first held', set: B, held: hosts('10.0.0.', 4, 6), lastReserved: '10.0.0.3', expect: '10.0.1.2' },
  { name: 'two ranges: rest of the second held, wrap to the first', set: B, held: ['10.0.1.5', '10.0.1.6', '10.0.0.2'], lastReserved: '10.0.1.4', expect: '10.0.0.3' },
  { name: 'two ranges: only the start of lastReserved\'s range is free', set: B, held: [...hosts('10.0.0.', 2, 6), ...hosts('10.0.1.', 3, 6)],
    lastReserved: '10.0.1.3', expect: '10.0.1.2' },
  { name: 'two ranges exhausted', set: B, held: [...hosts('10.0.0.', 2, 6), ...hosts('10.0.1.', 2, 6)],
    expect: exhausted('no free address in network "net" pool 10.0.0.1-10.0.0.6,10.0.1.1-10.0.1.6: all 10 addresses are in use') },
  { name: 'IPv6: first after the gateway', set: [{ subnet: '2001:db8::/64' }], expect: '2001:db8::2' },
  { name: 'IPv6: the last address of the subnet is handed out (no broadcast)', set: [{ subnet: '2001:db8::/64' }],
    lastReserved: '2001:db8::ffff:ffff:ffff:fffe', expect: '2001:db8::ffff:ffff:ffff:ffff' },
  { name: 'IPv6: wrap-around', set: [{ subnet: '2001:db8::/64' }], lastReserved: '2001:db8::ffff:ffff:ffff:ffff', expect: '2001:db8::2' },
  { name: 'IPv6 exhausted', set: [{ subnet: 'fd00::4/126' }], held: ['fd00::6', 'fd00::7'],
    expect: exhausted('no free address in network "net" pool fd00::5-fd00::7: all 2 addresses are in use') },
  // More held addresses in a row than the allocator scans per store call (512).
  { name: 'a held run longer than one scan batch', set: [{ subnet: '10.0.0.0/22' }],
    held: Array.from({ length: 600 }, (_, i) => `10.0.${(i + 2) >> 8}.${(i + 2) & 255}`), expect: '10.0.2.90' },
];

t.test('AllocatorTestCase table', async (t) => {
  for (const c of cases) {
    const { store } = await tmpStore(t);
    const rangeSets = sets(c.set);
    await store.withLock(async (tx) => {
      // Held addresses go in as another range set's, so they do not move this set's lastReserved.
      for (const [i, a] of (c.held ?? []).entries()) {
        if (a !== c.lastReserved && !(await tx.reserve(owner(`held-${i}`), ip(a), 99))) throw new Error(`${c.name}: ${a} listed twice`);
      }
      if (c.lastReserved !== undefined) {
        await tx.reserve(owner('last'), ip(c.lastReserved), 0);
        if (!c.held?.includes(c.lastReserved)) await tx.releaseAddress('net', ip(c.lastReserved), 'test');
      }
    });
    const result = alloc(store, { owner: owner('new'), rangeSets });
    if (typeof c.expect === 'string') t.same(addresses(await result), [c.expect], c.name);
    else t.strictSame(await rejected(result), c.expect, c.name);
  }
});

t.test('round-robin: a freed address is not handed out next', async (t) => {
  const { store } = await tmpStore(t);
  const rangeSets = sets(A);
  const next = async (id: string): Promise<string> => addresses(await alloc(store, { owner: owner(id), rangeSets }))[0];
  t.equal(await next('c1'), '10.0.0.2');
  t.equal(await next('c2'), '10.0.0.3');
  t.equal(await next('c3'), '10.0.0.4');
  await store.withLock((tx) => tx.releaseByOwner('net', 'c1', 'eth0', 'del'));
  t.equal(await next('c4'), '10.0.0.5', 'not the just-freed 10.0.0.2');
  t.equal(await next('c5'), '10.0.0.6');
  t.equal(await next('c6'), '10.0.0.2', 'wraps around to the freed address');
  t.strictSame(await rejected(next('c7')), exhausted('no free address in network "net" pool 10.0.0.1-10.0.0.6: all 5 addresses are in use'));
  const all = await store.view((tx) => tx.list({ network: 'net' }));
  t.same(addresses(all), hosts('10.0.0.', 2, 6), 'every address but the gateway, each once');
  t.notOk(all.some((a) => a.address === '10.0.0.1'), 'the gateway was never handed out');
});

t.test('exhaustion is PoolExhausted with a plugin code and the pool named', async (t) => {
  const { store } = await tmpStore(t);
  const rangeSets = sets([{ subnet: '10.3.0.0/30' }]);
  t.same(addresses(await alloc(store, { owner: owner('a', { network: 'tiny' }), rangeSets })), ['10.3.0.2']);
  const err = await rejected(alloc(store, { owner: owner('b', { network: 'tiny' }), rangeSets }));
  t.equal(err?.name, 'PoolExhausted');
  t.ok(err && err.code !== undefined && err.code >= 100, 'a plugin-specific code (>= 100)');
  t.match(err?.message, /network "tiny" pool 10\.3\.0\.1-10\.3\.0\.2/);
});

t.test('a repeated allocate for the same (network, containerId, ifname) is idempotent', async (t) => {
  const { store } = await tmpStore(t);
  const rangeSets = sets(A);
  const first = await alloc(store, { owner: owner('c1'), rangeSets });
  const again = await alloc(store, { owner: owner('c1'), rangeSets });
  t.same(again, first, 'the same allocation, since included');
  t.equal(await store.view((tx) => tx.countByNetwork('net')), 1);
  t.same(addresses(await alloc(store, { owner: owner('c1', { ifname: 'net1' }), rangeSets })), ['10.0.0.3'], 'another ifname is another attachment');
  t.same(addresses(await alloc(store, { owner: owner('c1', { network: 'other' }), rangeSets })), ['10.0.0.2'], 'another network is another pool');
  t.same(addresses(await alloc(store, { owner: owner('c2'), rangeSets })), ['10.0.0.4'], 'the repeats did not move round-robin');
  t.same(await alloc(store, { owner: owner('c1'), rangeSets, requested: [ip('10.0.0.2')] }), first, 'asking again for what it holds changes nothing');
});

t.test('static requests', async (t) => {
  const { store } = await tmpStore(t);
  const rangeSets = sets(A);
  const holder = await alloc(store, { owner: owner('ctr-a', { name: 'web-0' }), rangeSets, requested: [ip('10.0.0.5')] });
  t.same(addresses(holder), ['10.0.0.5'], 'honoured');
  t.same(addresses(await alloc(store, { owner: owner('ctr-x'), rangeSets })), ['10.0.0.6'], 'round-robin continues after a static reservation');

  const since = new Date(holder[0].since).toISOString();
  const refusals: Array<[string, string[], string]> = [
    ['the gateway', ['10.0.0.1'], 'requested IP 10.0.0.1 is the gateway of network "net"'],
    ['held by another container: names the holder', ['10.0.0.5'],
      `requested IP 10.0.0.5 is not available in range set 10.0.0.1-10.0.0.6: held by container ctr-a (web-0) eth0 since ${since}`],
    ['outside every range', ['10.9.0.5'], 'requested IP 10.9.0.5 is outside every range of network "net" (10.0.0.1-10.0.0.6)'],
    ['the broadcast address', ['10.0.0.7'], 'requested IP 10.0.0.7 is outside every range of network "net" (10.0.0.1-10.0.0.6)'],
    ['the other family', ['2001:db8::5'], 'requested IP 2001:db8::5 is outside every range of network "net" (10.0.0.1-10.0.0.6)'],
    ['two in one range set', ['10.0.0.3', '10.0.0.4'],
      'requested IPs 10.0.0.3 and 10.0.0.4 fall in the same range set 10.0.0.1-10.0.0.6; ask for one address per set'],
  ];
  for (const [name, requested, message] of refusals) {
    t.strictSame(await rejected(alloc(store, { owner: owner('ctr-b'), rangeSets, requested: requested.map(ip) })), unavailable(message), name);
  }
  t.same(await store.view((tx) => tx.listByOwner('net', 'ctr-b')), [], 'a refused request leaves nothing behind');

  const c = await alloc(store, { owner: owner('ctr-c'), rangeSets });
  t.same(addresses(c), ['10.0.0.2']);
  t.strictSame(await rejected(alloc(store, { owner: owner('ctr-c'), rangeSets, requested: [ip('10.0.0.3')] })),
    { name: 'AttachmentDrifted', code: 102, message: 'container ctr-c eth0 already holds 10.0.0.2 in network "net"; this ADD asks for 10.0.0.3: DEL the attachment first' },
    'a repeated ADD asking for another static address is refused');
  t.same(addresses(await store.view((tx) => tx.listByOwner('net', 'ctr-c'))), ['10.0.0.2'], 'the held address is kept');
  t.same(await store.view((tx) => tx.history('net', ip('10.0.0.2'))), [], 'and was never released');
  t.equal(await store.view((tx) => tx.ownerOf('net', ip('10.0.0.3'))), undefined, 'nothing was reserved for the refused ADD');
});

t.test('IPv6 and dual stack: one address per range set', async (t) => {
  const { store } = await tmpStore(t);
  const rangeSets = sets([{ subnet: '10.0.0.0/24' }], [{ subnet: '2001:db8::/64' }]);
  const a = await alloc(store, { owner: owner('a'), rangeSets });
  t.same(a.map((x) => [x.rangeSet, x.family, x.address]), [[0, 4, '10.0.0.2'], [1, 6, '2001:db8::2']]);
  const b = await alloc(store, { owner: owner('b'), rangeSets, requested: [ip('2001:db8::abcd')] });
  t.same(b.map((x) => [x.rangeSet, x.address]), [[0, '10.0.0.3'], [1, '2001:db8::abcd']], 'static v6, round-robin v4');
  const c = await alloc(store, { owner: owner('c'), rangeSets, requested: [ip('2001:db8::abcc'), ip('10.0.0.200')] });
  t.same(c.map((x) => [x.rangeSet, x.address]), [[0, '10.0.0.200'], [1, '2001:db8::abcc']], 'static in both, in any order');
  t.same(addresses(await alloc(store, { owner: owner('d'), rangeSets })), ['10.0.0.201', '2001:db8::abce'],
    'each set round-robins from its own lastReserved');

  // A single-stack attachment re-added once the network went dual-stack gets both families.
  const v4only = sets([{ subnet: '10.0.0.0/24' }]);
  await alloc(store, { owner: owner('e', { network: 'grown' }), rangeSets: v4only });
  const grown = await alloc(store, { owner: owner('e', { network: 'grown' }), rangeSets });
  t.same(grown.map((x) => x.family), [4, 6]);

  // When the v6 set is exhausted, the v4 address reserved first in the same transaction is rolled back.
  const tinyV6 = sets([{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::4/126' }]);
  await alloc(store, { owner: owner('f1', { network: 'tiny' }), rangeSets: tinyV6 });
  await alloc(store, { owner: owner('f2', { network: 'tiny' }), rangeSets: tinyV6 });
  t.strictSame(await rejected(alloc(store, { owner: owner('f3', { network: 'tiny' }), rangeSets: tinyV6 })),
    exhausted('no free address in network "tiny" pool fd00::5-fd00::7: all 2 addresses are in use'));
  t.equal(await store.view((tx) => tx.countByNetwork('tiny')), 4, 'f3 holds nothing, not even its v4 address');
});

t.test('release moves the allocation to history', async (t) => {
  const { store } = await tmpStore(t);
  const rangeSets = sets(A);
  const [held] = await alloc(store, { owner: owner('c1', { name: 'web-0', aliases: ['web'], netns: '/var/run/netns/x' }), rangeSets });
  const released = await store.withLock((tx) => tx.releaseByOwner('net', 'c1', 'eth0', 'del'));
  t.same(released, [held]);
  const history = await store.view((tx) => tx.history('net', ip(held.address)));
  t.equal(history.length, 1);
  t.match(history[0], { ...held, reason: 'del' }, 'everything the allocation said, and why it ended');
  t.ok(history[0].until >= held.since, 'until is not before since');
  t.same(await store.view((tx) => tx.listByOwner('net', 'c1')), []);
});
