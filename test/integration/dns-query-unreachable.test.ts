// `vxnetctl dns query` against servers it cannot reach, from inside a test namespace whose
// routes the test chooses: no route at all (IPv4 and IPv6: the connected UDP socket's connect
// fails with ENETUNREACH, which crashed vxnetctl with an uncaught ERR_SOCKET_BAD_PORT before),
// an `unreachable`, `prohibit` and `blackhole` route (EHOSTUNREACH, EACCES, EINVAL), and a
// port nothing listens on (ICMP port unreachable -> ECONNREFUSED as the socket's 'error').
// Each must be one "vxnetctl: ..." line naming the server and why, exit 1, at once (no timeout).
import * as path from 'node:path';
import t from 'tap';
import { copyDist } from '../helpers/dist';
import { exec, inNetns, newNetns } from '../helpers/netns';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root');
} else {
  t.setTimeout(120_000);
  void main();
}

async function main(): Promise<void> {
  const dist = await copyDist(t, ['bin/vxnetctl']);
  const bin = path.join(dist, 'bin', 'vxnetctl');
  const ns = await newNetns(t);
  for (const [kind, cidr] of [['unreachable', '10.8.0.0/16'], ['prohibit', '10.7.0.0/16'], ['blackhole', '10.6.0.0/16']]) {
    const r = await exec('ip', ['-n', ns.name, 'route', 'add', kind, cidr]);
    if (r.code !== 0) throw new Error(`ip route add ${kind} ${cidr}: ${r.stderr}`);
  }
  const query = (server: string, ...more: string[]) => inNetns(ns.name, process.execPath, [bin, 'dns', 'query', 'web-1', '--server', server, ...more], {
    env: { PATH: process.env.PATH, VXNET_DNS_JSON: '/nonexistent/dns.json' }, timeoutMs: 20_000,
  });

  const cases: Array<[string, string, RegExp]> = [
    ['no route (IPv4)', '10.9.9.9', /^vxnetctl: web-1\.vxnet\. A: dns query to 10\.9\.9\.9:53: no route to it \(network unreachable\), ENETUNREACH\n$/],
    ['no route (IPv6)', '[fd00:9::9]:5353', /^vxnetctl: web-1\.vxnet\. A: dns query to \[fd00:9::9\]:5353: no route to it \(network unreachable\), ENETUNREACH\n$/],
    ['an unreachable route', '10.8.0.1', /^vxnetctl: web-1\.vxnet\. A: dns query to 10\.8\.0\.1:53: it cannot be reached \(host unreachable\), EHOSTUNREACH\n$/],
    ['a prohibit route', '10.7.0.1', /^vxnetctl: web-1\.vxnet\. A: dns query to 10\.7\.0\.1:53: a route or a firewall forbids it \(permission denied\), EACCES\n$/],
    ['a blackhole route', '10.6.0.1', /^vxnetctl: web-1\.vxnet\. A: dns query to 10\.6\.0\.1:53: the route to it is a blackhole.*, EINVAL\n$/],
    ['a loopback port nobody listens on', '127.0.0.1:9', /^vxnetctl: web-1\.vxnet\. A: nothing listens on 127\.0\.0\.1:9 \(connection refused over UDP\)\n$/],
    ['an IPv6 loopback port nobody listens on', '[::1]:9', /^vxnetctl: web-1\.vxnet\. A: nothing listens on \[::1\]:9 \(connection refused over UDP\)\n$/],
  ];
  for (const [what, server, expected] of cases) {
    await t.test(what, async (t) => {
      const started = Date.now();
      const r = await query(server);
      t.equal(r.code, 1, 'exit 1');
      t.match(r.stderr, expected, 'one line naming the server and why');
      t.notMatch(r.stderr, /node:internal|at .*\(|Error \[/, 'no stack trace');
      t.equal(r.stdout, '');
      t.ok(Date.now() - started < 5_000, `at once, not after the 2 x 2 s timeout (${Date.now() - started} ms)`);
      const j = await query(server, '--json');
      t.equal(j.code, 1, '--json: exit 1 too');
      t.match(j.stderr, expected);
    });
  }
}
