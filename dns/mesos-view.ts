// What the Mesos-DNS HTTP API answers, as plain values: pure functions of the zone and the
// catalog's endpoints (./mesos-api.ts is the HTTP shell). Every name and address shown comes
// from a `zone.lookup`, never from the endpoint directly, so the API cannot say something DNS
// would not answer (an endpoint the zone refused, InvalidName, shows no records). The catalog
// says only which names to ask about and which records belong to which endpoint.
//
// Shapes are Mesos-DNS's (resolver/resolver.go, records/generator.go, models/models.go):
// names fully qualified with a trailing dot, ports as strings, and a lookup that finds nothing
// answering one entry of empty strings rather than [] or 404.
import type { Answer, SrvAnswer } from 'dns-packet';
import type { Endpoint } from '../catalog/endpoint';
import { parseIp } from '../ipam/addr';
import { nameProblem, reverseName } from './names';
import type { ZoneAnswer } from './zone';

/** The part of dns/zone.ts's Zone the API reads. */
export interface ZoneView {
  readonly domain: string;
  readonly ttl: number;
  readonly nameserver: string;
  readonly serial: number;
  lookup(qname: string, qtype: string): ZoneAnswer | undefined;
}

export interface HostRecord { readonly host: string; readonly ip: string }
export interface ServiceRecord { readonly service: string; readonly host: string; readonly ip: string; readonly port: string }
export interface PortRecord { readonly host: string; readonly ip: string; readonly port: string; readonly protocol: string; readonly name: string }
export interface EnumerableRecord { readonly name: string; readonly host: string; readonly rtype: string }
export interface EnumerableTask { readonly name: string; readonly id: string; readonly records: EnumerableRecord[] }
export interface EnumerableFramework { readonly tasks: EnumerableTask[]; readonly name: string }
export interface Enumeration { readonly frameworks: EnumerableFramework[] }
export type RecordSet = Record<string, string[]>;
export interface Axfr {
  readonly TTL: number;
  readonly Serial: number;
  readonly RefreshSeconds: number;
  readonly Mname: string;
  readonly Rname: string;
  readonly Domain: string;
  readonly Records: { readonly As: RecordSet; readonly AAAAs: RecordSet; readonly SRVs: RecordSet };
}

/** The vxnet extension /v1/endpoints: a catalog endpoint plus the names DNS answers for it now. */
export interface EndpointView {
  readonly id: string;
  readonly name: string;
  readonly aliases: readonly string[];
  readonly network: string;
  readonly host: string;
  readonly runtime: string;
  readonly containerId: string;
  readonly addresses: readonly string[];
  readonly ports: ReadonlyArray<{ readonly port: number; readonly protocol: 'tcp' | 'udp'; readonly name: string | null }>;
  readonly service: string | null;
  readonly labels: Readonly<Record<string, string>>;
  /** Fully qualified names whose A/AAAA answer holds one of its addresses. */
  readonly dnsNames: string[];
}

const EMPTY_HOST: HostRecord = { host: '', ip: '' };
const EMPTY_SERVICE: ServiceRecord = { service: '', host: '', ip: '', port: '' };
const EMPTY_PORT: PortRecord = { host: '', ip: '', port: '', protocol: '', name: '' };

const fqdn = (name: string): string => `${name}.`;

/**
 * The zone name a path parameter asks for: Mesos-DNS's clean-up (".*" wildcards dropped,
 * lower-cased, trailing dot optional) and, for a name without a dot, the zone's domain
 * appended (`web` is `web.vxnet`), as vxnetctl dns query does. Undefined for a name the zone
 * could never hold.
 */
export function apiName(text: string, domain: string): string | undefined {
  let name = text.split('.*').join('').toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name !== '' && !name.includes('.')) name = `${name}.${domain}`;
  return nameProblem(name) === undefined ? name : undefined;
}

/**
 * Addresses in a stable order (IPv4 before IPv6, numerically; the zone rotates its RRsets),
 * each parsed once: a service's RRset can hold thousands.
 */
function sortAddresses(list: readonly string[]): string[] {
  const keyed = list.map((text) => {
    const ip = parseIp(text);
    return { text, family: ip?.family ?? 9, value: ip?.value ?? 0n };
  });
  keyed.sort((x, y) => x.family - y.family || (x.value < y.value ? -1 : x.value > y.value ? 1 : x.text < y.text ? -1 : x.text > y.text ? 1 : 0));
  return keyed.map((k) => k.text);
}

const text = (a: Answer): string => ('data' in a && typeof a.data === 'string' ? a.data : '');

/** The A and AAAA data at `name`, A first, each in address order. */
function addressesAt(zone: ZoneView, name: string): { a: string[]; aaaa: string[] } {
  const of = (type: 'A' | 'AAAA'): string[] =>
    sortAddresses((zone.lookup(name, type)?.answers ?? []).filter((r) => r.type === type && r.name === name).map(text));
  return { a: of('A'), aaaa: of('AAAA') };
}

function srvAt(zone: ZoneView, name: string): { srvs: SrvAnswer[]; additionals: Answer[] } {
  const answer = zone.lookup(name, 'SRV');
  const srvs = (answer?.answers ?? []).filter((r): r is SrvAnswer => r.type === 'SRV' && r.name === name);
  srvs.sort((x, y) => (x.data.target < y.data.target ? -1 : x.data.target > y.data.target ? 1 : x.data.port - y.data.port));
  return { srvs, additionals: answer?.additionals ?? [] };
}

/**
 * One listing's lookups, each name asked once: a service of 10,000 endpoints shares
 * SERVICE.DOMAIN and _SERVICE._tcp.DOMAIN, which would otherwise be looked up (and scanned)
 * once per endpoint.
 */
class Lookups {
  private readonly addresses = new Map<string, { a: string[]; aaaa: string[]; all: Set<string> }>();
  private readonly srvs = new Map<string, { srvs: SrvAnswer[]; byTarget: Map<string, SrvAnswer[]> }>();
  constructor(readonly zone: ZoneView) {}

  addressesAt(name: string): { a: string[]; aaaa: string[]; all: Set<string> } {
    let found = this.addresses.get(name);
    if (!found) {
      const { a, aaaa } = addressesAt(this.zone, name);
      this.addresses.set(name, (found = { a, aaaa, all: new Set([...a, ...aaaa]) }));
    }
    return found;
  }

  srvAt(name: string): { srvs: SrvAnswer[]; byTarget: Map<string, SrvAnswer[]> } {
    let found = this.srvs.get(name);
    if (!found) {
      const { srvs } = srvAt(this.zone, name);
      const byTarget = new Map<string, SrvAnswer[]>();
      for (const s of srvs) {
        const list = byTarget.get(s.data.target);
        if (list) list.push(s); else byTarget.set(s.data.target, [s]);
      }
      this.srvs.set(name, (found = { srvs, byTarget }));
    }
    return found;
  }
}

/** GET /v1/hosts/{host}: the A and AAAA records of the name. */
export function hostRecords(zone: ZoneView, param: string): HostRecord[] {
  const name = apiName(param, zone.domain);
  if (name === undefined) return [EMPTY_HOST];
  const { a, aaaa } = addressesAt(zone, name);
  const out = [...a, ...aaaa].map((ip) => ({ host: fqdn(name), ip }));
  return out.length ? out : [EMPTY_HOST];
}

/**
 * GET /v1/services/{service}: one entry per SRV record and target address family, with the
 * target's first A and first AAAA (Mesos-DNS's As.First), from the SRV answer's additional
 * section. `service` is the name asked, fully qualified.
 */
export function serviceRecords(zone: ZoneView, param: string): ServiceRecord[] {
  const name = apiName(param, zone.domain);
  if (name === undefined) return [EMPTY_SERVICE];
  const { srvs, additionals } = srvAt(zone, name);
  const out: ServiceRecord[] = [];
  for (const srv of srvs) {
    const target = srv.data.target;
    for (const type of ['A', 'AAAA'] as const) {
      const first = sortAddresses(additionals.filter((r) => r.type === type && r.name === target).map(text))[0];
      if (first !== undefined) out.push({ service: fqdn(name), host: fqdn(target), ip: first, port: String(srv.data.port) });
    }
  }
  return out.length ? out : [EMPTY_SERVICE];
}

/** The names an endpoint's addresses are served under (mirrors Zone.recordsOf). */
function addressOwners(e: Endpoint, domain: string): string[] {
  // An unnamed endpoint (name '': its container name is not a DNS label) has no names.
  const names = [e.name, ...e.aliases].map((n) => n.toLowerCase()).filter((n) => n !== '');
  const owners: string[] = [];
  for (const n of names) owners.push(`${n}.${domain}`, `${n}.${e.network.toLowerCase()}.${domain}`);
  if (e.name !== '' && e.service !== undefined && e.service.toLowerCase() !== e.name.toLowerCase()) owners.push(`${e.service.toLowerCase()}.${domain}`);
  return [...new Set(owners)];
}

/** The SRV owner names of an endpoint's ports (mirrors Zone.recordsOf). */
function srvOwners(e: Endpoint, domain: string): string[] {
  const service = (e.service ?? e.name).toLowerCase();
  const owners: string[] = [];
  if (e.name === '') return owners;
  for (const p of e.ports) {
    owners.push(`_${service}._${p.protocol}.${domain}`);
    if (p.name !== undefined) owners.push(`_${p.name.toLowerCase()}._${p.protocol}.${service}.${domain}`);
  }
  return [...new Set(owners)];
}

/**
 * GET /v1/hosts/{host}/ports (Mesos-DNS left it "To be implemented", 501): the ports of the
 * endpoints answering at that name, one entry per address the zone gives for it and port, in
 * the endpoint's port order. Same not-found shape as the other lookups.
 */
export function portRecords(zone: ZoneView, endpoints: readonly Endpoint[], param: string): PortRecord[] {
  const name = apiName(param, zone.domain);
  if (name === undefined) return [EMPTY_PORT];
  const { a, aaaa } = addressesAt(zone, name);
  const served = new Set([...a, ...aaaa]);
  const out: PortRecord[] = [];
  for (const e of sortEndpoints(endpoints)) {
    if (!addressOwners(e, zone.domain).includes(name)) continue;
    const ips = sortAddresses(e.addresses.filter((ip) => served.has(ip)));
    for (const ip of ips) {
      for (const p of e.ports) out.push({ host: fqdn(name), ip, port: String(p.port), protocol: p.protocol, name: p.name ?? '' });
    }
  }
  return out.length ? out : [EMPTY_PORT];
}

function sortEndpoints(endpoints: readonly Endpoint[]): Endpoint[] {
  return [...endpoints].sort((x, y) =>
    x.network.localeCompare(y.network) || x.name.localeCompare(y.name) || x.host.localeCompare(y.host) || x.id.localeCompare(y.id));
}

/** The records the zone serves now that come from endpoint `e` (its addresses, its SRV targets). */
function recordsOf(look: Lookups, e: Endpoint): EnumerableRecord[] {
  const zone = look.zone;
  const mine = sortAddresses([...new Set(e.addresses)]);
  const out: EnumerableRecord[] = [];
  for (const owner of addressOwners(e, zone.domain)) {
    const { all } = look.addressesAt(owner);
    for (const ip of mine) if (all.has(ip)) out.push({ name: fqdn(owner), host: ip, rtype: parseIp(ip)?.family === 6 ? 'AAAA' : 'A' });
  }
  const target = `${e.name.toLowerCase()}.${zone.domain}`;
  const ports = new Set(e.ports.map((p) => p.port));
  for (const owner of srvOwners(e, zone.domain)) {
    for (const srv of look.srvAt(owner).byTarget.get(target) ?? []) {
      if (ports.has(srv.data.port)) out.push({ name: fqdn(owner), host: `${fqdn(target)}:${srv.data.port}`, rtype: 'SRV' });
    }
  }
  for (const address of mine) {
    const ip = parseIp(address);
    if (!ip) continue;
    const ptr = reverseName(ip);
    for (const r of zone.lookup(ptr, 'PTR')?.answers ?? []) {
      if (r.type === 'PTR' && r.data === target) out.push({ name: fqdn(ptr), host: fqdn(target), rtype: 'PTR' });
    }
  }
  return out;
}

/**
 * GET /v1/enumerate: Mesos-DNS's frameworks and tasks; here a framework is a network (the
 * NETWORK of NAME.NETWORK.DOMAIN, where Mesos-DNS had task.FRAMEWORK.mesos) and a task an
 * endpoint, with the records the zone serves for it (PTR included; Mesos-DNS had none).
 */
export function enumerate(zone: ZoneView, endpoints: readonly Endpoint[]): Enumeration {
  const look = new Lookups(zone);
  const byNetwork = new Map<string, EnumerableTask[]>();
  for (const e of sortEndpoints(endpoints)) {
    let tasks = byNetwork.get(e.network);
    if (!tasks) byNetwork.set(e.network, (tasks = []));
    tasks.push({ name: e.name, id: e.id, records: recordsOf(look, e) });
  }
  return { frameworks: [...byNetwork].map(([name, tasks]) => ({ tasks, name })) };
}

/** Keys and values sorted (Go marshals map keys in order), so two transfers compare equal. */
function sortedSet(entries: Map<string, string[]>, order: (list: string[]) => string[]): RecordSet {
  const out: RecordSet = {};
  for (const key of [...entries.keys()].sort()) out[key] = order([...new Set(entries.get(key))]);
  return out;
}

export interface AxfrOptions {
  /** How often a poller should come back; vxnet pushes, so this is only advice (default: the TTL). */
  readonly refreshSeconds?: number;
}

/**
 * GET /v1/axfr: Mesos-DNS's zone transfer (models.AXFR) of every A, AAAA and SRV record the
 * zone serves for the catalog's endpoints and its name server; keys and hosts fully qualified,
 * SRVs as "target.:port".
 */
export function axfr(zone: ZoneView, endpoints: readonly Endpoint[], options: AxfrOptions = {}): Axfr {
  const owners = new Set<string>([zone.nameserver]);
  const srvNames = new Set<string>();
  for (const e of endpoints) {
    for (const o of addressOwners(e, zone.domain)) owners.add(o);
    for (const o of srvOwners(e, zone.domain)) srvNames.add(o);
  }
  const as = new Map<string, string[]>();
  const aaaas = new Map<string, string[]>();
  const srvs = new Map<string, string[]>();
  for (const owner of owners) {
    const { a, aaaa } = addressesAt(zone, owner);
    if (a.length) as.set(fqdn(owner), a);
    if (aaaa.length) aaaas.set(fqdn(owner), aaaa);
  }
  for (const owner of srvNames) {
    const found = srvAt(zone, owner).srvs.map((s) => `${fqdn(s.data.target)}:${s.data.port}`);
    if (found.length) srvs.set(fqdn(owner), found);
  }
  const soa = zone.lookup(zone.domain, 'SOA')?.answers.find((r) => r.type === 'SOA');
  const soaData = soa?.type === 'SOA' ? soa.data : undefined;
  const bySrv = (list: string[]): string[] => list.sort();
  return {
    TTL: zone.ttl,
    Serial: soaData?.serial ?? zone.serial,
    RefreshSeconds: options.refreshSeconds ?? zone.ttl,
    Mname: fqdn(soaData?.mname ?? zone.nameserver),
    Rname: fqdn(soaData?.rname ?? `hostmaster.${zone.domain}`),
    Domain: zone.domain,
    Records: { As: sortedSet(as, sortAddresses), AAAAs: sortedSet(aaaas, sortAddresses), SRVs: sortedSet(srvs, bySrv) },
  };
}

/** GET /v1/endpoints (vxnet's): the catalog's endpoints, sorted, with the names DNS gives them. */
export function endpointViews(zone: ZoneView, endpoints: readonly Endpoint[]): EndpointView[] {
  const look = new Lookups(zone);
  return sortEndpoints(endpoints).map((e) => {
    const dnsNames = addressOwners(e, zone.domain).filter((owner) => {
      const { all } = look.addressesAt(owner);
      return e.addresses.some((ip) => all.has(ip));
    }).map(fqdn);
    return {
      id: e.id, name: e.name, aliases: [...e.aliases], network: e.network, host: e.host, runtime: e.runtime,
      containerId: e.containerId, addresses: [...e.addresses],
      ports: e.ports.map((p) => ({ port: p.port, protocol: p.protocol, name: p.name ?? null })),
      service: e.service ?? null, labels: { ...e.labels }, dnsNames,
    };
  });
}
