// catalog/records.ts: endpoint keys in etcd (escaped host and id) and values read back
// validated: anything malformed is an error naming the field, never a half-formed endpoint.
import t from 'tap';
import type { Endpoint } from '../../catalog/endpoint';
import { decodeEndpoint, encodeEndpoint, endpointKey, hostPrefix, parseEndpointKey } from '../../catalog/records';

const P = '/vxnet/endpoints/';
const ep: Endpoint = {
  id: 'h1/my net/c1', host: 'h1', runtime: 'docker', containerId: 'c1', network: 'my net', name: 'web', aliases: ['www'],
  addresses: ['10.0.0.2', '2001:db8::2'], labels: { 'vxnet.service': 'shop' }, ports: [{ port: 80, protocol: 'tcp', name: 'http' }, { port: 53, protocol: 'udp' }],
  service: 'shop',
};

t.test('keys: PREFIX HOST/ID escaped, and back', async (t) => {
  const key = endpointKey(P, ep);
  t.equal(key, '/vxnet/endpoints/h1/h1%2Fmy%20net%2Fc1');
  t.ok(key.startsWith(hostPrefix(P, 'h1')));
  t.same(parseEndpointKey(P, key), { host: 'h1', id: 'h1/my net/c1' });
  t.same(parseEndpointKey(P, endpointKey(P, { host: 'a/b', id: 'a/b/n/c' })), { host: 'a/b', id: 'a/b/n/c' }, 'a slash in a host name survives');
  for (const bad of ['/other/h1/x', `${P}h1`, `${P}h1/`, `${P}/x`, `${P}h1/x/y`, `${P}h1/%E0%A4%A`]) t.equal(parseEndpointKey(P, bad), undefined, bad);
});

t.test('values: round trip; equal endpoints encode equally whatever their field order', async (t) => {
  const key = endpointKey(P, ep);
  t.same(decodeEndpoint(P, key, encodeEndpoint(ep)), { endpoint: ep });
  const shuffled = Object.fromEntries(Object.entries(ep).reverse()) as unknown as Endpoint;
  t.equal(encodeEndpoint(shuffled), encodeEndpoint(ep));
  const r = decodeEndpoint(P, key, JSON.stringify({ ...ep, extra: 'x' }));
  t.same('endpoint' in r && Object.keys(r.endpoint), Object.keys(ep), 'unknown fields dropped');
  const noService = { ...ep };
  delete (noService as { service?: string }).service;
  t.same(decodeEndpoint(P, key, encodeEndpoint(noService)), { endpoint: noService });
});

t.test('malformed values: the reason, never an endpoint', async (t) => {
  const key = endpointKey(P, ep);
  const v = (more: Record<string, unknown>): string => JSON.stringify({ ...ep, ...more });
  const cases: Array<[string, string, RegExp]> = [
    ['{', 'not JSON', /not JSON/],
    ['[1]', 'an array', /not an object/],
    ['null', 'null', /not an object/],
    [v({ name: 5 }), 'name', /^name: not a string/],
    [v({ id: 'h1/net/other' }), 'another id', /is not the key's/],
    [v({ host: 'h2' }), 'another host', /host "h2" is not the key's "h1"/],
    [v({ aliases: 'www' }), 'aliases', /^aliases/],
    [v({ addresses: [1] }), 'addresses', /^addresses/],
    [v({ labels: { a: 1 } }), 'labels', /^labels/],
    [v({ labels: ['a'] }), 'labels list', /^labels/],
    [v({ ports: {} }), 'ports', /^ports: not a list/],
    [v({ ports: [{ port: 0, protocol: 'tcp' }] }), 'port 0', /^ports\[0\]/],
    [v({ ports: [{ port: 80, protocol: 'sctp' }] }), 'protocol', /^ports\[0\]/],
    [v({ ports: [{ port: 80, protocol: 'tcp', name: 1 }] }), 'port name', /^ports\[0\]/],
    [v({ service: 1 }), 'service', /^service/],
  ];
  for (const [value, what, reason] of cases) {
    const r = decodeEndpoint(P, key, value);
    t.match('error' in r ? r.error : 'decoded', reason, what);
  }
  const foreign = { ...ep, id: 'h9/net/c1', host: 'h1' };
  t.match(decodeEndpoint(P, endpointKey(P, foreign), JSON.stringify(foreign)), { error: /not under host "h1"/ }, 'an entry cannot claim another host\'s endpoint id');
  t.match(decodeEndpoint(P, '/elsewhere/x', encodeEndpoint(ep)), { error: /not an endpoint key/ });
});
