// edge/slots.ts, edge/config.ts, edge/diff.ts: servers keep their slots, a vacated slot is not
// reused in the same step, capacity grows by doubling; the config text (vhost ACL order, paths,
// service ports, server lines and server-template runs, sticky cookies, checks); and the
// classifier: scale up/down and address changes are Runtime API ops, anything else a reload.
// `haproxy -c` (Debian's haproxy, when installed) accepts the rendered config.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterDrain, classify, commandsFor } from '../../edge/diff';
import { DEFAULT_CONFIG, renderConfig } from '../../edge/config';
import type { Backend, EdgeModel, Server } from '../../edge/model';
import { place, type PlacedModel } from '../../edge/slots';

const srv = (n: number, more: Partial<Server> = {}): Server => ({ id: `h1/blue/c${n}`, address: `10.0.0.${n}`, port: 8080, weight: 1, ...more });
const backend = (name: string, servers: Server[], more: Partial<Backend> = {}): Backend => ({
  name, mode: 'http', balance: 'roundrobin', sticky: false, redirectToHttps: false, sslCerts: [], hsts: false, health: undefined, vhosts: [`${name}.example`],
  path: undefined, aclWeight: 0, servicePort: undefined, bindAddr: '*', servers, ...more,
});
const model = (...backends: Backend[]): EdgeModel => ({ backends });
const held = (m: PlacedModel, i = 0): Array<string | undefined> => (m.backends[i]?.slots ?? []).map((s) => s?.id.replace('h1/blue/', ''));

t.test('slots: stable, vacated slots not reused at once, capacity doubles', async (t) => {
  const p1 = place(undefined, model(backend('a', [srv(1), srv(2)])), 4);
  t.same(held(p1), ['c1', 'c2', undefined, undefined]);
  const p2 = place(p1, model(backend('a', [srv(2), srv(3)])), 4);
  t.same(held(p2), [undefined, 'c2', 'c3', undefined], 'c2 stays in s2; c3 takes a free slot, not c1\'s just vacated one');
  const p3 = place(p2, model(backend('a', [srv(3), srv(4), srv(5), srv(6)])), 4);
  t.same(held(p3), ['c4', 'c6', 'c3', 'c5'], 'c2\'s vacated slot is used only when nothing else is free');
  const p4 = place(p3, model(backend('a', [1, 3, 4, 5, 6].map((n) => srv(n)))), 4);
  t.equal(p4.backends[0]?.slots.length, 16, 'five servers in four slots: the next power of two >= 10');
  t.same(held(p4).slice(0, 5), ['c4', 'c6', 'c3', 'c5', 'c1'], 'existing servers keep their slots when it grows');
});

t.test('classify: server-only changes vs reloads, and the commands', async (t) => {
  const p1 = place(undefined, model(backend('a', [srv(1)]), backend('b', [srv(9)])), 4);
  t.same(classify(undefined, p1), { kind: 'reload', reasons: ['first configuration'] });
  t.same(classify(p1, place(p1, model(backend('a', [srv(1)]), backend('b', [srv(9)])), 4)), { kind: 'none' });
  const up = classify(p1, place(p1, model(backend('a', [srv(1), srv(2)]), backend('b', [srv(9)])), 4));
  t.same(up, { kind: 'servers', ops: [{ op: 'fill', backend: 'a', slot: 's2', server: srv(2), check: false }] }, 'scale up: one fill');
  if (up.kind === 'servers') {
    t.same(commandsFor(up.ops[0]!), ['set server a/s2 addr 10.0.0.2 port 8080', 'set weight a/s2 1', 'set server a/s2 state ready']);
  }
  const down = classify(p1, place(p1, model(backend('a', []), backend('b', [srv(9)])), 4));
  t.same(down, { kind: 'servers', ops: [{ op: 'drain', backend: 'a', slot: 's1', server: srv(1) }] }, 'scale down: a drain');
  if (down.kind === 'servers' && down.ops[0]?.op === 'drain') {
    t.same(commandsFor(down.ops[0]), ['set server a/s1 state drain']);
    t.same(afterDrain(down.ops[0]), ['set server a/s1 state maint', 'set server a/s1 addr 0.0.0.0 port 0']);
  }
  const moved = classify(p1, place(p1, model(backend('a', [srv(1, { address: '10.0.0.77' })]), backend('b', [srv(9)])), 4));
  t.same(moved.kind === 'servers' && moved.ops.map((o) => o.op), ['drain', 'fill'], 'a new address: drained, then filled');
  const hc = place(undefined, model(backend('a', [], { health: { path: '/h', intervalMs: 1000, rise: 1, fall: 1 } })), 4);
  const hcUp = classify(hc, place(hc, model(backend('a', [srv(3)], { health: { path: '/h', intervalMs: 1000, rise: 1, fall: 1 } })), 4));
  t.ok(hcUp.kind === 'servers' && commandsFor(hcUp.ops[0]!).includes('enable health a/s1'), 'a checked backend enables the slot\'s check');
  for (const [what, next] of [
    ['a vhost', model(backend('a', [srv(1)], { vhosts: ['x.example'] }), backend('b', [srv(9)]))],
    ['a backend added', model(backend('a', [srv(1)]), backend('b', [srv(9)]), backend('c', [srv(5)]))],
    ['a backend removed', model(backend('a', [srv(1)]))],
    ['the balance', model(backend('a', [srv(1)], { balance: 'leastconn' }), backend('b', [srv(9)]))],
    ['more servers than slots', model(backend('a', [1, 2, 3, 4, 5].map((n) => srv(n))), backend('b', [srv(9)]))],
  ] as const) {
    t.equal(classify(p1, place(p1, next, 4)).kind, 'reload', `${what}: reload`);
  }
});

const FULL = place(undefined, model(
  backend('api', [srv(1), srv(2)], { path: '/v2', aclWeight: 1, vhosts: ['api.example', 'www.example'], health: { path: '/health', intervalMs: 500, rise: 1, fall: 2 } }),
  backend('www', [srv(3, { address: 'fd00::3' })], { vhosts: ['www.example'], sticky: true, redirectToHttps: true }),
  backend('db', [srv(4, { port: 5432 })], { mode: 'tcp', vhosts: [], servicePort: 15432, bindAddr: '127.0.0.1', balance: 'leastconn' }),
), 4);

t.test('config text', async (t) => {
  const text = renderConfig(FULL, { ...DEFAULT_CONFIG, statsSocket: '/run/x/admin.sock', httpPort: 8080, statsListen: '127.0.0.1:9090' });
  t.match(text, /stats socket \/run\/x\/admin.sock mode 600 level admin expose-fd listeners/);
  t.match(text, /frontend http_in\n  bind \*:8080\n/);
  t.match(text, /acl host_api var\(txn.vxlb_host\) -m str api.example www.example\n  acl path_api path_beg \/v2\n  acl host_www var\(txn.vxlb_host\) -m str www.example\n/, 'the higher ACL weight first');
  // No certificate in this model: no HTTPS frontend, so no redirect to it (test/unit/edge-tls.test.ts has both).
  t.match(text, /  acl host_www var\(txn.vxlb_host\) -m str www.example\n  use_backend api if host_api path_api\n  use_backend www if host_www\n/);
  t.match(text, /frontend db_port\n  bind 127.0.0.1:15432\n  mode tcp\n  default_backend db\n/);
  t.match(text, /backend api\n  mode http\n  balance roundrobin\n  http-request disable-l7-retry unless \{ method GET HEAD OPTIONS TRACE PUT DELETE \}\n  option httpchk GET \/health\n  server s1 10.0.0.1:8080 weight 1 check inter 500ms rise 1 fall 2\n  server s2 10.0.0.2:8080 weight 1 check inter 500ms rise 1 fall 2\n  server-template s 3-4 0.0.0.0:0 disabled check inter 500ms rise 1 fall 2\n/);
  t.match(text, /backend www\n  mode http\n  balance roundrobin\n  http-request disable-l7-retry unless \{ method GET HEAD OPTIONS TRACE PUT DELETE \}\n  cookie VXLB_SERVER insert indirect nocache\n  server s1 \[fd00::3\]:8080 weight 1 cookie s1\n  server s2 0.0.0.0:0 disabled cookie s2\n/, 'sticky: every slot its own line, its cookie its name');
  t.equal(renderConfig(FULL, { ...DEFAULT_CONFIG, statsSocket: '/s' }), renderConfig(FULL, { ...DEFAULT_CONFIG, statsSocket: '/s' }), 'the same model, the same text');

  const haproxy = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
  if (haproxy.status !== 0) { t.comment('haproxy not installed: -c skipped'); return; }
  const dir = mkdtempSync(join(tmpdir(), 'vxt-edge-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, renderConfig(FULL, { ...DEFAULT_CONFIG, statsSocket: join(dir, 'admin.sock'), httpPort: 8080, statsListen: '127.0.0.1:9090' }));
  const r = spawnSync('haproxy', ['-c', '-f', file], { encoding: 'utf8' });
  t.equal(r.status, 0, `haproxy -c accepts it: ${r.stdout}${r.stderr}`);
  t.notMatch(`${r.stdout}${r.stderr}`, /WARNING/, 'without a warning');
  writeFileSync(file, renderConfig(place(undefined, model(), 4), { ...DEFAULT_CONFIG, statsSocket: join(dir, 'admin.sock') }));
  t.equal(spawnSync('haproxy', ['-c', '-f', file]).status, 0, 'and the empty model');
});
