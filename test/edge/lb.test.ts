// vxnet-lb (the built one) with Debian's real HAProxy, following a catalog served through the
// real stream handler (catalog/stream.ts; test/integration/edge-vxnetd.test.ts goes through
// vxnetd itself), backends on loopback: vhost and path routing, a TCP service port, servers
// added and removed through the Runtime API with no reload (the master's reload counter does
// not move), a leaving server drained (its request in flight finishes, no new one reaches it),
// a config HAProxy refuses (logged with HAProxy's words, the old config keeps serving), a
// reload for a new backend, vxnet-lb killed (HAProxy serves on) and restarted (no reload).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pollUntil } from '../helpers/sh';
import { bodies, endpoint, feedServer, freePort, get, httpBackend, startLb, tcpAsk, tcpBackend } from './helpers/edge';

if (spawnSync('haproxy', ['-v']).status !== 0) t.plan(0, 'haproxy is not installed (apt-get install haproxy)');
else t.setTimeout(180_000);

const G = { HAPROXY_GROUP: 'external' };

t.test('routing, Runtime API changes without reload, drain, refusal, restart', async (t) => {
  const feed = await feedServer(t);
  const [a1, a2, b1, api] = await Promise.all(['a1', 'a2', 'b1', 'api'].map((n) => httpBackend(t, n)));
  const tcpPort = await tcpBackend(t, 'db');
  const http = await freePort();
  const dbFront = await freePort();
  feed.catalog.put(endpoint('a1', a1!.port, { ...G, HAPROXY_0_VHOST: 'a.example' }, { service: 'a' }));
  feed.catalog.put(endpoint('b1', b1!.port, { ...G, HAPROXY_0_VHOST: 'b.example,www.b.example' }));
  feed.catalog.put(endpoint('api', api!.port, { ...G, HAPROXY_0_VHOST: 'a.example', HAPROXY_0_PATH: '/api' }));
  feed.catalog.put(endpoint('db', tcpPort, { ...G, HAPROXY_0_PORT: String(dbFront) }));
  feed.catalog.put(endpoint('other', a1!.port, { HAPROXY_GROUP: 'internal', HAPROXY_0_VHOST: 'internal.example' }));
  const lb = await startLb(t, { api: feed.url, httpPort: http });

  // Routing.
  t.same(await get(http, 'a.example', '/x'), { status: 200, body: 'a1 /x' }, 'vhost a.example -> a1');
  t.same(await get(http, 'www.b.example:80', '/'), { status: 200, body: 'b1 /' }, 'a second vhost, with a port in Host');
  t.same(await get(http, 'a.example', '/api/v1'), { status: 200, body: 'api /api/v1' }, 'path /api on a.example -> api');
  t.equal((await get(http, 'internal.example')).status, 503, 'another group is not served');
  t.equal((await get(http, 'nobody.example')).status, 503, 'an unknown vhost: 503');
  t.equal(await tcpAsk(dbFront, 'hello'), 'db:hello', 'TCP mode on HAPROXY_0_PORT');

  const reloadsAtStart = (await lb.proc())!.reloads;
  // Scale a up: a2 joins through the Runtime API.
  feed.catalog.put(endpoint('a2', a2!.port, { ...G, HAPROXY_0_VHOST: 'a.example' }, { service: 'a' }));
  const t0 = Date.now();
  await pollUntil(async () => (await bodies(http, 'a.example', 2)).some((b) => b.startsWith('a2')), { timeoutMs: 5000, intervalMs: 10, what: 'a2 to serve' });
  t.comment(`a2 served its first request ${Date.now() - t0} ms after it entered the catalog`);
  t.same([...new Set(await bodies(http, 'a.example', 6))].sort(), ['a1 /', 'a2 /'], 'both servers take requests (roundrobin)');
  t.equal((await lb.proc())!.reloads, reloadsAtStart, 'no reload: the master\'s reload counter did not move');
  t.match(readFileSync(join(lb.dir, 'haproxy.cfg'), 'utf8'), new RegExp(`server s2 127.0.0.1:${a2!.port} weight 1\n`), 'the file says what runs');

  // Drain: a request in flight to a2 finishes; a2 leaves; nothing new reaches it.
  a1!.delayMs = 0;
  a2!.delayMs = 1500;
  const hitsAtSlow = a2!.hits;
  const slow = (async () => {
    for (;;) {
      const r = await get(http, 'a.example', '/slow');
      if (r.body.startsWith('a2')) return r;
    }
  })();
  await pollUntil(() => a2!.hits > hitsAtSlow || undefined, { timeoutMs: 5000, what: 'a request on a2' });
  const hitsBefore = a2!.hits;
  feed.catalog.remove('h1/blue/a2');
  const inFlight = await slow;
  t.same(inFlight, { status: 200, body: 'a2 /slow' }, 'the request in flight on the leaving server finished');
  t.same(await bodies(http, 'a.example', 4), ['a1 /', 'a1 /', 'a1 /', 'a1 /'], 'new requests go to a1 only');
  t.equal(a2!.hits, hitsBefore, 'none reached a2 after it left');
  t.equal((await lb.proc())!.reloads, reloadsAtStart, 'still no reload');
  await pollUntil(() => !readFileSync(join(lb.dir, 'haproxy.cfg'), 'utf8').includes(`:${a2!.port} `), { timeoutMs: 5000, what: 'the file to drop a2' });

  // A config HAProxy refuses: the running one stays, HAProxy's words are in the log.
  const c1 = await httpBackend(t, 'c1');
  feed.catalog.put(endpoint('c1', c1.port, { ...G, HAPROXY_0_VHOST: 'c.example', HAPROXY_0_BALANCE: 'nosuchalgorithm' }));
  await pollUntil(() => existsSync(join(lb.dir, 'haproxy.cfg.refused')), { timeoutMs: 5000, what: 'the refused config' });
  t.match(lb.log(), /HAProxy refuses the new config; the running one stays.*balance only supports.*"backends":"c1_0 \(h1\/blue\/c1\)"/, 'logged with HAProxy\'s words and the endpoint whose backend it refused');
  t.same(await get(http, 'a.example'), { status: 200, body: 'a1 /' }, 'the old config keeps serving');
  t.equal((await lb.proc())!.reloads, reloadsAtStart, 'nothing reloaded');

  // The refused backend is left out; the rest of the edge follows the catalog: a new backend
  // is a reload, and serves.
  const d1 = await httpBackend(t, 'd1');
  feed.catalog.put(endpoint('d1', d1.port, { ...G, HAPROXY_0_VHOST: 'd.example' }));
  await pollUntil(async () => (await get(http, 'd.example')).body === 'd1 /' || undefined, { timeoutMs: 10_000, what: 'd.example to serve' });
  t.equal((await lb.proc())!.reloads, reloadsAtStart + 1, 'one reload for the new backend, c1 still left out');
  t.equal((await get(http, 'c.example')).status, 503, 'the refused backend is not served');
  // Its labels fixed, it is served.
  feed.catalog.put(endpoint('c1', c1.port, { ...G, HAPROXY_0_VHOST: 'c.example', HAPROXY_0_BALANCE: 'leastconn' }));
  await pollUntil(async () => (await get(http, 'c.example')).body === 'c1 /' || undefined, { timeoutMs: 10_000, what: 'c.example to serve' });
  t.equal((await lb.proc())!.reloads, reloadsAtStart + 2, 'one more reload');
  t.ok(existsSync(join(lb.dir, 'haproxy.cfg.1')), 'the previous config is kept');

  // vxnet-lb killed: HAProxy serves on; restarted with nothing changed: no reload. (Killed
  // once it has recorded the last reload: killed between, it reloads once when it comes back.)
  await pollUntil(() => (lb.log().match(/reloaded HAProxy/g) ?? []).length >= 2 || undefined, { timeoutMs: 5000, what: 'the reload to be recorded' });
  const reloads = (await lb.proc())!.reloads;
  const master = lb.masterPid();
  await lb.kill();
  t.same(await get(http, 'b.example'), { status: 200, body: 'b1 /' }, 'HAProxy serves with vxnet-lb gone');
  const lb2 = await startLb(t, { api: feed.url, httpPort: http, dir: lb.dir });
  await pollUntil(() => /took over the running HAProxy/.test(lb2.log()) || undefined, { timeoutMs: 5000, what: 'the take-over' })
    .catch((err: Error) => { throw new Error(`${err.message}\n${lb2.log()}`); });
  t.equal(lb2.masterPid(), master, 'the same HAProxy master');
  t.equal((await lb2.proc())!.reloads, reloads, 'restarted with nothing changed: no reload');
  feed.catalog.put(endpoint('a3', a2!.port, { ...G, HAPROXY_0_VHOST: 'a.example' }, { service: 'a' }));
  a2!.delayMs = 0;
  await pollUntil(async () => (await bodies(http, 'a.example', 2)).some((b) => b.startsWith('a2')), { timeoutMs: 5000, intervalMs: 10, what: 'a3 to serve' });
  t.equal((await lb2.proc())!.reloads, reloads, 'and the restarted vxnet-lb changes servers without a reload');
  await lb2.stop();
  t.notOk(master && (() => { try { process.kill(master, 0); return true; } catch { return false; } })(), 'SIGTERM stops HAProxy too');
});

t.test('HAProxy killed: vxnet-lb starts it again on the running config', async (t) => {
  const feed = await feedServer(t);
  const a1 = await httpBackend(t, 'a1');
  const http = await freePort();
  feed.catalog.put(endpoint('a1', a1.port, { ...G, HAPROXY_0_VHOST: 'a.example' }, { service: 'a' }));
  const lb = await startLb(t, { api: feed.url, httpPort: http });
  t.same(await get(http, 'a.example'), { status: 200, body: 'a1 /' });
  const master = lb.masterPid() as number;
  const workers = (await lb.proc())!.workers.map((w) => w.pid);
  process.kill(master, 'SIGKILL');
  for (const w of workers) { try { process.kill(w, 'SIGKILL'); } catch { /* gone with its master */ } }
  const t0 = Date.now();
  await pollUntil(async () => lb.masterPid() !== master && (await get(http, 'a.example', '/', 500)).status === 200 || undefined, { timeoutMs: 10_000, intervalMs: 20, what: 'HAProxy back' });
  t.comment(`serving again ${Date.now() - t0} ms after HAProxy was killed`);
  await pollUntil(() => /HAProxy is gone[^]*HAProxy restarted with the running config/.test(lb.log()) || undefined, { timeoutMs: 5000, what: 'the log to say so' });
  t.same(await get(http, 'a.example'), { status: 200, body: 'a1 /' }, 'the same routes');
  await lb.stop();
});
