// vxnet-lb's operations side, pure parts: `show stat` rows and states (edge/stat.ts), the
// operator's view (edge/view.ts), the Prometheus text (edge/metrics.ts), vxnetctl lb ls's
// checks and tables (ctl/lb.ts), the new flags (--store, --metrics-listen).
import t from 'tap';
import { parseFlags } from '../../edge/flags';
import { EdgeMetrics } from '../../edge/metrics';
import type { Backend, EdgeModel, Server } from '../../edge/model';
import { place } from '../../edge/slots';
import { parseStat, serverState } from '../../edge/stat';
import { lbView } from '../../edge/view';
import { frontendRows, lbUrl, parseLbView, renderLb, serverRows } from '../../ctl/lb';
import { DecodingFailure } from '../../lib/errors';
import { UsageError } from '../../lib/usage';

const srv = (n: number): Server => ({ id: `h1/blue/c${n}`, address: `10.0.0.${n}`, port: 8080, weight: 1 });
const backend = (name: string, servers: Server[], more: Partial<Backend> = {}): Backend => ({
  name, mode: 'http', balance: 'roundrobin', sticky: false, redirectToHttps: false, sslCerts: [], hsts: false, health: undefined, vhosts: [`${name}.example`],
  path: undefined, aclWeight: 0, servicePort: undefined, bindAddr: '*', servers, ...more,
});
const model = (...backends: Backend[]): EdgeModel => ({ backends });

// 2.6's layout (first columns; hrsp_5xx further right), as `show stat` prints it.
const HEADER = '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,';
const row = (px: string, sv: string, scur: number, stot: number, status: string, h5 = 0): string =>
  `${px},${sv},0,0,${scur},5,,${stot},100,200,,0,,1,2,0,0,${status},1,1,0,,,,,,,,,,,,,,,,,,,0,${stot},0,0,${h5},0,`;

const STAT = [HEADER,
  'http_in,FRONTEND,,,1,5,9980,10,100,200,0,0,0,,,,,OPEN,,,,,,,,,,,,,,,,,,,,,,0,10,0,0,0,0,',
  row('a_0', 's1', 1, 7, 'no check', 2), row('a_0', 's2', 0, 3, 'DRAIN'), row('a_0', 's3', 0, 0, 'MAINT'), row('a_0', 's4', 0, 0, 'DOWN 1/2'),
  row('a_0', 'BACKEND', 1, 10, 'UP', 2), row('db_0', 's1', 0, 4, 'UP'), row('db_0', 'BACKEND', 0, 4, 'UP'), ''].join('\n');

t.test('show stat: rows and states', async (t) => {
  const rows = parseStat(STAT);
  t.equal(rows.length, 8);
  t.match(rows.find((r) => r.proxy === 'a_0' && r.server === 's1'), { scur: 1, stot: 7, bytesIn: 100, bytesOut: 200, http5xx: 2, econ: 1, eresp: 2, status: 'no check', weight: 1 });
  t.same(['no check', 'UP', 'UP 1/3', 'DOWN', 'DOWN 1/2', 'DRAIN', 'MAINT', 'MAINT (via x/y)', 'NOLB', 'OPEN'].map(serverState),
    ['up', 'up', 'up', 'down', 'down', 'drain', 'maint', 'maint', 'nolb', 'unknown']);
  t.same(parseStat('Unknown command\n'), [], 'not a stat answer: no rows');
});

const running = place(undefined, model(
  backend('a_0', [srv(1), srv(3)], { path: '/api', health: { path: '/health', intervalMs: 2000, rise: 2, fall: 3 } }),
  backend('db_0', [srv(9)], { mode: 'tcp', vhosts: [], servicePort: 5432, bindAddr: '10.1.1.1' }),
  backend('z_0', [], { vhosts: ['z.example', 'www.z.example'], redirectToHttps: true, aclWeight: 5 }),
), 4);
// c3 moved to slot 2? place() gives c1 s1, c3 s2; c2 leaves slot s3 (draining) in this picture.
const drains = new Map([['a_0/s3', srv(2)]]);

t.test('view: frontends in rule order, servers with endpoint and state, drains', async (t) => {
  const v = lbView({ running, drains, stat: parseStat(STAT), config: { httpBind: '*', httpPort: 80 }, pid: 42, counts: { reloads: 3, runtimeChanges: 5, refused: 1 } });
  t.same(v.haproxy, { pid: 42, up: true });
  t.same([v.reloads, v.runtimeChanges, v.refused], [3, 5, 1]);
  t.same(v.frontends.map((f) => [f.name, f.bind, f.mode]), [['http_in', '*:80', 'http'], ['db_0_port', '10.1.1.1:5432', 'tcp']]);
  t.same(v.frontends[0]!.rules, [
    { vhosts: ['z.example', 'www.z.example'], redirectToHttps: true, backend: 'z_0' },
    { vhosts: ['a_0.example'], path: '/api', backend: 'a_0' },
  ], 'the higher BACKEND_WEIGHT first, as HAProxy evaluates them');
  const a = v.backends.find((b) => b.name === 'a_0')!;
  t.equal(a.health, 'GET /health every 2000 ms rise 2 fall 3');
  t.equal(a.status, 'UP');
  t.equal(a.slots, 4);
  t.same(a.servers.map((s) => [s.slot, s.endpoint, s.address, s.state, s.sessions, s.draining]), [
    ['s1', 'h1/blue/c1', '10.0.0.1:8080', 'up', 1, false],
    ['s2', 'h1/blue/c3', '10.0.0.3:8080', 'drain', 0, false],
    ['s3', 'h1/blue/c2', '10.0.0.2:8080', 'maint', 0, true],
  ]);
  const down = lbView({ running, drains: new Map(), stat: undefined, config: { httpBind: '127.0.0.1', httpPort: 8080 }, pid: undefined, counts: { reloads: 0, runtimeChanges: 0, refused: 0 } });
  t.same(down.haproxy, { pid: undefined, up: false });
  t.same(down.backends[0]!.servers.map((s) => [s.state, s.status]), [['unknown', ''], ['unknown', '']], 'no show stat: unknown');
  t.equal(down.frontends[0]!.bind, '127.0.0.1:8080');
});

t.test('metrics: counters from events, gauges from the scrape', async (t) => {
  let reconnects = 2;
  const m = new EdgeMetrics(() => reconnects);
  m.reload('ok'); m.reload('ok'); m.reload('failed');
  m.runtime('fill', 'ok'); m.runtime('drain', 'ok'); m.runtime('fill', 'failed');
  m.generated(0.004); m.refused(); m.haproxyRestarted();
  const stat = parseStat(STAT);
  const view = lbView({ running, drains, stat, config: { httpBind: '*', httpPort: 80 }, pid: 42, counts: { reloads: 2, runtimeChanges: 1, refused: 1 } });
  const text = await m.text({ view, stat });
  for (const line of [
    'vxnet_lb_reloads_total{result="ok"} 2', 'vxnet_lb_reloads_total{result="failed"} 1',
    'vxnet_lb_runtime_api_commands_total{op="fill",result="ok"} 1', 'vxnet_lb_runtime_api_commands_total{op="fill",result="failed"} 1',
    'vxnet_lb_config_generation_seconds_count 1', 'vxnet_lb_config_generation_seconds_bucket{le="0.005"} 1',
    'vxnet_lb_config_refused_total 1', 'vxnet_lb_haproxy_restarts_total 1', 'vxnet_lb_catalog_reconnects_total 2', 'vxnet_lb_haproxy_up 1',
    'vxnet_lb_backends{state="up"} 2', 'vxnet_lb_backends{state="down"} 0', 'vxnet_lb_backends{state="unknown"} 1',
    'vxnet_lb_servers{state="up"} 2', 'vxnet_lb_servers{state="drain"} 1', 'vxnet_lb_servers{state="maint"} 1',
    'vxnet_lb_haproxy_server_current_sessions{backend="a_0",server="s1",endpoint="h1/blue/c1"} 1',
    'vxnet_lb_haproxy_server_sessions{backend="a_0",server="s1",endpoint="h1/blue/c1"} 7',
    'vxnet_lb_haproxy_server_http_responses_5xx{backend="a_0",server="s1",endpoint="h1/blue/c1"} 2',
    'vxnet_lb_haproxy_server_status{backend="a_0",server="s2",endpoint="h1/blue/c3",status="DRAIN"} 1',
    'vxnet_lb_haproxy_backend_sessions{backend="a_0"} 10',
    'vxnet_lb_haproxy_backend_bytes_out{backend="db_0"} 200',
  ]) t.ok(text.includes(`${line}\n`), line);
  t.match(text, /# TYPE vxnet_lb_haproxy_server_sessions gauge/, 'HAProxy\'s counters are gauges (a reload starts them again)');
  reconnects = 5;
  const again = await m.text({ view: { ...view, haproxy: { pid: undefined, up: false } }, stat: undefined });
  t.ok(again.includes('vxnet_lb_catalog_reconnects_total 5\n'));
  t.ok(again.includes('vxnet_lb_haproxy_up 0\n'));
  t.notOk(/vxnet_lb_haproxy_server_sessions\{/.test(again), 'no per-server figures without show stat');
  t.ok(again.includes('vxnet_lb_servers{state="drain"} 1\n') || again.includes('vxnet_lb_servers{state="unknown"} 3\n'));
});

t.test('vxnetctl lb ls: URL, checks, tables', async (t) => {
  t.equal(lbUrl({}, {}), 'http://127.0.0.1:9091');
  t.equal(lbUrl({}, { VXNET_LB: 'http://10.0.0.1:9999/' }), 'http://10.0.0.1:9999');
  t.equal(lbUrl({ lb: 'http://h:1' }, { VXNET_LB: 'http://x:2' }), 'http://h:1');
  t.throws(() => lbUrl({ lb: 'nope' }, {}), { constructor: UsageError, message: /not a URL/ });
  t.throws(() => parseLbView({ vips: [] }, 'u'), { constructor: DecodingFailure, message: /not vxnet-lb's view/ });
  const view = lbView({ running, drains, stat: parseStat(STAT), config: { httpBind: '*', httpPort: 80 }, pid: 42, counts: { reloads: 2, runtimeChanges: 1, refused: 0 } });
  const v = parseLbView(JSON.parse(JSON.stringify(view)), 'u');
  t.same(frontendRows(v), [
    ['http_in', '*:80', 'http', 'z.example,www.z.example', ' (-> https)', 'z_0'],
    ['', '', '', 'a_0.example', '/api', 'a_0'],
    ['db_0_port', '10.1.1.1:5432', 'tcp', '*', '', 'db_0'],
  ]);
  t.same(serverRows(v), [
    ['a_0', 'http', 'roundrobin', 's1', 'h1/blue/c1', '10.0.0.1:8080', '1', 'up', '1'],
    ['', '', '', 's2', 'h1/blue/c3', '10.0.0.3:8080', '1', 'drain', '0'],
    ['', '', '', 's3', 'h1/blue/c2', '10.0.0.2:8080', '1', 'maint (leaving)', '0'],
    ['db_0', 'tcp', 'roundrobin', 's1', 'h1/blue/c9', '10.0.0.9:8080', '1', 'up', '0'],
    ['z_0', 'http', 'roundrobin', '', '(no servers)', '', '', '', ''],
  ]);
  t.match(renderLb(v), /^HAProxy running \(master pid 42\); reloads 2, Runtime API changes 1, refused configs 0\n\nFRONTEND +BIND/);
});

t.test('flags: --store, --metrics-listen', async (t) => {
  const f = parseFlags([], {});
  t.equal(f.metricsListen, '127.0.0.1:9091');
  t.equal(f.store, undefined);
  t.equal(parseFlags(['--metrics-listen', 'none'], {}).metricsListen, undefined);
  t.equal(parseFlags(['--metrics-listen', '[::1]:9100'], {}).metricsListen, '[::1]:9100');
  t.same(parseFlags(['--store', 'etcd://10.0.0.1:2379,10.0.0.2'], { VXNET_API: 'http://x:1' }).store, ['10.0.0.1:2379', '10.0.0.2:2379']);
  for (const [args, re] of [
    [['--store', 'etcd://a:1', '--api', 'http://b:2'], /one catalog source/],
    [['--store', 'http://a:1'], /--store: .*not etcd:\/\//],
    [['--metrics-listen', 'localhost:9091'], /ADDRESS:PORT/],
  ] as Array<[string[], RegExp]>) t.throws(() => parseFlags(args, {}), { constructor: UsageError, message: re }, args.join(' '));
});
