// dns/zone.ts's named-VIP records and dns/vip-feed.ts: NAME.l4lb.DOMAIN A/AAAA, SRV
// _NAME._tcp.l4lb.DOMAIN, names following the VIP model, l4lb reserved.
import t from 'tap';
import { parseIp, type Ip } from '../../ipam/addr';
import { InvalidName } from '../../lib/errors';
import { VipZoneFeed, vipRecordsOf } from '../../dns/vip-feed';
import { Zone } from '../../dns/zone';

const ip = (s: string): Ip => parseIp(s) as Ip;
const data = (z: Zone, name: string, type: string): unknown[] => (z.lookup(name, type)?.answers ?? []).map((a) => ('data' in a ? a.data : undefined));

t.test('setVip: A, AAAA and SRV under l4lb; deleteVip removes them; the serial moves', async (t) => {
  const z = new Zone();
  const s0 = z.serial;
  z.setVip({ name: 'web', addresses: [ip('198.18.0.10'), ip('fd76:786e:6574::10')], ports: [{ port: 80, protocol: 'tcp' }, { port: 443, protocol: 'tcp' }, { port: 53, protocol: 'udp' }] });
  t.ok(z.serial !== s0);
  t.same(data(z, 'web.l4lb.vxnet', 'A'), ['198.18.0.10']);
  t.same(data(z, 'web.l4lb.vxnet', 'AAAA'), ['fd76:786e:6574::10']);
  t.same(data(z, '_web._tcp.l4lb.vxnet', 'SRV'), [{ priority: 0, weight: 1, port: 80, target: 'web.l4lb.vxnet' }, { priority: 0, weight: 1, port: 443, target: 'web.l4lb.vxnet' }]);
  t.same(data(z, '_web._udp.l4lb.vxnet', 'SRV'), [{ priority: 0, weight: 1, port: 53, target: 'web.l4lb.vxnet' }]);
  const srv = z.lookup('_web._tcp.l4lb.vxnet', 'SRV');
  t.same(srv?.additionals.map((a) => a.type), ['A', 'AAAA'], 'the target\'s addresses in the additional section');
  t.equal(z.lookup('l4lb.vxnet', 'A')?.rcode, 'NOERROR', 'l4lb.DOMAIN exists as a parent: NODATA');
  t.equal(z.lookup('api.l4lb.vxnet', 'A')?.rcode, 'NXDOMAIN');
  t.equal(z.size, 0, 'VIPs are not endpoints');
  t.ok(z.deleteVip('web'));
  t.notOk(z.deleteVip('web'));
  t.equal(z.lookup('web.l4lb.vxnet', 'A')?.rcode, 'NXDOMAIN');
  t.equal(z.lookup('l4lb.vxnet', 'A')?.rcode, 'NXDOMAIN', 'and the parent with it');
});

t.test('l4lb is reserved: no endpoint, network or service of that name; VIP names are checked', async (t) => {
  const z = new Zone();
  t.throws(() => z.set('e1', { name: 'web', network: 'l4lb', addresses: [ip('10.0.0.2')], ports: [] }), { message: /network name "l4lb" is reserved for VIP names \(NAME.l4lb.vxnet\)/ });
  t.throws(() => z.set('e1', { name: 'l4lb', network: 'blue', addresses: [ip('10.0.0.2')], ports: [] }), InvalidName);
  t.throws(() => z.set('e1', { name: 'x', network: 'blue', service: 'l4lb', addresses: [ip('10.0.0.2')], ports: [] }), InvalidName);
  t.throws(() => z.setVip({ name: 'my.web', addresses: [ip('198.18.0.1')], ports: [] }), InvalidName);
  t.throws(() => z.setVip({ name: '_web', addresses: [ip('198.18.0.1')], ports: [] }), { message: /must not start with "_"/ });
  t.throws(() => z.set('\0vip:web', { name: 'x', network: 'blue', addresses: [], ports: [] }), { message: /reserved/ });
  z.set('e1', { name: 'web', network: 'blue', addresses: [ip('10.0.0.2')], ports: [] });
  z.setVip({ name: 'web', addresses: [ip('198.18.0.1')], ports: [] });
  t.same(data(z, 'web.vxnet', 'A'), ['10.0.0.2'], 'an endpoint and a VIP may share a name: web.DOMAIN and web.l4lb.DOMAIN');
  t.same(data(z, 'web.l4lb.vxnet', 'A'), ['198.18.0.1']);
});

t.test('vipRecordsOf: VIPs grouped by name, IP VIPs left out', async (t) => {
  t.same(vipRecordsOf([
    { name: 'web', addresses: ['198.18.0.10', 'fd76:786e:6574::10'], protocol: 'tcp', port: 443 },
    { name: 'web', addresses: ['198.18.0.10', 'fd76:786e:6574::10'], protocol: 'tcp', port: 80 },
    { addresses: ['10.9.9.9'], protocol: 'tcp', port: 80 },
  ]).map((r) => ({ ...r, addresses: r.addresses.length })), [{ name: 'web', addresses: 2, ports: [{ port: 80, protocol: 'tcp' }, { port: 443, protocol: 'tcp' }] }]);
});

t.test('VipZoneFeed: names follow the model; unchanged names are not touched; pending ones get nothing', async (t) => {
  const z = new Zone();
  const refused: string[] = [];
  const feed = new VipZoneFeed(z, (name) => refused.push(name));
  feed.replace([{ name: 'web', addresses: ['198.18.0.10'], protocol: 'tcp', port: 80 }, { name: 'new', addresses: [], protocol: 'tcp', port: 80 }]);
  t.same(feed.names(), ['web']);
  t.same(data(z, 'web.l4lb.vxnet', 'A'), ['198.18.0.10']);
  const serial = z.serial;
  feed.replace([{ name: 'web', addresses: ['198.18.0.10'], protocol: 'tcp', port: 80 }]);
  t.equal(z.serial, serial, 'nothing changed, nothing set');
  feed.replace([{ name: 'api', addresses: ['198.18.0.11'], protocol: 'udp', port: 53 }]);
  t.equal(z.lookup('web.l4lb.vxnet', 'A')?.rcode, 'NXDOMAIN', 'web gone');
  t.same(data(z, '_api._udp.l4lb.vxnet', 'SRV'), [{ priority: 0, weight: 1, port: 53, target: 'api.l4lb.vxnet' }]);
  const long = 'a'.repeat(63);
  const z2 = new Zone({ domain: `${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(50)}` });
  const f2 = new VipZoneFeed(z2, (name) => refused.push(name));
  f2.replace([{ name: long, addresses: ['198.18.0.1'], protocol: 'tcp', port: 80 }]);
  f2.replace([{ name: long, addresses: ['198.18.0.1'], protocol: 'tcp', port: 81 }]);
  t.same(refused, [long], 'a name too long to serve is reported once');
});
