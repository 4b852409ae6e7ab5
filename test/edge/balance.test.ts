// vxnet-lb with Debian's HAProxy, three servers per backend on loopback: sticky sessions
// (HAPROXY_0_STICKY: the cookie keeps a client on one server over 20 requests, a client
// without it is spread over all three), and a server failing its HTTP health check
// (HAPROXY_0_HEALTHCHECK_*) leaving the pool within fall x interval, and coming back once it
// passes again (rise x interval), all polled with a bound.
import t, { type Test } from 'tap';
import * as http from 'node:http';
import { spawnSync } from 'node:child_process';
import { pollUntil } from '../helpers/sh';
import { endpoint, feedServer, freePort, listen, startLb } from './helpers/edge';
import { request } from './helpers/request';

if (spawnSync('haproxy', ['-v']).status !== 0) t.plan(0, 'haproxy is not installed (apt-get install haproxy)');
else t.setTimeout(120_000);

const G = { HAPROXY_GROUP: 'external' };

interface Server { name: string; port: number; hits: number; failing: boolean }

/** An HTTP server answering its name; /health answers 500 while `failing`. Health checks are not counted as hits. */
async function server(t: Test, name: string): Promise<Server> {
  const s: Server = { name, port: 0, hits: 0, failing: false };
  const srv = http.createServer((req, res) => {
    if (req.url === '/health') { res.statusCode = s.failing ? 500 : 200; res.end(); return; }
    s.hits++;
    res.end(name);
  });
  s.port = await listen(srv);
  t.teardown(() => { srv.closeAllConnections(); srv.close(); });
  return s;
}

t.test('sticky sessions and health checks', async (t) => {
  const feed = await feedServer(t);
  const st = await Promise.all(['st1', 'st2', 'st3'].map((n) => server(t, n)));
  const hc = await Promise.all(['hc1', 'hc2', 'hc3'].map((n) => server(t, n)));
  const httpPort = await freePort();
  for (const s of st) feed.catalog.put(endpoint(s.name, s.port, { ...G, HAPROXY_0_VHOST: 'sticky.example', HAPROXY_0_STICKY: 'true' }, { service: 'st' }));
  const health = { HAPROXY_0_HEALTHCHECK_PATH: '/health', HAPROXY_0_HEALTHCHECK_INTERVAL: '200ms', HAPROXY_0_HEALTHCHECK_RISE: '2', HAPROXY_0_HEALTHCHECK_FALL: '2' };
  for (const s of hc) feed.catalog.put(endpoint(s.name, s.port, { ...G, HAPROXY_0_VHOST: 'hc.example', ...health }, { service: 'hc' }));
  const lb = await startLb(t, { api: feed.url, httpPort });
  const ask = (host: string, cookie?: string) => request({ port: httpPort, host, ...(cookie ? { headers: { cookie } } : {}) });

  // Sticky: a client without the cookie is spread; with it, kept.
  const plain = await Promise.all(Array.from({ length: 20 }, () => ask('sticky.example')));
  t.ok(plain.every((r) => r.status === 200), 'all served');
  t.same([...new Set(plain.map((r) => r.body))].sort(), ['st1', 'st2', 'st3'], 'without the cookie: 20 requests spread over all three servers');
  const first = await ask('sticky.example');
  const setCookie = (first.headers['set-cookie'] ?? [])[0] ?? '';
  t.match(setCookie, /^VXLB_SERVER=s\d;/, `the first answer sets the cookie (${setCookie})`);
  const cookie = setCookie.split(';')[0] as string;
  const kept = [];
  for (let i = 0; i < 20; i++) kept.push(await ask('sticky.example', cookie));
  t.same([...new Set(kept.map((r) => r.body))], [first.body], `with ${cookie}: 20 requests, all on ${first.body}`);
  t.ok(kept.every((r) => r.headers['set-cookie'] === undefined), 'and the cookie is not set again');

  // Health: all three serve; hc2's check starts failing -> it leaves the pool; passes -> back.
  const bodies = async (n: number): Promise<string[]> => (await Promise.all(Array.from({ length: n }, () => ask('hc.example')))).map((r) => r.body);
  await pollUntil(async () => new Set(await bodies(9)).size === 3 || undefined, { timeoutMs: 5000, what: 'all three hc servers to serve' });
  const hc2 = hc[1] as Server;
  hc2.failing = true;
  const t0 = Date.now();
  // Out of the pool once fall (2) checks at 200 ms failed: a batch of requests finds it no more.
  await pollUntil(async () => !(await bodies(6)).includes('hc2') || undefined, { timeoutMs: 5000, intervalMs: 50, what: 'hc2 to leave the pool' });
  t.comment(`hc2 left the pool ${Date.now() - t0} ms after its check began failing (fall 2 x inter 200 ms)`);
  const hitsOut = hc2.hits;
  const after = await bodies(30);
  t.equal(hc2.hits, hitsOut, 'no request reaches the failing server');
  t.same([...new Set(after)].sort(), ['hc1', 'hc3'], 'the others take them all');
  t.ok(after.length === 30, 'every request answered');
  hc2.failing = false;
  const t1 = Date.now();
  await pollUntil(async () => (await bodies(6)).includes('hc2') || undefined, { timeoutMs: 5000, intervalMs: 50, what: 'hc2 back in the pool' });
  t.comment(`hc2 back ${Date.now() - t1} ms after its check passed again (rise 2 x inter 200 ms)`);
  t.pass('healthy again: back in the pool');
  await lb.stop();
});
