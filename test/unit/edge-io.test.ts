// The pure parts around vxnet-lb's I/O: the catalog stream's codec and SSE parser
// (catalog/stream.ts) and applying its events to a catalog (edge/feed.ts); HAProxy's `show proc`
// and `show stat` read (edge/haproxy.ts); which backend a refusal names (edge/config.ts blame);
// the command line (edge/flags.ts).
import t from 'tap';
import { EndpointCatalog } from '../../catalog/catalog';
import type { Endpoint } from '../../catalog/endpoint';
import { decodeEvent, encodeEvent, SseParser } from '../../catalog/stream';
import { blame, haproxyWords } from '../../edge/config';
import { applyEvent } from '../../edge/feed';
import { parseFlags } from '../../edge/flags';
import { parseSessions, parseShowProc } from '../../edge/haproxy';
import { UsageError } from '../../lib/usage';

const ep = (host: string, c: string, more: Partial<Endpoint> = {}): Endpoint => ({
  id: `${host}/net/${c}`, host, runtime: 'cni', containerId: c, network: 'net', name: c, aliases: [],
  addresses: ['10.0.0.1'], labels: { HAPROXY_0_VHOST: 'a.example' }, ports: [{ port: 80, protocol: 'tcp', name: 'http' }], ...more,
});

t.test('stream: encode, parse in arbitrary chunks, decode, apply', async (t) => {
  const text = encodeEvent({ type: 'reset', endpoints: [ep('h1', 'a'), ep('h2', 'b', { service: 'svc' })] })
    + ': ping\n\n'
    + encodeEvent({ type: 'change', changes: [{ id: 'h1/net/a', endpoint: undefined }, { id: 'h1/net/c', endpoint: ep('h1', 'c') }] });
  const events: Array<[string, string]> = [];
  const parser = new SseParser((type, data) => events.push([type, data]));
  for (let i = 0; i < text.length; i += 7) parser.push(text.slice(i, i + 7));
  t.same(events.map((e) => e[0]), ['reset', 'change'], 'two events, the comment skipped');
  const cat = new EndpointCatalog();
  for (const [type, data] of events) {
    const ev = decodeEvent(type, data);
    if ('error' in ev) { t.fail(ev.error); continue; }
    applyEvent(cat, ev);
  }
  t.same(cat.list().map((e) => e.id).sort(), ['h1/net/c', 'h2/net/b']);
  t.equal(cat.get('h2/net/b')?.service, 'svc');
  const reset = decodeEvent('reset', `[${JSON.stringify(ep('h3', 'z'))}]`);
  if (!('error' in reset)) applyEvent(cat, reset);
  t.same(cat.list().map((e) => e.id), ['h3/net/z'], 'a reset replaces everything');
  t.match(decodeEvent('reset', '[{"id":"h1/net/a","host":"h1"}]'), { error: /reset: h1\/net\/a: runtime: not a string/ });
  t.match(decodeEvent('change', `[{"id":"h1/net/x","endpoint":${JSON.stringify(ep('h1', 'a'))}}]`), { error: /endpoint h1\/net\/a under id h1\/net\/x/ });
  t.match(decodeEvent('change', 'nope'), { error: /not JSON/ });
  t.match(decodeEvent('other', '[]'), { error: /unknown event type/ });
});

t.test('HAProxy: show proc, show stat, refusals', async (t) => {
  const proc = `#<PID>          <type>          <reloads>       <uptime>        <version>
586             master          2 [failed: 1]   0d00h00m11s     2.6.12-1+deb12u4
# workers
685             worker          0               0d00h00m01s     2.6.12-1+deb12u4
601             worker          1               0d00h00m05s     2.6.12-1+deb12u4
# programs
`;
  t.same(parseShowProc(proc), { masterPid: 586, reloads: 2, failed: 1, workers: [{ pid: 685, reloads: 0 }, { pid: 601, reloads: 1 }] });
  t.equal(parseShowProc('Unknown command'), undefined);
  const stat = '# pxname,svname,qcur,qmax,scur,smax\nf,FRONTEND,,,3,4\nb,s1,0,0,2,5\nb,s2,0,0,0,1\nb,BACKEND,0,0,2,5\n';
  t.same([...parseSessions(stat)], [['b/s1', 2], ['b/s2', 0]]);
  const cfg = ['global', '  x', 'frontend http_in', '  acl host_web_0 var(txn.vxlb_host) -m str a', '  use_backend web_0 if host_web_0',
    'frontend db_1_port', '  bind *:1', 'backend api_0', '  balance nonsense'].join('\n');
  const out = `[NOTICE]   (1) : haproxy version is 2.6.12
[ALERT]    (1) : config : parsing [/x/haproxy.cfg.new:9] : balance only supports 'roundrobin'
[ALERT]    (1) : config : parsing [/x/haproxy.cfg.new:4] : bad acl
[ALERT]    (1) : config : parsing [/x/haproxy.cfg.new:7] : bad bind
[ALERT]    (1) : config : parsing [/x/haproxy.cfg.new:2] : bad global`;
  t.same(blame(cfg, out), ['api_0', 'db_1', 'web_0'], 'backend, service-port frontend and http_in rules map to their backend; global to none');
  t.equal(haproxyWords(out).split('\n')[0], "ALERT: config : parsing [/x/haproxy.cfg.new:9] : balance only supports 'roundrobin'", 'NOTICE lines dropped');
});

t.test('flags', async (t) => {
  const f = parseFlags([], {});
  t.match(f, { api: 'http://127.0.0.1:8123', group: 'external', strictMode: false, dir: '/run/vxnet-lb', httpPort: 80, httpBind: '*', drainTimeoutMs: 10_000, keep: 5, keepHaproxy: false });
  t.equal(parseFlags([], { VXNET_API: 'http://10.0.0.1:8123/' }).api, 'http://10.0.0.1:8123', '$VXNET_API');
  t.match(parseFlags(['--group', '*', '--strict-mode', '--http-port', '8080', '--drain-timeout', '0', '--keep-haproxy'], {}),
    { group: '*', strictMode: true, httpPort: 8080, drainTimeoutMs: 0, keepHaproxy: true });
  for (const [args, re] of [
    [['--http-port', '0'], /--http-port "0": expected a whole number from 1 to 65535/],
    [['--api', 'unix:/x'], /only http:\/\//],
    [['--group', 'a b'], /--group "a b"/],
    [['--http-bind', 'localhost'], /--http-bind "localhost": an IP address/],
    [['--bogus'], /Unknown option '--bogus'/],
  ] as const) {
    t.throws(() => parseFlags(args, {}), { constructor: UsageError, message: re }, args.join(' '));
  }
});
