// vxnetctl doctor's DNS rules (ctl/doctor-dns.ts): the names the catalog gives (endpoints'
// names, aliases, per-network names, services, named VIPs) with their addresses, and the
// findings against a server's answers: not answering, a name missing, wrong, unanswered.
import t from 'tap';
import type { Endpoint } from '../../catalog/endpoint';
import { type DnsAnswerSeen, type DnsObserved, dnsFindings, endpointOf, expectedNames } from '../../ctl/doctor-dns';
import type { VipView } from '../../vip/model';

const ep = (name: string, addresses: string[], o: Partial<Endpoint> = {}): Endpoint => ({
  id: `h1/blue/${name}`, host: 'h1', runtime: 'cni', containerId: name, network: 'blue', name, aliases: [], addresses, labels: {}, ports: [], ...o,
});

const vip: VipView = { vip: '/web:80/tcp', name: 'web', addresses: ['198.18.0.5'], protocol: 'tcp', port: 80, backends: [] };

t.test('expected names: name, NAME.NETWORK, aliases, service, VIP; refused names left out', async (t) => {
  const { names, refused } = expectedNames([
    ep('web-1', ['10.1.0.2', 'fd00::2'], { service: 'web', aliases: ['front'] }),
    ep('web-2', ['10.1.0.3'], { service: 'web' }),
    ep('bad.name', ['10.1.0.9']),
    ep('', ['10.1.0.8']),
  ], [vip, { ...vip, vip: '/pending:80/tcp', name: 'pending', addresses: [] }], 'vxnet.');
  t.equal(refused, 1, 'a dot in a name is refused by the zone');
  t.same(names.map((n) => [n.name, n.a, n.aaaa]), [
    ['front.blue.vxnet', ['10.1.0.2'], ['fd00::2']],
    ['front.vxnet', ['10.1.0.2'], ['fd00::2']],
    ['web-1.blue.vxnet', ['10.1.0.2'], ['fd00::2']],
    ['web-1.vxnet', ['10.1.0.2'], ['fd00::2']],
    ['web-2.blue.vxnet', ['10.1.0.3'], []],
    ['web-2.vxnet', ['10.1.0.3'], []],
    ['web.l4lb.vxnet', ['198.18.0.5'], []],
    ['web.vxnet', ['10.1.0.2', '10.1.0.3'], ['fd00::2']],
  ]);
  t.equal(names.find((n) => n.name === 'web-1.vxnet')?.of, 'endpoint web-1 (network blue, host h1)');
  t.equal(names.find((n) => n.name === 'web.l4lb.vxnet')?.of, 'VIP web');
});

t.test('endpointOf reads the API\'s view', async (t) => {
  const e = endpointOf({
    id: 'h/n/c', name: 'a', aliases: [], network: 'n', host: 'h', runtime: 'cni', containerId: 'c', addresses: ['10.0.0.1'],
    ports: [{ port: 80, protocol: 'tcp', name: null }, { port: 81, protocol: 'udp', name: 'x' }], service: null, labels: {}, dnsNames: [],
  });
  t.same(e.ports, [{ port: 80, protocol: 'tcp' }, { port: 81, protocol: 'udp', name: 'x' }]);
  t.notOk('service' in e);
});

const ok = (...data: string[]): DnsAnswerSeen => ({ rcode: 'NOERROR', data });
const nx: DnsAnswerSeen = { rcode: 'NXDOMAIN', data: [] };

t.test('findings against the answers', async (t) => {
  const { names } = expectedNames([ep('web-1', ['10.1.0.2']), ep('db', ['10.1.0.4'])], [], 'vxnet');
  const answers = new Map(names.map((n) => [n.name, { A: ok(...n.a), AAAA: ok(...n.aaaa) }]));
  const seen = (edit: (m: Map<string, { A: DnsAnswerSeen; AAAA: DnsAnswerSeen }>) => void, probe: DnsAnswerSeen = ok()): DnsObserved => {
    const m = new Map(answers);
    edit(m);
    return { server: '198.51.100.1:53', probe, answers: m };
  };
  t.same(dnsFindings(names, seen(() => undefined), '/run/vxnet/dns.json'), []);

  const silent = dnsFindings(names, seen(() => undefined, { rcode: 'TIMEOUT', data: [] }), '/run/vxnet/dns.json');
  t.same(silent.map((f) => f.kind), ['dns-not-answering']);
  t.match(silent[0], { subject: 'DNS server 198.51.100.1:53', safe: false });
  t.match(silent[0].why, /vxnetd is not running/);
  t.match(silent[0].fix, /start \(or restart\) vxnetd/);
  t.match(dnsFindings(names, seen(() => undefined, { rcode: 'REFUSED', data: [] }), 'f')[0].what, /answers REFUSED for the zone's SOA/);

  const missing = dnsFindings(names, seen((m) => m.set('db.vxnet', { A: nx, AAAA: nx })), 'f');
  t.same(missing.map((f) => [f.kind, f.subject]), [['dns-name-missing', 'DNS name db.vxnet (endpoint db (network blue, host h1))']]);
  t.match(missing[0].what, /gives it 10\.1\.0\.4 but 198\.51\.100\.1:53 answers NXDOMAIN/);

  const wrong = dnsFindings(names, seen((m) => m.set('web-1.blue.vxnet', { A: ok('10.1.0.9'), AAAA: ok() })), 'f');
  t.same(wrong.map((f) => f.kind), ['dns-name-wrong']);
  t.equal(wrong[0].what, 'lacks 10.1.0.2; answers 10.1.0.9, which the catalog does not give it');

  const lost = dnsFindings(names, seen((m) => m.set('db.vxnet', { A: { rcode: 'TIMEOUT', data: [] }, AAAA: ok() })), 'f');
  t.same(lost.map((f) => f.kind), ['dns-name-unanswered']);
});
