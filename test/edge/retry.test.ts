// Which requests HAProxy sends again when a server closes the connection without an answer
// (a container killed with requests in flight): an idempotent one (GET, PUT, DELETE) goes to
// another server and the client never sees the failure; a POST or PATCH is never sent twice
// (RFC 9110 9.2.2) and the client gets HAProxy's 502. Real HAProxy through the built
// vxnet-lb; one backend with a server that answers and one that reads a request and hangs up.
import t, { type Test } from 'tap';
import * as http from 'node:http';
import * as net from 'node:net';
import { spawnSync } from 'node:child_process';
import { endpoint, feedServer, freePort, httpBackend, listen, startLb } from './helpers/edge';
import { pollUntil } from '../helpers/sh';

if (spawnSync('haproxy', ['-v']).status !== 0) t.plan(0, 'haproxy is not installed (apt-get install haproxy)');
else t.setTimeout(120_000);

/** A server that reads one request head and closes without answering: the methods it got. */
async function hangUpServer(t: Test): Promise<{ port: number; methods: string[] }> {
  const out = { port: 0, methods: [] as string[] };
  const socks = new Set<net.Socket>();
  const s = net.createServer((c) => {
    socks.add(c);
    let head = '';
    c.on('data', (d) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      out.methods.push(head.slice(0, head.indexOf(' ')));
      head = '';
      c.destroy();
    });
    c.on('close', () => socks.delete(c));
    c.on('error', () => {});
  });
  out.port = await listen(s);
  t.teardown(() => { for (const c of socks) c.destroy(); s.close(); });
  return out;
}

function send(port: number, method: string, body?: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: '/x', agent: false, timeout: 5000,
      headers: { host: 'r.example', ...(body === undefined ? {} : { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(body)) }) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

t.test('an empty response: idempotent requests retried elsewhere, POST and PATCH never sent twice', async (t) => {
  const feed = await feedServer(t);
  const good = await httpBackend(t, 'good');
  const bad = await hangUpServer(t);
  const port = await freePort();
  const labels = { HAPROXY_GROUP: 'external', HAPROXY_0_VHOST: 'r.example' };
  feed.catalog.put(endpoint('good', good.port, labels, { service: 'r' }));
  feed.catalog.put(endpoint('bad', bad.port, labels, { service: 'r' }));
  await startLb(t, { api: feed.url, httpPort: port });
  await pollUntil(async () => (await send(port, 'GET')) === 200 || undefined, { timeoutMs: 10_000, what: 'the edge to serve r.example' });

  // roundrobin over the two servers: of N requests about half are sent to the one that hangs up.
  const N = 8;
  for (const method of ['GET', 'PUT', 'DELETE']) {
    const [goodBefore, badBefore] = [good.hits, bad.methods.length];
    const statuses = [];
    for (let i = 0; i < N; i++) statuses.push(await send(port, method, method === 'PUT' ? 'v' : undefined));
    t.same(statuses, Array(N).fill(200), `${method}: every one answered 200`);
    t.equal(good.hits - goodBefore, N, `${method}: the answering server got each once`);
    t.ok(bad.methods.length > badBefore, `${method}: and some met the server that hung up first (${bad.methods.length - badBefore}), retried`);
  }
  for (const method of ['POST', 'PATCH']) {
    const [goodBefore, badBefore] = [good.hits, bad.methods.length];
    const statuses = [];
    for (let i = 0; i < N; i++) statuses.push(await send(port, method, 'order=1'));
    const failed = statuses.filter((s) => s === 502).length;
    t.ok(failed > 0, `${method}: the ones that met the server hanging up got a 502 (${failed} of ${N})`);
    t.same(statuses.filter((s) => s !== 502 && s !== 200), [], `${method}: every other one answered 200`);
    t.equal(good.hits - goodBefore + bad.methods.length - badBefore, N, `${method}: each of the ${N} reached a server exactly once`);
    t.equal(bad.methods.length - badBefore, failed, `${method}: a 502 for each one the server hung up on, none sent again`);
  }
});
