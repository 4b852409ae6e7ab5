// vxnetctl vip ls / vip show against vip/api.ts's routes on a loopback HTTP server (the routes
// vxnetd mounts), the table rows, the JSON, the mistakes.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { parseCommandLine } from '../../ctl/args';
import { lsRows, parseVips } from '../../ctl/vip';
import { apiFallback } from '../../dns/mesos-api';
import { vipApi, vipsNamed } from '../../vip/api';
import type { VipView } from '../../vip/model';
import { ctl } from '../helpers/ctl';

const VIPS: VipView[] = [
  { vip: '/web:80/tcp', name: 'web', addresses: ['198.18.209.62', 'fd76:786e:6574::1'], protocol: 'tcp', port: 80, backends: [
    { endpoint: 'h1/blue/c1', name: 'web-1', host: 'h1', ip: '10.1.0.2', port: 8080, weight: 1, state: 'up' },
    { endpoint: 'h2/blue/c2', name: 'web-2', host: 'h2', ip: 'fd00::3', port: 8080, weight: 2, state: 'unhealthy' },
  ] },
  { vip: '/web:443/tcp', name: 'web', addresses: ['198.18.209.62'], protocol: 'tcp', port: 443, backends: [] },
  { vip: '10.9.0.1:53/udp', addresses: ['10.9.0.1'], protocol: 'udp', port: 53, backends: [
    { endpoint: 'h1/blue/c3', name: '', host: 'h1', ip: '10.1.0.4', port: 5353, weight: 1, state: 'up' },
  ] },
];

async function api(t: { teardown(fn: () => unknown): void }, vips: readonly VipView[]): Promise<string> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const express = require('express') as typeof import('express');
  const app = express();
  app.use(vipApi({ vips: () => vips }));
  app.use(...apiFallback());
  const server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test('command line: vip ls, vip show NAME', async (t) => {
  const inv = parseCommandLine(['vip', 'show', '/web', '--api', 'http://x:1']);
  t.match(inv, { kind: 'run', command: 'vip show', positionals: ['/web'], values: { api: 'http://x:1' } });
  t.match(parseCommandLine(['vip', 'list']), { kind: 'run', command: 'vip ls' });
  const help = parseCommandLine(['vip', 'ls', '--help']);
  t.match(help.kind === 'help' ? help.text : '', /VIP_<n>=\/NAME:PORT[\s\S]*unhealthy[\s\S]*JSON: \{"api", "vips"/);
  const usage = parseCommandLine(['--help']);
  t.match(usage.kind === 'help' ? usage.text : '', /\n {2}vip ls {10}VIPs: address, protocol, port, backends with host and state/);
});

t.test('rows: one per backend under its VIP; a VIP with none says so', async (t) => {
  t.same(lsRows(VIPS), [
    ['/web', 'tcp', '80', '198.18.209.62,fd76:786e:6574::1', 'web-1 10.1.0.2:8080', 'h1', 'up', '1'],
    ['', '', '', '', 'web-2 [fd00::3]:8080', 'h2', 'unhealthy', '2'],
    ['/web', 'tcp', '443', '198.18.209.62', '(none)', '', '', ''],
    ['10.9.0.1', 'udp', '53', '10.9.0.1', 'h1/blue/c3 10.1.0.4:5353', 'h1', 'up', '1'],
  ]);
  t.throws(() => parseVips([{ vip: 'x' }], 'u'), { name: 'DecodingFailure', message: /u: not a list of VIPs/ });
  t.same(vipsNamed(VIPS, '/WEB').length, 2);
  t.same(vipsNamed(VIPS, '10.9.0.1').map((v) => v.vip), ['10.9.0.1:53/udp']);
  t.same(vipsNamed(VIPS, '[fd76:786e:6574::1]').map((v) => v.vip), ['/web:80/tcp']);
});

t.test('vip ls and vip show through the HTTP API', async (t) => {
  const base = await api(t, VIPS);
  let r = await ctl(['vip', 'ls', '--api', base]);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  t.match(lines[0], /^VIP\s+PROTO\s+PORT\s+ADDRESSES\s+BACKEND\s+HOST\s+STATE\s+WEIGHT$/);
  t.equal(lines.length, 5);
  t.match(lines[2], /web-2 \[fd00::3\]:8080\s+h2\s+unhealthy\s+2$/);
  r = await ctl(['vip', 'show', 'web', '--api', base, '--json']);
  t.equal(r.code, 0, r.stderr);
  t.same(JSON.parse(r.stdout), { api: base, vips: VIPS.slice(0, 2) });
  r = await ctl(['vip', 'show', 'nope', '--api', base]);
  t.same(r, { code: 1, stdout: '', stderr: 'vxnetctl: no VIP named or at "nope" (vxnetctl vip ls lists them)\n' });
  // The routes' own errors are vxnet's error family, as the operator API's.
  const missing = await fetch(`${base}/v1/vips/nope`);
  t.equal(missing.status, 404);
  t.strictSame(await missing.json(), { error: { code: 'NotFound', message: 'no VIP named or at "nope"' } });
  const post = await fetch(`${base}/v1/vips`, { method: 'POST' });
  t.equal(post.status, 405);
  t.equal(post.headers.get('allow'), 'GET, HEAD');
  t.strictSame(await post.json(), { error: { code: 'MethodNotAllowed', message: 'method POST not allowed on /v1/vips (GET only)' } });
  r = await ctl(['vip', 'ls'], { VXNET_API: await api(t, []) });
  t.match(r.stdout, /^\(no VIPs known to http:\/\/127.0.0.1:\d+\)\n$/);
  r = await ctl(['vip', 'ls', '--api', 'http://127.0.0.1:1']);
  t.equal(r.code, 1);
  t.match(r.stderr, /cannot reach vxnetd's API at http:\/\/127.0.0.1:1: /);
});
