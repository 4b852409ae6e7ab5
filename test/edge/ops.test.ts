// vxnet-lb's operations side with the built vxnet-lb and Debian's HAProxy, backends on
// loopback: /metrics (counters for a Runtime API change, HAProxy's per-server figures) and
// GET /v1/lb read by `vxnetctl lb ls`; HAProxy killed -> started again and serving within a
// second (asserted loosely: 3 s), the restart counted; vxnet-lb killed and restarted -> no
// reload; --store: an endpoint a ClusterEndpoints "host" publishes in a real etcd is served,
// and leaves when unpublished.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { EndpointCatalog } from '../../catalog/catalog';
import { ClusterEndpoints } from '../../catalog/cluster';
import { EtcdClient } from '../../etcd/client';
import { createLogger } from '../../lib/log';
import { ETCD, startEtcd } from '../helpers/etcd';
import { ctl } from '../helpers/ctl';
import { pollUntil } from '../helpers/sh';
import { endpoint, feedServer, freePort, get, httpBackend, startLb } from './helpers/edge';

if (spawnSync('haproxy', ['-v']).status !== 0) t.plan(0, 'haproxy is not installed (apt-get install haproxy)');
else t.setTimeout(180_000);

const G = { HAPROXY_GROUP: 'external' };
/** The value of one metric line (name with labels, exactly), or undefined. */
const metric = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

t.test('/metrics, vxnetctl lb ls, HAProxy killed, vxnet-lb restarted', async (t) => {
  const feed = await feedServer(t);
  const [a1, a2] = await Promise.all(['a1', 'a2'].map((n) => httpBackend(t, n)));
  const http = await freePort();
  const mport = await freePort();
  const murl = `http://127.0.0.1:${mport}`;
  feed.catalog.put(endpoint('a1', a1!.port, { ...G, HAPROXY_0_VHOST: 'a.example' }, { service: 'a' }));
  const lb = await startLb(t, { api: feed.url, httpPort: http, args: ['--metrics-listen', `127.0.0.1:${mport}`] });
  const scrape = (): Promise<string> => fetch(`${murl}/metrics`).then((r) => r.text());
  await pollUntil(() => fetch(`${murl}/metrics`).then((r) => r.ok, () => false), { timeoutMs: 5000, what: 'the metrics listener' });

  t.same(await get(http, 'a.example'), { status: 200, body: 'a1 /' });
  feed.catalog.put(endpoint('a2', a2!.port, { ...G, HAPROXY_0_VHOST: 'a.example' }, { service: 'a' }));
  await pollUntil(async () => (await get(http, 'a.example')).body === 'a2 /' || undefined, { timeoutMs: 5000, intervalMs: 10, what: 'a2 to serve' });
  let m = await scrape();
  t.equal(metric(m, 'vxnet_lb_runtime_api_commands_total{op="fill",result="ok"}'), 1, 'the fill is counted');
  t.equal(metric(m, 'vxnet_lb_reloads_total{result="ok"}'), undefined, 'no reload counted');
  t.ok((metric(m, 'vxnet_lb_config_generation_seconds_count') ?? 0) >= 1, 'generation timed');
  t.equal(metric(m, 'vxnet_lb_haproxy_up'), 1);
  t.equal(metric(m, 'vxnet_lb_backends{state="up"}'), 1);
  t.equal(metric(m, 'vxnet_lb_servers{state="up"}'), 2);
  t.ok((metric(m, 'vxnet_lb_haproxy_server_sessions{backend="a_0",server="s1",endpoint="h1/blue/a1"}') ?? 0) >= 1, 'HAProxy\'s sessions per server, with the endpoint');
  t.equal(metric(m, 'vxnet_lb_haproxy_server_status{backend="a_0",server="s2",endpoint="h1/blue/a2",status="no check"}'), 1);
  t.equal(metric(m, 'vxnet_lb_catalog_reconnects_total'), 0);

  // vxnetctl lb ls, table and JSON, from /v1/lb.
  const ls = await ctl(['lb', 'ls', '--lb', murl]);
  t.equal(ls.code, 0, ls.stderr);
  t.match(ls.stdout, /http_in +127\.0\.0\.1:\d+ +http +a\.example +- +a_0/);
  t.match(ls.stdout, /a_0 +http +roundrobin +s1 +h1\/blue\/a1 +127\.0\.0\.1:\d+ +1 +up +0/);
  const js = await ctl(['lb', 'ls', '--json'], { VXNET_LB: murl });
  const view = JSON.parse(js.stdout) as { lb: string; haproxy: { up: boolean }; backends: Array<{ name: string; servers: Array<{ endpoint: string; state: string }> }> };
  t.equal(view.lb, murl);
  t.equal(view.haproxy.up, true);
  t.same(view.backends.map((b) => [b.name, b.servers.map((s) => `${s.endpoint} ${s.state}`)]), [['a_0', ['h1/blue/a1 up', 'h1/blue/a2 up']]]);
  const none = await ctl(['lb', 'ls', '--lb', 'http://127.0.0.1:9']);
  t.equal(none.code, 1);
  t.match(none.stderr, /cannot reach vxnet-lb at http:\/\/127\.0\.0\.1:9/);

  // HAProxy killed (master and workers): started again and serving within a second.
  const master = lb.masterPid() as number;
  const workers = (await lb.proc())!.workers.map((w) => w.pid);
  process.kill(master, 'SIGKILL');
  for (const w of workers) { try { process.kill(w, 'SIGKILL'); } catch { /* gone with its master */ } }
  const t0 = Date.now();
  await pollUntil(async () => lb.masterPid() !== master && (await get(http, 'a.example', '/', 500)).status === 200 || undefined, { timeoutMs: 10_000, intervalMs: 20, what: 'HAProxy back' });
  const back = Date.now() - t0;
  t.comment(`serving again ${back} ms after HAProxy was killed`);
  t.ok(back < 3000, `serving again within a second (loosely: < 3 s; took ${back} ms)`);
  t.same(new Set([(await get(http, 'a.example')).body, (await get(http, 'a.example')).body]), new Set(['a1 /', 'a2 /']), 'with both servers (the running config, Runtime API changes included)');
  await pollUntil(() => /HAProxy restarted with the running config/.test(lb.log()) || undefined, { timeoutMs: 5000, what: 'the restart logged' });
  m = await scrape();
  t.equal(metric(m, 'vxnet_lb_haproxy_restarts_total'), 1, 'the restart is counted');

  // vxnet-lb killed: HAProxy serves on; restarted on the same dir: takes it over, no reload.
  const reloads = (await lb.proc())!.reloads;
  await lb.kill();
  t.equal((await get(http, 'a.example')).status, 200, 'HAProxy serves with vxnet-lb gone');
  const lb2 = await startLb(t, { api: feed.url, httpPort: http, dir: lb.dir, args: ['--metrics-listen', `127.0.0.1:${mport}`] });
  await pollUntil(() => /took over the running HAProxy/.test(lb2.log()) || undefined, { timeoutMs: 5000, what: 'the take-over' });
  t.equal((await lb2.proc())!.reloads, reloads, 'converged without a reload');
  m = await pollUntil(() => scrape().catch(() => undefined), { timeoutMs: 5000, what: 'the new listener' });
  t.equal(metric(m, 'vxnet_lb_reloads_total{result="ok"}'), undefined, 'none counted by the new vxnet-lb either');
  t.equal(metric(m, 'vxnet_lb_servers{state="up"}'), 2);
  await lb2.stop();
});

t.test('--store: every host\'s endpoints straight from etcd', { skip: !existsSync(ETCD) && 'etcd is not installed (apt-get install etcd-server)' }, async (t) => {
  const etcd = await startEtcd(t);
  const web = await httpBackend(t, 'web');
  const http = await freePort();
  // A "host" publishing its endpoints as vxnetd does.
  const catalog = new EndpointCatalog();
  const client = EtcdClient.connect(etcd.endpoints);
  const host = new ClusterEndpoints({ client, catalog, host: 'h9', log: createLogger('test', 'error') });
  await host.start();
  t.teardown(async () => { await host.stop(); client.close(); });
  const lb = await startLb(t, { api: undefined, httpPort: http, args: ['--store', etcd.storeUrl, '--metrics-listen', 'none'] });
  await pollUntil(() => /vxnet-lb running.*"catalog":"etcd:\/\//.test(lb.log()) || undefined, { timeoutMs: 5000, what: 'the log line' });
  t.equal((await get(http, 'web.example')).status, 503, 'nothing published yet');
  catalog.replaceHost('h9', [endpoint('web', web.port, { ...G, HAPROXY_0_VHOST: 'web.example' }, { id: 'h9/blue/web', host: 'h9', service: 'web' })]);
  const t0 = Date.now();
  await pollUntil(async () => (await get(http, 'web.example')).body === 'web /' || undefined, { timeoutMs: 10_000, intervalMs: 20, what: 'the published endpoint to be served' });
  t.comment(`served ${Date.now() - t0} ms after it was published`);
  const keys = await client.range('test', '/vxnet/endpoints/');
  t.same(keys.kvs.map((kv) => kv.key.toString()), ['/vxnet/endpoints/h9/h9%2Fblue%2Fweb'], 'vxnet-lb published nothing');
  catalog.replaceHost('h9', []);
  await pollUntil(async () => (await get(http, 'web.example')).status === 503 || undefined, { timeoutMs: 10_000, intervalMs: 20, what: 'the route to go' });
  t.pass('unpublished: no longer served');
  await lb.stop();
});
