// catalog/derive.ts: label precedence (CNI < runtime < operator), vxnet.ports parsing and its
// errors, port order without the label, the service choice and name sanitising.
import t from 'tap';
import { deriveEndpoint, dnsLabelOf, parsePortsLabel, type EndpointFacts } from '../../catalog/derive';

const facts = (more: Partial<EndpointFacts> = {}): EndpointFacts =>
  ({ host: 'h1', runtime: 'docker', containerId: 'c1', network: 'net', name: 'web', addresses: ['10.0.0.2'], ...more });

t.test('parsePortsLabel: [NAME=]PORT[/tcp|/udp], in order; errors name the bad entry', async (t) => {
  t.same(parsePortsLabel('8080, 9000/udp,HTTP=80/TCP,,dns=53/udp'), [
    { port: 8080, protocol: 'tcp' }, { port: 9000, protocol: 'udp' }, { port: 80, protocol: 'tcp', name: 'http' }, { port: 53, protocol: 'udp', name: 'dns' },
  ]);
  t.same(parsePortsLabel(''), []);
  for (const [text, bad] of [['80,x', 'x'], ['0', '0'], ['65536', '65536'], ['80/sctp', '80/sctp'], ['a b=80', 'a b=80'], ['=80', '=80']]) {
    t.throws(() => parsePortsLabel(text as string), { name: 'InvalidName', code: 108, message: `bad vxnet.ports entry "${bad}"` }, text);
  }
  t.throws(() => parsePortsLabel('-http=80'), { name: 'InvalidName', message: 'bad port name "-http" in vxnet.ports: not a DNS label' });
});

t.test('labels: CNI < runtime < operator, per key', async (t) => {
  const { endpoint } = deriveEndpoint(facts({
    cniLabels: { a: 'cni', b: 'cni', c: 'cni' }, runtimeLabels: { b: 'runtime', c: 'runtime' }, operatorLabels: { c: 'operator' },
  }));
  t.same(endpoint.labels, { a: 'cni', b: 'runtime', c: 'operator' });
});

t.test('ports: the label in its order wins; else exposed ports ascending, tcp first, once each', async (t) => {
  const exposedPorts = [{ port: 443, protocol: 'tcp' as const }, { port: 53, protocol: 'udp' as const }, { port: 53, protocol: 'tcp' as const },
    { port: 80, protocol: 'tcp' as const }, { port: 443, protocol: 'tcp' as const }];
  t.same(deriveEndpoint(facts({ exposedPorts })).endpoint.ports,
    [{ port: 53, protocol: 'tcp' }, { port: 53, protocol: 'udp' }, { port: 80, protocol: 'tcp' }, { port: 443, protocol: 'tcp' }]);
  const labelled = deriveEndpoint(facts({ exposedPorts, runtimeLabels: { 'vxnet.ports': '9000,http=80' } }));
  t.same(labelled.endpoint.ports, [{ port: 9000, protocol: 'tcp' }, { port: 80, protocol: 'tcp', name: 'http' }]);
  t.equal(labelled.problem, undefined);
  const bad = deriveEndpoint(facts({ exposedPorts: [{ port: 80, protocol: 'tcp' }], operatorLabels: { 'vxnet.ports': '80,nope' } }));
  t.same(bad.endpoint.ports, [{ port: 80, protocol: 'tcp' }], 'a bad label: the exposed ports');
  t.match(bad.problem, /bad vxnet.ports entry "nope"/, 'and the problem is reported');
  t.same(deriveEndpoint(facts()).endpoint.ports, [], 'nothing known: no ports');
});

t.test('service: vxnet.service, else the Compose service, else none; invalid ones skipped', async (t) => {
  t.equal(deriveEndpoint(facts({ runtimeLabels: { 'com.docker.compose.service': 'db', 'vxnet.service': 'Web' } })).endpoint.service, 'web');
  t.equal(deriveEndpoint(facts({ runtimeLabels: { 'com.docker.compose.service': 'db' } })).endpoint.service, 'db');
  t.equal(deriveEndpoint(facts({ runtimeLabels: { 'com.docker.compose.service': 'db', 'vxnet.service': 'not valid' } })).endpoint.service, 'db');
  t.notOk('service' in deriveEndpoint(facts()).endpoint, 'no service field at all');
});

t.test('name and aliases: lowercased DNS labels, Docker\'s leading slash dropped, others left out', async (t) => {
  t.equal(dnsLabelOf('/Web-1'), 'web-1');
  t.equal(dnsLabelOf('my.web'), undefined);
  t.equal(dnsLabelOf('-web'), undefined);
  t.equal(dnsLabelOf('a'.repeat(64)), undefined);
  t.equal(dnsLabelOf(undefined), undefined);
  const { endpoint } = deriveEndpoint(facts({ name: 'My.Web', aliases: ['WWW', 'www', 'bad name', 'api'], addresses: ['10.0.0.9', '10.0.0.10', '2001:db8::1'] }));
  t.equal(endpoint.name, '', 'a name that is not one label: catalogued without a name');
  t.same(endpoint.aliases, ['www', 'api']);
  t.equal(endpoint.id, 'h1/net/c1');
  t.same(endpoint.addresses, ['10.0.0.10', '10.0.0.9', '2001:db8::1'], 'sorted as text');
});
