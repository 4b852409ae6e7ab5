// dns/mesos-view.ts without HTTP: the path names the API accepts, and listings of a big
// service staying linear (one lookup per owner name, not one per endpoint).
import t from 'tap';
import { EndpointCatalog } from '../../catalog/catalog';
import type { Endpoint } from '../../catalog/endpoint';
import { apiName, axfr, endpointViews, enumerate, hostRecords, portRecords } from '../../dns/mesos-view';
import { Zone } from '../../dns/zone';
import { parseIp } from '../../ipam/addr';

t.test('apiName: Mesos-DNS clean-up, the domain for a bare name, impossible names refused', async (t) => {
  t.equal(apiName('web', 'vxnet'), 'web.vxnet');
  t.equal(apiName('Web.Blue.VXNET.', 'vxnet'), 'web.blue.vxnet');
  t.equal(apiName('_web._tcp.vxnet', 'vxnet'), '_web._tcp.vxnet');
  t.equal(apiName('web.*.vxnet', 'vxnet'), 'web.vxnet', '".*" wildcards dropped');
  t.equal(apiName('example.com', 'vxnet'), 'example.com', 'outside the zone: asked as is (and not found)');
  for (const bad of ['', '.', 'a..b', 'my web', 'x'.repeat(64), 'a/b']) t.equal(apiName(bad, 'vxnet'), undefined, JSON.stringify(bad));
});

t.test('an unnamed endpoint (its name is not a DNS label) has no records and breaks nothing', async (t) => {
  const zone = new Zone();
  const e: Endpoint = { id: 'h/n/c', host: 'h', runtime: 'docker', containerId: 'c', network: 'n', name: '', aliases: [], addresses: ['10.0.0.2'], labels: {}, ports: [{ port: 80, protocol: 'tcp' }] };
  t.same(enumerate(zone, [e]), { frameworks: [{ tasks: [{ name: '', id: 'h/n/c', records: [] }], name: 'n' }] });
  t.same(endpointViews(zone, [e])[0].dnsNames, []);
  t.same(axfr(zone, [e]).Records, { As: {}, AAAAs: {}, SRVs: {} });
  t.same(portRecords(zone, [e], 'n.vxnet'), [{ host: '', ip: '', port: '', protocol: '', name: '' }]);
});

t.test('10,000 endpoints of one service: enumerate, axfr and endpoints stay linear', async (t) => {
  const zone = new Zone();
  const catalog = new EndpointCatalog();
  const n = 10_000;
  for (let i = 0; i < n; i++) {
    const address = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    const e: Endpoint = {
      id: `h/blue/c${i}`, host: 'h', runtime: 'cni', containerId: `c${i}`, network: 'blue', name: `web-${i}`, aliases: [],
      addresses: [address], labels: {}, ports: [{ port: 8080, protocol: 'tcp', name: 'http' }], service: 'web',
    };
    catalog.put(e);
    zone.set(e.id, { name: e.name, network: e.network, service: e.service, addresses: [parseIp(address)!], ports: e.ports });
  }
  const endpoints = catalog.list();
  const time = (f: () => unknown): number => { const s = process.hrtime.bigint(); f(); return Number(process.hrtime.bigint() - s) / 1e6; };
  let tasks = 0;
  const enumerateMs = time(() => { tasks = enumerate(zone, endpoints).frameworks[0].tasks.length; });
  const againMs = time(() => enumerate(zone, endpoints));
  let srvs = 0;
  const axfrMs = time(() => { srvs = axfr(zone, endpoints).Records.SRVs['_web._tcp.vxnet.'].length; });
  let views = 0;
  const viewsMs = time(() => { views = endpointViews(zone, endpoints).length; });
  t.equal(tasks, n);
  t.equal(srvs, n);
  t.equal(views, n);
  t.equal(hostRecords(zone, 'web').length, n, 'the service name answers every address');
  t.comment(`enumerate ${enumerateMs.toFixed(0)} ms (again ${againMs.toFixed(0)} ms, the RRsets built), axfr ${axfrMs.toFixed(0)} ms, endpoints ${viewsMs.toFixed(0)} ms for ${n} endpoints`);
  // Quadratic (a service lookup per endpoint) took minutes; linear takes well under a second
  // here, with room for a loaded machine.
  for (const [what, ms] of [['enumerate', enumerateMs], ['axfr', axfrMs], ['endpoints', viewsMs]] as const) t.ok(ms < 5000, `${what}: ${ms.toFixed(0)} ms < 5 s`);
});
