// The built vxnetctl: `dns query` against a real dns/server.ts DnsServer on 127.0.0.1:PORT
// (UDP, TC then TCP, NXDOMAIN, refused, dns.json for the server and the domain), and `dns ls`
// against dns/mesos-api.ts's router on an ephemeral port.
import { writeFileSync } from 'node:fs';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import t, { Test } from 'tap';
import { EndpointCatalog } from '../../catalog/catalog';
import { createHandler } from '../../dns/handler';
import { apiFallback, mesosDnsApi } from '../../dns/mesos-api';
import { DnsServer } from '../../dns/server';
import { Zone } from '../../dns/zone';
import { Ip, parseIp } from '../../ipam/addr';
import { copyDist } from '../helpers/dist';
import { exec, ExecResult } from '../helpers/sh';
import { tmpDir } from '../ipam/helpers/embedded';
import { CONFIG, DB, NS, WEB1, WEB2, fed } from './helpers/catalog-fixture';

const ip = (text: string): Ip => parseIp(text)!;

function filledZone(domain = 'vxnet'): { zone: Zone; catalog: EndpointCatalog } {
  const zone = new Zone({ domain, nameserverAddresses: [ip('127.0.0.1')] });
  const catalog = new EndpointCatalog();
  catalog.replaceHost('h1', [WEB1, DB, NS]);
  catalog.replaceHost('h2', [WEB2]);
  fed(zone, catalog);
  for (let i = 0; i < 100; i++) zone.set(`big${i}`, { name: `big-${i}`, network: 'blue', service: 'big', addresses: [{ family: 4, value: 0x0a030000n + BigInt(i) }], ports: [] });
  return { zone, catalog };
}

async function dnsServer(t: Test, zone: Zone): Promise<number> {
  const server = new DnsServer({ listen: [{ ip: ip('127.0.0.1'), port: 0 }], handler: createHandler({ zone }) });
  await server.start();
  t.teardown(() => server.stop());
  return server.addresses()[0].port;
}

async function apiServer(t: Test, catalog: EndpointCatalog, zone: Zone): Promise<string> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const express = require('express') as typeof import('express');
  const app = express();
  app.use(mesosDnsApi({ catalog, zone, config: CONFIG, version: 'test' }));
  app.use(...apiFallback());
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => { server.once('listening', resolve); server.once('error', reject); });
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A loopback TCP port nothing listens on (fetch refuses "bad ports" such as 1 before connecting). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

let vxnetctl: (args: string[], env?: Record<string, string>) => Promise<ExecResult>;

t.before(async () => {
  const dist = await copyDist(t, ['bin/vxnetctl']);
  const bin = path.join(dist, 'bin', 'vxnetctl');
  // No dns.json of the host's vxnetd must leak in: each test names its own (or a missing one).
  vxnetctl = (args, env = {}) => exec(process.execPath, [bin, ...args], { env: { PATH: process.env.PATH, VXNET_DNS_JSON: '/nonexistent/dns.json', ...env }, timeoutMs: 20_000 });
});

t.test('dns query: A, AAAA, SRV with additionals, PTR from an address, a bare name', async (t) => {
  const { zone } = filledZone();
  const server = `127.0.0.1:${await dnsServer(t, zone)}`;
  let r = await vxnetctl(['dns', 'query', 'web-1.vxnet', '--server', server]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, `;; web-1.vxnet. A from ${server} over udp: status: NOERROR, flags: qr aa rd ra; ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 0

;; ANSWER SECTION:
web-1.vxnet.\t5\tIN\tA\t10.1.0.2
`);
  r = await vxnetctl(['dns', 'query', 'web-1', 'aaaa', '--server', server]);
  t.equal(r.code, 0);
  t.match(r.stdout, /^;; web-1\.vxnet\. AAAA from .*status: NOERROR/, 'a bare name gets the default domain; the type any case');
  t.match(r.stdout, /\nweb-1\.vxnet\.\t5\tIN\tAAAA\tfd00::2\n/);
  r = await vxnetctl(['--json', 'dns', 'query', '_web._tcp.vxnet.', 'SRV', '--server', server]);
  t.equal(r.code, 0);
  const j = JSON.parse(r.stdout) as { rcode: string; transport: string; flags: string[]; answers: Array<{ data: string }>; additionals: Array<{ name: string; type: string; data: string }>; server: string; name: string; type: string };
  t.equal(j.rcode, 'NOERROR');
  t.equal(j.server, server);
  t.equal(j.name, '_web._tcp.vxnet.');
  t.equal(j.type, 'SRV');
  t.equal(j.transport, 'udp');
  t.same(j.flags, ['qr', 'aa', 'rd', 'ra']);
  t.same(j.answers.map((a) => a.data).sort(), ['0 1 8080 web-1.vxnet.', '0 1 8080 web-2.vxnet.']);
  t.same(j.additionals.map((a) => `${a.name} ${a.type} ${a.data}`).sort(), ['web-1.vxnet. A 10.1.0.2', 'web-1.vxnet. AAAA fd00::2', 'web-2.vxnet. A 10.1.0.3']);
  r = await vxnetctl(['dns', 'query', '10.1.0.3', '--server', server]);
  t.equal(r.code, 0);
  t.match(r.stdout, /^3\.0\.1\.10\.in-addr\.arpa\.\t5\tIN\tPTR\tweb-2\.vxnet\.$/m, 'an address asks for its PTR');
});

t.test('dns query: a truncated UDP answer is fetched again over TCP', async (t) => {
  const { zone } = filledZone();
  const server = `127.0.0.1:${await dnsServer(t, zone)}`;
  const r = await vxnetctl(['--json', 'dns', 'query', 'big', '--server', server]);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { transport: string; truncatedOverUdp: boolean; answers: unknown[]; flags: string[] };
  t.equal(j.transport, 'tcp');
  t.equal(j.truncatedOverUdp, true);
  t.equal(j.answers.length, 100, 'all 100 records (more than 1232 bytes hold)');
  t.notOk(j.flags.includes('tc'));
});

t.test('dns query: NXDOMAIN, NODATA, no server, refused', async (t) => {
  const { zone } = filledZone();
  const port = await dnsServer(t, zone);
  const server = `127.0.0.1:${port}`;
  let r = await vxnetctl(['dns', 'query', 'nope', '--server', server]);
  t.equal(r.code, 1, 'NXDOMAIN exits 1');
  t.match(r.stdout, /status: NXDOMAIN/);
  t.match(r.stdout, /;; AUTHORITY SECTION:\nvxnet\.\t5\tIN\tSOA\tns\.vxnet\. hostmaster\.vxnet\. \d+ 60 10 3600 5\n/, 'the SOA is printed');
  t.equal(r.stderr, `vxnetctl: nope.vxnet. A: NXDOMAIN from ${server} (no such name)\n`);
  r = await vxnetctl(['--json', 'dns', 'query', 'nope.vxnet', '--server', server]);
  t.equal(r.code, 1);
  t.equal((JSON.parse(r.stdout) as { rcode: string }).rcode, 'NXDOMAIN', 'JSON still printed');
  r = await vxnetctl(['dns', 'query', 'blue.vxnet', '--server', server]);
  t.equal(r.code, 0, 'NODATA: the name exists');
  t.match(r.stdout, /status: NOERROR.*ANSWER: 0, AUTHORITY: 1/);
  r = await vxnetctl(['dns', 'query', 'example.com', '--server', server]);
  t.equal(r.code, 1, 'no forwarder: REFUSED exits 1');
  t.match(r.stderr, /example\.com\. A: REFUSED from 127\.0\.0\.1:\d+/);
  const start = Date.now();
  r = await vxnetctl(['dns', 'query', 'web-1', '--server', '127.0.0.1:1']);
  t.equal(r.code, 1);
  t.equal(r.stderr, 'vxnetctl: web-1.vxnet. A: nothing listens on 127.0.0.1:1 (connection refused over UDP)\n');
  t.ok(Date.now() - start < 10_000, 'refused at once, not after the timeout');
});

t.test('dns query: the server and the domain from dns.json', async (t) => {
  const { zone } = filledZone('cluster');
  const port = await dnsServer(t, zone);
  const file = path.join(await tmpDir(t, 'vxnet-dnsjson-'), 'dns.json');
  writeFileSync(file, JSON.stringify({ nameservers: ['not-an-address', `127.0.0.1:${port}`, '198.51.100.2'], domain: 'cluster', search: ['cluster'] }));
  const r = await vxnetctl(['dns', 'query', 'web-2'], { VXNET_DNS_JSON: file });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, new RegExp(`^;; web-2\\.cluster\\. A from 127\\.0\\.0\\.1:${port} over udp: status: NOERROR`));
  t.match(r.stdout, /\nweb-2\.cluster\.\t5\tIN\tA\t10\.1\.0\.3\n/);
});

t.test('dns ls: the table and --json from the API; $VXNET_API; an API that is not there', async (t) => {
  const { zone, catalog } = filledZone();
  const api = await apiServer(t, catalog, zone);
  let r = await vxnetctl(['dns', 'ls', '--api', api]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, [
    'NAME       NETWORK  SERVICE  ADDRESSES         PORTS                   HOST  DNS NAMES',
    'ns         blue     -        10.1.0.9          53/udp                  h1    -',
    'web-1      blue     web      10.1.0.2,fd00::2  http=8080/tcp,9000/udp  h1    web-1.vxnet,web-1.blue.vxnet,web.vxnet',
    'web-2,www  blue     web      10.1.0.3          http=8080/tcp           h2    web-2.vxnet,web-2.blue.vxnet,www.vxnet,www.blue.vxnet,web.vxnet',
    'db         red      -        10.2.0.5          -                       h1    db.vxnet,db.red.vxnet',
    '',
  ].join('\n'));
  r = await vxnetctl(['dns', 'ls', '--json'], { VXNET_API: `${api}/` });
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { api: string; endpoints: Array<{ id: string; dnsNames: string[]; service: string | null }> };
  t.equal(j.api, api);
  t.same(j.endpoints.map((e) => e.id), ['h1/blue/c4', 'h1/blue/c1', 'h2/blue/c2', 'h1/red/c3']);
  t.same(j.endpoints[3], { ...DB, service: null, dnsNames: ['db.vxnet.', 'db.red.vxnet.'] });
  catalog.remove(WEB1.id);
  catalog.remove(WEB2.id);
  catalog.remove(DB.id);
  catalog.remove(NS.id);
  r = await vxnetctl(['dns', 'ls', '--api', api]);
  t.equal(r.stdout, `(no endpoints known to ${api})\n`);
  const closed = await closedPort();
  r = await vxnetctl(['dns', 'ls', '--api', `http://127.0.0.1:${closed}`]);
  t.equal(r.code, 1);
  t.equal(r.stderr, `vxnetctl: cannot reach vxnetd's API at http://127.0.0.1:${closed}: ECONNREFUSED (is vxnetd running with its HTTP API? --api URL or $VXNET_API)\n`);
  r = await vxnetctl(['dns', 'ls', '--api', `${api}/nothing-here`]);
  t.equal(r.code, 1);
  t.equal(r.stderr, 'vxnetctl: no such resource: GET /nothing-here/v1/endpoints\n', 'the server\'s NotFound, as vxnet\'s error');
});
