// vip/live-model.ts against the full build of vip/model.ts: random sequences of catalog changes
// (endpoints added, relabelled, readdressed, turning unhealthy, moved, removed; hosts replaced;
// names placed late), and after every step the incremental model's VIPs equal a full build's,
// and the kernel fed only its put/remove changes holds exactly the full build's entries.
import t from 'tap';
import { EndpointCatalog } from '../../catalog/catalog';
import type { Endpoint, EndpointChange } from '../../catalog/endpoint';
import { parseIp, type Ip } from '../../ipam/addr';
import type { VipAddressesOf } from '../../vip/address';
import { LiveVipModel, entryText } from '../../vip/live-model';
import { buildVips, entriesOf } from '../../vip/model';

const ip = (s: string): Ip => { const r = parseIp(s); if (!r) throw new Error(s); return r; };

function rng(seed: number): (n: number) => number {
  let s = seed;
  return (n) => { s = (s * 1103515245 + 12345) & 0x7fffffff; return s % n; };
}

const NAMES = ['web', 'api', 'db', 'dns', 'cache'];
// 'api' is placed on 10.40.0.1, the address an operator's VIP also uses: the two share an entry.
const ADDRS: Record<string, VipAddressesOf> = {
  web: { v4: ip('198.18.0.1'), v6: ip('fd76::1') },
  api: { v4: ip('10.40.0.1'), v6: ip('fd76::2') },
  db: { v4: ip('198.18.0.3') },
  dns: { v4: ip('198.18.0.4'), v6: ip('fd76::4') },
  cache: { v4: ip('198.18.0.5'), v6: ip('fd76::5') },
};

function randomEndpoint(r: (n: number) => number, id: number, host: string): Endpoint {
  const labels: Record<string, string> = {};
  for (let k = r(3); k > 0; k--) {
    const n = r(2);
    const pick = r(10);
    labels[`VIP_${n}`] = pick < 7 ? `/${NAMES[r(NAMES.length)]}:${80 + r(2)}`
      : pick < 8 ? `10.40.0.1:${80 + r(2)}`
      : pick < 9 ? 'udp:///dns:53'
      : `[fd40::${1 + r(2)}]:80`;
  }
  if (r(5) === 0) labels['vxnet.weight'] = r(4) === 0 ? 'x' : String(1 + r(3));
  const addresses = [`10.1.${r(2)}.${1 + r(20)}`, ...(r(2) ? [`fd01::${(1 + r(20)).toString(16)}`] : [])];
  const ports = [{ port: 8080 + r(2), protocol: 'tcp' as const }, ...(r(3) ? [{ port: 5353, protocol: 'udp' as const }] : [])];
  const health = [undefined, undefined, 'healthy', 'unhealthy', 'starting'][r(5)] as Endpoint['health'];
  return {
    id: `${host}/blue/c${id}`, host, runtime: 'cni', containerId: `c${id}`, network: 'blue', name: `c${id}`, aliases: [],
    addresses, labels, ports, ...(health ? { health } : {}),
  };
}

for (const ipv6 of [true, false]) {
  t.test(`incremental == full build after every step (ipv6 ${ipv6})`, async (t) => {
    const r = rng(ipv6 ? 7 : 11);
    const placed = new Set<string>(['web', 'db']);
    const addressesOf = (n: string): VipAddressesOf | undefined => (placed.has(n) ? ADDRS[n] : undefined);
    const catalog = new EndpointCatalog();
    const model = new LiveVipModel(addressesOf, ipv6);
    const kernel = new Map<string, string>();
    const batches: EndpointChange[][] = [];
    catalog.subscribe((c) => batches.push([...c]));
    const STEPS = 2500;
    let failures = 0;
    let nextId = 0;
    for (let step = 0; step < STEPS && failures === 0; step++) {
      const ids = catalog.list().map((e) => e.id);
      const op = r(10);
      if (op < 4 || ids.length < 3) catalog.put(randomEndpoint(r, nextId++, `h${r(3)}`));
      else if (op < 6) { const old = catalog.get(ids[r(ids.length)] as string) as Endpoint; catalog.put({ ...randomEndpoint(r, 0, old.host), id: old.id, containerId: old.containerId, name: old.name }); }
      else if (op < 7) { const old = catalog.get(ids[r(ids.length)] as string) as Endpoint; catalog.put({ ...old, health: r(2) ? 'unhealthy' : 'healthy' }); }
      else if (op < 8) catalog.remove(ids[r(ids.length)] as string);
      else if (op < 9) { const h = `h${r(3)}`; catalog.replaceHost(h, [...catalog.list(h).filter(() => r(3) > 0), randomEndpoint(r, nextId++, h)]); }
      else { const n = NAMES[r(NAMES.length)] as string; if (!placed.has(n)) { placed.add(n); model.touchName(n); } }
      // Now and then two steps' batches reach one flush (the service coalesces a burst).
      if (r(3) === 0 && step < STEPS - 1) continue;
      for (const b of batches.splice(0)) model.apply(b);
      const out = model.flush();
      for (const rm of out.remove) {
        const k = `${rm.ip.family}:${rm.ip.value}/${rm.protocol}/${rm.port}`;
        if (!kernel.delete(k)) { t.fail(`step ${step}: removal of an entry the kernel does not hold: ${k}`); failures++; }
      }
      for (const e of out.put) kernel.set(`${e.ip.family}:${e.ip.value}/${e.protocol}/${e.port}`, entryText(e));
      const full = buildVips(catalog.list(), addressesOf, ipv6);
      const problem = model.verify(catalog.list());
      if (problem) { t.fail(`step ${step}: ${problem}`); failures++; }
      const want = entriesOf(full.vips).map(entryText).sort().join('\n');
      const got = [...kernel.values()].sort().join('\n');
      if (want !== got) { t.fail(`step ${step}: the kernel fed changes differs from a full build\n${got}\n---\n${want}`); failures++; }
      t.ok(out.unplaced.every((n) => !placed.has(n)), 'unplaced names are those without addresses') || failures++;
      if (full.unplaced.join() !== model.unplacedNames().join()) { t.fail(`step ${step}: unplaced ${model.unplacedNames()} vs ${full.unplaced}`); failures++; }
    }
    t.equal(failures, 0, `${STEPS} steps, ${catalog.size} endpoints at the end`);
    t.ok(model.vips().length > 3, 'the sequences made several VIPs');
  });
}

t.test('a change to one endpoint among 10,000 touches its VIP only, and nothing is sent for an unrelated change', async (t) => {
  const model = new LiveVipModel((n) => { const k = Number(n.slice(1)); return { v4: ip(`198.18.${k >> 8}.${k & 255}`) }; }, false);
  const eps: Endpoint[] = Array.from({ length: 10_000 }, (_, i) => ({
    id: `h/blue/c${i}`, host: 'h', runtime: 'cni', containerId: `c${i}`, network: 'blue', name: `c${i}`, aliases: [],
    addresses: [`10.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`], labels: { VIP_0: `/s${Math.floor(i / 3)}:80` }, ports: [{ port: 8080, protocol: 'tcp' }],
  }));
  model.rebuild(eps);
  const first = model.flush();
  t.equal(first.put.length, 3334, 'every entry put at the start');
  const e = eps[4000] as Endpoint;
  model.apply([{ id: e.id, before: e, after: { ...e, health: 'unhealthy' } }]);
  const one = model.flush();
  t.equal(one.put.length, 1);
  t.equal(one.put[0]?.backends.length, 2, 'the unhealthy backend left its VIP');
  t.same(one.lines.length, 1);
  model.apply([{ id: e.id, before: e, after: { ...e, health: 'unhealthy', labels: { ...e.labels, note: 'x' } } }]);
  const none = model.flush();
  t.same([none.put.length, none.remove.length], [0, 0], 'a label that is not a VIP label sends nothing');
});

t.test('VipService over a kernel with apply: after random bursts the kernel holds a full build\'s entries, sent as changes', async (t) => {
  const { VipService } = await import('../../vip/service');
  const { MemoryClaims, VipAddresses, parseVipRange } = await import('../../vip/address');
  const { createLogger } = await import('../../lib/log');
  const { pollUntil } = await import('../helpers/sh');
  const held = new Map<string, string>();
  const calls = { sync: 0, apply: 0, sizes: [] as number[] };
  const key = (e: VipRefLike): string => `${e.ip.family}:${e.ip.value}/${e.protocol}/${e.port}`;
  type VipRefLike = Pick<VipEntryT, 'ip' | 'protocol' | 'port'>;
  type VipEntryT = ReturnType<typeof entriesOf>[number];
  const kernel = {
    start: async () => undefined,
    stop: async () => undefined,
    sync: async (entries: readonly VipEntryT[]) => { calls.sync++; held.clear(); for (const e of entries) held.set(key(e), entryText(e)); return { elementsAdded: 0, elementsRemoved: 0, ms: 0, full: true }; },
    apply: async (c: { put: readonly VipEntryT[]; remove: readonly VipRefLike[] }) => {
      calls.apply++;
      calls.sizes.push(c.put.length + c.remove.length);
      for (const r of c.remove) held.delete(key(r));
      for (const e of c.put) held.set(key(e), entryText(e));
      return { elementsAdded: 0, elementsRemoved: 0, ms: 0, full: false };
    },
  };
  const catalog = new EndpointCatalog();
  const r = rng(3);
  for (let i = 0; i < 200; i++) catalog.put(randomEndpoint(r, i, `h${r(3)}`));
  const addresses = new VipAddresses(new MemoryClaims(), parseVipRange('198.18.0.0/15', 4, 'x'), parseVipRange('fd76:786e:6574::/64', 6, 'y'));
  const svc = new VipService({ catalog, kernel, addresses, log: createLogger('test', 'error', () => undefined), retryMs: 10, verifyMs: 50 });
  t.teardown(() => svc.stop());
  await svc.start();
  t.equal(calls.sync, 1, 'the whole table once, at start');
  const want = (): string => entriesOf(buildVips(catalog.list(), (n) => addresses.known(n)).vips).map(entryText).sort().join('\n');
  for (let burst = 0; burst < 40; burst++) {
    for (let k = 1 + r(5); k > 0; k--) {
      const ids = catalog.list().map((e) => e.id);
      if (r(3) === 0) catalog.remove(ids[r(ids.length)] as string);
      else catalog.put(randomEndpoint(r, 1000 + r(300), `h${r(3)}`));
    }
    await pollUntil(() => [...held.values()].sort().join('\n') === want(), { timeoutMs: 3000, what: `burst ${burst} in the kernel` });
  }
  t.equal(calls.sync, 1, 'then only changes (and the periodic check found nothing to rebuild)');
  t.ok(calls.apply > 10, `${calls.apply} apply calls`);
  t.ok(Math.max(...calls.sizes) < 40, `at most ${Math.max(...calls.sizes)} entries per call`);
});
