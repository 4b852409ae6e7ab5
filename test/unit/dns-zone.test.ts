// dns/zone.ts: every record kind, NXDOMAIN vs NODATA, rotation, incremental set/delete.
import type { Answer } from 'dns-packet';
import t from 'tap';
import { Ip, parseIp } from '../../ipam/addr';
import { Endpoint, Zone } from '../../dns/zone';

const ip = (text: string): Ip => parseIp(text)!;
const web1: Endpoint = {
  name: 'web-1', network: 'blue', service: 'web', addresses: [ip('10.1.0.2'), ip('fd00::2')],
  ports: [{ port: 8080, protocol: 'tcp', name: 'http' }, { port: 53, protocol: 'udp' }],
};
const web2: Endpoint = { name: 'web-2', network: 'blue', service: 'web', addresses: [ip('10.1.0.3')], ports: [{ port: 8080, protocol: 'tcp', name: 'http' }] };
const data = (answers: readonly Answer[]): unknown[] => answers.map((a) => ('data' in a ? a.data : undefined));
const sorted = (xs: unknown[]): unknown[] => xs.map((x) => JSON.stringify(x)).sort().map((x) => JSON.parse(x));

function zoneOf(...endpoints: Endpoint[]): Zone {
  const z = new Zone({ nameserverAddresses: [ip('127.0.0.1')] });
  endpoints.forEach((e, i) => z.set(`id${i}`, e));
  return z;
}

t.test('NAME.DOMAIN and NAME.NETWORK.DOMAIN: A and AAAA, TTL 5 by default', async (t) => {
  const z = zoneOf(web1);
  for (const name of ['web-1.vxnet', 'web-1.blue.vxnet']) {
    const a = z.lookup(name, 'A')!;
    t.equal(a.rcode, 'NOERROR');
    t.same(a.answers, [{ name, type: 'A', class: 'IN', ttl: 5, data: '10.1.0.2' }]);
    t.same(data(z.lookup(name, 'AAAA')!.answers), ['fd00::2']);
  }
});

t.test('SERVICE.DOMAIN: every endpoint of the service, rotated per answer', async (t) => {
  const z = zoneOf(web1, web2);
  const firsts = new Set<unknown>();
  for (let i = 0; i < 4; i++) {
    const a = z.lookup('web.vxnet', 'A')!;
    t.same(sorted(data(a.answers)), ['10.1.0.2', '10.1.0.3']);
    firsts.add(data(a.answers)[0]);
  }
  t.equal(firsts.size, 2, 'each address comes first in turn');
});

t.test('two endpoints with one name: both addresses', async (t) => {
  const z = zoneOf(web1, { ...web2, name: 'web-1' });
  t.same(sorted(data(z.lookup('web-1.vxnet', 'A')!.answers)), ['10.1.0.2', '10.1.0.3']);
});

t.test('SRV: _SERVICE._tcp / _udp per endpoint and port, named ports, targets in additionals', async (t) => {
  const z = zoneOf(web1, web2);
  const tcp = z.lookup('_web._tcp.vxnet', 'SRV')!;
  t.same(sorted(data(tcp.answers)), [
    { priority: 0, weight: 1, port: 8080, target: 'web-1.vxnet' },
    { priority: 0, weight: 1, port: 8080, target: 'web-2.vxnet' },
  ]);
  t.same(sorted(data(tcp.additionals)), ['10.1.0.2', '10.1.0.3', 'fd00::2'], 'A/AAAA of the targets');
  t.same(data(z.lookup('_web._udp.vxnet', 'SRV')!.answers), [{ priority: 0, weight: 1, port: 53, target: 'web-1.vxnet' }]);
  t.same(sorted(data(z.lookup('_http._tcp.web.vxnet', 'SRV')!.answers)), [
    { priority: 0, weight: 1, port: 8080, target: 'web-1.vxnet' },
    { priority: 0, weight: 1, port: 8080, target: 'web-2.vxnet' },
  ]);
  const noService = zoneOf({ name: 'db', network: 'blue', addresses: [ip('10.1.0.9')], ports: [{ port: 5432, protocol: 'tcp' }] });
  t.same(data(noService.lookup('_db._tcp.vxnet', 'SRV')!.answers), [{ priority: 0, weight: 1, port: 5432, target: 'db.vxnet' }], 'no service: the name is the service');
});

t.test('PTR for every endpoint address, v4 and v6', async (t) => {
  const z = zoneOf(web1);
  t.same(z.lookup('2.0.1.10.in-addr.arpa', 'PTR')!.answers, [{ name: '2.0.1.10.in-addr.arpa', type: 'PTR', class: 'IN', ttl: 5, data: 'web-1.vxnet' }]);
  const v6 = '2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa';
  t.same(data(z.lookup(v6, 'PTR')!.answers), ['web-1.vxnet']);
  t.equal(z.lookup('9.0.1.10.in-addr.arpa', 'PTR'), undefined, 'other reverse names are not ours: forwarded');
  const nodata = z.lookup('2.0.1.10.in-addr.arpa', 'A')!;
  t.equal(nodata.rcode, 'NOERROR');
  t.same(nodata.answers, []);
});

t.test('SOA and NS at the apex; ns.DOMAIN', async (t) => {
  const z = zoneOf(web1);
  const soa = z.lookup('vxnet', 'SOA')!;
  t.equal(soa.answers.length, 1);
  t.match(soa.answers[0], { name: 'vxnet', type: 'SOA', ttl: 5, data: { mname: 'ns.vxnet', rname: 'hostmaster.vxnet', serial: z.serial, minimum: 5 } });
  t.same(data(z.lookup('vxnet', 'NS')!.answers), ['ns.vxnet']);
  t.same(data(z.lookup('ns.vxnet', 'A')!.answers), ['127.0.0.1']);
  t.same(z.lookup('vxnet', 'ANY')!.answers.map((a) => a.type).sort(), ['NS', 'SOA']);
});

t.test('NXDOMAIN vs NODATA, SOA with the negative TTL in the authority section', async (t) => {
  const z = new Zone({ ttl: 30, negativeTtl: 7 });
  z.set('a', web1);
  const negatives: Array<[string, string, string]> = [
    ['nothing.vxnet', 'A', 'NXDOMAIN'],
    ['x.web-1.vxnet', 'A', 'NXDOMAIN'],
    ['web-1.vxnet', 'MX', 'NOERROR'],
    ['web-1.vxnet', 'SRV', 'NOERROR'],
    ['blue.vxnet', 'A', 'NOERROR'], // only the parent of web-1.blue.vxnet (RFC 8020)
    ['_tcp.web.vxnet', 'SRV', 'NOERROR'], // only the parent of _http._tcp.web.vxnet
    ['_tcp.vxnet', 'A', 'NOERROR'],
    ['vxnet', 'A', 'NOERROR'],
  ];
  for (const [name, type, rcode] of negatives) {
    const a = z.lookup(name, type)!;
    t.equal(a.rcode, rcode, `${name} ${type}: ${rcode}`);
    t.same(a.answers, [], `${name}: no answers`);
    t.equal(a.authorities.length, 1);
    t.match(a.authorities[0], { name: 'vxnet', type: 'SOA', ttl: 7, data: { minimum: 7 } }, 'SOA, TTL min(SOA TTL, minimum)');
  }
  t.equal(z.lookup('example.com', 'A'), undefined, 'outside the zone: not ours');
  t.equal(z.lookup('vxnet.example.com', 'A'), undefined);
  z.delete('a');
  t.equal(z.lookup('blue.vxnet', 'A')!.rcode, 'NXDOMAIN', 'the empty non-terminal goes with its last child');
});

t.test('set replaces an endpoint, delete removes it, only its names change', async (t) => {
  const z = zoneOf(web1, web2);
  const serial = z.serial;
  z.set('id0', { ...web1, name: 'web-9', addresses: [ip('10.1.0.9')] });
  t.ok(z.serial !== serial, 'serial bumped');
  t.equal(z.lookup('web-1.vxnet', 'A')!.rcode, 'NXDOMAIN', 'the old name is gone');
  t.equal(z.lookup('2.0.1.10.in-addr.arpa', 'PTR'), undefined, 'and its PTR');
  t.same(data(z.lookup('web-9.blue.vxnet', 'A')!.answers), ['10.1.0.9']);
  t.same(sorted(data(z.lookup('web.vxnet', 'A')!.answers)), ['10.1.0.3', '10.1.0.9']);
  t.ok(z.delete('id1'));
  t.notOk(z.delete('id1'), 'twice: false');
  t.same(data(z.lookup('web.vxnet', 'A')!.answers), ['10.1.0.9']);
  t.equal(z.size, 1);
});

t.test('invalid endpoints are rejected with a reason and leave the zone as it was', async (t) => {
  const z = zoneOf(web1);
  const serial = z.serial;
  const bad: Array<[Partial<Endpoint>, RegExp]> = [
    [{ name: 'my web' }, /endpoint name "my web" is not a valid DNS label: .*outside \[a-z0-9_-\]/],
    [{ name: 'a.b' }, /endpoint name "a.b"/],
    [{ name: '' }, /empty label/],
    [{ name: 'x'.repeat(64) }, /64 bytes \(at most 63\)/],
    [{ network: 'Blue Net' }, /network name/],
    [{ service: 'w/eb' }, /service name/],
    [{ name: '_web' }, /must not start with "_"/],
    [{ name: 'ns' }, /reserved for the zone's name server/],
    [{ ports: [{ port: 0, protocol: 'tcp' }] }, /0 is not a port number/],
    [{ ports: [{ port: 80, protocol: 'sctp' as 'tcp' }] }, /protocol "sctp"/],
    [{ ports: [{ port: 80, protocol: 'tcp', name: 'h t' }] }, /port 0 name/],
  ];
  for (const [change, re] of bad) {
    t.throws(() => z.set('id0', { ...web1, ...change }), { name: 'InvalidName', code: 108, message: re });
  }
  t.equal(z.serial, serial, 'no change counted');
  t.same(data(z.lookup('web-1.vxnet', 'A')!.answers), ['10.1.0.2'], 'the previous records stay');
  const longDomain = new Zone({ domain: ['a'.repeat(60), 'b'.repeat(60), 'c'.repeat(60), 'd'.repeat(60)].join('.') });
  t.throws(() => longDomain.set('x', web1), /cannot be served: .*at most 253/, 'a name that grows past 253 with the domain');
  t.throws(() => new Zone({ domain: 'bad domain' }), /DNS domain/);
  t.throws(() => new Zone({ ttl: -1 }), /DNS TTL -1/);
});

t.test('a custom domain and TTL', async (t) => {
  const z = new Zone({ domain: 'Cluster.Local.', ttl: 60 });
  z.set('a', web1);
  t.match(z.lookup('web-1.blue.cluster.local', 'A')!.answers[0], { ttl: 60, data: '10.1.0.2' });
  t.equal(z.lookup('web-1.vxnet', 'A'), undefined);
});

t.test('incremental: 10,000 endpoints, one change costs no rebuild', async (t) => {
  const z = new Zone();
  for (let i = 0; i < 10_000; i++) {
    z.set(`e${i}`, { name: `e${i}`, network: 'blue', service: 'big', addresses: [{ family: 4, value: 0x0a000000n + BigInt(i) }], ports: [{ port: 80, protocol: 'tcp' }] });
  }
  t.equal(z.lookup('big.vxnet', 'A')!.answers.length, 10_000);
  const started = process.hrtime.bigint();
  for (let i = 0; i < 1000; i++) {
    z.set('e5', { name: `e5`, network: 'blue', service: 'big', addresses: [{ family: 4, value: 0x0b000000n + BigInt(i) }], ports: [] });
    z.lookup('e5.vxnet', 'A');
  }
  const us = Number(process.hrtime.bigint() - started) / 1000 / 1000;
  t.ok(us < 500, `a change plus a lookup of the changed name: ${us.toFixed(1)} µs (< 500)`);
});
