// edge/labels.ts: Marathon-LB labels on catalog endpoints -> backends. Group selection,
// strict mode, vhost/path/port/mode/balance/sticky/redirect/bind/weights/health checks, one
// backend per service and port index, bad values and unknown labels as notes (never thrown),
// values that would write haproxy.cfg text refused.
import t from 'tap';
import type { Endpoint } from '../../catalog/endpoint';
import { edgeModel } from '../../edge/labels';
import { formatNote } from '../../edge/model';

const ep = (c: string, labels: Record<string, string>, more: Partial<Endpoint> = {}): Endpoint => ({
  id: `h1/blue/${c}`, host: 'h1', runtime: 'cni', containerId: c, network: 'blue', name: c, aliases: [],
  addresses: [`10.0.0.${c.length + c.charCodeAt(0) % 50}`], labels, ports: [{ port: 8080, protocol: 'tcp' }, { port: 9000, protocol: 'tcp' }], ...more,
});
const opts = { group: 'external', strictMode: false };

t.test('a vhost: http backend with one server; group and ports decide', async (t) => {
  const { model, notes } = edgeModel([ep('web', { HAPROXY_GROUP: 'external', HAPROXY_0_VHOST: 'Shop.example.com, www.example.com' }, { service: 'shop' })], opts);
  t.same(notes, []);
  t.equal(model.backends.length, 1);
  t.match(model.backends[0], {
    name: 'shop_0', mode: 'http', balance: 'roundrobin', sticky: false, vhosts: ['shop.example.com', 'www.example.com'],
    servicePort: undefined, bindAddr: '*', health: undefined, servers: [{ id: 'h1/blue/web', port: 8080, weight: 1 }],
  });
  t.same(edgeModel([ep('web', { HAPROXY_GROUP: 'internal', HAPROXY_0_VHOST: 'a.example' })], opts).model.backends, [], 'another group: not served');
  t.same(edgeModel([ep('web', { HAPROXY_0_VHOST: 'a.example' })], opts).model.backends, [], 'no group: not served');
  t.equal(edgeModel([ep('web', { HAPROXY_0_VHOST: 'a.example' })], { ...opts, group: '*' }).model.backends.length, 1, '--group * serves every endpoint');
  t.equal(edgeModel([ep('web', { HAPROXY_GROUP: 'internal', HAPROXY_0_GROUP: 'a,external', HAPROXY_0_VHOST: 'a.example' })], opts).model.backends.length, 1, 'HAPROXY_n_GROUP wins over HAPROXY_GROUP');
  t.same(edgeModel([ep('web', { HAPROXY_GROUP: 'external' })], opts).model.backends, [], 'a group alone serves nothing');
});

t.test('endpoints of one service are one backend; two services two', async (t) => {
  const l = { HAPROXY_GROUP: 'external', HAPROXY_0_VHOST: 'a.example', HAPROXY_1_PORT: '10001' };
  const { model } = edgeModel([
    ep('a1', l, { service: 'a', addresses: ['10.0.0.2'] }), ep('a2', l, { service: 'a', addresses: ['10.0.0.3', 'fd00::3'] }),
    ep('b1', { HAPROXY_GROUP: 'external', HAPROXY_0_VHOST: 'b.example' }, { addresses: ['fd00::9'] }),
  ], opts);
  t.same(model.backends.map((b) => b.name), ['a_0', 'a_1', 'b1_0']);
  t.same(model.backends[0]?.servers.map((s) => `${s.address}:${s.port}`), ['10.0.0.2:8080', '10.0.0.3:8080'], 'IPv4 preferred');
  t.match(model.backends[1], { mode: 'tcp', servicePort: 10001, vhosts: [] }, 'PORT alone: tcp');
  t.same(model.backends[2]?.servers.map((s) => s.address), ['fd00::9'], 'an IPv6-only endpoint');
});

t.test('every per-port setting', async (t) => {
  const { model, notes } = edgeModel([ep('api', {
    HAPROXY_GROUP: 'external', HAPROXY_0_VHOST: 'api.example', HAPROXY_0_PATH: '/v2', HAPROXY_0_PORT: '8443', HAPROXY_0_MODE: 'http',
    HAPROXY_0_BALANCE: 'leastconn', HAPROXY_0_STICKY: 'true', HAPROXY_0_REDIRECT_TO_HTTPS: 'true', HAPROXY_0_BIND_ADDR: '127.0.0.1',
    HAPROXY_0_BACKEND_WEIGHT: '5', HAPROXY_0_HEALTHCHECK_PATH: '/health', HAPROXY_0_HEALTHCHECK_INTERVAL: '500ms',
    HAPROXY_0_HEALTHCHECK_RISE: '1', HAPROXY_0_HEALTHCHECK_FALL: '2', HAPROXY_0_ENABLED: 'true',
  })], { group: 'external', strictMode: true });
  t.same(notes, []);
  t.match(model.backends[0], {
    mode: 'http', balance: 'leastconn', sticky: true, redirectToHttps: true, path: '/v2', servicePort: 8443, bindAddr: '127.0.0.1',
    aclWeight: 5, health: { path: '/health', intervalMs: 500, rise: 1, fall: 2 },
  });
  t.same(edgeModel([ep('api', { HAPROXY_GROUP: 'external', HAPROXY_0_VHOST: 'a.example' })], { group: 'external', strictMode: true }).model.backends, [], 'strict mode: only ENABLED=true');
  t.same(edgeModel([ep('api', { HAPROXY_GROUP: 'external', HAPROXY_0_VHOST: 'a.example', HAPROXY_0_ENABLED: 'false' })], opts).model.backends, [], 'ENABLED=false');
  t.match(edgeModel([ep('db', { HAPROXY_GROUP: 'external', HAPROXY_1_PORT: '15432', HAPROXY_1_HEALTHCHECK_INTERVAL: '3' })], opts).model.backends[0],
    { mode: 'tcp', health: { intervalMs: 3000, rise: 2, fall: 3 } }, 'a TCP check with defaults');
});

t.test('bad values, unknown labels and conflicts are notes, and nothing writes config text', async (t) => {
  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ HAPROXY_0_VHOST: 'a.example\n  server evil 1.2.3.4:1' }, /HAPROXY_0_VHOST: ".*" is not a host name/s],
    [{ HAPROXY_0_VHOST: 'a.example', HAPROXY_0_PATH: '/x y' }, /HAPROXY_0_PATH: "\/x y" is not a path/],
    [{ HAPROXY_0_VHOST: 'a.example', HAPROXY_0_BALANCE: 'roundrobin\nbackend x' }, /HAPROXY_0_BALANCE: .* is not a balance algorithm/s],
    [{ HAPROXY_0_PORT: '70000' }, /HAPROXY_0_PORT: "70000" is not a port/],
    [{ HAPROXY_0_PORT: '1000', HAPROXY_0_MODE: 'udp' }, /HAPROXY_0_MODE: "udp" is not http or tcp/],
    [{ HAPROXY_0_PORT: '1000', HAPROXY_0_BIND_ADDR: 'localhost' }, /HAPROXY_0_BIND_ADDR: "localhost" is not an IP address/],
    [{ HAPROXY_0_PORT: '1000', HAPROXY_0_HEALTHCHECK_PATH: '/h' }, /an HTTP check needs http mode/],
    [{ HAPROXY_0_PORT: '1000', HAPROXY_0_HEALTHCHECK_INTERVAL: 'often' }, /"often" is not an interval/],
    [{ HAPROXY_5_PORT: '1000' }, /index 5 does not exist/],
    [{ HAPROXY_0_STICKY: 'yes' }, /neither HAPROXY_0_VHOST nor HAPROXY_0_PORT/],
  ];
  for (const [labels, re] of bad) {
    const { model, notes } = edgeModel([ep('x', { HAPROXY_GROUP: 'external', ...labels })], opts);
    t.same(model.backends, [], `not served: ${JSON.stringify(labels)}`);
    t.match(notes.map(formatNote).join('\n'), re);
  }
  const { model, notes } = edgeModel([ep('x', { HAPROXY_GROUP: 'external', HAPROXY_0_VHOST: 'a.example', HAPROXY_0_FRONTEND_HEAD: 'x', HAPROXY_0_AUTH: 'u:p', HAPROXY_FOO: '1' })], opts);
  t.equal(model.backends.length, 1, 'unknown labels do not stop the rest');
  t.same(notes.map(formatNote), [
    'endpoint h1/blue/x label HAPROXY_0_AUTH: not supported by vxnet-lb yet; ignored',
    'endpoint h1/blue/x label HAPROXY_0_FRONTEND_HEAD: unknown HAPROXY_* label; ignored',
    'endpoint h1/blue/x label HAPROXY_FOO: unknown HAPROXY_* label; ignored',
  ]);
  const conflict = edgeModel([
    ep('a1', { HAPROXY_GROUP: 'external', HAPROXY_0_VHOST: 'a.example' }, { service: 'a', addresses: ['10.0.0.2'] }),
    ep('a2', { HAPROXY_GROUP: 'external', HAPROXY_0_VHOST: 'b.example' }, { service: 'a', addresses: ['10.0.0.3'] }),
    ep('c', { HAPROXY_GROUP: 'external', HAPROXY_0_PORT: '1000' }),
    ep('d', { HAPROXY_GROUP: 'external', HAPROXY_0_PORT: '1000' }),
  ], opts);
  t.same(conflict.model.backends.map((b) => [b.name, b.vhosts, b.servers.length]), [['a_0', ['a.example'], 2], ['c_0', [], 1]], 'the lowest id decides; a taken port is not bound twice');
  t.match(conflict.notes.map(formatNote).join('\n'), /h1\/blue\/a2: its HAPROXY_\* settings for backend a_0 differ[^]*h1\/blue\/d: backend d_0: port \*:1000 is already backend c_0's/);
});
