// vip/labels.ts: VIP_<n> labels as DC/OS wrote them, resolved against the endpoint's port n.
import t from 'tap';
import type { Endpoint } from '../../catalog/endpoint';
import { formatIp } from '../../ipam/addr';
import { InvalidVip } from '../../lib/errors';
import { isVipKey, parseVipLabel, vipKey, vipRefsOf } from '../../vip/labels';

const endpoint = (labels: Record<string, string>, more: Partial<Endpoint> = {}): Endpoint => ({
  id: 'h1/blue/c1', host: 'h1', runtime: 'cni', containerId: 'c1', network: 'blue', name: 'web-1', aliases: [],
  addresses: ['10.1.0.2', 'fd00::2'], labels, ports: [{ port: 8080, protocol: 'tcp' }, { port: 5353, protocol: 'udp' }], ...more,
});

t.test('parseVipLabel: named, IPv4, IPv6, with and without a protocol', async (t) => {
  t.same(parseVipLabel('VIP_0', '/web:80'), { key: 'VIP_0', index: 0, name: 'web', port: 80 });
  t.same(parseVipLabel('vip_2', 'udp:///DNS:53'), { key: 'vip_2', index: 2, protocol: 'udp', name: 'dns', port: 53 }, 'DC/OS accepted lower case keys; names are lower-cased');
  const v4 = parseVipLabel('VIP_1', 'tcp://10.9.0.1:443');
  t.equal(v4.protocol, 'tcp');
  t.equal(formatIp(v4.ip!), '10.9.0.1');
  t.equal(v4.port, 443);
  const v6 = parseVipLabel('VIP_0', '[fd00::10]:8443');
  t.equal(formatIp(v6.ip!), 'fd00::10');
  t.equal(v6.port, 8443);
  t.ok(isVipKey('VIP_12') && !isVipKey('VIP_') && !isVipKey('VIPX_0') && !isVipKey('HAPROXY_0_VHOST'));
});

t.test('parseVipLabel: every mistake is an InvalidVip that quotes the label and says what is wrong', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['VIP_0', '/web', /VIP_0=\/web: expected \/NAME:PORT/],
    ['VIP_0', '/web:0', /port "0" is not 1-65535/],
    ['VIP_0', '/web:65536', /port "65536" is not 1-65535/],
    ['VIP_0', '/web:http', /port "http" is not 1-65535/],
    ['VIP_0', '/my.web:80', /VIP name "my.web" is not one DNS label/],
    ['VIP_0', '/group/app:80', /VIP name "group\/app" is not one DNS label/],
    ['VIP_0', '/-web:80', /not one DNS label/],
    ['VIP_0', '10.0.0.300:80', /"10.0.0.300" is not an IP address/],
    ['VIP_0', 'fd00::1:80', /expected \/NAME:PORT, IPV4:PORT or \[IPV6\]:PORT/],
    ['VIP_0', '[10.0.0.1]:80', /"10.0.0.1" is not an IP address/],
    ['VIP_0', 'sctp://10.0.0.1:80', /protocol "sctp" is neither tcp nor udp/],
    ['VIPS', '/web:80', /the key is not VIP_<n>/],
  ];
  for (const [k, v, re] of cases) {
    let err: unknown;
    try { parseVipLabel(k, v); } catch (e) { err = e; }
    t.ok(err instanceof InvalidVip && err.code === 109, `${k}=${v}: InvalidVip`);
    t.match((err as Error | undefined)?.message, re, `${k}=${v}: the message`);
  }
});

t.test('vipRefsOf: port n is the target; the protocol defaults to port n\'s', async (t) => {
  const { refs, problems } = vipRefsOf(endpoint({ VIP_0: '/web:80', VIP_1: '/dns:53', 'vxnet.other': 'x' }));
  t.same(problems.size, 0);
  t.same(refs.map((r) => [r.key, r.name, r.protocol, r.port, r.targetPort]), [['VIP_0', 'web', 'tcp', 80, 8080], ['VIP_1', 'dns', 'udp', 53, 5353]]);
  const forced = vipRefsOf(endpoint({ VIP_1: 'tcp:///dns:53' })).refs[0];
  t.equal(forced?.protocol, 'tcp', 'an explicit protocol wins over port n\'s');
});

t.test('vipRefsOf: a missing port n or a bad label is a problem for that label only, never a throw', async (t) => {
  const { refs, problems } = vipRefsOf(endpoint({ VIP_0: '/web:80', VIP_3: '/api:80', VIP_1: '/bad name:1' }));
  t.same(refs.map((r) => r.key), ['VIP_0']);
  t.match(problems.get('VIP_3'), /VIP_3=\/api:80: the endpoint has no port 3 \(its ports: 0: 8080\/tcp, 1: 5353\/udp; set vxnet.ports or expose ports\)/);
  t.match(problems.get('VIP_1'), /not one DNS label/);
  t.match(vipRefsOf(endpoint({ VIP_0: '/web:80' }, { ports: [] })).problems.get('VIP_0'), /its ports: none/);
});

t.test('vipKey: how VIPs are shown and keyed', async (t) => {
  t.equal(vipKey({ name: 'web', protocol: 'tcp', port: 80 }), '/web:80/tcp');
  t.equal(vipKey({ ip: parseVipLabel('VIP_0', '10.0.0.1:53').ip!, protocol: 'udp', port: 53 }), '10.0.0.1:53/udp');
  t.equal(vipKey({ ip: parseVipLabel('VIP_0', '[fd00::1]:80').ip!, protocol: 'tcp', port: 80 }), '[fd00::1]:80/tcp');
});
