// dns/mesos-api.ts in a real express app on 127.0.0.1:0, asked over HTTP: every route's exact
// JSON (Mesos-DNS's shapes), the not-found shapes, changes seen at once, 405/404/400.
import type { AddressInfo } from 'node:net';
import t, { Test } from 'tap';
import { EndpointCatalog } from '../../catalog/catalog';
import { MesosDnsConfig, apiFallback, mesosDnsApi } from '../../dns/mesos-api';
import { reverseName } from '../../dns/names';
import { Zone } from '../../dns/zone';
import { Ip, parseIp } from '../../ipam/addr';
import { CONFIG, DB, NS, WEB1, WEB2, fed } from './helpers/catalog-fixture';

const ip = (text: string): Ip => parseIp(text)!;

async function serve(t: Test, config: MesosDnsConfig = CONFIG): Promise<{ url: string; catalog: EndpointCatalog; zone: Zone }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const express = require('express') as typeof import('express');
  const zone = new Zone({ nameserverAddresses: [ip('127.0.0.1')] });
  const catalog = new EndpointCatalog();
  catalog.replaceHost('h1', [WEB1, DB, NS]);
  catalog.replaceHost('h2', [WEB2]);
  fed(zone, catalog);
  const app = express();
  app.use(mesosDnsApi({ catalog, zone, config, version: '1.2.3' }));
  app.use(...apiFallback());
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => { server.once('listening', resolve); server.once('error', reject); });
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, catalog, zone };
}

async function get(url: string, init?: RequestInit): Promise<{ status: number; type: string; body: unknown; headers: Headers }> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

t.test('/v1/version and /v1/config', async (t) => {
  const { url, zone } = await serve(t);
  const v = await get(`${url}/v1/version`);
  t.equal(v.status, 200);
  t.match(v.type, /^application\/json/);
  t.same(v.body, { Service: 'vxnet', URL: '', Version: '1.2.3' });
  t.strictSame((await get(`${url}/v1/config`)).body, {
    Masters: null, Zk: '', RefreshSeconds: 0, TTL: 5, Port: 5353, Domain: 'vxnet', Resolvers: ['192.0.2.53:53'], Timeout: 2,
    SOAMname: 'ns.vxnet.', SOARname: 'hostmaster.vxnet.', SOASerial: zone.serial, SOARefresh: 60, SOARetry: 10, SOAExpire: 3600, SOAMinttl: 5,
    Listener: '127.0.0.1', HTTPListener: '127.0.0.1', HttpPort: 8123, DnsOn: true, HttpOn: true, RecurseOn: true, ExternalOn: true,
    EnumerationOn: true, Listeners: ['127.0.0.1:5353', '198.51.100.2:53'],
  });
});

t.test('/v1/hosts/{host}: A and AAAA, any spelling, Mesos-DNS not-found entry', async (t) => {
  const { url } = await serve(t);
  const hosts = async (name: string): Promise<unknown> => (await get(`${url}/v1/hosts/${name}`)).body;
  t.strictSame(await hosts('web-1.vxnet.'), [{ host: 'web-1.vxnet.', ip: '10.1.0.2' }, { host: 'web-1.vxnet.', ip: 'fd00::2' }]);
  t.strictSame(await hosts('WEB-1.Blue.vxnet'), [{ host: 'web-1.blue.vxnet.', ip: '10.1.0.2' }, { host: 'web-1.blue.vxnet.', ip: 'fd00::2' }], 'case and no trailing dot');
  t.strictSame(await hosts('web'), [{ host: 'web.vxnet.', ip: '10.1.0.2' }, { host: 'web.vxnet.', ip: '10.1.0.3' }, { host: 'web.vxnet.', ip: 'fd00::2' }], 'a bare name gets the domain; the service: every endpoint');
  t.strictSame(await hosts('www.blue.vxnet'), [{ host: 'www.blue.vxnet.', ip: '10.1.0.3' }], 'an alias');
  t.strictSame(await hosts('web.*.vxnet'), [{ host: 'web.vxnet.', ip: '10.1.0.2' }, { host: 'web.vxnet.', ip: '10.1.0.3' }, { host: 'web.vxnet.', ip: 'fd00::2' }], 'wildcards dropped, as Mesos-DNS');
  t.strictSame(await hosts('ns.vxnet'), [{ host: 'ns.vxnet.', ip: '127.0.0.1' }], 'the name server; not the refused endpoint "ns"');
  for (const missing of ['nope.vxnet', 'ns.blue.vxnet', 'blue.vxnet', 'web-1.example.com', 'bad%20name', 'a..b']) {
    t.strictSame(await hosts(missing), [{ host: '', ip: '' }], `${missing}: one empty entry`);
  }
});

t.test('/v1/services/{service}: SRV with the first A and AAAA of each target', async (t) => {
  const { url } = await serve(t);
  const services = async (name: string): Promise<unknown> => (await get(`${url}/v1/services/${name}`)).body;
  t.strictSame(await services('_web._tcp.vxnet.'), [
    { service: '_web._tcp.vxnet.', host: 'web-1.vxnet.', ip: '10.1.0.2', port: '8080' },
    { service: '_web._tcp.vxnet.', host: 'web-1.vxnet.', ip: 'fd00::2', port: '8080' },
    { service: '_web._tcp.vxnet.', host: 'web-2.vxnet.', ip: '10.1.0.3', port: '8080' },
  ]);
  t.strictSame(await services('_web._udp.vxnet'), [
    { service: '_web._udp.vxnet.', host: 'web-1.vxnet.', ip: '10.1.0.2', port: '9000' },
    { service: '_web._udp.vxnet.', host: 'web-1.vxnet.', ip: 'fd00::2', port: '9000' },
  ]);
  t.strictSame(await services('_HTTP._tcp.web.vxnet'), [
    { service: '_http._tcp.web.vxnet.', host: 'web-1.vxnet.', ip: '10.1.0.2', port: '8080' },
    { service: '_http._tcp.web.vxnet.', host: 'web-1.vxnet.', ip: 'fd00::2', port: '8080' },
    { service: '_http._tcp.web.vxnet.', host: 'web-2.vxnet.', ip: '10.1.0.3', port: '8080' },
  ], 'a named port');
  for (const missing of ['_nope._tcp.vxnet', '_db._tcp.vxnet', '_ns._udp.vxnet', 'web.vxnet']) {
    t.strictSame(await services(missing), [{ service: '', host: '', ip: '', port: '' }], `${missing}: one empty entry`);
  }
});

t.test('/v1/hosts/{host}/ports: the ports of the endpoints at that name', async (t) => {
  const { url } = await serve(t);
  const ports = async (name: string): Promise<unknown> => (await get(`${url}/v1/hosts/${name}/ports`)).body;
  t.strictSame(await ports('web-1.vxnet'), [
    { host: 'web-1.vxnet.', ip: '10.1.0.2', port: '8080', protocol: 'tcp', name: 'http' },
    { host: 'web-1.vxnet.', ip: '10.1.0.2', port: '9000', protocol: 'udp', name: '' },
    { host: 'web-1.vxnet.', ip: 'fd00::2', port: '8080', protocol: 'tcp', name: 'http' },
    { host: 'web-1.vxnet.', ip: 'fd00::2', port: '9000', protocol: 'udp', name: '' },
  ]);
  t.strictSame(await ports('www'), [{ host: 'www.vxnet.', ip: '10.1.0.3', port: '8080', protocol: 'tcp', name: 'http' }], 'by alias');
  const empty = [{ host: '', ip: '', port: '', protocol: '', name: '' }];
  t.strictSame(await ports('db.red.vxnet'), empty, 'no ports');
  t.strictSame(await ports('ns.blue.vxnet'), empty, 'refused by the zone');
  t.strictSame(await ports('nope'), empty);
});

t.test('/v1/enumerate: networks as frameworks, endpoints as tasks, the records the zone serves', async (t) => {
  const { url } = await serve(t);
  const ptr = (address: string): string => `${reverseName(ip(address))}.`;
  t.strictSame((await get(`${url}/v1/enumerate`)).body, {
    frameworks: [
      {
        tasks: [
          { name: 'ns', id: 'h1/blue/c4', records: [] },
          {
            name: 'web-1', id: 'h1/blue/c1', records: [
              { name: 'web-1.vxnet.', host: '10.1.0.2', rtype: 'A' },
              { name: 'web-1.vxnet.', host: 'fd00::2', rtype: 'AAAA' },
              { name: 'web-1.blue.vxnet.', host: '10.1.0.2', rtype: 'A' },
              { name: 'web-1.blue.vxnet.', host: 'fd00::2', rtype: 'AAAA' },
              { name: 'web.vxnet.', host: '10.1.0.2', rtype: 'A' },
              { name: 'web.vxnet.', host: 'fd00::2', rtype: 'AAAA' },
              { name: '_web._tcp.vxnet.', host: 'web-1.vxnet.:8080', rtype: 'SRV' },
              { name: '_http._tcp.web.vxnet.', host: 'web-1.vxnet.:8080', rtype: 'SRV' },
              { name: '_web._udp.vxnet.', host: 'web-1.vxnet.:9000', rtype: 'SRV' },
              { name: ptr('10.1.0.2'), host: 'web-1.vxnet.', rtype: 'PTR' },
              { name: ptr('fd00::2'), host: 'web-1.vxnet.', rtype: 'PTR' },
            ],
          },
          {
            name: 'web-2', id: 'h2/blue/c2', records: [
              { name: 'web-2.vxnet.', host: '10.1.0.3', rtype: 'A' },
              { name: 'web-2.blue.vxnet.', host: '10.1.0.3', rtype: 'A' },
              { name: 'www.vxnet.', host: '10.1.0.3', rtype: 'A' },
              { name: 'www.blue.vxnet.', host: '10.1.0.3', rtype: 'A' },
              { name: 'web.vxnet.', host: '10.1.0.3', rtype: 'A' },
              { name: '_web._tcp.vxnet.', host: 'web-2.vxnet.:8080', rtype: 'SRV' },
              { name: '_http._tcp.web.vxnet.', host: 'web-2.vxnet.:8080', rtype: 'SRV' },
              { name: ptr('10.1.0.3'), host: 'web-2.vxnet.', rtype: 'PTR' },
            ],
          },
        ],
        name: 'blue',
      },
      {
        tasks: [{
          name: 'db', id: 'h1/red/c3', records: [
            { name: 'db.vxnet.', host: '10.2.0.5', rtype: 'A' },
            { name: 'db.red.vxnet.', host: '10.2.0.5', rtype: 'A' },
            { name: ptr('10.2.0.5'), host: 'db.vxnet.', rtype: 'PTR' },
          ],
        }],
        name: 'red',
      },
    ],
  });
});

t.test('/v1/axfr: Mesos-DNS zone transfer of every A, AAAA and SRV', async (t) => {
  const { url, zone } = await serve(t);
  const body = (await get(`${url}/v1/axfr`)).body;
  t.strictSame(body, {
    TTL: 5, Serial: zone.serial, RefreshSeconds: 5, Mname: 'ns.vxnet.', Rname: 'hostmaster.vxnet.', Domain: 'vxnet',
    Records: {
      As: {
        'db.red.vxnet.': ['10.2.0.5'], 'db.vxnet.': ['10.2.0.5'], 'ns.vxnet.': ['127.0.0.1'],
        'web-1.blue.vxnet.': ['10.1.0.2'], 'web-1.vxnet.': ['10.1.0.2'], 'web-2.blue.vxnet.': ['10.1.0.3'], 'web-2.vxnet.': ['10.1.0.3'],
        'web.vxnet.': ['10.1.0.2', '10.1.0.3'], 'www.blue.vxnet.': ['10.1.0.3'], 'www.vxnet.': ['10.1.0.3'],
      },
      AAAAs: { 'web-1.blue.vxnet.': ['fd00::2'], 'web-1.vxnet.': ['fd00::2'], 'web.vxnet.': ['fd00::2'] },
      SRVs: {
        '_http._tcp.web.vxnet.': ['web-1.vxnet.:8080', 'web-2.vxnet.:8080'],
        '_web._tcp.vxnet.': ['web-1.vxnet.:8080', 'web-2.vxnet.:8080'],
        '_web._udp.vxnet.': ['web-1.vxnet.:9000'],
      },
    },
  });
  t.same(Object.keys(body as object), ['TTL', 'Serial', 'RefreshSeconds', 'Mname', 'Rname', 'Domain', 'Records'], "models.AXFR's field order");
});

t.test('/v1/endpoints: the catalog with the names DNS gives each endpoint', async (t) => {
  const { url } = await serve(t);
  t.strictSame((await get(`${url}/v1/endpoints`)).body, [
    { id: 'h1/blue/c4', name: 'ns', aliases: [], network: 'blue', host: 'h1', runtime: 'docker', containerId: 'c4', addresses: ['10.1.0.9'], ports: [{ port: 53, protocol: 'udp', name: null }], service: null, labels: {}, dnsNames: [] },
    {
      id: 'h1/blue/c1', name: 'web-1', aliases: [], network: 'blue', host: 'h1', runtime: 'docker', containerId: WEB1.containerId, addresses: ['10.1.0.2', 'fd00::2'],
      ports: [{ port: 8080, protocol: 'tcp', name: 'http' }, { port: 9000, protocol: 'udp', name: null }], service: 'web', labels: { 'vxnet.service': 'web' },
      dnsNames: ['web-1.vxnet.', 'web-1.blue.vxnet.', 'web.vxnet.'],
    },
    {
      id: 'h2/blue/c2', name: 'web-2', aliases: ['www'], network: 'blue', host: 'h2', runtime: 'cni', containerId: 'c2', addresses: ['10.1.0.3'],
      ports: [{ port: 8080, protocol: 'tcp', name: 'http' }], service: 'web', labels: { 'com.docker.compose.service': 'web' },
      dnsNames: ['web-2.vxnet.', 'web-2.blue.vxnet.', 'www.vxnet.', 'www.blue.vxnet.', 'web.vxnet.'],
    },
    { id: 'h1/red/c3', name: 'db', aliases: [], network: 'red', host: 'h1', runtime: 'docker', containerId: 'c3', addresses: ['10.2.0.5'], ports: [], service: null, labels: {}, dnsNames: ['db.vxnet.', 'db.red.vxnet.'] },
  ]);
});

t.test('a change in the catalog shows in the next answer', async (t) => {
  const { url, catalog } = await serve(t);
  catalog.remove(WEB2.id);
  t.strictSame((await get(`${url}/v1/hosts/web`)).body, [{ host: 'web.vxnet.', ip: '10.1.0.2' }, { host: 'web.vxnet.', ip: 'fd00::2' }]);
  t.strictSame((await get(`${url}/v1/hosts/www`)).body, [{ host: '', ip: '' }]);
  catalog.put({ ...DB, addresses: ['10.2.0.6'] });
  t.strictSame((await get(`${url}/v1/hosts/db`)).body, [{ host: 'db.vxnet.', ip: '10.2.0.6' }]);
  const tasks = ((await get(`${url}/v1/enumerate`)).body as { frameworks: Array<{ name: string; tasks: Array<{ name: string }> }> }).frameworks;
  t.same(tasks.map((f) => [f.name, f.tasks.map((x) => x.name)]), [['blue', ['ns', 'web-1']], ['red', ['db']]]);
});

t.test('methods, unknown paths and unreadable requests: JSON errors with their status', async (t) => {
  const { url } = await serve(t);
  for (const [method, path] of [['POST', '/v1/hosts/web'], ['DELETE', '/v1/axfr'], ['PUT', '/v1/version'], ['PATCH', '/v1/hosts/web/ports']] as const) {
    const r = await get(`${url}${path}`, { method });
    t.equal(r.status, 405, `${method} ${path}: 405`);
    t.equal(r.headers.get('allow'), 'GET, HEAD');
    t.match(r.type, /^application\/json/);
    t.match(r.body, { error: { code: 'MethodNotAllowed', message: new RegExp(`method ${method} not allowed`) } }, 'vxnet\'s error family, as /api/v1');
  }
  const head = await fetch(`${url}/v1/version`, { method: 'HEAD' });
  t.equal(head.status, 200, 'HEAD is GET without the body');
  for (const path of ['/v1/nope', '/v1/hosts', '/v1/hosts/a/b/c', '/', '/v2/version']) {
    const r = await get(`${url}${path}`);
    t.equal(r.status, 404, `${path}: 404`);
    t.match(r.type, /^application\/json/);
    t.strictSame(Object.keys(r.body as object), ['error']);
    t.match(r.body, { error: { code: 'NotFound', message: /no such resource/ } });
  }
  const bad = await get(`${url}/v1/hosts/%E0%A4%A`);
  t.equal(bad.status, 400, 'a malformed escape: 400');
  t.match(bad.body, { error: { code: 'BadRequest', message: /^bad request \/v1\/hosts\/%E0%A4%A: / } });
});

t.test('enumeration off: /v1/enumerate and /v1/axfr are not served', async (t) => {
  const { url } = await serve(t, { ...CONFIG, enumeration: false });
  t.equal((await get(`${url}/v1/enumerate`)).status, 404);
  t.equal((await get(`${url}/v1/axfr`)).status, 404);
  t.equal((await get(`${url}/v1/hosts/web-1`)).status, 200);
});

t.test('a config that does not match the zone is a wiring mistake', async (t) => {
  const zone = new Zone();
  const catalog = new EndpointCatalog();
  t.throws(() => mesosDnsApi({ catalog, zone, config: { ...CONFIG, domain: 'cluster' }, version: '1' }), { code: 7, message: /config domain "cluster" is not the zone's "vxnet"/ });
  t.throws(() => mesosDnsApi({ catalog, zone, config: { ...CONFIG, ttl: 60 }, version: '1' }), { message: /TTL 60/ });
  t.throws(() => mesosDnsApi({ catalog, zone, config: { ...CONFIG, httpListen: 'localhost:8123' }, version: '1' }), { message: /HTTP listen address "localhost:8123"/ });
  t.doesNotThrow(() => mesosDnsApi({ catalog, zone, config: { ...CONFIG, domain: 'VXNET.' }, version: '1' }));
});
