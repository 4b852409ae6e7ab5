// The operator API in-process (no root): the router (api/router.ts) against a real embedded
// IPAM store in a temp dir and a real catalog, served by api/server.ts on 127.0.0.1:0.
// Every route the router has is in the OpenAPI document and every documented operation is a
// route; every GET's real answer validates against the document's schema; errors map to their
// statuses with vxnet's JSON; the token, loopback-only mutations and the body limit; history
// answers "who had ADDRESS at T"; the flags that guard a non-loopback listener.
import t, { type Test as TapTest } from 'tap';
import * as path from 'node:path';
import { EndpointCatalog } from '../../catalog/catalog';
import { parseIp, type Ip } from '../../ipam/addr';
import { openStore } from '../../ipam/store';
import { createLogger } from '../../lib/log';
import { NotFound, IoFailure, DecodingFailure, AddressUnavailable, VxnetError } from '../../lib/errors';
import { UsageError } from '../../lib/usage';
import { addressTimeline } from '../../ipam/query';
import { OPENAPI } from '../../api/openapi';
import { ROUTES, expressPath, isMutation, operatorApi } from '../../api/router';
import { errorAnswer } from '../../lib/http-errors';
import { bearerOf, tokenMatches } from '../../api/auth';
import { startApiServer } from '../../api/server';
import type { ApiSources } from '../../api/sources';
import { parseVxnetdArgs } from '../../bin/vxnetd/flags';
import { type Doc, responseSchema, validate } from '../helpers/openapi';
import { tmpDir } from '../ipam/helpers/embedded';

const doc = OPENAPI as unknown as Doc;
const log = createLogger('vxt', 'error', () => undefined);
const ip = (s: string): Ip => parseIp(s) as Ip;
const POOL = JSON.stringify([[{ subnet: '10.238.7.0/24', rangeStart: '10.238.7.10', rangeEnd: '10.238.7.20', gateway: '10.238.7.1' }]]);

async function sources(t: TapTest): Promise<ApiSources> {
  const dir = await tmpDir(t, 'vxt-api-');
  const store = openStore({ dataDir: path.join(dir, 'data') });
  t.teardown(() => store.close());
  const catalog = new EndpointCatalog();
  catalog.put({ id: 'h1/vxtnet/c1', host: 'h1', runtime: 'cni', containerId: 'c1', network: 'vxtnet', name: 'web', aliases: [], addresses: ['10.238.7.10'], labels: { a: 'b' }, ports: [{ port: 80, protocol: 'tcp', name: 'http' }], service: 'web' });
  const removed: string[] = [];
  return {
    host: 'h1', version: 'test', store, catalog, dataDir: path.join(dir, 'data'),
    dns: () => ({ running: true, domain: 'vxnet', serial: 3, records: [{ name: 'web.vxnet.', type: 'A', value: '10.238.7.10', ttl: 5 }] }),
    vips: () => [{ vip: '/web:80/tcp', name: 'web', addresses: ['198.18.0.5'], protocol: 'tcp', port: 80, backends: [{ endpoint: 'h1/vxtnet/c1', name: 'web', address: '10.238.7.10', port: 80, host: 'h1', weight: 1, state: 'up' }] }],
    veth: { exists: () => false, remove: async (name) => { removed.push(name); return 'absent'; } },
    vethName: (c, i) => `vx-${c}-${i}`,
  };
}

t.test('every route is documented and every documented operation is a route', async (t) => {
  const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).filter((m) => ['get', 'post', 'put', 'delete', 'patch'].includes(m)).map((m) => `${m.toUpperCase()} ${p}`)).sort();
  const table = ROUTES.map((r) => `${r.method.toUpperCase()} ${r.path}`).sort();
  t.same(table, documented, 'ROUTES and the document name the same operations');
  // What the express router really has (its method-specific routes), not just the table.
  const src = await sources(t);
  const api = operatorApi(src);
  t.teardown(() => api.close());
  const stack = (api.router as unknown as { stack: Array<{ route?: { path: unknown; methods: Record<string, boolean> } }> }).stack;
  const real = stack.flatMap((l) => (l.route && typeof l.route.path === 'string' && !l.route.methods._all
    ? Object.keys(l.route.methods).map((m) => `${m.toUpperCase()} ${l.route!.path}`) : [])).sort();
  t.same(real, documented.map((d) => { const [m, p] = d.split(' '); return `${m} ${expressPath(p)}`; }).sort(), 'the router\'s routes are the documented ones');
  for (const [name, s] of Object.entries(doc.components.schemas)) t.ok(s && typeof s === 'object', `schema ${name}`);
});

t.test('errors: vxnet\'s family to HTTP statuses, one JSON shape', async (t) => {
  const cases: Array<[unknown, number, string]> = [
    [new NotFound('x'), 404, 'NotFound'], [new DecodingFailure('x'), 400, 'DecodingFailure'], [new UsageError('x'), 400, 'BadRequest'],
    [new AddressUnavailable('x'), 409, 'AddressUnavailable'], [new IoFailure('x'), 503, 'IoFailure'], [new VxnetError(999, 'x'), 500, 'InternalError'],
    [new Error('boom'), 500, 'InternalError'], [Object.assign(new Error('big'), { status: 413, type: 'entity.too.large' }), 413, 'PayloadTooLarge'],
  ];
  for (const [err, status, code] of cases) {
    const a = errorAnswer(err);
    t.same([a.status, a.body.error.code], [status, code], `${(err as Error).name}: ${status} ${code}`);
    t.same(validate(doc, { $ref: '#/components/schemas/Error' }, a.body), [], 'the body is the documented Error');
  }
});

t.test('auth helpers', async (t) => {
  t.ok(tokenMatches('s3cret', 's3cret'));
  t.notOk(tokenMatches('s3cre', 's3cret'), 'a prefix is not the token');
  t.notOk(tokenMatches('', 's3cret'));
  t.equal(bearerOf({ headers: { authorization: 'Bearer abc' }, url: '/' }), 'abc');
  t.equal(bearerOf({ headers: { authorization: 'Basic abc' }, url: '/' }), '', 'another scheme: no token (401)');
  t.equal(bearerOf({ headers: {}, url: '/api/v1/events?access_token=xyz' }), 'xyz', '?access_token= for EventSource');
  t.equal(bearerOf({ headers: {}, url: '/' }), undefined);
  t.ok(isMutation('POST', '/api/v1/gc'));
  t.ok(isMutation('PUT', '/api/v1/endpoints/h1%2Fn%2Fc/labels'));
  t.notOk(isMutation('GET', '/api/v1/endpoints/x/labels'));
  t.notOk(isMutation('GET', '/api/v1/allocations'));
});

t.test('history: who had an address at T (pure)', async (t) => {
  const base = { network: 'n', family: 4 as const, ifname: 'eth0', runtime: 'cni', rangeSet: 0, address: '10.0.0.5' };
  const past = [
    { ...base, containerId: 'a', name: 'alpha', since: 1000, until: 2000, reason: 'del' },
    { ...base, containerId: 'b', name: 'beta', since: 3000, until: 4000, reason: 'gc' },
  ];
  const current = [{ ...base, containerId: 'c', name: 'gamma', since: 5000 }];
  let r = addressTimeline(current, past, 3500);
  t.same(r.holders.map((h) => h.name), ['beta'], 'beta held it at 3500');
  t.same(r.events.map((e) => `${e.action} ${e.name}`), ['allocate gamma', 'release beta', 'allocate beta', 'release alpha', 'allocate alpha'], 'newest first');
  t.same(addressTimeline(current, past, 2500).holders, [], 'nobody between two holders');
  r = addressTimeline(current, past, 6000);
  t.same([r.holders[0]?.name, r.holders[0]?.until], ['gamma', null], 'the current holder, no end');
  t.same(addressTimeline(current, past, 2000).holders, [], 'released at 2000: not held at 2000');
});

t.test('flags: the listener, TLS and the token', async (t) => {
  const run = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
    const inv = parseVxnetdArgs(['--no-docker', ...argv], env);
    if (inv.action !== 'run') throw new Error(inv.action);
    return inv.config;
  };
  t.same(run([]).httpListen, { ip: ip('127.0.0.1'), port: 8123 }, 'default: loopback 8123');
  t.same(run(['--api-listen', '127.0.0.1:0']).httpListen, { ip: ip('127.0.0.1'), port: 0 });
  t.equal(run(['--api-listen', '']).httpListen, undefined, '"" for none');
  t.same(run(['--http-listen', '[::1]:9']).httpListen, { ip: ip('::1'), port: 9 }, '--http-listen is the alias');
  t.throws(() => run(['--api-listen', '127.0.0.1:1', '--http-listen', '127.0.0.1:2']), /one listener/);
  t.throws(() => run(['--api-listen', '0.0.0.0:8123']), /not a loopback address: the API then needs --api-cert FILE --api-key FILE \(TLS\) and --api-token-file FILE or \$VXNET_API_TOKEN/);
  t.throws(() => run(['--api-listen', '192.0.2.1:8123', '--api-cert', '/c.pem', '--api-key', '/k.pem']), /needs --api-token-file FILE or \$VXNET_API_TOKEN/);
  t.throws(() => run(['--api-listen', '192.0.2.1:8123', '--api-token-file', '/t']), /needs --api-cert FILE --api-key FILE/);
  t.throws(() => run(['--api-cert', '/c.pem']), /--api-cert and --api-key go together/);
  t.throws(() => run(['--api-cert', 'c.pem', '--api-key', '/k']), /absolute path/);
  const c = run(['--api-listen', '192.0.2.1:8123', '--api-cert', '/c.pem', '--api-key', '/k.pem'], { VXNET_API_TOKEN: ' tok \n' });
  t.same(c.api, { certFile: '/c.pem', keyFile: '/k.pem', token: 'tok' }, 'TLS and the token from the environment');
  t.same(run(['--api-token-file', '/t'], { VXNET_API_TOKEN: 'x' }).api, { tokenFile: '/t' }, 'the file wins over the environment');
});

t.test('the API served: real answers validate, auth, limits', async (t) => {
  const src = await sources(t);
  // Allocations and a history: c0 held .10 then released, c1 holds .10 now, c2 holds .11.
  await src.store.withLock(async (tx) => {
    await tx.putPool('vxtnet', POOL);
    await tx.reserve({ network: 'vxtnet', containerId: 'c0', ifname: 'eth0', runtime: 'cni', name: 'old', netns: '/proc/1/ns/net-gone-vxt' }, ip('10.238.7.10'), 0);
  });
  await new Promise((r) => setTimeout(r, 5));
  const during = Date.now();
  await new Promise((r) => setTimeout(r, 5));
  await src.store.withLock((tx) => tx.releaseByOwner('vxtnet', 'c0', 'eth0', 'del'));
  await new Promise((r) => setTimeout(r, 5));
  await src.store.withLock(async (tx) => {
    await tx.reserve({ network: 'vxtnet', containerId: 'c1', ifname: 'eth0', runtime: 'cni', name: 'web', netns: '/proc/self/ns/net' }, ip('10.238.7.10'), 0);
    await tx.reserve({ network: 'vxtnet', containerId: 'c2', ifname: 'eth0', runtime: 'cni', name: 'db', netns: '/nonexistent/vxt-netns' }, ip('10.238.7.11'), 0);
  });
  const api = operatorApi(src);
  t.teardown(() => api.close());
  const server = await startApiServer({ host: '127.0.0.1', port: 0, mounts: [api.router], log });
  t.teardown(() => server.close());
  const base = `http://127.0.0.1:${server.port}`;
  const get = async (p: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> => {
    const res = await fetch(base + p, { headers });
    return { status: res.status, body: await res.json() };
  };
  for (const spec of ROUTES.filter((r) => r.method === 'get' && !r.path.includes('events'))) {
    const p = spec.path.replace('{id}', encodeURIComponent('h1/vxtnet/c1')) + (spec.path.endsWith('/history') ? '?address=10.238.7.10' : '');
    const r = await get(p);
    t.equal(r.status, 200, `GET ${p}: 200`);
    if (spec.path !== '/api/openapi.json') t.same(validate(doc, responseSchema(doc, spec.path), r.body), [], `GET ${p} validates against the document`);
  }
  let r = await get('/api/v1/allocations?q=WE');
  t.same(r.body.allocations.map((a: { address: string }) => a.address), ['10.238.7.10'], 'q: case-insensitive substring of the name');
  t.same((await get('/api/v1/allocations?container=c')).body.allocations.length, 2, 'container: an id prefix');
  t.same((await get('/api/v1/allocations?address=10.238.7.11')).body.allocations[0].name, 'db');
  r = await get(`/api/v1/history?address=10.238.7.10&at=${new Date(during).toISOString()}`);
  t.same([r.body.holder?.containerId, r.body.holder?.name], ['c0', 'old'], 'who had 10.238.7.10 before c1 took it: c0');
  t.same(validate(doc, responseSchema(doc, '/api/v1/history'), r.body), [], 'with a holder, it validates too');
  t.same(r.body.events.map((e: { action: string; containerId: string }) => `${e.action} ${e.containerId}`), ['allocate c1', 'release c0', 'allocate c0']);
  t.same((await get('/api/v1/history?address=10.238.7.10&at=now')).status, 400, 'a bad time: 400');
  t.same((await get('/api/v1/history')).body.error.code, 'DecodingFailure', 'history without address: DecodingFailure');
  t.same((await get('/api/v1/endpoints?q=web')).body.endpoints[0].id, 'h1/vxtnet/c1');
  t.same((await get('/api/v1/summary')).body.allocations, 2);
  t.same((await get('/api/v1/networks')).body.networks[0], { name: 'vxtnet', mode: 'bridge', subnets: ['10.238.7.0/24'], vni: null, mtu: null, blockPrefix: null, size: '11', used: 2, free: '9', local: { size: '11', used: 2, free: '9' } });
  r = await get('/api/v1/nothing');
  t.same([r.status, r.body.error.code], [404, 'NotFound']);
  const del = await fetch(`${base}/api/v1/gc`, { method: 'DELETE' });
  t.same([del.status, del.headers.get('allow')], [405, 'POST']);

  const post = async (p: string, body: string, method = 'POST', headers: Record<string, string> = {}): Promise<{ status: number; body: any }> => {
    const res = await fetch(base + p, { method, body, headers: { 'content-type': 'application/json', ...headers } });
    return { status: res.status, body: await res.json() };
  };
  r = await post('/api/v1/gc', JSON.stringify({ dryRun: true }));
  t.same(r.body.released.map((a: { containerId: string }) => a.containerId), ['c2'], 'gc dry run: the netns that is gone');
  t.same(validate(doc, responseSchema(doc, '/api/v1/gc', 'post'), r.body), [], 'gc answer validates');
  t.same((await get('/api/v1/allocations')).body.allocations.length, 2, 'a dry run releases nothing');
  r = await post('/api/v1/allocations/release', JSON.stringify({ network: 'vxtnet', address: '10.238.7.99' }));
  t.same([r.status, r.body.error.code], [404, 'NotFound'], 'releasing a free address: 404');
  r = await post('/api/v1/allocations/release', '{not json');
  t.same([r.status, r.body.error.code], [400, 'DecodingFailure'], 'a body that is not JSON: 400');
  r = await post('/api/v1/allocations/release', JSON.stringify({ containerId: 'c2' }));
  t.same([r.status, r.body.error.message], [400, 'body: "containerId" needs "network"']);
  r = await post('/api/v1/allocations/release', JSON.stringify({ network: 'vxtnet', containerId: 'c2' }));
  t.same([r.status, r.body.released.map((a: { address: string }) => a.address), r.body.veths[0]?.name], [200, ['10.238.7.11'], 'vx-c2-eth0'], 'released by container; its veth handled');
  t.same(validate(doc, responseSchema(doc, '/api/v1/allocations/release', 'post'), r.body), [], 'release answer validates');
  r = await get('/api/v1/history?address=10.238.7.11');
  t.same(r.body.past[0]?.reason, 'api release', 'the release is in the history, reason "api release"');
  r = await post(`/api/v1/endpoints/${encodeURIComponent('h1/vxtnet/c1')}/labels`, JSON.stringify({ labels: { tier: 'front', __proto__x: '1' } }), 'PUT');
  t.same([r.status, r.body], [200, { id: 'h1/vxtnet/c1', name: 'web', labels: { __proto__x: '1', tier: 'front' } }], 'labels put, by id');
  r = await post('/api/v1/endpoints/web/labels', JSON.stringify({ labels: { tier: 'back' } }), 'PUT');
  t.same(r.body.labels, { tier: 'back' }, 'by name; the labels become exactly these');
  t.same((await get('/api/v1/endpoints/web/labels')).body.labels, { tier: 'back' }, 'read back');
  r = await post('/api/v1/endpoints/nobody/labels', JSON.stringify({ labels: {} }), 'PUT');
  t.same([r.status, r.body.error.code], [404, 'NotFound']);
  r = await post('/api/v1/endpoints/web/labels', JSON.stringify({ labels: { 'bad key': 'x' } }), 'PUT');
  t.equal(r.status, 400, 'a bad label key: 400');
  r = await post('/api/v1/gc', 'x'.repeat(70 * 1024));
  t.same([r.status, r.body.error.code], [413, 'PayloadTooLarge'], 'a body over 64 KiB: 413');
  t.equal((await get('/api/v1/summary')).status, 200, 'and the server answers on');

  // With a token: every request needs it.
  const locked = await startApiServer({ host: '127.0.0.1', port: 0, mounts: [api.router], log, token: 'vxt-token' });
  t.teardown(() => locked.close());
  const lb = `http://127.0.0.1:${locked.port}`;
  let res = await fetch(`${lb}/api/v1/summary`);
  t.same([res.status, ((await res.json()) as any).error.code, res.headers.get('www-authenticate')?.startsWith('Bearer')], [401, 'Unauthorized', true], 'no token: 401');
  res = await fetch(`${lb}/api/v1/summary`, { headers: { authorization: 'Bearer wrong' } });
  t.same([res.status, ((await res.json()) as any).error.message], [401, 'wrong bearer token']);
  res = await fetch(`${lb}/api/v1/summary`, { headers: { authorization: 'Bearer vxt-token' } });
  t.equal(res.status, 200, 'the right token: 200');
  res = await fetch(`${lb}/api/v1/gc`, { method: 'POST', body: '{"dryRun":true}', headers: { authorization: 'Bearer vxt-token' } });
  t.equal(res.status, 200, 'a mutation with the token');
  res = await fetch(`${lb}/v1/anything`, {});
  t.equal(res.status, 401, 'every route on the listener is behind the token, not only /api');
});
