// vip/service.ts over an in-memory kernel table: catalog changes reach the kernel coalesced
// (one sync per burst, no timer delay), listeners hear the model after the kernel has it,
// named VIPs are placed before start() resolves, failed syncs are retried, bad labels logged once.
import t from 'tap';
import { EndpointCatalog } from '../../catalog/catalog';
import type { Endpoint } from '../../catalog/endpoint';
import { formatIp } from '../../ipam/addr';
import { createLogger } from '../../lib/log';
import { type ClaimStore, MemoryClaims, VipAddresses, parseVipRange } from '../../vip/address';
import type { VipEntry, VipKernel } from '../../vip/kernel';
import { VipService } from '../../vip/service';
import type { VipView } from '../../vip/model';
import { pollUntil } from '../helpers/sh';
import type { TestLike } from '../helpers/netns';

function logs(): { log: ReturnType<typeof createLogger>; lines: Array<{ msg: string } & Record<string, unknown>> } {
  const lines: Array<{ msg: string } & Record<string, unknown>> = [];
  return { log: createLogger('test', 'debug', (l) => { lines.push(JSON.parse(l)); }), lines };
}

class FakeKernel implements VipKernel {
  syncs: VipEntry[][] = [];
  started = 0;
  stopped = 0;
  failNext = 0;
  async start(): Promise<void> { this.started++; }
  async stop(): Promise<void> { this.stopped++; }
  async sync(entries: readonly VipEntry[]) {
    if (this.failNext > 0) { this.failNext--; throw new Error('nft: busy'); }
    this.syncs.push([...entries]);
    return { elementsAdded: entries.length, elementsRemoved: 0, ms: 0, full: false };
  }
  get last(): string[] {
    return (this.syncs.at(-1) ?? []).map((e) => `${formatIp(e.ip)}:${e.port}/${e.protocol} -> ${e.backends.map((b) => `${formatIp(b.ip)}:${b.port}`).sort().join(' ')}`).sort();
  }
}

const ep = (id: string, labels: Record<string, string>, more: Partial<Endpoint> = {}): Endpoint => ({
  id: `h1/blue/${id}`, host: 'h1', runtime: 'cni', containerId: id, network: 'blue', name: id, aliases: [],
  addresses: [`10.1.0.${id.length + id.charCodeAt(id.length - 1) % 200}`], labels, ports: [{ port: 8080, protocol: 'tcp' }], ...more,
});

function setup(t: TestLike, claims: ClaimStore = new MemoryClaims()) {
  const catalog = new EndpointCatalog();
  const kernel = new FakeKernel();
  const { log, lines } = logs();
  const addresses = new VipAddresses(claims, parseVipRange('198.18.0.0/15', 4, 'x'), undefined);
  const svc = new VipService({ catalog, kernel, addresses, log, retryMs: 10 });
  t.teardown(() => svc.stop());
  return { catalog, kernel, lines, addresses, svc };
}

t.test('start: the catalog as it is reaches the kernel, named VIPs placed, before start resolves', async (t) => {
  const { catalog, kernel, svc, addresses } = setup(t);
  catalog.replaceHost('h1', [ep('a', { VIP_0: '/web:80' }), ep('b', { VIP_0: '/web:80' })]);
  await svc.start();
  const web = formatIp(addresses.known('web')!.v4);
  t.equal(kernel.started, 1);
  t.equal(kernel.syncs.length, 1, 'one sync');
  t.equal(kernel.last.length, 1);
  t.match(kernel.last[0], new RegExp(`^${web.replace(/\./g, '\\.')}:80/tcp -> 10\\.1\\.0\\.\\d+:8080 10\\.1\\.0\\.\\d+:8080$`));
  t.same(svc.vips().map((v) => [v.vip, v.addresses]), [['/web:80/tcp', [web]]]);
});

t.test('a burst of catalog changes is one sync, on the next turn of the loop; listeners hear it after the kernel', async (t) => {
  const { catalog, kernel, svc } = setup(t);
  await svc.start();
  const heard: Array<{ vips: readonly VipView[]; syncs: number }> = [];
  svc.subscribe((vips) => heard.push({ vips, syncs: kernel.syncs.length }));
  const before = kernel.syncs.length;
  for (let i = 0; i < 50; i++) catalog.put(ep(`w${i}`, { VIP_0: '/web:80' }));
  await pollUntil(() => heard.length > 0, { timeoutMs: 2000, what: 'the listener' });
  await new Promise((r) => setImmediate(r));
  t.ok(kernel.syncs.length - before <= 2, `50 puts, ${kernel.syncs.length - before} sync(s)`);
  t.equal(heard.at(-1)?.vips[0]?.backends.length, 50);
  t.equal(heard.at(-1)?.syncs, kernel.syncs.length, 'the last notification came after the kernel took it');
  t.ok(heard.every((h) => h.vips.every((v) => v.addresses.length === 0) || h.syncs > before), 'a VIP with an address is heard of only after a sync');
});

t.test('a backend leaving, or turning unhealthy, leaves the kernel; the VIP goes with its last endpoint', async (t) => {
  const { catalog, kernel, svc } = setup(t);
  catalog.replaceHost('h1', [ep('a', { VIP_0: '/web:80' }, { addresses: ['10.1.0.2'] }), ep('b', { VIP_0: '/web:80' }, { addresses: ['10.1.0.3'] })]);
  await svc.start();
  t.match(kernel.last[0], /-> 10.1.0.2:8080 10.1.0.3:8080$/);
  catalog.put(ep('b', { VIP_0: '/web:80' }, { addresses: ['10.1.0.3'], health: 'unhealthy' }));
  await pollUntil(() => /-> 10.1.0.2:8080$/.test(kernel.last[0] ?? ''), { timeoutMs: 2000, what: 'b out' });
  t.equal(svc.vips()[0]?.backends.find((b) => b.ip === '10.1.0.3')?.state, 'unhealthy', 'still listed, with its state');
  catalog.remove('h1/blue/a');
  await pollUntil(() => /-> $/.test(kernel.last[0] ?? ''), { timeoutMs: 2000, what: 'no backend up: an entry with none' });
  catalog.remove('h1/blue/b');
  await pollUntil(() => kernel.last.length === 0, { timeoutMs: 2000, what: 'the VIP removed' });
  t.same(svc.vips(), []);
});

t.test('nothing sent when the entries did not change (a change elsewhere in the catalog)', async (t) => {
  const { catalog, kernel, svc } = setup(t);
  catalog.put(ep('a', { VIP_0: '/web:80' }));
  await svc.start();
  const n = kernel.syncs.length;
  catalog.put(ep('plain', {}));
  catalog.put(ep('a', { VIP_0: '/web:80', other: 'label' }));
  await new Promise((r) => setTimeout(r, 20));
  t.equal(kernel.syncs.length, n);
});

t.test('a failed sync is logged once and retried until it goes through', async (t) => {
  const { catalog, kernel, svc, lines } = setup(t);
  await svc.start();
  kernel.failNext = 3;
  catalog.put(ep('a', { VIP_0: '/web:80' }));
  await pollUntil(() => kernel.last.length === 1, { timeoutMs: 5000, what: 'the retried sync' });
  t.equal(lines.filter((l) => l.msg === 'vip table sync failed; retrying').length, 1);
  t.equal(lines.filter((l) => l.msg === 'vip table synced again').length, 1);
});

t.test('a bad label is logged once per endpoint and label, again only after it was fixed and broken again', async (t) => {
  const { catalog, svc, lines } = setup(t);
  await svc.start();
  catalog.put(ep('a', { VIP_1: '/web:80' }));
  catalog.put(ep('b', { VIP_0: '/web:80' }));
  await pollUntil(() => svc.vips().length === 1, { timeoutMs: 2000, what: 'b\'s VIP' });
  catalog.put(ep('b', { VIP_0: '/web:80', x: '1' }));
  await new Promise((r) => setTimeout(r, 20));
  const bad = () => lines.filter((l) => l.msg === 'VIP label ignored');
  t.equal(bad().length, 1);
  t.match(bad()[0], { endpoint: 'h1/blue/a', label: 'VIP_1', problem: /has no port 1/ });
});

t.test('a claim that fails (etcd away) is retried; the VIP reaches the kernel once placed', async (t) => {
  const mem = new MemoryClaims();
  let down = true;
  const flaky: ClaimStore = { description: 'flaky', list: async () => { throw new Error('etcd down'); }, claim: async (a, n) => { if (down) throw new Error('etcd down'); return mem.claim(a, n); } };
  const { catalog, kernel, svc, lines } = setup(t, flaky);
  catalog.put(ep('a', { VIP_0: '/web:80' }));
  const started = svc.start();
  await started; // placeWaitMs default 5 s is not waited: the claim failed at once
  t.same(kernel.last, [], 'not placed yet: nothing in the kernel');
  t.same(svc.vips()[0]?.addresses, [], 'listed without an address');
  down = false;
  await pollUntil(() => kernel.last.length === 1, { timeoutMs: 5000, what: 'the VIP once claimed' });
  t.equal(lines.filter((l) => l.msg === 'cannot claim an address for a named VIP; retrying').length, 1);
  t.ok(lines.some((l) => l.msg === 'cannot read VIP address claims; claiming names one by one'));
});

t.test('stop: the kernel table is left (stop, not remove); later catalog changes are not followed', async (t) => {
  const { catalog, kernel, svc } = setup(t);
  await svc.start();
  await svc.stop();
  t.equal(kernel.stopped, 1);
  const n = kernel.syncs.length;
  catalog.put(ep('a', { VIP_0: '/web:80' }));
  await new Promise((r) => setTimeout(r, 20));
  t.equal(kernel.syncs.length, n);
});
