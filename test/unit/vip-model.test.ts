// vip/model.ts: catalog endpoints -> VIPs (backends with host and state) -> kernel entries.
import t from 'tap';
import type { Endpoint } from '../../catalog/endpoint';
import { formatIp, parseIp, type Ip } from '../../ipam/addr';
import type { VipAddressesOf } from '../../vip/address';
import { buildVips, describeChanges, entriesOf, weightOf } from '../../vip/model';

let n = 0;
const ep = (name: string, labels: Record<string, string>, more: Partial<Endpoint> = {}): Endpoint => {
  n++;
  return {
    id: `h${n % 2}/blue/${name}`, host: `h${n % 2}`, runtime: 'cni', containerId: name, network: 'blue', name, aliases: [],
    addresses: [`10.1.0.${n + 1}`, `fd00::${n + 1}`], labels, ports: [{ port: 8080, protocol: 'tcp' }, { port: 5353, protocol: 'udp' }], ...more,
  };
};
const ip = (s: string): Ip => parseIp(s) as Ip;
const placed: Record<string, VipAddressesOf> = { web: { v4: ip('198.18.0.10'), v6: ip('fd76:786e:6574::10') }, dns: { v4: ip('198.18.0.53'), v6: ip('fd76:786e:6574::53') } };
const addressesOf = (name: string): VipAddressesOf | undefined => placed[name];

t.test('named VIP: one per (name, protocol, port), backed by every endpoint asking, at port n, per family', async (t) => {
  n = 0;
  const endpoints = [ep('web-1', { VIP_0: '/web:80' }), ep('web-2', { VIP_0: '/web:80', VIP_1: '/dns:53' }), ep('other', {})];
  const { vips, problems, unplaced } = buildVips(endpoints, addressesOf);
  t.same(problems, []);
  t.same(unplaced, []);
  t.same(vips.map((v) => [v.vip, v.name, v.addresses, v.protocol, v.port]), [
    ['/dns:53/udp', 'dns', ['198.18.0.53', 'fd76:786e:6574::53'], 'udp', 53],
    ['/web:80/tcp', 'web', ['198.18.0.10', 'fd76:786e:6574::10'], 'tcp', 80],
  ]);
  const web = vips[1]!;
  t.same(web.backends, [
    { endpoint: 'h0/blue/web-2', name: 'web-2', host: 'h0', ip: '10.1.0.3', port: 8080, weight: 1, state: 'up' },
    { endpoint: 'h0/blue/web-2', name: 'web-2', host: 'h0', ip: 'fd00::3', port: 8080, weight: 1, state: 'up' },
    { endpoint: 'h1/blue/web-1', name: 'web-1', host: 'h1', ip: '10.1.0.2', port: 8080, weight: 1, state: 'up' },
    { endpoint: 'h1/blue/web-1', name: 'web-1', host: 'h1', ip: 'fd00::2', port: 8080, weight: 1, state: 'up' },
  ]);
  const entries = entriesOf(vips);
  const show = entries.map((e) => `${formatIp(e.ip)} ${e.protocol} ${e.port} -> ${e.backends.map((b) => `${formatIp(b.ip)}:${b.port}*${b.weight}`).join(' ')}`).sort();
  t.same(show, [
    '198.18.0.10 tcp 80 -> 10.1.0.3:8080*1 10.1.0.2:8080*1',
    '198.18.0.53 udp 53 -> 10.1.0.3:5353*1',
    'fd76:786e:6574::10 tcp 80 -> fd00::3:8080*1 fd00::2:8080*1',
    'fd76:786e:6574::53 udp 53 -> fd00::3:5353*1',
  ], 'each family\'s backends behind its own address');
});

t.test('IP VIP: backends of its family only; no address of that family is a problem', async (t) => {
  n = 0;
  const { vips, problems } = buildVips([
    ep('a', { VIP_0: '10.200.0.1:80' }),
    ep('b', { VIP_0: '[fd00:99::1]:80' }, { addresses: ['10.1.0.9'] }),
  ], addressesOf);
  t.same(vips.map((v) => [v.vip, v.addresses, v.backends.map((b) => b.ip)]), [['10.200.0.1:80/tcp', ['10.200.0.1'], ['10.1.0.2']]]);
  t.same(problems, [{ endpoint: 'h0/blue/b', label: 'VIP_0', problem: 'VIP_0: the endpoint has no IPv6 address to back [fd00:99::1]:80/tcp' }]);
});

t.test('without an IPv6 range a named VIP is IPv4 only', async (t) => {
  n = 0;
  const { vips } = buildVips([ep('a', { VIP_0: '/web:80' })], addressesOf, false);
  t.same(vips[0]?.addresses, ['198.18.0.10']);
  t.same(vips[0]?.backends.map((b) => b.ip), ['10.1.0.2']);
});

t.test('health: unhealthy and starting backends are listed with their state and kept out of the kernel; all out: an entry with none (reject)', async (t) => {
  n = 0;
  const { vips } = buildVips([
    ep('a', { VIP_0: '/web:80' }, { health: 'healthy', addresses: ['10.1.0.2'] }),
    ep('b', { VIP_0: '/web:80' }, { health: 'unhealthy', addresses: ['10.1.0.3'] }),
    ep('c', { VIP_0: '/web:80' }, { health: 'starting', addresses: ['10.1.0.4'] }),
    ep('d', { VIP_1: '/dns:53' }, { health: 'unhealthy', addresses: ['10.1.0.5'] }),
  ], addressesOf, false);
  t.same(vips[1]?.backends.map((b) => `${b.ip} ${b.state}`).sort(), ['10.1.0.2 up', '10.1.0.3 unhealthy', '10.1.0.4 starting']);
  const entries = entriesOf(vips);
  const web = entries.find((e) => e.port === 80);
  t.same(web?.backends.map((b) => formatIp(b.ip)), ['10.1.0.2'], 'only the healthy one');
  const dns = entries.find((e) => e.port === 53);
  t.same(dns?.backends, [], 'the VIP stays, with no backend: the kernel rejects');
});

t.test('weights: vxnet.weight 1-100, else 1 and a problem', async (t) => {
  n = 0;
  t.same(weightOf(ep('a', { 'vxnet.weight': '3' })), { weight: 3 });
  t.same(weightOf(ep('a', {})), { weight: 1 });
  t.match(weightOf(ep('a', { 'vxnet.weight': '0' })), { weight: 1, problem: /vxnet.weight=0: not a whole number 1-100/ });
  const { vips, problems } = buildVips([ep('a', { VIP_0: '/web:80', 'vxnet.weight': '3' }), ep('b', { VIP_0: '/web:80', 'vxnet.weight': 'x' })], addressesOf, false);
  t.same(vips[0]?.backends.map((b) => `${b.name} ${b.weight}`).sort(), ['a 3', 'b 1']);
  t.same(problems.map((p) => p.label), ['vxnet.weight']);
});

t.test('unplaced names are listed without an address and reported, and left out of the kernel', async (t) => {
  n = 0;
  const { vips, unplaced } = buildVips([ep('a', { VIP_0: '/new:80' })], addressesOf);
  t.same(unplaced, ['new']);
  t.same(vips[0]?.addresses, []);
  t.same(entriesOf(vips), []);
});

t.test('two VIPs on one (address, protocol, port) share one entry; one endpoint asking twice is one backend', async (t) => {
  n = 0;
  const { vips } = buildVips([
    ep('a', { VIP_0: '/web:80', VIP_2: '198.18.0.10:80' }, { addresses: ['10.1.0.2'], ports: [{ port: 8080, protocol: 'tcp' }, { port: 1, protocol: 'tcp' }, { port: 8080, protocol: 'tcp' }] }),
  ], addressesOf, false);
  t.equal(vips.length, 2);
  const entries = entriesOf(vips);
  t.equal(entries.length, 1);
  t.same(entries[0]?.backends.map((b) => `${formatIp(b.ip)}:${b.port}`), ['10.1.0.2:8080']);
});

t.test('describeChanges: one line per VIP added or removed and per backend in, out or changing state', async (t) => {
  n = 0;
  const a = ep('a', { VIP_0: '/web:80' }, { addresses: ['10.1.0.2'] });
  const b = ep('b', { VIP_0: '/web:80' }, { addresses: ['10.1.0.3'] });
  const before = buildVips([a, b], addressesOf, false).vips;
  const after = buildVips([{ ...a, health: 'unhealthy' }, ep('c', { VIP_1: '/dns:53' }, { addresses: ['10.1.0.9'] })], addressesOf, false).vips;
  t.same(describeChanges(before, after), [
    'VIP /dns:53/udp added at 198.18.0.53 with 1 backend(s)',
    'VIP /web:80/tcp: backend a 10.1.0.2:8080 on h1 up -> unhealthy',
    'VIP /web:80/tcp: backend b 10.1.0.3:8080 on h0 out',
  ]);
  t.same(describeChanges(after, []), ['VIP /dns:53/udp removed (no endpoint asks for it)', 'VIP /web:80/tcp removed (no endpoint asks for it)']);
});
