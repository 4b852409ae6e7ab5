// dns/feed.ts and dns/state.ts: catalog endpoints into zone entries (name and aliases, no name:
// nothing), change batches applied, a refused name reported once; the dns.json shape and the
// CNI result's dns made from it.
import t from 'tap';
import { EndpointCatalog } from '../../catalog/catalog';
import type { Endpoint } from '../../catalog/endpoint';
import { ZoneFeed, zoneEntriesOf } from '../../dns/feed';
import { cniDnsOf, parseDnsState, readDnsState, removeDnsState, writeDnsState } from '../../dns/state';
import { Zone } from '../../dns/zone';
import { formatIp } from '../../ipam/addr';

const ep = (name: string, more: Partial<Endpoint> = {}): Endpoint => ({
  id: `h/n/${name || 'x'}`, host: 'h', runtime: 'cni', containerId: name, network: 'n', name, aliases: [], addresses: ['10.0.0.1'], labels: {}, ports: [], ...more,
});
const a = (zone: Zone, qname: string): string[] => (zone.lookup(qname, 'A')?.answers ?? []).map((r) => (r.type === 'A' ? r.data : '')).sort();

t.test('zoneEntriesOf: the name and each alias; addresses parsed; no name, nothing', async (t) => {
  const entries = zoneEntriesOf(ep('web', { aliases: ['www', 'web', ''], addresses: ['10.0.0.1', 'fd00::1', 'junk'], service: 'front', ports: [{ port: 80, protocol: 'tcp' }] }));
  t.same(entries.map((e) => [e.id, e.endpoint.name]), [['h/n/web', 'web'], ['h/n/web#alias:www', 'www']], 'one entry per distinct name');
  t.same(entries[0].endpoint.addresses.map(formatIp), ['10.0.0.1', 'fd00::1'], 'unparsable addresses skipped');
  t.match(entries[0].endpoint, { network: 'n', service: 'front', host: 'h', ports: [{ port: 80 }] });
  t.match(entries[1].endpoint, { network: 'n', host: 'h', ports: [] }, 'an alias: the addresses only (no SRV, no service of its own)');
  t.notOk('service' in entries[1].endpoint, 'the alias carries no service');
  t.same(zoneEntriesOf(ep('')), [], 'an endpoint with an empty name contributes nothing');
});

t.test('ZoneFeed follows the catalog: start from list(), then each batch', async (t) => {
  const catalog = new EndpointCatalog();
  catalog.put(ep('old'));
  const zone = new Zone();
  const invalid: string[] = [];
  const feed = new ZoneFeed(zone, (id, name, err) => invalid.push(`${id} ${name} ${err.name}`));
  t.equal(feed.follow(catalog), 1);
  t.same(a(zone, 'old.vxnet'), ['10.0.0.1'], 'what the catalog held at start');
  catalog.put(ep('web', { aliases: ['www'], addresses: ['10.0.0.2'] }));
  t.same(a(zone, 'www.vxnet'), ['10.0.0.2'], 'a put reaches the zone in the same call');
  catalog.put(ep('web', { aliases: [], addresses: ['10.0.0.3'] }));
  t.same([a(zone, 'web.vxnet'), zone.lookup('www.vxnet', 'A')?.rcode], [['10.0.0.3'], 'NXDOMAIN'], 'an alias dropped is gone, the name updated');
  catalog.put(ep('bad.name'));
  catalog.put(ep('bad.name', { addresses: ['10.0.0.9'] }));
  t.same(invalid, ['h/n/bad.name bad.name InvalidName'], 'a refused name reported once');
  catalog.replaceHost('h', [ep('web', { addresses: ['10.0.0.3'] })]);
  t.same([zone.lookup('old.vxnet', 'A')?.rcode, a(zone, 'web.vxnet')], ['NXDOMAIN', ['10.0.0.3']], 'a host replaced: removals applied');
  t.equal(zone.size, 1);
  feed.stop();
  catalog.remove('h/n/web');
  t.same(a(zone, 'web.vxnet'), ['10.0.0.3'], 'stopped: no longer follows');
});

t.test('dns.json: written atomically, read back, refused when foreign; the CNI dns from it', async (t) => {
  const dir = t.testdir({});
  const file = `${dir}/sub/dns.json`;
  t.equal(readDnsState(file), undefined, 'no file: no state');
  const state = { nameservers: ['198.51.100.1', '198.51.100.2'], domain: 'vxnet', search: ['vxnet'] };
  writeDnsState(file, state);
  t.same(readDnsState(file), state);
  for (const bad of ['', '{', '[]', '{"nameservers":["x"],"domain":"vxnet","search":[]}', '{"nameservers":[],"domain":1,"search":[]}']) {
    t.equal(parseDnsState(bad), undefined, `refused: ${bad}`);
  }
  t.same(cniDnsOf(state, 'Blue'), { nameservers: ['198.51.100.1', '198.51.100.2'], search: ['blue.vxnet', 'vxnet'] }, 'NETWORK.DOMAIN first');
  t.same(cniDnsOf(state, 'my.net').search, ['vxnet'], 'a network name that is no DNS label is left out');
  removeDnsState(file);
  removeDnsState(file);
  t.equal(readDnsState(file), undefined, 'removed (twice is fine)');
});
