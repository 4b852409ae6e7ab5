// vip/forget.ts and net/conntrack.ts's pure parts: which flows are forgotten when a backend's
// address is gone (its endpoint deleted), and which are kept (a backend merely out of its VIP:
// draining); the conntrack arguments and the count it prints.
import t from 'tap';
import { EndpointCatalog } from '../../catalog/catalog';
import type { Endpoint } from '../../catalog/endpoint';
import { formatIp } from '../../ipam/addr';
import { createLogger } from '../../lib/log';
import { DatapathFailure } from '../../lib/errors';
import { conntrackDeleteArgs, deletedCount } from '../../net/conntrack';
import { MemoryClaims, VipAddresses, parseVipRange } from '../../vip/address';
import { goneFlows, VipForgetter } from '../../vip/forget';
import type { ConntrackFilter, VipEntry, VipKernel } from '../../vip/kernel';
import type { VipView } from '../../vip/model';
import { VipService } from '../../vip/service';
import { parseIp } from '../../ipam/addr';

const view = (vip: string, protocol: 'tcp' | 'udp', port: number, addresses: string[], ips: string[]): VipView => ({
  vip, protocol, port, addresses,
  backends: ips.map((ip, i) => ({ endpoint: `h/n/${i}`, name: `b${i}`, host: 'h', ip, port: 5353, weight: 1, state: 'up' as const })),
});
const text = (f: ConntrackFilter): string => `${f.protocol} ${formatIp(f.origDst)}:${f.origDstPort} <- ${formatIp(f.replySrc)}`;

t.test('goneFlows: each VIP address of the backend\'s family, for backends whose address is not live', async (t) => {
  const before = [
    view('/dns:53/udp', 'udp', 53, ['198.18.0.9', 'fd76::9'], ['10.1.0.2', '10.1.0.3', 'fd01::2']),
    view('/web:80/tcp', 'tcp', 80, ['198.18.0.7'], ['10.1.0.2']),
  ];
  t.same(goneFlows(before, new Set(['10.1.0.2', '10.1.0.3', 'fd01::2'])), [], 'all live: nothing');
  t.same(goneFlows(before, new Set(['10.1.0.3'])).map(text), [
    'udp 198.18.0.9:53 <- 10.1.0.2', 'udp fd76::9:53 <- fd01::2', 'tcp 198.18.0.7:80 <- 10.1.0.2',
  ], 'per VIP, per address of the family; TCP too (the address is gone)');
});

t.test('conntrack: the delete filter names VIP, protocol, port and backend; the count is read from its message', async (t) => {
  t.same(conntrackDeleteArgs({ protocol: 'udp', origDst: parseIp('198.18.0.9')!, origDstPort: 53, replySrc: parseIp('10.1.0.2')! }),
    ['-D', '-f', 'ipv4', '-p', 'udp', '--orig-dst', '198.18.0.9', '--dport', '53', '--reply-src', '10.1.0.2']);
  t.equal(conntrackDeleteArgs({ protocol: 'tcp', origDst: parseIp('fd76::9')!, origDstPort: 80, replySrc: parseIp('fd01::2')! })[2], 'ipv6');
  t.throws(() => conntrackDeleteArgs({ protocol: 'tcp', origDst: parseIp('fd76::9')!, origDstPort: 80, replySrc: parseIp('10.1.0.2')! }), DatapathFailure);
  t.equal(deletedCount('conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n'), 0);
  t.equal(deletedCount('udp 17 29 src=... \nconntrack v1.4.7 (conntrack-tools): 2 flow entries have been deleted.'), 2);
  t.equal(deletedCount('conntrack v1.4.7 (conntrack-tools): Operation failed: invalid parameters'), undefined);
});

class Kernel implements VipKernel {
  forgotten: string[] = [];
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async sync(entries: readonly VipEntry[]) { return { elementsAdded: entries.length, elementsRemoved: 0, ms: 0, full: false }; }
  async forget(flows: readonly ConntrackFilter[]): Promise<number> { this.forgotten.push(...flows.map(text)); return flows.length; }
}

const ep = (id: string, ip: string, more: Partial<Endpoint> = {}): Endpoint => ({
  id: `h1/blue/${id}`, host: 'h1', runtime: 'cni', containerId: id, network: 'blue', name: id, aliases: [],
  addresses: [ip], labels: { VIP_0: '/dns:53' }, ports: [{ port: 5353, protocol: 'udp' }], ...more,
});

t.test('VipForgetter over the service: a deleted endpoint\'s flows are forgotten, an unhealthy one\'s kept', async (t) => {
  const catalog = new EndpointCatalog();
  const kernel = new Kernel();
  const log = createLogger('test', 'error');
  const addresses = new VipAddresses(new MemoryClaims(), parseVipRange('198.18.0.0/15', 4, 'x'), undefined);
  const svc = new VipService({ catalog, kernel, addresses, log, retryMs: 10 });
  const forgetter = new VipForgetter({ source: svc, catalog, kernel, log });
  t.teardown(async () => { await forgetter.stop(); await svc.stop(); });
  catalog.replaceHost('h1', [ep('a', '10.1.0.2'), ep('b', '10.1.0.3'), ep('c', '10.1.0.4')]);
  await svc.start();
  forgetter.start();
  const vip = formatIp(addresses.known('dns')!.v4);
  const until = async (what: string, ok: () => boolean): Promise<void> => {
    for (let i = 0; i < 200 && !ok(); i++) { await new Promise((r) => setImmediate(r)); await forgetter.settled(); }
    t.ok(ok(), what);
  };

  catalog.put(ep('b', '10.1.0.3', { health: 'unhealthy' }));
  await until('b out of the kernel', () => svc.vips()[0]?.backends.find((x) => x.name === 'b')?.state === 'unhealthy');
  t.same(kernel.forgotten, [], 'an unhealthy backend keeps its flows (draining)');
  catalog.remove('h1/blue/a');
  await until('a forgotten', () => kernel.forgotten.length > 0);
  t.same(kernel.forgotten, [`udp ${vip}:53 <- 10.1.0.2`], 'the deleted endpoint\'s flows to the VIP, only');
  catalog.remove('h1/blue/b');
  await until('b forgotten', () => kernel.forgotten.length > 1);
  t.same(kernel.forgotten.slice(1), [`udp ${vip}:53 <- 10.1.0.3`], 'an unhealthy backend deleted: forgotten then');
  // The address taken again at once by another endpoint (IPAM reuse): live, nothing forgotten.
  catalog.replaceHost('h1', [ep('c', '10.1.0.4'), ep('d', '10.1.0.9', { labels: {} })]);
  catalog.replaceHost('h1', [ep('d', '10.1.0.4', { labels: {} })]);
  await until('c out', () => svc.vips().length === 0);
  await forgetter.settled();
  t.same(kernel.forgotten.length, 2, 'c\'s address lives on in another endpoint: its flows are kept');
});
