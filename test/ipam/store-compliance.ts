// The compliance suite every IpamStore implementation must pass; embedded-store.test.ts runs it
// on a temp directory. Each subtest gets a fresh, empty store from setup() and cleans it up in
// teardown.
//
// What it pins is the contract in ipam/store/types.ts, not one implementation's habits: list
// order is only asserted where the interface promises one (takenBetween ascending, history
// newest first, listPools by network, listByOwner by range set).
import type { Ip } from '../../ipam/addr';
import type { Allocation, AllocationFilter, IpamStore, Owner } from '../../ipam/store/types';
import { ip } from './helpers/embedded';

export interface StoreUnderTest {
  readonly store: IpamStore;
  cleanup(): Promise<void>;
}

/** Makes a fresh, empty store (a new temp dir). */
export type StoreSetup = () => Promise<StoreUnderTest>;

const own = (containerId: string, more: Partial<Owner> = {}): Owner =>
  ({ network: 'net', containerId, ifname: 'eth0', runtime: 'cni', ...more });

const addrs = (list: readonly Allocation[]): string[] => list.map((a) => a.address);
const sorted = (list: readonly string[]): string[] => [...list].sort();
/** Lets other queued callers run: an interleaving point, not a wait for anything. */
const yieldTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export function storeCompliance(t: tap.Test, setup: StoreSetup): void {
  const fresh = async (t: tap.Test): Promise<IpamStore> => {
    const { store, cleanup } = await setup();
    t.teardown(cleanup);
    return store;
  };
  const reserveAll = (store: IpamStore, list: Array<[Owner, string, number?]>): Promise<boolean[]> =>
    store.withLock(async (tx) => {
      const out: boolean[] = [];
      for (const [o, a, set] of list) out.push(await tx.reserve(o, ip(a), set ?? 0));
      return out;
    });

  t.test('description names the store', async (t) => {
    const store = await fresh(t);
    t.type(store.description, 'string');
    t.ok(store.description.length > 0);
  });

  t.test('reserve: true when free, false while anyone holds it', async (t) => {
    const store = await fresh(t);
    t.same(await reserveAll(store, [
      [own('a'), '10.0.0.5'],
      [own('b'), '10.0.0.5'],
      [own('a'), '10.0.0.5'],
      [own('b', { ifname: 'net1' }), '10.0.0.5', 1],
      [own('b', { network: 'other' }), '10.0.0.5'],
      [own('c'), '::a00:5'],
      [own('d'), '10.0.0.6'],
    ]), [true, false, false, false, true, true, true],
    'taken for another owner, the same owner and another set; free in another network and as the other family');
    const holder = await store.view((tx) => tx.ownerOf('net', ip('10.0.0.5')));
    t.equal(holder?.containerId, 'a', 'the first reservation stands');
  });

  t.test('an allocation keeps everything its owner said', async (t) => {
    const store = await fresh(t);
    const full = own('c1', { name: 'web-0', aliases: ['web', 'www'], netns: '/var/run/netns/c1', runtime: 'docker', ifname: 'net1' });
    const before = Date.now();
    await reserveAll(store, [[full, '2001:db8::7', 1], [own('c2'), '10.0.0.7']]);
    const after = Date.now();
    const [a] = await store.view((tx) => tx.listByOwner('net', 'c1'));
    t.match(a, { network: 'net', containerId: 'c1', ifname: 'net1', runtime: 'docker', name: 'web-0', aliases: ['web', 'www'],
      netns: '/var/run/netns/c1', address: '2001:db8::7', family: 6, rangeSet: 1 });
    t.ok(a.since >= before && a.since <= after, 'since is epoch milliseconds of the reservation');
    const [b] = await store.view((tx) => tx.listByOwner('net', 'c2'));
    t.match(b, { address: '10.0.0.7', family: 4, rangeSet: 0 });
    t.equal(b.name, undefined, 'no name');
    t.notOk(b.aliases && b.aliases.length > 0, 'no aliases');
    t.equal(b.netns, undefined, 'no netns');
  });

  t.test('meta: CNI labels and container ports are kept with the allocation, its history and a new owner', async (t) => {
    const store = await fresh(t);
    const labels = { 'vxnet.service': 'web', 'app': 'shop' };
    const ports = [{ port: 8080, protocol: 'tcp' as const }, { port: 53, protocol: 'udp' as const }];
    await reserveAll(store, [[own('c1', { labels, ports }), '10.0.0.1'], [own('c1', { labels, ports }), '2001:db8::1', 1], [own('c2'), '10.0.0.2']]);
    for (const a of await store.view((tx) => tx.listByOwner('net', 'c1'))) {
      t.same({ labels: a.labels, ports: a.ports }, { labels, ports }, `${a.address}: labels and ports as given, ports in order`);
    }
    const [plain] = await store.view((tx) => tx.listByOwner('net', 'c2'));
    t.notOk(plain.labels && Object.keys(plain.labels).length > 0, 'no labels when none were given');
    t.notOk(plain.ports && plain.ports.length > 0, 'no ports when none were given');
    t.same((await store.view((tx) => tx.list({ containerId: 'c1' }))).map((a) => a.labels), [labels, labels], 'list carries them too');

    const next = own('c1', { labels: { app: 'admin' } });
    t.ok(await store.withLock((tx) => tx.updateOwner('net', ip('10.0.0.1'), next)));
    const updated = await store.view((tx) => tx.ownerOf('net', ip('10.0.0.1')));
    t.same(updated?.labels, { app: 'admin' }, 'updateOwner writes the new owner\'s labels');
    t.notOk(updated?.ports && updated.ports.length > 0, 'and clears ports the new owner lacks');
    t.ok(await store.withLock((tx) => tx.updateOwner('net', ip('10.0.0.1'), { ...updated!, name: 'renamed' })), 'an owner read back and changed');
    t.same((await store.view((tx) => tx.ownerOf('net', ip('10.0.0.1'))))?.labels, { app: 'admin' }, 'keeps its labels through updateOwner');

    await store.withLock((tx) => tx.releaseByOwner('net', 'c1', undefined, 'del'));
    const h = await store.view((tx) => tx.history('net', ip('2001:db8::1')));
    t.same({ labels: h[0]?.labels, ports: h[0]?.ports }, { labels, ports }, 'history keeps them');
  });

  t.test('lastReserved: per network and range set, moved by successful reserves only', async (t) => {
    const store = await fresh(t);
    const last = (network: string, set: number): Promise<string | undefined> =>
      store.view(async (tx) => { const l = await tx.lastReserved(network, set); return l && `${l.family}:${l.value}`; });
    t.equal(await last('net', 0), undefined, 'nothing reserved yet');
    await reserveAll(store, [[own('a'), '10.0.0.9'], [own('b'), '2001:db8::9', 1], [own('c'), '10.0.0.3']]);
    t.equal(await last('net', 0), `4:${ip('10.0.0.3').value}`, 'the latest, not the highest');
    t.equal(await last('net', 1), `6:${ip('2001:db8::9').value}`, 'another set keeps its own');
    t.equal(await last('other', 0), undefined, 'another network keeps its own');
    t.same(await reserveAll(store, [[own('d'), '10.0.0.9']]), [false]);
    t.equal(await last('net', 0), `4:${ip('10.0.0.3').value}`, 'a failed reserve does not move it');
    await store.withLock((tx) => tx.releaseAddress('net', ip('10.0.0.3'), 'test'));
    t.equal(await last('net', 0), `4:${ip('10.0.0.3').value}`, 'a release does not move it');
  });

  t.test('listByOwner', async (t) => {
    const store = await fresh(t);
    await reserveAll(store, [
      [own('c1'), '2001:db8::1', 1], [own('c1'), '10.0.0.1', 0], [own('c1', { ifname: 'net1' }), '10.0.0.2'],
      [own('c2'), '10.0.0.3'], [own('c1', { network: 'other' }), '10.0.0.4'],
    ]);
    const list = await store.view((tx) => tx.listByOwner('net', 'c1', 'eth0'));
    t.same(addrs(list), ['10.0.0.1', '2001:db8::1'], 'one ifname, in range-set order');
    t.same(sorted(addrs(await store.view((tx) => tx.listByOwner('net', 'c1')))), ['10.0.0.1', '10.0.0.2', '2001:db8::1'], 'every ifname');
    t.same(await store.view((tx) => tx.listByOwner('net', 'nobody', 'eth0')), []);
    t.same(await store.view((tx) => tx.listByOwner('net', 'c1', 'eth9')), []);
  });

  t.test('releaseByOwner moves allocations to history', async (t) => {
    const store = await fresh(t);
    await reserveAll(store, [
      [own('c1'), '10.0.0.1'], [own('c1'), '2001:db8::1', 1], [own('c1', { ifname: 'net1' }), '10.0.0.2'], [own('c2'), '10.0.0.3'],
    ]);
    const held = await store.view((tx) => tx.listByOwner('net', 'c1', 'eth0'));
    const released = await store.withLock((tx) => tx.releaseByOwner('net', 'c1', 'eth0', 'del'));
    t.same(sorted(addrs(released)), ['10.0.0.1', '2001:db8::1']);
    t.same([...released].sort((a, b) => a.rangeSet - b.rangeSet), held, 'what was released, as it was held');
    t.same(await store.view((tx) => tx.listByOwner('net', 'c1', 'eth0')), []);
    t.same(await reserveAll(store, [[own('c9'), '10.0.0.1']]), [true], 'a released address is free again');
    const h = await store.view((tx) => tx.history('net'));
    t.same(sorted(h.map((e) => `${e.address} ${e.containerId} ${e.reason}`)), ['10.0.0.1 c1 del', '2001:db8::1 c1 del']);
    t.same(await store.withLock((tx) => tx.releaseByOwner('net', 'c1', 'eth0', 'del')), [], 'nothing left: nothing released');
    t.equal((await store.view((tx) => tx.history('net'))).length, 2, 'and nothing added to history');
    const all = await store.withLock((tx) => tx.releaseByOwner('net', 'c1', undefined, 'gc'));
    t.same(addrs(all), ['10.0.0.2'], 'ifname undefined: every ifname of the container');
    t.same(addrs(await store.view((tx) => tx.list({ network: 'net' }))).sort(), ['10.0.0.1', '10.0.0.3'], 'others untouched');
  });

  t.test('updateOwner: the address, its range set and since stay; the owner changes', async (t) => {
    const store = await fresh(t);
    await reserveAll(store, [[own('pending', { runtime: 'docker', name: 'old' }), '10.0.0.5', 1], [own('x'), '10.0.0.6']]);
    const [before] = await store.view((tx) => tx.listByOwner('net', 'pending'));
    const next = own('c1', { ifname: 'eth1', runtime: 'docker', aliases: ['web'], netns: '/var/run/netns/c1' });
    t.equal(await store.withLock((tx) => tx.updateOwner('net', ip('10.0.0.5'), next)), true);
    const after = await store.view((tx) => tx.ownerOf('net', ip('10.0.0.5')));
    t.match(after, { containerId: 'c1', ifname: 'eth1', runtime: 'docker', aliases: ['web'], netns: '/var/run/netns/c1',
      address: '10.0.0.5', rangeSet: 1, since: before.since });
    t.equal(after?.name, undefined, 'a field the new owner lacks is cleared');
    t.same(await store.view((tx) => tx.listByOwner('net', 'pending')), [], 'the old owner holds nothing');
    t.same(addrs(await store.view((tx) => tx.listByOwner('net', 'c1', 'eth1'))), ['10.0.0.5']);
    t.equal(await store.withLock((tx) => tx.updateOwner('net', ip('10.0.0.7'), next)), false, 'nobody holds it: false');
    t.equal(await store.withLock((tx) => tx.updateOwner('other', ip('10.0.0.5'), next)), false, 'another network: false');
    t.equal(await store.view((tx) => tx.ownerOf('net', ip('10.0.0.7'))), undefined, 'and nothing reserved');
    t.same(await store.view((tx) => tx.history()), [], 'no history: the address was never released');
  });

  t.test('releaseAddress releases whoever holds it', async (t) => {
    const store = await fresh(t);
    await reserveAll(store, [[own('c1', { name: 'web-0' }), '10.0.0.1'], [own('c1', { network: 'other' }), '10.0.0.1']]);
    const r = await store.withLock((tx) => tx.releaseAddress('net', ip('10.0.0.1'), 'vxnetctl release'));
    t.match(r, { containerId: 'c1', name: 'web-0', address: '10.0.0.1' });
    t.equal(await store.withLock((tx) => tx.releaseAddress('net', ip('10.0.0.1'), 'again')), undefined, 'a free address: undefined');
    t.equal(await store.view((tx) => tx.ownerOf('net', ip('10.0.0.1'))), undefined);
    t.equal((await store.view((tx) => tx.ownerOf('other', ip('10.0.0.1'))))?.containerId, 'c1', 'the same address in another network stays');
    const [h] = await store.view((tx) => tx.history('net', ip('10.0.0.1')));
    t.match(h, { containerId: 'c1', name: 'web-0', reason: 'vxnetctl release' });
  });

  t.test('ownerOf', async (t) => {
    const store = await fresh(t);
    await reserveAll(store, [[own('c1'), '10.0.0.1'], [own('c2'), '2001:db8::1', 1]]);
    t.equal((await store.view((tx) => tx.ownerOf('net', ip('10.0.0.1'))))?.containerId, 'c1');
    t.equal((await store.view((tx) => tx.ownerOf('net', ip('2001:db8::1'))))?.containerId, 'c2');
    t.equal(await store.view((tx) => tx.ownerOf('net', ip('10.0.0.2'))), undefined);
    t.equal(await store.view((tx) => tx.ownerOf('other', ip('10.0.0.1'))), undefined);
  });

  t.test('takenBetween: ascending, inclusive, limited, one network, one family', async (t) => {
    const store = await fresh(t);
    const order = ['10.0.0.9', '10.0.0.2', '10.0.1.0', '10.0.0.255', '10.0.0.10', '10.0.0.3'];
    await reserveAll(store, order.map((a, i): [Owner, string] => [own(`c${i}`), a]));
    await reserveAll(store, [
      [own('x', { network: 'other' }), '10.0.0.4'],
      [own('y'), '2001:db8::a00:5', 1],
      // An IPv4 address whose key sorts inside the IPv6 range scanned below (0xfd00abcd = 253.0.171.205).
      [own('z'), '253.0.171.205'],
      [own('w'), 'fd00::abcd', 1],
    ]);
    const between = (from: string, to: string, limit = 100): Promise<string[]> =>
      store.view(async (tx) => (await tx.takenBetween('net', ip(from), ip(to), limit)).map((a: Ip) => `${a.family}:${a.value}`));
    const want = (...list: string[]): string[] => list.map((a) => `${ip(a).family}:${ip(a).value}`);
    t.same(await between('10.0.0.0', '10.0.255.255'), want('10.0.0.2', '10.0.0.3', '10.0.0.9', '10.0.0.10', '10.0.0.255', '10.0.1.0'), 'ascending by address');
    t.same(await between('10.0.0.3', '10.0.0.255'), want('10.0.0.3', '10.0.0.9', '10.0.0.10', '10.0.0.255'), 'bounds are inclusive');
    t.same(await between('10.0.0.0', '10.0.255.255', 2), want('10.0.0.2', '10.0.0.3'), 'limit keeps the lowest');
    t.same(await between('10.0.0.4', '10.0.0.8'), [], 'nothing taken in between; other networks do not count');
    t.same(await between('2001:db8::', '2001:db8::ffff:ffff'), want('2001:db8::a00:5'), 'IPv6');
    t.same(await between('fd00::', 'fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), want('fd00::abcd'), 'an IPv6 scan never returns IPv4 addresses');
    t.same(await between('253.0.0.0', '253.255.255.255'), want('253.0.171.205'), 'an IPv4 scan never returns IPv6 addresses');
  });

  t.test('list and countByNetwork', async (t) => {
    const store = await fresh(t);
    await reserveAll(store, [
      [own('c1'), '10.0.0.1'], [own('c1', { ifname: 'net1' }), '10.0.0.2'], [own('c2', { runtime: 'docker' }), '10.0.0.3'],
      [own('c1', { network: 'other' }), '10.0.0.1'], [own('c3', { network: 'other', runtime: 'docker' }), '2001:db8::3', 1],
    ]);
    const list = async (filter?: AllocationFilter): Promise<string[]> =>
      sorted((await store.view((tx) => tx.list(filter))).map((a) => `${a.network}/${a.address}`));
    t.same(await list(), ['net/10.0.0.1', 'net/10.0.0.2', 'net/10.0.0.3', 'other/10.0.0.1', 'other/2001:db8::3'], 'no filter: everything');
    t.same(await list({}), await list(), 'an empty filter is no filter');
    t.same(await list({ network: 'other' }), ['other/10.0.0.1', 'other/2001:db8::3']);
    t.same(await list({ containerId: 'c1' }), ['net/10.0.0.1', 'net/10.0.0.2', 'other/10.0.0.1']);
    t.same(await list({ runtime: 'docker' }), ['net/10.0.0.3', 'other/2001:db8::3']);
    t.same(await list({ network: 'net', containerId: 'c1', runtime: 'cni' }), ['net/10.0.0.1', 'net/10.0.0.2'], 'filters combine');
    t.same(await list({ network: 'net', runtime: 'docker', containerId: 'c1' }), []);
    t.equal(await store.view((tx) => tx.countByNetwork('net')), 3);
    t.equal(await store.view((tx) => tx.countByNetwork('other')), 2);
    t.equal(await store.view((tx) => tx.countByNetwork('none')), 0);
  });

  t.test('history: newest first, filtered by network and address, limited', async (t) => {
    const store = await fresh(t);
    for (const [i, a] of ['10.0.0.1', '10.0.0.2', '10.0.0.1', '10.0.0.3'].entries()) {
      await reserveAll(store, [[own(`c${i}`), a]]);
      await store.withLock((tx) => tx.releaseByOwner('net', `c${i}`, 'eth0', `reason ${i}`));
    }
    await reserveAll(store, [[own('o', { network: 'other' }), '10.0.0.1']]);
    await store.withLock((tx) => tx.releaseByOwner('other', 'o', 'eth0', 'other'));
    await reserveAll(store, [[own('live'), '10.0.0.1']]);
    const show = async (network?: string, a?: string, limit?: number): Promise<string[]> =>
      (await store.view((tx) => tx.history(network, a === undefined ? undefined : ip(a), limit))).map((e) => `${e.network} ${e.address} ${e.reason}`);
    t.same(await show('net'), ['net 10.0.0.3 reason 3', 'net 10.0.0.1 reason 2', 'net 10.0.0.2 reason 1', 'net 10.0.0.1 reason 0'], 'newest first');
    t.same(await show('net', '10.0.0.1'), ['net 10.0.0.1 reason 2', 'net 10.0.0.1 reason 0'], 'one address; live holders are not history');
    t.same(await show('net', undefined, 2), ['net 10.0.0.3 reason 3', 'net 10.0.0.1 reason 2'], 'limit keeps the newest');
    t.same(await show(), ['other 10.0.0.1 other', 'net 10.0.0.3 reason 3', 'net 10.0.0.1 reason 2', 'net 10.0.0.2 reason 1', 'net 10.0.0.1 reason 0'], 'every network');
    t.same(await show(undefined, '10.0.0.1', 2), ['other 10.0.0.1 other', 'net 10.0.0.1 reason 2'], 'an address across networks');
    const [e] = await store.view((tx) => tx.history('net', ip('10.0.0.3')));
    t.ok(e.until >= e.since, 'until is not before since');
  });

  t.test('pools: get, put, list, delete', async (t) => {
    const store = await fresh(t);
    t.equal(await store.view((tx) => tx.getPool('net')), undefined);
    const before = Date.now();
    await store.withLock(async (tx) => { await tx.putPool('net', '[["a"]]'); await tx.putPool('alpha', '[["b"]]'); });
    const p = await store.view((tx) => tx.getPool('net'));
    t.match(p, { network: 'net', definition: '[["a"]]' });
    t.ok(p !== undefined && p.updated >= before && p.updated <= Date.now(), 'updated is epoch milliseconds');
    await store.withLock((tx) => tx.putPool('net', '[["c"]]'));
    t.equal((await store.view((tx) => tx.getPool('net')))?.definition, '[["c"]]', 'put replaces');
    t.same((await store.view((tx) => tx.listPools())).map((r) => [r.network, r.definition]), [['alpha', '[["b"]]'], ['net', '[["c"]]']], 'listed by network');
    await store.withLock((tx) => tx.deletePool('net'));
    await store.withLock((tx) => tx.deletePool('never-was'));
    t.equal(await store.view((tx) => tx.getPool('net')), undefined);
    t.same((await store.view((tx) => tx.listPools())).map((r) => r.network), ['alpha']);
  });

  t.test('withLock: returns what fn returns; a throw rolls everything back', async (t) => {
    const store = await fresh(t);
    await reserveAll(store, [[own('keep'), '10.0.0.1']]);
    t.equal(await store.withLock(async () => 'result'), 'result');
    const boom = new Error('half-way');
    let thrown: unknown;
    try {
      await store.withLock(async (tx) => {
        t.ok(await tx.reserve(own('c1'), ip('10.0.0.2'), 0));
        t.ok(await tx.reserve(own('c1'), ip('2001:db8::2'), 1));
        await tx.putPool('net', '[]');
        t.ok(await tx.releaseAddress('net', ip('10.0.0.1'), 'rolled back'));
        await yieldTurn();
        throw boom;
      });
    } catch (err) { thrown = err; }
    t.equal(thrown, boom, 'the error from fn, as it was thrown');
    t.same(addrs(await store.view((tx) => tx.list())), ['10.0.0.1'], 'no reservation kept, the release undone');
    t.equal(await store.view((tx) => tx.getPool('net')), undefined, 'no pool written');
    t.equal((await store.view((tx) => tx.lastReserved('net', 0)))?.value, ip('10.0.0.1').value, 'lastReserved as before');
    t.equal(await store.view((tx) => tx.lastReserved('net', 1)), undefined);
    t.same(await store.view((tx) => tx.history()), [], 'no history written');
    t.same(await reserveAll(store, [[own('next'), '10.0.0.2']]), [true], 'the store is usable after a rollback');
  });

  t.test('withLock: concurrent callers are serialized', async (t) => {
    const store = await fresh(t);
    // Each caller reads, yields, then writes what it read: interleaved callers would collide.
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.withLock(async (tx) => {
      const n = await tx.countByNetwork('net');
      await yieldTurn();
      return tx.reserve(own(`c${i}`), ip(`10.0.0.${n + 10}`), 0);
    })));
    t.same(results, Array(20).fill(true), 'no caller saw another half-way');
    t.equal(await store.view((tx) => tx.countByNetwork('net')), 20);
  });

  t.test('concurrent reserve of one address: exactly one wins', async (t) => {
    const store = await fresh(t);
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) =>
      store.withLock((tx) => tx.reserve(own(`c${i}`), ip('10.0.0.50'), 0))));
    t.equal(results.filter(Boolean).length, 1);
    const winner = results.indexOf(true);
    t.equal((await store.view((tx) => tx.ownerOf('net', ip('10.0.0.50'))))?.containerId, `c${winner}`);
  });

  t.test('view: reads what was committed and returns what fn returns', async (t) => {
    const store = await fresh(t);
    t.same(await store.view((tx) => tx.list()), []);
    const writer = store.withLock(async (tx) => { await tx.reserve(own('c1'), ip('10.0.0.1'), 0); await yieldTurn(); return 'done'; });
    const reader = store.view(async (tx) => { const a = await tx.list(); await yieldTurn(); const b = await tx.list(); return [addrs(a), addrs(b)]; });
    t.equal(await writer, 'done');
    const [first, second] = await reader;
    t.same(first, second, 'one consistent snapshot across reads');
    t.same(addrs(await store.view((tx) => tx.list())), ['10.0.0.1']);
  });

  t.test('check: a healthy store passes, also while a transaction is in flight', async (t) => {
    const store = await fresh(t);
    await store.check();
    let checked: Promise<string> | undefined;
    await store.withLock(async (tx) => {
      await tx.reserve(own('c1'), ip('10.0.0.1'), 0);
      checked = store.check().then(() => 'ok', (err: Error) => err.message);
      await yieldTurn();
    });
    t.equal(await checked, 'ok', 'STATUS does not fail because an ADD is running');
    t.equal((await store.view((tx) => tx.ownerOf('net', ip('10.0.0.1'))))?.containerId, 'c1', 'and does not disturb it');
  });
}
