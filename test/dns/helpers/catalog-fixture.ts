// A catalog of four endpoints feeding a zone, as vxnetd's wiring does: the fixture of the
// Mesos-DNS API tests (test/dns/mesos-api.test.ts) and of vxnetctl dns (test/dns/ctl-dns.test.ts).
import type { EndpointCatalog } from '../../../catalog/catalog';
import type { Endpoint } from '../../../catalog/endpoint';
import type { MesosDnsConfig } from '../../../dns/mesos-api';
import type { Zone } from '../../../dns/zone';
import { Ip, parseIp } from '../../../ipam/addr';

const ip = (text: string): Ip => parseIp(text)!;

export const WEB1: Endpoint = {
  id: 'h1/blue/c1', host: 'h1', runtime: 'docker', containerId: 'c1'.padEnd(64, '0'), network: 'blue', name: 'web-1', aliases: [],
  addresses: ['10.1.0.2', 'fd00::2'], labels: { 'vxnet.service': 'web' }, service: 'web',
  ports: [{ port: 8080, protocol: 'tcp', name: 'http' }, { port: 9000, protocol: 'udp' }],
};
export const WEB2: Endpoint = {
  id: 'h2/blue/c2', host: 'h2', runtime: 'cni', containerId: 'c2', network: 'blue', name: 'web-2', aliases: ['www'],
  addresses: ['10.1.0.3'], labels: { 'com.docker.compose.service': 'web' }, service: 'web',
  ports: [{ port: 8080, protocol: 'tcp', name: 'http' }],
};
export const DB: Endpoint = {
  id: 'h1/red/c3', host: 'h1', runtime: 'docker', containerId: 'c3', network: 'red', name: 'db', aliases: [],
  addresses: ['10.2.0.5'], labels: {}, ports: [],
};
/** "ns" is the zone's name server: the zone refuses the endpoint, so no record shows it. */
export const NS: Endpoint = {
  id: 'h1/blue/c4', host: 'h1', runtime: 'docker', containerId: 'c4', network: 'blue', name: 'ns', aliases: [],
  addresses: ['10.1.0.9'], labels: {}, ports: [{ port: 53, protocol: 'udp' }],
};

/** The catalog feeding the zone, as vxnetd's wiring does (aliases as address-only entries). */
export function fed(zone: Zone, catalog: EndpointCatalog): void {
  const set = (e: Endpoint): void => {
    try {
      zone.set(e.id, { name: e.name, network: e.network, service: e.service, addresses: e.addresses.map(ip), ports: e.ports, host: e.host });
    } catch { /* InvalidName: not served */ }
    e.aliases.forEach((a, i) => zone.set(`${e.id}#${i}`, { name: a, network: e.network, addresses: e.addresses.map(ip), ports: [] }));
  };
  for (const e of catalog.list()) set(e);
  catalog.subscribe((changes) => {
    for (const c of changes) {
      if (c.before) { zone.delete(c.id); c.before.aliases.forEach((_, i) => zone.delete(`${c.id}#${i}`)); }
      if (c.after) set(c.after);
    }
  });
}

export const CONFIG: MesosDnsConfig = { domain: 'vxnet', ttl: 5, listen: ['127.0.0.1:5353', '198.51.100.2:53'], upstreams: ['192.0.2.53:53'], httpListen: '127.0.0.1:8123' };

