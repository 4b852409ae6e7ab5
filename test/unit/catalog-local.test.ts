// catalog/local.ts: this host's endpoints from its IPAM store. The pure part (allocations +
// runtime facts + operator labels -> endpoints) and the shell over a real embedded store in a
// temp dir: the metadata cache (kept while the container holds addresses, forgotten after),
// failed lookups (logged once, retried, never keeping an endpoint out), derive problems logged
// once, refresh coalescing, the rescan.
import t from 'tap';
import { EndpointCatalog } from '../../catalog/catalog';
import { LocalEndpoints, groupAllocations, localEndpointsFrom, type MetadataSource, type RuntimeFacts } from '../../catalog/local';
import { createLogger } from '../../lib/log';
import type { Allocation, Owner } from '../../ipam/store/types';
import { ip, owner, tmpStore } from '../ipam/helpers/embedded';
import { pollUntil } from '../helpers/sh';

const alloc = (containerId: string, address: string, more: Partial<Allocation> = {}): Allocation => ({
  network: 'net', containerId, ifname: 'eth0', runtime: 'cni', address, family: address.includes(':') ? 6 : 4, rangeSet: 0, since: 1, ...more,
});

function logs(): { log: ReturnType<typeof createLogger>; lines: Array<{ msg: string } & Record<string, unknown>> } {
  const lines: Array<{ msg: string } & Record<string, unknown>> = [];
  return { log: createLogger('test', 'debug', (l) => { lines.push(JSON.parse(l)); }), lines };
}

t.test('groupAllocations: one entry per (network, container), every ifname and address merged', async (t) => {
  const groups = groupAllocations([
    alloc('c1', '10.0.0.2', { name: 'web-0', aliases: ['web'], labels: { a: '1' }, ports: [{ port: 80, protocol: 'tcp' }] }),
    alloc('c1', '2001:db8::2', { rangeSet: 1, family: 6, aliases: ['web', 'www'], labels: { b: '2' }, ports: [{ port: 80, protocol: 'tcp' }] }),
    alloc('c1', '10.0.1.2', { ifname: 'net1' }),
    alloc('c1', '10.9.0.2', { network: 'other' }),
    alloc('c2', '10.0.0.3'),
  ]);
  const keys = groups.map((g) => `${g.network}/${g.containerId}`).sort();
  t.same(keys, ['net/c1', 'net/c2', 'other/c1'], 'the same container on another network is another endpoint');
  t.same(groups.find((g) => g.containerId === 'c2'), { network: 'net', containerId: 'c2', runtime: 'cni', aliases: [], addresses: ['10.0.0.3'], cniLabels: {}, ports: [] });
  const c1 = groups.find((g) => g.network === 'net' && g.containerId === 'c1');
  t.same(c1, { network: 'net', containerId: 'c1', runtime: 'cni', name: 'web-0', aliases: ['web', 'www'], addresses: ['10.0.0.2', '2001:db8::2', '10.0.1.2'],
    cniLabels: { a: '1', b: '2' }, ports: [{ port: 80, protocol: 'tcp' }] });
});

t.test('localEndpointsFrom: names, label sources, ports and problems', async (t) => {
  const allocations = [
    alloc('c1', '10.0.0.2', { name: 'pod-a', labels: { 'vxnet.service': 'cni-svc', tier: 'cni' }, ports: [{ port: 8080, protocol: 'tcp' }] }),
    alloc('d1', '10.0.0.3', { runtime: 'docker', name: 'stale-name' }),
    alloc('d2', '10.0.0.4', { runtime: 'docker' }),
    alloc('x1', '10.0.0.5', { name: 'bad', labels: { 'vxnet.ports': 'oops' }, ports: [{ port: 9, protocol: 'udp' }] }),
  ];
  const runtime: Record<string, RuntimeFacts> = {
    c1: { labels: { tier: 'runtime' }, exposedPorts: [{ port: 1, protocol: 'tcp' }] },
    d1: { name: '/Renamed', labels: { 'com.docker.compose.service': 'db' }, exposedPorts: [{ port: 5432, protocol: 'tcp' }, { port: 22, protocol: 'tcp' }] },
  };
  const asked: string[] = [];
  const { endpoints, problems } = localEndpointsFrom(allocations, 'h1', {
    runtimeFacts: (rt, id) => { asked.push(`${rt}:${id}`); return runtime[id]; },
    operatorLabels: (name): Record<string, string> | undefined =>
      (name === 'renamed' ? { tier: 'operator', 'vxnet.service': 'ops' } : name === 'pod-a' ? { tier: 'op-a' } : undefined),
  });
  const by = Object.fromEntries(endpoints.map((e) => [e.containerId, e]));
  t.same(asked.sort(), ['cni:c1', 'cni:x1', 'docker:d1', 'docker:d2']);
  t.match(by.c1, { id: 'h1/net/c1', host: 'h1', name: 'pod-a', labels: { 'vxnet.service': 'cni-svc', tier: 'op-a' }, service: 'cni-svc',
    ports: [{ port: 8080, protocol: 'tcp' }] }, 'CNI: store ports win over the runtime\'s, operator labels over both');
  t.match(by.d1, { name: 'renamed', service: 'ops', labels: { tier: 'operator', 'com.docker.compose.service': 'db' },
    ports: [{ port: 22, protocol: 'tcp' }, { port: 5432, protocol: 'tcp' }] }, 'Docker: the runtime\'s name (operator labels found by it), exposed ports ascending');
  t.match(by.d2, { name: '', ports: [], labels: {} }, 'nothing known but the address: still catalogued');
  t.same(by.d2?.addresses, ['10.0.0.4']);
  t.same(by.x1?.ports, [{ port: 9, protocol: 'udp' }], 'a bad vxnet.ports: the store\'s ports');
  t.same([...problems.keys()], ['h1/net/x1']);
  t.match(problems.get('h1/net/x1'), /bad vxnet.ports entry "oops"/);
  t.same(localEndpointsFrom([], 'h1').endpoints, []);
});

class FakeMetadata implements MetadataSource {
  calls: string[] = [];
  failing = new Set<string>();
  facts = new Map<string, RuntimeFacts>();
  gate: Promise<void> | undefined;
  async lookup(runtime: string, containerId: string): Promise<RuntimeFacts | undefined> {
    this.calls.push(containerId);
    await this.gate;
    if (this.failing.has(containerId)) throw new Error(`docker: no answer for ${containerId}`);
    return this.facts.get(containerId);
  }
}

const reserve = (store: Awaited<ReturnType<typeof tmpStore>>['store'], o: Owner, a: string): Promise<boolean> =>
  store.withLock((tx) => tx.reserve(o, ip(a), 0));

t.test('LocalEndpoints: cache, failures, problems, removal', async (t) => {
  const { store } = await tmpStore(t);
  const catalog = new EndpointCatalog();
  const metadata = new FakeMetadata();
  const { log, lines } = logs();
  metadata.facts.set('d1', { name: 'web', labels: { 'vxnet.service': 'shop' } });
  metadata.failing.add('d2');
  await reserve(store, owner('d1', { runtime: 'docker' }), '10.0.0.2');
  await reserve(store, owner('d2', { runtime: 'docker', name: 'db' }), '10.0.0.3');
  await reserve(store, owner('c3', { labels: { 'vxnet.ports': 'bad!' } }), '10.0.0.4');
  const local = new LocalEndpoints({ store, catalog, host: 'h1', metadata, intervalMs: 60_000, log });
  await local.start();
  t.teardown(() => local.stop());
  t.match(catalog.get('h1/net/d1'), { name: 'web', service: 'shop' }, 'filled before start resolved');
  t.match(catalog.get('h1/net/d2'), { name: 'db', labels: {} }, 'a failed lookup: catalogued with the store\'s name');
  t.ok(catalog.get('h1/net/c3'), 'unknown to the runtime: catalogued');

  await local.refresh();
  await local.refresh();
  t.same(metadata.calls.filter((c) => c === 'd1').length, 1, 'a known container is asked once');
  t.same(metadata.calls.filter((c) => c === 'c3').length, 1, '"unknown" is an answer too: asked once');
  t.same(metadata.calls.filter((c) => c === 'd2').length, 3, 'a failed lookup is asked again on every refresh');
  t.equal(lines.filter((l) => /lookup failed/.test(l.msg)).length, 1, 'and logged once');
  t.equal(lines.filter((l) => l.msg === 'endpoint label ignored').length, 1, 'a derive problem is logged once');

  metadata.failing.delete('d2');
  metadata.facts.set('d2', { labels: { 'vxnet.service': 'db' } });
  await local.refresh();
  t.equal(catalog.get('h1/net/d2')?.service, 'db', 'the lookup that works at last fills the labels');

  await store.withLock((tx) => tx.releaseByOwner('net', 'd1', undefined, 'del'));
  await local.refresh();
  t.equal(catalog.get('h1/net/d1'), undefined, 'released: gone from the catalog');
  metadata.facts.set('d1', { name: 'web2' });
  await reserve(store, owner('d1', { runtime: 'docker' }), '10.0.0.9');
  await local.refresh();
  t.equal(catalog.get('h1/net/d1')?.name, 'web2', 'the cache entry was forgotten when the container left: asked again');
  t.same(catalog.list('h1').map((e) => e.containerId).sort(), ['c3', 'd1', 'd2']);
  t.same(catalog.hosts(), ['h1']);
});

t.test('LocalEndpoints.refresh: calls during a refresh coalesce into one more', async (t) => {
  const { store } = await tmpStore(t);
  const catalog = new EndpointCatalog();
  const metadata = new FakeMetadata();
  let open!: () => void;
  metadata.gate = new Promise((r) => { open = r; });
  await reserve(store, owner('c1'), '10.0.0.2');
  const local = new LocalEndpoints({ store, catalog, host: 'h1', metadata, intervalMs: 60_000, log: logs().log });
  t.teardown(() => local.stop());
  const first = local.refresh();
  await pollUntil(() => metadata.calls.length === 1, { timeoutMs: 2000, what: 'the first refresh waits on its lookup' });
  await reserve(store, owner('c2'), '10.0.0.3');
  const during = [local.refresh(), local.refresh(), local.refresh()];
  t.equal(during[0], during[2], 'one promise for every call during the refresh');
  open();
  await first;
  t.same(catalog.list('h1').map((e) => e.containerId), ['c1'], 'the first refresh read the store before c2');
  await Promise.all(during);
  t.same(catalog.list('h1').map((e) => e.containerId).sort(), ['c1', 'c2'], 'the refresh after it sees c2');
  t.same(metadata.calls.sort(), ['c1', 'c2'], 'two refreshes in all (one lookup each)');
});

t.test('LocalEndpoints rescans every intervalMs; stop ends it', async (t) => {
  const { store } = await tmpStore(t);
  const catalog = new EndpointCatalog();
  const local = new LocalEndpoints({ store, catalog, host: 'h1', intervalMs: 50, log: logs().log });
  await local.start();
  t.equal(catalog.size, 0);
  await reserve(store, owner('c1', { name: 'late' }), '10.0.0.2');
  await pollUntil(() => catalog.get('h1/net/c1'), { timeoutMs: 5000, what: 'the rescan catalogues c1' });
  await local.stop();
  await reserve(store, owner('c2'), '10.0.0.3');
  const changed: string[] = [];
  catalog.subscribe((c) => changed.push(...c.map((x) => x.id)));
  await new Promise((r) => setTimeout(r, 200)); // 4 intervals: would rescan if still running (asserting an absence)
  t.same(changed, [], 'no rescan after stop');
});
